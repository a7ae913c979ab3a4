"""A long video answered in windows (``--window``, :mod:`vlcli.planning.windows`): one prompt
per window, one record for the video.

Each window's answer is recorded on its own as it comes (``"status": "window"``), so that
``--resume`` continues inside the video: a window found in the output file is not asked again,
its answer is read back from its record. Once the last window is in, the windows' answers are
merged into the video's one answer (times in the video's seconds, the overlaps' repeats merged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from vlcli.outputs.ledger import Ledger, part_key
from vlcli.planning.plan import VideoPlan
from vlcli.planning.windows import Window, merge_spans
from vlcli.run.inputs import Job, Task, WindowPart
from vlcli.run.pipeline import Ready
from vlcli.run.prompt import AskResult, AskSettings, result_of
from vlcli.run.records import Records
from vlcli.run.view import AskView
from vlcli.space.place import PlacedShape
from vlcli.times.format import format_hms
from vlcli.times.parse import TimeSpan


def window_jobs(
    task: Task, windows: list[tuple[Window, VideoPlan]], ledger: Ledger | None
) -> Iterator[Job | Ready[Job]]:
    """One prompt per window; a window already recorded is ready with its record."""
    task.windows = len(windows)
    for window, plan in windows:
        job = Job(task, [plan], part_key(task.key, window.to_dict()), window, plan.notes)
        kept = ledger.read(job.key) if ledger is not None else None
        if kept is not None and kept.get("status") == "window":
            yield Ready(job, result=kept)
        else:
            yield job


def window_title(job: Job) -> str | None:
    """What a window's streamed answer is headed with: which window, from when to when."""
    if job.window is None:
        return None
    w = job.window
    return f"{w.label(job.task.windows)}: {format_hms(w.start_s)} to {format_hms(w.end_s)}"


class Windows:
    """Keeps each video's answered windows, records each, and merges them after the last."""

    def __init__(
        self, asked: Sequence[AskSettings], model: str, records: Records, view: AskView
    ) -> None:
        self.model, self.records, self.view = model, records, view
        self.asked = asked  # each question's settings (a record's task.question picks one)

    def answered(self, job: Job, answer: Any) -> AskResult | None:
        """Take one window's answer (or its record, from an earlier run); the video's merged
        answer once this was its last window, else None."""
        task, window = job.task, job.window
        settings = self.asked[task.question]
        assert window is not None
        (plan,) = job.plans
        assert isinstance(plan, VideoPlan)
        if isinstance(answer, dict):  # recorded by an earlier run
            result = result_from_record(answer, task, plan, settings)
            summary = {
                k: v for k, v in answer.items() if k not in ("key", "status", "parent", "path")
            }
        else:
            result = result_of(
                answer, task.paths, [plan], settings, self.model, self.view.warn, task.stem
            )
            summary = {**window.to_dict(), **window_summary(result)}
            if result.no_answer is not None:  # this window has none: the others still count
                self.view.warn(f"{job.label}: {result.no_answer}")
            if any(not span.mapped for span in result.times):
                self.view.warn(
                    f"{job.label}: the answer's times could not be mapped: they count from the "
                    f"window's start ({window.start_s:g} s), not from the video's"
                )
            record = {
                "key": job.key,
                "status": "window",
                "parent": task.key,
                "path": task.paths[0],
                **summary,
            }
            self.records.window(record, job.label)
        task.parts.append(WindowPart(window, plan, result, summary))
        return merged(task, settings, self.model) if len(task.parts) == task.windows else None


def merged(task: Task, settings: AskSettings, model: str) -> AskResult:
    """A video's one answer from its windows' answers, in the windows' order."""
    parts = sorted(task.parts, key=lambda p: p.window.index)
    spans = merge_spans([(p.window, p.plan, p.result.times) for p in parts])
    timings: dict[str, float] = {}
    for p in parts:
        for name, value in p.result.timings.items():
            timings[name] = round(timings.get(name, 0.0) + value, 4)
    reasoned = any(p.result.reasoning is not None for p in parts)
    return AskResult(
        paths=task.paths,
        plans=[p.plan for p in parts],
        question=settings.question,
        answer=_by_window(parts, lambda p: p.result.answer),
        reasoning=_by_window(parts, lambda p: p.result.reasoning or "") if reasoned else None,
        times=[span for _, span in spans],
        prompt_tokens=sum(p.result.prompt_tokens for p in parts),
        generated_tokens=sum(p.result.generated_tokens for p in parts),
        model=model,
        timings=timings,
        task=settings.task,
        name=task.stem,
        windows=[p.summary for p in parts],
        span_windows=[w for w, _ in spans],
        places=[shape for p in parts for shape in p.result.places],  # each on its window's frame
    )


def _by_window(parts: list[WindowPart], text: Callable[[WindowPart], str]) -> str:
    """Each window's text, headed by its span, one paragraph a window."""
    return "\n\n".join(
        f"[{format_hms(p.window.start_s)} to {format_hms(p.window.end_s)}] {text(p)}" for p in parts
    )


def window_summary(result: AskResult) -> dict[str, Any]:
    """What a window contributes to its video's record (and its own ``window`` record)."""
    d = result.to_dict()
    return {
        k: d[k]
        for k in (
            "reasoning",
            "answer",
            "times",
            "boxes",
            "points",
            "frames",
            "visual_tokens",
            "prompt_tokens",
            "generated_tokens",
            "timings",
            "time_axes",
        )
        if k in d
    }


def result_from_record(
    record: dict[str, Any], task: Task, plan: VideoPlan, settings: AskSettings
) -> AskResult:
    """A window's answer as an earlier run recorded it (its spans as they were mapped)."""
    spans = [
        TimeSpan(
            t["model_start_s"],
            t["model_end_s"],
            t.get("text", ""),
            t.get("raw", ""),
            t["start_s"] if t.get("mapped") else None,
            t["end_s"] if t.get("mapped") else None,
            bool(t.get("clipped")),
            bool(t.get("outside")),
            bool(t.get("reversed")),
        )
        for t in record.get("times", [])
    ]
    return AskResult(
        paths=task.paths,
        plans=[plan],
        question=settings.question,
        answer=record.get("answer", ""),
        reasoning=record.get("reasoning"),
        times=spans,
        prompt_tokens=int(record.get("prompt_tokens", 0)),
        generated_tokens=int(record.get("generated_tokens", 0)),
        model=str(record.get("model", "")),
        timings=dict(record.get("timings", {})),
        task=settings.task,
        name=task.stem,
        places=[
            PlacedShape.from_dict(kind, d)
            for kind, key in (("box", "boxes"), ("point", "points"))
            for d in record.get(key, [])
        ],
    )
