"""Parsing the times of Qwen answers, mapping them to the source video, formatting them."""

from __future__ import annotations

import ast
import doctest
import gc
import math
import time
from pathlib import Path
from typing import Any

import pytest

from vlcli.outputs import subtitles
from vlcli.planning import tasks as prompts
from vlcli.times import format as clock
from vlcli.times import parse as times
from vlcli.times.format import format_hms
from vlcli.times.parse import TimeSpan, map_times, parse_time_value, parse_times

# --------------------------------------------------------------------------------------------
# parse_times: one form at a time. (answer, [(start_s, end_s), ...])
# --------------------------------------------------------------------------------------------

FORMS = [
    # seconds with a unit
    ("The dog jumps at 12.5 seconds.", [(12.5, 12.5)]),
    ("The dog jumps at 12.5s.", [(12.5, 12.5)]),
    ("The dog jumps at 12.5 sec.", [(12.5, 12.5)]),
    ("The dog jumps at 12.5 secs.", [(12.5, 12.5)]),
    ("The dog jumps at 12.5 s, then barks.", [(12.5, 12.5)]),
    ("at 3 seconds", [(3.0, 3.0)]),
    ("At 1 second the screen goes dark.", [(1.0, 1.0)]),
    ("A car passes at 7 Seconds.", [(7.0, 7.0)]),
    ("The goal is scored at the 12.5-second mark.", [(12.5, 12.5)]),
    ("The goal is scored at around ~42s.", [(42.0, 42.0)]),
    ("It happens 12.5 seconds after the start.", [(12.5, 12.5)]),
    ("It is visible at **8.0 seconds**.", [(8.0, 8.0)]),
    # minutes and hours
    ("At 1 minute 5 seconds the singer bows.", [(65.0, 65.0)]),
    ("At 2 minutes the lights go out.", [(120.0, 120.0)]),
    ("At 1 hour, 2 minutes and 3.5 seconds it ends.", [(3723.5, 3723.5)]),
    ("The cut comes at 1m30s.", [(90.0, 90.0)]),
    # ranges of seconds
    ("The dog jumps from 12.5 to 20.0 seconds.", [(12.5, 20.0)]),
    ("The dog jumps from 12.5 seconds to 20.0 seconds.", [(12.5, 20.0)]),
    ("The dog jumps between 3 and 5 seconds.", [(3.0, 5.0)]),
    ("The dog jumps between 3 seconds and 5 seconds.", [(3.0, 5.0)]),
    ("The dog jumps 12.5 - 20.0 seconds.", [(12.5, 20.0)]),
    ("The dog jumps 12.5-20.0s.", [(12.5, 20.0)]),
    ("The dog jumps 12.5s-20.0s.", [(12.5, 20.0)]),
    ("The dog jumps 12.5 – 20.0 seconds.", [(12.5, 20.0)]),
    ("The dog jumps 12.5 — 20.0 sec.", [(12.5, 20.0)]),
    ("The dog jumps 12.5 to 20.0 seconds into the video.", [(12.5, 20.0)]),
    ("It occurs from about 3 until about 7 seconds.", [(3.0, 7.0)]),
    ("It lies in the 12.5-20.0 second range.", [(12.5, 20.0)]),
    ("The event takes place from 12 to 20 seconds.", [(12.0, 20.0)]),
    ("The event spans 12 to 20 seconds.", [(12.0, 20.0)]),
    ("The clip is at [12.5s, 20.0s].", [(12.5, 20.0)]),
    # a unit implied by context
    ("The timestamps are 12.5 – 20.0.", [(12.5, 20.0)]),
    ("Time range: 12.5 - 20.0", [(12.5, 20.0)]),
    ("The time range is [12.5, 20.0].", [(12.5, 20.0)]),
    ("From 3 to 5, the man runs (timestamps in seconds).", [(3.0, 5.0)]),
    # clock times
    ("The dog jumps at 00:12.", [(12.0, 12.0)]),
    ("The dog jumps at 1:05.", [(65.0, 65.0)]),
    ("The dog jumps at 00:12.50.", [(12.5, 12.5)]),
    ("The dog jumps at 01:02:03.", [(3723.0, 3723.0)]),
    ("The dog jumps at 01:02:03.250.", [(3723.25, 3723.25)]),
    ("The dog jumps at 75:30.", [(4530.0, 4530.0)]),
    ("The dog jumps 00:12 - 00:20.", [(12.0, 20.0)]),
    ("The dog jumps 00:12-00:20.", [(12.0, 20.0)]),
    ("The dog jumps from 1:05 to 1:10.", [(65.0, 70.0)]),
    ("The dog jumps between 00:01:05.5 and 00:01:10.", [(65.5, 70.0)]),
    ("Cue 00:00:12.500 --> 00:00:20.000", [(12.5, 20.0)]),
    # Qwen3-VL timestamp tokens echoed back
    ("The dog jumps at <12.5 seconds>.", [(12.5, 12.5)]),
    ("The dog jumps from <3.0 seconds> to <5.0 seconds>.", [(3.0, 5.0)]),
    ("<3.0 seconds> - <5.0 seconds>: a dog jumps.", [(3.0, 5.0)]),
    # a start and an end stated apart
    ("The man starts walking at 3.2 seconds and stops at 7.8 seconds.", [(3.2, 7.8)]),
    ("Start time: 00:12, end time: 00:20.", [(12.0, 20.0)]),
    ("It begins at 4 s and ends at 9 s.", [(4.0, 9.0)]),
    # a time and its own restatement count once
    ("He leaves at 75 seconds (01:15).", [(75.0, 75.0)]),
    ("He leaves at 01:15 (75 s).", [(75.0, 75.0)]),
    # several in a sentence, in order
    ("A man enters at 3 seconds, sits at 0:07 and leaves at 12s.", [(3, 3), (7, 7), (12, 12)]),
    ("A ball at 5s; 1920x1080 footage; 3 players from 10 to 12 s.", [(5, 5), (10, 12)]),
    ("Event A: 2.5s ~ 4.0s", [(2.5, 4.0)]),
    ("The woman speaks (00:05-00:09) then leaves.", [(5.0, 9.0)]),
    ("from 0 to 3.5 seconds and from 4 to 7 seconds", [(0.0, 3.5), (4.0, 7.0)]),
    ("The aspect ratio is 3:2; at 5s it pans.", [(5.0, 5.0)]),
    # Chinese answers (to a prompt written in Chinese)
    ("在12.5秒到20.0秒之间，狗在跳。然后在25秒它停下。", [(12.5, 20.0), (25.0, 25.0)]),
]


