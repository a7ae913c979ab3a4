"""vlcli's model inputs equal the reference's: qwen-vl-utils, then the transformers processor.

The reference is what the Qwen2.5-VL README does: ``process_vision_info(messages,
return_video_kwargs=True)``, the text from ``processor.apply_chat_template``, then one
``processor(text=..., images=..., videos=..., ...)`` call over the whole decoded video. vlcli
builds the same inputs chunk by chunk from its plans (``TransformersBackend.prepare``).

Tolerance: the pixel tensors are compared with ``atol=PIXEL_ATOL`` (1e-6) and ``rtol=0`` in
float32. Both sides run the same float32 operations on the same uint8 frames (vlcli hands the
processor uint8 frames, the reference float copies of the same values; the processor casts to
float32 before its fused rescale-normalise), so they are expected to be bit-identical and
measure 0.0 here; the 1e-6 only leaves room for a vectorised kernel that rounds differently on
another CPU. Everything else (ids, masks, grids, ``second_per_grid_ts``) must be equal.

The fps pitfall, shown below: transformers 5.24 computes ``second_per_grid_ts`` from the video
metadata (``temporal_patch_size / sampled_fps``), and without metadata assumes 24 fps. The
README's ``fps=video_kwargs["fps"]`` (a list) is refused by 5.24's kwargs validation, and a
scalar ``fps`` is accepted but only used to sample frames, so ``second_per_grid_ts`` comes out
2/24 instead of 2/sampled fps; the reference is therefore called with the metadata
qwen-vl-utils returns (``return_video_metadata=True``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers_reference import reference_inputs

from vlcli.backends.transformers.backend import TransformersBackend
from vlcli.media.probe import probe
from vlcli.planning.plan import SamplingOptions, plan_image, plan_video

pytest_plugins = ("conftest_models",)

PIXEL_ATOL = 1e-6
QUESTION = "What happens, and at which second?"

# (qwen-vl-utils element keys, the same request as vlcli options)
CASES = {
    "default": ({}, SamplingOptions()),
    "nframes": ({"nframes": 8}, SamplingOptions(nframes=8)),
    "start_end": ({"video_start": 0.5, "video_end": 2.5}, SamplingOptions(start=0.5, end=2.5)),
    "max_pixels": (
        {"min_pixels": 3136, "max_pixels": 12000},
        SamplingOptions(min_pixels=3136, max_pixels=12000),
    ),
    # qwen-vl-utils makes 28x28 frames, the processor (min 3136 pixels) resizes them to 56x56
    "processor_resizes": (
        {"min_pixels": 784, "max_pixels": 2000},
        SamplingOptions(min_pixels=784, max_pixels=2000),
    ),
}


def _messages(clip: str, image: str | None, element: dict[str, Any]) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "video", "video": clip, **element}]
    if image is not None:  # the pixel options apply to every input, as on vlcli's command line
        content.append(
            {
                "type": "image",
                "image": image,
                **{k: v for k, v in element.items() if k.endswith("pixels")},
            }
        )
    content.append({"type": "text", "text": QUESTION})
    return [{"role": "user", "content": content}]


def vlcli_inputs(
    runner: TransformersBackend, clip: str, image: str | None, options: SamplingOptions
) -> dict[str, torch.Tensor]:
    media: list[Any] = [(clip, plan_video(probe(clip).video_facts(), options, runner.family))]
    if image is not None:
        info = probe(image)
        media.append((image, plan_image(info.width, info.height, options, runner.family)))
    inputs, _ = runner.inputs_for(media, QUESTION)
    return inputs


def assert_same(ours: dict[str, torch.Tensor], ref: Any, keys: list[str]) -> None:
    for key in keys:
        a, b = ours[key], ref[key]
        assert a.shape == b.shape, key
        if a.dtype.is_floating_point:
            torch.testing.assert_close(a, b.to(a.dtype), atol=PIXEL_ATOL, rtol=0, msg=key)
        else:
            assert torch.equal(a, b), key


EXACT = ["input_ids", "attention_mask", "mm_token_type_ids", "video_grid_thw", "image_grid_thw"]


@pytest.mark.parametrize("case", list(CASES))
def test_video_inputs_equal_the_reference(
    case: str, qwen25_runner: TransformersBackend, tiny_clip: str, tiny_image: str
) -> None:
    element, options = CASES[case]
    ref = reference_inputs(qwen25_runner.processor, _messages(tiny_clip, tiny_image, element))
    ours = vlcli_inputs(qwen25_runner, tiny_clip, tiny_image, options)
    keys = (
        EXACT
        + ["pixel_values_videos", "second_per_grid_ts"]
        + ["pixel_values"]
    )
    assert_same(ours, ref, [k for k in keys if k in ref or k in ours])
    assert set(ours) == set(ref)
    assert (
        float((ours["pixel_values_videos"] - ref["pixel_values_videos"]).abs().max()) == 0.0
    )  # measured


def test_a_capping_video_processor(tiny_qwen25_path: Path, tmp_path: Path, tiny_clip: str) -> None:
    """A checkpoint whose video_preprocessor_config.json turns on ``cap_pixels_per_frame`` (with a
    small ``max_video_tokens``, so that it binds): the processor shrinks qwen-vl-utils' frames
    once more, and vlcli's plan and inputs follow it."""
    from transformers import AutoVideoProcessor

    folder = tmp_path / "capped"
    shutil.copytree(tiny_qwen25_path, folder)
    vp = AutoVideoProcessor.from_pretrained(folder)
    vp.cap_pixels_per_frame, vp.max_video_tokens = True, 200
    vp.save_pretrained(folder)
    runner = TransformersBackend(str(folder), device="cpu", dtype="float32", warn=lambda _m: None)
    plan = plan_video(probe(tiny_clip).video_facts(), SamplingOptions(), runner.family)
    assert plan.resized_height * plan.resized_width < plan.frame_height * plan.frame_width
    ref = reference_inputs(runner.processor, _messages(tiny_clip, None, {}))
    ours = vlcli_inputs(runner, tiny_clip, None, SamplingOptions())
    assert ours["video_grid_thw"].tolist() == [list(plan.grid_thw)]
    assert_same(ours, ref, EXACT[:-1] + ["pixel_values_videos", "second_per_grid_ts"])


