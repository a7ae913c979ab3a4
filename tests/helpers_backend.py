"""Running one prompt through the backend seam in tests."""

from __future__ import annotations


def ask_media(backend, media, text, *, on_text=None, **settings):  # type: ignore[no-untyped-def]
    """One prompt through the backend seam (prepare, then generate), as ``vlcli ask`` runs it."""
    from vlcli.backends import Prompt, ask

    return ask(backend, Prompt(tuple(media), text, **settings), on_text)
