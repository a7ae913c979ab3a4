"""The pieces of one prompt of ``vlcli ask``: the prompt, its fit, the answer's times mapped,
the record, evidence frames.

Times the model states count seconds from the first frame of the clip it was shown
(Qwen2/2.5-VL) and are moved to seconds of the source video here; Qwen3-VL is shown source
timestamps as text, so its times already are source seconds. Every run (one input or many:
records, resuming, decoding ahead, windows) is :mod:`vlcli.run.ask`, built from these pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlcli.backends import Backend, Prompt
from vlcli.errors import UsageError
from vlcli.outputs.files import check_not_input, png_bytes, write_owned
from vlcli.planning.plan import Plan, SamplingOptions, VideoPlan
from vlcli.planning.prompt import count_prompt_tokens
from vlcli.planning.tasks import asks_for_places, build_prompt
from vlcli.space.place import PlacedShape, place_shapes
from vlcli.space.read import read_shapes
from vlcli.times.axis import TimeAxis
from vlcli.times.format import format_clock
from vlcli.times.parse import bound_times, map_times, parse_times


@dataclass(frozen=True)
class Generation:
    """How the answer's tokens are generated."""

    max_new_tokens: int = 512
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if not 0 <= self.temperature < math.inf:  # also refuses nan and inf
            raise UsageError(
                f"--temperature must be zero or a finite positive number, got {self.temperature}"
            )


@dataclass(frozen=True)
class AskSettings:
    """What decides an answer, and nothing else: the record key of a run
    (:func:`vlcli.run.ask.settings_key`) is made of every field here, so an option that changes
    the answer belongs here and one that does not (where files go, the device) does not. The
    fields' names and nesting are the key's: renaming one would orphan every ledger written
    before (``tests/test_pipeline.py`` keeps a record of the earlier code that must resume)."""

    question: str
    task: str = "qa"
    system: str | None = None
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    generation: Generation = field(default_factory=Generation)
    window: tuple[float, float] | None = None  # --window and --overlap, in seconds
    think: bool | None = None  # --think / --no-think; None: the template's own (not in keys)


@dataclass
class AskResult:
    """One answered prompt: what ``--json`` prints and what the subtitles are made of.

    A video answered in windows has ``windows`` (one summary each) and ``span_windows`` (the
    window each of ``times`` came from, after the merge).
    """

    paths: list[str]
    plans: list[Plan]
    question: str
    answer: str
    times: list[
        Any
    ]  # vlcli.times.parse.TimeSpan, mapped to source seconds when one video was shown
    prompt_tokens: int
    generated_tokens: int
    model: str
    timings: dict[str, float]
    task: str = "qa"
    evidence: list[str] = field(default_factory=list)
    name: str = (
        ""  # file-name stem of this answer's outputs (subtitles, evidence), unique in the run
    )
    axes: tuple[TimeAxis | None, ...] = ()  # per video: the time axis its times went through
    key: str = ""  # the record's key (vlcli.outputs.ledger.placed_key)
    backend: dict[str, Any] = field(default_factory=dict)  # the backend's identity
    windows: list[dict[str, Any]] = field(default_factory=list)
    span_windows: list[int] = field(default_factory=list)
    subtitles: list[str] | None = None  # the subtitle files written, when any were asked for
    clips: list[str] | None = None  # the clips cut (or kept from an earlier run), with --clips
    places: list[PlacedShape] = field(default_factory=list)  # its boxes and points, in pixels
    crops: list[str] | None = None  # each box's region saved, with --crops
    reasoning: str | None = None  # a thinking model's reasoning, apart from its answer
    no_answer: str | None = None  # why there is no answer (the output ended in its reasoning)
    cached_tokens: int | None = None  # prompt tokens the server's prefix cache served, when said

    def to_dict(self) -> dict[str, Any]:
        times = [t.to_dict() for t in self.times]
        for t, w in zip(times, self.span_windows, strict=False):
            t["window"] = w
        d: dict[str, Any] = {
            "key": self.key,
            "status": "ok",
            "path": self.paths[0] if len(self.paths) == 1 else self.paths,
            "question": self.question,
            "task": self.task,
            **({} if self.reasoning is None else {"reasoning": self.reasoning}),
            "answer": self.answer,
            "times": times,
            "boxes": [p.to_dict() for p in self.places if p.kind == "box"],
            "points": [p.to_dict() for p in self.places if p.kind == "point"],
            "frames": sum(p.frames for p in self.plans if isinstance(p, VideoPlan)),
            "visual_tokens": sum(p.visual_tokens for p in self.plans),
            "prompt_tokens": self.prompt_tokens,
            **({"cached_tokens": self.cached_tokens} if self.cached_tokens is not None else {}),
            "generated_tokens": self.generated_tokens,
            "model": self.model,
            "timings": self.timings,
        }
        if self.backend:
            d["backend"] = self.backend
        if self.axes:
            d["time_axes"] = [a.to_dict() if a is not None else None for a in self.axes]
        if self.windows:
            d["windows"] = self.windows
        if self.evidence:
            d["evidence"] = self.evidence
        if self.subtitles is not None:
            d["subtitles"] = self.subtitles
        if self.clips is not None:
            d["clips"] = self.clips
        if self.crops is not None:
            d["crops"] = self.crops
        return d