@pytest.mark.parametrize(("answer", "expected"), FORMS)
def test_parse_forms(answer: str, expected: list[tuple[float, float]]) -> None:
    spans = parse_times(answer)
    assert [(round(s.start_s, 6), round(s.end_s, 6)) for s in spans] == expected
    for span in spans:
        assert not span.mapped and not span.clipped and not span.outside


# --------------------------------------------------------------------------------------------
# Bare numbers, durations, dates, clock times of day: not times.
# --------------------------------------------------------------------------------------------

NEGATIVES = [
    "There are 3 people in the video.",
    "This is version 2.5 of the app.",
    "The resolution is 1920x1080.",
    "The video is 1920 x 1080 at 30 fps.",
    "The meeting starts at 4:30 PM.",
    "The clock shows 10:15 a.m. on the wall.",
    "The aspect ratio is 16:9.",
    "3-5 people walk by.",
    "Between 3 and 5 cars pass.",
    "The score went from 3 to 5.",
    "The score is 12.5 – 20.0.",
    "The box reads [1920, 1080].",
    "He bought 1,234 apples for $12.50.",
    "Version 1.2.3 is installed.",
    "The date 2023-05-12 is shown.",
    "Chapter 12, page 20.",
    "5 sheep and 2 goats graze.",
    "The video is 30 seconds long.",
    "The whole clip lasts 45 seconds.",
    "He waits for 3 seconds.",
    "He waits for about 3 to 5 seconds.",
    "It repeats every 2 seconds.",
    "It has a duration of 90 seconds.",
    "A 30-second clip of a cat.",
    "He jumps 2 seconds after she sits.",
    "Five seconds later, 2 seconds before the end, it stops.",
    "Music from the 1990s plays.",
    '{"answer": "3 people", "confidence": 0.9}',
    "[1, 2, 3]",
    "",
    "No time is mentioned here.",
]


@pytest.mark.parametrize("answer", NEGATIVES)
def test_not_times(answer: str) -> None:
    assert parse_times(answer) == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("12.5 - 20.0", [(12.5, 20.0)]),
        ("12.5 – 20.0.", [(12.5, 20.0)]),
        ("[12.5, 20.0]", [(12.5, 20.0)]),
        ("The event occurs from 12.5 to 20.0.", [(12.5, 20.0)]),
        ("The event occurs from 12.5 to 20.0 in the video.", [(12.5, 20.0)]),
        ("3 to 5 people", []),  # a word follows: a count, not a range
        ("12.5", []),  # a single bare number is never a time
    ],
)
def test_assume_seconds(answer: str, expected: list[tuple[float, float]]) -> None:
    assert [(s.start_s, s.end_s) for s in parse_times(answer, assume_seconds=True)] == expected
    assert parse_times(answer) == []  # nothing in these sentences says "seconds"


# --------------------------------------------------------------------------------------------
# Realistic whole answers: times, texts and order.
# --------------------------------------------------------------------------------------------

PROSE_ANSWER = """The video begins in a kitchen. At 0:03, a woman takes a bowl from the shelf.
She cracks two eggs into it between 5.5 and 9 seconds. The whisking lasts for 10 seconds.
Then, from 00:21 to 00:34, she pours it into a pan; there are 3 pans on the stove.
- The omelette is flipped at the 41-second mark.
- It is served at 52.0s."""

FENCED_JSON_ANSWER = """```json
[
    {"start_time": "00:00.00", "end_time": "00:15.20", "description": "A man walks in."},
    {"start_time": "00:15.20", "end_time": "00:34.80", "description": "He enters a grand hall."},
    {"start_time": "00:34.80", "end_time": "01:02.00", "description": "He climbs the stairs."}
]
```
These events summarize the video; the man is visible for 62 seconds."""

JSON_TRAILING_ANSWER = """[{"start_time": 0.0, "end_time": 4.5, "description": "A dog sleeps."},
{"start_time": "4.5", "end_time": "9.0 seconds", "description": "The dog wakes up."},
{"start": 9, "end": 12, "caption": "It runs away."}] The dog is a golden retriever."""

QWEN3_ANSWER = (
    'Here are the events.\n{"timestamp": [2.0, 6.5], "description": "A cyclist appears."}\n'
    '{"timestamp": "<8.0 seconds> - <11.5 seconds>", "description": "He turns left."}\n'
    "After that, at <14.0 seconds>, he stops."
)

LOOSE_ANSWER = (
    "Sure! [{'start_time': 1.0, 'end_time': 3.5, 'description': 'A man, waving'},\n"
    " {'start_time': 3.5, 'end_time': 6, 'description': 'He sits',},\n"
    " {'start_time': 6, 'end_"  # cut off by the token limit
)

GROUNDING_ANSWERS = [
    ("The event happens in 12.5 - 20.0 seconds.", (12.5, 20.0)),
    ("The described content occurs from 3.2 to 7.9 seconds.", (3.2, 7.9)),
    ("The man opens the door between 00:05 and 00:08.", (5.0, 8.0)),
    ("The event occurs from 1:05 to 1:10 in the video.", (65.0, 70.0)),
    ('{"start_time": 12.5, "end_time": 20.0}', (12.5, 20.0)),
    ("The dog jumps at <6.5 seconds> and lands at <7.0 seconds>.", None),
]


