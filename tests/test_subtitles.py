"""SubRip and WebVTT output: exact strings."""

from __future__ import annotations

import math

import pytest

from vlcli.outputs.subtitles import MIN_DISPLAY_S, to_srt, to_vtt
from vlcli.times.parse import TimeSpan, map_times, parse_times

ANSWER = """```json
[
  {"start_time": 20.0, "end_time": 24.25, "description": "He sits down."},
  {"start_time": 3, "end_time": 8.5, "description": "A man enters the room."}
]
```
At 12 seconds the phone rings."""

CASES = [
    # (spans, srt, vtt)
    ([], "", "WEBVTT\n"),
    (
        [TimeSpan(12.5, 20.0, "A dog jumps.")],
        "1\n00:00:12,500 --> 00:00:20,000\nA dog jumps.\n",
        "WEBVTT\n\n00:00:12.500 --> 00:00:20.000\nA dog jumps.\n",
    ),
    (  # an instant is shown for MIN_DISPLAY_S seconds
        [TimeSpan(7.0, 7.0, "A bell rings.")],
        "1\n00:00:07,000 --> 00:00:09,000\nA bell rings.\n",
        "WEBVTT\n\n00:00:07.000 --> 00:00:09.000\nA bell rings.\n",
    ),
    (  # ordered by start, then end; equal spans keep their order
        [
            TimeSpan(10, 12, "c"),
            TimeSpan(2, 5, "a"),
            TimeSpan(10, 11, "b"),
            TimeSpan(10, 12, "d"),
        ],
        "1\n00:00:02,000 --> 00:00:05,000\na\n\n"
        "2\n00:00:10,000 --> 00:00:11,000\nb\n\n"
        "3\n00:00:10,000 --> 00:00:12,000\nc\n\n"
        "4\n00:00:10,000 --> 00:00:12,000\nd\n",
        "WEBVTT\n\n"
        "00:00:02.000 --> 00:00:05.000\na\n\n"
        "00:00:10.000 --> 00:00:11.000\nb\n\n"
        "00:00:10.000 --> 00:00:12.000\nc\n\n"
        "00:00:10.000 --> 00:00:12.000\nd\n",
    ),
    (  # hours, milliseconds rounded half up on the printed decimal
        [TimeSpan(3725.0005, 3725.0015, "x"), TimeSpan(0.0004, 1.2345, "y")],
        "1\n00:00:00,000 --> 00:00:01,235\ny\n\n2\n01:02:05,001 --> 01:02:05,002\nx\n",
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.235\ny\n\n01:02:05.001 --> 01:02:05.002\nx\n",
    ),
    (  # blank lines dropped, "-->" defused, VTT markup characters escaped
        [TimeSpan(1, 2, "  first line\n\n second <b> & co --> end  ")],
        "1\n00:00:01,000 --> 00:00:02,000\nfirst line\nsecond <b> & co -> end\n",
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n"
        "first line\nsecond &lt;b&gt; &amp; co -&gt; end\n",
    ),
    (  # no text: the matched time text stands in; a reversed span is put right
        [TimeSpan(9, 4, "", "9 - 4 s")],
        "1\n00:00:04,000 --> 00:00:09,000\n9 - 4 s\n",
        "WEBVTT\n\n00:00:04.000 --> 00:00:09.000\n9 - 4 s\n",
    ),
    (  # mapped spans use source seconds (here --start 60 --end 90)
        map_times(parse_times(ANSWER), clip_start_s=60, clip_end_s=90),
        "1\n00:01:03,000 --> 00:01:08,500\nA man enters the room.\n\n"
        "2\n00:01:12,000 --> 00:01:14,000\nAt 12 seconds the phone rings.\n\n"
        "3\n00:01:20,000 --> 00:01:24,250\nHe sits down.\n",
        "WEBVTT\n\n"
        "00:01:03.000 --> 00:01:08.500\nA man enters the room.\n\n"
        "00:01:12.000 --> 00:01:14.000\nAt 12 seconds the phone rings.\n\n"
        "00:01:20.000 --> 00:01:24.250\nHe sits down.\n",
    ),
    (  # a span past the clip end has no cue (it was an instant there); one across it is cut
        map_times([TimeSpan(40, 50, "late"), TimeSpan(25, 50, "on")], clip_end_s=30),
        "1\n00:00:25,000 --> 00:00:30,000\non\n",
        "WEBVTT\n\n00:00:25.000 --> 00:00:30.000\non\n",
    ),
]


