"""Each video's time axis as the model was really given it, read back after the prompt.

An answer's times are mapped to source seconds through the axis the model saw, not the one
vlcli planned: for Qwen2-VL and Qwen2.5-VL that is the temporal positions the hooked
``get_rope_index`` (:mod:`vlcli.backends.transformers.positions`) recorded during the prefill;
Qwen3-VL is told the time as text, which vlcli writes itself, so its planned axis is the one it
saw. When the positions cannot be read back, the axis is ``None`` and a note says the times are
left as the model stated them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from vlcli.backends import Prompt
from vlcli.backends.transformers.positions import recorded_video_axes
from vlcli.models.families import Family
from vlcli.planning.plan import VideoPlan
from vlcli.times.axis import TimeAxis

UNREAD = (
    "the positions the model was given could not be read back: the answer's times are "
    "left as the model stated them"
)


def given_axes(
    model: Any, family: Family, prompt: Prompt, input_ids: torch.Tensor
) -> tuple[tuple[TimeAxis | None, ...], tuple[str, ...]]:
    """Each video's axis as the model was given it (None where it was not recorded), and the
    note the answer carries when any is None."""
    axes = _axes(model, family, prompt, input_ids)
    return axes, ((UNREAD,) if any(axis is None for axis in axes) else ())


def _axes(
    model: Any, family: Family, prompt: Prompt, input_ids: torch.Tensor
) -> tuple[TimeAxis | None, ...]:
    """Qwen2/2.5-VL: the temporal positions the hooked ``get_rope_index`` computed for this
    prompt, read back per temporal patch. Qwen3-VL: the timestamps vlcli wrote into the text.
    A video whose positions were not recorded (the hook did not run) gets None."""
    videos = [p for p in prompt.plans if isinstance(p, VideoPlan)]
    if not family.reference_positions:
        return tuple(p.time_axis() for p in videos)
    recorded = recorded_video_axes(
        model, input_ids, [p.grid_thw for p in videos], family.spatial_merge_size
    )
    if recorded is None:
        return tuple(None for _ in videos)
    axes: list[TimeAxis | None] = []
    for plan, (positions, text_after) in zip(videos, recorded, strict=True):
        axes.append(  # the planned axis, with the positions transformers really used
            dataclasses.replace(
                plan.time_axis(),
                positions=tuple(positions),
                engine="reference",
                text_after=text_after,
            )
        )
    return tuple(axes)