def test_prose_answer() -> None:
    spans = parse_times(PROSE_ANSWER)
    assert [(s.start_s, s.end_s) for s in spans] == [
        (3.0, 3.0),
        (5.5, 9.0),
        (21.0, 34.0),
        (41.0, 41.0),
        (52.0, 52.0),
    ]
    assert [s.text for s in spans] == [
        "At 0:03, a woman takes a bowl from the shelf.",
        "She cracks two eggs into it between 5.5 and 9 seconds.",
        "Then, from 00:21 to 00:34, she pours it into a pan; there are 3 pans on the stove.",
        "The omelette is flipped at the 41-second mark.",
        "It is served at 52.0s.",
    ]
    assert [s.raw for s in spans] == [
        "0:03",
        "5.5 and 9 seconds",
        "00:21 to 00:34",
        "41-second",
        "52.0s",
    ]


def test_fenced_json_with_trailing_prose() -> None:
    spans = parse_times(FENCED_JSON_ANSWER)
    assert [(s.start_s, s.end_s, s.text) for s in spans] == [
        (0.0, 15.2, "A man walks in."),
        (15.2, 34.8, "He enters a grand hall."),
        (34.8, 62.0, "He climbs the stairs."),
    ]  # "visible for 62 seconds" is a duration
    assert spans[0].raw.startswith('{"start_time": "00:00.00"')


def test_json_with_trailing_text_and_mixed_values() -> None:
    spans = parse_times(JSON_TRAILING_ANSWER)
    assert [(s.start_s, s.end_s, s.text) for s in spans] == [
        (0.0, 4.5, "A dog sleeps."),
        (4.5, 9.0, "The dog wakes up."),
        (9.0, 12.0, "It runs away."),
    ]


def test_qwen3_answer_json_lines_and_tokens() -> None:
    spans = parse_times(QWEN3_ANSWER)
    assert [(s.start_s, s.end_s, s.text) for s in spans] == [
        (2.0, 6.5, "A cyclist appears."),
        (8.0, 11.5, "He turns left."),
        (14.0, 14.0, "After that, at <14.0 seconds>, he stops."),
    ]


def test_loose_and_truncated_json() -> None:
    spans = parse_times(LOOSE_ANSWER)
    assert [(s.start_s, s.end_s, s.text) for s in spans] == [
        (1.0, 3.5, "A man, waving"),
        (3.5, 6.0, "He sits"),
    ]


@pytest.mark.parametrize(("answer", "expected"), GROUNDING_ANSWERS)
def test_grounding_answers(answer: str, expected: tuple[float, float] | None) -> None:
    spans = parse_times(answer)
    if expected is None:  # "at A and lands at B": two instants, no start/end words
        assert [(s.start_s, s.end_s) for s in spans] == [(6.5, 6.5), (7.0, 7.0)]
    else:
        assert [(s.start_s, s.end_s) for s in spans] == [expected]


JSON_FORMS = [
    ('[{"start": 1, "end": 2, "event": "a"}]', [(1.0, 2.0, "a")]),
    ('{"events": [{"start_time": 1, "end_time": 2, "description": "a"}]}', [(1.0, 2.0, "a")]),
    ('[{"timestamp": [3, 5], "caption": "a"}]', [(3.0, 5.0, "a")]),
    ('[{"timestamp": 7.5, "description": "a"}]', [(7.5, 7.5, "a")]),
    ('[{"timestamp": "00:12 - 00:20", "description": "a"}]', [(12.0, 20.0, "a")]),
    ('[{"timestamp": "12.5-20", "description": "a"}]', [(12.5, 20.0, "a")]),
    ('[{"time": "1:05", "text": "a"}]', [(65.0, 65.0, "a")]),
    ('[{"timestamps": [[1, 2], [4, 6]], "description": "a"}]', [(1, 2, "a"), (4, 6, "a")]),
    ('[{"start_time": "12.5 seconds", "end_time": null, "description": "a"}]', [(12.5, 12.5, "a")]),
    ('[{"Start Time": "0:01", "End Time": "0:02", "Description": "a"}]', [(1.0, 2.0, "a")]),
    (
        '[{"start_time": "<1.0 seconds>", "end_time": "<2.0 seconds>", "action": "a"}]',
        [(1, 2, "a")],
    ),
    (
        '{"00:05": "a man enters", "00:10 - 00:20": "he sits"}',
        [(5, 5, "a man enters"), (10, 20, "he sits")],
    ),
    ('[{"start_time": 1, "end_time": 2, "who": "a man"}]', [(1.0, 2.0, "a man")]),
    ('[{"start_time": true, "end_time": "soon", "description": "a"}]', []),
    ('{"1": "first", "2": "second"}', []),
]


@pytest.mark.parametrize(("answer", "expected"), JSON_FORMS)
def test_json_forms(answer: str, expected: list[tuple[float, float, str]]) -> None:
    assert [(s.start_s, s.end_s, s.text) for s in parse_times(answer)] == expected


def test_prose_and_json_keep_order_of_appearance() -> None:
    answer = (
        "First, at 2 seconds, a bell rings.\n"
        '```json\n[{"start_time": 5, "end_time": 8, "description": "A door opens."}]\n```\n'
        "Finally the bell rings again at 00:30."
    )
    assert [(s.start_s, s.text) for s in parse_times(answer)] == [
        (2.0, "First, at 2 seconds, a bell rings."),
        (5.0, "A door opens."),
        (30.0, "Finally the bell rings again at 00:30."),
    ]


def test_numbered_list_with_label_colons() -> None:
    answer = "1. 0:00-0:05: Intro\n2. 0:05-0:30: Setup\n3. 0:30-1:00: Demo"
    assert [(s.start_s, s.end_s, s.text) for s in parse_times(answer)] == [
        (0.0, 5.0, "0:00-0:05: Intro"),
        (5.0, 30.0, "0:05-0:30: Setup"),
        (30.0, 60.0, "0:30-1:00: Demo"),
    ]


def test_windows_line_endings_and_abbreviations() -> None:
    answer = "He waves at approx. 4 seconds.\r\nShe waves at 6s."
    assert [(s.start_s, s.text) for s in parse_times(answer)] == [
        (4.0, "He waves at approx. 4 seconds."),
        (6.0, "She waves at 6s."),
    ]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("[" * 5000 + "{" * 5000 + " at 5 s", [(5.0, 5.0)]),  # too deep for the JSON decoder
        ("[" * 3000 + "]" * 3000 + " at 5 s", [(5.0, 5.0)]),
        ("[[1, 2], [3, 4]] at 5s", [(5.0, 5.0)]),
        ('{"a": [1, {"b": "c"}]} and at 00:07', [(7.0, 7.0)]),
    ],
)
def test_nested_brackets(answer: str, expected: list[tuple[float, float]]) -> None:
    assert [(s.start_s, s.end_s) for s in parse_times(answer)] == expected


