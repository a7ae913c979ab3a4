"""Hand-worked cases of the pure planning core (no decoding, no torch)."""

from __future__ import annotations

import pytest

from vlcli.errors import ExitStatus, InputError, MemoryBudgetError, UsageError
from vlcli.models.families import QWEN2_5_VL, QWEN2_VL, resolve_model
from vlcli.planning.memory import GIB, check_weights_fit, estimate_memory, weights_bytes
from vlcli.planning.plan import (
    SamplingOptions,
    VideoFacts,
    check_options,
    estimate_prompt_tokens,
    frame_range,
    plan_image,
    plan_video,
    sample_count,
    temporal_positions,
)

HD60 = VideoFacts(width=1920, height=1080, num_frames=1800, average_fps=30.0)


def test_sixty_seconds_of_1080p_at_defaults():
    p = plan_video(HD60, SamplingOptions(), QWEN2_5_VL)
    # 60 s at 2 fps; linspace(0, 1799, 120) rounded: step 15.1176...
    assert p.frames == 120
    assert p.frame_indices[:6] == (0, 15, 30, 45, 60, 76) and p.frame_indices[-1] == 1799
    assert p.sample_fps == pytest.approx(2.0)
    assert p.second_per_grid_t == pytest.approx(1.0)
    # 1080x1920 -> 39x69 factors = 2.1 Mpx > 768*28*28, so beta = sqrt(2073600/602112) = 1.8558:
    # 1080/1.8558 = 581.96 -> 560 and 1920/1.8558 = 1034.6 -> 1008.
    assert (p.resized_height, p.resized_width) == (560, 1008)
    assert p.grid_thw == (60, 40, 72)
    assert p.visual_tokens == 60 * 40 * 72 // 4 == 43200
    assert p.temporal_positions[:4] == (0, 2, 4, 6) and p.temporal_positions[-1] == 118
    assert p.patch_times_s[:3] == (0.0, 1.0, 2.0)


def test_positions_with_fractional_seconds_per_patch():
    # 10 s at 25 fps, --fps 1.5: 250/25*1.5 = 15 -> 14 frames; sampled fps 14/250*25 = 1.4;
    # second_per_grid_t = 2/1.4 = 1.428571; position = floor(g * 1.428571 * 2).
    facts = VideoFacts(width=640, height=360, num_frames=250, average_fps=25.0)
    p = plan_video(facts, SamplingOptions(fps=1.5), QWEN2_5_VL)
    assert p.frames == 14
    assert p.sample_fps == pytest.approx(1.4)
    assert p.temporal_positions == (0, 2, 5, 8, 11, 14, 17)
    assert p.position_seconds(17) == 8.5


@pytest.mark.parametrize(
    ("family", "spg", "expected"),
    [
        (QWEN2_5_VL, 1.0, [0, 2, 4, 6]),
        (QWEN2_5_VL, 0.5, [0, 1, 2, 3]),
        (QWEN2_5_VL, 4.0, [0, 8, 16, 24]),
        (QWEN2_VL, 4.0, [0, 1, 2, 3]),
    ],
)
def test_temporal_positions(family, spg, expected):
    assert temporal_positions(family, 4, spg) == expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (SamplingOptions(), (0, 99)),
        (SamplingOptions(start=1.0, end=2.7), (25, 67)),  # ceil(1.0*25), floor(2.7*25)
        (SamplingOptions(start=0.01), (1, 99)),
        (SamplingOptions(end=9.0), (0, 99)),  # past the end: clipped like the reference
    ],
)
def test_frame_range(options, expected):
    assert frame_range(options, 100, 25.0) == expected


def test_end_past_the_video_is_noted():
    p = plan_video(VideoFacts(320, 240, 100, 25.0), SamplingOptions(end=9.0), QWEN2_5_VL)
    assert p.notes and "past the end" in p.notes[0]


@pytest.mark.parametrize(
    ("frames", "fps", "options", "expected"),
    [
        (100, 25.0, SamplingOptions(), 8),  # 4 s * 2 fps
        (3, 25.0, SamplingOptions(), 2),  # max_frames = floor(3 / 2) * 2
        (1800, 30.0, SamplingOptions(fps=0.01), 4),  # min_frames
        (90000, 30.0, SamplingOptions(), 768),  # max_frames
        (100, 25.0, SamplingOptions(nframes=9), 8),  # 9/2 = 4.5 rounds half to even: 4 pairs
        (100, 25.0, SamplingOptions(nframes=11), 12),  # 5.5 -> 6 pairs
    ],
)
def test_sample_count(frames, fps, options, expected):
    assert sample_count(options, frames, fps) == expected


