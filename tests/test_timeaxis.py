"""The time axis: engines' position formulas and mapping a stated second through them."""

from __future__ import annotations

import pytest

from vlcli.models.families import QWEN2_5_VL, QWEN2_VL, QWEN3_VL
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
        encoding="absolute-mrope",
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
        TimeAxis("absolute-mrope", (0, 2), 1.0, 2, (0.0,), 0.0, 1.0)
    with pytest.raises(ValueError, match="unknown time encoding"):
        TimeAxis("seconds", (0,), 1.0, 2, (0.0,), 0.0, 1.0)


# The last temporal patch covers its frames' span, up to the clip's end: a second the model was
# shown is never mapped past the clip (issue 21, item 13). Beyond that end the mapping goes on
# with the slope between patches. Expected values are worked by hand.


def _axis(patch_times: tuple[float, ...], clip_end_s: float, spg: float) -> TimeAxis:
    return TimeAxis(
        encoding="absolute-mrope",
        positions=tuple(reference_positions(len(patch_times), spg, 2)),
        second_per_grid_t=spg,
        tokens_per_second=2,
        patch_times_s=patch_times,
        clip_start_s=patch_times[0],
        clip_end_s=clip_end_s,
    )


def test_a_second_inside_the_last_patch_maps_inside_the_clip() -> None:
    # a 1 s clip at 30 fps: frames 0, 10, 19, 29; patches at 0 s and 19/30 s; spg 0.5,
    # positions 0, 1. "0.8 s" is position 1.6: patch 1.6, 0.6 of the way through the last
    # patch, which runs from 19/30 s to the clip's end, 1.0 s: 19/30 + 0.6 * 11/30 = 25.6/30.
    plan = plan_video(VideoFacts(640, 360, 30, 30.0), SamplingOptions(), QWEN2_5_VL)
    axis = plan.time_axis()
    assert axis.patch_times_s == pytest.approx((0.0, 19 / 30))
    assert axis.clip_end_s == pytest.approx(1.0)
    assert axis.source_seconds(0.8) == pytest.approx(25.6 / 30)
    # past the clip's end, on at the slope between the patches (19/30 s a patch): 1.3 s is
    # patch 2.6, 0.6 past the end: 1.0 + 0.6 * 19/30
    assert axis.source_seconds(1.3) == pytest.approx(1.0 + 0.6 * 19 / 30)


def test_a_second_near_the_end_of_a_20_s_clip_is_inside() -> None:
    # 600 frames at 30 fps, 2 fps: 40 frames, spg 1.0, positions 0, 2, ... 38; the last patch
    # shows frames 584 and 599 (19.4667 s) and runs to 20.0 s. "19.9 s" is position 39.8,
    # patch 19.9: 584/30 + 0.9 * (20 - 584/30) = 19.9467 (was 20.397: outside, clipped to 20).
    plan = plan_video(VideoFacts(640, 360, 600, 30.0), SamplingOptions(), QWEN2_5_VL)
    axis = plan.time_axis()
    assert axis.patch_times_s[-1] == pytest.approx(584 / 30)
    assert axis.source_seconds(19.9) == pytest.approx(584 / 30 + 0.9 * (20 - 584 / 30))
    from vlcli.times.parse import map_times, parse_times

    (span,) = map_times(
        parse_times("At 19.9 seconds he waves."),
        clip_start_s=axis.clip_start_s,
        clip_end_s=axis.clip_end_s,
        to_source=axis.source_seconds,
    )
    assert not span.outside and not span.clipped


def test_a_variable_frame_rate_clip_maps_its_last_patch_to_its_end() -> None:
    # patches at 0, 1.5, 3.5, 5.5, 8.5 s (uneven), spg 2.0, positions 0, 4, 8, 12, 16; the clip
    # ends at 9.93 s. "9.5 s" is position 19, patch 4.75: 8.5 + 0.75 * (9.93 - 8.5) = 9.5725
    # (the slope of patches 3-4 gave 5.5 + 1.75 * 3.0 = 10.75: outside).
    axis = _axis((0.0, 1.5, 3.5, 5.5, 8.5), 9.93, 2.0)
    assert axis.positions == (0, 4, 8, 12, 16)
    assert axis.source_seconds(9.5) == pytest.approx(9.5725)
    # before the first patch: the slope of the first two patches, 1.5 s a patch
    assert axis.source_seconds(-1.0) == pytest.approx(-0.75)
    # past the end: the slope between the last two patches, 3.0 s a patch: 10.5 s is patch 5.25
    assert axis.source_seconds(10.5) == pytest.approx(9.93 + 0.25 * 3.0)


def test_a_one_patch_clip_spans_its_patch() -> None:
    # one patch from 0 s (spg 1.0), the clip ends at 0.75 s: "0.5 s" is half the patch,
    # 0.375 s; past the end the patch's own length, spg, is the slope: 1.5 s is 0.75 + 0.5
    axis = _axis((0.0,), 0.75, 1.0)
    assert axis.source_seconds(0.5) == pytest.approx(0.375)
    assert axis.source_seconds(1.5) == pytest.approx(1.25)


def test_clipped_times_do_not_pass_the_requested_end() -> None:
    # --start 5 --end 15 of a 30 s 25 fps video: the last frame, 375, starts at 15.0 s; the clip
    # ends at --end, 15.0, not that frame's end, 15.04
    plan = plan_video(VideoFacts(640, 360, 750, 25.0), SamplingOptions(start=5, end=15), QWEN2_5_VL)
    assert plan.clip_end_s == pytest.approx(15.0)
    axis = plan.time_axis()
    assert axis.clip_end_s == pytest.approx(15.0)
    from vlcli.planning.windows import shown_range
    from vlcli.times.parse import map_times, parse_times

    assert shown_range(plan)[1] == pytest.approx(15.0)
    (span,) = map_times(
        parse_times("At 12 seconds he leaves."),
        clip_start_s=axis.clip_start_s,
        clip_end_s=axis.clip_end_s,
        to_source=axis.source_seconds,
    )
    assert span.source_start_s == 15.0 and span.outside
    # without --end the last frame is shown for one frame time
    whole = plan_video(VideoFacts(640, 360, 750, 25.0), SamplingOptions(start=5), QWEN2_5_VL)
    assert whole.time_axis().clip_end_s == pytest.approx(whole.clip_end_s + 0.04)
