"""Load a Qwen2-VL / Qwen2.5-VL / Qwen3-VL model once and answer prompts with it.

This is the only vlcli module that imports transformers. :class:`ModelRunner` finds the model
(a local folder, a hub id already in the Hugging Face cache, or a download when the hub can be
reached), loads it with ``trust_remote_code=False`` and safetensors only, and answers one prompt
per :meth:`ModelRunner.ask`: every media item of the prompt goes into one user turn, then the
question. The inputs are built chunk by chunk (:mod:`vlcli.inputs`), and Qwen2-VL / Qwen2.5-VL
models are made to use the reference mRoPE positions (:mod:`vlcli.positions`), not the ones
transformers 5.x computes, which place the text after a video inside the video's temporal range.
Qwen3-VL keeps transformers' positions (its per-frame blocks have no such problem).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ExitStatus, ModelError, UsageError, VlcliError
from .families import ModelSpec, hf_cache_snapshot, resolve_model
from .inputs import Media, PrepareStats, build_inputs
from .memory import canonical_dtype, check_weights_fit
from .positions import REFERENCE_FAMILIES, use_reference_positions

ATTENTION = ("sdpa", "flash_attention_2", "eager")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_TIMEOUT_S = 5.0  # seconds to wait for the Hugging Face hub before giving up on a download
# Files a checkpoint needs; weights only as safetensors.
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "*.tiktoken"]


def _stderr(message: str) -> None:
    print(f"vlcli: warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Answer:
    """One generated answer and what it cost."""

    text: str
    prompt_tokens: int
    generated_tokens: int
    visual_tokens: int
    timings: dict[str, float] = field(
        default_factory=dict
    )  # decode_s, preprocess_s, prefill_s, generate_s

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def pick_device(device: str, warn: Callable[[str], None]) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        warn("no CUDA GPU found: running on the CPU, which is slow (minutes per video)")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise UsageError(
            f"--device {device!r} is not a device: use auto, cuda, cuda:N or cpu"
        ) from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA GPU is available (use --device cpu)")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {device}: there are only {torch.cuda.device_count()} CUDA devices"
            )
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


def model_class(family: str) -> Any:
    import transformers

    classes = {
        "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
        "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
        "qwen3_vl": transformers.Qwen3VLForConditionalGeneration,
    }
    return classes[family]


class _TextStream:
    """Receives generated tokens from ``generate``; notes the first token's time, emits text.

    It implements transformers' streamer protocol (``put``, ``end``). ``generate`` puts the
    prompt first, then every new token. Text is decoded from all tokens so far and only the new
    part is emitted, held back while it ends inside a multi-byte character.
    """

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None] | None):
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.prompt_seen = False
        self.ids: list[int] = []
        self.emitted = ""
        self.first_token_at: float | None = None

    def _decode(self) -> str:
        return str(
            self.tokenizer.decode(
                self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.ids.extend(int(x) for x in value.reshape(-1).tolist())
        if self.on_text is not None:
            text = self._decode()
            if not text.endswith("\ufffd"):
                self._emit(text)

    def _emit(self, text: str) -> None:
        if (
            self.on_text is not None
            and text.startswith(self.emitted)
            and len(text) > len(self.emitted)
        ):
            self.on_text(text[len(self.emitted) :])
            self.emitted = text

    def end(self) -> None:
        self._emit(self._decode())


def locate_spec(model: str, warn: Callable[[str], None] = _stderr) -> tuple[str, ModelSpec]:
    """The model's local folder and what its own files say of it (family, constants, shapes)."""
    folder = locate_model(model, warn)
    try:
        spec = resolve_model(folder)
    except UsageError as exc:
        raise ModelError(f"{model}: {exc.message}") from None
    return folder, dataclasses.replace(spec, model=model)


