"""The times a Qwen answer states, and where they fall in the source video.

A Qwen2.5-VL or Qwen3-VL model counts seconds from the first frame of the clip it was shown.
``vlcli ask --start 90`` shows it the video from second 90, so "at 12.5 seconds" in its answer
means second 102.5 of the file. This module is pure text and arithmetic (no torch, no
transformers): :func:`parse_times` finds the times an answer states, :func:`map_times` moves them
to source seconds and clips them to the range that was shown (:func:`~vlcli.times.format.format_hms`
writes them ``hh:mm:ss.s``) and :func:`parse_time_value` reads one time value (it also reads ``--start`` and
``--end``).

>>> spans = map_times(parse_times("The dog jumps from 12.5 to 20.0 seconds."), clip_start_s=90)
>>> [(s.source_start_s, s.source_end_s) for s in spans]
[(102.5, 110.0)]
>>> spans[0].to_dict()["start_hms"]
'00:01:42.5'

What :func:`parse_times` reads
------------------------------
*Prose*, sentence by sentence:

- seconds with a unit: ``12.5 seconds``, ``12.5s``, ``12.5 sec``, ``at 3 seconds``,
  ``the 12.5-second mark``, a decimal comma before the unit (``1,5 seconds``), a negative time
  (``at -3 seconds``: before the clip, flagged outside once mapped), ``at second 2``; minutes
  and hours in words: ``1 minute 5 seconds``, ``1 min 30 s``, ``2 minutes``, ``1.5 minutes``,
  ``1m30s``;
- clock times: ``mm:ss``, ``mm:ss.ff``, ``hh:mm:ss``, ``hh:mm:ss.fff``, SubRip's
  ``hh:mm:ss,mmm`` (not ``4:30 PM``); a
  three-part clock is ``hh:mm:ss`` unless the clip's length, when given, rules that out
  (``mm:ss:ff``, as Gemini writes ``00:11:00`` for 11 s: see :func:`parse_times`);
- Qwen3-VL timestamp tokens echoed back: ``<12.5 seconds>``;
- ranges of any of these: ``from 12.5 to 20.0 seconds``, ``between 3 and 5 seconds``,
  ``12.5 - 20.0 seconds``, ``12.5-20.0s``, ``00:12 - 00:20``, ``from 1:05 to 1:10``,
  ``[12.5s, 20.0s]``, ``[12.5, 20.0] seconds``, ``(00:00:09,00:00:25)``, several in one
  bracket ``(0:09-0:25, 0:41-0:45)``, ``00:00:05,500 --> 00:00:07,000``; a unit on either end
  is enough (minutes or hours after the end apply to a bare start: ``from 2 to 3 minutes`` is
  120-180 s), but a clock and a bare number are not a range (``00:05 - 3 foxes``);
- a noun naming the times after "between": ``between the marks 01:10 and 01:45``,
  ``between the timestamps 02:30 and 03:29``, ``between seconds 2 and 5`` (a closed list of such
  nouns: "between the dog at 0:10 and the cat at 0:45" states two instants);
- an aside of one to three words before a range's end: ``from 12.5s to, say, 20s``,
  ``and — roughly — 5s``, ``to (say) 20s``;
- a start and an end stated apart in one sentence: "it *starts* at 3 s and *ends* at 7 s".

Markdown emphasis is read as blanks (``from **0:17** to **0:25**``, ``__0:09 - 0:25__``) and
left out of the text; tags a model or its runner leaves in (``<answer>``, ``</think>``,
``<|im_end|>``) end a sentence and are left out too. Zero-padded seconds (``0000.0 - 0029.0
seconds``, VTG-LLM) are plain numbers.

A range of two bare numbers (``12.5 – 20.0``, ``from 3 to 5``, ``[12.5, 20.0]``) is taken only
when the unit is implied: nothing word-like follows it (``3 to 5 people`` is not a time) and the
sentence speaks of time (``seconds``, ``sec``, ``timestamp``, ``time``...), or the caller passes
``assume_seconds=True`` (the answer to a grounding prompt that asked for seconds). A single bare
number is never a time: ``3 people``, ``version 2.5``, ``1920x1080``.

Durations are not times: ``for 3 seconds``, ``lasts 10 seconds``, ``30 seconds long``,
``a 30-second clip``, ``a 21s clip``, ``5 seconds later``, ``every 2 seconds``, ``2 seconds after
he sits`` are skipped.

*JSON*, anywhere in the answer (a ```` ```json ```` fence, trailing prose, Python-style quotes
and trailing commas are fine), read by :mod:`vlcli.times.parse_json`: every object with
``start_time``/``end_time`` (or ``start``/``end``, ``startTime``/``endTime``, ``begin``/``stop``...),
or with ``timestamp`` (or ``time``, ``timecode``, ``timestamps``) holding one time,
``[start, end]`` or a range string, and a ``description`` (or ``caption``, ``event``, ``text``...,
else its first other string). Values may be numbers, numeric strings, ``"12.5 seconds"``,
``"mm:ss.ff"``. An object whose keys are times (``{"00:05": "a man enters"}``) gives one span per
key. A list cut off by the token limit gives its complete objects, and its last object when the
times that object states are complete; its cut caption then ends in ``…``; an object cut before
its end time is dropped (not made an instant).

Each span's ``text`` is the JSON description, or the sentence the time came from (list bullets
and emphasis removed; a bracket of times right after a full stop, mid-line, belongs to the
sentence before it, as Gemini writes "... the cart. (0:15-0:17) Then ..."); its ``raw`` is the
matched time expression (for JSON, the object as compact JSON).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from vlcli.times.format import format_hms
from vlcli.times.parse_json import blank, json_regions

__all__ = [
    "TimeSpan",
    "bound_times",
    "map_times",
    "parse_time_value",
    "parse_times",
]

# Source seconds are rounded to this many decimals after mapping, so that 12.5 + 100.1 prints as
# 112.6 and not 112.60000000000001 (a microsecond is far below a frame).
_SOURCE_DECIMALS = 6


@dataclass(frozen=True)
class TimeSpan:
    """One time or time range stated in an answer.

    ``start_s``/``end_s`` are the seconds the model stated, counted from the start of the clip it
    saw (``end_s == start_s`` for an instant). :func:`map_times` fills the ``source_*`` fields:
    the same times in seconds of the source video, clipped to the range that was shown
    (``clipped`` when a bound moved, ``outside`` when the whole span lay outside that range);
    :func:`bound_times` sets ``outside`` for spans left in the model's seconds. ``reversed``:
    the answer stated the end before the start (both functions put them in order).

    >>> span = TimeSpan(3.0, 3.0, text="A man enters.", raw="3 seconds")
    >>> span.is_instant, span.mapped
    (True, False)
    """

    start_s: float
    end_s: float
    text: str = ""
    raw: str = ""
    source_start_s: float | None = None
    source_end_s: float | None = None
    clipped: bool = False
    outside: bool = False
    reversed: bool = False

    @property
    def is_instant(self) -> bool:
        """True when the span is one moment, not a range."""
        return self.start_s == self.end_s

    @property
    def mapped(self) -> bool:
        """True once :func:`map_times` has given the span source seconds."""
        return self.source_start_s is not None and self.source_end_s is not None

    @property
    def display_start_s(self) -> float:
        """Source seconds when mapped, else the seconds the model stated."""
        return self.source_start_s if self.source_start_s is not None else self.start_s

    @property
    def display_end_s(self) -> float:
        """Source seconds when mapped, else the seconds the model stated."""
        return self.source_end_s if self.source_end_s is not None else self.end_s

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``start_s``/``end_s`` are source seconds once mapped.

        ``model_start_s``/``model_end_s`` keep the seconds as the model stated them.

        >>> span = map_times([TimeSpan(12.5, 20.0, "A dog jumps.", "12.5-20s")], clip_start_s=60)[0]
        >>> d = span.to_dict()
        >>> d["start_s"], d["end_s"], d["start_hms"], d["end_hms"], d["model_start_s"]
        (72.5, 80.0, '00:01:12.5', '00:01:20.0', 12.5)
        """
        start, end = self.display_start_s, self.display_end_s
        return {
            "start_s": start,
            "end_s": end,
            "start_hms": format_hms(start),
            "end_hms": format_hms(end),
            "text": self.text,
            "raw": self.raw,
            "model_start_s": self.start_s,
            "model_end_s": self.end_s,
            "mapped": self.mapped,
            "clipped": self.clipped,
            "outside": self.outside,
            "reversed": self.reversed,
        }


