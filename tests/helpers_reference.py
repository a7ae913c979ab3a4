"""The reference pipeline vlcli is checked and measured against, in one place.

What the Qwen2.5-VL README does: the chat template's text, ``qwen_vl_utils.process_vision_info``
(qwen-vl-utils 0.0.14), then one transformers processor call over the whole decoded video. The
video metadata qwen-vl-utils returns is passed on, so that transformers 5.24 knows the sampled
fps (without it, it assumes 24 fps and ``second_per_grid_ts`` is wrong). Used by
test_equivalence.py (the oracle) and by both benchmarks (what they time).
"""

from __future__ import annotations

from typing import Any


def video_question(clip: str, question: str) -> list[dict[str, Any]]:
    """One user turn: the video, then the question."""
    content = [{"type": "video", "video": clip}, {"type": "text", "text": question}]
    return [{"role": "user", "content": content}]


def reference_inputs(
    processor: Any, messages: list[dict[str, Any]], image_patch_size: int = 14
) -> Any:
    """The model inputs the reference pipeline makes for ``messages``."""
    from qwen_vl_utils import process_vision_info

    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images, videos, video_kwargs = process_vision_info(
        messages,
        return_video_kwargs=True,
        return_video_metadata=True,
        image_patch_size=image_patch_size,
    )
    frames, metadata = zip(*videos, strict=True)
    return processor(
        text=[text],
        images=images,
        videos=list(frames),
        video_metadata=list(metadata),
        padding=True,
        return_tensors="pt",
        **video_kwargs,
    )
