"""Media files: which ones the user meant, and what each one is, without decoding it.

``expand_inputs`` turns arguments (files, folders, globs, ``-`` for stdin) into a list of paths.
``probe`` reads the container in-process with PyAV (:mod:`vlcli.media.container`, no subprocess) and
reports what ``vlcli probe`` shows and what the plan needs. For videos it also reads every packet
of the video stream, because the reference decoder (torchcodec in exact seek mode, which
qwen-vl-utils uses) counts frames the same way: ``num_frames`` is the number of packets,
``average_fps`` is that count divided by ``max(pts + duration) - min(pts)``. Reproducing its
arithmetic here means the frame indices that ``vlcli budget`` plans are the ones the reference
decodes, without importing torch. The display rotation is read from the first decoded frame
(PyAV shows the display matrix nowhere else).

Images are measured with PIL, as the reference reads them (no EXIF transpose).

Decoding lives in :mod:`vlcli.media.frames` (it imports torch only when called).
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from vlcli.errors import InputError
from vlcli.media.container import open_input, rotation_only, scan, stream_facts, video_stream
from vlcli.planning.plan import VideoFacts

if TYPE_CHECKING:
    from vlcli.media.container import PacketTimes

__all__ = [
    "MediaInfo",
    "expand_inputs",
    "is_media_file",
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
        """What :func:`vlcli.planning.plan.plan_video` needs to know of this video."""
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
    return _probe_video(path, count_frames, magic)


# ---------------------------------------------------------------- images (PIL)


def _probe_image(path: str) -> MediaInfo | None:
    """An image as the reference sees it; ``None`` for an animated GIF (decoded as a video)."""
    # Here, not at the top: probing only videos never loads PIL.
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


# ---------------------------------------------------------------- videos (PyAV)


def _probe_video(path: str, count_frames: bool, magic: str | None) -> MediaInfo:
    with open_input(path, magic) as container:
        stream = video_stream(container, path)
        facts = stream_facts(container, stream, path)
        if facts.image_format and magic != "video":
            info = _probe_image(path)  # an image only FFmpeg recognised: the reference uses PIL
            if info is not None:
                return info
        if facts.coded_width <= 0 or facts.coded_height <= 0:
            raise InputError("truncated or corrupt: the video stream has no frame size", path)
        if count_frames:
            packet_times, rotation = scan(container, stream, path)
            if facts.exact_header_frames and packet_times.read < (facts.header_frames or 0):
                raise InputError(
                    f"truncated or corrupt: its index lists {facts.header_frames} frames, "
                    f"{packet_times.read} are in the file",
                    path,
                )
            counts = _counts(packet_times, facts.time_base, facts.header_fps)
        else:
            rotation = rotation_only(container, stream, path)
            nb = facts.header_frames
            if nb is None and facts.header_fps and facts.header_duration_s:
                nb = int(facts.header_fps * facts.header_duration_s)
            counts = (nb, facts.header_fps, facts.header_duration_s, None)
    frames, fps, duration, times = counts
    if not fps or not frames:
        raise InputError("truncated or corrupt: no frame count or frame rate in it", path)
    width, height = facts.coded_width, facts.coded_height
    if round(rotation / 90) % 2:  # +-90 (or 270): the decoder returns the frames turned
        width, height = height, width
    return MediaInfo(
        path=path,
        kind="video",
        container=facts.container,
        codec=facts.codec,
        width=width,
        height=height,
        rotation=rotation,
        duration_s=duration,
        fps=fps,
        frames=frames,
        frames_counted=count_frames,
        pixel_format=facts.pixel_format,
        audio=facts.audio,
        frame_times_s=times,
    )


_Counts = tuple[int | None, float | None, float | None, tuple[float, ...] | None]


def _counts(times: PacketTimes, time_base: tuple[int, int], header_fps: float | None) -> _Counts:
    """Frame count, average fps, duration and frame times, as torchcodec's exact mode has them:
    seconds are ``double(pts) * num / den``, the average fps is ``frames / (end - begin)``."""
    num, den = time_base
    duration = float(times.end) * num / den - float(times.begin) * num / den
    fps = len(times.pts) / duration if duration != 0.0 else header_fps
    ordered = sorted(times.pts)
    seconds = tuple(float(t - ordered[0]) * num / den for t in ordered)
    return len(times.pts), fps, duration, seconds


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
        key = os.path.abspath(p)  # as records' keys see a file: a.mp4 and ./a.mp4 are one
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
