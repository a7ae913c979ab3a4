"""Loading a located model's processor and weights with transformers.

The rules that make loading safe and quiet live here: ``trust_remote_code=False`` and
safetensors only, transformers imported by one thread at a time, its logging and progress bars
silenced, the weights put straight onto the GPU when ``accelerate`` allows it, and any failure of
the model's files told in one line (:func:`cannot_load`) rather than transformers' traceback.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import torch

from vlcli.errors import ModelError, first_line
from vlcli.models.families import Family

_IMPORT_LOCK = threading.Lock()


def _import_transformers(family: Family) -> tuple[Any, Any]:
    """``AutoProcessor`` and the model class, imported once, by one thread at a time.

    transformers resolves its names lazily and that is not thread-safe: the worker that
    prepares the first input and the thread that loads the model would otherwise import it
    at once ("partially initialized module").
    """
    # transformers (seconds of imports, torchvision with it) is imported here, when the model
    # loads, which overlaps the first input's decoding (vlcli.run.pipeline's warm_up), and not
    # when the engine is chosen, before the backend's checks and the run start.
    with _IMPORT_LOCK:
        from transformers import AutoProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        return AutoProcessor, model_class(family)


def model_class(family: Family) -> Any:
    import transformers

    return getattr(transformers, family.transformers_class)


def cannot_load(model: str, exc: BaseException) -> ModelError:
    """The one line that says why ``model``'s files would not load."""
    reason = first_line(exc)[:200] or type(exc).__name__
    if type(exc).__name__ == "SafetensorError":
        reason = f"a weights file is corrupt or truncated: {reason}"
    return ModelError(f"{model}: cannot load the model ({reason})")


def load_processor(family: Family, folder: str, model: str) -> Any:
    """The model's processor (its tokenizer, chat template, image and video processors)."""
    auto_processor, _ = _import_transformers(family)
    try:
        return auto_processor.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise cannot_load(model, exc) from None


def load_model(
    family: Family, folder: str, model: str, device: torch.device, dtype: torch.dtype, attn: str
) -> Any:
    """The model's weights on ``device`` in ``dtype``, with ``attn`` attention, for inference."""
    _, model_cls = _import_transformers(family)
    load: dict[str, Any] = {}
    if device.type == "cuda" and importlib.util.find_spec("accelerate") is not None:
        # Straight onto the GPU; without accelerate the weights pass through host memory.
        load["device_map"] = {"": str(device)}
    try:
        loaded = model_cls.from_pretrained(
            folder,
            dtype=dtype,
            attn_implementation=attn,
            trust_remote_code=False,
            use_safetensors=True,
            **load,
        )
    except Exception as exc:  # OSError, ValueError, safetensors' own error...: the files
        raise cannot_load(model, exc) from None
    return loaded.to(device).eval()


def snapshot_revision(folder: str) -> str | None:
    """The commit of a Hugging Face cache snapshot (its folder's name); None for other folders."""
    path = Path(folder).resolve()
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.name
    return None
