"""Media files: which ones the user meant, and what each one is, without decoding it.

``expand_inputs`` turns arguments (files, folders, globs, ``-`` for stdin) into a list of paths.
``probe`` reads the container with one ``ffprobe`` call and reports what ``vlcli probe`` shows and
what the plan needs. For videos that call also lists every packet of the video stream, because
the reference decoder (torchcodec in exact seek mode, which qwen-vl-utils uses) counts frames the
same way: ``num_frames`` is the number of packets, ``average_fps`` is that count divided by
``max(pts + duration) - min(pts)``. Reproducing its arithmetic here means the frame indices that
``vlcli budget`` plans are the ones the reference decodes, without importing torch.

Images are measured with PIL, as the reference reads them (no EXIF transpose).

Decoding lives in :mod:`vlcli.frames` and is re-exported here; it imports torch only when called.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from .errors import ExitStatus, InputError, VlcliError
from .frames import frame_at, frames_at, iter_video_chunks, load_image
from .plan import VideoFacts

__all__ = [
    "MediaInfo",
    "expand_inputs",
    "frame_at",
    "frames_at",
    "is_media_file",
    "iter_video_chunks",
    "load_image",
    "probe",
    "sniff",
]

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .flv .wmv .asf .mpg .mpeg .m2v .ts .m2ts .mts .3gp .3g2 .ogv"
    " .mxf .y4m".split()
)
IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .webp .bmp .gif .tif .tiff".split())
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS
AUDIO_MP4_BRANDS = (b"M4A ", b"M4B ", b"M4P ")
PROBE_TIMEOUT_S = 600.0


# ---------------------------------------------------------------- what a file is


@dataclass(frozen=True)
class MediaInfo:
    """Facts about one media file, read from its container (see :func:`probe`)."""

    path: str
    kind: str  # "video" or "image"
    container: str | None
    codec: str | None
    width: int  # as displayed: the rotation applied (swapped for +-90 degrees)
    height: int
    rotation: int  # degrees, from the display matrix (what the decoder applies), 0 if none
    duration_s: float | None
    fps: float | None  # average: frames / (last frame end - first frame start)
    frames: int | None
    frames_counted: bool  # counted by a packet scan (exact) or taken from the header (estimate)
    pixel_format: str | None  # FFmpeg's name for videos, PIL's mode for images
    audio: bool
    # Presentation time of every frame in display order, from the first frame (seconds).
    frame_times_s: tuple[float, ...] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["frame_times_s"]
        return d

    def video_facts(self) -> VideoFacts:
        """What :func:`vlcli.plan.plan_video` needs to know of this video."""
        if self.kind != "video" or not self.frames or not self.fps:
            raise InputError("is an image, not a video", self.path)
        return VideoFacts(self.width, self.height, self.frames, self.fps, self.frame_times_s)


def sniff(path: str) -> str | None:
    """``"video"``, ``"image"`` or ``"audio"`` from a file's first bytes; ``None`` if unknown."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(200)
    except OSError:
        return None
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")):
        return "image"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image"  # TIFF
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in (
        12,
        40,
        52,
        56,
        64,
        108,
        124,
    ):
        return "image"  # BMP: "BM", then a DIB header of a known size
    if head[:4] == b"RIFF":
        kind = head[8:12]
        return {b"WEBP": "image", b"AVI ": "video", b"WAVE": "audio"}.get(kind)
    if head[4:8] == b"ftyp":
        return "audio" if head[8:12] in AUDIO_MP4_BRANDS else "video"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "video"  # QuickTime without an ftyp box
    if head.startswith(
        (b"\x1a\x45\xdf\xa3", b"FLV\x01", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"YUV4MPEG2")
    ):
        return "video"  # Matroska/WebM, FLV, MPEG program stream, MPEG video, y4m
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "video"  # ASF/WMV
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "video"  # MPEG transport stream
    return None


def is_media_file(path: str) -> bool:
    """Media by extension, or, for other names, by the magic bytes at the start of the file."""
    if os.path.splitext(path)[1].lower() in MEDIA_EXTENSIONS:
        return True
    return sniff(path) in ("video", "image")


