"""The work behind ``vlcli ask``: check the budget, run the model, map the answer's times.

The model is loaded once for the whole run. Each input gets its own prompt and record, unless
``together`` puts them all into one prompt. Times the model states count seconds from the first
frame of the clip it was shown (Qwen2/2.5-VL) and are moved to seconds of the source video here;
Qwen3-VL is shown source timestamps as text, so its times already are source seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import ExitStatus, MemoryBudgetError, VlcliError
from .families import ModelSpec
from .memory import GIB, MemoryEstimate, estimate_memory
from .plan import ImagePlan, SamplingOptions, VideoPlan, estimate_prompt_tokens


@dataclass(frozen=True)
class AskSettings:
    question: str
    task: str = "qa"
    system: str | None = None
    max_new_tokens: int = 512
    temperature: float = 0.0
    force: bool = False
    evidence_dir: str | None = None


@dataclass
class AskResult:
    """One answered prompt: what ``--json`` prints and what the subtitles are made of."""

    paths: list[str]
    plans: list[VideoPlan | ImagePlan]
    question: str
    answer: str
    times: list[Any]  # vlcli.times.TimeSpan, mapped to source seconds when one video was shown
    prompt_tokens: int
    generated_tokens: int
    model: str
    timings: dict[str, float]
    task: str = "qa"
    evidence: list[str] = field(default_factory=list)
    name: str = (
        ""  # file-name stem of this answer's outputs (subtitles, evidence), unique in the run
    )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.paths[0] if len(self.paths) == 1 else self.paths,
            "question": self.question,
            "task": self.task,
            "answer": self.answer,
            "times": [t.to_dict() for t in self.times],
            "frames": sum(p.frames for p in self.plans if isinstance(p, VideoPlan)),
            "visual_tokens": sum(p.visual_tokens for p in self.plans),
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "model": self.model,
            "timings": self.timings,
        }
        if self.evidence:
            d["evidence"] = self.evidence
        return d


def _fit_hint(plans: list[VideoPlan | ImagePlan], options: SamplingOptions) -> str:
    tokens = sum(p.visual_tokens for p in plans)
    if options.nframes is not None:
        fewer = f"lower --nframes (now {options.nframes})"
    else:
        fps = options.fps if options.fps is not None else 2.0
        fewer = f"lower --fps (now {fps:g}, e.g. --fps {fps / 2:g})"
    return (
        f"{tokens} visual tokens; {fewer}, --max-pixels or --total-pixels, "
        "cut the clip with --start/--end, or pass --force"
    )


def check_memory(
    spec: ModelSpec,
    plans: list[VideoPlan | ImagePlan],
    prompt_tokens: int,
    settings: AskSettings,
    options: SamplingOptions,
    free_bytes: int | None,
    dtype: str,
) -> MemoryEstimate | None:
    """Stop before decoding when the prompt cannot fit in the free device memory (weights loaded)."""
    est = estimate_memory(spec, plans, prompt_tokens, settings.max_new_tokens, dtype)
    if est is None or free_bytes is None or settings.force:
        return est
    need = est.total_bytes - est.weights_bytes  # the weights are already on the device
    if need > free_bytes:
        raise MemoryBudgetError(
            f"this prompt needs about {need / GIB:.1f} GiB beyond the weights and the GPU has "
            f"{free_bytes / GIB:.1f} GiB free: {_fit_hint(plans, options)}"
        )
    return est


def map_answer_times(
    answer: str, plans: list[VideoPlan | ImagePlan], family: str, task: str = "qa"
) -> list[Any]:
    """Parse the times the answer states and move them to seconds of the source video.

    Qwen2/2.5-VL count seconds from the first frame of the clip they were shown: a stated second
    goes through the plan's patch table (:meth:`VideoPlan.source_seconds`). Qwen3-VL was shown
    source timestamps as text, so its seconds are source seconds already. Either way the result
    is clipped to the clip and flagged when it falls outside. With no video there is no clip,
    and with several (``--together``) nothing tells which one a time is about (each video's
    seconds count from its own first frame): the spans are returned unmapped.
    """
    from .times import map_times, parse_times

    spans = parse_times(answer, assume_seconds=(task == "ground"))
    videos = [p for p in plans if isinstance(p, VideoPlan)]
    if not spans or len(videos) != 1:
        return spans
    first = videos[0]
    end = first.clip_end_s + 1.0 / first.source_fps  # the last frame is shown for one frame time
    if family == "qwen3_vl":
        return map_times(spans, clip_start_s=first.clip_start_s, clip_end_s=end, offset_s=0.0)
    return map_times(
        spans, clip_start_s=first.clip_start_s, clip_end_s=end, to_source=first.source_seconds
    )


def _evidence_name(stem: str, seconds: float) -> str:
    """``clip_00-01-02.345.png``: the source time to the millisecond, no ``:`` (Windows)."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{stem}_{hours:02d}-{minutes:02d}-{secs:02d}.{ms:03d}.png"


def output_names(paths: list[str]) -> list[str]:
    """A file-name stem for the outputs of each path (subtitles, evidence), unique in the run.

    The input's name less its extension; a later input whose stem is taken (``a/clip.mp4`` and
    ``b/clip.mp4``, or ``clip.mp4`` and ``clip.mov``) gets ``clip-2``, ``clip-3``..., so that one
    answer's files never overwrite another's. Compared without case, for file systems that
    ignore it.
    """
    names: list[str] = []
    used: set[str] = set()
    for path in paths:
        stem = Path(path).stem or "input"
        name, k = stem, 2
        while name.lower() in used:
            name, k = f"{stem}-{k}", k + 1
        used.add(name.lower())
        names.append(name)
    return names