def test_long_looping_answer_grows_linearly() -> None:
    """A model caught in a loop: one "sentence" of thousands of times (this was quadratic once).

    Ten times the answer may cost at most about fifteen times the CPU time (quadratic would be
    a hundred): a ratio of this process's own CPU time, best of three, not a wall-clock limit.
    """
    unit = "0.5 seconds, 3-4 people, from 1 to 2 seconds, "

    def cpu_seconds(repeats: int) -> float:
        best = math.inf
        gc.collect()
        gc.disable()  # a collection of the whole suite's heap is no part of the parser's cost
        try:
            for _ in range(3):
                begin = time.process_time()
                spans = parse_times(unit * repeats)
                best = min(best, time.process_time() - begin)
        finally:
            gc.enable()
        assert len(spans) == 2 * repeats
        return best

    small, large = cpu_seconds(1000), cpu_seconds(10000)
    assert large <= 15 * max(small, 0.01), (small, large)


# --------------------------------------------------------------------------------------------
# map_times
# --------------------------------------------------------------------------------------------

MAPPING = [
    # (model start, model end, clip_start_s, clip_end_s) -> (source start, end, clipped, outside)
    ((5, 8, 0.0, None), (5.0, 8.0, False, False)),
    ((5, 8, 100.0, None), (105.0, 108.0, False, False)),
    ((5, 8, 100.0, 130.0), (105.0, 108.0, False, False)),
    ((0, 30, 100.0, 130.0), (100.0, 130.0, False, False)),  # exactly the clip
    ((30, 30, 100.0, 130.0), (130.0, 130.0, False, False)),  # on the end bound: inside
    ((25, 40, 100.0, 130.0), (125.0, 130.0, True, False)),  # end clipped
    ((40, 50, 100.0, 130.0), (130.0, 130.0, True, True)),  # wholly after the clip
    ((70, 70, 100.0, 130.0), (130.0, 130.0, True, True)),  # an instant after the clip
    ((-2, 3, 10.0, None), (10.0, 13.0, True, False)),  # start before the clip
    ((-5, -2, 10.0, None), (10.0, 10.0, True, True)),  # wholly before the clip
    ((9, 6, 100.0, 130.0), (106.0, 109.0, False, False)),  # swapped, no flag
    ((12.5, 20.0, 100.1, None), (112.6, 120.1, False, False)),  # no float noise
    ((0.1, 0.2, 0.2, None), (0.3, 0.4, False, False)),
    ((0, 0, 0.0, 0.0), (0.0, 0.0, False, False)),
    ((3723.25, 3725.5, 3600.0, 7200.0), (7200.0, 7200.0, True, True)),
]


@pytest.mark.parametrize(("given", "expected"), MAPPING)
def test_map_times(given: tuple, expected: tuple) -> None:
    start, end, clip_start, clip_end = given
    span = TimeSpan(start, end, text="t", raw="r")
    (mapped,) = map_times([span], clip_start_s=clip_start, clip_end_s=clip_end)
    assert (mapped.source_start_s, mapped.source_end_s, mapped.clipped, mapped.outside) == expected
    assert mapped.start_s == min(start, end) and mapped.end_s == max(start, end)
    assert (mapped.text, mapped.raw) == ("t", "r")
    assert mapped.mapped


def test_map_times_keeps_order_and_maps_afresh() -> None:
    spans = parse_times("At 20 seconds a bird lands. At 5 seconds it sang.")
    once = map_times(spans, clip_start_s=60)
    assert [s.source_start_s for s in once] == [80.0, 65.0]
    again = map_times(once, clip_start_s=10, clip_end_s=20)
    assert [(s.source_start_s, s.clipped) for s in again] == [(20.0, True), (15.0, False)]
    assert map_times([]) == []


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (95.0, 100.0, (95.0, 100.0, False, False)),  # source seconds already
        (80.0, 95.0, (90.0, 95.0, True, False)),  # starts before --start 90
        (10.0, 20.0, (90.0, 90.0, True, True)),  # wholly before the clip
        (125.0, 140.0, (125.0, 130.0, True, False)),
    ],
)
def test_map_times_offset_apart_from_clip_start(
    start: float, end: float, expected: tuple[float, float, bool, bool]
) -> None:
    # A model shown source timestamps (offset 0) over the clip --start 90 --end 130.
    (s,) = map_times([TimeSpan(start, end)], clip_start_s=90, clip_end_s=130, offset_s=0)
    assert (s.source_start_s, s.source_end_s, s.clipped, s.outside) == expected


@pytest.mark.parametrize(
    ("clip_start", "clip_end"),
    [(-1.0, None), (10.0, 5.0), (math.nan, None), (0.0, math.inf), (math.inf, None)],
)
def test_map_times_rejects_bad_bounds(clip_start: float, clip_end: float | None) -> None:
    with pytest.raises(ValueError):
        map_times([TimeSpan(1, 2)], clip_start_s=clip_start, clip_end_s=clip_end)
    with pytest.raises(ValueError):
        map_times([TimeSpan(1, 2)], offset_s=math.nan)


def test_to_dict_uses_source_seconds() -> None:
    (span,) = map_times(parse_times("The goal is at 00:12.25."), clip_start_s=3600)
    assert span.to_dict() == {
        "start_s": 3612.25,
        "end_s": 3612.25,
        "start_hms": "01:00:12.3",
        "end_hms": "01:00:12.3",
        "text": "The goal is at 00:12.25.",
        "raw": "00:12.25",
        "model_start_s": 12.25,
        "model_end_s": 12.25,
        "mapped": True,
        "clipped": False,
        "outside": False,
        "reversed": False,
    }