def _check_file(path: str) -> None:
    """A regular, readable, non-empty file; else one line that says what it is instead.

    Nothing is opened before the file is known to be regular: opening a FIFO blocks until a
    writer comes, and a device such as /dev/zero never ends.
    """
    try:
        info = os.stat(path)
    except PermissionError:
        raise InputError("permission denied (a folder on its path cannot be read)", path) from None
    except FileNotFoundError:
        what = "a link to nothing" if os.path.islink(path) else "no such file"
        raise InputError(f"missing: {what}", path) from None
    except OSError as exc:
        raise InputError(f"unreadable: {exc.strerror or exc}", path) from None
    if stat.S_ISDIR(info.st_mode):
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError("permission denied: this folder cannot be read", path)
        raise InputError("is a folder, not a file (pass the folder itself to expand it)", path)
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a pipe"
            if stat.S_ISFIFO(info.st_mode)
            else "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "not a file"
        )
        raise InputError(f"not a regular file ({kind}): give a media file", path)
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise InputError("permission denied: this file cannot be read", path) from None
    except OSError as exc:
        raise InputError(f"unreadable: {exc.strerror or exc}", path) from None
    if info.st_size == 0:
        raise InputError("empty file (0 bytes)", path)


def probe(path: str, *, count_frames: bool = True) -> MediaInfo:
    """What ``path`` is, from its container, without decoding any frame.

    With ``count_frames`` (the default) the video stream's packets are scanned, so ``frames``
    and ``fps`` equal what torchcodec's exact seek mode reports; without it they come from the
    header (faster on long files, but only an estimate).
    """
    _check_file(path)
    magic = sniff(path)
    if magic == "image":
        info = _probe_image(path)
        if info is not None:
            return info
    data, errors = _run_ffprobe(path, count_frames, magic)
    return _video_info(path, data, errors, count_frames, magic)


# ---------------------------------------------------------------- images (PIL)


def _probe_image(path: str) -> MediaInfo | None:
    """An image as the reference sees it; ``None`` for an animated GIF (decoded as a video)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format == "GIF" and getattr(im, "n_frames", 1) > 1:
                return None
            width, height = im.size
            fmt = (im.format or "").lower() or None
            return MediaInfo(
                path=path,
                kind="image",
                container=fmt,
                codec=fmt,
                width=width,
                height=height,
                rotation=0,  # EXIF orientation is not applied, as the reference does not
                duration_s=None,
                fps=None,
                frames=None,
                frames_counted=False,
                pixel_format=im.mode,
                audio=False,
            )
    except Image.DecompressionBombError as exc:
        raise InputError(f"too large an image for PIL to open safely ({exc})", path) from None
    except UnidentifiedImageError:
        raise InputError("not an image PIL can read (unknown or corrupt data)", path) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"truncated or corrupt image: {exc}", path) from None


# ---------------------------------------------------------------- videos (ffprobe)

_ENTRIES = (
    "format=format_name,duration"
    ":stream=index,codec_type,codec_name,width,height,pix_fmt,r_frame_rate,"
    "nb_frames,time_base,duration"
    ":stream_disposition=attached_pic:stream_side_data=rotation"
)
_PACKET_ENTRIES = ":packet=stream_index,pts,dts,duration,flags"


def ffprobe_executable() -> str:
    exe = shutil.which("ffprobe")
    if exe is None:
        raise VlcliError(
            "ffprobe not found: install FFmpeg (e.g. 'sudo apt-get install ffmpeg')",
            ExitStatus.MISSING_DEPENDENCY,
        )
    return exe


def _run_ffprobe(path: str, count_frames: bool, magic: str | None) -> tuple[dict[str, Any], str]:
    entries = _ENTRIES + (_PACKET_ENTRIES if count_frames else "")
    # "file:" keeps a name like "a:b.mp4" or "-x.mp4" from being read as a protocol or option.
    target = "file:" + os.path.abspath(path)
    cmd = [ffprobe_executable(), "-v", "error", "-of", "json", "-show_entries", entries, target]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"ffprobe took over {PROBE_TIMEOUT_S:.0f}s reading it", path) from None
    except OSError as exc:
        raise VlcliError(f"ffprobe cannot run: {exc}", ExitStatus.MISSING_DEPENDENCY) from None
    errors = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        reason = _ffmpeg_reason(errors, target)
        if magic in ("video", "image"):
            raise InputError(f"truncated or corrupt ({reason})", path)
        if magic == "audio":
            raise InputError("audio only: no video stream", path)
        raise InputError("not media: FFmpeg cannot read it as a video or image", path)
    try:
        data = json.loads(done.stdout)
    except ValueError:
        raise InputError("ffprobe gave unreadable output for it", path) from None
    return data, errors


def _ffmpeg_reason(text: str, target: str = "") -> str:
    """FFmpeg's complaints in a few words: "[mov @ 0x..] " and file-name prefixes removed."""
    reasons: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and "] " in line:
            line = line.split("] ", 1)[1]
        if target:
            line = line.removeprefix(target + ": ")
        if line and line not in reasons:
            reasons.append(line)
    return "; ".join(reasons)[:240] or "ffprobe failed"


