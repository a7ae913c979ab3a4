"""A clip with a burned-in clock that a test can read back from any frame, exactly.

Each frame carries its own frame number in a row of black and white blocks across its top
(bit ``b`` of the number in block ``b``, 16 x 16 pixels, drawn by FFmpeg's ``geq`` from ``N``),
so the frame shown at a time tells which source second it is: ``number / fps``. No OCR, no
font: the blocks survive H.264 at a low quantiser, and a block is read by its mean brightness.
"""

from __future__ import annotations

from os import PathLike

from helpers_media import ffmpeg

BLOCK = 16


def make_clock_clip(
    path: str | PathLike[str], *, seconds: float, fps: int = 10, bits: int = 12
) -> str:
    """``seconds`` of video at ``fps`` whose frame ``n`` shows ``n`` in binary (see the module)."""
    width, height = BLOCK * bits, 3 * BLOCK
    lum = f"if(lt(Y,{BLOCK}),255*mod(floor(N/pow(2,floor(X/{BLOCK}))),2),96)"
    ffmpeg(
        "-f", "lavfi", "-i", f"color=gray:size={width}x{height}:rate={fps}",
        "-t", f"{seconds}",
        "-vf", f"format=gray,geq=lum='{lum}',format=yuv420p",
        "-c:v", "libx264", "-preset", "veryfast", "-qp", "4", "-pix_fmt", "yuv420p",
        str(path),
    )  # fmt: skip
    return str(path)


def read_clock(image: object, bits: int = 12) -> int:
    """The frame number a frame of :func:`make_clock_clip` shows (a PIL image, full size)."""
    from PIL import ImageStat

    gray = image.convert("L")  # type: ignore[attr-defined]
    number = 0
    for b in range(bits):
        box = (b * BLOCK + 4, 4, b * BLOCK + BLOCK - 4, BLOCK - 4)
        if ImageStat.Stat(gray.crop(box)).mean[0] > 128:
            number |= 1 << b
    return number