class ModelRunner:
    """One loaded model: :meth:`prepare` builds a prompt's inputs, :meth:`ask` answers it.

    ``located`` (from :func:`locate_spec`) skips finding the model again when the caller has.
    Weights that cannot fit in the device's available memory stop it before loading
    (:class:`MemoryBudgetError`), unless ``force``.
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        attn: str = "sdpa",
        warn: Callable[[str], None] = _stderr,
        located: tuple[str, ModelSpec] | None = None,
        force: bool = False,
    ):
        self.warn = warn
        folder, self.spec = located if located is not None else locate_spec(model, warn)
        self.family = self.spec.family
        self.device = pick_device(device, warn)
        self.dtype: torch.dtype = pick_dtype(dtype, self.device)
        self.dtype_name = str(self.dtype).removeprefix("torch.")
        check_attention(attn, self.device, self.dtype)
        self.attn = attn
        check_weights_fit(
            self.spec,
            self.dtype_name,
            self.device.type,
            available_memory_bytes(self.device),
            force,
        )
        self.processor, self.model = self._load(folder)
        if self.family.name in REFERENCE_FAMILIES:
            use_reference_positions(self.model, tokens_per_second=self.family.tokens_per_second)

    def _load(self, folder: str) -> tuple[Any, Any]:
        from transformers import AutoProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        load: dict[str, Any] = {}
        if self.device.type == "cuda" and importlib.util.find_spec("accelerate") is not None:
            # Straight onto the GPU; without accelerate the weights pass through host memory.
            load["device_map"] = {"": str(self.device)}
        try:
            processor = AutoProcessor.from_pretrained(folder, trust_remote_code=False)
            model = model_class(self.family.name).from_pretrained(
                folder,
                dtype=self.dtype,
                attn_implementation=self.attn,
                trust_remote_code=False,
                use_safetensors=True,
                **load,
            )
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            reason = (
                str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            )
            raise ModelError(f"{self.spec.model}: cannot load the model ({reason})") from None
        model = model.to(self.device).eval()
        return processor, model

    def free_memory_bytes(self) -> int | None:
        """Free memory of the CUDA device (bytes); ``None`` on the CPU."""
        if self.device.type != "cuda":
            return None
        return available_memory_bytes(self.device)

    def prepare(
        self,
        media: Media,
        question: str,
        system: str | None = None,
        on_frames: Callable[[int, int], None] | None = None,
    ) -> tuple[dict[str, torch.Tensor], PrepareStats]:
        """The model inputs for one prompt (nothing generated), and what building them cost.

        ``on_frames(done, total)`` follows the decoding of the prompt's video frames.
        """
        return build_inputs(
            self.processor,
            self.family,
            media,
            question,
            system=system,
            dtype=self.dtype,
            device=self.device,
            on_frames=on_frames,
        )

    def _generation_config(self, max_new_tokens: int, temperature: float) -> Any:
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = max_new_tokens
        config.max_length = None
        if temperature > 0:
            config.do_sample = True
            config.temperature = temperature
            config.top_k = None  # the released configs' top_k=1 would make sampling greedy
            config.top_p = None
        else:
            config.do_sample = False
            config.temperature = None
            config.top_k = None
            config.top_p = None
        if config.pad_token_id is None:
            config.pad_token_id = self.processor.tokenizer.pad_token_id
        return config

    def ask(
        self,
        media: Media,
        question: str,
        *,
        system: str | None = None,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        on_text: Callable[[str], None] | None = None,
        on_frames: Callable[[int, int], None] | None = None,
    ) -> Answer:
        """Answer ``question`` about ``media`` (one user turn); stream the text to ``on_text``.

        ``on_frames(done, total)`` follows the decoding of the video frames, before any text.
        """
        if max_new_tokens < 1:
            raise UsageError("--max-new-tokens must be at least 1")
        if not temperature >= 0:  # also refuses nan
            raise UsageError("--temperature must be zero or more")
        inputs, stats = self.prepare(media, question, system, on_frames)
        stream = _TextStream(self.processor.tokenizer, on_text)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                generation_config=self._generation_config(max_new_tokens, temperature),
                streamer=stream,
            )
        generate_s = time.perf_counter() - started
        new_ids = output[0, stats.prompt_tokens :].tolist()
        text = self.processor.tokenizer.decode(
            new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        prefill_s = (
            (stream.first_token_at - started) if stream.first_token_at is not None else generate_s
        )
        return Answer(
            text=text,
            prompt_tokens=stats.prompt_tokens,
            generated_tokens=len(new_ids),
            visual_tokens=stats.visual_tokens,
            timings={
                "decode_s": round(stats.decode_s, 4),
                "preprocess_s": round(stats.preprocess_s, 4),
                "prefill_s": round(prefill_s, 4),
                "generate_s": round(generate_s, 4),
            },
        )
