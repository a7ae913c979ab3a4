"""The work behind ``vlcli ask``: check the budget, run the model, map the answer's times.

The model is loaded once for the whole run. Each input gets its own prompt and record, unless
``together`` puts them all into one prompt. Times the model states count seconds from the first
frame of the clip it was shown (Qwen2/2.5-VL) and are moved to seconds of the source video here;
Qwen3-VL is shown source timestamps as text, so its times already are source seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import DeviceOutOfMemory, ExitStatus, MemoryBudgetError, UsageError, VlcliError
from .plan import ImagePlan, SamplingOptions, VideoPlan
from .prompt_text import count_prompt_tokens
from .timeaxis import TimeAxis

if TYPE_CHECKING:
    from .backends import Backend


@dataclass(frozen=True)
class AskSettings:
    question: str
    task: str = "qa"
    system: str | None = None
    max_new_tokens: int = 512
    temperature: float = 0.0
    force: bool = False
    evidence_dir: str | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if not 0 <= self.temperature < math.inf:  # also refuses nan and inf
            raise UsageError(
                f"--temperature must be zero or a finite positive number, got {self.temperature}"
            )


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
    axes: tuple[TimeAxis | None, ...] = ()  # per video: the time axis its times went through

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
        if self.axes:
            d["time_axes"] = [a.to_dict() if a is not None else None for a in self.axes]
        if self.evidence:
            d["evidence"] = self.evidence
        return d


def fit_hint(plans: list[VideoPlan | ImagePlan], options: SamplingOptions) -> str:
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


def map_answer_times(
    answer: str,
    plans: list[VideoPlan | ImagePlan],
    axes: list[TimeAxis | None] | tuple[TimeAxis | None, ...],
    task: str = "qa",
) -> list[Any]:
    """Parse the times the answer states and move them to seconds of the source video.

    Every time goes through the time axis the backend reports for the video
    (:class:`~vlcli.timeaxis.TimeAxis`): the positions the model was really given, and what each
    temporal patch showed. The result is clipped to the clip and flagged when it falls outside.
    The spans are returned unmapped (the model's own seconds) when there is no video, when there
    are several (``--together``: nothing tells which one a time is about, as each video's
    seconds count from its own first frame), and when the backend could not vouch for the axis.
    """
    from .times import map_times, parse_times

    videos = [p for p in plans if isinstance(p, VideoPlan)]
    if len(videos) != 1:
        return parse_times(answer, assume_seconds=(task == "ground"))
    video = videos[0]
    axis = axes[0] if len(axes) == 1 else None
    end = video.clip_end_s + 1.0 / video.source_fps  # the last frame is shown for one frame time
    # The clip's length in the model's seconds settles what "00:11:00" means (parse_times).
    length = end if video.family == "qwen3_vl" else end - video.clip_start_s  # Qwen3: source s
    spans = parse_times(answer, assume_seconds=(task == "ground"), clip_duration_s=length)
    if not spans or axis is None:
        return spans
    return map_times(
        spans,
        clip_start_s=axis.clip_start_s,
        clip_end_s=axis.clip_end_s,
        to_source=axis.source_seconds,
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
    backend: Backend,
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

    The backend's fit check runs before anything is decoded. Saving evidence frames is an extra:
    when it fails, ``warn`` says so and the answer is still returned. ``name`` is the stem of the
    answer's output files (see :func:`output_names`; by default the first input's).
    """
    from .backends import Prompt
    from .prompts import build_prompt

    prompt = Prompt(
        media=tuple(zip(paths, plans, strict=True)),
        text=build_prompt(settings.task, settings.question),
        system=settings.system,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
    )
    tokens, _exact = count_prompt_tokens(
        backend.spec.local_path, backend.spec.family, prompt.media, prompt.text, prompt.system
    )
    backend.check_fit(prompt, tokens, options)
    try:
        answer = backend.generate(backend.prepare(prompt, on_frames), on_text)
    except DeviceOutOfMemory as exc:  # say what would fit
        raise MemoryBudgetError(f"{exc.message}: {fit_hint(plans, options)}") from exc
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
    result = AskResult(
        paths=paths,
        plans=plans,
        question=settings.question,
        answer=answer.text,
        times=times,
        prompt_tokens=answer.prompt_tokens,
        generated_tokens=answer.generated_tokens,
        model=backend.spec.model,
        timings=answer.timings,
        task=settings.task,
        name=name or Path(paths[0]).stem,
        axes=answer.axes,
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
    backend: Backend,
    groups: list[list[tuple[str, Any]]],
    settings: AskSettings,
    options: SamplingOptions,
    view: AskView,
    concurrency: int = 1,
) -> ExitStatus | None:
    """Answer each group of ``(path, plan)`` (one input each, or all together) with one model.

    An input that does not fit in memory or cannot be decoded is reported and the others still
    run; the worst such status is returned (None when every group was answered). With
    ``concurrency`` above 1 (a server backend), that many prompts are prepared and answered at
    once (:func:`answer_concurrently`).
    """
    if concurrency > 1 and len(groups) > 1:
        return answer_concurrently(backend, groups, settings, options, view, concurrency)
    worst: ExitStatus | None = None
    names = output_names([group[0][0] for group in groups])
    for n, group in enumerate(groups, 1):
        paths = [p for p, _ in group]
        stream = view.start(n, len(groups), paths)
        try:
            try:
                result = ask_one(
                    backend,
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


def answer_concurrently(
    backend: Backend,
    groups: list[list[tuple[str, Any]]],
    settings: AskSettings,
    options: SamplingOptions,
    view: AskView,
    concurrency: int,
) -> ExitStatus | None:
    """:func:`answer_all` with ``concurrency`` prompts in flight (the server batches them).

    Each worker thread decodes, encodes and sends one prompt, so the next inputs are decoded
    while the server answers earlier ones. Results are shown in input order, each answer whole
    (not streamed); at most ``2 * concurrency`` prompts are taken ahead of the one shown, so
    memory stays bounded: only the ``concurrency`` running prompts hold their frames.
    """
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    names = output_names([group[0][0] for group in groups])

    def work(n: int, group: list[tuple[str, Any]]) -> tuple[Any, VlcliError | None, list[str]]:
        notes: list[str] = []
        paths = [p for p, _ in group]
        try:
            result = ask_one(
                backend,
                paths,
                [plan for _, plan in group],
                settings,
                options,
                warn=notes.append,
                name=names[n - 1],
            )
        except VlcliError as exc:
            if exc.status not in (ExitStatus.INPUT, ExitStatus.MEMORY):
                raise
            return None, exc, notes
        return result, None, notes

    worst: ExitStatus | None = None
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vlcli-ask")
    pending: deque[tuple[int, list[tuple[str, Any]], Future[Any]]] = deque()
    upcoming = iter(enumerate(groups, 1))

    def take_next() -> None:
        item = next(upcoming, None)
        if item is not None:
            pending.append((item[0], item[1], pool.submit(work, *item)))

    try:
        for _ in range(2 * concurrency):
            take_next()
        while pending:
            n, group, future = pending.popleft()
            paths = [p for p, _ in group]
            stream = view.start(n, len(groups), paths)
            result, exc, notes = future.result()
            take_next()
            for note in notes:
                view.warn(note)
            if exc is not None:
                worst = max(worst or exc.status, exc.status)
                view.failure(paths, exc)
                continue
            if stream is not None:
                stream(result.answer)
            view.result(result)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return worst
