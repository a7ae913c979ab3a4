"""Decoding: the sampled frames of a video, an image at its planned size, the frame at a second.

torch, torchvision, torchcodec and PIL are imported inside the functions, so that importing this
module stays cheap: the vLLM engine imports it (``vlcli budget --server`` too, which decodes
nothing), an image needs only PIL, and only a video's frames need torch.

The pixels reproduce the reference preprocessing (qwen-vl-utils 0.0.14 with torchcodec):

* videos: torchcodec's ``VideoDecoder`` in exact seek mode (its frame indices are the plan's),
  ``get_frames_at`` the planned indices, then a bicubic antialiased resize of the uint8 frames to
  the plan's ``frame_height x frame_width``. The reference resizes the whole batch at once; here
  each frame is resized on its own, which gives the same bytes (the resize works per image) and is
  faster, and only ``chunk_frames`` full-size frames are held at a time;
* images: PIL, RGBA composited on white, everything else converted to RGB, then
  ``Image.resize`` with PIL's default filter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from vlcli.errors import InputError, first_line
from vlcli.media.rgb import decoder_source, video_decoder_class

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from vlcli.planning.plan import ImagePlan, VideoPlan

# Threads FFmpeg may use to decode one video (0 lets FFmpeg choose). The thread count does not
# change the decoded pixels.
DECODER_THREADS = 0


def _decoder_failure(path: str, exc: Exception) -> InputError:
    text = first_line(exc) or type(exc).__name__
    # torchcodec prefixes its messages with a C++ source location; keep the FFmpeg part.
    if ".cpp:" in text:
        text = text.split(".cpp:", 1)[1].split(",", 1)[-1].strip()
    return InputError(f"the decoder failed ({text[:200]}): is it truncated or corrupt?", path)


def open_video(path: str) -> Any:
    """torchcodec's ``VideoDecoder`` for ``path`` in exact seek mode (it scans the packets)."""
    VideoDecoder = video_decoder_class()  # noqa: N806
    try:
        source = decoder_source(path)
        return VideoDecoder(source, seek_mode="exact", num_ffmpeg_threads=DECODER_THREADS)
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror or exc})", path) from None
    except (RuntimeError, ValueError) as exc:
        raise _decoder_failure(path, exc) from None


def iter_video_chunks(
    path: str, plan: VideoPlan, chunk_frames: int = 16, workers: int | None = None
) -> Iterator[torch.Tensor]:
    """The plan's frames, decoded and resized: uint8 ``(n, 3, frame_height, frame_width)`` tensors.

    Chunks come in order and cover ``plan.frame_indices`` exactly; every chunk but the last has
    ``chunk_frames`` frames. Their concatenation equals what qwen-vl-utils' ``fetch_video``
    returns for the same options (it returns the same values as float).

    H.264, HEVC, VP9 and AV1 are decoded by :mod:`vlcli.media.decode` (only the packets the planned
    frames need, ``workers`` processes at a time; default: ``$VLCLI_DECODE_WORKERS`` or every
    CPU); other codecs, and anything that path cannot do exactly, by torchcodec.
    """
    import torch

    # The fast path (its workers, ctypes) on first decode: probing needs none of it.
    from vlcli.media import decode
    from vlcli.media.pieces import FastPathUnavailable, SegmentError

    if chunk_frames < 1:
        raise ValueError("chunk_frames must be at least 1")
    indices = list(plan.frame_indices)
    frames: Iterator[torch.Tensor] = iter(())
    try:
        job = decode.prepare(path, plan)
        frames = decode.planned_frames(job, workers or decode.default_workers())
    except FastPathUnavailable:
        job = None
    size = (plan.frame_height, plan.frame_width)
    done = 0  # frames of the plan delivered
    previous: torch.Tensor | None = None  # the row holding the last frame (for repeated indices)
    while done < len(indices) and job is not None:
        chunk = torch.empty((min(chunk_frames, len(indices) - done), 3, *size), dtype=torch.uint8)
        try:
            for i in range(len(chunk)):
                n = done + i
                # each frame is valid until the next one is asked for: copy it at once
                chunk[i] = (
                    next(frames) if previous is None or indices[n] != indices[n - 1] else previous
                )
                previous = chunk[i]
        except (SegmentError, FastPathUnavailable, StopIteration):
            frames.close() if hasattr(frames, "close") else None
            job = None  # the rest the ordinary way, from the first frame of this chunk
            break
        done += len(chunk)
        if done == len(indices) and hasattr(frames, "close"):
            frames.close()  # the workers and their shared memory go before the caller's last step
        yield chunk
    if done < len(indices):
        yield from _torchcodec_chunks(path, plan, chunk_frames, done)