# --------------------------------------------------------------------------------------------
# Formatting and single values
# --------------------------------------------------------------------------------------------


_NUM = r"\d+(?:\.\d+)?"
_UNIT_S = r"(?:(?:seconds?|secs?|s)(?![a-z])|秒钟?)"
_UNIT_M = r"(?:minutes?|mins?)(?![a-z])"
_UNIT_H = r"(?:hours?|hrs?)(?![a-z])"
_AND = r"(?:\s*,?\s*(?:and\s+)?)"
# A decimal comma, only right before a unit ("1,5 seconds"): "1,500" is a thousands group and
# "1,5 and 7" a list.
_COMMA_DECIMAL = r"\d+,\d{1,2}(?!\d)"
_LEAD = rf"(?:{_COMMA_DECIMAL}|{_NUM})"
_SECONDS_PART = rf"{_AND}(?:{_COMMA_DECIMAL}|{_NUM})\s*(?:seconds?|secs?|s)(?![a-z])"
# "1 hour 2 minutes 5 seconds", "1 minute and 5.5 seconds", "1 min 30 s", "1.5 minutes" (it
# must start with hours or minutes; plain seconds are the number-and-unit form).
_WORDY = (
    rf"{_LEAD}\s*{_UNIT_H}(?:{_AND}\d+\s*{_UNIT_M})?(?:{_SECONDS_PART})?"
    rf"|{_LEAD}\s*{_UNIT_M}(?:{_SECONDS_PART})?"
)
# "1h2m3s", "1h30s", "1m30s", "1m30.5s" (a lone "5m" could be metres: not taken).
_COMPACT = (
    r"\d+h(?:\d{1,2}m(?:\d{1,2}(?:\.\d+)?s)?|\d{1,2}(?:\.\d+)?s)(?![a-z\d])"
    r"|\d+m\d{1,2}(?:\.\d+)?s(?![a-z\d])"
)
_PART = re.compile(r"(\d+(?:[.,]\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)", re.I)
_CLOCK_VALUE = re.compile(
    r"(?:(?P<h>\d+):(?P<m>\d{1,2})|(?P<mm>\d+)):(?P<s>\d{2})(?:[.,](?P<f>\d+))?", re.I
)
_NUMBER_VALUE = re.compile(rf"(?P<n>{_NUM}|\.\d+)\s*(?:{_UNIT_S})?\.?", re.I)
_WORDY_VALUE = re.compile(rf"(?:{_WORDY}|{_COMPACT})", re.I)