@pytest.mark.parametrize(
    ("facts", "options", "message"),
    [
        (VideoFacts(320, 240, 100, 25.0), SamplingOptions(start=5.0), "outside the video"),
        (VideoFacts(320, 240, 100, 25.0), SamplingOptions(nframes=200), "too few frames"),
        (VideoFacts(320, 240, 1, 25.0), SamplingOptions(), "too few frames"),
        (VideoFacts(3, 700, 100, 25.0), SamplingOptions(), "aspect ratio"),
        (
            VideoFacts(320, 240, 100, 25.0),
            SamplingOptions(start=1.0, end=1.02),
            "fewer than two frames",
        ),
    ],
)
def test_plan_errors(facts, options, message):
    with pytest.raises(InputError, match=message):
        plan_video(facts, options, QWEN2_5_VL)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(fps=1.0, nframes=4),
        dict(fps=-1.0),
        dict(start=3.0, end=2.0),
        dict(min_pixels=10, max_pixels=5),
        dict(start=-1.0),
    ],
)
def test_bad_options(kwargs):
    with pytest.raises(UsageError):
        SamplingOptions(**kwargs)


def test_image_plan():
    p = plan_image(1920, 1080, SamplingOptions(), QWEN2_5_VL)
    # round(1080/28)=39 -> 1092, round(1920/28)=69 -> 1932, within 16384*28*28
    assert (p.resized_height, p.resized_width) == (1092, 1932)
    assert p.grid_thw == (1, 78, 138) and p.visual_tokens == 78 * 138 // 4


def test_memory_estimate_7b():
    spec = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    assert spec.source == "built-in preset"
    params = spec.dims.parameter_count(14, 2, 2)
    assert 8.25e9 < params < 8.35e9  # the released checkpoint has 8.29 B parameters
    p = plan_video(HD60, SamplingOptions(), QWEN2_5_VL)
    tokens = estimate_prompt_tokens([p], "What happens?")
    assert tokens == 43200 + 21 + 2 + 4
    mem = estimate_memory(spec, [p], tokens, 512, "bfloat16")
    assert mem.weights_bytes == params * 2
    # 2 (K and V) * 28 layers * 4 kv heads * 128 dims * tokens * 2 bytes
    assert mem.kv_cache_bytes == 2 * 28 * 4 * 128 * (tokens + 512) * 2
    assert 16 * 2**30 < mem.total_bytes < 30 * 2**30


def test_tokens_per_second_comes_from_the_checkpoint(tmp_path):
    import json

    cfg = {
        "model_type": "qwen2_5_vl",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 1000,
        "vision_config": {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 14,
            "tokens_per_second": 3,
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = resolve_model(str(tmp_path))
    assert spec.source == "local config" and spec.family.tokens_per_second == 3
    p = plan_video(VideoFacts(320, 240, 100, 25.0), SamplingOptions(), spec.family)
    assert p.temporal_positions == (0, 3, 6, 9)


def test_source_seconds_follow_the_patch_table():
    # 12 s at 30 fps: 24 frames at linspace(0, 359, 24); patch g starts at frame round(g*2*359/23)
    facts = VideoFacts(640, 360, 360, 30.0, tuple(i / 30 for i in range(360)))
    p = plan_video(facts, SamplingOptions(), QWEN2_5_VL)
    assert p.second_per_grid_t == pytest.approx(1.0)
    assert p.time_axis().source_seconds(0) == 0.0
    assert p.time_axis().source_seconds(11) == pytest.approx(
        343 / 30
    )  # what patch 11 showed, not 11.0
    assert p.time_axis().source_seconds(5.5) == pytest.approx(
        (156 + 187) / 2 / 30
    )  # halfway from patch 5 to 6
    q = plan_video(facts, SamplingOptions(start=3.0), QWEN2_5_VL)
    assert q.time_axis().source_seconds(0) == pytest.approx(3.0)


def test_source_seconds_in_variable_frame_rate_video():
    # 10 frames at 0.1 s, then 10 frames at 0.5 s: uniform indices are not uniform in time
    times = tuple([i * 0.1 for i in range(10)] + [1.0 + i * 0.5 for i in range(10)])
    facts = VideoFacts(320, 240, 20, 20 / 5.5, times)
    p = plan_video(facts, SamplingOptions(nframes=4), QWEN2_5_VL)
    assert p.frame_indices == (0, 6, 13, 19)
    assert p.patch_times_s == (0.0, times[13])
    # patch 1 sits at position floor(2.75 * 2) = 5, which the model reads as 2.5 s
    axis = p.time_axis()
    assert axis.positions == (0, 5)
    assert axis.source_seconds(2.5) == pytest.approx(times[13])


def test_a_given_bound_wins_over_a_default_one():
    """--max-pixels below the default least pixels of a video frame lowers the least (the
    reference stops on an assertion); --min-pixels above the default most of an image raises
    the most. Both given and crossed is a usage error at once."""
    p = plan_video(HD60, SamplingOptions(max_pixels=31360), QWEN2_5_VL)
    assert p.min_pixels == 31360 and p.resized_height * p.resized_width <= 31360
    same = plan_video(HD60, SamplingOptions(max_pixels=31360, min_pixels=31360), QWEN2_5_VL)
    assert (same.resized_height, same.resized_width) == (p.resized_height, p.resized_width)
    image = plan_image(200, 120, SamplingOptions(min_pixels=16385 * 28 * 28), QWEN2_5_VL)
    assert image.frame_height * image.frame_width >= 16385 * 28 * 28
    small = plan_image(2000, 1200, SamplingOptions(max_pixels=2000), QWEN2_5_VL)
    assert small.frame_height * small.frame_width <= 2000
    with pytest.raises(UsageError, match="--max-pixels 5 is below --min-pixels 10"):
        SamplingOptions(min_pixels=10, max_pixels=5)


def test_options_no_input_could_be_planned_with():
    check_options(SamplingOptions(max_pixels=784), QWEN2_5_VL)
    with pytest.raises(UsageError, match="--max-pixels 783 is less than one visual token .*28x28"):
        check_options(SamplingOptions(max_pixels=783), QWEN2_5_VL)
    with pytest.raises(UsageError, match="rounds to 0"):
        SamplingOptions(nframes=1)
    assert SamplingOptions(nframes=3).nframes == 3  # rounds to 2
    with pytest.raises(UsageError, match="--max-frames 10 is below --min-frames 100"):
        SamplingOptions(min_frames=100, max_frames=10)


def test_image_plan_keeps_both_sizes():
    # Qwen3-VL's processor has a 65536-pixel minimum: a small image is resized twice
    from vlcli.models.families import QWEN3_VL

    p = plan_image(100, 80, SamplingOptions(), QWEN3_VL)
    assert (p.frame_height, p.frame_width) == (
        64,
        96,
    )  # round(80/32) = 2 (half to even), round(100/32) = 3
    assert p.resized_height * p.resized_width >= 65536


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fps": float("nan")},
        {"fps": float("inf")},
        {"max_pixels": float("nan")},
        {"total_pixels": float("inf")},
        {"start": float("nan")},
        {"end": float("inf")},
    ],
)
def test_non_finite_options_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        SamplingOptions(**kwargs)


