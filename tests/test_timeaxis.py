"""The time axis: engines' position formulas and mapping a stated second through them."""

from __future__ import annotations

import pytest

from vlcli.models.families import QWEN2_5_VL, QWEN2_VL, QWEN3_VL, TimeEncoding
from vlcli.planning.plan import SamplingOptions, VideoFacts, plan_video
from vlcli.times.axis import TimeAxis, reference_positions, vllm_positions

# 16 frames of a 420-frame 25 fps clip: sampled fps 16/420*25, second_per_grid_t 2.1.
CLIP_420 = VideoFacts(640, 360, 420, 25.0)


def test_reference_and_vllm_positions_differ_where_float32_rounds_up() -> None:
    plan = plan_video(CLIP_420, SamplingOptions(nframes=16), QWEN2_5_VL)
    assert plan.second_per_grid_t == pytest.approx(2.1)
    assert reference_positions(8, plan.second_per_grid_t, 2) == [0, 4, 8, 12, 16, 21, 25, 29]
    assert vllm_positions(8, plan.second_per_grid_t, 2) == [0, 4, 8, 12, 16, 20, 25, 29]
    assert list(plan.temporal_positions) == reference_positions(8, plan.second_per_grid_t, 2)
    assert list(plan.time_axis("vllm").positions) == [0, 4, 8, 12, 16, 20, 25, 29]


def test_a_stated_second_follows_the_engine_that_placed_the_patches() -> None:
    plan = plan_video(CLIP_420, SamplingOptions(nframes=16), QWEN2_5_VL)
    ref, vllm = plan.time_axis("reference"), plan.time_axis("vllm")
    # "10.5 seconds" is position 21: patch 5 for the reference, a fifth past patch 5 for vLLM
    assert ref.model_patch(10.5) == pytest.approx(5.0)
    assert vllm.model_patch(10.5) == pytest.approx(5.2)
    assert ref.source_seconds(10.5) == pytest.approx(plan.patch_times_s[5])
    gap = plan.patch_times_s[6] - plan.patch_times_s[5]
    assert vllm.source_seconds(10.5) == pytest.approx(plan.patch_times_s[5] + 0.2 * gap)
    # where both engines agree, so do the mapped seconds
    assert ref.source_seconds(8.0) == vllm.source_seconds(8.0) == plan.patch_times_s[4]


def test_whole_positions_map_to_what_their_patch_showed() -> None:
    # 60 s at 30 fps, 2 fps sampling: 120 frames, positions 0, 2, 4, ... (one per second)
    facts = VideoFacts(640, 360, 1800, 30.0, tuple(i / 30 for i in range(1800)))
    plan = plan_video(facts, SamplingOptions(start=10.0), QWEN2_5_VL)
    axis = plan.time_axis()
    for g, pos in enumerate(axis.positions):
        assert axis.source_seconds(axis.position_seconds(pos)) == pytest.approx(
            plan.patch_times_s[g]
        )
    assert axis.clip_start_s == pytest.approx(10.0)
    # beyond the last patch the mapping goes on at the last slope, not stuck at the end
    last = axis.position_seconds(axis.positions[-1])
    assert axis.source_seconds(last + 1.0) > axis.source_seconds(last)


def test_several_patches_on_one_position_start_where_the_position_begins() -> None:
    # 8 fps sampling: second_per_grid_t 0.25, positions 0,0,1,1,2,2...: position p begins at
    # the first patch that reaches it
    axis = TimeAxis(
        encoding=TimeEncoding.ABSOLUTE_MROPE,
        positions=tuple(reference_positions(8, 0.25, 2)),
        second_per_grid_t=0.25,
        tokens_per_second=2,
        patch_times_s=tuple(g * 0.25 for g in range(8)),
        clip_start_s=0.0,
        clip_end_s=2.0,
    )
    assert axis.positions == (0, 0, 1, 1, 2, 2, 3, 3)
    assert axis.model_patch(0.5) == pytest.approx(2.0)
    assert axis.source_seconds(0.5) == pytest.approx(0.5)
    assert axis.source_seconds(1.25) == pytest.approx(1.25)


def test_qwen2_vl_seconds_are_patches_times_seconds_per_patch() -> None:
    plan = plan_video(CLIP_420, SamplingOptions(nframes=16), QWEN2_VL)
    axis = plan.time_axis()
    assert axis.encoding == "frame-index" and axis.positions == tuple(range(8))
    assert axis.model_patch(4.2) == pytest.approx(2.0)


def test_qwen3_vl_states_source_seconds() -> None:
    plan = plan_video(CLIP_420, SamplingOptions(nframes=16, start=4.0), QWEN3_VL)
    axis = plan.time_axis()
    assert axis.encoding == "text-timestamps" and axis.offset_s == 0.0
    assert axis.source_seconds(7.25) == 7.25


def test_an_axis_needs_one_position_per_patch() -> None:
    with pytest.raises(ValueError, match="one position per temporal patch"):
        TimeAxis(TimeEncoding.ABSOLUTE_MROPE, (0, 2), 1.0, 2, (0.0,), 0.0, 1.0)
    with pytest.raises(ValueError, match="unknown time encoding"):
        TimeAxis("seconds", (0,), 1.0, 2, (0.0,), 0.0, 1.0)
