"""Reading a video's container in-process with PyAV (FFmpeg's libraries, bundled in its wheel):
which stream the decoder takes, its header facts, and a scan of its packets.

The scan follows torchcodec's exact seek mode, which qwen-vl-utils uses: every packet of the
stream is read (``av_read_frame``), those flagged discard are left out, and each keeps ``pts``
(``dts`` where there is none) and ``duration`` in the stream's time base. So ``frames`` is the
number of packets and ``fps`` is that count over ``max(pts + duration) - min(pts)``, with the
same float arithmetic, and the frame indices a plan makes here are the ones the reference
decodes. Nothing here imports torch; PyAV is imported by the functions that use it, so that
probing or budgeting only images never loads it (``vlcli probe`` and ``vlcli budget`` import
this module through :mod:`vlcli.media.probe`).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from vlcli.errors import InputError

if TYPE_CHECKING:
    import av.container
    import av.stream


@dataclass(frozen=True)
class StreamFacts:
    """What the container's header says of the video stream the decoder takes."""

    container: str | None
    codec: str | None
    coded_width: int
    coded_height: int
    pixel_format: str | None
    time_base: tuple[int, int]
    header_fps: float | None  # r_frame_rate, torchcodec's header fps
    header_frames: int | None
    header_duration_s: float | None
    audio: bool
    image_format: bool  # FFmpeg read it as a still image (image2 or an image pipe)
    exact_header_frames: bool  # MP4/MOV: the header's count is the sample table's, exactly


@dataclass(frozen=True)
class PacketTimes:
    """The stream's packets as torchcodec's exact mode counts them (discarded ones left out)."""

    pts: tuple[int, ...]  # in packet order (pts, or dts where a packet has no pts)
    begin: int  # min(pts)
    end: int  # max(pts + duration)
    read: int  # packets read, the discarded ones included


