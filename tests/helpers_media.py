"""Small media files for tests, made with the system FFmpeg and PIL.

Import from a test (``tests/`` is on ``sys.path`` under pytest)::

    from helpers_media import make_clip
    clip = make_clip(tmp_path / "a.mp4", size=(320, 180), fps=25, seconds=2)
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any


def ffmpeg(*args: str) -> None:
    """Run ``ffmpeg -y`` quietly; fail with FFmpeg's own message."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{done.stderr}")


def make_clip(
    path: str | PathLike[str],
    *,
    size: tuple[int, int] | str = (320, 180),
    fps: float | str = 25,
    seconds: float = 4,
    extra_args: Sequence[str] = (),
    extra_inputs: Sequence[str] = (),
    source: str = "testsrc2",
    codec: Sequence[str] = ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"),
) -> str:
    """A synthetic clip: ``source`` (a lavfi video source: testsrc2, testsrc, color...) at
    ``size`` (w, h) and ``fps`` (a number or "30000/1001") for ``seconds``, encoded with ``codec``
    (libx264 by default, with B-frames: add ``-bf 0`` to extra_args for none).
    ``extra_inputs`` are more input arguments (e.g. ``("-f", "lavfi", "-i", "sine")``);
    ``extra_args`` are output options placed just before the file name (filters, ``-metadata``,
    ``-movflags``...). Returns the path."""
    w_h = size if isinstance(size, str) else f"{size[0]}x{size[1]}"
    src = f"{source}{':' if '=' in source else '='}size={w_h}:rate={fps}"
    out = str(path)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", src, *extra_inputs, "-t", f"{seconds}", *codec, *extra_args, out)
    return out


def set_rotation(src: str | PathLike[str], dst: str | PathLike[str], degrees: int) -> str:
    """A copy of ``src`` (streams copied, not re-encoded) carrying a display rotation.

    FFmpeg 5.1 writes the "rotate" tag as the display matrix only when the stream is copied;
    torchcodec then returns the frames turned, and ffprobe reports the rotation.
    """
    ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(dst))
    return str(dst)


def make_image(path: str | PathLike[str], size: tuple[int, int], mode: str = "RGB") -> str:
    """A PIL image with a gradient (and, for RGBA, a transparent corner); format from the name."""
    from PIL import Image

    w, h = size
    im = Image.new(mode, size)
    px = im.load()
    assert px is not None
    for y in range(h):
        for x in range(w):
            r, g, b = (x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1), (x ^ y) & 255
            if mode == "RGBA":
                px[x, y] = (r, g, b, 0 if (x < w // 4 and y < h // 4) else 128 + (x % 128))
            elif mode == "L":
                px[x, y] = (r + g) // 2
            else:
                px[x, y] = (r, g, b)
    im.save(str(path))
    return str(path)


def truncate(src: str | PathLike[str], dst: str | PathLike[str], fraction: float = 0.5) -> str:
    """A copy of ``src`` cut to ``fraction`` of its bytes."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return str(dst)


# Encoders for the decoding tests: small, short clips of each codec the fast decoder handles,
# with the features that make decoding tricky (see tests/test_decode.py).
def x264(params: str, pix_fmt: str = "yuv420p") -> tuple[str, ...]:
    return ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", pix_fmt, "-x264-params", params)


def x265(params: str, pix_fmt: str = "yuv420p") -> tuple[str, ...]:
    return ("-c:v", "libx265", "-pix_fmt", pix_fmt, "-x265-params", f"log-level=error:{params}")


def make_vp9_altref(path: str | PathLike[str], *extra: str, **clip: Any) -> str:
    """A libvpx VP9 clip with alternate reference frames: coded, never shown, each hidden in a
    superframe with a shown frame. libvpx makes them only in two-pass mode."""
    log = str(Path(path).with_suffix(".pass"))
    codec = ("-c:v", "libvpx-vp9", "-b:v", "150k", "-deadline", "good", "-cpu-used", "4",
             "-auto-alt-ref", "1", "-lag-in-frames", "16", "-pix_fmt", "yuv420p",
             "-passlogfile", log, *extra)  # fmt: skip
    make_clip(Path(path).with_suffix(".pass1.webm"), codec=(*codec, "-pass", "1"), **clip)
    return make_clip(path, codec=(*codec, "-pass", "2"), **clip)


def av1(*extra: str) -> tuple[str, ...]:
    return ("-c:v", "libaom-av1", "-cpu-used", "8", "-b:v", "80k", "-pix_fmt", "yuv420p",
            *extra)  # fmt: skip
