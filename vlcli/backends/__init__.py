"""Inference backends: the one seam between vlcli's core and the engine that runs the model.

The core plans the frames, sizes and tokens (:mod:`vlcli.planning.plan`), decodes them
(:mod:`vlcli.media.probe`), and maps the answer's times through a :class:`~vlcli.times.axis.TimeAxis`. A
backend does the rest for one prompt, in two steps, so that the next prompt can be prepared while
the model answers this one:

1. :meth:`Backend.prepare` decodes the planned frames and turns them into what the engine takes
   (transformers: the processor's tensors; a server: encoded frames in a request);
2. :meth:`Backend.generate` runs the model and returns an :class:`Answer`, with the time axis of
   each video as the engine really placed it, or ``None`` for a video whose axis the backend
   cannot vouch for (its times are then left as the model stated them).

Before either, :meth:`Backend.check_fit` refuses a prompt that cannot fit (memory, context).
Everything engine-specific stays in the backend: out-of-memory handling, free-memory queries,
family quirks.

A backend is made cheaply (options checked, :meth:`Backend.identity` known) and does the heavy
part in :meth:`Backend.load` (weights, a server), which the run calls once it knows there is
work to do, while the first input is being decoded. ``concurrency`` says how many
:meth:`Backend.generate` calls may run at once (transformers: 1; a server: several requests in
flight); the run (:mod:`vlcli.run.pipeline`) keeps the records in input order whatever it is and
prepares at most ``concurrency + 1`` prompts ahead. :meth:`Backend.prepare` runs on another
thread than :meth:`Backend.generate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from vlcli.errors import UsageError
from vlcli.models.families import Family, ModelSpec
from vlcli.planning.plan import Media, Plan, SamplingOptions
from vlcli.planning.prompt import Turns
from vlcli.times.axis import TimeAxis

FrameProgress = Callable[[int, int], None]


def frame_counter(total: int, on_frames: FrameProgress | None) -> Callable[[int], None]:
    """What each chunk of each video reports its frames to: ``on_frames`` hears the prompt's
    frames done so far, of all its videos."""
    done = 0

    def chunk_done(frames: int) -> None:
        nonlocal done
        done += frames
        if on_frames is not None:
            on_frames(done, total)

    return chunk_done


def check_planned_for(media: Media, family: Family) -> None:
    """Refuse media planned for another family than the model's: the plan's sizes, times and
    prompt are that family's, so the answer would be to a prompt the plan never described."""
    for path, plan in media:
        if plan.family.name != family.name:
            raise UsageError(
                f"{path}: planned for {plan.family.name}, but the model is {family.name}"
            )


class TextSink(Protocol):
    """Where an answer's text goes, piece by piece, as the model generates it."""

    def __call__(self, piece: str) -> None: ...

    def discard(self) -> None:
        """The text so far is void: the answer starts again from nothing (a server's answer
        that broke off midway is asked for again)."""
        ...

    def waiting(self, message: str) -> None:
        """The answer waits for a server that is away (``waiting for the server (503 ...),
        40 s of 300``), so that a progress display says so rather than "prefill"; an empty
        message: the request is sent again."""
        ...


@dataclass(frozen=True)
class Prompt:
    """One prompt: every media item in one user turn, then ``text`` (the task's prompt)."""

    media: Media
    text: str
    system: str | None = None
    max_new_tokens: int = 512
    temperature: float = 0.0
    think: bool | None = None  # the template's enable_thinking (--think/--no-think); None: its own
    # more questions over these media follow: a backend may keep their prefill for them (and
    # a prompt over media whose prefill is kept continues from it, whatever this says)
    keep_media: bool = False
    history: Turns = ()  # the conversation before this question (vlcli chat): (question, answer)

    @property
    def plans(self) -> list[Plan]:
        return [plan for _, plan in self.media]


@dataclass(frozen=True)
class Answer:
    """One generated answer, what it cost, and the time axis each video was given.

    ``axes`` has one entry per video of the prompt, in order: the axis the engine used, or None
    when the backend cannot vouch for it. ``timings`` holds ``decode_s`` and ``preprocess_s``
    (preparing), ``prefill_s`` (to the first token), ``decode_tokens_s`` (the rest) and
    ``generate_s`` (prefill and decoding together). A thinking model's ``text`` is its whole
    output until the run sets its ``reasoning`` apart (:mod:`vlcli.planning.thinking`):
    ``text`` is then the answer alone, empty when the output ended inside the reasoning
    (``reasoning_finished`` False).
    """

    text: str
    prompt_tokens: int
    generated_tokens: int
    visual_tokens: int
    timings: dict[str, float] = field(default_factory=dict)
    axes: tuple[TimeAxis | None, ...] = ()
    notes: tuple[str, ...] = ()  # what the user should know of this answer (an unvouched axis)
    reasoning: str | None = None
    reasoning_finished: bool = True
    cached_tokens: int | None = None  # prompt tokens a server's prefix cache served, when said

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["axes"] = [a.to_dict() if a is not None else None for a in self.axes]
        return d


def timings(
    decode_s: float, preprocess_s: float, prefill_s: float, generate_s: float
) -> dict[str, float]:
    """An answer's ``timings``: preparing (decoding, preprocessing), the prefill (to the first
    token), the tokens after it, and generating (both), in seconds to the 0.1 ms."""
    return {
        "decode_s": round(decode_s, 4),
        "preprocess_s": round(preprocess_s, 4),
        "prefill_s": round(prefill_s, 4),
        "decode_tokens_s": round(generate_s - prefill_s, 4),
        "generate_s": round(generate_s, 4),
    }


class Prepared(Protocol):
    """A prompt made ready for one backend (opaque to the core but for these figures)."""

    @property
    def prompt(self) -> Prompt: ...

    @property
    def prompt_tokens(self) -> int:
        """The exact prompt length, as vlcli built it."""
        ...

    @property
    def decode_s(self) -> float: ...

    @property
    def preprocess_s(self) -> float: ...


class Backend(Protocol):
    """What the core asks of an inference engine (see the module docstring)."""

    name: str  # "transformers", "vllm"
    spec: ModelSpec  # the model's family, constants and shapes, as planned for
    concurrency: int  # how many generate calls may run at once (transformers: 1)

    def identity(self) -> dict[str, Any]:
        """What decides this backend's answers besides the prompt (for records and keys).

        Known before :meth:`load`, so that a resumed run can tell what is done without loading.
        """
        ...

    def load(self) -> None:
        """Get ready to answer (load the weights, start or reach a server); once, idempotent."""
        ...

    def check_fit(self, prompt: Prompt, prompt_tokens: int, options: SamplingOptions) -> None:
        """Raise :class:`~vlcli.errors.MemoryBudgetError` when the prompt cannot fit."""
        ...

    def prepare(self, prompt: Prompt, on_frames: FrameProgress | None = None) -> Prepared:
        """Decode and encode the prompt's media; ``on_frames(done, total)`` follows decoding."""
        ...

    def reprompt(self, prepared: Prepared, prompt: Prompt) -> Prepared:
        """``prompt`` (the same media as ``prepared``'s, another question) made ready from
        ``prepared``'s media, nothing decoded again: an input asked several questions is
        decoded and encoded once."""
        ...

    def generate(self, prepared: Prepared, on_text: TextSink | None = None) -> Answer:
        """Answer a prepared prompt, streaming the text to ``on_text``."""
        ...

    def close(self) -> None:
        """Release what the backend holds (a model, a server it started)."""
        ...