def save_evidence(path: str, spans: list[Any], folder: str, stem: str | None = None) -> list[str]:
    """Save the frame shown at each stated time (start, and end of a range) as PNG files.

    Times are source seconds, each saved once; a span that lies outside the clip is skipped
    (its clamped time shows the clip's edge, not what the answer describes). Files are named
    after the input (``stem``, by default the file's name less its extension) and the time to
    the millisecond, so that two times never share a file.
    """
    from .media import frames_at

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
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or Path(path).stem
    saved: list[str] = []
    for s, image in zip(seconds, frames_at(path, seconds), strict=True):
        target = out / _evidence_name(stem, s)
        if str(target) in saved:
            continue
        image.save(target)
        saved.append(str(target))
    return saved


def ask_one(
    runner: Any,
    paths: list[str],
    plans: list[VideoPlan | ImagePlan],
    settings: AskSettings,
    options: SamplingOptions,
    on_text: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    name: str | None = None,
    on_frames: Callable[[int, int], None] | None = None,
) -> AskResult:
    """One prompt over ``paths`` (one input, or all of them with --together).

    The memory check runs before anything is decoded. Saving evidence frames is an extra: when
    it fails, ``warn`` says so and the answer is still returned. ``name`` is the stem of the
    answer's output files (see :func:`output_names`; by default the first input's).
    """
    from .prompts import build_prompt

    prompt = build_prompt(settings.task, settings.question)
    tokens = estimate_prompt_tokens(plans, prompt, settings.system)
    check_memory(
        runner.spec, plans, tokens, settings, options, runner.free_memory_bytes(), runner.dtype_name
    )
    try:
        answer = runner.ask(
            list(zip(paths, plans, strict=True)),
            prompt,
            system=settings.system,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            on_text=on_text,
            on_frames=on_frames,
        )
    except Exception as exc:  # CUDA out of memory is reported like a failed budget check
        if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
            _release_cuda_memory()  # so that the next input of the run has the memory back
            raise MemoryBudgetError(
                f"the GPU ran out of memory: {_fit_hint(plans, options)}"
            ) from exc
        raise
    times = map_answer_times(answer.text, plans, runner.spec.family.name, settings.task)
    videos = sum(isinstance(p, VideoPlan) for p in plans)
    if times and videos > 1 and warn is not None:
        warn(
            f"{videos} videos in one prompt: the answer's times are the model's own seconds, "
            "counted from the first frame of whichever video it means, and are not mapped to "
            "source seconds (ask about one video at a time to map them)"
        )
    result = AskResult(
        paths=paths,
        plans=plans,
        question=settings.question,
        answer=answer.text,
        times=times,
        prompt_tokens=answer.prompt_tokens,
        generated_tokens=answer.generated_tokens,
        model=runner.spec.model,
        timings=answer.timings,
        task=settings.task,
        name=name or Path(paths[0]).stem,
    )
    if settings.evidence_dir and any(t.mapped for t in times):  # mapped: exactly one video
        (video,) = [p for p, pl in zip(paths, plans, strict=True) if isinstance(pl, VideoPlan)]
        try:
            stem = result.name if video == paths[0] else None
            result.evidence = save_evidence(video, times, settings.evidence_dir, stem)
        except (VlcliError, OSError) as exc:
            if warn is not None:
                warn(f"{video}: evidence frames not saved: {exc}")
    return result


class AskView(Protocol):
    """What :func:`answer_all` reports to (``vlcli.render.AskOutput`` prints it)."""

    def start(self, n: int, total: int, paths: list[str]) -> Callable[[str], None] | None: ...
    def decoding(self, done: int, total: int) -> None: ...
    def result(self, result: AskResult) -> None: ...
    def failure(self, paths: list[str], exc: VlcliError) -> None: ...
    def warn(self, message: str) -> None: ...


def answer_all(
    runner: Any,
    groups: list[list[tuple[str, Any]]],
    settings: AskSettings,
    options: SamplingOptions,
    view: AskView,
) -> ExitStatus | None:
    """Answer each group of ``(path, plan)`` (one input each, or all together) with one model.

    An input that does not fit in memory or cannot be decoded is reported and the others still
    run; the worst such status is returned (None when every group was answered).
    """
    worst: ExitStatus | None = None
    names = output_names([group[0][0] for group in groups])
    for n, group in enumerate(groups, 1):
        paths = [p for p, _ in group]
        stream = view.start(n, len(groups), paths)
        try:
            try:
                result = ask_one(
                    runner,
                    paths,
                    [plan for _, plan in group],
                    settings,
                    options,
                    on_text=stream,
                    warn=view.warn,
                    name=names[n - 1],
                    on_frames=view.decoding,
                )
            finally:
                view.decoding(0, 0)  # a decoding line a failure left is wiped before any message
        except VlcliError as exc:
            if exc.status not in (ExitStatus.INPUT, ExitStatus.MEMORY):
                raise
            worst = max(worst or exc.status, exc.status)
            view.failure(paths, exc)
            continue
        view.result(result)
    return worst


def _release_cuda_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
