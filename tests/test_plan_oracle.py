"""The planning core against the reference, qwen-vl-utils 0.0.14, over a wide table of cases.

The reference's own torchcodec reader and ``fetch_video`` run for real; only the decoder and the
pixel resize are replaced by stand-ins that record what they were asked for (the frame indices
and the target size), so hundreds of shapes, frame rates and option sets run in a second.
Decoding itself is compared bit for bit in test_media.py.

The transformers processor's second resize is checked the same way: for Qwen3-VL the real
``Qwen3VLVideoProcessor`` is called (its public ``__call__``, so its own defaults, kwargs and
``_preprocess``) on a stand-in video of qwen-vl-utils' frame count and size that takes no memory,
and only the final pixel resize is replaced by one that reports the size it was asked for.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
import torchcodec.decoders
from qwen_vl_utils import vision_process as ref
from transformers import AutoVideoProcessor
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize as tf_smart_resize
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
from transformers.video_processing_utils import BaseVideoProcessor

from vlcli.errors import InputError
from vlcli.models.families import QWEN2_5_VL, QWEN3_VL, Family, resolve_model
from vlcli.planning.plan import (
    SamplingOptions,
    VideoFacts,
    linspace_f32,
    plan_image,
    plan_video,
    processor_resize,
    qwen3_video_resize,
    reference_resize,
)


class _Recorded:
    """Stands in for the resized video: fetch_video calls .float() on it, we read .shape."""

    def __init__(self, shape):
        self.shape = shape

    def float(self):
        return self


def reference_video(monkeypatch, facts: VideoFacts, options: SamplingOptions, patch: int = 14):
    calls = {}

    class FakeDecoder:
        def __init__(self, path, num_ffmpeg_threads=0, **kw):
            self.metadata = SimpleNamespace(
                average_fps=facts.average_fps, num_frames=facts.num_frames
            )

        def get_frames_at(self, indices):
            calls["indices"] = list(indices)
            return SimpleNamespace(
                data=torch.zeros(1, 3, 1, 1).expand(len(indices), 3, facts.height, facts.width)
            )

    def fake_resize(video, size, interpolation, antialias):
        calls["size"] = tuple(size)
        return _Recorded((video.shape[0], 3, *size))

    monkeypatch.setattr(torchcodec.decoders, "VideoDecoder", FakeDecoder)
    monkeypatch.setattr(ref.transforms.functional, "resize", fake_resize)
    monkeypatch.setattr(ref, "get_video_reader_backend", lambda: "torchcodec")
    ele = {"video": "fake.mp4"}
    for ours, theirs in (
        ("fps", "fps"),
        ("nframes", "nframes"),
        ("min_frames", "min_frames"),
        ("max_frames", "max_frames"),
        ("min_pixels", "min_pixels"),
        ("max_pixels", "max_pixels"),
        ("total_pixels", "total_pixels"),
        ("start", "video_start"),
        ("end", "video_end"),
    ):
        if getattr(options, ours) is not None:
            ele[theirs] = getattr(options, ours)
    (video, meta), sample_fps = ref.fetch_video(
        ele, image_patch_size=patch, return_video_sample_fps=True, return_video_metadata=True
    )
    return calls["indices"], sample_fps, calls["size"]


SHAPES = [
    (1920, 1080),
    (1080, 1920),
    (640, 360),
    (320, 240),
    (3840, 2160),
    (100, 2000),
    (56, 56),
    (30, 30),
    (1280, 536),
]
RATES = [
    (25.0, 100),
    (30.0, 1800),
    (29.97002997, 719),
    (60.0, 7200),
    (24.0, 48),
    (10.0, 31),
    (1.0, 600),
    (30.0, 23040),
]
OPTIONS = [
    SamplingOptions(),
    SamplingOptions(fps=1.0),
    SamplingOptions(fps=4.0, max_frames=64),
    SamplingOptions(nframes=8),
    SamplingOptions(nframes=17),
    SamplingOptions(min_frames=16),
    SamplingOptions(max_pixels=200_000),
    SamplingOptions(min_pixels=50_000, total_pixels=2_000_000),
    SamplingOptions(total_pixels=20_000_000),
    SamplingOptions(start=1.0),
    SamplingOptions(start=0.5, end=2.7),
    SamplingOptions(end=3.0, fps=0.5),
]


def _cases():
    rng = random.Random(7)
    cases = list(itertools.product(SHAPES[:3], RATES, OPTIONS))
    cases += [(rng.choice(SHAPES), rng.choice(RATES), rng.choice(OPTIONS)) for _ in range(150)]
    return cases


@pytest.mark.parametrize(("shape", "rate", "options"), _cases())
def test_video_plan_matches_qwen_vl_utils(monkeypatch, shape, rate, options):
    (w, h), (fps, n) = shape, rate
    facts = VideoFacts(width=w, height=h, num_frames=n, average_fps=fps)
    try:
        indices, sample_fps, size = reference_video(monkeypatch, facts, options)
    except (ValueError, AssertionError) as exc:
        with pytest.raises(InputError):
            plan_video(facts, options, QWEN2_5_VL)
        return exc
    plan = plan_video(facts, options, QWEN2_5_VL)
    assert list(plan.frame_indices) == indices
    assert plan.sample_fps == pytest.approx(sample_fps, rel=1e-12)
    assert (plan.frame_height, plan.frame_width) == size
    # The transformers processor's own pass over the reference-sized frames:
    fam = QWEN2_5_VL
    assert (plan.resized_height, plan.resized_width) == tf_smart_resize(
        *size,
        factor=28,
        min_pixels=fam.processor_video_min_pixels,
        max_pixels=fam.processor_video_max_pixels,
    )
    assert plan.grid_thw == (plan.frames // 2, plan.resized_height // 14, plan.resized_width // 14)
    assert plan.visual_tokens == plan.grid_thw[0] * plan.grid_thw[1] * plan.grid_thw[2] // 4


@pytest.mark.parametrize("shape", SHAPES[:6])
@pytest.mark.parametrize("options", OPTIONS[:4])
def test_qwen3_factor_32_matches_reference(monkeypatch, shape, options):
    facts = VideoFacts(width=shape[0], height=shape[1], num_frames=300, average_fps=30.0)
    indices, sample_fps, size = reference_video(monkeypatch, facts, options, patch=16)
    plan = plan_video(facts, options, QWEN3_VL)
    assert list(plan.frame_indices) == indices
    assert (plan.frame_height, plan.frame_width) == size
    assert plan.frame_height % 32 == 0 and plan.frame_width % 32 == 0


# ---------------------------------------------------------------- Qwen3-VL's video processor pass

# The released checkpoints' video_preprocessor_config.json (see vlcli.models.families.QWEN3_VL).
RELEASED_QWEN3_VIDEO = {"size": {"shortest_edge": 4096, "longest_edge": 25165824}}
QWEN3_PROCESSORS = {
    "class-defaults": {},  # size 131072 / 786432, cap unset (off), 768 tokens
    "released": RELEASED_QWEN3_VIDEO,
    "released-capped": {**RELEASED_QWEN3_VIDEO, "cap_pixels_per_frame": True},
    "capped-64-tokens": {
        **RELEASED_QWEN3_VIDEO,
        "cap_pixels_per_frame": True,
        "max_video_tokens": 64,
    },
}


class _Target(Exception):
    """Raised by the stand-in pixel resize, carrying the size the processor asked for."""


def processor_size(monkeypatch, vp, frames: int, height: int, width: int) -> tuple[int, int]:
    """The (height, width) the real video processor ``vp`` resizes these frames to.

    Called as the reference calls it (``do_sample_frames=False``, nothing else), on ``frames``
    frames of ``height`` x ``width`` that are one zero broadcast; raises what the processor raises.
    """

    def record(self, image, size, resample=None, **kwargs):
        raise _Target((size.height, size.width))

    monkeypatch.setattr(BaseVideoProcessor, "resize", record)
    video = torch.zeros(1, 1, 1, 1).expand(frames, 3, height, width)
    try:
        vp(videos=[video], do_sample_frames=False, return_tensors="pt")
    except _Target as target:
        return target.args[0]
    raise AssertionError("the processor did not resize")


def family_for(vp, base: Family = QWEN3_VL) -> Family:
    """``base`` with this video processor's settings (what vlcli reads from its config file)."""
    return replace(
        base,
        processor_video_min_pixels=vp.size.shortest_edge,
        processor_video_max_pixels=vp.size.longest_edge,
        processor_video_cap_pixels_per_frame=bool(vp.cap_pixels_per_frame),
        processor_video_max_tokens=vp.max_video_tokens,
    )


