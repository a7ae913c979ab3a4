"""Long videos in windows: which parts of a video each prompt shows, and one answer from many.

A two-hour video squeezed into the 768-frame cap is sampled once every 9.4 s. ``--window W``
cuts the clip into windows of at most ``W`` seconds that overlap by ``--overlap O`` seconds, and
each window is planned exactly as ``--start``/``--end`` would plan it (the reference sampling,
so ``budget`` and ``ask`` agree) and answered on its own; its times go through its own time
axis to seconds of the whole video.

The windows (:func:`window_bounds`) all have the same length, ``L = (D + (n - 1) O) / n <= W``
for a clip of ``D`` seconds in ``n = ceil((D - O) / (W - O))`` windows, so no window is a sliver;
each starts ``L - O`` after the one before, the first at the clip's start and the last ends at
its end. Consecutive windows share ``O`` seconds, so their frame ranges meet or overlap: there
is no gap.

Merging (:func:`merge_spans`): every span is kept, in source order, with the window it came
from, except that a span stated by two neighbouring windows about their overlap is kept once.
Two spans are "the same" when both lie (by their middle) in the overlap and their ranges,
widened by one temporal patch, meet; of the two the one kept is the one whose window holds its
middle more centrally (distance from the window's centre over half its length).

This module is pure planning: no torch, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vlcli.errors import UsageError
from vlcli.models.families import Family
from vlcli.planning.plan import (
    DEFAULT_FPS,
    MAX_FRAMES,
    SamplingOptions,
    VideoFacts,
    VideoPlan,
    plan_video,
)

DEFAULT_OVERLAP_S = 4.0
SPARSE_FPS = 0.5  # below this rate (set by the 768-frame cap) ask and budget name --window


@dataclass(frozen=True)
class Window:
    """One window of a video: its number (from 0) and its requested bounds in source seconds."""

    index: int
    start_s: float
    end_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.index, "start_s": self.start_s, "end_s": self.end_s}

    def label(self, count: int) -> str:
        """``window 2 of 0-3``: the terminal numbers windows from 0, as ``--json`` does (the
        number indexes the record's ``windows``), and says the range so the last reads as last."""
        return f"window {self.index} of 0-{count - 1}"


def default_overlap(window_s: float) -> float:
    """A few seconds, at most a quarter of the window."""
    return min(DEFAULT_OVERLAP_S, window_s / 4)


def check_window(
    window_s: float | None, overlap_s: float | None, together: bool = False
) -> tuple[float, float] | None:
    """The ``--window``/``--overlap`` pair, checked (None without ``--window``); ``together``
    (one prompt over every input) cannot go with windows."""
    if window_s is not None and together:
        raise UsageError("--window answers one video in parts: it cannot go with --together")
    if window_s is None:
        if overlap_s is not None:
            raise UsageError("--overlap needs --window")
        return None
    if not (0 < window_s < math.inf):
        raise UsageError(f"--window must be a positive number of seconds, got {window_s:g}")
    overlap = default_overlap(window_s) if overlap_s is None else overlap_s
    if not (0 <= overlap < window_s):
        raise UsageError(
            f"--overlap must be zero or more seconds and less than --window ({window_s:g}), got {overlap:g}"
        )
    return window_s, overlap


def window_bounds(start_s: float, end_s: float, window_s: float, overlap_s: float) -> list[Window]:
    """Equal windows covering ``[start_s, end_s]`` (see the module docstring), ms-rounded.

    One window when the clip fits in ``window_s``.
    """
    length = end_s - start_s
    if length <= window_s:
        return [Window(0, start_s, end_s)]
    n = math.ceil((length - overlap_s) / (window_s - overlap_s) - 1e-9)
    size = (length + (n - 1) * overlap_s) / n
    starts = [round(start_s + k * (size - overlap_s), 3) for k in range(n)]
    starts[0] = start_s
    ends = [round(starts[k + 1] + overlap_s, 3) for k in range(n - 1)] + [end_s]
    return [Window(k, starts[k], ends[k]) for k in range(n)]


def plan_windows(
    facts: VideoFacts,
    options: SamplingOptions,
    family: Family,
    window_s: float,
    overlap_s: float,
) -> list[tuple[Window, VideoPlan]]:
    """The windows of one video and the plan of each, made exactly as ``--start/--end`` would.

    The first window keeps the user's ``--start`` (or none) and the last the user's ``--end`` (or
    none), so that a video that fits in one window is planned as without ``--window``.
    """
    duration = facts.num_frames / facts.average_fps
    lo = options.start if options.start is not None else 0.0
    hi = min(options.end, duration) if options.end is not None else duration
    windows = window_bounds(lo, hi, window_s, overlap_s)
    planned = []
    for w in windows:
        start = options.start if w.index == 0 else w.start_s
        end = options.end if w.index == len(windows) - 1 else w.end_s
        plan = plan_video(facts, dataclasses.replace(options, start=start, end=end), family)
        planned.append((w, plan))
    return planned


def shown_range(plan: VideoPlan) -> tuple[float, float]:
    """The source seconds a plan shows: its first frame to the end of its last frame (no later
    than ``--end``: :attr:`~vlcli.planning.plan.VideoPlan.shown_end_s`)."""
    return plan.clip_start_s, plan.shown_end_s


def sparse_note(plan: VideoPlan, options: SamplingOptions) -> str | None:
    """A warning when the 768-frame cap, not the user's own options, set the sampling below 0.5
    fps, naming a ``--window`` whose windows the cap leaves at the asked rate.

    A rate the user chose (``--fps``, ``--nframes``, ``--max-frames``) is not warned about: the
    warning is for the default cap silently thinning a long video. The window named is the
    longest (in whole minutes, or whole seconds under a minute) whose frames at the asked rate
    fit the cap; the cap binding means the clip is longer than it, so it really raises the rate.
    """
    if options.nframes is not None or options.max_frames is not None:
        return None
    wanted = options.fps if options.fps is not None else DEFAULT_FPS
    seconds = (plan.end_frame - plan.start_frame + 1) / plan.source_fps
    if plan.sample_fps >= SPARSE_FPS or seconds * wanted <= MAX_FRAMES:
        return None
    longest = MAX_FRAMES / wanted
    window = int(longest // 60 * 60) if longest >= 60 else max(1, int(longest))
    rate = min(wanted, plan.source_fps, MAX_FRAMES / window)
    return (
        f"{plan.frames} frames over {seconds:.0f} s is one frame every {1 / plan.sample_fps:.1f} s "
        f"(the {MAX_FRAMES}-frame cap): times will be coarse; --window {window} answers the video "
        f"in windows of {window} s at {rate:g} fps"
    )


# ---------------------------------------------------------------- merging


def _middle(span: Any) -> float:
    return (span.display_start_s + span.display_end_s) / 2


def _centrality(span: Any, plan: VideoPlan) -> float:
    lo, hi = shown_range(plan)
    half = max((hi - lo) / 2, 1e-9)
    return abs(_middle(span) - (lo + hi) / 2) / half


def merge_spans(
    windows: Sequence[tuple[Window, VideoPlan, Sequence[Any]]],
) -> list[tuple[int, Any]]:
    """One list of ``(window index, span)`` in source order, overlap duplicates kept once.

    ``windows`` are in order, each with its plan and its mapped spans
    (:class:`~vlcli.times.parse.TimeSpan`, source seconds). See the module docstring for the rule.
    """
    dropped: set[tuple[int, int]] = set()  # (window position, span position)
    for k in range(len(windows) - 1):
        (_, plan_a, spans_a), (_, plan_b, spans_b) = windows[k], windows[k + 1]
        lo = shown_range(plan_b)[0]
        hi = shown_range(plan_a)[1]
        if hi <= lo:
            continue
        tol = max(plan_a.second_per_grid_t, plan_b.second_per_grid_t)
        in_a = [
            i for i, s in enumerate(spans_a) if lo <= _middle(s) <= hi and (k, i) not in dropped
        ]
        in_b = [j for j, s in enumerate(spans_b) if lo <= _middle(s) <= hi]
        pairs = sorted(
            (abs(_middle(spans_a[i]) - _middle(spans_b[j])), i, j)
            for i in in_a
            for j in in_b
            if spans_a[i].display_start_s - tol <= spans_b[j].display_end_s
            and spans_b[j].display_start_s - tol <= spans_a[i].display_end_s
        )
        used_a: set[int] = set()
        used_b: set[int] = set()
        for _, i, j in pairs:
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            if _centrality(spans_b[j], plan_b) < _centrality(spans_a[i], plan_a):
                dropped.add((k, i))
            else:
                dropped.add((k + 1, j))
    kept = [
        (w.index, span)
        for k, (w, _, spans) in enumerate(windows)
        for i, span in enumerate(spans)
        if (k, i) not in dropped
    ]
    kept.sort(key=lambda ws: (ws[1].display_start_s, ws[1].display_end_s, ws[0]))
    return kept