def test_to_dict_before_mapping_uses_model_seconds() -> None:
    d = TimeSpan(1.0, 2.0, "x", "1-2s").to_dict()
    assert (d["start_s"], d["end_s"], d["start_hms"], d["mapped"]) == (
        1.0,
        2.0,
        "00:00:01.0",
        False,
    )


# --------------------------------------------------------------------------------------------
# One clock for every output: the table, subtitle cues and evidence names round alike.
# --------------------------------------------------------------------------------------------

CLOCKS = [
    # seconds, table (tenths), cue (ms), evidence name (ms)
    (59.95, "00:01:00.0", "00:00:59,950", "c_00-00-59.950.png"),
    (59.9995, "00:01:00.0", "00:01:00,000", "c_00-01-00.000.png"),
    (3599.95, "01:00:00.0", "00:59:59,950", "c_00-59-59.950.png"),
    (3599.9995, "01:00:00.0", "01:00:00,000", "c_01-00-00.000.png"),
    (0.0005, "00:00:00.0", "00:00:00,001", "c_00-00-00.001.png"),  # half up, not to even
    (2.0625, "00:00:02.1", "00:00:02,063", "c_00-00-02.063.png"),
    (1.0005, "00:00:01.0", "00:00:01,001", "c_00-00-01.001.png"),
]


@pytest.mark.parametrize(("seconds", "table", "cue", "evidence"), CLOCKS)
def test_every_output_writes_a_second_alike(
    seconds: float, table: str, cue: str, evidence: str
) -> None:
    from vlcli.run.prompt import _evidence_name

    assert format_hms(seconds) == table
    assert subtitles.to_srt([TimeSpan(seconds, seconds + 1, "x")]).splitlines()[1].startswith(cue)
    assert _evidence_name("c", seconds) == evidence


def test_format_hms_is_public_api_and_lives_with_the_times() -> None:
    import vlcli

    assert vlcli.format_hms is clock.format_hms


# --------------------------------------------------------------------------------------------
# format_hms: tenths, halves up (on the printed decimal), carrying.
# --------------------------------------------------------------------------------------------

HMS = [
    (0, "00:00:00.0"),
    (0.04, "00:00:00.0"),
    (0.05, "00:00:00.1"),
    (0.25, "00:00:00.3"),  # half up, not to even
    (0.35, "00:00:00.4"),  # the float is 0.34999..., its decimal 0.35 rounds up
    (1.45, "00:00:01.5"),
    (12.5, "00:00:12.5"),
    (59.94, "00:00:59.9"),
    (59.95, "00:01:00.0"),
    (59.96, "00:01:00.0"),
    (90, "00:01:30.0"),
    (3599.95, "01:00:00.0"),
    (3725.25, "01:02:05.3"),
    (86399.99, "24:00:00.0"),
    (360000, "100:00:00.0"),
    (-1.25, "-00:00:01.3"),
    (-0.04, "00:00:00.0"),
]


@pytest.mark.parametrize(("seconds", "expected"), HMS)
def test_format_hms(seconds: float, expected: str) -> None:
    assert format_hms(seconds) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_format_hms_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError):
        format_hms(bad)


# --------------------------------------------------------------------------------------------
# parse_time_value (also --start / --end)
# --------------------------------------------------------------------------------------------

VALUES = [
    ("90", 90.0),
    ("90.5", 90.5),
    ("0", 0.0),
    (".5", 0.5),
    ("1:30", 90.0),
    ("01:30", 90.0),
    ("90:00", 5400.0),
    ("00:12.50", 12.5),
    ("00:01:30.5", 90.5),
    ("1:02:05.5", 3725.5),
    ("00:00:12,500", 12.5),
    ("12.5s", 12.5),
    ("12.5 s", 12.5),
    ("12.5 sec", 12.5),
    ("12.5 seconds", 12.5),
    ("12.5 Seconds", 12.5),
    ("  12.5  ", 12.5),
    ("<12.5 seconds>", 12.5),
    ("1m30s", 90.0),
    ("1h2m3s", 3723.0),
    ("2 minutes", 120.0),
    ("1 minute 5 seconds", 65.0),
]