@pytest.mark.parametrize(("spans", "srt", "vtt"), CASES)
def test_subtitles(spans: list[TimeSpan], srt: str, vtt: str) -> None:
    assert to_srt(spans) == srt
    assert to_vtt(spans) == vtt


def test_min_display_default_and_override() -> None:
    assert MIN_DISPLAY_S == 2.0
    spans = [TimeSpan(1.0, 1.0, "x")]
    assert to_srt(spans, min_display_s=0.5) == "1\n00:00:01,000 --> 00:00:01,500\nx\n"
    assert to_vtt(spans, min_display_s=3) == "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nx\n"


def test_accepts_any_iterable() -> None:
    spans = (TimeSpan(t, t + 1, str(t)) for t in (2.0, 1.0))
    assert to_srt(spans).startswith("1\n00:00:01,000 --> 00:00:02,000\n1.0\n\n2\n")


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_rejects_bad_min_display(bad: float) -> None:
    with pytest.raises(ValueError):
        to_srt([TimeSpan(1, 1, "x")], min_display_s=bad)
    with pytest.raises(ValueError):
        to_vtt([TimeSpan(1, 1, "x")], min_display_s=bad)


def test_rejects_non_finite_times() -> None:
    with pytest.raises(ValueError):
        to_srt([TimeSpan(math.nan, 1, "x")])


# Issue 21, items 12 and 14: subtitles never carry a span outside the clip.


def test_a_span_outside_the_clip_has_no_cue() -> None:
    # a caption at 25-30 s of a 20 s video was a cue at 20-22 s; 1e20 s a cue at
    # 27777777777777777777:46:40,000
    spans = map_times([TimeSpan(25, 30, "Late."), TimeSpan(3, 4, "Early.")], clip_end_s=20)
    assert spans[0].outside
    assert to_srt(spans) == "1\n00:00:03,000 --> 00:00:04,000\nEarly.\n"
    huge = map_times(parse_times("At 100000000000000000000 seconds it ends."), clip_end_s=1)
    assert to_srt(huge) == "" and to_vtt(huge) == "WEBVTT\n"


def test_an_unmapped_span_outside_the_clip_has_no_cue() -> None:
    from vlcli.times.parse import bound_times

    spans = bound_times([TimeSpan(540, 1020, "Open.")], 0.0, 1.0)
    assert to_srt(spans) == ""


def test_an_instant_near_the_clip_end_stops_at_it() -> None:
    # a 30-minute video: an instant at 29:59 is shown to 30:00, not 30:01; one at 30:00 (the
    # end) is shown for the 2 s before it, not to 00:30:02
    spans = map_times([TimeSpan(1799, 1799, "A."), TimeSpan(1800, 1800, "B.")], clip_end_s=1800)
    assert to_srt(spans, end_s=1800) == (
        "1\n00:29:58,000 --> 00:30:00,000\nB.\n\n2\n00:29:59,000 --> 00:30:00,000\nA.\n"
    )
    assert "00:30:02" not in to_vtt(spans, end_s=1800)


@pytest.mark.parametrize(
    ("end", "cue"),
    [(61 / 30, "00:00:00,033 --> 00:00:02,033"), (32 / 3, "00:00:08,667 --> 00:00:10,667")],
)
def test_a_mapped_span_from_a_clip_end_that_is_no_round_number_is_its_instant(
    end: float, cue: str
) -> None:
    """Mapped times hold the clip's end to the microsecond: the subtitles compare with it rounded
    alike. Unrounded, 61/30 s gave an empty cue (rounded down below the end) and 32/3 s none at
    all (rounded up past it), an empty file."""
    spans = map_times([TimeSpan(end, end + 3, "y")], clip_start_s=0.0, clip_end_s=end)
    assert not spans[0].outside
    assert to_srt(spans, end_s=end) == f"1\n{cue}\ny\n"


def test_a_span_from_the_clip_end_onwards_is_no_empty_cue() -> None:
    # "from 2 to 1 seconds" of a 1 s clip, left in the model's seconds: 1-2 s, of which the
    # clip holds only its last instant; it was a cue from 00:00:01,000 to 00:00:01,000, shown
    # for no time at all: it is shown as an instant at the end is
    from vlcli.times.parse import bound_times

    (span,) = bound_times([TimeSpan(2, 1, "Late.")], 0.0, 1.0)
    assert not span.outside and span.reversed
    assert to_srt([span], end_s=1.0) == "1\n00:00:00,000 --> 00:00:01,000\nLate.\n"
    assert to_srt([span], end_s=1.0) == to_srt([TimeSpan(1, 1, "Late.")], end_s=1.0)
