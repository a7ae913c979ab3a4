"""The time axis: which source second each temporal position that the model saw stands for.

Every time an answer states goes through one :class:`TimeAxis` on its way to source seconds, and
the axis is the one the engine really gave the model, not one recomputed from a guess. It holds,
for one video of one prompt:

* ``positions``: the temporal mRoPE position of each temporal patch (two frames), counted from the
  video's first position. Engines differ in how they floor them: the reference Qwen2.5-VL code
  (and vlcli's transformers backend, which uses it) computes ``(g * second_per_grid_t) *
  tokens_per_second`` in float32, vLLM ``g * (second_per_grid_t * tokens_per_second)`` in float64
  (:func:`reference_positions`, :func:`vllm_positions`); about one plan in seventy differs by one
  somewhere.
* ``patch_times_s``: the source second of the first frame of each temporal patch.
* ``text_after``: where the text after the video starts, from the video's first position, when
  the engine says so (the reference: one past the video's largest position on any axis).

How a stated second ``m`` is mapped (:meth:`TimeAxis.source_seconds`), by time encoding (the
family's, :class:`vlcli.models.families.TimeEncoding`; this module only asks it what it means):

1. positions are seconds (Qwen2.5-VL): the model reads position ``p`` as second ``p /
   tokens_per_second``, so it means position ``m * tokens_per_second``. That position is placed
   among the patches by the axis's own positions (piecewise linear through the first patch of
   each position; beyond the ends with the ideal slope ``1 / (second_per_grid_t *
   tokens_per_second)``), and the fractional patch is mapped to the source second by the
   patch times: patch ``k`` covers its frames' span, from its first frame to the next patch's
   (``patch_times_s[k]`` to ``patch_times_s[k + 1]``; the last one to ``clip_end_s``, the
   end of the clip), linearly; before the first patch and past the clip's end the mapping goes
   on with the slope between the two nearest patches (``second_per_grid_t`` when there is one
   patch). So a second the model was shown, up to the end of its last patch, maps inside the
   clip: "0.8 s" of a 1 s clip is not clipped to its end.
2. positions count patches (Qwen2-VL) and carry no time, so a stated second is the model's
   guess: ``m / second_per_grid_t`` patches, then the patch times as above.
3. source seconds as text (Qwen3-VL): the model was shown source seconds, so ``m`` already is
   a source second.

This module is pure arithmetic: no torch.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Encoding(Protocol):
    """How the model was told the time, as a family declares it
    (:class:`vlcli.models.families.TimeEncoding`, a layer above this one)."""

    @property
    def value(self) -> str:
        """Its name, as the JSON output shows it."""
        ...

    @property
    def positions_are_seconds(self) -> bool: ...

    @property
    def states_source_seconds(self) -> bool: ...


def to_float32(x: float) -> float:
    """``x`` rounded to the nearest float32, as torch stores it."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def reference_positions(
    groups: int, second_per_grid_t: float, tokens_per_second: float
) -> list[int]:
    """Qwen2.5-VL's reference temporal positions: ``int((g * spg) * tps)`` in float32.

    This is ``get_rope_index`` of the released code (torch float32 tensors), and what vlcli makes
    transformers use (:mod:`vlcli.backends.transformers.positions`).
    """
    spg = to_float32(second_per_grid_t)
    return [int(to_float32(to_float32(g * spg) * tokens_per_second)) for g in range(groups)]


def vllm_positions(groups: int, second_per_grid_t: float, tokens_per_second: float) -> list[int]:
    """vLLM's Qwen2.5-VL temporal positions: ``int(g * (float32(spg) * tps))`` in float64.

    vLLM keeps ``second_per_grid_t`` as a float32 tensor value but multiplies in Python floats,
    so ``g * 4.2`` can land just below an integer where the reference's float32 lands on it.
    """
    step = to_float32(second_per_grid_t) * tokens_per_second
    return [int(g * step) for g in range(groups)]


