"""The boxes and points an answer states, in the model's own coordinates.

The forms read, as the Qwen models write them (see ``tests/data/real_boxes.jsonl``):

- JSON objects with ``bbox_2d`` (or ``bbox``) ``[x1, y1, x2, y2]`` or ``point_2d`` (or ``point``)
  ``[x, y]``, with a ``label``, in a code fence or bare, as a list or one by one, with other keys
  beside them, with single quotes as Python prints them; an answer cut off by
  ``--max-new-tokens`` keeps every object whose coordinates were written whole (a list of
  coordinates cut off is no box). A video's box takes the time of its object, or of the
  nearest object around it (``{"time": 12.5, "bbox_2d": [...]}``, ``{"timestamp": "00:12"...}``,
  ``{"time": 3, "objects": [{"bbox_2d": ...}]}``), or the time it is filed under in a
  per-frame listing (``{"12.5s": [{"bbox_2d": ...}], "13.0s": [...]}``).
- Qwen2-VL's ``<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``,
  and the same with the special tokens left out, as a decoder that skips them prints it:
  ``label(x1,y1),(x2,y2)``. Two bracketed number pairs in a row are a box in any text (unless
  a unit of time follows them).
- A box in prose, ``[x1, y1, x2, y2]``: four numbers in square brackets, only when the words
  just before them speak of a position (box, bounding, coordinates, located, region, point, 框,
  坐标...) or the task asked for boxes; a point in prose, ``(x, y)``, only after words of a
  point (coordinates, position, point, click, 坐标...; not "box": a lone corner of a box is
  none). The rule is what keeps "scores [1, 2, 3, 4]" or "the years [2019, 2020, 2021, 2022]"
  from being boxes: four numbers alone say nothing of a picture. A list under another JSON key
  is no prose box either, nor numbers that are times: followed by a unit of time
  ("(0.5, 2.0), (3.0, 4.5) seconds", which would be two number pairs in a row), after words of
  time ("timestamps [1, 2, 3, 4]"), or after "at this point" (a moment, not a place).

Gemini's ``box_2d`` is not read: it is ``[y1, x1, y2, x2]``, another order.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vlcli.outputs.text import valid_text
from vlcli.times.parse import parse_time_value

_NUM = r"-?\d+(?:\.\d+)?"
_Q = r"[\"']"  # JSON's quotes, or Python's

# "bbox_2d": [1, 2, 3, 4] or 'point_2d': [[1, 2]] (one level of nesting at most)
_COORD_KEY = re.compile(
    rf"{_Q}(?P<key>bbox_2d|bbox|point_2d|point){_Q}\s*:\s*\[(?P<list>(?:[^\[\]{{}}]|\[[^\[\]{{}}]*\])*)\]"
)
_KEYED_LIST = re.compile(rf"{_Q}\w+{_Q}\s*:\s*\[[^\[\]]*\]")
_KEY_OF_LIST = re.compile(rf"{_Q}([^\"']{{1,24}}){_Q}\s*:\s*[\[{{]")  # "12.5s": [ or "00:03": {
_LABEL_KEY = re.compile(
    rf"{_Q}(?:label|name_en|name|category){_Q}\s*:\s*(?:\"(?P<dq>(?:[^\"\\]|\\.)*)\"|'(?P<sq>[^']*)')"
)
_TIME_KEY = re.compile(
    rf"{_Q}(?:time|timestamp|time_s|timestamp_s|second|seconds|frame_time){_Q}\s*:\s*"
    rf"(?:(?P<num>{_NUM})(?![\d.eE])|\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)')"  # 1e3: no time
)
_PAIR = rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)"
# Qwen2-VL's tokens around a box and its label (Qwen-VL's <ref> and <box> tags likewise)
_TAGGED = re.compile(
    r"(?:(?:<\|object_ref_start\|>|<ref>)(?P<label>.*?)(?:<\|object_ref_end\|>|</ref>)\s*)?"
    rf"(?:<\|box_start\|>|<box>)\s*{_PAIR}\s*,\s*{_PAIR}\s*(?:<\|box_end\|>|</box>)",
    re.S,
)
_TOKENS = re.compile(r"<\|[a-z_]+\|>|</?ref>")  # around a label without its box's tokens
_PAIRS = re.compile(rf"{_PAIR}\s*,\s*{_PAIR}")
_POINT = re.compile(_PAIR)
_BRACKETED = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_SPEAKS_OF_PLACE = re.compile(
    r"box|bbox|bounding|coordinat|locat|region|position|point|框|坐标|位置", re.I
)
# a point: the words of a place that is not a box (a lone corner of a box is no point)
_SPEAKS_OF_A_POINT = re.compile(r"coordinat|locat|position|point|click|坐标|位置|点击", re.I)
_CONTEXT = 80  # characters before a bracketed list that must speak of a position
# Numbers that are times, not places: followed by a unit of time ("(0.5, 2.0), (3.0, 4.5)
# seconds"), or after words of time ("timestamps [1, 2, 3, 4]"); "at this point" is a moment.
_UNIT_OF_TIME = re.compile(r"\s*(?:s\b|secs?\b|seconds?\b|秒)", re.I)
_SPEAKS_OF_TIME = re.compile(r"timestamp|timeline|second|时间|秒", re.I)
_MOMENT = re.compile(r"\b(?:this|that|one|some|any|which|what|no)\s+point\b", re.I)
# "the dog" in "the dog(1,2),(3,4)": a label written against its box, as Qwen2-VL's is once its
# special tokens are skipped ("The box is (1,2),(3,4)" has none)
_LABEL_BEFORE = re.compile(r"([^\s.:;,()\[\]<>][^\n.:;,()\[\]<>]{0,59})(?<=\S)$")


@dataclass(frozen=True)
class StatedShape:
    """A box (``x1, y1, x2, y2``) or a point (``x, y``) as the model stated it."""

    kind: str  # "box" or "point"
    coords: tuple[float, ...]  # in the model's coordinates (Coordinates of its family)
    label: str
    time_s: float | None  # the time stated with it, in the model's own seconds
    start: int  # where in the answer it was read (the answer's order)


def read_shapes(answer: str, boxes_asked: bool = False) -> list[StatedShape]:
    """Every box and point ``answer`` states, in the order written. ``boxes_asked``: the task
    asked for boxes, so a bracketed list of four numbers in prose is one even with no word of
    position before it."""
    shapes = _json_shapes(answer)
    # a list that is a JSON value is a box only under a key of coordinates (not box_2d's order)
    taken = [m.span() for m in _KEYED_LIST.finditer(answer)]
    for shape, span in _tagged_shapes(answer):
        shapes.append(shape)
        taken.append(span)
    shapes += _prose_shapes(answer, taken, boxes_asked)
    return sorted(shapes, key=lambda s: s.start)


def _objects(text: str) -> list[tuple[int, int]]:
    """The ``{...}`` spans of ``text`` (braces inside strings ignored); one left open by an
    answer that was cut off runs to the end."""
    spans: list[tuple[int, int]] = []
    opened: list[int] = []
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(text):
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch == '"':
            quote = ch
        elif ch == "{":
            opened.append(i)
        elif ch == "}" and opened:
            spans.append((opened.pop(), i + 1))
    spans += [(start, len(text)) for start in opened]
    return spans


Span = tuple[int, int]


class _Objects:
    """The ``{...}`` objects of an answer, each one's own label, time and time keys read once:
    a shape takes them from the objects around it, and an answer may hold hundreds of shapes
    in objects nested deep (a listing cut off, a model repeating itself)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.spans = sorted(_objects(text))
        self._facts: dict[Span, tuple[str, float | None, list[tuple[int, float]]]] = {}

    def around(self, at: int) -> list[Span]:
        """The objects ``at`` is inside, the innermost first."""
        return sorted((s for s in self.spans if s[0] < at < s[1]), key=lambda s: -s[0])

    def facts(self, span: Span) -> tuple[str, float | None, list[tuple[int, float]]]:
        """The object's own label and time (its keys, not those of objects nested in it), and
        the time keys it files lists under, with where each ends (``{"12.5s": [...]}``)."""
        if span not in self._facts:
            own = self._own_text(span)
            label = _unquoted(found) if (found := _LABEL_KEY.search(own)) else ""
            time_s = _time(found) if (found := _TIME_KEY.search(own)) else None
            keyed = [
                (span[0] + m.end(), t)
                for m in _KEY_OF_LIST.finditer(own)
                if (t := _time_value(m.group(1))) is not None
            ]
            self._facts[span] = (label, time_s, keyed)
        return self._facts[span]

    def _own_text(self, span: Span) -> str:
        """The object's text with the objects nested in it blanked out (their keys are theirs;
        each one's "{" is kept: a key's value)."""
        start, end = span
        pieces, at = [], start
        for a, b in self.spans:  # by start: the first object in each nested run is outermost
            if start < a and b <= end and a >= at:
                pieces += [self.text[at : a + 1], " " * (b - a - 1)]
                at = b
        return "".join(pieces) + self.text[at:end]