def _clock_seconds(text: str, frames: bool = False) -> float | None:
    """``[h:]mm:ss[.fff]`` to seconds; None when a field is out of range.

    ``frames``: a three-part clock without a fraction is ``mm:ss:ff`` (see :func:`parse_times`);
    the frame field is dropped, as its rate is not stated and it is below one second.
    """
    m = _CLOCK_VALUE.fullmatch(text)
    if m is None:
        return None
    secs = float(f"{m['s']}.{m['f'] or 0}")
    if secs >= 60:
        return None
    if m["h"] is not None:
        minutes = int(m["m"])
        if minutes >= 60:
            return None
        if frames and m["f"] is None:
            return int(m["h"]) * 60.0 + minutes
        return int(m["h"]) * 3600 + minutes * 60 + secs
    return int(m["mm"]) * 60 + secs


def _unit_scale(unit: str) -> float:
    u = unit.lower()
    return 3600.0 if u.startswith("h") else 60.0 if u.startswith("m") else 1.0


def _parts_seconds(text: str) -> float:
    """Sum of "N hours / N minutes / N seconds" parts (words or the compact 1h2m3s)."""
    return sum(float(n.replace(",", ".")) * _unit_scale(u) for n, u in _PART.findall(text))


def _single_unit_scale(text: str) -> float:
    """The unit's seconds when ``text`` is one number and one unit ("3 minutes"), else 1."""
    parts = _PART.findall(text)
    return _unit_scale(parts[0][1]) if len(parts) == 1 else 1.0


def parse_time_value(text: str) -> float:
    """Read one time value and return it in seconds.

    Accepted: plain seconds (``90``, ``12.5``), seconds with a unit (``12.5s``, ``12.5 sec``,
    ``12.5 seconds``), clock times (``1:30``, ``01:30.25``, ``1:02:05.5``, ``00:01:30,500``;
    seconds below 60, and minutes below 60 when hours are given), hours and minutes
    (``1m30s``, ``1h2m3s``, ``2 minutes``, ``1 minute 5 seconds``), and a Qwen3-VL timestamp
    token (``<12.5 seconds>``). Surrounding blanks are ignored. Anything else, negative values
    included, raises ``ValueError``.

    >>> parse_time_value("1:02:05.5"), parse_time_value("12.5"), parse_time_value("12.5s")
    (3725.5, 12.5, 12.5)
    >>> parse_time_value("00:01:30.5"), parse_time_value("1:30"), parse_time_value("90")
    (90.5, 90.0, 90.0)
    >>> parse_time_value("soon")
    Traceback (most recent call last):
    ...
    ValueError: not a time: 'soon' (expected seconds such as 90 or 12.5s, or mm:ss, hh:mm:ss.fff)
    """
    seconds = _time_value(text) if isinstance(text, str) else None
    if seconds is None:
        raise ValueError(
            f"not a time: {text!r} (expected seconds such as 90 or 12.5s, or mm:ss, hh:mm:ss.fff)"
        )
    return seconds


def _time_value(text: str, frames: bool = False) -> float | None:
    """:func:`parse_time_value`, or None; ``frames`` as in :func:`_clock_seconds`."""
    value = text.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    seconds: float | None = None
    if ":" in value:
        seconds = _clock_seconds(value, frames)
    elif _NUMBER_VALUE.fullmatch(value):
        number = _NUMBER_VALUE.fullmatch(value)
        assert number is not None
        seconds = float(number["n"])
    elif _WORDY_VALUE.fullmatch(value):
        seconds = _parts_seconds(value)
    if seconds is not None and math.isfinite(seconds):  # 400 digits make an infinite float
        return seconds
    return None


# --------------------------------------------------------------------------------------------
# Prose
# --------------------------------------------------------------------------------------------

# Not glued to a (Latin) word or number, a decimal point, a clock colon or an apostrophe ('80s),
# and not the tail of a thousands group (1,234). A clock is never such a tail, so it may follow
# a comma directly ("(00:00:09,00:00:25)").
_BEFORE_CLOCK = r"(?<![A-Za-z0-9_.:'’])"
_BEFORE = rf"{_BEFORE_CLOCK}(?<!\d,)"
# SubRip writes milliseconds after a comma (``00:00:05,500``); two digits after a comma are the
# next clock of a pair ("(00:00:09,00:00:25)").
_CLOCK = r"(?:\d{1,2}:[0-5]\d:[0-5]\d(?:,\d{3}(?![\d:])|\.\d+)?|\d{1,3}:[0-5]\d(?:\.\d+)?)"