def test_qwen3_preset_is_the_released_video_processor():
    vp = Qwen3VLVideoProcessor(**RELEASED_QWEN3_VIDEO)
    assert family_for(vp) == QWEN3_VL
    assert (vp.patch_size * vp.merge_size, vp.temporal_patch_size) == (QWEN3_VL.factor, 2)


@pytest.mark.parametrize("config", list(QWEN3_PROCESSORS))
@pytest.mark.parametrize(("shape", "rate", "options"), _cases())
def test_qwen3_video_plan_matches_the_processor(monkeypatch, config, shape, rate, options):
    """qwen-vl-utils (image_patch_size=16), then the Qwen3-VL processor: the plan's final size."""
    vp = Qwen3VLVideoProcessor(**QWEN3_PROCESSORS[config])
    assert_plan_is_the_processors(monkeypatch, vp, family_for(vp), shape, rate, options)


def assert_plan_is_the_processors(monkeypatch, vp, family, shape, rate, options) -> None:
    """qwen-vl-utils' frames and size, then ``vp``'s resize: the plan's frames, size and grid."""
    (w, h), (fps, n) = shape, rate
    facts = VideoFacts(width=w, height=h, num_frames=n, average_fps=fps)
    patch = family.patch_size
    try:
        indices, _, size = reference_video(monkeypatch, facts, options, patch=patch)
        final = processor_size(monkeypatch, vp, len(indices), *size)
    except (ValueError, AssertionError):
        with pytest.raises(InputError):
            plan_video(facts, options, family)
        return
    plan = plan_video(facts, options, family)
    assert (plan.frames, plan.frame_height, plan.frame_width) == (len(indices), *size)
    assert (plan.resized_height, plan.resized_width) == final
    assert plan.grid_thw == (math.ceil(plan.frames / 2), final[0] // patch, final[1] // patch)
    assert plan.visual_tokens == math.prod(plan.grid_thw) // 4


def test_qwen3_the_processor_pass_matters(monkeypatch):
    """60 frames at qwen-vl-utils' 1080p size are over the released 25165824-pixel clip budget."""
    facts = VideoFacts(width=1920, height=1080, num_frames=900, average_fps=30.0)
    plan = plan_video(facts, SamplingOptions(), QWEN3_VL)
    assert plan.frames == 60
    assert (plan.frame_height, plan.frame_width) == (640, 1152)  # qwen-vl-utils: 720 tokens a frame
    assert (plan.resized_height, plan.resized_width) == (480, 864)  # the processor: 405 a frame
    vp = Qwen3VLVideoProcessor(**RELEASED_QWEN3_VIDEO)
    assert processor_size(monkeypatch, vp, 60, 640, 1152) == (480, 864)
    assert plan.visual_tokens == 30 * 15 * 27


@pytest.mark.parametrize("config", list(QWEN3_PROCESSORS))
def test_qwen3_video_resize_equals_the_processor(monkeypatch, config):
    """Odd frame counts, sides below the factor, extreme aspect ratios, and random sizes."""
    vp = Qwen3VLVideoProcessor(**QWEN3_PROCESSORS[config])
    fam = family_for(vp)
    edge = [(1, 64, 64), (2, 32, 32), (3, 64, 96), (5, 1080, 1920), (7, 10, 700), (4, 20, 20)]
    edge += [(2, 33, 6600), (768, 128, 224), (60, 640, 1184), (2, 7, 9), (9, 4096, 4096)]
    rng = random.Random(11)
    rand = [(rng.randint(1, 800), rng.randint(1, 2500), rng.randint(1, 2500)) for _ in range(1500)]
    for frames, h, w in edge + rand:
        args = (frames, h, w, 32, 2, fam.processor_video_min_pixels, fam.processor_video_max_pixels)
        kwargs = {
            "cap_pixels_per_frame": fam.processor_video_cap_pixels_per_frame,
            "max_video_tokens": fam.processor_video_max_tokens,
        }
        try:
            theirs = processor_size(monkeypatch, vp, frames, h, w)
        except ValueError:
            with pytest.raises(InputError):
                qwen3_video_resize(*args, **kwargs)
            continue
        ours = qwen3_video_resize(*args, **kwargs)
        assert ours == theirs, (frames, h, w)
        assert ours[0] % 32 == 0 and ours[1] % 32 == 0 and min(ours) >= 32
        rounded = frames * round(h / 32) * 32 * round(w / 32) * 32
        budget = fam.processor_video_max_pixels
        if not kwargs["cap_pixels_per_frame"] and frames % 2 == 0 and min(h, w) >= 32:
            if rounded > budget:  # it shrinks: within the budget unless a side is at the floor
                assert frames * ours[0] * ours[1] <= budget or min(ours) == 32, (frames, h, w)


def test_qwen3_plan_grid_equals_the_processor_output():
    """The real processor on real frames (a small clip budget, so that it resizes)."""
    vp = Qwen3VLVideoProcessor(size={"shortest_edge": 4096, "longest_edge": 200_000})
    facts = VideoFacts(width=320, height=240, num_frames=31, average_fps=10.0)
    plan = plan_video(facts, SamplingOptions(nframes=8, min_pixels=4096), family_for(vp))
    assert (plan.frame_height, plan.frame_width) == (256, 320)
    assert (plan.resized_height, plan.resized_width) == (128, 160)
    frames = torch.rand(plan.frames, 3, plan.frame_height, plan.frame_width) * 255
    out = vp(videos=[frames], do_sample_frames=False, return_tensors="pt")
    assert out["video_grid_thw"].tolist() == [list(plan.grid_thw)]
    assert out["pixel_values_videos"].shape[0] == math.prod(plan.grid_thw)


@pytest.mark.parametrize("config", ["released", "capped-64-tokens"])
def test_qwen3_settings_come_from_the_checkpoint_folder(monkeypatch, tmp_path, config):
    """vlcli reads the folder's video_preprocessor_config.json as transformers loads it."""
    cfg = {"model_type": "qwen3_vl", "vision_config": {"patch_size": 16, "spatial_merge_size": 2}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    Qwen3VLVideoProcessor(**QWEN3_PROCESSORS[config]).save_pretrained(tmp_path)
    vp = AutoVideoProcessor.from_pretrained(tmp_path)
    family = resolve_model(str(tmp_path)).family
    assert family == family_for(vp)
    facts = VideoFacts(width=1280, height=720, num_frames=1800, average_fps=30.0)
    for options in OPTIONS:
        _, _, size = reference_video(monkeypatch, facts, options, patch=16)
        plan = plan_video(facts, options, family)
        final = processor_size(monkeypatch, vp, plan.frames, *size)
        assert (plan.resized_height, plan.resized_width) == final, options


# ---------------------------------------------------------------- Qwen2/2.5-VL's video processor pass

# Qwen2.5-VL's video processor is Qwen2VLVideoProcessor. The released checkpoints' limits
# (min_pixels 3136, max_pixels 12845056), its class defaults, and cap_pixels_per_frame turned on
# in a checkpoint's video_preprocessor_config.json, with the default context (128000 tokens, the
# same total as qwen-vl-utils', so it rarely binds) and a small one (so that it binds).
RELEASED_QWEN25_VIDEO = {"min_pixels": 3136, "max_pixels": 12845056}
QWEN2_PROCESSORS = {
    "class-defaults": {},
    "released": RELEASED_QWEN25_VIDEO,
    "released-capped": {**RELEASED_QWEN25_VIDEO, "cap_pixels_per_frame": True},
    "capped-4000-tokens": {
        **RELEASED_QWEN25_VIDEO,
        "cap_pixels_per_frame": True,
        "max_video_tokens": 4000,
    },
}


def test_qwen25_preset_is_the_released_video_processor():
    assert family_for(Qwen2VLVideoProcessor(**RELEASED_QWEN25_VIDEO), QWEN2_5_VL) == QWEN2_5_VL


@pytest.mark.parametrize("config", list(QWEN2_PROCESSORS))
@pytest.mark.parametrize(("shape", "rate", "options"), _cases()[::3])
def test_qwen25_video_plan_matches_the_processor(monkeypatch, config, shape, rate, options):
    """qwen-vl-utils, then the Qwen2-VL video processor (cap on or off): the plan's final size."""
    vp = Qwen2VLVideoProcessor(**QWEN2_PROCESSORS[config])
    assert_plan_is_the_processors(
        monkeypatch, vp, family_for(vp, QWEN2_5_VL), shape, rate, options
    )


def test_qwen25_the_cap_matters(monkeypatch):
    """A larger --total-pixels lets qwen-vl-utils keep 1080p frames; a capping processor does not."""
    facts = VideoFacts(width=1920, height=1080, num_frames=9000, average_fps=30.0)
    options = SamplingOptions(total_pixels=400_000_000, max_pixels=2_000_000)
    plain = plan_video(facts, options, QWEN2_5_VL)
    vp = Qwen2VLVideoProcessor(**RELEASED_QWEN25_VIDEO, cap_pixels_per_frame=True)
    capped = plan_video(facts, options, family_for(vp, QWEN2_5_VL))
    assert plain.frames == capped.frames == 600
    assert (plain.frame_height, plain.frame_width) == (capped.frame_height, capped.frame_width)
    assert (plain.resized_height, plain.resized_width) == (plain.frame_height, plain.frame_width)
    size = (capped.frame_height, capped.frame_width)
    assert (capped.resized_height, capped.resized_width) == processor_size(
        monkeypatch, vp, 600, *size
    )
    assert capped.resized_height * capped.resized_width <= 90316800 * 2 // 600
    assert capped.visual_tokens < plain.visual_tokens


@pytest.mark.parametrize("config", ["released", "capped-4000-tokens"])
def test_qwen25_settings_come_from_the_checkpoint_folder(monkeypatch, tmp_path, config):
    """vlcli reads the folder's video_preprocessor_config.json as transformers loads it."""
    cfg = {"model_type": "qwen2_5_vl", "vision_config": {"tokens_per_second": 2}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    Qwen2VLVideoProcessor(**QWEN2_PROCESSORS[config]).save_pretrained(tmp_path)
    vp = AutoVideoProcessor.from_pretrained(tmp_path)
    family = resolve_model(str(tmp_path)).family
    assert family == family_for(vp, QWEN2_5_VL)
    facts = VideoFacts(width=1280, height=720, num_frames=1800, average_fps=30.0)
    for options in OPTIONS:
        _, _, size = reference_video(monkeypatch, facts, options)
        plan = plan_video(facts, options, family)
        final = processor_size(monkeypatch, vp, plan.frames, *size)
        assert (plan.resized_height, plan.resized_width) == final, options


@pytest.mark.parametrize(
    ("w", "h"), [(1920, 1080), (640, 480), (28, 28), (10, 10), (5000, 4000), (4, 700), (123, 457)]
)
@pytest.mark.parametrize(
    "limits", [(None, None), (256 * 28 * 28, 1280 * 28 * 28), (3136, 3136 * 4)]
)
def test_image_plan_matches_reference(w, h, limits):
    from PIL import Image

    ele = {"image": Image.new("RGB", (w, h))}
    if limits[0] is not None:
        ele["min_pixels"], ele["max_pixels"] = limits
    options = SamplingOptions(min_pixels=limits[0], max_pixels=limits[1])
    try:
        got = ref.fetch_image(ele, image_patch_size=14).size
    except ValueError:
        with pytest.raises(InputError):
            plan_image(w, h, options, QWEN2_5_VL)
        return
    plan = plan_image(w, h, options, QWEN2_5_VL)
    # qwen-vl-utils' size, then the processor's own smart_resize (the identity for these limits)
    assert (plan.resized_width, plan.resized_height) == got


@pytest.mark.parametrize(
    ("h", "w", "lo", "hi"),
    [
        (1080, 1920, 3136, 602112),
        (7, 9, 3136, 602112),
        (2000, 10, 100, 10**9),
        (500, 500, 3136 * 4, 3136 * 5),
        (31, 3000, 3136, 100352),
    ],
)
def test_resize_functions_match_their_sources(h, w, lo, hi):
    assert reference_resize(h, w, 28, lo, hi) == ref.smart_resize(h, w, 28, lo, hi)
    assert processor_resize(h, w, 28, lo, hi) == tf_smart_resize(h, w, 28, lo, hi)


def test_linspace_equals_torch_everywhere():
    rng = random.Random(3)
    for _ in range(3000):
        start = rng.randint(0, 5000)
        end = start + rng.randint(1, 200_000)
        n = min(end - start + 1, 2 * rng.randint(1, 384))
        theirs = torch.linspace(start, end, n).round().long().tolist()
        assert [round(x) for x in linspace_f32(start, end, n)] == theirs, (start, end, n)