def _ratio(text: Any) -> tuple[int, int] | None:
    try:
        num, den = (int(x) for x in str(text).split("/"))
    except ValueError:
        return None
    return (num, den) if den else None


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _container(format_name: str | None, path: str) -> str | None:
    if not format_name:
        return None
    names = format_name.split(",")
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return ext if ext in names else names[0]


_Counts = tuple[int | None, float | None, float | None, tuple[float, ...] | None]


def _video_info(
    path: str, data: dict[str, Any], errors: str, count_frames: bool, magic: str | None
) -> MediaInfo:
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    audio = any(s.get("codec_type") == "audio" for s in streams)
    # The decoder takes FFmpeg's "best" video stream: in practice the first one that is not
    # cover art (files with several real video streams are rare).
    vs = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if vs is None:
        raise InputError(
            "audio only: no video stream" if audio else "not media: no video in it", path
        )
    container = _container(fmt.get("format_name"), path)
    if container and (container.endswith("_pipe") or container == "image2") and magic != "video":
        info = _probe_image(path)  # an image only FFmpeg recognised: the reference uses PIL
        if info is not None:
            return info
    width, height = int(vs.get("width") or 0), int(vs.get("height") or 0)
    if width <= 0 or height <= 0:
        raise InputError("truncated or corrupt: the video stream has no frame size", path)
    rotation = 0
    for side_data in vs.get("side_data_list") or []:
        if "rotation" in side_data:
            rotation = int(round(float(side_data["rotation"])))
    if round(rotation / 90) % 2:  # +-90 (or 270): the decoder returns the frames turned
        width, height = height, width
    rate = _ratio(vs.get("r_frame_rate"))  # torchcodec's header fps is r_frame_rate
    header_fps = rate[0] / rate[1] if rate and rate[0] > 0 else None
    counts: _Counts
    if count_frames:
        counts = _scan_packets(path, data, vs, errors, header_fps)
    else:
        duration = _num(vs.get("duration")) or _num(fmt.get("duration"))
        nb = int(vs["nb_frames"]) if str(vs.get("nb_frames", "")).isdigit() else None
        if nb is None and header_fps and duration:
            nb = int(header_fps * duration)
        counts = (nb, header_fps, duration, None)
    frames, fps, duration, times = counts
    if not fps or not frames:
        raise InputError("truncated or corrupt: no frame count or frame rate in it", path)
    return MediaInfo(
        path=path,
        kind="video",
        container=container,
        codec=vs.get("codec_name"),
        width=width,
        height=height,
        rotation=rotation,
        duration_s=duration,
        fps=fps,
        frames=frames,
        frames_counted=count_frames,
        pixel_format=vs.get("pix_fmt"),
        audio=audio,
        frame_times_s=times,
    )