def _value(p: str) -> str:
    """Regex for one time value; its named groups are prefixed with ``p``."""
    return (
        rf"(?:<\s*(?P<{p}tok>{_NUM})\s*{_UNIT_S}\s*>"
        rf"|{_BEFORE_CLOCK}(?P<{p}clk>{_CLOCK})(?!\d)(?!:\d)(?!\.\d)(?!\s*[ap]\.?m\b)"
        rf"|{_BEFORE}(?P<{p}wordy>{_WORDY}|{_COMPACT})"
        rf"|{_BEFORE}(?P<{p}num>{_COMMA_DECIMAL}(?=[ \t]*{_UNIT_S})|{_NUM})(?!\d)(?!:\d)(?!\.\d)"
        rf"(?:(?P<{p}sep>-|[ \t]*)(?P<{p}unit>{_UNIT_S}))?)"
    )


_MOD = r"(?:(?:the|about|around|approximately|approx\.|roughly|nearly|almost|~)\s*)*"
_MARK = r"(?:\s+mark)?"
_CONN = r"(?:\s*(?:-->|->|[-–—~到至])\s*|\s+(?:to|until|till|through|thru)\s+)"
# An aside between "to"/"and" and the end of a range: "from 12.5s to, say, 20s",
# "and — roughly — 5s", "to (say) 20s". One to three words, no number.
_WORD = r"[^\W\d_]+(?:['’][^\W\d_]+)?"
_ASIDE_WORDS = rf"(?:{_WORD}\s+){{0,2}}{_WORD}"
_ASIDE = (
    rf"(?:\s*,\s*{_ASIDE_WORDS}\s*,|\s*[—–]\s*{_ASIDE_WORDS}\s*[—–]"
    rf"|\s*\(\s*{_ASIDE_WORDS}\s*\))\s*"
)
_CONN_KW = (
    r"(?:\s*(?:-->|->|[-–—~到至])\s*"
    rf"|\s+(?:to|until|till|through|thru|and)(?:{_ASIDE}|\s+))"
)
# A noun naming the times themselves, between "between" and the first one: "between the marks
# 01:10 and 01:45", "between the timestamps 02:30 and 03:29", "between seconds 2 and 5". A closed
# list: "between the dog at 0:10 and the cat at 0:45" states two instants.
_TIME_NOUN = (
    r"(?:the\s+)?(?:time[\s-]*(?:marks?|points?|stamps?|codes?)|timestamps?|timecodes?|times"
    r"|marks|points|moments|positions|seconds)(?:\s+of)?\s+"
)

_FROM_RE = re.compile(
    rf"\b(?:from|between)\s+(?:{_TIME_NOUN})?"
    rf"(?P<body>{_MOD}{_value('a')}{_MARK}{_CONN_KW}{_MOD}{_value('b')})",
    re.I,
)
# "[12.5, 20.0]", "(00:00:09,00:00:25)", "[12.5, 20.0] seconds".
_BRACKET_RE = re.compile(
    rf"[\[(]\s*{_value('a')}\s*,\s*{_value('b')}\s*[\])]"
    r"(?:[ \t]*(?P<after_unit>(?:seconds?|secs?)(?![a-z])|秒))?",
    re.I,
)
_DASH_RE = re.compile(rf"{_value('a')}{_MARK}{_CONN}{_MOD}{_value('b')}", re.I)
_INSTANT_RE = re.compile(_value("a"), re.I)
# "at second 2", "around the second 4.5": a time named by its second.
_SECOND_RE = re.compile(
    rf"\b(?:at|around|near|by|until|till)\s+(?:the\s+)?(?P<body>second\s+(?P<n>{_NUM}))(?![\d.:])"
    rf"(?!\s*(?:{_UNIT_S}|{_UNIT_M}|{_UNIT_H}))",
    re.I,
)

# The sentence speaks of time: a bare-number range in it may be read as seconds.
_TIME_WORD = re.compile(
    r"\b(?:seconds?|secs?|timestamps?|time[\s_-]*stamps?|time(?:\s+(?:range|span|interval|"
    r"period|segment|window))?|start_time|end_time)\b",
    re.I,
)
_WORD_AFTER = re.compile(r"\s*[^\W\d_]")
_VIDEO_AFTER = re.compile(r"\s*(?:in|of|into|within)\s+(?:the\s+)?(?:video|clip|footage)\b", re.I)
_DATE_AFTER = re.compile(r"[-–/.]\d")
_DATE_BEFORE = re.compile(r"\d[-–/.]$")

# Durations, not positions: "for 3 seconds", "lasts about 10 seconds", "every 2 seconds".
_DURATION_BEFORE = re.compile(
    r"\b(?:for|lasts?|lasting|lasted|takes?|took|taking|every|each|duration|length)\b"
    r"(?:\s+(?:of|is|was))?[\s:]*"
    r"(?:(?:about|around|approximately|approx\.|roughly|nearly|almost|over|under|less\s+than|"
    r"more\s+than|at\s+least|at\s+most|up\s+to|only|just|another|a\s+further|a|an|~)\s*)*$",
    re.I,
)
# ... "30 seconds long", "5 seconds later", "10 seconds in length".
_DURATION_AFTER = re.compile(
    r"\s*(?:-\s*)?(?:long|later|earlier|apart|ago|each|in\s+(?:length|duration|total)|"
    r"of\s+(?:footage|video|content|the\s+video))\b",
    re.I,
)
# ... "2 seconds after he sits" (relative), unless it reads "at 2 seconds after the start".
_RELATIVE_AFTER = re.compile(
    r"\s*(?:before|after)\b(?!\s+the\s+(?:start|beginning|video\s+(?:starts|begins)))", re.I
)
_AT_BEFORE = re.compile(r"\b(?:at|by)\s+(?:(?:about|around|approximately|roughly|~)\s*)?$", re.I)
_ARTICLE_BEFORE = re.compile(r"\b(?:a|an)\s+$", re.I)
# "the 12.5-second mark" is a time; "a 30-second clip" is a length.
_MARK_AFTER = re.compile(r"\s*(?:mark|point|timestamp|time|position|moment|frame)\b", re.I)

