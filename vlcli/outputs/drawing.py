"""Boxes and points drawn on the source image or frame (``--evidence``), and each box's region
cut out at full resolution (``--crops``), with Pillow.

Pixels are the source's as displayed (:mod:`vlcli.space.place`): a box is its edges
``x1, y1, x2, y2``, so it covers columns ``x1 .. x2 - 1`` and rows ``y1 .. y2 - 1``; its outline
is drawn on those outermost pixels and inwards, so that what it marks is what it encloses (and
what its crop holds). A point is a cross centred on its pixel. Each shape has its own colour
from a fixed cycle, its label written beside it on a dark band.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

# Colours that stay apart on photos and on each other (red, lime, blue, yellow, magenta, cyan).
PALETTE = ((255, 0, 0), (0, 255, 0), (0, 64, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255))

Shape = tuple[str, Sequence[int], str]  # kind ("box" or "point"), source pixels, label


def line_width(width: int, height: int) -> int:
    """An outline that shows on a phone photo and a thumbnail alike: 1/300 of the shorter side,
    at least one pixel."""
    return max(1, min(width, height) // 300)


def draw_shapes(image: Image.Image, shapes: Sequence[Shape]) -> Image.Image:
    """A copy of ``image`` (RGB) with ``shapes`` drawn, in order, colours cycling."""
    # Here, not at the top: every ``vlcli ask`` imports this module, few draw.
    from PIL import ImageDraw

    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    width = line_width(*out.size)
    for k, (kind, pixels, label) in enumerate(shapes):
        colour = PALETTE[k % len(PALETTE)]
        if kind == "box":
            x1, y1, x2, y2 = pixels
            if x2 <= x1 or y2 <= y1:
                continue  # no pixel inside: nothing to mark
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=colour, width=width)
            _label(draw, label, colour, x1, y1, y1 + width)
        else:
            x, y = pixels
            arm = 4 * width
            draw.line((x - arm, y, x + arm, y), fill=colour, width=width)
            draw.line((x, y - arm, x, y + arm), fill=colour, width=width)
            _label(draw, label, colour, x + arm + 2, y - arm, y + arm + 1)
    return out


def _label(
    draw: ImageDraw.ImageDraw, text: str, colour: tuple[int, ...], x: int, above: int, below: int
) -> None:
    """``text`` on a dark band ending just above row ``above``, or starting at row ``below`` when
    there is no room above: never over the outline it names."""
    if not text:
        return
    height = draw.textbbox((0, 0), text)[3] + 2  # from the anchor, with the band's margin
    y = above - height - 2 if above - height - 2 >= 0 else below + 1
    box = draw.textbbox((x, y), text)
    draw.rectangle((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill=(0, 0, 0))
    draw.text((x, y), text, fill=colour)


def crop_box(image: Image.Image, box: Sequence[int]) -> Image.Image:
    """The region a box encloses, at the source's full resolution."""
    x1, y1, x2, y2 = box
    return image.convert("RGB").crop((x1, y1, x2, y2))