@pytest.mark.parametrize(("text", "expected"), VALUES)
def test_parse_time_value(text: str, expected: float) -> None:
    assert parse_time_value(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    ["", " ", "abc", "-5", "1:75", "1:60:00", "1:2", "12.5.3", "nan", "inf", "1e3",
     "5m", "12.5 m", "12 parsecs", "1:30 PM", "12.5 - 20.0", "three"],
)  # fmt: skip
def test_parse_time_value_rejects_junk(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_value(text)


# --------------------------------------------------------------------------------------------
# The modules stay pure, and their documented examples hold.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [times, clock, subtitles, prompts])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("module", [times, clock, subtitles, prompts])
def test_no_heavy_imports(module: Any) -> None:
    source = Path(module.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {"torch", "transformers", "torchvision", "torchcodec", "numpy"}


def test_public_api_from_the_package():
    import vlcli

    spans = vlcli.map_times(
        vlcli.parse_times("The dog jumps from 12.5 to 20.0 seconds."), clip_start_s=30.0
    )
    assert (spans[0].source_start_s, spans[0].source_end_s) == (42.5, 50.0)
    assert vlcli.format_hms(spans[0].source_start_s) == "00:00:42.5"


def test_numbers_too_long_for_a_float_are_not_times():
    huge = "1" + "0" * 400
    spans = parse_times(
        f"It happens at {huge} seconds, then from 2 to {huge} seconds, then at 3 s."
    )
    assert [(s.start_s, s.end_s) for s in spans] == [(3.0, 3.0)]
    assert [s.to_dict()["start_hms"] for s in spans] == ["00:00:03.0"]
    cut = parse_times(f'[{{"start_time": "{huge}", "end_time": 5, "description": "x"}}]')
    assert all(math.isfinite(s.start_s) and math.isfinite(s.end_s) for s in cut)
    with pytest.raises(ValueError):
        parse_time_value(huge)


# --------------------------------------------------------------------------------------------
# Forms found in real answers (issue 9): each of these was misread before.
# --------------------------------------------------------------------------------------------

REAL_FORMS = [
    # a noun naming the times between "between"/"from" and the first time
    ("The goal is reached between the marks 01:10 and 01:45.", [(70.0, 105.0)]),
    ("Here is the speech between the timestamps 02:30 and 03:29:", [(150.0, 209.0)]),
    ("It happens between seconds 2 and 5.", [(2.0, 5.0)]),
    ("The dog runs between the time points 3.5s and 6s.", [(3.5, 6.0)]),
    # an aside inside a range
    ("So the time range would be from 12.5s to, say, 20s.", [(12.5, 20.0)]),
    ("The segment is from 27.5 seconds to, let's say, 35 seconds.", [(27.5, 35.0)]),
    ("It runs between 3s and — roughly — 5s.", [(3.0, 5.0)]),
    ("It runs from 12s to (say) 20s.", [(12.0, 20.0)]),
    # times inside Markdown emphasis, one end at a time
    ("The fox runs from **0:17** to **0:25**.", [(17.0, 25.0)]),
    ("**0:17** - **0:25**: The fox runs.", [(17.0, 25.0)]),
    ("The fox runs between **12.5s** and **20s**.", [(12.5, 20.0)]),
    ("__0:09 - 0:25__ The fox runs.", [(9.0, 25.0)]),
    # brackets: clocks after a comma with no blank, a unit after the bracket
    ("A fox runs (00:00:09,00:00:25).", [(9.0, 25.0)]),
    ("The time range is [12.5, 20.0] seconds.", [(12.5, 20.0)]),
    ("[0000.0, 0029.0] seconds: a woman introduces stenciling.", [(0.0, 29.0)]),
]


@pytest.mark.parametrize(("answer", "expected"), REAL_FORMS)
def test_real_answer_forms(answer: str, expected: list[tuple[float, float]]) -> None:
    assert [(round(s.start_s, 6), round(s.end_s, 6)) for s in parse_times(answer)] == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # the noun rule names times: other words after "between" do not make a range
        ("The fight between the dog at 0:10 and the cat at 0:45.", [(10.0, 10.0), (45.0, 45.0)]),
        ("It happens between frames 3 and 5.", []),
        ("It runs from 3 to, say, 5 people.", []),
        ("- **00:05**- 3 foxes appear.", [(5.0, 5.0)]),
        ('[{"00:16": "a man enters"}, {"00:2', [(16.0, 16.0)]),  # a cut key: nothing
    ],
)
def test_real_answer_forms_do_not_overreach(
    answer: str, expected: list[tuple[float, float]]
) -> None:
    assert [(s.start_s, s.end_s) for s in parse_times(answer)] == expected


def test_a_clock_and_a_bare_number_are_not_a_range() -> None:
    # "00:05 - 3 foxes": the dash joins a time to a count; a range has a time at both ends.
    assert [(s.start_s, s.end_s) for s in parse_times("00:05 - 3 foxes appear.")] == [(5.0, 5.0)]
    assert [(s.start_s, s.end_s) for s in parse_times("00:12 - 20")] == [(12.0, 12.0)]


def test_markdown_emphasis_is_not_part_of_the_text() -> None:
    answer = '* **0:00-0:16:** Two grey foxes move.\n1.  **0:28 - 0:31:** "**AI** is busy."'
    assert [(s.start_s, s.end_s, s.text) for s in parse_times(answer)] == [
        (0.0, 16.0, "0:00-0:16: Two grey foxes move."),
        (28.0, 31.0, '0:28 - 0:31: "AI is busy."'),
    ]


def test_a_time_group_after_a_full_stop_belongs_to_the_sentence_before() -> None:
    # Gemini cites a sentence in brackets after its full stop, mid-paragraph; at the start of a
    # line the bracket heads the text after it.
    answer = (
        "They like a Fern. (0:09-0:25, 0:41-0:45) They open the cart. (0:30-0:33)\n"
        "(0:33-0:35) The profile tab shows the count."
    )
    assert [(s.start_s, s.end_s, s.text) for s in parse_times(answer)] == [
        (9.0, 25.0, "They like a Fern. (0:09-0:25, 0:41-0:45)"),
        (41.0, 45.0, "They like a Fern. (0:09-0:25, 0:41-0:45)"),
        (30.0, 33.0, "They open the cart. (0:30-0:33)"),
        (33.0, 35.0, "(0:33-0:35) The profile tab shows the count."),
    ]


@pytest.mark.parametrize(
    ("answer", "assume", "expected"),
    [
        ("<answer>23.50 to 30.00</answer><|im_end|>", True, [(23.5, 30.0, "23.50 to 30.00")]),
        (
            "<think>The dog is at 3s.</think><answer>12.0 to 15.0</answer>",
            True,
            [(3.0, 3.0, "The dog is at 3s."), (12.0, 15.0, "12.0 to 15.0")],
        ),
        (
            "The event happens in 2.0 - 5.0 seconds.<|im_end|><|endoftext|>",
            False,
            [(2.0, 5.0, "The event happens in 2.0 - 5.0 seconds.")],
        ),
    ],
)
def test_leftover_tags_are_not_text(
    answer: str, assume: bool, expected: list[tuple[float, float, str]]
) -> None:
    spans = parse_times(answer, assume_seconds=assume)
    assert [(s.start_s, s.end_s, s.text) for s in spans] == expected


KEYED_JSON = [
    ('[{"timecode": "00:16", "caption": "a man enters"}]', [(16.0, 16.0, "a man enters")]),
    ('[{"time_code": "00:16", "caption": "a man enters"}]', [(16.0, 16.0, "a man enters")]),
    (
        '[{"timecode":"00:00-00:04","chapterSummary":"An aerial view of Rio."}]',
        [(0.0, 4.0, "An aerial view of Rio.")],
    ),
    ('[{"startTime": 1, "endTime": 2, "description": "a"}]', [(1.0, 2.0, "a")]),
    ('[{"timeCode": "0:05", "sceneDescription": "a"}]', [(5.0, 5.0, "a")]),
    ("[{'00:16': 'a man enters'}]", [(16.0, 16.0, "a man enters")]),
    ('[{"00:16": "a man enters",}]', [(16.0, 16.0, "a man enters")]),
]