_START_WORD = re.compile(r"\b(?:start(?:s|ed|ing)?|begin(?:s|ning)?|began|onset)\b", re.I)
_END_WORD = re.compile(
    r"\b(?:end(?:s|ed|ing)?|stop(?:s|ped|ping)?|finish(?:es|ed|ing)?|conclude[sd]?|until|till)\b",
    re.I,
)
_PAREN_BETWEEN = re.compile(r"\s*[(\[]\s*")

_ABBREVIATION_END = re.compile(r"\b(?:approx|e\.g|i\.e|vs|mr|mrs|dr|ca|fig|cf)\.$", re.I)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？])")
_BULLET = re.compile(r"^(?:[-*•·]\s+|#+\s+)")
# A bracket holding times only: "(0:15-0:17)", "(0:09-0:25, 0:41-0:45)", "[12.5s - 20s]".
_TIMES_GROUP = re.compile(r"[(\[](?=[^)\]]*\d)[\d:.,;\s\-–—~]*(?:s|secs?|seconds)?[\s]*[)\]]", re.I)
_HAS_LETTER = re.compile(r"[^\W\d_]")
# Markdown emphasis around times ("**0:17** - **0:25**", "__0:09__"): blanked before reading
# and dropped from the text. Underscores inside a word (start_time) stay.
_EMPHASIS = re.compile(r"\*+|(?<!\w)_+|_+(?!\w)")
# Tags a model or its runner leaves in the text: <answer>, </think>, <|im_end|>.
_TAG = re.compile(
    r"</?(?:answer|think|thinking|reasoning|output|result|response|solution)\s*>"
    r"|<\|[A-Za-z0-9_]{1,40}\|>",
    re.I,
)


@dataclass(frozen=True)
class _Value:
    seconds: float
    has_unit: bool
    sep: str | None
    unit: str | None
    number: str | None
    clock: bool = False
    scale: float = 1.0  # "3 minutes": the unit a bare number before it in a range takes


def _read_value(m: re.Match[str], p: str, frames: bool) -> _Value | None:
    if m[f"{p}tok"] is not None:
        return _Value(float(m[f"{p}tok"]), True, None, None, None)
    if m[f"{p}clk"] is not None:
        seconds = _clock_seconds(m[f"{p}clk"], frames)
        return None if seconds is None else _Value(seconds, True, None, None, None, clock=True)
    if m[f"{p}wordy"] is not None:
        wordy = m[f"{p}wordy"]
        return _Value(
            _parts_seconds(wordy), True, None, None, None, scale=_single_unit_scale(wordy)
        )
    number = m[f"{p}num"]
    unit = m[f"{p}unit"]
    return _Value(float(number.replace(",", ".")), unit is not None, m[f"{p}sep"], unit, number)


def _sentences(text: str) -> Iterator[tuple[int, str]]:
    """(offset, sentence) pairs: lines, each split after ``.``, ``!`` or ``?`` and a blank.

    A bracket of times right after a full stop, in the middle of a line, closes the sentence
    before it: Gemini cites a sentence so ("... to the cart. (0:15-0:17) They then ..."). At the
    start of a line the bracket heads the text after it ("(00:00-00:10) The app opens.").
    """
    for line in re.finditer(r"[^\n]+", text):
        s = line.group()
        start = 0
        for brk in _SENTENCE_BREAK.finditer(s):
            if brk.start() < start:  # inside a bracket already given to the sentence before
                continue
            if _ABBREVIATION_END.search(s[start : brk.start()]):
                continue
            end, after = brk.start(), brk.end()
            group = _TIMES_GROUP.match(s, after)
            if group is not None and _HAS_LETTER.search(s, start, end):
                end = group.end()
                after = end + len(s[end:]) - len(s[end:].lstrip())
            yield line.start() + start, s[start:end]
            start = after
        yield line.start() + start, s[start:]


def _clean_sentence(sentence: str) -> str:
    return " ".join(_BULLET.sub("", sentence.strip()).split())


@dataclass
class _Found:
    start: int
    end: int
    t0: float
    t1: float
    raw: str
    instant: bool
    keep: bool = True  # False: a duration; it holds its text so no part of it is read as a time


# Context is read from at most this many characters before a match (and matched in place after
# it), so that a long run-on answer stays linear.
_LOOKBACK = 80


