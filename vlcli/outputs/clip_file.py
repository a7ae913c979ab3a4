"""Writing one clip with the system ``ffmpeg``, driven through ffmpeg-python (commands built as
argument lists, never shell strings), whole or not at all.

Exact cuts are re-encoded: H.264 (libx264, ``-crf 18 -preset medium``, 8-bit 4:2:0, which every
player takes; CRF 18 is commonly held to look like its source) and AAC at 192 kbit/s, in MP4 with
``+faststart`` (the index first, so that a browser plays it before it is all downloaded). The
seek is ``-ss`` before ``-i``: FFmpeg 5.1 then decodes from the keyframe before it and drops
what comes before the start (``-accurate_seek``, on by default when re-encoding), audio and
video alike, so they stay in sync; its rotation is applied to the frames (``-autorotate``, on
by default), so the clip shows as the source did. The start is the exact start of the frame
shown at the span's start, rounded down to the microsecond FFmpeg counts in, and the length
ends where the frame shown at the span's end stops.

``--copy`` copies the streams from a keyframe (no re-encoding: fast, the start is not exact);
the display matrix goes along with the stream. The MP4 muxer's edit list keeps the keyframe at
0 s with the sound beside it (``-avoid_negative_ts make_zero`` would instead shift the picture
by the B-frames' delay, 0.2 s at 10 fps, behind sound from before the keyframe).

A clip is written to a hidden temporary file in its folder and then linked to its name, so
that nobody sees a partial clip; an interrupt or a failure removes the temporary file.

ffmpeg-python is imported by the functions that build commands: every ``vlcli ask`` imports this
module (to find ``ffmpeg`` for ``--clips``), and only one that writes clips needs it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from vlcli.errors import ExitStatus, VlcliError

VIDEO = {"c:v": "libx264", "crf": 18, "preset": "medium", "pix_fmt": "yuv420p"}
AUDIO = {"c:a": "aac", "b:a": "192k"}


@dataclass(frozen=True)
class Cut:
    """One cut of ``source``: from ``start`` (source seconds, as ``-ss`` counts), ``length`` long."""

    source: str
    start: Fraction
    length: Fraction
    audio: bool
    copy: bool


def find_ffmpeg() -> str:
    """The system ``ffmpeg``, or a one-line error saying it is missing."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise VlcliError(
            "ffmpeg not found on PATH: cutting clips needs FFmpeg's command-line tool "
            "(make setup installs it; or apt-get install ffmpeg)",
            ExitStatus.MISSING_DEPENDENCY,
        )
    return found


def _seconds(value: Fraction, *, down: bool) -> str:
    """``value`` in the microseconds FFmpeg parses times to: rounded down, or to the nearest."""
    us = int(value * 1_000_000) if down else round(value * 1_000_000)
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def command(ffmpeg_path: str, cut: Cut, target: str) -> list[str]:
    """The ``ffmpeg`` argument list that writes ``cut`` to ``target`` (MP4, whatever its name)."""
    import ffmpeg

    # exact: at or before the frame's start; copy: the keyframe itself (the nearest microsecond)
    source = ffmpeg.input(
        "file:" + os.path.abspath(cut.source), ss=_seconds(cut.start, down=not cut.copy)
    )
    streams = [source["v:0"], source["a:0"]] if cut.audio else [source["v:0"]]
    codecs = {"c": "copy"} if cut.copy else {**VIDEO, **AUDIO}
    out = ffmpeg.output(
        *streams,
        "file:" + os.path.abspath(target),
        t=_seconds(cut.length, down=True),
        movflags="+faststart",
        f="mp4",
        **codecs,
    )
    return finish(out, ffmpeg_path)


def finish(out: Any, ffmpeg_path: str) -> list[str]:
    """The argument list of ffmpeg-python's output ``out``, quiet, following ``-progress``."""
    import ffmpeg

    return list(
        ffmpeg.compile(
            out.global_args(
                "-hide_banner", "-nostdin", "-v", "error", "-y", "-nostats", "-progress", "pipe:1"
            ),
            cmd=ffmpeg_path,
        )
    )


def write_clip(
    ffmpeg_path: str,
    cut: Cut,
    target: str,
    *,
    force: bool,
    progress: Callable[[float], None] | None = None,
) -> bool:
    """Write ``cut`` to ``target``; False when a clip is there already and ``force`` is not set.

    ``progress`` is told the seconds of the clip written so far, as FFmpeg reports them
    (``-progress``). FFmpeg's failure is a :class:`VlcliError` of one line naming the clip; an
    interrupt (``KeyboardInterrupt``) stops FFmpeg and leaves no partial file.
    """
    return write_with(
        lambda part: command(ffmpeg_path, cut, part), target, force=force, progress=progress
    )


def write_with(
    args: Callable[[str], list[str]],
    target: str,
    *,
    force: bool,
    progress: Callable[[float], None] | None = None,
) -> bool:
    """Run the FFmpeg command ``args(part)`` makes, then put ``part`` at ``target``, as
    :func:`write_clip` says."""
    if os.path.lexists(target) and not force:
        return False
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    part = os.path.join(
        folder, f".{os.path.basename(target)}.{os.getpid()}-{secrets.token_hex(4)}.part"
    )
    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask's mode
    proc: subprocess.Popen[bytes] | None = None
    try:
        with tempfile.TemporaryFile() as errors:  # a file: FFmpeg never waits on a full pipe
            proc = subprocess.Popen(
                args(part),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
            _follow(proc, progress)
            errors.seek(0)
            failure = _failure(proc.returncode, errors.read().decode(errors="replace"))
        if failure is not None:
            reason = failure.replace("file:" + os.path.abspath(part), "it").replace(part, "it")
            raise VlcliError(f"ffmpeg failed: {reason}", ExitStatus.INPUT, target)
        return _place(part, target, force)
    finally:
        if proc is not None and proc.poll() is None:  # interrupted: FFmpeg stops too
            proc.kill()
            proc.wait()
        if os.path.lexists(part):
            os.unlink(part)


def _follow(proc: subprocess.Popen[bytes], progress: Callable[[float], None] | None) -> None:
    """Read FFmpeg's ``-progress`` lines (``out_time_us=...``) until it exits."""
    assert proc.stdout is not None
    for line in proc.stdout:
        key, _, value = line.decode(errors="replace").strip().partition("=")
        if progress is not None and key == "out_time_us" and value.lstrip("-").isdigit():
            progress(max(int(value), 0) / 1_000_000)
    proc.wait()


def _place(part: str, target: str, force: bool) -> bool:
    """The finished file, synced, under its name: replacing one only with ``force``."""
    fd = os.open(part, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if force:
        os.replace(part, target)
        return True
    try:
        os.link(part, target)  # fails if a clip appeared meanwhile: never overwritten
    except FileExistsError:
        return False
    return True


def _failure(status: int, stderr: str) -> str | None:
    """FFmpeg's first error line when the clip is not whole, else None.

    FFmpeg 5.1 exits with status 0 when the file cannot be finished ("Error writing trailer",
    "Error closing file": a full disk at the end): those lines fail the clip too. The first
    line is the cause; the ones after it are its consequences ("Error initializing output").
    """
    lines = [x.strip() for x in stderr.splitlines() if x.strip()]
    unfinished = any(x.startswith(("Error writing trailer", "Error closing file")) for x in lines)
    if status == 0 and not unfinished:
        return None
    return lines[0] if lines else f"no message (exit status {status})"