def _torchcodec_chunks(
    path: str, plan: VideoPlan, chunk_frames: int, done: int = 0
) -> Iterator[torch.Tensor]:
    """The plan's frames from ``done`` on, decoded by torchcodec (the reference's decoder)."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    from vlcli.media.resample import kernel_for  # as decode above: on first decode

    decoder = open_video(path)
    meta = decoder.metadata
    if (meta.num_frames, meta.width, meta.height) != (
        plan.source_frames,
        plan.source_width,
        plan.source_height,
    ):
        raise InputError(
            f"changed since it was probed: the decoder sees {meta.num_frames} frames of "
            f"{meta.width}x{meta.height}, the plan was made for {plan.source_frames} of "
            f"{plan.source_width}x{plan.source_height}",
            path,
        )
    size = [plan.frame_height, plan.frame_width]
    indices = list(plan.frame_indices)
    for start in range(done, len(indices), chunk_frames):
        chunk = indices[start : start + chunk_frames]
        try:
            full = decoder.get_frames_at(indices=chunk).data
        except (RuntimeError, ValueError, IndexError) as exc:
            raise _decoder_failure(path, exc) from None
        out = torch.empty((len(chunk), 3, size[0], size[1]), dtype=torch.uint8)
        kernel = kernel_for((int(full.shape[2]), int(full.shape[3])), (size[0], size[1]))
        for i in range(len(chunk)):
            if kernel is not None:  # the same bytes as torchvision's (vlcli.media.resample)
                kernel.run(full[i], out[i])
            else:
                out[i] = resize(
                    full[i], size, interpolation=InterpolationMode.BICUBIC, antialias=True
                )
        del full
        yield out


def load_image(path: str, plan: ImagePlan) -> Image.Image:
    """The image as the reference's ``fetch_image`` makes it: RGB, resized to the plan's frame size.

    The model's processor may resize it once more, to ``plan.resized_*`` (see
    ``vlcli.backends.transformers.model_inputs``).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.size != (plan.source_width, plan.source_height):
                raise InputError(
                    f"changed since it was probed: {im.size[0]}x{im.size[1]}, the plan was made "
                    f"for {plan.source_width}x{plan.source_height}",
                    path,
                )
            rgb = _to_rgb(im)
    except Image.DecompressionBombError as exc:
        raise InputError(f"too large an image for PIL to open safely ({exc})", path) from None
    except UnidentifiedImageError:
        raise InputError(
            "not an image PIL can read (unknown or corrupt image data)", path
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"truncated or corrupt image: {exc}", path) from None
    return rgb.resize((plan.frame_width, plan.frame_height))


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGBA over a white background; any other mode converted to RGB (as the reference does)."""
    from PIL import Image

    if im.mode == "RGBA":
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(im, mask=im.split()[3])
        return white
    return im.convert("RGB")


def source_image(path: str) -> Image.Image:
    """The image at its full size, as the model was shown it before resizing (RGB, the same
    orientation: no EXIF transpose), to draw boxes on and cut them from."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return _to_rgb(im)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read the image again ({first_line(exc)})", path) from None


def frame_at(path: str, seconds: float) -> Image.Image:
    """The frame shown ``seconds`` after the first frame of the video, full size, upright."""
    return frames_at(path, [seconds])[0]


def frames_at(path: str, seconds: Sequence[float]) -> list[Image.Image]:
    """The frames shown at each of ``seconds`` (from the first frame), as PIL images.

    Times before the first frame give the first frame; times past the end give the last one.
    """
    from PIL import Image

    if not seconds:
        return []
    decoder = open_video(path)
    meta = decoder.metadata
    begin, end = float(meta.begin_stream_seconds), float(meta.end_stream_seconds)
    # The last frame is shown until ``end``, which itself is past the video: stop just before it.
    last = max(begin, end - min(1e-6, (end - begin) / max(2 * meta.num_frames, 1)))
    wanted = [min(max(begin + float(s), begin), last) for s in seconds]
    try:
        batch = decoder.get_frames_played_at(seconds=wanted).data
    except (RuntimeError, ValueError, IndexError) as exc:
        raise _decoder_failure(path, exc) from None
    return [Image.fromarray(frame.permute(1, 2, 0).contiguous().numpy()) for frame in batch]