def _is_duration(sentence: str, start: int, end: int) -> bool:
    lo = max(0, start - _LOOKBACK)
    if _DURATION_BEFORE.search(sentence, lo, start) or _DURATION_AFTER.match(sentence, end):
        return True
    if (
        _ARTICLE_BEFORE.search(sentence, lo, start)
        and _WORD_AFTER.match(sentence, end)
        and not _MARK_AFTER.match(sentence, end)
    ):
        return True  # "a 21 second clip", "a 21s clip": a length
    return bool(_RELATIVE_AFTER.match(sentence, end)) and not _AT_BEFORE.search(sentence, lo, start)


def _plausible_value(v: _Value, sentence: str, end: int) -> bool:
    """Reject "a 30-second clip" (a length) and "the 1990s" (a decade)."""
    if v.sep == "-" and not _MARK_AFTER.match(sentence, end):
        return False
    if v.unit is not None and v.unit.lower() == "s" and not v.sep and v.number is not None:
        if re.fullmatch(r"1\d{3}|20\d{2}", v.number):
            return False
    return True


def _unit_implied(sentence: str, start: int, end: int, time_context: bool) -> bool:
    """May a range of two bare numbers be read as seconds here?

    ``time_context``: the caller assumes seconds, or the sentence speaks of time.
    """
    if _WORD_AFTER.match(sentence, end) and not _VIDEO_AFTER.match(sentence, end):
        return False  # "3 to 5 people"
    if _DATE_AFTER.match(sentence, end) or _DATE_BEFORE.search(sentence, max(0, start - 2), start):
        return False  # "2023-05-12"
    return time_context


def _candidate(
    kind: str, m: re.Match[str], sentence: str, time_context: bool, frames: bool
) -> _Found | None:
    start, end = m.start(), m.end()
    if kind == "second":
        n = float(m["n"])
        return _Found(start, end, n, n, _squeeze(m["body"]), True)
    a = _read_value(m, "a", frames)
    if a is None:
        return None
    if kind == "instant":
        if not a.has_unit or not _plausible_value(a, sentence, end):
            return None
        keep = not _is_duration(sentence, start, end)
        if _minus_before(sentence, start):  # "at -3 seconds": before the clip, not 3 s
            return _Found(
                start - 1, end, -a.seconds, -a.seconds, "-" + _squeeze(m.group()), True, keep
            )
        return _Found(start, end, a.seconds, a.seconds, _squeeze(m.group()), True, keep)
    b = _read_value(m, "b", frames)
    if b is None or not _plausible_value(b, sentence, end):
        return None
    if a.number is not None and not a.has_unit and b.scale != 1.0:  # "from 2 to 3 minutes"
        a = replace(a, seconds=a.seconds * b.scale, has_unit=True)
    bracket_unit = kind == "bracket" and m["after_unit"] is not None
    if (a.clock and b.number is not None and not b.has_unit) or (
        b.clock and a.number is not None and not a.has_unit
    ):
        return None  # "00:05 - 3 foxes": a range has a time at both ends
    if not (a.has_unit or b.has_unit or bracket_unit) and not _unit_implied(
        sentence, start, end, time_context
    ):
        return None
    raw = m["body"] if kind == "from" else m.group()  # drop "from" / "between" and its noun
    return _Found(
        start,
        end,
        a.seconds,
        b.seconds,
        _squeeze(raw),
        False,
        not _is_duration(sentence, start, end),
    )


def _minus_before(sentence: str, start: int) -> bool:
    """Is the time at ``start`` signed negative ("at -3 seconds"), not joined to a word?"""
    return (
        start >= 1
        and sentence[start - 1] in "-−"
        and (start == 1 or sentence[start - 2] in " \t([")
    )


def _squeeze(text: str) -> str:
    return " ".join(text.split())


_PATTERNS = (
    ("from", _FROM_RE),
    ("bracket", _BRACKET_RE),
    ("dash", _DASH_RE),
    ("second", _SECOND_RE),
    ("instant", _INSTANT_RE),
)


def _find_in_sentence(sentence: str, assume_seconds: bool, frames: bool) -> list[_Found]:
    time_context = assume_seconds or bool(_TIME_WORD.search(sentence))
    found: list[_Found] = []  # sorted by start, never overlapping
    starts: list[int] = []
    for kind, pattern in _PATTERNS:  # ranges first: an instant inside a range is not another
        pos = 0
        while (m := pattern.search(sentence, pos)) is not None:
            cand = _candidate(kind, m, sentence, time_context, frames)
            k = bisect.bisect_left(starts, m.start())
            if (
                cand is not None
                and (k == 0 or found[k - 1].end <= cand.start)
                and (k == len(found) or cand.end <= found[k].start)
            ):
                found.insert(k, cand)
                starts.insert(k, cand.start)
                pos = m.end()
            else:
                pos = m.start() + 1
    return _pair_and_dedupe(sentence, [f for f in found if f.keep])


