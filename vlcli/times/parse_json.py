"""Time-stamped objects in the JSON of an answer: dense captions, chapters, keyed captions.

Models asked for events "in JSON" write lists of objects with a start and an end, a
``timestamp``/``timecode`` holding one time or a range, or the time as the key itself
(``{"00:16": "a man enters"}``), in a ```` ```json ```` fence or bare, with Python-style quotes
or trailing commas now and then, and cut off by the token limit in the middle of the last object.
This module finds those objects and their captions; what a time string means (``"00:11:00"``,
``"12.5 seconds"``, ``"00:12 - 00:20"``) is left to the caller, who passes the two readers
(:mod:`vlcli.times.parse` passes its own, so that a JSON time reads as the same time in prose).

A list cut off inside its last object keeps that object when the times it states are complete:
both start and end when it has a start, the whole ``timestamp`` value, or a time key with the
start of its caption. Its caption, cut too, ends in ``…`` (``…`` alone when none was written).
An object cut before its end time is dropped rather than turned into an instant: the model had
an end to state, and an instant would claim a moment it did not give. Either way the cut text
is no longer read as prose, so its start and end do not come back as two stray instants.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

# One time string in seconds, or None when it is not one time.
ReadValue = Callable[[str], "float | None"]
# The first time or range a string states, or None ("00:12 - 00:20", "from 3 to 5 seconds").
ReadRange = Callable[[str], "tuple[float, float] | None"]

CUT_MARK = "…"


@dataclass(frozen=True)
class JsonSpan:
    """One time or range a JSON object states, with its caption and the object as written."""

    start_s: float
    end_s: float
    text: str
    raw: str


@dataclass(frozen=True)
class JsonRegion:
    """Characters ``start:end`` of the answer are JSON that stated ``spans``."""

    start: int
    end: int
    spans: tuple[JsonSpan, ...]


@dataclass(frozen=True)
class _Readers:
    value: ReadValue
    range: ReadRange


_START_KEYS = (
    "start_time", "start", "start_s", "start_sec", "start_seconds", "start_timestamp",
    "begin", "begin_time", "from",
)  # fmt: skip
_END_KEYS = (
    "end_time", "end", "end_s", "end_sec", "end_seconds", "end_timestamp",
    "stop", "stop_time", "to",
)  # fmt: skip
_TS_KEYS = (
    "timestamp", "timestamps", "time", "times", "timecode", "time_code", "timecodes",
    "time_range", "timerange", "time_span", "span", "segment", "interval", "seconds", "at",
)  # fmt: skip
_DESC_KEYS = (
    "description", "caption", "event", "text", "label", "action", "activity", "content",
    "desc", "summary", "sentence", "query", "name", "title",
)  # fmt: skip
_TIME_KEYS = frozenset(_START_KEYS + _END_KEYS + _TS_KEYS)

_DECODER = json.JSONDecoder()
_LOOSE_OBJECT = re.compile(r"\{[^{}]*\}")
# An object opened and never closed: the answer was cut off inside it.
_OPEN_TAIL = re.compile(r"\{[^{}]*\Z")
_KEY = r"""(?:"(?P<dq>[^"\n]{1,60})"|'(?P<sq>[^'\n]{1,60})'|(?P<bare>[A-Za-z_][\w \-]*?))"""
# A key and a complete value: a closed string, a list, or a bare word or number followed by the
# next pair, the end of the object or the end of a line (a bare value at the very end of a cut
# answer may itself be cut: "end_time": 9 of 95.6).
_PAIR = re.compile(
    rf"""(?:^|[{{,\n])\s*{_KEY}\s*:\s*"""
    r"""(?P<val>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|\[[^\]]*\]"""
    r"""|[^\s"'\[\]{},:][^"'\[\]{},\n]*?(?=\s*[,}\n]))"""
)
# The last pair of a cut-off object: a key and a string not yet closed (or no value yet).
_CUT_PAIR = re.compile(
    rf"""(?:^|[{{,\n])\s*{_KEY}\s*:\s*(?:"(?P<dpart>(?:[^"\\]|\\.)*)|'(?P<spart>(?:[^'\\]|\\.)*)|[^"',\n{{}}]*)\Z"""
)
_QUOTED_KEY = re.compile(r"""["']\s*:""")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def json_regions(text: str, read_value: ReadValue, read_range: ReadRange) -> list[JsonRegion]:
    """The JSON in ``text`` that states times, in order of appearance.

    Strict JSON is read first, anywhere in the text; then objects strict JSON cannot read
    (single quotes, trailing commas, a list cut off between objects); then an object cut off at
    the end of the text (see the module documentation). Regions never overlap.
    """
    readers = _Readers(read_value, read_range)
    regions: list[JsonRegion] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] not in "[{":
            i += 1
            continue
        try:
            obj, end = _DECODER.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        except RecursionError:  # "[[[[..." from a model caught in a loop: skip the run
            while i < n and text[i] in "[{ \n":
                i += 1
            continue
        spans: list[JsonSpan] = []
        _walk_json(obj, spans, readers)
        if spans:
            regions.append(JsonRegion(i, end, tuple(spans)))
        # Without spans, nothing nested in it has any either; its text still goes through the
        # prose pass (a list of numbers may be a bracketed range).
        i = end
    blanked = blank(text, regions)
    for m in _LOOSE_OBJECT.finditer(blanked):
        pairs = _pairs(m.group())
        if pairs:
            spans = _spans_from_dict(pairs, readers, raw=_compact(m.group()))
            if spans:
                regions.append(JsonRegion(m.start(), m.end(), tuple(spans)))
    tail = _cut_tail(blank(text, regions), readers)
    if tail is not None:
        regions.append(tail)
    regions.sort(key=lambda r: r.start)
    return regions