def map_answer_times(
    answer: str,
    plans: list[Plan],
    axes: list[TimeAxis | None] | tuple[TimeAxis | None, ...],
    task: str = "qa",
) -> list[Any]:
    """Parse the times the answer states and move them to seconds of the source video.

    Every time goes through the time axis the backend reports for the video
    (:class:`~vlcli.times.axis.TimeAxis`): the positions the model was really given, and what each
    temporal patch showed. The result is clipped to the clip and flagged when it falls outside.
    The spans are left in the model's own seconds, put in order and flagged against the clip
    as the model counts it, when there are several videos (``--together``: nothing tells which
    one a time is about, as each video's seconds count from its own first frame; the longest
    bounds them) and when the backend could not vouch for the axis. A prompt of images alone
    has no time axis: a clock read off a photo ("10:10") is no time of the prompt, so none.
    """
    videos = [p for p in plans if isinstance(p, VideoPlan)]
    if not videos:
        return []
    ground = task == "ground"
    ranges = [_model_range(v) for v in videos]
    if len(videos) > 1:
        spans = parse_times(answer, assume_seconds=ground)
        return bound_times(spans, min(lo for lo, _ in ranges), max(hi for _, hi in ranges))
    axis = axes[0] if len(axes) == 1 else None
    lo, hi = ranges[0]
    # The clip's end in the model's seconds settles what "00:11:00" means (parse_times).
    spans = parse_times(answer, assume_seconds=ground, clip_duration_s=hi)
    if axis is None:
        return bound_times(spans, lo, hi)
    return map_times(
        spans,
        clip_start_s=axis.clip_start_s,
        clip_end_s=axis.clip_end_s,
        to_source=axis.source_seconds,
    )


def _model_range(video: VideoPlan) -> tuple[float, float]:
    """The clip as the model counts its seconds: from its first frame, or, for a model shown
    source timestamps (Qwen3-VL), the source seconds of its first frame and its end."""
    axis = video.time_axis()
    return axis.clip_start_s - axis.offset_s, axis.clip_end_s - axis.offset_s


def _evidence_name(stem: str, seconds: float) -> str:
    """``clip_00-01-02.345.png``: the source time to the millisecond, no ``:`` (Windows), rounded
    as the subtitles' cues are."""
    return f"{stem}_{format_clock(seconds, 3, sep='-')}.png"


def save_evidence(
    path: str,
    spans: list[Any],
    folder: str,
    stem: str | None = None,
    inputs: set[tuple[int, int]] | None = None,
) -> list[str]:
    """Save the frame shown at each stated time (start, and end of a range) as PNG files.

    Times are source seconds, each saved once; a span that lies outside the clip is skipped
    (its clamped time shows the clip's edge, not what the answer describes). Files are named
    after the input (``stem``, by default the file's name less its extension; it may hold
    sub-folders) and the time to the millisecond, so that two times never share a file. Each
    file is written whole or not at all, with the proof that vlcli wrote it
    (:func:`vlcli.outputs.files.write_owned`): a file of the same name that vlcli did not write,
    or that would replace an input (``inputs``: :func:`vlcli.outputs.files.file_ids`), is refused.
    """
    # The media layer, imported when evidence is saved (as in run.planned).
    from vlcli.media.frames import frames_at

    out = Path(folder)
    seconds: list[float] = []
    for span in spans:
        if not span.mapped or span.outside:
            continue
        for s in (span.source_start_s, span.source_end_s):
            if s not in seconds:
                seconds.append(s)
    if not seconds:
        return []
    stem = stem or Path(path).stem
    saved: list[str] = []
    for s, image in zip(seconds, frames_at(path, seconds), strict=True):
        target = out / _evidence_name(stem, s)
        if str(target) in saved:
            continue
        if inputs:
            check_not_input(target, inputs)
        write_owned(target, png_bytes(image), "evidence frame")
        saved.append(str(target))
    return saved