def _pair_and_dedupe(sentence: str, found: list[_Found]) -> list[_Found]:
    """Join "starts at A ... ends at B" into one range; drop "75 s (01:15)" repeats."""
    out: list[_Found] = []
    i = 0
    while i < len(found):
        cur = found[i]
        prev_end = out[-1].end if out else 0
        if i + 1 < len(found):
            nxt = found[i + 1]
            lead = sentence[prev_end : cur.start]
            between = sentence[cur.end : nxt.start]
            if (
                cur.instant
                and nxt.instant
                and _START_WORD.search(lead)
                and _END_WORD.search(between)
                and not _START_WORD.search(between)
            ):
                out.append(
                    _Found(cur.start, nxt.end, cur.t0, nxt.t0, sentence[cur.start : nxt.end], False)
                )
                i += 2
                continue
        if (
            out
            and abs(out[-1].t0 - cur.t0) < 0.05
            and abs(out[-1].t1 - cur.t1) < 0.05
            and _PAREN_BETWEEN.fullmatch(sentence[out[-1].end : cur.start])
        ):
            i += 1
            continue
        out.append(cur)
        i += 1
    return out


def _prose_spans(text: str, assume_seconds: bool, frames: bool) -> list[tuple[int, TimeSpan]]:
    """(offset, span) for each time the prose states; Markdown emphasis is read as blanks."""
    plain = _EMPHASIS.sub(lambda e: " " * len(e.group()), text)
    spans: list[tuple[int, TimeSpan]] = []
    for offset, sentence in _sentences(plain):
        found = _find_in_sentence(sentence, assume_seconds, frames)
        if not found:
            continue
        clean = _clean_sentence(_EMPHASIS.sub("", text[offset : offset + len(sentence)]))
        for f in found:
            spans.append((offset + f.start, TimeSpan(f.t0, f.t1, text=clean, raw=f.raw)))
    return spans


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def parse_times(
    answer: str, *, assume_seconds: bool = False, clip_duration_s: float | None = None
) -> list[TimeSpan]:
    """Every time and time range an answer states, in order of appearance.

    See the module documentation for the forms read. ``assume_seconds=True`` also reads a range
    of two bare numbers (``12.5 - 20.0``, ``[12.5, 20.0]``) as seconds when the sentence does
    not say so, as long as no word follows it (``3 to 5 people`` never counts); use it for the
    answer to a prompt that asked for seconds. A single bare number is never a time. The spans
    carry the model's seconds; pass them to :func:`map_times` for source seconds.

    ``clip_duration_s``, the length of the clip the model saw in the seconds it counts (for a
    model shown source timestamps, the source second the clip ends at), settles what a
    three-part clock means. ``00:11:00`` is ``hh:mm:ss`` (11 minutes), unless read so the
    answer's latest three-part clock lies past twice the clip's length while read as
    ``mm:ss:ff`` (minutes, seconds, frames) all of them lie within it (1 s of slack): then
    they are ``mm:ss:ff`` (11 s), as Gemini writes them. One reading holds for the whole answer;
    the frame field is dropped (its rate is not stated; it is below one second). A clock with a
    fraction (``00:11:00.5``) is always ``hh:mm:ss``. Without the length, ``hh:mm:ss``.

    >>> answer = "A man enters at 3 seconds and sits from 00:05 to 00:09.5."
    >>> [(s.start_s, s.end_s) for s in parse_times(answer)]
    [(3.0, 3.0), (5.0, 9.5)]
    >>> answer = '[{"start_time": "00:01.50", "end_time": 4, "description": "A cat jumps."}]'
    >>> [(s.start_s, s.end_s, s.text) for s in parse_times(answer)]
    [(1.5, 4.0, 'A cat jumps.')]
    >>> parse_times("There are 3 people; the video is 1920x1080, version 2.5.")
    []
    >>> [s.start_s for s in parse_times("He leaves at 00:11:00.", clip_duration_s=60)]
    [11.0]
    """
    if clip_duration_s is not None and not (
        math.isfinite(clip_duration_s) and clip_duration_s >= 0
    ):
        raise ValueError(f"clip_duration_s must be a finite number >= 0, not {clip_duration_s!r}")
    if not answer:
        return []
    text = _TAG.sub(
        lambda t: "\n" * len(t.group()), answer.replace("\r\n", "\n").replace("\r", "\n")
    )
    frames = _frames_clock(text, clip_duration_s)

    def read_value(value: str) -> float | None:
        return _time_value(value, frames)

    def read_range(value: str) -> tuple[float, float] | None:
        found = _prose_spans(value, True, frames)
        return (found[0][1].start_s, found[0][1].end_s) if found else None

    regions = json_regions(text, read_value, read_range)
    ordered: list[tuple[int, int, TimeSpan]] = []
    for region in regions:
        ordered.extend(
            (region.start, k, TimeSpan(j.start_s, j.end_s, text=j.text, raw=j.raw))
            for k, j in enumerate(region.spans)
        )
    prose = blank(text, regions)
    ordered.extend((pos, 0, span) for pos, span in _prose_spans(prose, assume_seconds, frames))
    ordered.sort(key=lambda item: (item[0], item[1]))
    # A number too long for a float (a model repeating digits) is infinite: not a time.
    return [
        span for _, _, span in ordered if math.isfinite(span.start_s) and math.isfinite(span.end_s)
    ]


# A three-part clock without a fraction: hh:mm:ss or mm:ss:ff.
_THREE_PART = re.compile(r"(?<![\d:.])(\d{1,2}):([0-5]\d):([0-5]\d)(?![\d:]|[.,]\d)")
_CLIP_SLACK_S = 1.0


