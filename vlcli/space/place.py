"""The source pixels a stated box or point means, through the plan of what the model was shown.

A stated coordinate is a fraction of the picture's extent in the family's coordinates
(:meth:`~vlcli.models.families.Coordinates.extent`: the resized input's pixels for Qwen2.5-VL,
1000 for Qwen2-VL and Qwen3-VL), so a source pixel is ``coordinate * source side / extent``,
per axis: ``smart_resize`` rounds each side to a multiple of the patch on its own, so one
factor for both would be wrong. The source's sides are those displayed (a phone video's
rotation applied, as the model was shown it), so the pixels are those of the frame as it is
seen. Box edges are rounded to the nearest pixel edge, a point to the pixel it falls in.

What the model may get wrong is kept and said (``flags``), never dropped: ``swapped`` (its
x2 < x1 or y2 < y1, put in order), ``outside`` (past the picture: clipped to it), ``degenerate``
(no area once clipped). In a video, a box is on the frame shown at the time stated with it,
mapped to source seconds as every time is; a box with no time is ``unplaced``
(pixels, but no frame: the frame is not guessed), one whose time is past the clip is
``time-outside``, and one whose time the backend could not vouch for is ``time-unmapped``.
With several inputs in one prompt, nothing says which one a box is on: ``input-unknown``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vlcli.planning.plan import Plan, VideoPlan
from vlcli.space.read import StatedShape
from vlcli.times.axis import TimeAxis


@dataclass(frozen=True)
class PlacedShape:
    """A stated box or point, with the source pixels it means."""

    kind: str  # "box" or "point"
    label: str
    model: tuple[float, ...]  # as the model stated it, in its own coordinates
    pixels: tuple[int, ...] | None  # x1, y1, x2, y2 (edges) or x, y; None: input unknown
    flags: tuple[str, ...] = ()
    time_s: float | None = None  # the time stated with it, in the model's seconds
    frame_s: float | None = None  # the source time of the frame it is on (a video's)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, self.kind: list(self.pixels or ()) or None}
        d["model"] = list(self.model)
        if self.time_s is not None:
            d["time_s"] = self.time_s
        if self.frame_s is not None:
            d["frame_s"] = self.frame_s
        d["flags"] = list(self.flags)
        return d

    @classmethod
    def from_dict(cls, kind: str, d: dict[str, Any]) -> PlacedShape:
        """A shape as a record holds it (:meth:`to_dict`), for a window answered before."""
        pixels = d.get(kind)
        return cls(
            kind,
            str(d.get("label", "")),
            tuple(d.get("model", ())),
            tuple(pixels) if pixels else None,
            tuple(d.get("flags", ())),
            d.get("time_s"),
            d.get("frame_s"),
        )


def place_shapes(
    shapes: Sequence[StatedShape],
    plans: Sequence[Plan],
    axes: Sequence[TimeAxis | None] = (),
) -> list[PlacedShape]:
    """Each stated shape in source pixels of the one input of the prompt (see the module)."""
    if len(plans) != 1:
        return [
            PlacedShape(s.kind, s.label, s.coords, None, ("input-unknown",), s.time_s)
            for s in shapes
        ]
    plan = plans[0]
    axis = axes[0] if len(axes) == 1 else None
    placed = []
    for shape in shapes:
        pixels, flags = _pixels(shape, plan)
        time_s = frame_s = None  # an image has no time: a "time" key there is no frame's
        if isinstance(plan, VideoPlan):
            time_s = shape.time_s
            frame_s, time_flag = _frame(time_s, plan, axis)
            flags += (time_flag,) if time_flag else ()
        placed.append(
            PlacedShape(shape.kind, shape.label, shape.coords, pixels, flags, time_s, frame_s)
        )
    return placed


def coordinate_system(plan: Plan) -> dict[str, Any]:
    """What a position the model states about ``plan``'s input is measured in, and the sizes to
    map it by hand: source pixel = coordinate * source side / extent, per axis."""
    ext_w, ext_h = plan.family.coordinates.extent(plan.resized_width, plan.resized_height)
    return {
        "system": plan.family.coordinates.value,
        "unit": plan.family.coordinates.unit(plan.resized_width, plan.resized_height),
        "extent": [ext_w, ext_h],
        "resized": [plan.resized_width, plan.resized_height],
        "source": [plan.source_width, plan.source_height],
    }


def _pixels(shape: StatedShape, plan: Plan) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The shape's source pixels and what had to be put right to get them."""
    ext_w, ext_h = plan.family.coordinates.extent(plan.resized_width, plan.resized_height)
    width, height = plan.source_width, plan.source_height
    flags: list[str] = []
    coords = list(shape.coords)
    if shape.kind == "point":
        x, y = coords
        if not (0 <= x <= ext_w and 0 <= y <= ext_h):
            flags.append("outside")
        px = min(max(math.floor(x * width / ext_w), 0), width - 1)
        py = min(max(math.floor(y * height / ext_h), 0), height - 1)
        return (px, py), tuple(flags)
    x1, y1, x2, y2 = coords
    if x2 < x1 or y2 < y1:
        flags.append("swapped")
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
    if x1 < 0 or y1 < 0 or x2 > ext_w or y2 > ext_h:
        flags.append("outside")
    xs = [min(max(_edge(v * width / ext_w), 0), width) for v in (x1, x2)]
    ys = [min(max(_edge(v * height / ext_h), 0), height) for v in (y1, y2)]
    if xs[0] == xs[1] or ys[0] == ys[1]:
        flags.append("degenerate")
    return (xs[0], ys[0], xs[1], ys[1]), tuple(flags)


def _edge(value: float) -> int:
    """The pixel edge nearest ``value`` (halves up, as a reader rounds them)."""
    return math.floor(value + 0.5)


def _frame(
    time_s: float | None, plan: VideoPlan, axis: TimeAxis | None
) -> tuple[float | None, str | None]:
    """The source time of the frame shown at ``time_s`` (the model's seconds), or why none."""
    if time_s is None:
        return None, "unplaced"
    if axis is None:
        return None, "time-unmapped"
    source = axis.source_seconds(time_s)
    if not axis.clip_start_s - 1e-6 <= source <= axis.clip_end_s + 1e-6:
        return None, "time-outside"
    shown = [t for t in plan.frame_times_s if t <= source + 1e-6]
    return (shown[-1] if shown else plan.frame_times_s[0]), None
