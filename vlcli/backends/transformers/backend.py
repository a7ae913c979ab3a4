"""The transformers backend: the model loaded once in this process, answering one prompt at a time.

This is the only vlcli module that imports transformers. :class:`TransformersBackend` loads a
located model (:mod:`vlcli.models.locate`) with ``trust_remote_code=False`` and safetensors only; every
media item of a prompt goes into one user turn, then the text. The inputs are built chunk by chunk
(:mod:`vlcli.backends.transformers.model_inputs`), and Qwen2-VL / Qwen2.5-VL models are made to use the reference mRoPE
positions (:mod:`vlcli.backends.transformers.positions`), not the ones transformers 5.x computes, which place the text
after a video inside the video's temporal range. The positions the model was really given are
read back after each prompt and reported as each video's :class:`~vlcli.times.axis.TimeAxis`.
Qwen3-VL keeps transformers' positions (its per-frame blocks have no such problem) and is told
the time as text, which vlcli writes itself.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vlcli.backends import Answer, FrameProgress, Prompt, TextSink, timings
from vlcli.backends.transformers.model_inputs import PrepareStats, build_inputs
from vlcli.backends.transformers.positions import recorded_video_axes, use_reference_positions
from vlcli.errors import (
    DeviceOutOfMemory,
    ExitStatus,
    MemoryBudgetError,
    ModelError,
    UsageError,
    VlcliError,
)
from vlcli.models.families import Family, ModelSpec
from vlcli.models.locate import locate_spec
from vlcli.planning.memory import GIB, canonical_dtype, check_weights_fit, estimate_memory
from vlcli.planning.plan import ImagePlan, SamplingOptions, VideoPlan
from vlcli.times.axis import TimeAxis

ATTENTION = ("sdpa", "flash_attention_2", "eager")


def _stderr(message: str) -> None:
    print(f"vlcli: warning: {message}", file=sys.stderr)


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


_IMPORT_LOCK = threading.Lock()


def _import_transformers(family: Family) -> tuple[Any, Any]:
    """``AutoProcessor`` and the model class, imported once, by one thread at a time.

    transformers resolves its names lazily and that is not thread-safe: the worker that
    prepares the first input and the thread that loads the model would otherwise import it
    at once ("partially initialized module").
    """
    with _IMPORT_LOCK:
        from transformers import AutoProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        return AutoProcessor, model_class(family)


def model_class(family: Family) -> Any:
    import transformers

    return getattr(transformers, family.transformers_class)


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


@dataclass(frozen=True)
class PreparedInputs:
    """A prompt's model inputs, built and on the model's device."""

    prompt: Prompt
    inputs: dict[str, torch.Tensor]
    stats: PrepareStats

    @property
    def prompt_tokens(self) -> int:
        return self.stats.prompt_tokens

    @property
    def decode_s(self) -> float:
        return self.stats.decode_s

    @property
    def preprocess_s(self) -> float:
        return self.stats.preprocess_s


def _is_out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


class TransformersBackend:
    """One model loaded with transformers (see the module docstring).

    ``located`` (from :func:`vlcli.models.locate.locate_spec`) skips finding the model again when the
    caller has. Weights that cannot fit in the device's available memory stop it before loading
    (:class:`MemoryBudgetError`), unless ``force``. With ``load=False`` only the options are
    checked: the processor is loaded by the first :meth:`prepare` and the model by :meth:`load`
    (or the first :meth:`generate`), so that a run can decode its first input meanwhile.
    """

    name = "transformers"
    concurrency = 1  # one model in this process answers one prompt at a time

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
        load: bool = True,
    ):
        self.warn = warn
        self.folder, self.spec = located if located is not None else locate_spec(model, warn)
        self.family = self.spec.family
        self.device = pick_device(device, warn)
        self.dtype: torch.dtype = pick_dtype(dtype, self.device)
        self.dtype_name = str(self.dtype).removeprefix("torch.")
        check_attention(attn, self.device, self.dtype)
        self.attn = attn
        self.force = force
        check_weights_fit(
            self.spec,
            self.dtype_name,
            self.device.type,
            available_memory_bytes(self.device),
            force,
        )
        self.processor: Any = None
        self.model: Any = None
        self._model_lock = threading.Lock()
        self._processor_lock = threading.Lock()
        if load:
            self.load()

    def load(self) -> None:
        """Load the processor and the model (once; later calls return at once)."""
        with self._model_lock:
            if self.model is not None:
                return
            self.processor, self.model = self._load(self.folder)
            if self.family.reference_positions:
                use_reference_positions(self.model, tokens_per_second=self.family.tokens_per_second)

    def _processor_ready(self) -> Any:
        with self._processor_lock:
            if self.processor is None:
                auto_processor, _ = _import_transformers(self.family)
                try:
                    self.processor = auto_processor.from_pretrained(
                        self.folder, trust_remote_code=False
                    )
                except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
                    raise self._cannot_load(exc) from None
            return self.processor

    def _cannot_load(self, exc: BaseException) -> ModelError:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if type(exc).__name__ == "SafetensorError":
            reason = f"a weights file is corrupt or truncated: {reason}"
        return ModelError(f"{self.spec.model}: cannot load the model ({reason})")

    def _load(self, folder: str) -> tuple[Any, Any]:
        _, model_cls = _import_transformers(self.family)
        load: dict[str, Any] = {}
        if self.device.type == "cuda" and importlib.util.find_spec("accelerate") is not None:
            # Straight onto the GPU; without accelerate the weights pass through host memory.
            load["device_map"] = {"": str(self.device)}
        processor = self._processor_ready()
        try:
            model = model_cls.from_pretrained(
                folder,
                dtype=self.dtype,
                attn_implementation=self.attn,
                trust_remote_code=False,
                use_safetensors=True,
                **load,
            )
        except Exception as exc:  # OSError, ValueError, safetensors' own error...: the files
            raise self._cannot_load(exc) from None
        model = model.to(self.device).eval()
        return processor, model

    # ------------------------------------------------------------ the Backend protocol

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.spec.model,
            "revision": _snapshot_revision(self.folder),
            "dtype": self.dtype_name,
            "attn": self.attn,
        }

    def free_memory_bytes(self) -> int | None:
        """Free memory of the CUDA device (bytes); ``None`` on the CPU."""
        if self.device.type != "cuda":
            return None
        return available_memory_bytes(self.device)

    def check_fit(self, prompt: Prompt, prompt_tokens: int, options: SamplingOptions) -> None:
        """Stop before decoding a prompt longer than the model's context, or one that cannot fit
        in the free GPU memory beside the weights (the estimate for this ``--attn``); ``--force``
        skips both."""
        from vlcli.planning.context import context_problem, fit_hint

        if self.force:
            return
        problem = context_problem(
            self.spec, prompt.plans, options, prompt_tokens, prompt.max_new_tokens
        )
        if problem is not None:
            raise MemoryBudgetError(f"{problem}; or pass --force")
        est = estimate_memory(
            self.spec,
            prompt.plans,
            prompt_tokens,
            prompt.max_new_tokens,
            self.dtype_name,
            self.attn,
        )
        free = self.free_memory_bytes()
        if est is None or free is None:
            return
        need = est.total_bytes - est.weights_bytes  # the weights are already on the device
        if need > free:
            raise MemoryBudgetError(
                f"this prompt needs about {need / GIB:.1f} GiB beyond the weights and the GPU has "
                f"{free / GIB:.1f} GiB free: {fit_hint(prompt.plans, options)}"
            )

    def prepare(self, prompt: Prompt, on_frames: FrameProgress | None = None) -> PreparedInputs:
        """The model inputs for one prompt (nothing generated), and what building them cost."""
        self._processor_ready()
        try:
            inputs, stats = self.inputs_for(
                list(prompt.media), prompt.text, prompt.system, on_frames
            )
        except Exception as exc:
            if _is_out_of_memory(exc):
                _release_cuda_memory()
                raise DeviceOutOfMemory("the GPU ran out of memory") from exc
            raise
        return PreparedInputs(prompt, inputs, stats)

    def generate(self, prepared: Any, on_text: TextSink | None = None) -> Answer:
        """Answer a prepared prompt; stream the text to ``on_text``."""
        prompt: Prompt = prepared.prompt
        if prompt.max_new_tokens < 1:
            raise UsageError("--max-new-tokens must be at least 1")
        if not prompt.temperature >= 0:  # also refuses nan
            raise UsageError("--temperature must be zero or more")
        self.load()
        stats: PrepareStats = prepared.stats
        stream = _TextStream(self.processor.tokenizer, on_text)
        config = self._generation_config(prompt.max_new_tokens, prompt.temperature)
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                output = self.model.generate(
                    **prepared.inputs, generation_config=config, streamer=stream
                )
        except Exception as exc:  # CUDA out of memory is reported like a failed budget check
            if _is_out_of_memory(exc):
                _release_cuda_memory()  # so that the next input of the run has the memory back
                raise DeviceOutOfMemory("the GPU ran out of memory") from exc
            raise
        generate_s = time.perf_counter() - started
        new_ids = output[0, stats.prompt_tokens :].tolist()
        text = self.processor.tokenizer.decode(
            new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        prefill_s = (
            (stream.first_token_at - started) if stream.first_token_at is not None else generate_s
        )
        axes = self._axes(prompt, prepared.inputs)
        notes = (
            (
                "the positions the model was given could not be read back: the answer's times are "
                "left as the model stated them",
            )
            if any(axis is None for axis in axes)
            else ()
        )
        return Answer(
            text=text,
            prompt_tokens=stats.prompt_tokens,
            generated_tokens=len(new_ids),
            visual_tokens=stats.visual_tokens,
            timings=timings(stats.decode_s, stats.preprocess_s, prefill_s, generate_s),
            axes=axes,
            notes=notes,
        )

    def close(self) -> None:
        self.model = None
        _release_cuda_memory()

    # ------------------------------------------------------------ the rest

    def _axes(self, prompt: Prompt, inputs: dict[str, torch.Tensor]) -> tuple[TimeAxis | None, ...]:
        """Each video's time axis as the model was given it.

        Qwen2/2.5-VL: the temporal positions the hooked ``get_rope_index`` computed for this
        prompt, read back per temporal patch. Qwen3-VL: the timestamps vlcli wrote into the text.
        A video whose positions were not recorded (the hook did not run) gets None.
        """
        videos = [p for p in prompt.plans if isinstance(p, VideoPlan)]
        if not self.family.reference_positions:
            return tuple(p.time_axis() for p in videos)
        recorded = recorded_video_axes(
            self.model,
            inputs["input_ids"],
            [p.grid_thw for p in videos],
            self.family.spatial_merge_size,
        )
        if recorded is None:
            return tuple(None for _ in videos)
        axes: list[TimeAxis | None] = []
        for plan, (positions, text_after) in zip(videos, recorded, strict=True):
            planned = plan.time_axis()
            axes.append(
                TimeAxis(
                    encoding=planned.encoding,
                    positions=tuple(positions),
                    second_per_grid_t=planned.second_per_grid_t,
                    tokens_per_second=planned.tokens_per_second,
                    patch_times_s=planned.patch_times_s,
                    clip_start_s=planned.clip_start_s,
                    clip_end_s=planned.clip_end_s,
                    engine="reference",
                    text_after=text_after,
                )
            )
        return tuple(axes)

    def inputs_for(
        self,
        media: list[tuple[str, VideoPlan | ImagePlan]],
        question: str,
        system: str | None = None,
        on_frames: FrameProgress | None = None,
    ) -> tuple[dict[str, torch.Tensor], PrepareStats]:
        """The model inputs for one prompt, and what building them cost.

        ``on_frames(done, total)`` follows the decoding of the prompt's video frames.
        """
        return build_inputs(
            self._processor_ready(),
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


def _snapshot_revision(folder: str) -> str | None:
    """The commit of a Hugging Face cache snapshot (its folder's name); None for other folders."""
    path = Path(folder).resolve()
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.name
    return None


def _release_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
