"""Where a model's files are: a local folder, the Hugging Face cache, or a download.

This module imports neither torch nor transformers, so that a model that cannot be found is
reported in a moment, before anything heavy is loaded or any input is probed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import ModelError, UsageError
from .families import ModelSpec, hf_cache_snapshot, resolve_model

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_TIMEOUT_S = 5.0  # seconds to wait for the Hugging Face hub before giving up on a download
# Files a checkpoint needs; weights only as safetensors.
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "*.tiktoken"]


def _stderr(message: str) -> None:
    print(f"vlcli: warning: {message}", file=sys.stderr)


def locate_model(model: str, warn: Callable[[str], None] = _stderr) -> str:
    """The local folder of ``model``: a folder, a cached hub snapshot, or a fresh download.

    A download is tried only when the hub answers within :data:`HUB_TIMEOUT_S` seconds.
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelError(
                f"{model}: no config.json in this folder: "
                "pass --model PATH to a model checkpoint folder"
            )
        return str(folder)
    if not _HUB_ID.match(model) or model.startswith((".", "~")):
        raise ModelError(
            f"{model}: no such model folder: pass --model PATH to a downloaded checkpoint folder"
        )
    cached = hf_cache_snapshot(model)
    if cached is not None:
        return str(cached)
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ModelError(
            f"{model}: not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
            "download it first, or pass --model PATH to a local checkpoint folder"
        )
    try:
        from huggingface_hub import snapshot_download

        hub_answers(model, HUB_TIMEOUT_S)
        warn(f"{model}: not in the local Hugging Face cache: downloading it")
        return str(snapshot_download(model, allow_patterns=_DOWNLOAD_PATTERNS))
    except Exception as exc:  # no network, unknown repo, gated repo, disk full...
        text = str(exc).strip()
        reason = text.splitlines()[0][:160] if text else type(exc).__name__
        if "timeout" in type(exc).__name__.lower() or text.lower() == "timed out":
            reason = f"the hub did not answer within {HUB_TIMEOUT_S:g} s"
        raise ModelError(
            f"{model}: not in the local Hugging Face cache and the download failed ({reason}): "
            "pass --model PATH to a local checkpoint folder"
        ) from None


def hub_answers(model: str, timeout_s: float) -> None:
    """Return when the Hugging Face hub tells about ``model`` within ``timeout_s``; else raise.

    huggingface_hub's first request of a download (the repo's file list) has no read timeout,
    and it retries: a hub that accepts the connection and never answers (a proxy, a filtering
    firewall) would hang a download for good. This asks for the model's info on a daemon thread
    and waits at most ``timeout_s``: ``TimeoutError`` then, the hub's own error when it answers
    with one (unknown or gated repo, no network).
    """
    import threading

    from huggingface_hub import HfApi

    outcome: list[BaseException | None] = []

    def check() -> None:
        try:
            HfApi().model_info(model, timeout=timeout_s)
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=check, name="vlcli-hub-check", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        raise TimeoutError(f"the hub did not answer within {timeout_s:g} s")
    if outcome[0] is not None:
        raise outcome[0]


def locate_spec(model: str, warn: Callable[[str], None] = _stderr) -> tuple[str, ModelSpec]:
    """The model's local folder and what its own files say of it (family, constants, shapes)."""
    folder = locate_model(model, warn)
    try:
        spec = resolve_model(folder)
    except UsageError as exc:
        raise ModelError(f"{model}: {exc.message}") from None
    return folder, dataclasses.replace(spec, model=model)
