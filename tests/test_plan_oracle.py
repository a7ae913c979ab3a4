"""The planning core against the reference, qwen-vl-utils 0.0.14, over a wide table of cases.

The reference's own torchcodec reader and ``fetch_video`` run for real; only the decoder and the
pixel resize are replaced by stand-ins that record what they were asked for (the frame indices
and the target size), so hundreds of shapes, frame rates and option sets run in a second.
Decoding itself is compared bit for bit in test_media.py.
"""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import pytest
import torch
import torchcodec.decoders
from qwen_vl_utils import vision_process as ref
from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize as tf_smart_resize

from vlcli.errors import InputError
from vlcli.families import QWEN2_5_VL, QWEN3_VL
from vlcli.plan import (
    SamplingOptions,
    VideoFacts,
    linspace_f32,
    plan_image,
    plan_video,
    processor_resize,
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