def make_prompt(paths: list[str], plans: list[Plan], settings: AskSettings) -> Any:
    """The :class:`~vlcli.backends.Prompt` of one prompt over ``paths``."""
    return Prompt(
        media=tuple(zip(paths, plans, strict=True)),
        text=build_prompt(
            settings.task, settings.question, any(isinstance(p, VideoPlan) for p in plans)
        ),
        system=settings.system,
        max_new_tokens=settings.generation.max_new_tokens,
        temperature=settings.generation.temperature,
        think=settings.think,
    )


def prompt_tokens(backend: Backend, prompt: Any) -> int:
    """The prompt's length for the fit check, counted as ``budget`` counts it (exact when the
    model's chat template and tokenizer are at hand)."""
    spec = backend.spec
    tokens, _exact = count_prompt_tokens(
        spec.local_path, spec.family, prompt.media, prompt.text, prompt.system, prompt.think,
        prompt.history,
    )  # fmt: skip
    return tokens


def no_answer(answer: Any, max_new_tokens: int) -> str | None:
    """Why an output that ended inside its reasoning has no answer; None when it has one."""
    if answer.reasoning_finished:
        return None
    if answer.generated_tokens >= max_new_tokens:
        return (
            f"the answer was cut off by --max-new-tokens ({max_new_tokens}) inside the model's "
            "reasoning: no answer (raise --max-new-tokens, or --no-think where the model has it)"
        )
    return "the model stopped inside its reasoning: no answer"


def result_of(
    answer: Any,
    paths: list[str],
    plans: list[Plan],
    settings: AskSettings,
    model: str,
    warn: Callable[[str], None] | None = None,
    name: str | None = None,
) -> AskResult:
    """An answer with its times parsed and mapped to source seconds (no files written): the
    answer's alone, not those of a thinking model's reasoning (set apart by the run)."""
    if warn is not None:
        for note in answer.notes:
            warn(note)
    times = map_answer_times(answer.text, plans, answer.axes, settings.task)
    videos = sum(isinstance(p, VideoPlan) for p in plans)
    if times and videos > 1 and warn is not None:
        warn(
            f"{videos} videos in one prompt: the answer's times are the model's own seconds, "
            "counted from the first frame of whichever video it means, and are not mapped to "
            "source seconds (ask about one video at a time to map them)"
        )
    return AskResult(
        paths=paths,
        plans=plans,
        question=settings.question,
        answer=answer.text,
        times=times,
        prompt_tokens=answer.prompt_tokens,
        generated_tokens=answer.generated_tokens,
        model=model,
        timings=answer.timings,
        task=settings.task,
        name=name or Path(paths[0]).stem,
        axes=answer.axes,
        places=place_shapes(
            read_shapes(answer.text, asks_for_places(settings.task)), plans, answer.axes
        ),
        reasoning=answer.reasoning,
        no_answer=no_answer(answer, settings.generation.max_new_tokens),
        cached_tokens=answer.cached_tokens,
    )


def evidence_video(result: AskResult) -> tuple[str, str | None] | None:
    """The one video whose frames are evidence for ``result``'s times, and the stem to use."""
    if not any(t.mapped for t in result.times):  # mapped: exactly one video
        return None
    videos = [
        p for p, pl in zip(result.paths, result.plans, strict=True) if isinstance(pl, VideoPlan)
    ]
    if len(videos) != 1:
        return None
    return videos[0], (result.name if videos[0] == result.paths[0] else None)
