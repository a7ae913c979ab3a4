"""Which clips ``vlcli cut`` makes from an ``ask --json`` record, and what they are called.

A record states spans in source seconds (``times``: ``start_s``/``end_s`` once ``mapped``); each
span that lies in the video becomes one clip, widened by ``--pad`` and clipped to the video. An
instant (start = end) is no clip at all, so it gets ``--pad`` seconds on each side, 1 s when no
pad is given. A clip is named from its source's path under the run's root folder and its span,
``a/match_00-12-05.500_00-12-31.000.mp4``: the same span of the same file has the same name on
every run, so a rerun finds the clip it made and keeps it (``.copy.mp4`` for ``--copy``).

What cannot be cut is said, not guessed: a failed record, one that states no times, a span left
in the model's seconds (``"mapped": false``: several videos in one prompt) or outside the video.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vlcli.times.format import format_clock

INSTANT_PAD_S = 1.0  # each side of an instant, when --pad is not given


@dataclass(frozen=True)
class Span:
    """One span of a record to cut: the seconds it states and the seconds to cut."""

    stated: tuple[float, float]  # start_s, end_s as the record states them
    start_s: float  # widened by the pad, clipped to the video
    end_s: float
    text: str


def record_spans(record: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], str | None]:
    """The record's spans in source seconds, or none and why the record gives no clip."""
    if record.get("status") != "ok":
        return [], "the record failed" if record.get("status") == "failed" else "not an answer"
    if not isinstance(record.get("path"), str):
        return [], "several inputs in one prompt: its times are not seconds of one file"
    times = [t for t in record.get("times") or [] if isinstance(t, Mapping)]
    if not times:
        return [], "the answer states no times"
    mapped = [t for t in times if t.get("mapped") and not t.get("outside")]
    if not mapped:
        return [], "no span lies in the video (outside it, or not in its seconds)"
    return mapped, None


def widen(
    start: float, end: float, pad: float | None, duration: float
) -> tuple[float, float] | None:
    """``start``-``end`` widened by ``pad`` (an instant: ``INSTANT_PAD_S`` without one), clipped
    to ``0``-``duration``; None when nothing of it is in the video."""
    if pad is None:
        pad = INSTANT_PAD_S if start == end else 0.0
    a, b = max(start - pad, 0.0), min(end + pad, duration)
    return (a, b) if b > a else None


def plan_spans(
    times: Sequence[Mapping[str, Any]], pad: float | None, duration: float
) -> tuple[list[Span], int]:
    """The spans to cut from a record's ``times``, each once, and how many lie outside."""
    spans: list[Span] = []
    seen: set[tuple[float, float]] = set()
    outside = 0
    for t in times:
        stated = (float(t["start_s"]), float(t["end_s"]))
        cut = widen(*stated, pad, duration)
        if cut is None:
            outside += 1
        elif cut not in seen:
            seen.add(cut)
            spans.append(Span(stated, cut[0], cut[1], str(t.get("text", ""))))
    return spans, outside


def common_root(paths: Sequence[str]) -> str:
    """The folder all ``paths`` lie under (their names are kept below it)."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    return os.path.commonpath(folders) if folders else os.getcwd()


def clip_stem(root: str, source: str) -> str:
    """``source``'s path under ``root``, less its extension (its name alone when not under it)."""
    rel = os.path.relpath(os.path.abspath(source), root)
    if rel.startswith(os.pardir):  # not under the root: its name alone
        rel = os.path.basename(source)
    return os.path.splitext(rel)[0]


def clip_path(out_dir: str, stem: str, span: Span, copied: bool = False) -> str:
    """``OUT/<stem>_<start>_<end>.mp4``, the span as a clock (``stem``: the source's folders
    under the run's root and its name, :func:`clip_stem`; or ``ask``'s output stem); ``.copy.mp4``
    for a stream copy, which starts at a keyframe: not the exact clip's file."""
    start, end = (format_clock(s, 3, sep="-") for s in (span.start_s, span.end_s))
    return os.path.join(out_dir, f"{stem}_{start}_{end}{'.copy' if copied else ''}.mp4")
