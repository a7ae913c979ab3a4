"""``vlcli cut --reel FILE``: every clip of the run, in record order, joined into one video with
a chapter per span, titled by its text (MP4 chapters), for "the highlights of 200 matches".

The clips may differ in size, rate and sound, so the reel is re-encoded to one format: each
clip scaled to fit 1280x720 (black bars where its shape differs: a phone's upright clip stays
upright), 30 frames a second, stereo AAC at 48 kHz (silence for a clip without sound), with the
clips' H.264 and AAC settings (:mod:`vlcli.outputs.clip_file`). Each clip's sound is padded or cut
to its picture's length: an AAC track ends up to one audio frame past it, and FFmpeg's concat
starts the next clip after the longer of the two, which added a frame to the reel. Chapters go in through an
FFmpeg metadata file, which FFmpeg copies to the output (the first input with chapters).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vlcli.outputs.clip_file import AUDIO, VIDEO, finish, write_with

SIZE = (1280, 720)
FPS = 30
RATE = 48_000


@dataclass(frozen=True)
class ReelPart:
    """One clip of the reel and the chapter it makes."""

    clip: str
    title: str
    length_s: float
    audio: bool


def chapters_text(parts: Sequence[ReelPart]) -> str:
    """An FFmpeg metadata file (``;FFMETADATA1``) with one chapter per part, in milliseconds."""
    lines = [";FFMETADATA1"]
    at = 0
    for part in parts:
        end = at + round(part.length_s * 1000)
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={at}", f"END={end}"]
        lines.append(f"title={_escaped(part.title)}")
        at = end
    return "\n".join(lines) + "\n"


def _escaped(text: str) -> str:
    """A metadata value: ``=``, ``;``, ``#``, ``\\`` and line ends escaped with a backslash."""
    for c in "\\=;#":
        text = text.replace(c, "\\" + c)
    return text.replace("\r", " ").replace("\n", "\\\n")


def reel_command(
    ffmpeg_path: str, parts: Sequence[ReelPart], chapters: str, target: str
) -> list[str]:
    """The ``ffmpeg`` argument list that joins ``parts`` into ``target`` (see the module)."""
    import ffmpeg  # here: every ``vlcli ask`` imports this module, few write a reel

    w, h = SIZE
    streams = []
    for part in parts:
        clip = ffmpeg.input("file:" + os.path.abspath(part.clip))
        video = (
            clip.video.filter("scale", w, h, force_original_aspect_ratio="decrease")
            .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2")
            .filter("setsar", 1)
            .filter("fps", FPS)
            .filter("format", "yuv420p")
        )
        if part.audio:
            audio = (
                clip.audio.filter("aresample", RATE)
                .filter("aformat", channel_layouts="stereo")
                .filter("apad", whole_dur=f"{part.length_s:.6f}")
                .filter("atrim", duration=f"{part.length_s:.6f}")
            )
        else:
            silence = f"anullsrc=r={RATE}:cl=stereo"
            audio = ffmpeg.input(silence, f="lavfi", t=f"{part.length_s:.6f}").audio
        streams += [video, audio]
    joined = ffmpeg.concat(*streams, v=1, a=1).node
    inputs = sum(1 + (not p.audio) for p in parts)  # the chapters' input comes after these
    out = ffmpeg.output(
        joined[0], joined[1], "file:" + os.path.abspath(target),
        f="mp4", movflags="+faststart", map_chapters=inputs, **VIDEO, **AUDIO,
    )  # fmt: skip
    args = finish(out, ffmpeg_path)
    at = args.index("-filter_complex")  # ffmpeg-python maps every input it is given: added here
    return args[:at] + ["-f", "ffmetadata", "-i", "file:" + os.path.abspath(chapters)] + args[at:]


def write_reel(
    ffmpeg_path: str,
    parts: Sequence[ReelPart],
    target: str,
    *,
    force: bool,
    progress: Callable[[float], None] | None = None,
) -> bool:
    """Write the reel of ``parts`` to ``target`` (whole or not at all, kept unless ``force``)."""
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    chapters = os.path.join(folder, f".{os.path.basename(target)}.{os.getpid()}.chapters")
    with open(chapters, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(chapters_text(parts))
    try:
        return write_with(
            lambda part: reel_command(ffmpeg_path, parts, chapters, part),
            target,
            force=force,
            progress=progress,
        )
    finally:
        os.unlink(chapters)