def blank(text: str, regions: list[JsonRegion]) -> str:
    """``text`` with the regions replaced by line breaks (offsets kept)."""
    chars = list(text)
    for region in regions:
        chars[region.start : region.end] = "\n" * (region.end - region.start)
    return "".join(chars)


def _compact(text: str) -> str:
    return " ".join(text.split())


def _key(m: re.Match[str]) -> str:
    return m["dq"] if m["dq"] is not None else m["sq"] if m["sq"] is not None else m["bare"]


def _pairs(text: str) -> dict[str, Any]:
    return {_key(p): _loose_value(p["val"]) for p in _PAIR.finditer(text)}


def _loose_value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text.startswith("["):
        return [_loose_value(part) for part in text.strip("[]").split(",") if part.strip()]
    return text


def _cut_tail(text: str, readers: _Readers) -> JsonRegion | None:
    """The object the answer was cut off in, if it had begun to state a key."""
    m = _OPEN_TAIL.search(text)
    if m is None or not _QUOTED_KEY.search(m.group()):
        return None  # no JSON key: braces in prose
    body = m.group()
    cut = _CUT_PAIR.search(body)
    pairs = _pairs(body[: cut.start()] if cut is not None else body)
    if not pairs and cut is None:
        return None  # "{" and prose: not an object
    if cut is not None and _norm(_key(cut)) not in _TIME_KEYS:
        part = cut["dpart"] if cut["dpart"] is not None else cut["spart"] or ""
        pairs[_key(cut)] = part.strip() + CUT_MARK  # a caption cut off: say so
    spans = _spans_from_dict(pairs, readers, raw=_compact(body), cut=True)
    # No caption at all: it was still to come.
    spans = [s if s.text else replace(s, text=CUT_MARK) for s in spans]
    return JsonRegion(m.start(), m.end(), tuple(spans))


def _norm(key: str) -> str:
    """``"Start Time"``, ``"start-time"``, ``"startTime"`` -> ``"start_time"``."""
    return re.sub(r"[\s\-]+", "_", _CAMEL.sub("_", key.strip())).lower()