def test_second_per_grid_ts_and_the_fps_pitfall(qwen25_runner: TransformersBackend, tiny_clip: str) -> None:
    from qwen_vl_utils import process_vision_info

    processor = qwen25_runner.processor
    messages = _messages(tiny_clip, None, {"video_start": 0.5, "video_end": 2.5})
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    _, videos, video_kwargs = process_vision_info(messages, return_video_kwargs=True)
    sampled_fps = video_kwargs["fps"][0]
    ours = vlcli_inputs(qwen25_runner, tiny_clip, None, SamplingOptions(start=0.5, end=2.5))
    assert ours["second_per_grid_ts"].tolist() == pytest.approx(
        [2 / sampled_fps]
    )  # 2 / 1.905 = 1.05
    # The README's call: a list of fps is refused by transformers 5.24...
    with pytest.raises(Exception, match="fps"):
        processor(text=[text], videos=videos, padding=True, return_tensors="pt", **video_kwargs)
    # ...and one fps number is accepted but not used for the time: it assumes 24 fps.
    readme = processor(
        text=[text],
        videos=videos,
        padding=True,
        return_tensors="pt",
        do_sample_frames=False,
        fps=sampled_fps,
    )
    assert readme["second_per_grid_ts"].tolist() == pytest.approx([2 / 24])
    assert torch.equal(readme["input_ids"], ours["input_ids"])


def test_image_the_processor_resizes_again(
    qwen25_runner: TransformersBackend, tiny_clip: str, tiny_image: str
) -> None:
    element, options = CASES["processor_resizes"]
    ref = reference_inputs(qwen25_runner.processor, _messages(tiny_clip, tiny_image, element))
    ours = vlcli_inputs(qwen25_runner, tiny_clip, tiny_image, options)
    # qwen-vl-utils' size first, then the processor's own resize, as in the reference
    assert_same(ours, ref, ["image_grid_thw", "input_ids", "pixel_values"])


@pytest.fixture(scope="module")
def qwen3_runner(tiny_qwen3_path: Any) -> TransformersBackend:
    return TransformersBackend(str(tiny_qwen3_path), device="cpu", dtype="float32", warn=lambda _m: None)


@pytest.mark.parametrize("case", ["default", "start_end"])
def test_qwen3_video_inputs_equal_the_reference(
    case: str, qwen3_runner: TransformersBackend, tiny_clip: str
) -> None:
    """Qwen3-VL: the timestamps text ("<0.3 seconds>" before each temporal patch) and the pixels."""
    element, options = CASES[case]
    ref = reference_inputs(
        qwen3_runner.processor, _messages(tiny_clip, None, element), image_patch_size=16
    )
    ours = vlcli_inputs(qwen3_runner, tiny_clip, None, options)
    assert_same(
        ours,
        ref,
        [
            "input_ids",
            "attention_mask",
            "mm_token_type_ids",
            "video_grid_thw",
            "pixel_values_videos",
        ],
    )
    assert set(ours) == set(ref)


def test_qwen3_small_image(qwen3_runner: TransformersBackend, tiny_clip: str, tiny_image: str) -> None:
    ref = reference_inputs(
        qwen3_runner.processor, _messages(tiny_clip, tiny_image, {}), image_patch_size=16
    )
    ours = vlcli_inputs(qwen3_runner, tiny_clip, tiny_image, SamplingOptions())
    assert_same(ours, ref, ["input_ids", "image_grid_thw", "pixel_values"])


# ---------------------------------------------------------------- Qwen3.5 (hybrid, MoE)


@pytest.fixture(scope="module", params=["tiny_qwen35_path", "tiny_qwen35_moe_path"])
def qwen35_runner(request: pytest.FixtureRequest) -> TransformersBackend:
    folder = request.getfixturevalue(request.param)
    return TransformersBackend(str(folder), device="cpu", dtype="float32", warn=lambda _m: None)


@pytest.mark.parametrize("case", ["default", "nframes", "start_end"])
def test_qwen35_video_inputs_equal_the_reference(
    case: str, qwen35_runner: TransformersBackend, tiny_clip: str, tiny_image: str
) -> None:
    """Qwen3.5 (dense and MoE) takes Qwen3-VL's processor: the "<t seconds>" text before each
    temporal patch, the grids, the pixels and the token types (image 1, video 2) are the
    reference's, with the released chat template (which opens the answer with "<think>")."""
    element, options = CASES[case]
    ref = reference_inputs(
        qwen35_runner.processor, _messages(tiny_clip, tiny_image, element), image_patch_size=16
    )
    ours = vlcli_inputs(qwen35_runner, tiny_clip, tiny_image, options)
    assert_same(ours, ref, EXACT + ["pixel_values_videos", "pixel_values"])
    assert set(ours) == set(ref)
    types = ours["mm_token_type_ids"][0].tolist()
    assert types.count(2) == int(ours["video_grid_thw"].prod()) // 4 and types.count(1) > 0
    text = qwen35_runner.processor.tokenizer.decode(ours["input_ids"][0])
    assert text.count(" seconds>") == int(ours["video_grid_thw"][0][0])
    assert text.endswith("<|im_start|>assistant\n<think>\n")
