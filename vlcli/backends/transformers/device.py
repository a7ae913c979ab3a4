"""Where the model runs and in what precision: ``--device``, ``--dtype`` and ``--attn`` checked
against this machine, its free memory, and the device running out of memory.

These are checked before anything is loaded, so that a wrong option or weights that cannot fit
stop the command in one line rather than after minutes of loading; and the device's own
out-of-memory error, wherever it strikes, becomes the one :class:`DeviceOutOfMemory` the run
reports like a failed budget check.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from vlcli.errors import DeviceOutOfMemory, ExitStatus, UsageError, VlcliError
from vlcli.planning.memory import ATTENTION, canonical_dtype


def devices_here() -> list[str]:
    """The devices vlcli can run on here: the CPU and each CUDA GPU."""
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu"] + [f"cuda:{i}" for i in range(cuda)]


def pick_device(device: str, warn: Callable[[str], None]) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        warn("no CUDA GPU found: running on the CPU, which is slow (minutes per video)")
        return torch.device("cpu")
    here = ", ".join(devices_here())
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise UsageError(
            f"--device {device!r} is not a device: use auto, or one of {here}"
        ) from None
    if chosen.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device}: vlcli runs on the CPU or CUDA GPUs; here: {here}")
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA GPU is available here ({here})")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: there is no such GPU here ({here})")
    return chosen


def available_memory_bytes(device: torch.device) -> int | None:
    """Memory there is to load weights into: the GPU's free memory, or the host's available
    memory (``MemAvailable``, Linux) for the CPU; None when it cannot be told."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        name = canonical_dtype(dtype)
    except UsageError:
        raise UsageError(f"--dtype {dtype!r}: use auto, bfloat16, float16 or float32") from None
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def check_attention(attn: str, device: torch.device, dtype: torch.dtype) -> None:
    if attn not in ATTENTION:
        raise UsageError(f"--attn {attn!r}: use {', '.join(ATTENTION)}")
    if attn == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise VlcliError(
                "--attn flash_attention_2 needs the flash-attn package (pip install flash-attn), "
                "or use --attn sdpa",
                ExitStatus.MISSING_DEPENDENCY,
            )
        if device.type != "cuda" or dtype == torch.float32:
            raise UsageError(
                "--attn flash_attention_2 needs a CUDA GPU and --dtype bfloat16 or float16"
            )


def _is_out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


@contextmanager
def out_of_memory_reported() -> Iterator[None]:
    """The device running out of memory inside the block (building the inputs, generating)
    raised as :class:`DeviceOutOfMemory`, with the cached memory given back first so that the
    next input of the run has it."""
    try:
        yield
    except Exception as exc:
        if _is_out_of_memory(exc):
            release_cuda_memory()
            raise DeviceOutOfMemory("the GPU ran out of memory") from exc
        raise


def release_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
