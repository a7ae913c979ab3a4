"""The model's inputs for one prompt, built chunk by chunk from the plans.

The reference (qwen-vl-utils, then the transformers processor over the whole decoded video)
holds every sampled frame as float32 at once. Here each video is decoded ``CHUNK_FRAMES``
frames (one temporal patch) at a time (:func:`vlcli.media.frames.iter_video_chunks`), each chunk goes
through the processor's own video processor, and its rows are copied into one
``pixel_values_videos`` tensor allocated up front in the model's dtype on the model's device.
That is exact because the processor's
patch layout puts the temporal patch outermost: the rows of temporal patch ``g`` are
``g * grid_h * grid_w`` to ``(g + 1) * grid_h * grid_w``, and a chunk of an even number of
frames is a whole number of temporal patches. The grids and ``second_per_grid_ts`` come from the
plan (``temporal_patch_size / sampled fps``; transformers 5.24 computes it from the video
metadata's ``sampled_fps``, which is 24 fps when no metadata is passed, not from the ``fps``
argument the Qwen2.5-VL README passes).

The text is the processor's chat template with each ``<|video_pad|>`` / ``<|image_pad|>``
expanded here to ``grid.prod() // merge**2`` pad tokens, as the processor does; Qwen3-VL's
video placeholder is expanded to one ``<t seconds><|vision_start|>pads<|vision_end|>`` group per
temporal patch, with the timestamps the processor computes (source frame index / source fps,
averaged over the frames of the patch). ``mm_token_type_ids`` come from the processor's own
``create_mm_token_type_ids``.

This module imports torch but not transformers: the processor is passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from vlcli.backends import Prompt, check_planned_for, frame_counter
from vlcli.errors import ModelError
from vlcli.media import heap
from vlcli.media.frames import iter_video_chunks, load_image
from vlcli.models.families import Family
from vlcli.planning.plan import ImagePlan, Media, VideoPlan
from vlcli.planning.prompt import Turns, build_messages, expand_text

CHUNK_FRAMES = 2  # frames decoded and preprocessed at a time: one temporal patch. On a 60 s 1080p
# clip, 2 rather than 8 lowers the peak by about 180 MB (measured) at the same speed


@dataclass(frozen=True)
class PrepareStats:
    prompt_tokens: int
    visual_tokens: int
    decode_s: float  # decoding media files (and the reference resize of the frames)
    preprocess_s: float  # the processor (resize, normalise, patches), the template, tokenizing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resize_frames(frames: torch.Tensor, height: int, width: int, resample: Any) -> torch.Tensor:
    """The processor's resize (torchvision, antialiased) of float frames to the plan's size."""
    # torchvision comes with transformers when the model loads (loading.py says why not earlier).
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2.functional import resize

    modes = {2: InterpolationMode.BILINEAR, 3: InterpolationMode.BICUBIC}
    mode = resample if isinstance(resample, InterpolationMode) else modes.get(int(resample))
    if mode is None:
        raise ModelError(f"the video processor's resample mode {resample!r} is not supported")
    # qwen-vl-utils hands the processor float frames: resize them as float, unclamped.
    return resize(frames.float(), [height, width], interpolation=mode, antialias=True)


def video_pixels(
    processor: Any,
    path: str,
    plan: VideoPlan,
    family: Family,
    out: torch.Tensor,
    on_chunk: Callable[[int], None] | None = None,
) -> float:
    """Write the ``pixel_values_videos`` rows of one video into ``out``; return decoding seconds.

    ``out`` has exactly ``grid_t * grid_h * grid_w`` rows (a view into the prompt's one tensor).
    ``on_chunk`` is told the number of frames of each chunk once it is in.
    """
    vp = processor.video_processor
    _, h, w = plan.grid_thw
    tp = family.temporal_patch_size
    resize = (plan.frame_height, plan.frame_width) != (plan.resized_height, plan.resized_width)
    row = 0
    decode_s = 0.0
    # Whole temporal patches per chunk, so that no chunk's last patch gets padded.
    chunk_frames = -(-CHUNK_FRAMES // tp) * tp
    chunks = iter_video_chunks(path, plan, chunk_frames=chunk_frames)
    direct: bool | None = None  # normalise and patch straight into ``out`` (normalise_into)
    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        decode_s += time.perf_counter() - started
        if chunk is None:
            break
        frames = (
            _resize_frames(chunk, plan.resized_height, plan.resized_width, vp.resample)
            if resize
            else chunk
        )
        n = frames.shape[0] // tp * h * w
        if direct and frames.shape[0] % tp == 0 and row + n <= out.shape[0]:
            normalise_into(vp, frames, (h, w), tp, out[row : row + n])
            row += n
        else:
            rows = _processor_rows(vp, frames, (h, w), tp, out.shape[1])
            if row + rows.shape[0] > out.shape[0]:
                raise ModelError(f"{path}: the decoder returned more frames than the plan has")
            out[row : row + rows.shape[0]].copy_(rows)
            row += rows.shape[0]
            if direct is None:  # the first chunk: may the rest skip the processor's copies?
                direct = _direct_matches(vp, frames, (h, w), tp, rows)
                del rows
                heap.give_back()  # the processor's and the check's temporaries
        if on_chunk is not None:
            on_chunk(int(chunk.shape[0]))
    if row != out.shape[0]:
        raise ModelError(f"{path}: the decoder returned fewer frames than the plan has")
    return decode_s


def _processor_rows(
    vp: Any, frames: torch.Tensor, grid_hw: tuple[int, int], tp: int, patch_dim: int
) -> torch.Tensor:
    """The video processor's ``pixel_values_videos`` rows of one chunk of frames, its grid
    held to the plan's."""
    feat = vp(
        videos=[frames],
        do_resize=False,
        do_sample_frames=False,
        cap_pixels_per_frame=False,
        return_tensors="pt",
    )
    rows = feat["pixel_values_videos"]
    gt, gh, gw = (int(x) for x in feat["video_grid_thw"][0])
    if (gh, gw) != grid_hw or gt != -(-frames.shape[0] // tp) or rows.shape[1] != patch_dim:
        raise ModelError(
            f"the model's video processor makes a {gh}x{gw} patch grid of this video, "
            f"the plan a {grid_hw[0]}x{grid_hw[1]} one: the plan was made for another model"
        )
    return rows


def normalise_into(
    vp: Any, frames: torch.Tensor, grid_hw: tuple[int, int], tp: int, out: torch.Tensor
) -> None:
    """The processor's rows of ``frames`` (a whole number of temporal patches) written into
    ``out`` with its own rescale-and-normalise and no copy of the result.

    The processor normalises a float copy of the chunk, then copies it twice more (patching,
    then joining the videos of its batch) before vlcli copies the rows into the prompt's tensor:
    about 40 MB of temporaries per two 1080p frames, which glibc keeps at the peak. Here the
    normalised copy is written through the patch layout's view straight into ``out``; the
    arithmetic is the processor's own call, the layout a view. :func:`_direct_matches` holds
    the result to the processor's on the first chunk of every video before this is used."""
    normalised = vp.rescale_and_normalize(
        frames[None], vp.do_rescale, vp.rescale_factor, vp.do_normalize,
        _hashable(vp.image_mean), _hashable(vp.image_std),
    )  # fmt: skip
    t, c, height, width = frames.shape
    ms, ps = vp.merge_size, vp.patch_size
    gh, gw = grid_hw
    if (height, width) != (gh * ps, gw * ps):
        raise ModelError(f"frames of {height}x{width} for a {gh}x{gw} patch grid")
    patches = normalised.view(t // tp, tp, c, gh // ms, ms, ps, gw // ms, ms, ps)
    target = out.view(t // tp, gh // ms, gw // ms, ms, ms, c, tp, ps, ps)
    target.copy_(patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8))


def _hashable(value: Any) -> Any:
    """Means and deviations as the processor passes them on (its fusing step is cached)."""
    return tuple(value) if isinstance(value, list) else value


def _direct_matches(
    vp: Any, frames: torch.Tensor, grid_hw: tuple[int, int], tp: int, rows: torch.Tensor
) -> bool:
    """Whether :func:`normalise_into` gives the processor's ``rows`` for these frames, bit for
    bit; any failure of the direct path (another transformers) counts as no."""
    if frames.shape[0] % tp:
        return False
    try:
        mine = torch.empty_like(rows, memory_format=torch.contiguous_format)
        normalise_into(vp, frames, grid_hw, tp, mine)
        # bytes, not values: -0.0 and 0.0 would compare equal
        return bool(torch.equal(mine.view(torch.uint8), rows.contiguous().view(torch.uint8)))
    except (AttributeError, TypeError, ValueError, RuntimeError, ModelError):
        return False


def image_pixels(
    processor: Any, path: str, plan: ImagePlan, dtype: torch.dtype, device: torch.device | str
) -> tuple[torch.Tensor, float]:
    """``pixel_values`` rows of one image, and the seconds spent decoding it."""
    started = time.perf_counter()
    image = load_image(path, plan)
    decode_s = time.perf_counter() - started
    if (plan.frame_height, plan.frame_width) == (plan.resized_height, plan.resized_width):
        feat = processor.image_processor(images=[image], do_resize=False, return_tensors="pt")
    else:  # the processor's own second resize, as in the reference; the grid check below holds it to the plan
        feat = processor.image_processor(images=[image], return_tensors="pt")
    if tuple(int(x) for x in feat["image_grid_thw"][0]) != tuple(plan.grid_thw):
        raise ModelError(
            "the model's image processor makes another patch grid than the plan: "
            "the plan was made for another model"
        )
    return feat["pixel_values"].to(device=device, dtype=dtype), decode_s


def _text_inputs(
    processor: Any,
    family: Family,
    media: Media,
    question: str,
    system: str | None,
    device: torch.device | str,
    *,
    think: bool | None = None,
    history: Turns = (),
) -> dict[str, torch.Tensor]:
    """The prompt's token ids, mask and token types, as the reference's processor makes them
    (``think``: the template's ``enable_thinking``, not passed when None)."""
    switch = {} if think is None else {"enable_thinking": think}
    template = processor.apply_chat_template(
        build_messages(media, question, system, history),
        tokenize=False,
        add_generation_prompt=True,
        **switch,
    )
    text = expand_text(template, media, family)
    encoded = processor.tokenizer([text], return_tensors="pt", return_token_type_ids=False)
    input_ids = encoded["input_ids"]
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": encoded["attention_mask"].to(device),
        "mm_token_type_ids": torch.tensor(
            processor.create_mm_token_type_ids(input_ids), dtype=torch.long
        ).to(device),
    }


def build_inputs(
    processor: Any,
    family: Family,
    media: Media,
    question: str,
    *,
    system: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    on_frames: Callable[[int, int], None] | None = None,
    think: bool | None = None,
    history: Turns = (),
) -> tuple[dict[str, torch.Tensor], PrepareStats]:
    """Everything ``generate`` needs for one prompt (a batch of one), and what it cost.

    ``on_frames(done, total)`` follows the decoding: video frames ready so far, of all videos.
    """
    started = time.perf_counter()
    check_planned_for(media, family)
    # The text first, its temporaries given back before the frames: after the frames they
    # would add to the peak (measured on a 43k-token prompt: 23 MB).
    inputs = _text_inputs(
        processor, family, media, question, system, device, think=think, history=history
    )
    heap.give_back()
    pixels, decode_s = _pixel_inputs(processor, family, media, dtype, device, on_frames)
    inputs.update(pixels)
    stats = PrepareStats(
        prompt_tokens=int(inputs["input_ids"].shape[1]),
        visual_tokens=sum(p.visual_tokens for _, p in media),
        decode_s=decode_s,
        preprocess_s=time.perf_counter() - started - decode_s,
    )
    return inputs, stats


def with_question(
    processor: Any,
    family: Family,
    inputs: dict[str, torch.Tensor],
    prompt: Prompt,
    device: torch.device | str,
) -> tuple[dict[str, torch.Tensor], PrepareStats]:
    """The inputs of ``prompt``, another question over ``inputs``' media: the text made again,
    the pixel rows and grids shared (not copied, not decoded again)."""
    started = time.perf_counter()
    media, system, history = list(prompt.media), prompt.system, prompt.history
    text = _text_inputs(
        processor, family, media, prompt.text, system, device, think=prompt.think, history=history
    )
    stats = PrepareStats(
        prompt_tokens=int(text["input_ids"].shape[1]),
        visual_tokens=sum(p.visual_tokens for _, p in media),
        decode_s=0.0,
        preprocess_s=time.perf_counter() - started,
    )
    return {**inputs, **text}, stats


def _pixel_inputs(
    processor: Any,
    family: Family,
    media: Media,
    dtype: torch.dtype,
    device: torch.device | str,
    on_frames: Callable[[int, int], None] | None,
) -> tuple[dict[str, torch.Tensor], float]:
    """The pixel rows of the prompt's images and videos with their grids, and the seconds
    spent decoding.

    The rows of every video go into one tensor allocated up front, in the model's dtype on its
    device, so that no video is ever held twice (as float32 frames and as model rows).
    """
    videos = [p for _, p in media if isinstance(p, VideoPlan)]
    patch_dim = 3 * family.temporal_patch_size * family.patch_size**2
    video_rows = (
        torch.empty((sum(_rows(p) for p in videos), patch_dim), dtype=dtype, device=device)
        if videos
        else None
    )
    images: list[torch.Tensor] = []
    chunk_done = frame_counter(sum(p.frames for p in videos), on_frames)
    decode_s = 0.0
    offset = 0
    for path, plan in media:
        if isinstance(plan, VideoPlan):
            assert video_rows is not None
            out = video_rows[offset : offset + _rows(plan)]
            decode_s += video_pixels(processor, path, plan, family, out, on_chunk=chunk_done)
            offset += _rows(plan)
        else:
            pixels, spent = image_pixels(processor, path, plan, dtype, device)
            images.append(pixels)
            decode_s += spent
    return _with_grids(family, media, images, video_rows, device), decode_s


def _rows(plan: VideoPlan) -> int:
    """A video's rows of ``pixel_values_videos``: one per patch of its grid."""
    return plan.grid_thw[0] * plan.grid_thw[1] * plan.grid_thw[2]


def _with_grids(
    family: Family,
    media: Media,
    images: list[torch.Tensor],
    video_rows: torch.Tensor | None,
    device: torch.device | str,
) -> dict[str, torch.Tensor]:
    """The pixel inputs under the names the model takes, each with the grids it was made on
    (and, for Qwen2.5-VL, each video's seconds per temporal patch)."""
    pixels: dict[str, torch.Tensor] = {}
    if images:
        pixels["pixel_values"] = images[0] if len(images) == 1 else torch.cat(images)
        pixels["image_grid_thw"] = torch.tensor(
            [p.grid_thw for _, p in media if isinstance(p, ImagePlan)], dtype=torch.long
        ).to(device)
    if video_rows is not None:
        videos = [p for _, p in media if isinstance(p, VideoPlan)]
        pixels["pixel_values_videos"] = video_rows
        pixels["video_grid_thw"] = torch.tensor([p.grid_thw for p in videos], dtype=torch.long).to(
            device
        )
        if family.time_encoding.positions_are_seconds:  # the model takes second_per_grid_ts
            pixels["second_per_grid_ts"] = torch.tensor(
                [p.second_per_grid_t for p in videos], dtype=torch.float32
            ).to(device)
    return pixels