def open_input(path: str, magic: str | None) -> av.container.InputContainer:
    """The file opened for reading; what FFmpeg cannot open is an :class:`InputError`."""
    import av

    try:
        # "file:" keeps a name like "a:b.mp4" from being read as a protocol.
        return av.open("file:" + os.path.abspath(path), "r", metadata_errors="replace")
    except av.error.FFmpegError as exc:
        reason = exc.strerror or type(exc).__name__
        if magic in ("video", "image"):
            raise InputError(f"truncated or corrupt ({reason})", path) from None
        if magic == "audio":
            raise InputError("audio only: no video stream", path) from None
        raise InputError("not media: FFmpeg cannot read it as a video or image", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable: {exc}", path) from None


def video_stream(container: av.container.InputContainer, path: str) -> av.stream.Stream:
    """FFmpeg's "best" video stream in practice: the first that is not cover art."""
    import av

    attached = av.stream.Disposition.attached_pic
    for stream in container.streams.video:
        if not stream.disposition & attached:
            return stream
    audio = bool(container.streams.audio)
    raise InputError("audio only: no video stream" if audio else "not media: no video in it", path)


def stream_facts(container: av.container.InputContainer, stream: Any, path: str) -> StreamFacts:
    """The header facts of ``stream`` (no packet read)."""
    cc = stream.codec_context
    tb = stream.time_base
    if tb is None or tb.numerator <= 0 or tb.denominator <= 0:
        raise InputError("truncated or corrupt: the video stream has no time base", path)
    rate = stream.base_rate
    header_fps = float(rate) if rate and rate > 0 else None
    duration = float(stream.duration * tb) if stream.duration else None
    if duration is None and container.duration:
        duration = container.duration / 1_000_000
    format_name = container.format.name
    return StreamFacts(
        container=_container_name(format_name, path),
        codec=cc.codec.canonical_name if cc is not None else None,
        coded_width=int(cc.width or 0),
        coded_height=int(cc.height or 0),
        pixel_format=cc.pix_fmt if cc is not None else None,
        time_base=(tb.numerator, tb.denominator),
        header_fps=header_fps,
        header_frames=int(stream.frames) if stream.frames else None,
        header_duration_s=duration,
        audio=bool(container.streams.audio),
        image_format=format_name.endswith("_pipe") or format_name == "image2",
        exact_header_frames=format_name.startswith("mov,"),
    )


def _container_name(format_name: str | None, path: str) -> str | None:
    if not format_name:
        return None
    names = format_name.split(",")
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return ext if ext in names else names[0]


def packets(container: av.container.InputContainer, stream: Any, path: str) -> Iterator[Any]:
    """Every packet of ``stream`` in file order (the empty end-of-stream ones left out); a read
    error is an :class:`InputError` naming the file as truncated or corrupt."""
    import av

    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            reason = exc.strerror or type(exc).__name__
            raise InputError(f"truncated or corrupt ({reason})", path) from None
        if packet.size or packet.dts is not None:
            yield packet


def scan(
    container: av.container.InputContainer, stream: Any, path: str, with_rotation: bool = True
) -> tuple[PacketTimes, int]:
    """The packet scan of torchcodec's exact mode (see the module's docstring), and the display
    matrix's rotation in degrees (what torchcodec applies; 0 if none, or if not asked for).

    PyAV shows the display matrix only on decoded frames, so with ``with_rotation`` the first packets
    are also decoded until a frame comes out (a stream whose start cannot be decoded counts as
    unrotated here; decoding it later reports the error).
    """
    pts: list[int] = []
    begin = end = rotation = 0
    decoder = _FirstFrame(stream) if with_rotation else None
    read = 0
    for packet in packets(container, stream, path):
        read += 1
        if decoder is not None and decoder.feed(packet):
            rotation, decoder = decoder.rotation, None
        if packet.is_discard:
            continue
        t = packet.pts if packet.pts is not None else packet.dts
        if t is None:
            raise InputError(
                "its video packets carry no timestamps (a raw stream?): remux it into a "
                "container, e.g. 'ffmpeg -i IN -c copy OUT.mp4'",
                path,
            )
        d = packet.duration or 0
        begin, end = (min(begin, t), max(end, t + d)) if pts else (t, t + d)
        pts.append(t)
    if decoder is not None:
        decoder.feed(None)
        rotation = decoder.rotation
    if not pts:
        raise InputError("truncated or corrupt: no video frames in it", path)
    return PacketTimes(tuple(pts), begin, end, read), int(rotation)


def rotation_only(container: av.container.InputContainer, stream: Any, path: str) -> int:
    """The display matrix's rotation alone, from the first decoded frame (see :func:`scan`)."""
    decoder = _FirstFrame(stream)
    for packet in packets(container, stream, path):
        if decoder.feed(packet):
            return decoder.rotation
    decoder.feed(None)
    return decoder.rotation


class _FirstFrame:
    """Decodes a stream's first packets until one frame comes out, for its display matrix."""

    MAX_PACKETS = 32

    def __init__(self, stream: Any):
        self.decoder = stream.codec_context
        self.decoder.thread_count = 1
        self.sent = 0
        self.rotation = 0

    def feed(self, packet: Any) -> bool:
        """True once done (a frame seen, the limit reached, or the end of the stream)."""
        import av

        frames: list[Any] = []
        try:
            if packet is not None:
                self.sent += 1
                frames = self.decoder.decode(packet)
                if not frames and self.sent < self.MAX_PACKETS:
                    return False
            if not frames:
                frames = self.decoder.decode(None)
        except (av.error.FFmpegError, ValueError):
            return True
        if frames:
            self.rotation = int(frames[0].rotation or 0)
        return True


@dataclass(frozen=True)
class FrameTable:
    """Where each frame of a video starts, in source seconds, for cutting it (``vlcli cut``).

    ``starts`` are the frames' presentation times in order, as exact fractions, counted like
    FFmpeg's ``-ss`` (from the container's start time); ``keyframes`` the starts a decoder can
    begin at; ``end_s`` where the last frame ends.
    """

    starts: tuple[Fraction, ...]
    keyframes: tuple[Fraction, ...]
    end_s: Fraction
    audio: bool

    def frame_at(self, seconds: float) -> int:
        """The index of the frame shown at ``seconds`` (the first frame before the start).

        ``seconds`` is taken as the decimal it prints as, the rule of every time vlcli writes
        (:mod:`vlcli.times.format`): 5.005 s is the start of frame 150 at 30000/1001 fps,
        although the binary float 5.005 lies a hair before it, in frame 149.
        """
        at = Fraction(repr(float(seconds)))
        return max(bisect.bisect_right(self.starts, at) - 1, 0)

    def frame_end(self, index: int) -> Fraction:
        """Where frame ``index`` stops being shown."""
        return self.starts[index + 1] if index + 1 < len(self.starts) else self.end_s

    def keyframe_at(self, seconds: Fraction) -> Fraction:
        """The last keyframe at or before ``seconds`` (the first one if none is)."""
        at = bisect.bisect_right(self.keyframes, seconds) - 1
        return self.keyframes[max(at, 0)]


def frame_table(path: str) -> FrameTable:
    """The :class:`FrameTable` of the video stream the decoder takes, from its packets."""
    with open_input(path, "video") as container:
        stream = video_stream(container, path)
        tb = Fraction(stream.time_base or 0)
        origin = Fraction(container.start_time or 0, 1_000_000)
        starts: list[Fraction] = []
        keys: list[Fraction] = []
        end = Fraction(0)
        for packet in packets(container, stream, path):
            t = packet.pts if packet.pts is not None else packet.dts
            if packet.is_discard or t is None:
                continue
            start = t * tb - origin
            starts.append(start)
            if packet.is_keyframe:
                keys.append(start)
            end = max(end, start + (packet.duration or 0) * tb)
        audio = bool(container.streams.audio)
    if not starts:
        raise InputError("truncated or corrupt: no video frames in it", path)
    return FrameTable(tuple(sorted(starts)), tuple(sorted(keys)) or (min(starts),), end, audio)