@pytest.mark.parametrize("options", [SamplingOptions(), SamplingOptions(nframes=2)])
def test_a_one_frame_video_says_so(options):
    one = VideoFacts(width=160, height=90, num_frames=1, average_fps=10.0)
    with pytest.raises(InputError) as info:
        plan_video(one, options, QWEN2_5_VL)
    assert "has 1 frame" in str(info.value) and "0 sampled" not in str(info.value)


def test_a_bug_on_one_input_does_not_stop_the_others(monkeypatch, tmp_path):
    import vlcli.run.budget as core
    from vlcli.errors import ExitStatus
    from vlcli.media.probe import MediaInfo

    def fake_probe(path):
        if path.endswith("bad.mp4"):
            raise RuntimeError("boom")
        return MediaInfo(
            path, "image", "png", "png", 64, 64, 0, None, None, None, False, "RGB", False
        )

    monkeypatch.setattr(core, "probe", fake_probe)
    spec = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    out = list(core.plan_inputs(["a.png", "bad.mp4", "c.png"], SamplingOptions(), spec))
    assert [o.plan is not None for o in out] == [True, False, True]
    assert out[1].error.status == ExitStatus.ERROR and "RuntimeError: boom" in out[1].error.message


def test_weights_that_cannot_fit_stop_before_loading() -> None:
    """Qwen2.5-VL-7B (8.29 B parameters) on a 24 GiB machine: float32 does not fit, bf16 does."""
    spec = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    assert weights_bytes(spec, "float32") == 2 * weights_bytes(spec, "bf16") == 4 * 8_292_166_656
    with pytest.raises(MemoryBudgetError) as err:
        check_weights_fit(spec, "float32", "cpu", 24 * GIB)
    assert err.value.status == ExitStatus.MEMORY
    assert err.value.message == (
        "the model's weights need 30.9 GiB in float32 and 24.0 GiB of memory is available: "
        "--dtype bfloat16 halves it (15.4 GiB), or run on a GPU; --force loads it anyway"
    )
    check_weights_fit(spec, "bfloat16", "cpu", 24 * GIB)
    check_weights_fit(spec, "float32", "cpu", 24 * GIB, force=True)
    check_weights_fit(spec, "float32", "cpu", None)  # unknown: no check
    with pytest.raises(MemoryBudgetError, match="12.0 GiB of GPU memory is free: use a smaller"):
        check_weights_fit(spec, "bfloat16", "cuda", 12 * GIB)
