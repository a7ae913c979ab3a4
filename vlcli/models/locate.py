"""Where a model's files are: a local folder, the Hugging Face cache, or a download.

This module imports neither torch nor transformers, so that a model that cannot be found is
reported in a moment, before anything heavy is loaded or any input is probed. huggingface_hub
is imported only for a download: a local checkpoint folder never loads it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from vlcli.errors import ModelError, first_line, warn_on_stderr
from vlcli.models.families import ModelSpec, hf_cache_snapshot, resolve_model

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_TIMEOUT_S = 5.0  # seconds to wait for the Hugging Face hub before giving up on a download
# Files a checkpoint needs; weights only as safetensors.
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "*.tiktoken"]


def locate_model(model: str, warn: Callable[[str], None] = warn_on_stderr) -> str:
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
        reason = first_line(exc)[:160] or type(exc).__name__
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


class LocatedModel(NamedTuple):
    """A model found on this machine: its checkpoint folder, and what its own files say of it."""

    folder: str
    spec: ModelSpec


def locate_spec(model: str, warn: Callable[[str], None] = warn_on_stderr) -> LocatedModel:
    """The model's local folder and what its own files say of it (family, constants, shapes).

    Its weights files are checked too (:func:`check_weights_files`), so that a corrupt or cut
    checkpoint is reported now, before anything is loaded or any input is read.
    """
    folder = locate_model(model, warn)
    try:
        spec = resolve_model(folder)
    except ModelError as exc:
        raise ModelError(f"{model}: {exc.message.removeprefix(folder + ': ')}") from None
    problem = check_weights_files(Path(folder))
    if problem is not None:
        raise ModelError(f"{model}: cannot load the model: {problem}")
    return LocatedModel(folder, dataclasses.replace(spec, model=model))


def check_weights_files(folder: Path) -> str | None:
    """What is wrong with a checkpoint's safetensors files, or None when they look whole.

    Reads each file's header only: an 8-byte little-endian length, then that much JSON naming
    every tensor's byte range. A whole file is exactly as long as the header says; a download
    cut short, or a file that is not safetensors at all, is not.
    """
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            return f"{index.name} is not a readable safetensors index"
        files = [folder / name for name in names]
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        return "no weights in safetensors form in this folder (.safetensors files)"
    for path in files:
        problem = _safetensors_problem(path)
        if problem is not None:
            return f"{path.name} is corrupt or truncated ({problem})"
    return None


def _safetensors_problem(path: Path) -> str | None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{size} bytes, too short for a header"
            length = int.from_bytes(head, "little")
            if length > size - 8:
                return f"its header says {length} bytes, the file holds {size}"
            header = json.loads(fh.read(length))
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError:
        return "its header is not valid JSON"
    if not isinstance(header, dict):
        return "its header is not a table of tensors"
    end = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(tensor["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            return f"tensor {name!r} has no byte range"
    if 8 + length + end != size:
        return f"{8 + length + end} bytes expected, {size} found"
    return None
