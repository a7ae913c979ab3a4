"""SubRip (``.srt``) and WebVTT (``.vtt``) subtitles from the spans of an answer.

Pure text: no torch, no transformers. The spans should have been through
:func:`vlcli.times.parse.map_times`, so that the cues are in seconds of the source video (a span that
was not mapped is written with the seconds the model stated).

Rules, the same for both formats:

- cues are ordered by start, then end (equal spans keep the answer's order);
- a span flagged ``outside`` the clip has no cue (its clamped time is the clip's edge, not a
  moment the answer describes);
- an instant (start == end) is shown for :data:`MIN_DISPLAY_S` seconds (2 s) from its time; a
  range is shown exactly as stated, however short;
- with ``end_s``, the end of the video the cues are for, no cue runs past it: a range stops
  there, an instant less than 2 s before it too, and an instant at the end (or a range from
  the end onwards, of which the clip holds only that instant) is shown for the 2 s before it;
- times are rounded to the millisecond, halves up, on the decimal value the float prints as;
  a negative time is written as 0;
- the cue text is the span's ``text`` (its ``raw`` when the text is empty), blank lines removed
  since a blank line ends a cue, and ``-->`` written ``->``; WebVTT also escapes ``&``, ``<``
  and ``>``, which it would otherwise read as markup.

>>> from vlcli.times.parse import TimeSpan
>>> print(to_srt([TimeSpan(12.5, 12.5, "A dog jumps.")]), end="")
1
00:00:12,500 --> 00:00:14,500
A dog jumps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from vlcli.times.format import format_clock
from vlcli.times.parse import TimeSpan, rounded_seconds

__all__ = ["MIN_DISPLAY_S", "to_srt", "to_vtt"]

MIN_DISPLAY_S = 2.0
"""How long an instant (a span with no length) stays on screen, in seconds."""


def _timestamp(seconds: float, decimal_mark: str) -> str:
    """``hh:mm:ss<mark>mmm``, rounded as every clock vlcli writes (:mod:`vlcli.times.format`)."""
    return format_clock(max(float(seconds), 0.0), 3, mark=decimal_mark)


def _cues(
    spans: Iterable[TimeSpan], min_display_s: float, end_s: float | None
) -> list[tuple[float, float, str]]:
    if not math.isfinite(min_display_s) or min_display_s <= 0:
        raise ValueError(f"min_display_s must be a finite number > 0, not {min_display_s!r}")
    limit = math.inf if end_s is None else rounded_seconds(end_s)  # as the spans' seconds
    cues: list[tuple[float, float, str]] = []
    for span in spans:
        start, end = sorted((span.display_start_s, span.display_end_s))
        if span.outside or start > limit:
            continue
        end = min(end, limit)  # first: a span from the end onwards is the end's instant
        if end == start:
            end = min(start + min_display_s, limit)
            start = min(start, max(end - min_display_s, 0.0)) if end == start else start
        text = span.text.strip() or span.raw.strip()
        lines = [line.strip() for line in text.splitlines()]
        cues.append((start, end, "\n".join(line for line in lines if line).replace("-->", "->")))
    cues.sort(key=lambda cue: (cue[0], cue[1]))  # stable: equal times keep the answer's order
    return cues


def to_srt(
    spans: Iterable[TimeSpan], *, min_display_s: float = MIN_DISPLAY_S, end_s: float | None = None
) -> str:
    """The spans as a SubRip file: numbered cues, ``00:00:12,500`` times, a blank line between.

    Returns ``""`` when there are no spans.

    >>> from vlcli.times.parse import TimeSpan
    >>> print(to_srt([TimeSpan(75.0, 80.25, "He sits."), TimeSpan(3, 3, "He enters.")]), end="")
    1
    00:00:03,000 --> 00:00:05,000
    He enters.
    <BLANKLINE>
    2
    00:01:15,000 --> 00:01:20,250
    He sits.
    """
    blocks = [
        f"{n}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}"
        for n, (start, end, text) in enumerate(_cues(spans, min_display_s, end_s), start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(
    spans: Iterable[TimeSpan], *, min_display_s: float = MIN_DISPLAY_S, end_s: float | None = None
) -> str:
    """The spans as a WebVTT file: the ``WEBVTT`` header, then ``00:00:12.500`` cues.

    Cues carry no identifiers. With no spans, the result is the header alone.

    >>> from vlcli.times.parse import TimeSpan
    >>> print(to_vtt([TimeSpan(12.5, 20.0, "A <b> & c")]), end="")
    WEBVTT
    <BLANKLINE>
    00:00:12.500 --> 00:00:20.000
    A &lt;b&gt; &amp; c
    """
    blocks = [
        f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{_escape_vtt(text)}"
        for start, end, text in _cues(spans, min_display_s, end_s)
    ]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + "\n" if blocks else "WEBVTT\n"