def _json_time(value: Any, readers: _Readers) -> float | None:
    """One JSON time value in seconds, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        return readers.value(value)
    return None


def _json_pairs(value: Any, readers: _Readers) -> list[tuple[float, float]]:
    """A ``timestamp`` value: one time, ``[s, e]``, ``[[s, e], ...]``, "s - e", {start, end}."""
    single = _json_time(value, readers)
    if single is not None:
        return [(single, single)]
    if isinstance(value, str):
        found = readers.range(value)
        return [found] if found is not None else []
    if isinstance(value, dict):
        spans = _spans_from_dict(value, readers)
        return [(spans[0].start_s, spans[0].end_s)] if spans else []
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, list | tuple | dict) for v in value):
            return [pair for v in value for pair in _json_pairs(v, readers)]
        times = [_json_time(v, readers) for v in value]
        if len(times) in (1, 2) and all(t is not None for t in times):
            first, last = times[0], times[-1]
            assert first is not None and last is not None
            return [(first, last)]
    return []


def _spans_from_dict(
    obj: dict[Any, Any], readers: _Readers, raw: str | None = None, cut: bool = False
) -> list[JsonSpan]:
    """The spans one JSON object states, or [] when it states none.

    ``cut``: the object was cut off; a start without an end is then dropped (see the module
    documentation).
    """
    norm: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(key, str):
            norm.setdefault(_norm(key), value)
    raw_text = raw if raw is not None else json.dumps(obj, ensure_ascii=False)

    def first(keys: tuple[str, ...]) -> tuple[str | None, Any]:
        for k in keys:
            if k in norm and norm[k] is not None and norm[k] != "":
                return k, norm[k]
        return None, None

    start_key, start_v = first(_START_KEYS)
    end_key, end_v = first(_END_KEYS)
    ts_key, ts_v = first(_TS_KEYS)
    start, end = _json_time(start_v, readers), _json_time(end_v, readers)
    pairs: list[tuple[float, float]] = []
    if cut and start_key is not None and end_key is None:
        return []  # the end was cut off
    if start is not None or end is not None:
        a = start if start is not None else end
        b = end if end is not None else start
        assert a is not None and b is not None
        pairs = [(a, b)]
    elif ts_v is not None:
        pairs = _json_pairs(ts_v, readers)
    used = {start_key, end_key, ts_key}

    if not pairs:
        return _keyed_spans(obj, readers)

    _, desc = first(_DESC_KEYS)
    if not isinstance(desc, str):
        desc = next(
            (
                v
                for k, v in norm.items()
                if k not in used and isinstance(v, str) and _json_time(v, readers) is None
            ),
            "",
        )
    return [JsonSpan(a, b, text=str(desc).strip(), raw=raw_text) for a, b in pairs]


def _keyed_spans(obj: dict[Any, Any], readers: _Readers) -> list[JsonSpan]:
    """``{"00:05": "a man enters", "00:12 - 00:20": "he sits"}``: the keys are the times."""
    keyed: list[JsonSpan] = []
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return []
        if not re.search(r"\d", key) or not re.search(r"[:a-z]", key, re.I):
            return []  # "1": "..." is an index, not a time
        key_pairs = _json_pairs(key, readers)
        if not key_pairs:
            return []
        for a, b in key_pairs:
            keyed.append(JsonSpan(a, b, text=value.strip(), raw=f"{key}: {value}"[:200]))
    return keyed


def _walk_json(obj: Any, out: list[JsonSpan], readers: _Readers) -> None:
    if isinstance(obj, dict):
        spans = _spans_from_dict(obj, readers)
        if spans:
            out.extend(spans)
            return
        for value in obj.values():
            _walk_json(value, out, readers)
    elif isinstance(obj, list):
        for value in obj:
            _walk_json(value, out, readers)
