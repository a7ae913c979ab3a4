"""The engines ``--engine`` names, each imported only when it is used.

An engine's module is heavy (transformers imports torch; that takes seconds), and ``budget``,
``probe`` and a mistyped option must not pay for it, so the registry holds each engine as the
text ``module:class`` and imports it on the first :func:`engine_class` call. Adding an engine is
one line here and its module under :mod:`vlcli.backends`.
"""

from __future__ import annotations

import importlib
from typing import Any

from vlcli.errors import UsageError

ENGINES: dict[str, str] = {
    "transformers": "vlcli.backends.transformers.backend:TransformersBackend",
    "vllm": "vlcli.backends.vllm.backend:ServerBackend",  # a running server or one vlcli starts
}


def check_engine_name(name: str) -> None:
    """Refuse an engine that does not exist, without importing any."""
    if name not in ENGINES:
        raise UsageError(f"--engine must be {' or '.join(ENGINES)}")


def engine_class(name: str) -> Any:
    """The backend class of engine ``name``, its module imported now."""
    check_engine_name(name)
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)
