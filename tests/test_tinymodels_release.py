"""The tiny test models speak like the released checkpoints.

The equivalence tests compare vlcli with the reference on the tiny models' chat templates and
processor settings, so a tiny model that drifted from the released files would let a real
difference go unseen. The expected values here are what the released checkpoints' published
files give (Qwen/Qwen2-VL-7B-Instruct, Qwen/Qwen2.5-VL-7B-Instruct and Qwen/Qwen3-VL-8B-Instruct
on the Hugging Face hub: ``chat_template.json``, ``preprocessor_config.json``,
``video_preprocessor_config.json``), read for this test: the rendering of a prompt with a
system message, a video, an image and a question, and the processor settings vlcli depends on.
They are written out as results, not copied templates, so that a change on either side fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlcli.planning.prompt import build_messages

pytest_plugins = ("conftest_models",)

SYSTEM = "Be brief."
QUESTION = "When does the ball move?"
MEDIA_MARKUP = (
    "<|vision_start|><|video_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>"
)

# The released templates' output for [system?] + user(video, image, text) + generation prompt.
RELEASED = {
    ("qwen2", True): f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{MEDIA_MARKUP}"
    f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n",
    ("qwen2", False): "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    f"<|im_start|>user\n{MEDIA_MARKUP}{QUESTION}<|im_end|>\n<|im_start|>assistant\n",
    ("qwen3", True): f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{MEDIA_MARKUP}"
    f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n",
    (
        "qwen3",
        False,
    ): f"<|im_start|>user\n{MEDIA_MARKUP}{QUESTION}<|im_end|>\n<|im_start|>assistant\n",
    # Qwen3.5's released template (tests/data/qwen3_5/): no default system prompt, and the
    # answer opens with "<think>" (it thinks unless told enable_thinking=False).
    ("qwen3_5", True): f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{MEDIA_MARKUP}"
    f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n<think>\n",
    ("qwen3_5", False): f"<|im_start|>user\n{MEDIA_MARKUP}{QUESTION}<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n",
}

# Released processor settings (preprocessor_config.json; video_preprocessor_config.json for
# Qwen3-VL), the ones that decide sizes, grids and pixel values.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
RELEASED_IMAGE = {
    "qwen2": dict(patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=3136,
                  max_pixels=12845056, image_mean=CLIP_MEAN, image_std=CLIP_STD),
    "qwen3": dict(patch_size=16, merge_size=2, temporal_patch_size=2,
                  size={"shortest_edge": 65536, "longest_edge": 16777216},
                  image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]),
}  # fmt: skip
RELEASED_QWEN3_VIDEO = dict(
    patch_size=16,
    merge_size=2,
    temporal_patch_size=2,
    size={"shortest_edge": 4096, "longest_edge": 25165824},
    image_mean=[0.5, 0.5, 0.5],
    image_std=[0.5, 0.5, 0.5],
)

MODELS = [("tiny_qwen2_path", "qwen2"), ("tiny_qwen25_path", "qwen2"), ("tiny_qwen3_path", "qwen3")]
QWEN3_5_MODELS = [("tiny_qwen35_path", "qwen3_5"), ("tiny_qwen35_moe_path", "qwen3_5")]


@pytest.mark.parametrize(("fixture", "kind"), MODELS + QWEN3_5_MODELS)
@pytest.mark.parametrize("with_system", [True, False])
def test_the_chat_template_renders_as_the_released_one(
    fixture: str, kind: str, with_system: bool, request: pytest.FixtureRequest
) -> None:
    from transformers import AutoProcessor

    folder = request.getfixturevalue(fixture)
    processor = AutoProcessor.from_pretrained(str(folder))
    media = [
        ("v.mp4", type("P", (), {"kind": "video"})()),
        ("i.png", type("P", (), {"kind": "image"})()),
    ]
    messages = build_messages(media, QUESTION, SYSTEM if with_system else None)  # type: ignore[arg-type]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == RELEASED[(kind, with_system)]


@pytest.mark.parametrize(("fixture", "kind"), MODELS)
def test_the_processor_settings_are_the_released_ones(
    fixture: str, kind: str, request: pytest.FixtureRequest
) -> None:
    folder = Path(request.getfixturevalue(fixture))
    image = json.loads((folder / "preprocessor_config.json").read_text())
    for key, value in RELEASED_IMAGE[kind].items():
        assert image[key] == value, key
    assert image.get("resample", 3) == 3  # bicubic
    if kind == "qwen3":
        video = json.loads((folder / "video_preprocessor_config.json").read_text())
        for key, value in RELEASED_QWEN3_VIDEO.items():
            assert video[key] == value, key