@pytest.mark.parametrize(("answer", "expected"), KEYED_JSON)
def test_json_time_keys(answer: str, expected: list[tuple[float, float, str]]) -> None:
    assert [(s.start_s, s.end_s, s.text) for s in parse_times(answer)] == expected


_CUT_HEAD = (
    '```json\n[\n  {\n    "start_time": "00:01",\n    "end_time": "00:05",\n'
    '    "description": "A man enters."\n  },\n  {\n'
)

CUT_OFF_JSON = [
    # both times of the last object are complete: the span is kept, its cut caption ends in "…"
    (
        _CUT_HEAD
        + '    "start_time": "00:06",\n    "end_time": "00:09",\n    "description": "He si',
        [(1.0, 5.0, "A man enters."), (6.0, 9.0, "He si…")],
    ),
    (
        _CUT_HEAD + '    "start_time": "00:06",\n    "end_time": "00:09",\n    "description":',
        [(1.0, 5.0, "A man enters."), (6.0, 9.0, "…")],
    ),
    (
        _CUT_HEAD + '    "start_time": "00:06",\n    "end_time": "00:09"',
        [(1.0, 5.0, "A man enters."), (6.0, 9.0, "…")],
    ),
    # an end cut off, or not stated yet: the object is dropped, and no stray instant is left
    (
        _CUT_HEAD + '    "start_time": "00:06",\n    "end_time": "00:0',
        [(1.0, 5.0, "A man enters.")],
    ),
    (_CUT_HEAD + '    "start_time": "00:06",\n    "end_time": 9', [(1.0, 5.0, "A man enters.")]),
    (_CUT_HEAD + '    "start_time": "00:06",\n', [(1.0, 5.0, "A man enters.")]),
    # one-line objects, a range in one key, a time as the key
    (
        '[{"timecode":"00:00-00:04","summary":"Rio."},{"timecode":"00:04-00:10","summary":"Bea',
        [(0.0, 4.0, "Rio."), (4.0, 10.0, "Bea…")],
    ),
    (
        '[{"00:16": "a man enters"}, {"00:20": "he sits',
        [(16.0, 16.0, "a man enters"), (20.0, 20.0, "he sits…")],
    ),
    (
        '[{"00:16": "a man enters"}, {"00:20": "he sits"',
        [(16.0, 16.0, "a man enters"), (20.0, 20.0, "he sits")],
    ),
]


@pytest.mark.parametrize(("answer", "expected"), CUT_OFF_JSON)
def test_json_cut_off_by_the_token_limit(
    answer: str, expected: list[tuple[float, float, str]]
) -> None:
    assert [(s.start_s, s.end_s, s.text) for s in parse_times(answer)] == expected


# MM:SS:FF or hh:mm:ss? Gemini writes "00:11:00" for 11 s; hh:mm:ss reads it as 11 minutes.

_GEMINI_TIMECODES = (
    '[{"timecode": "00:00:00", "caption": "fur"}, {"timecode": "00:11:00", "caption": "a fox"},'
    ' {"timecode": "05:03:00", "caption": "a lion"}]'
)


def test_three_part_clocks_are_hh_mm_ss_without_the_clip_length() -> None:
    spans = parse_times(_GEMINI_TIMECODES)
    assert [(s.start_s, s.text) for s in spans] == [
        (0.0, "fur"),
        (660.0, "a fox"),
        (18180.0, "a lion"),
    ]


def test_three_part_clocks_are_mm_ss_ff_when_hh_mm_ss_cannot_fit_the_clip() -> None:
    spans = parse_times(_GEMINI_TIMECODES, clip_duration_s=310.0)
    assert [(s.start_s, s.text) for s in spans] == [
        (0.0, "fur"),
        (11.0, "a fox"),
        (303.0, "a lion"),
    ]
    prose = "The man leaves at 00:11:00 and returns from 00:40:12 to 00:52:00."
    assert [(s.start_s, s.end_s) for s in parse_times(prose, clip_duration_s=60)] == [
        (11.0, 11.0),
        (40.0, 52.0),  # the frame field (12) is below one second: the time is its second
    ]


@pytest.mark.parametrize(
    ("answer", "clip_s", "expected"),
    [
        ("At 00:00:16 a lion walks; at 00:04:21 a bobcat.", 310.0, [16.0, 261.0]),  # both fit
        ("At 00:01:05 it ends.", 60.0, [65.0]),  # past the end, but not by twice: an overshoot
        ("At 00:11:00.5 it ends.", 60.0, [660.5]),  # a fraction: only hh:mm:ss.fff has one
        ("At 00:11:00 and at 01:30:00.", 60.0, [660.0, 5400.0]),  # mm:ss:ff would not fit either
        ("At 01:30 and at 00:11:00.", 3.0 * 3600, [90.0, 660.0]),  # hh:mm:ss fits a 3 h clip
    ],
)
def test_three_part_clocks_stay_hh_mm_ss_when_that_can_be_right(
    answer: str, clip_s: float, expected: list[float]
) -> None:
    assert [s.start_s for s in parse_times(answer, clip_duration_s=clip_s)] == expected


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_clip_duration_must_be_a_length(bad: float) -> None:
    with pytest.raises(ValueError):
        parse_times("at 00:11:00", clip_duration_s=bad)


def test_ask_reads_three_part_clocks_against_the_planned_clip() -> None:
    from vlcli.models.families import QWEN2_5_VL
    from vlcli.planning.plan import SamplingOptions, VideoFacts, plan_video
    from vlcli.run.prompt import map_answer_times

    plan = plan_video(VideoFacts(640, 360, 300, 30.0), SamplingOptions(), QWEN2_5_VL)  # 10 s
    answer = '[{"timecode": "00:05:00", "caption": "A dog sits."}]'
    (span,) = map_answer_times(answer, [plan], [plan.time_axis()])
    assert span.source_start_s == pytest.approx(5.0, abs=0.5) and not span.outside  # not 300 s


# --------------------------------------------------------------------------------------------
# Issue 21, items 11-12: an image has no time axis; times not mapped are still flagged.
# --------------------------------------------------------------------------------------------