def _json_shapes(text: str) -> list[StatedShape]:
    objects = _Objects(text)
    shapes = []
    for m in _COORD_KEY.finditer(text):
        coords = _numbers(m["list"])
        kind = "point" if m["key"].startswith("point") else "box"
        if coords is None or len(coords) != (2 if kind == "point" else 4):
            continue
        label, time_s = "", None
        for span in objects.around(m.start()):  # the innermost object first
            own_label, own_time, keyed = objects.facts(span)
            label = label or own_label
            if time_s is None:
                # its own time key, or the last time a list before it is filed under
                before = [t for end, t in keyed if end <= m.start()]
                time_s = own_time if own_time is not None else (before[-1] if before else None)
            if label and time_s is not None:
                break
        shapes.append(StatedShape(kind, coords, label, time_s, m.start()))
    return shapes


def _time_value(key: str) -> float | None:
    """A key that is a time (``"12.5s"``, ``"00:03"``) as seconds; None for any other key."""
    try:
        return parse_time_value(key)
    except ValueError:
        return None


def _numbers(listed: str) -> tuple[float, ...] | None:
    """The numbers of a coordinate list, or None when it holds anything else."""
    parts = [p for p in re.split(r"[\s,\[\]]+", listed) if p]
    if not parts or not all(re.fullmatch(_NUM, p) for p in parts):
        return None
    return _finite(parts)


