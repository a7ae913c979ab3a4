"""Running one prompt through the backend seam in tests."""

from __future__ import annotations


def ask_media(backend, media, text, *, on_text=None, **settings):  # type: ignore[no-untyped-def]
    """One prompt through the backend seam (prepare, then generate), as ``vlcli ask`` runs it."""
    from vlcli.backends import Prompt

    prompt = Prompt(tuple(media), text, **settings)
    return backend.generate(backend.prepare(prompt), on_text)