def _frames_clock(text: str, clip_duration_s: float | None) -> bool:
    """Are the answer's three-part clocks ``mm:ss:ff``? (see :func:`parse_times`)"""
    if clip_duration_s is None:
        return False
    clocks = [(int(a), int(b), int(c)) for a, b, c in _THREE_PART.findall(text)]
    if not clocks:
        return False
    latest_hms = max(a * 3600 + b * 60 + c for a, b, c in clocks)
    latest_msf = max(a * 60 + b for a, b, _ in clocks)
    return (
        latest_hms > 2 * clip_duration_s + _CLIP_SLACK_S
        and latest_msf <= clip_duration_s + _CLIP_SLACK_S
    )


def rounded_seconds(seconds: float) -> float:
    """A second of the source as mapped times hold it: to the microsecond (``_SOURCE_DECIMALS``),
    so that what is compared with a mapped time (the clip's end) is rounded alike."""
    return round(seconds, _SOURCE_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def map_times(
    spans: Iterable[TimeSpan],
    *,
    clip_start_s: float = 0.0,
    clip_end_s: float | None = None,
    offset_s: float | None = None,
    to_source: Callable[[float], float] | None = None,
) -> list[TimeSpan]:
    """Give each span its seconds in the source video, clipped to the clip the model saw.

    The model counts from the start of its clip, so ``clip_start_s`` (the ``--start`` offset) is
    added; ``offset_s`` overrides what is added when that differs from the clip start (a model
    shown source timestamps, as Qwen3-VL can be, needs ``offset_s=0``). The result is clamped
    to ``[clip_start_s, clip_end_s]`` (no upper bound when ``clip_end_s`` is None) and
    ``clipped`` is set when a bound moved. A span lying entirely outside the clip is kept,
    clamped to the nearer bound, with ``outside`` (and ``clipped``) set. A span whose end comes
    before its start is swapped and flagged ``reversed``. Source seconds are rounded to microseconds. The
    spans' own ``start_s``/``end_s`` stay the model's seconds, so mapping again with other
    bounds starts afresh. ``to_source``, when given, replaces the offset: it maps a second the
    model states to a source second (vlcli passes the plan's table of what each temporal patch
    showed, so that times follow the frames the model saw, also in variable-frame-rate video).

    >>> spans = [TimeSpan(5, 8), TimeSpan(25, 40), TimeSpan(70, 70), TimeSpan(9, 6)]
    >>> for s in map_times(spans, clip_start_s=100, clip_end_s=130):
    ...     print(s.source_start_s, s.source_end_s, s.clipped, s.outside)
    105.0 108.0 False False
    125.0 130.0 True False
    130.0 130.0 True True
    106.0 109.0 False False
    """
    if not math.isfinite(clip_start_s) or clip_start_s < 0:
        raise ValueError(f"clip_start_s must be a finite number >= 0, not {clip_start_s!r}")
    if clip_end_s is not None and (not math.isfinite(clip_end_s) or clip_end_s < clip_start_s):
        raise ValueError(
            f"clip_end_s must be a finite number >= clip_start_s ({clip_start_s}), "
            f"not {clip_end_s!r}"
        )
    offset = clip_start_s if offset_s is None else offset_s
    if not math.isfinite(offset):
        raise ValueError(f"offset_s must be a finite number, not {offset_s!r}")
    lo = rounded_seconds(clip_start_s)
    hi = None if clip_end_s is None else rounded_seconds(clip_end_s)
    out: list[TimeSpan] = []
    for span in spans:
        a, b = sorted((span.start_s, span.end_s))
        if to_source is not None:
            src_a, src_b = rounded_seconds(to_source(a)), rounded_seconds(to_source(b))
        else:
            src_a, src_b = rounded_seconds(a + offset), rounded_seconds(b + offset)
        outside = src_b < lo or (hi is not None and src_a > hi)
        new_a, new_b = max(src_a, lo), max(src_b, lo)
        if hi is not None:
            new_a, new_b = min(new_a, hi), min(new_b, hi)
        out.append(
            replace(
                span,
                start_s=a,
                end_s=b,
                source_start_s=new_a,
                source_end_s=new_b,
                clipped=(new_a, new_b) != (src_a, src_b),
                outside=outside,
                reversed=span.reversed or span.end_s < span.start_s,
            )
        )
    return out


def bound_times(spans: Iterable[TimeSpan], lo_s: float, hi_s: float) -> list[TimeSpan]:
    """Spans left in the model's seconds, put in order and flagged against ``[lo_s, hi_s]``.

    For times no time axis vouches for (:func:`map_times` is not applied): they stay as the
    model stated them, but a span whose end comes first is swapped (``reversed``), and one that
    lies entirely outside the clip as the model counts it is flagged ``outside``, as a mapped
    span would be, so that no output takes it for a moment of the video.

    >>> [(s.start_s, s.end_s, s.outside, s.reversed) for s in bound_times(
    ...     [TimeSpan(540, 1020), TimeSpan(0.8, 0.2)], 0.0, 1.0)]
    [(540, 1020, True, False), (0.2, 0.8, False, True)]
    """
    out: list[TimeSpan] = []
    for span in spans:
        a, b = sorted((span.start_s, span.end_s))
        out.append(
            replace(
                span,
                start_s=a,
                end_s=b,
                outside=b < lo_s or a > hi_s,
                reversed=span.reversed or span.end_s < span.start_s,
            )
        )
    return out