def _one_second_plan() -> Any:
    from vlcli.models.families import QWEN2_5_VL
    from vlcli.planning.plan import SamplingOptions, VideoFacts, plan_video

    return plan_video(VideoFacts(640, 360, 30, 30.0), SamplingOptions(), QWEN2_5_VL)  # 1 s


def test_an_image_prompt_states_no_times() -> None:
    from vlcli.models.families import QWEN2_5_VL
    from vlcli.planning.plan import SamplingOptions, plan_image
    from vlcli.run.prompt import map_answer_times

    image = plan_image(800, 600, SamplingOptions(), QWEN2_5_VL)
    answer = "The clock shows 10:10, open 9:00-17:00."
    assert parse_times(answer)  # the text holds clock readings...
    assert map_answer_times(answer, [image], ()) == []  # ...but no time of a video


def test_times_not_vouched_for_are_flagged_outside_and_ordered() -> None:
    from vlcli.run.prompt import map_answer_times

    plan = _one_second_plan()
    answer = "Open 9:00-17:00. He waves from 0.8 to 0.2 seconds. At 0.5 seconds he sits."
    shop, wave, sits = map_answer_times(answer, [plan], [None])  # the axis is not vouched for
    assert not shop.mapped and shop.outside  # 540-1020 s of a 1 s clip
    assert (wave.start_s, wave.end_s) == (0.2, 0.8) and wave.reversed and not wave.outside
    assert not sits.outside and not sits.reversed
    assert wave.to_dict()["reversed"] and not sits.to_dict()["reversed"]


def test_a_mapped_reversed_span_is_flagged() -> None:
    (span,) = map_times([TimeSpan(9, 6)], clip_start_s=100, clip_end_s=130)
    assert (span.source_start_s, span.source_end_s) == (106.0, 109.0)
    assert span.reversed and not span.clipped


def test_several_videos_times_are_flagged_against_the_longest() -> None:
    from vlcli.models.families import QWEN2_5_VL
    from vlcli.planning.plan import SamplingOptions, VideoFacts, plan_video
    from vlcli.run.prompt import map_answer_times

    short = _one_second_plan()
    longer = plan_video(VideoFacts(640, 360, 300, 30.0), SamplingOptions(), QWEN2_5_VL)  # 10 s
    inside, past = map_answer_times(
        "At 5 seconds a dog; at 50 seconds a cat.", [short, longer], [None, None]
    )
    assert not inside.outside and past.outside


# --------------------------------------------------------------------------------------------
# Issue 21, item 15: forms that were misread.
# --------------------------------------------------------------------------------------------

FORMS = [
    # a unit after a range applies to both ends
    ("It happens from 2 to 3 minutes.", [(120.0, 180.0)]),
    ("It happens at 2-3 minutes.", [(120.0, 180.0)]),
    ("The match is between 1 and 2 hours.", [(3600.0, 7200.0)]),
    ("From 1.5 to 2 minutes he runs.", [(90.0, 120.0)]),
    # minutes and seconds as one time
    ("At 1 min 30 s he sits.", [(90.0, 90.0)]),
    ("At 1 minute 30s he sits.", [(90.0, 90.0)]),
    # SubRip's hh:mm:ss,mmm, a span with milliseconds
    ("00:00:05,500 --> 00:00:07,000", [(5.5, 7.0)]),
    ("The cue runs 01:02:03,250 --> 01:02:04,000.", [(3723.25, 3724.0)]),
    # decimals of minutes; a decimal comma before a unit
    ("At 1.5 minutes he sits.", [(90.0, 90.0)]),
    ("At 1,5 seconds he sits.", [(1.5, 1.5)]),
    ("At 2,25 s he sits.", [(2.25, 2.25)]),
    # a negative time is negative (the clip's mapping flags it outside), not its magnitude
    ("At -3 seconds he sits.", [(-3.0, -3.0)]),
    # "second N" names a time
    ("At second 2 he sits.", [(2.0, 2.0)]),
    ("Around the second 4.5 a dog barks.", [(4.5, 4.5)]),
    # durations are not times
    ("It lasted 40 hours.", []),
    ("It is a 21-second clip.", []),
    ("It is a 21 second clip.", []),
    ("It is a 21s clip of a dog.", []),
]


@pytest.mark.parametrize(("answer", "expected"), FORMS)
def test_forms_once_misread(answer: str, expected: list[tuple[float, float]]) -> None:
    assert [(s.start_s, s.end_s) for s in parse_times(answer)] == expected


@pytest.mark.parametrize(
    "answer",
    [
        "There are 2-3 people.",  # a bare range is no time
        "The seconds 1,5 and 7 are marked.",  # a comma between numbers is a list
        "The (00:00:09,00:00:25) bracket is a range.",
        "It scored 1,500 points at 3 seconds.",
        "The second 2 people leave.",  # "second" as an ordinal with no "at"
    ],
)
def test_forms_close_to_those_stay_as_they_were(answer: str) -> None:
    got = [(s.start_s, s.end_s) for s in parse_times(answer)]
    expected = {
        "The (00:00:09,00:00:25) bracket is a range.": [(9.0, 25.0)],
        "It scored 1,500 points at 3 seconds.": [(3.0, 3.0)],
    }.get(answer, [])
    assert got == expected


def test_a_negative_time_maps_outside_the_clip() -> None:
    (span,) = map_times(parse_times("At -3 seconds he sits."), clip_start_s=10, clip_end_s=20)
    assert span.outside and span.source_start_s == 10.0


def test_a_window_record_read_back_keeps_its_flags() -> None:
    # --resume reads a finished window's spans back from its record: the flags come back too
    from vlcli.run.inputs import Task
    from vlcli.run.prompt import AskSettings
    from vlcli.run.windowed import result_from_record

    plan = _one_second_plan()
    (span,) = map_times([TimeSpan(0.8, 0.2, "x")], clip_end_s=1.0)
    record = {"answer": "x", "times": [span.to_dict()]}
    task = Task(paths=["a.mp4"], stem="a", key="k")
    result = result_from_record(record, task, plan, AskSettings(question="q"))
    assert result.times == [span]
