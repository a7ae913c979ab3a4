"""The files an answer's boxes and points get: the source image or frame with them drawn
(``--evidence DIR``) and each box's region at full resolution (``--crops DIR``).

An image's boxes are drawn on the image, ``STEM_boxes.png``; a video's on the frame each is on
(:mod:`vlcli.space.place`), one PNG per frame, ``STEM_00-00-01.320_boxes.png`` (the frame's
source time, as the evidence frames of times are named). Box ``n`` of the record's ``boxes``
(from 1) is cut to ``STEM_boxN.png`` (``STEM_00-00-01.320_boxN.png`` in a video). A box with
no frame (a video's box stated without a time) or no area is neither drawn nor cut. Every file
is written whole or not at all, with the proof that vlcli wrote it, and never over an input.
An answer asked again replaces the earlier one's files: those of its boxes or frames that the
new answer no longer has are removed (only files vlcli proves it wrote), so that a folder
never shows boxes of two different answers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vlcli.outputs.drawing import crop_box, draw_shapes
from vlcli.outputs.files import FileId, check_not_input, png_bytes, remove_owned, write_owned
from vlcli.planning.plan import Plan, VideoPlan
from vlcli.space.place import PlacedShape
from vlcli.times.format import format_clock


def save_places(
    path: str,
    plan: Plan,
    places: list[PlacedShape],
    stem: str,
    folders: tuple[str | None, str | None],
    inputs: set[FileId],
) -> tuple[list[str], list[str]]:
    """Draw ``places`` into ``folders[0]`` (evidence) and cut their boxes into ``folders[1]``
    (crops), either of which may be None; the evidence files and the crops written."""
    evidence_dir, crops_dir = folders
    numbered = [(n, p) for n, p in enumerate((p for p in places if p.kind == "box"), 1)]
    drawn: list[str] = []
    crops: list[str] = []
    for suffix, image, shown in _pictures(path, plan, places):
        if evidence_dir is not None:
            shapes = [(p.kind, p.pixels or (), p.label) for p in shown]
            target = Path(evidence_dir) / f"{stem}{suffix}_boxes.png"
            _write(target, draw_shapes(image, shapes), "boxes drawn", inputs)
            drawn.append(str(target))
        if crops_dir is None:
            continue
        for n, box in numbered:
            if box in shown and box.pixels and "degenerate" not in box.flags:
                target = Path(crops_dir) / f"{stem}{suffix}_box{n}.png"
                _write(target, crop_box(image, box.pixels), "box's region", inputs)
                crops.append(str(target))
    _remove_stale(evidence_dir, stem, r"_boxes", drawn)
    _remove_stale(crops_dir, stem, r"_box\d+", crops)
    return drawn, crops


def _remove_stale(folder: str | None, stem: str, kind: str, written: list[str]) -> None:
    """Remove the files an earlier answer of ``stem`` left in ``folder`` that this one did not
    write again (a box it no longer has, a frame no box is on now), if vlcli wrote them."""
    if folder is None or not Path(folder).is_dir():
        return
    name = re.compile(re.escape(stem) + r"(_\d\d-\d\d-\d\d\.\d{3})?" + kind + r"\.png")
    kept = {Path(w).name for w in written}
    for entry in Path(folder).iterdir():
        if name.fullmatch(entry.name) and entry.name not in kept:
            remove_owned(entry)


def _pictures(
    path: str, plan: Plan, places: list[PlacedShape]
) -> list[tuple[str, Any, list[PlacedShape]]]:
    """Each picture the shapes are on: the image, or each video frame they name, with the
    name's suffix and its shapes."""
    # The media layer, imported when boxes are drawn (as run.prompt's evidence frames).
    from vlcli.media.frames import frames_at, source_image

    if not isinstance(plan, VideoPlan):
        shown = [p for p in places if p.pixels]
        return [("", source_image(path), shown)] if shown else []
    seconds = sorted({p.frame_s for p in places if p.frame_s is not None and p.pixels})
    if not seconds:
        return []
    frames = frames_at(path, seconds)
    return [
        (f"_{format_clock(s, 3, sep='-')}", frame, [p for p in places if p.frame_s == s])
        for s, frame in zip(seconds, frames, strict=True)
    ]


def _write(target: Path, image: Any, what: str, inputs: set[FileId]) -> None:
    if inputs:
        check_not_input(target, inputs)
    write_owned(target, png_bytes(image), what)