def _scan_packets(
    path: str, data: dict[str, Any], vs: dict[str, Any], errors: str, header_fps: float | None
) -> _Counts:
    """Frame count, average fps, duration and frame times, as torchcodec's exact mode has them.

    torchcodec reads every packet (``av_read_frame``), skips those flagged discard, and keeps
    ``pts`` (``dts`` where there is none) and ``duration`` in the stream's time base; seconds are
    ``double(pts) * num / den``, and the average fps is ``frames / (end - begin)``.
    """
    complaints = [ln for ln in errors.splitlines() if "partial file" in ln or "runcat" in ln]
    if complaints:
        raise InputError(f"truncated or corrupt ({_ffmpeg_reason(complaints[0])})", path)
    tb = _ratio(vs.get("time_base"))
    if tb is None or tb[0] <= 0:
        raise InputError("truncated or corrupt: the video stream has no time base", path)
    num, den = tb
    pts: list[int] = []
    begin = end = 0
    for p in data.get("packets") or []:
        if p.get("stream_index") != vs.get("index") or "D" in str(p.get("flags", "")):
            continue
        t = p.get("pts") if isinstance(p.get("pts"), int) else p.get("dts")
        if not isinstance(t, int):
            raise InputError(
                "its video packets carry no timestamps (a raw stream?): remux it into a "
                "container, e.g. 'ffmpeg -i IN -c copy OUT.mp4'",
                path,
            )
        d = p.get("duration")
        d = d if isinstance(d, int) else 0
        begin, end = (min(begin, t), max(end, t + d)) if pts else (t, t + d)
        pts.append(t)
    if not pts:
        raise InputError("truncated or corrupt: no video frames in it", path)
    duration = float(end) * num / den - float(begin) * num / den
    fps = len(pts) / duration if duration != 0.0 else header_fps
    pts.sort()
    times = tuple(float(t - pts[0]) * num / den for t in pts)
    return len(pts), fps, duration, times


# ---------------------------------------------------------------- which files


def expand_inputs(
    args: Sequence[str], stdin: TextIO | None = None, *, null: bool = False
) -> list[str]:
    """Paths of the media files named by ``args``, in order, each once.

    An argument is a file (kept whatever it holds), a folder (its media files, recursively,
    sorted, hidden names skipped), a glob pattern (``clips/*.mp4``, ``**/*``; the files it matches
    are filtered like a folder's), or ``-`` (one path per line from ``stdin``, blank lines
    ignored; with ``null``, paths separated by NUL characters, as ``find -print0`` writes them,
    so that any file name works). A path that does not exist, and a folder that cannot be
    read, are kept as they are, so that probing reports them while the other inputs still run.
    """
    seen: set[str] = set()
    out: list[str] = []

    def add(p: str) -> None:
        key = os.path.normpath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for arg in args:
        if arg == "-":
            names = (
                (stdin.read().split("\0") if stdin is not None else [])
                if null
                else [line.rstrip("\r\n") for line in stdin or ()]
            )
            for name in names:
                if name.strip():
                    for p in _expand_one(name):
                        add(p)
            continue
        for p in _expand_one(arg):
            add(p)
    return out


def _expand_one(arg: str) -> Iterator[str]:
    if os.path.isdir(arg):
        yield from _walk(arg)
    elif os.path.lexists(arg) or not glob.has_magic(arg):
        yield arg
    else:
        matches = sorted(glob.glob(os.path.expanduser(arg), recursive=True))
        if not matches:
            yield arg  # reported as missing
        for m in matches:
            if os.path.isdir(m):
                yield from _walk(m)
            elif is_media_file(m):
                yield m


def _walk(folder: str) -> Iterator[str]:
    """Media files under ``folder``, sorted; a folder that cannot be read is yielded itself, so
    that it is reported (permission denied) rather than silently skipped."""
    unreadable: list[str] = []
    if not os.access(folder, os.R_OK | os.X_OK):
        yield folder
        return
    for root, dirs, files in os.walk(folder, onerror=lambda e: unreadable.append(e.filename)):
        while unreadable:
            yield unreadable.pop(0)
        for d in list(dirs):
            sub = os.path.join(root, d)
            if not d.startswith(".") and not os.access(sub, os.R_OK | os.X_OK):
                dirs.remove(d)
                yield sub
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            p = os.path.join(root, name)
            if os.path.isfile(p) and is_media_file(p):
                yield p