@dataclass(frozen=True)
class TimeAxis:
    """How one video's temporal patches were placed for the model (see the module docstring)."""

    encoding: Encoding
    positions: tuple[int, ...]
    second_per_grid_t: float
    tokens_per_second: float | None
    patch_times_s: tuple[float, ...]
    clip_start_s: float
    clip_end_s: float  # the end of the shown clip: the last frame's start plus one frame time
    engine: str = "reference"  # whose formula made ``positions``: "reference" or "vllm"
    text_after: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.encoding, Encoding):
            raise ValueError(f"unknown time encoding {self.encoding!r}")
        if len(self.positions) != len(self.patch_times_s):
            raise ValueError("one position per temporal patch is needed")

    def position_seconds(self, position: float) -> float:
        """The second of the clip that a temporal position stands for, as the model reads it."""
        if self.encoding.positions_are_seconds and self.tokens_per_second:
            return position / self.tokens_per_second
        return position * self.second_per_grid_t

    def model_patch(self, model_seconds: float) -> float:
        """The (fractional) temporal patch the model means when it says ``model_seconds``."""
        spg = self.second_per_grid_t
        if self.encoding.positions_are_seconds and self.tokens_per_second and spg > 0:
            return _through_positions(
                self.positions, model_seconds * self.tokens_per_second, spg * self.tokens_per_second
            )
        return model_seconds / spg if spg > 0 else 0.0

    def source_seconds(self, model_seconds: float) -> float:
        """The source second the model means when it says ``model_seconds`` (not clipped)."""
        if self.encoding.states_source_seconds:
            return model_seconds
        times = self.patch_times_s
        if not times or self.second_per_grid_t <= 0:
            return self.clip_start_s + model_seconds
        g = self.model_patch(model_seconds)
        n = len(times)
        if g < 0:  # before the first patch: the slope between the first two
            return times[0] + g * (times[1] - times[0] if n > 1 else self.second_per_grid_t)
        if g >= n:  # past the clip's end: the slope between the last two patches
            step = times[-1] - times[-2] if n > 1 else self.second_per_grid_t
            return self.clip_end_s + (g - n) * step
        k = math.floor(g)
        ends = times[k + 1] if k + 1 < n else self.clip_end_s  # the last patch runs to the end
        return times[k] + (g - k) * (ends - times[k])

    @property
    def offset_s(self) -> float:
        """What is added to a stated second when the model's seconds are source seconds."""
        return 0.0 if self.encoding.states_source_seconds else self.clip_start_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoding": self.encoding.value,
            "engine": self.engine,
            "positions": list(self.positions),
            "text_after": self.text_after,
            "second_per_grid_t": self.second_per_grid_t,
            "tokens_per_second": self.tokens_per_second,
        }


def _through_positions(positions: tuple[int, ...], position: float, slope: float) -> float:
    """The fractional patch at ``position``: linear through the first patch of each position.

    When several patches share a position (more than ``tokens_per_second`` patches a second),
    the first of them is where that position's second begins. Outside the knots the ideal slope
    (``slope`` positions per patch) continues.
    """
    knots = [
        (float(p), float(g)) for g, p in enumerate(positions) if g == 0 or p != positions[g - 1]
    ]
    if len(knots) < 2 or slope <= 0:
        p0, g0 = knots[0] if knots else (0.0, 0.0)
        return g0 + (position - p0) / slope if slope > 0 else g0
    if position <= knots[0][0]:
        return knots[0][1] + (position - knots[0][0]) / slope
    if position >= knots[-1][0]:
        return knots[-1][1] + (position - knots[-1][0]) / slope
    lo, hi = 0, len(knots) - 1
    while hi - lo > 1:  # knots[lo].p <= position < knots[hi].p
        mid = (lo + hi) // 2
        if knots[mid][0] <= position:
            lo = mid
        else:
            hi = mid
    (p0, g0), (p1, g1) = knots[lo], knots[hi]
    return g0 + (position - p0) * (g1 - g0) / (p1 - p0)