def _finite(numbers: Sequence[str]) -> tuple[float, ...] | None:
    """The numbers as floats, or None when one is past a float's range (a model that ran on
    writing digits states no position)."""
    values = tuple(float(n) for n in numbers)
    return values if all(math.isfinite(v) for v in values) else None


def _unquoted(found: re.Match[str]) -> str:
    """A quoted label as text that can be written anywhere: a JSON escape of a lone surrogate
    ("\\ud800") becomes U+FFFD, as in the answer itself (:mod:`vlcli.outputs.text`)."""
    if found["dq"] is None:
        return str(found["sq"]).strip()
    try:
        label = str(json.loads(f'"{found["dq"]}"'))
    except ValueError:
        label = found["dq"]
    return valid_text(label)[0].strip()


def _time(found: re.Match[str]) -> float | None:
    value = found["num"] or found["dq"] or found["sq"] or ""
    try:
        return parse_time_value(value)
    except ValueError:
        return None


def _tagged_shapes(text: str) -> list[tuple[StatedShape, tuple[int, int]]]:
    """Qwen2-VL's boxes, with their special tokens or without (a decoder that skips them), and
    two bracketed number pairs in a row anywhere."""
    found = []
    for m in _TAGGED.finditer(text):
        coords = _finite(m.groups()[1:5])
        label = (m["label"] or "").strip()
        if coords is not None:
            found.append((StatedShape("box", coords, label, None, m.start()), m.span()))
    last_end = 0
    for m in _PAIRS.finditer(text):
        if any(a <= m.start() < b for _, (a, b) in found) or _UNIT_OF_TIME.match(text, m.end()):
            continue
        before = _LABEL_BEFORE.search(_TOKENS.sub("", text[last_end : m.start()]))
        label = before.group(1).strip(" *\"'") if before else ""
        last_end = m.end()
        if (coords := _finite(m.groups())) is not None:
            found.append((StatedShape("box", coords, label, None, m.start()), m.span()))
    return found


def _prose_shapes(text: str, taken: list[tuple[int, int]], boxes_asked: bool) -> list[StatedShape]:
    """Boxes ``[x1, y1, x2, y2]`` and points ``(x, y)`` in prose, where the words before them
    speak of a position (a box needs none when boxes were asked for)."""
    shapes = []
    for kind, pattern in (("box", _BRACKETED), ("point", _POINT)):
        for m in pattern.finditer(text):
            if any(a <= m.start() < b for a, b in taken):
                continue
            before = _MOMENT.sub("", text[max(0, m.start() - _CONTEXT) : m.start()])
            if _UNIT_OF_TIME.match(text, m.end()) or _SPEAKS_OF_TIME.search(before):
                continue
            if kind == "point" and not _SPEAKS_OF_A_POINT.search(before):
                continue
            if kind == "box" and not boxes_asked and not _SPEAKS_OF_PLACE.search(before):
                continue
            if (coords := _finite(m.groups())) is not None:
                shapes.append(StatedShape(kind, coords, "", None, m.start()))
    return shapes
