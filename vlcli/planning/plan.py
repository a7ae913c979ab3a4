"""The sampling plan: which frames, at what size, how many tokens, which second each stands for.

This module is pure arithmetic: it imports no torch, decodes nothing, and is what ``vlcli
budget`` shows and what ``vlcli ask`` feeds the model. It reproduces the reference
preprocessing (qwen-vl-utils 0.0.14, followed by the transformers processor's own resize) step
for step, so that a plan made here and the tensors the reference makes agree exactly:

1. ``frame_range``: the clip ``[start, end]`` in seconds becomes a frame range, as
   ``calculate_video_frame_range`` does (start rounds up, end rounds down, to whole frames).
2. ``sample_count``: how many frames, as ``smart_nframes`` does (``fps`` or ``nframes``,
   clamped to ``[min_frames, max_frames]`` and the frames in range, a multiple of 2).
3. ``frame_indices``: uniformly spaced indices, ``round(linspace(first, last, n))``, computed with
   the same float32 arithmetic torch uses, so every index equals torch's.
4. ``video_pixel_limits`` and ``reference_resize``: the per-frame pixel range, capped by
   ``total_pixels / frames * 2``, then ``smart_resize`` (sides multiples of the factor).
5. ``processor_video_resize``: the transformers processor resizes once more, with its own limits
   and its own rounding; the model sees its result. Qwen2-VL/Qwen2.5-VL bound each frame
   (``processor_resize``), usually changing nothing; Qwen3-VL bounds the whole clip, frames x
   height x width (``qwen3_video_resize``): with the released settings, clips of more than 32
   frames at qwen-vl-utils' largest size (768 tokens a frame) are made smaller.
6. ``temporal_positions``: the position the language model gives each temporal patch. For
   Qwen2.5-VL it is ``floor(g * second_per_grid_t * tokens_per_second)``, so a position counts
   seconds (times ``tokens_per_second``) from the first frame of the clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from vlcli.errors import InputError, UsageError
from vlcli.models.families import Family
from vlcli.times.axis import TimeAxis, reference_positions, to_float32, vllm_positions

# qwen-vl-utils 0.0.14 constants.
DEFAULT_FPS = 2.0
FRAME_FACTOR = 2
MIN_FRAMES = 4
MAX_FRAMES = 768
MAX_RATIO = 200
VIDEO_MIN_TOKENS = 128
VIDEO_MAX_TOKENS = 768
IMAGE_MIN_TOKENS = 4
IMAGE_MAX_TOKENS = 16384
MODEL_SEQ_LEN = 128000  # qwen-vl-utils reads MODEL_SEQ_LEN from the environment; vlcli fixes it.


@dataclass(frozen=True)
class SamplingOptions:
    """The user's sampling request; ``None`` means the reference default."""

    fps: float | None = None
    nframes: int | None = None
    min_frames: int | None = None
    max_frames: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    total_pixels: int | None = None
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        if self.fps is not None and self.nframes is not None:
            raise UsageError("--fps and --nframes exclude each other: give one")
        for name in (
            "fps",
            "nframes",
            "min_frames",
            "max_frames",
            "min_pixels",
            "max_pixels",
            "total_pixels",
        ):
            value = getattr(self, name)
            if value is not None and not (0 < value < math.inf):  # also catches nan
                raise UsageError(
                    f"--{name.replace('_', '-')} must be a positive finite number, got {value}"
                )
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not (0 <= value < math.inf):
                raise UsageError(f"--{name} must be zero or more seconds, got {value}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError(f"--end ({self.end}) must be after --start ({self.start})")
        if self.min_pixels and self.max_pixels and self.max_pixels < self.min_pixels:
            raise UsageError(
                f"--max-pixels {self.max_pixels} is below --min-pixels {self.min_pixels}: "
                "raise one or lower the other"
            )
        if self.nframes is not None and round_by_factor(self.nframes, FRAME_FACTOR) < FRAME_FACTOR:
            raise UsageError(
                f"--nframes {self.nframes} rounds to 0 (frames are taken in pairs): use 2 or more"
            )
        if (
            self.max_frames is not None
            and floor_by_factor(self.max_frames, FRAME_FACTOR) < FRAME_FACTOR
        ):
            raise UsageError(
                f"--max-frames {self.max_frames} rounds to 0 (frames are taken in pairs): "
                "use 2 or more"
            )
        if self.min_frames and self.max_frames and self.max_frames < self.min_frames:
            raise UsageError(
                f"--max-frames {self.max_frames} is below --min-frames {self.min_frames}: "
                "raise one or lower the other"
            )


def check_options(options: SamplingOptions, family: Family) -> None:
    """Refuse, before any input is read, what no input could be planned with for ``family``."""
    one_token = family.factor * family.factor
    if options.max_pixels is not None and options.max_pixels < one_token:
        raise UsageError(
            f"--max-pixels {options.max_pixels} is less than one visual token of this model "
            f"({family.factor}x{family.factor} = {one_token} pixels)"
        )


@dataclass(frozen=True)
class VideoFacts:
    """What the plan needs to know of a video stream (see ``vlcli.media.probe.probe``).

    ``frame_times_s`` are the presentation times of every frame in display order, measured from
    the first frame, when the stream was scanned; ``num_frames`` and ``average_fps`` are the values
    the reference decoder (torchcodec, exact seek mode) reports: frames counted by the scan, and
    that count divided by the scanned duration.
    """

    width: int
    height: int
    num_frames: int
    average_fps: float
    frame_times_s: tuple[float, ...] | None = None


# ---------------------------------------------------------------- rounding helpers


def round_by_factor(number: float, factor: int) -> int:
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def linspace_f32(start: float, end: float, steps: int) -> list[float]:
    """``torch.linspace(start, end, steps)`` in float32, value for value.

    torch computes the first half forward from ``start`` and the second half backward from
    ``end``, each as one fused multiply-add rounded to float32; this does the same.
    """
    if steps <= 0:
        return []
    if steps == 1:
        return [to_float32(start)]
    s, e = to_float32(start), to_float32(end)
    step = to_float32(to_float32(e - s) / (steps - 1))
    half = steps // 2
    return [
        to_float32(s + step * i) if i < half else to_float32(e - step * (steps - i - 1))
        for i in range(steps)
    ]


# ---------------------------------------------------------------- resizing


def check_aspect(height: int, width: int) -> None:
    if min(height, width) <= 0:
        raise InputError(f"has no pixels ({width}x{height})")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_RATIO:
        raise InputError(f"aspect ratio {ratio:.0f}:1 is over the model's limit of {MAX_RATIO}:1")


def reference_resize(
    height: int, width: int, factor: int, min_pixels: float, max_pixels: float
) -> tuple[int, int]:
    """qwen-vl-utils' ``smart_resize``. Guarantees:

    1. both sides are multiples of ``factor`` (and at least ``factor``);
    2. the pixel count lies in ``[min_pixels, max_pixels]`` where the rounding allows;
    3. the aspect ratio is kept as closely as 1 and 2 allow.
    """
    check_aspect(height, width)
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = floor_by_factor(height / beta, factor)
        w_bar = floor_by_factor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    if h_bar == 0 or w_bar == 0:  # the reference would fail here too (a zero-sized resize)
        raise InputError(
            f"a {width}x{height} picture cannot fit in {max_pixels:.0f} pixels with sides that are "
            f"multiples of {factor}: raise --max-pixels"
        )
    return h_bar, w_bar


def processor_resize(
    height: int, width: int, factor: int, min_pixels: float, max_pixels: float
) -> tuple[int, int]:
    """The transformers processor's ``smart_resize`` (it keeps the ``factor`` floor elsewhere)."""
    check_aspect(height, width)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def qwen3_video_resize(
    frames: int,
    height: int,
    width: int,
    factor: int,
    temporal_factor: int,
    min_pixels: int,
    max_pixels: int,
    *,
    cap_pixels_per_frame: bool = False,
    max_video_tokens: int = 768,
) -> tuple[int, int]:
    """The Qwen3-VL video processor's resize of ``frames`` frames of ``height`` x ``width``.

    transformers 5.24's ``Qwen3VLVideoProcessor.resize`` and the ``smart_resize`` of its module, with
    ``min_pixels``/``max_pixels`` its ``size["shortest_edge"]``/``size["longest_edge"]``. Unlike
    the Qwen2-VL processor's, these limits count the pixels of the whole clip::

        budget = max_pixels, or with cap_pixels_per_frame:
                 frames * max(min(max_video_tokens * factor**2, max_pixels // frames),
                              int(min_pixels * 1.05))
        (sides below factor are first scaled up so the smaller one is factor, truncated)
        h, w = round(height / factor) * factor, round(width / factor) * factor
        t = round(frames / temporal_factor) * temporal_factor
        if t*h*w > budget:       beta = sqrt(frames*height*width / budget)
                                 h, w = max(factor, floor(height / beta / factor) * factor), ...
        elif t*h*w < min_pixels: beta = sqrt(min_pixels / (frames*height*width))
                                 h, w = ceil(height * beta / factor) * factor, ...

    Guarantees: (1) the size transformers computes for the same arguments, by the same operations
    in the same order (so the same float rounding); (2) both sides are multiples of ``factor`` and
    at least ``factor``; (3) when it shrinks, ``frames * h * w`` is at most the budget, unless a
    side had to be raised to ``factor``; (4) :class:`InputError` where transformers raises
    (fewer than ``temporal_factor`` frames, aspect ratio over 200:1).
    """
    if frames < temporal_factor:
        raise InputError(f"{frames} frames are fewer than the model's {temporal_factor} per patch")
    budget = max_pixels
    if cap_pixels_per_frame:
        per_frame = min(max_video_tokens * factor * factor, max_pixels // frames)
        budget = max(per_frame, int(min_pixels * 1.05)) * frames
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    check_aspect(height, width)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > budget:
        beta = math.sqrt((frames * height * width) / budget)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def processor_video_resize(family: Family, frames: int, height: int, width: int) -> tuple[int, int]:
    """The size the family's transformers video processor gives ``frames`` frames of this size.

    Qwen2/2.5-VL (transformers 5.24's ``Qwen2VLVideoProcessor.resize``): ``smart_resize`` within
    ``min_pixels``/``max_pixels`` per frame; with ``cap_pixels_per_frame`` the per-frame maximum
    is first lowered to an even share of the clip budget, as qwen-vl-utils does::

        max_pixels = max(min(max_pixels, int(max_video_tokens * factor**2 * 0.9)
                                         * temporal_patch_size // frames),
                         int(min_pixels * 1.05))
    """
    lo, hi = family.processor_video_min_pixels, family.processor_video_max_pixels
    if family.processor_bounds_clip:
        return qwen3_video_resize(
            frames,
            height,
            width,
            family.factor,
            family.temporal_patch_size,
            lo,
            hi,
            cap_pixels_per_frame=family.processor_video_cap_pixels_per_frame,
            max_video_tokens=family.processor_video_max_tokens,
        )
    if family.processor_video_cap_pixels_per_frame:
        total = int(family.processor_video_max_tokens * family.factor * family.factor * 0.9)
        hi = max(min(hi, total * family.temporal_patch_size // frames), int(lo * 1.05))
    return processor_resize(height, width, family.factor, lo, hi)


def video_pixel_limits(options: SamplingOptions, frames: int, factor: int) -> tuple[int, float]:
    """Per-frame ``(min_pixels, max_pixels)`` for a video of ``frames`` sampled frames.

    A bound the user gave wins over a default one: ``--max-pixels`` below the default least
    (128 tokens a frame) lowers the least to it. The reference stops on an assertion there.
    """
    min_pixels = (
        options.min_pixels
        if options.min_pixels is not None
        else min(
            VIDEO_MIN_TOKENS * factor * factor,
            options.max_pixels or VIDEO_MIN_TOKENS * factor * factor,
        )
    )
    total = (
        options.total_pixels
        if options.total_pixels is not None
        else MODEL_SEQ_LEN * factor * factor * 0.9
    )
    cap = max(
        min(VIDEO_MAX_TOKENS * factor * factor, total / frames * FRAME_FACTOR),
        int(min_pixels * 1.05),
    )
    max_pixels = min(options.max_pixels, cap) if options.max_pixels is not None else cap
    return min_pixels, max_pixels


# ---------------------------------------------------------------- frames


def frame_range(options: SamplingOptions, total_frames: int, fps: float) -> tuple[int, int]:
    """First and last frame index of the clip ``[start, end]`` (inclusive)."""
    if fps <= 0 or total_frames <= 0:
        raise InputError("has no video frames")
    if options.start is None and options.end is None:
        return 0, total_frames - 1
    duration = total_frames / fps
    if options.start is not None and options.start >= duration:
        raise InputError(
            f"clip range outside the video: --start {options.start:g}s, the video is {duration:.3f}s long"
        )
    first = (
        math.ceil(max(0.0, min(options.start, duration)) * fps) if options.start is not None else 0
    )
    if options.end is not None:
        last = min(math.floor(max(0.0, min(options.end, duration)) * fps), total_frames - 1)
    else:
        last = total_frames - 1
    if first >= last:
        raise InputError(
            f"the clip {options.start or 0:g}s to {options.end if options.end is not None else duration:g}s "
            f"holds fewer than two frames of this {fps:g} fps video"
        )
    return first, last


def sample_count(options: SamplingOptions, frames_in_range: int, fps: float) -> int:
    """Number of frames to sample (qwen-vl-utils' ``smart_nframes``)."""
    if frames_in_range < FRAME_FACTOR:  # a one-frame video: whatever was asked, it cannot be met
        raise InputError(
            f"too few frames: the clip has {frames_in_range} frame and the model needs at least "
            f"{FRAME_FACTOR} (a still picture works as an image file)"
        )
    if options.nframes is not None:
        n = round_by_factor(options.nframes, FRAME_FACTOR)
    else:
        target_fps = options.fps if options.fps is not None else DEFAULT_FPS
        min_frames = ceil_by_factor(
            options.min_frames if options.min_frames is not None else MIN_FRAMES, FRAME_FACTOR
        )
        max_default = min(MAX_FRAMES, frames_in_range)
        max_frames = floor_by_factor(
            options.max_frames if options.max_frames is not None else max_default, FRAME_FACTOR
        )
        wanted = frames_in_range / fps * target_fps
        n = floor_by_factor(
            min(min(max(wanted, min_frames), max_frames), frames_in_range), FRAME_FACTOR
        )
    if not FRAME_FACTOR <= n <= frames_in_range:
        raise InputError(
            f"too few frames for the request: {n} sampled frames asked, the clip has {frames_in_range} "
            f"(at least {FRAME_FACTOR} are needed)"
        )
    return n


def temporal_positions(family: Family, groups: int, second_per_grid_t: float) -> list[int]:
    """The language model's temporal position of each temporal patch, from the clip's start.

    Qwen2.5-VL: ``floor(g * second_per_grid_t * tokens_per_second)`` in float32 as the reference
    computes it (:func:`vlcli.times.axis.reference_positions`). Qwen2-VL: ``g``. Qwen3-VL tells the
    time as text, every group at position 0 of its own block, so ``g`` is reported for order only.
    """
    if family.time_encoding.positions_are_seconds:
        tps = family.tokens_per_second if family.tokens_per_second is not None else 2
        return reference_positions(groups, second_per_grid_t, tps)
    return list(range(groups))


# ---------------------------------------------------------------- plans


@dataclass(frozen=True)
class VideoPlan:
    """Exactly what ``vlcli ask`` will feed the model for one video, decided before decoding."""

    family: Family  # shown by its name in the JSON output
    source_width: int
    source_height: int
    source_frames: int
    source_fps: float
    duration_s: float
    start_frame: int
    end_frame: int
    clip_start_s: float
    clip_end_s: float
    frames: int
    frame_indices: tuple[int, ...]
    frame_times_s: tuple[float, ...]
    sample_fps: float
    second_per_grid_t: float
    tokens_per_second: float | None
    min_pixels: int
    max_pixels: float
    frame_height: int  # qwen-vl-utils resizes each decoded frame to this size...
    frame_width: int
    resized_height: int  # ...and the processor to this one (usually the same): the model's input
    resized_width: int
    grid_thw: tuple[int, int, int]
    visual_tokens: int
    temporal_positions: tuple[int, ...]
    patch_times_s: tuple[float, ...]
    notes: tuple[str, ...] = ()  # things the user should know (e.g. --end clamped to the video)
    kind: str = field(default="video")
    requested_end_s: float | None = None  # --end, when given: the clip ends there at the latest

    @property
    def shown_end_s(self) -> float:
        """Where the clip the model was shown ends: its last frame's end (the frame is shown for
        one frame time), but no later than ``--end`` (a frame starting at 15.0 s with ``--end 15``
        does not take the clip to 15.04 s)."""
        end = self.clip_end_s + 1.0 / self.source_fps
        return (
            end
            if self.requested_end_s is None
            else max(min(end, self.requested_end_s), self.clip_end_s)
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["family"] = self.family.name
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    def time_axis(self, engine: str = "reference") -> TimeAxis:
        """This plan's time axis as ``engine`` places it (``reference`` or ``vllm``).

        Qwen2.5-VL's positions depend on the engine's arithmetic (:mod:`vlcli.times.axis`); the
        other families' do not. A backend reports the axis the model was really given; this is
        what ``budget`` shows and what a backend checks its own against.
        """
        positions = self.temporal_positions
        encoding = self.family.time_encoding
        if encoding.positions_are_seconds and self.tokens_per_second:
            formula = {"reference": reference_positions, "vllm": vllm_positions}[engine]
            positions = tuple(
                formula(len(positions), self.second_per_grid_t, self.tokens_per_second)
            )
        return TimeAxis(
            encoding=encoding,
            positions=tuple(positions),
            second_per_grid_t=self.second_per_grid_t,
            tokens_per_second=self.tokens_per_second,
            patch_times_s=self.patch_times_s,
            clip_start_s=self.clip_start_s,
            clip_end_s=self.shown_end_s,
            engine=engine,
        )

    def position_seconds(self, position: int) -> float:
        """The second of the clip that a temporal position stands for, as the model reads it."""
        if self.tokens_per_second:
            return position / self.tokens_per_second
        return position * self.second_per_grid_t


@dataclass(frozen=True)
class ImagePlan:
    """The size an image is resized to and the tokens it costs."""

    family: Family  # shown by its name in the JSON output
    source_width: int
    source_height: int
    frame_height: int  # qwen-vl-utils resizes the image to this size...
    frame_width: int
    resized_height: int  # ...and the processor to this one (usually the same): the model's input
    resized_width: int
    grid_thw: tuple[int, int, int]
    visual_tokens: int
    kind: str = field(default="image")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["family"] = self.family.name
        d["grid_thw"] = list(self.grid_thw)
        return d


def _grid(family: Family, frames: int, height: int, width: int) -> tuple[tuple[int, int, int], int]:
    t = math.ceil(frames / family.temporal_patch_size)
    h, w = height // family.patch_size, width // family.patch_size
    return (t, h, w), t * h * w // (family.spatial_merge_size**2)


def plan_video(facts: VideoFacts, options: SamplingOptions, family: Family) -> VideoPlan:
    """The plan for one video; raises :class:`InputError` when the request cannot be met."""
    fps = facts.average_fps
    first, last = frame_range(options, facts.num_frames, fps)
    in_range = last - first + 1
    n = sample_count(options, in_range, fps)
    indices = tuple(round(x) for x in linspace_f32(first, last, n))
    sample_fps = n / max(in_range, 1e-6) * fps
    min_px, max_px = video_pixel_limits(options, n, family.factor)
    h1, w1 = reference_resize(facts.height, facts.width, family.factor, min_px, max_px)
    height, width = processor_video_resize(family, n, h1, w1)
    grid, tokens = _grid(family, n, height, width)
    spg = family.temporal_patch_size / sample_fps
    times = facts.frame_times_s
    if times is not None and len(times) >= facts.num_frames:
        frame_times = tuple(times[i] for i in indices)
        clip_start, clip_end = times[first], times[last]
    else:
        frame_times = tuple(i / fps for i in indices)
        clip_start, clip_end = first / fps, last / fps
    duration = facts.num_frames / fps
    notes: tuple[str, ...] = ()
    if options.end is not None and options.end > duration:
        notes = (
            f"--end {options.end:g}s is past the end of the video ({duration:.3f}s): clipped to the end",
        )
    positions = temporal_positions(family, grid[0], spg)
    patch_times = tuple(frame_times[g * family.temporal_patch_size] for g in range(grid[0]))
    return VideoPlan(
        family=family,
        source_width=facts.width,
        source_height=facts.height,
        source_frames=facts.num_frames,
        source_fps=fps,
        duration_s=duration,
        start_frame=first,
        end_frame=last,
        clip_start_s=clip_start,
        clip_end_s=clip_end,
        frames=n,
        frame_indices=indices,
        frame_times_s=frame_times,
        sample_fps=sample_fps,
        second_per_grid_t=spg,
        tokens_per_second=family.tokens_per_second
        if family.time_encoding.positions_are_seconds
        else None,
        min_pixels=min_px,
        max_pixels=max_px,
        frame_height=h1,
        frame_width=w1,
        resized_height=height,
        resized_width=width,
        grid_thw=grid,
        visual_tokens=tokens,
        temporal_positions=tuple(positions),
        patch_times_s=patch_times,
        notes=notes,
        requested_end_s=options.end,
    )


def plan_image(width: int, height: int, options: SamplingOptions, family: Family) -> ImagePlan:
    """The plan for one image (qwen-vl-utils' ``fetch_image``, then the processor's resize)."""
    f = family.factor
    # A bound the user gave wins over a default one (the reference stops on an assertion).
    min_px = (
        options.min_pixels
        if options.min_pixels is not None
        else min(IMAGE_MIN_TOKENS * f * f, options.max_pixels or IMAGE_MIN_TOKENS * f * f)
    )
    max_px = (
        options.max_pixels
        if options.max_pixels is not None
        else max(IMAGE_MAX_TOKENS * f * f, min_px)
    )
    h1, w1 = reference_resize(height, width, f, min_px, max_px)
    h2, w2 = processor_resize(
        h1, w1, f, family.processor_image_min_pixels, family.processor_image_max_pixels
    )
    grid, tokens = _grid(family, family.temporal_patch_size, h2, w2)
    return ImagePlan(family, width, height, h1, w1, h2, w2, (1, grid[1], grid[2]), tokens)


Plan = VideoPlan | ImagePlan  # what plan_video or plan_image made of one input
Media = Sequence[tuple[str, Plan]]  # the inputs of one prompt, in order: each path with its plan


# Tokens of the chat template around the media and the question with the default system prompt:
# "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" ...
# "<|im_end|>\n<|im_start|>assistant\n" is 21 tokens with the Qwen2 tokenizer.
TEMPLATE_TOKENS = 21
MEDIA_WRAP_TOKENS = 2  # <|vision_start|> and <|vision_end|> around each item


def estimate_prompt_tokens(plans: list[Plan], question: str, system: str | None = None) -> int:
    """Prompt length: visual tokens exactly, text estimated at one token per four characters."""
    text = len(question) + (len(system) - len("You are a helpful assistant.") if system else 0)
    total = TEMPLATE_TOKENS + math.ceil(max(text, 0) / 4)
    for p in plans:
        total += p.visual_tokens + MEDIA_WRAP_TOKENS
        if isinstance(p, VideoPlan):
            total += p.family.timestamp_tokens * p.grid_thw[0]
    return total
