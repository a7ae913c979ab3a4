"""The transformers backend: the model loaded once in this process, answering one prompt at a time.

:class:`TransformersBackend` puts together the pieces of this package, one role each: the device,
dtype and attention checked against this machine (:mod:`~vlcli.backends.transformers.device`);
the located model (:mod:`vlcli.models.locate`) loaded with ``trust_remote_code=False`` and
safetensors only (:mod:`~vlcli.backends.transformers.loading`); a prompt's inputs, every media
item in one user turn and then the text, built chunk by chunk
(:mod:`~vlcli.backends.transformers.model_inputs`); the answer generated and streamed
(:mod:`~vlcli.backends.transformers.generation`); and each video's
:class:`~vlcli.times.axis.TimeAxis` read back as the model was given it
(:mod:`~vlcli.backends.transformers.axes`). Qwen2-VL / Qwen2.5-VL models are made to use the
reference mRoPE positions (:mod:`vlcli.backends.transformers.positions`), not the ones
transformers 5.x computes, which place the text after a video inside the video's temporal range.
Qwen3-VL keeps transformers' positions (its per-frame blocks have no such problem) and is told
the time as text, which vlcli writes itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vlcli.backends import Answer, FrameProgress, Prompt, TextSink, timings
from vlcli.backends.transformers.axes import given_axes
from vlcli.backends.transformers.device import (
    available_memory_bytes,
    check_attention,
    out_of_memory_reported,
    pick_device,
    pick_dtype,
    release_cuda_memory,
)
from vlcli.backends.transformers.generation import generate_text, generation_config
from vlcli.backends.transformers.loading import load_model, load_processor, snapshot_revision
from vlcli.backends.transformers.model_inputs import PrepareStats, build_inputs, with_question
from vlcli.backends.transformers.positions import use_reference_positions
from vlcli.backends.transformers.prefix import PrefixCache
from vlcli.errors import MemoryBudgetError, UsageError, warn_on_stderr
from vlcli.models.locate import LocatedModel, locate_spec
from vlcli.planning.context import context_problem, fit_hint
from vlcli.planning.memory import GIB, check_weights_fit, estimate_memory
from vlcli.planning.plan import Media, SamplingOptions
from vlcli.planning.prompt import Turns


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
        warn: Callable[[str], None] = warn_on_stderr,
        located: LocatedModel | None = None,
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
        self.prefix = PrefixCache()  # an input's media prefilled once for its questions
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
                self.processor = load_processor(self.family, self.folder, self.spec.model)
            return self.processor

    def _load(self, folder: str) -> tuple[Any, Any]:
        processor = self._processor_ready()
        model = load_model(self.family, folder, self.spec.model, self.device, self.dtype, self.attn)
        return processor, model

    # ------------------------------------------------------------ the Backend protocol

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.spec.model,
            "revision": snapshot_revision(self.folder),
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
            questions=2 if prompt.keep_media else 1,
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
        with out_of_memory_reported():
            inputs, stats = self.inputs_for(list(prompt.media), prompt.text, prompt.system,
                                            on_frames, prompt.think, prompt.history)  # fmt: skip
        return PreparedInputs(prompt, inputs, stats)

    def reprompt(self, prepared: Any, prompt: Prompt) -> PreparedInputs:
        """Another question over ``prepared``'s media: its pixel rows kept, the text made again."""
        with out_of_memory_reported():
            inputs, stats = with_question(
                self._processor_ready(), self.family, prepared.inputs, prompt, self.device
            )
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
        tokenizer = self.processor.tokenizer
        config = generation_config(self.model, tokenizer, prompt.max_new_tokens, prompt.temperature)
        with out_of_memory_reported():  # from the media's kept prefill, or one kept now (.prefix)
            inputs, kept_notes = self.prefix.continuation(
                self.model, tokenizer, prepared.inputs, prompt.keep_media
            )
        out = generate_text(self.model, tokenizer, inputs, stats.prompt_tokens, config, on_text)
        if prompt.keep_media:
            self.prefix.grown(inputs, out.ids)  # a follow-up continues from this answer
        axes, notes = given_axes(self.model, self.family, prompt, prepared.inputs["input_ids"])
        notes += kept_notes
        return Answer(
            text=out.text,
            prompt_tokens=stats.prompt_tokens,
            generated_tokens=out.new_tokens,
            visual_tokens=stats.visual_tokens,
            timings=timings(stats.decode_s, stats.preprocess_s, out.prefill_s, out.generate_s),
            axes=axes,
            notes=notes,
        )

    def close(self) -> None:
        self.prefix.release()
        self.model = None
        release_cuda_memory()

    # ------------------------------------------------------------ the rest

    def inputs_for(
        self,
        media: Media,
        question: str,
        system: str | None = None,
        on_frames: FrameProgress | None = None,
        think: bool | None = None,
        history: Turns = (),
    ) -> tuple[dict[str, torch.Tensor], PrepareStats]:
        """The model inputs for one prompt, and what building them cost.

        ``on_frames(done, total)`` follows the decoding of the prompt's video frames; ``think``
        is the template's ``enable_thinking`` (None: the template's own default).
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
            think=think,
            history=history,
        )
