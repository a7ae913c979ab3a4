"""Decoding only what the plan needs, in parallel, with the same pixels as torchcodec.

:func:`planned_frames` yields the plan's distinct frames, decoded, turned upright and resized to
the plan's frame size, in order. It

1. reads the packet table once (PyAV, no decoding; :mod:`vlcli.media.bitstream` tells reference
   pictures and clean starting points from the packets' first bytes);
2. splits the planned frames into pieces (:mod:`vlcli.media.segments`): each starts at an IDR picture
   or key frame, ends at its last planned frame, and leaves out the non-reference pictures no
   planned frame is;
3. decodes the pieces with PyAV, each with a fresh decoder, in ``workers`` forked processes
   (round robin) or in this one; each decoded planned frame is converted to RGB by torchcodec's
   own libswscale with torchcodec's settings (:mod:`vlcli.media.rgb`), turned as torchcodec turns it,
   and resized as the reference resizes it (torchvision, bicubic, antialiased, on the uint8
   frame), and handed over through shared memory.

Every step changes which frames are decoded, never how: a decoder started at an IDR picture or
key frame gives every later frame exactly, a picture no other one predicts from can be left out,
and frames after the last planned one are never needed. The tests compare every frame with
torchcodec's on H.264 (B-pyramid, open GOP), HEVC, VP9 (hidden alt-ref frames), AV1, variable
frame rate, rotation, a non-zero start and an edit-list cut. :func:`conversion_matches` also
checks, once per kind of frame in each process, that the first frame equals torchcodec's, so a
different FFmpeg or torchcodec than the tested ones falls back to torchcodec rather than give
other pixels.

The forked workers are in :mod:`vlcli.media.workers`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlcli.errors import InputError, UsageError
from vlcli.media.bitstream import CODECS, packet_facts, syntax_for
from vlcli.media.segments import CodedPacket, Segment, frame_pts, plan_segments

if TYPE_CHECKING:
    import torch

    from vlcli.planning.plan import VideoPlan

WORKERS_ENV = "VLCLI_DECODE_WORKERS"
SEEK_GAP = 64  # packets: a piece further ahead than this is reached by seeking, not reading
# Forking costs tens of milliseconds (more in a process holding a model): below this much work
# (packets sent times coded pixels, about 50 frames of 1080p) one process decodes, with FFmpeg's
# own threads.
MIN_FORK_WORK = 100_000_000


class FastPathUnavailable(Exception):
    """This video (or this machine) is decoded the ordinary way, with torchcodec."""


class SegmentError(Exception):
    """Decoding a piece went otherwise than the packet table said (the caller falls back)."""


def default_workers() -> int:
    """``$VLCLI_DECODE_WORKERS`` if set, else the CPUs this process may run on."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise UsageError(f"${WORKERS_ENV} must be a whole number, got {value!r}") from None
    return _cpus()


# ---------------------------------------------------------------- the packet table


@dataclass(frozen=True)
class Table:
    """The video stream's packets and what decoding needs from its header."""

    codec: str
    packets: tuple[CodedPacket, ...]
    stream_index: int
    coded_width: int
    coded_height: int


def read_table(path: str) -> Table:
    """Every packet of the video stream with its bitstream facts; raises FastPathUnavailable
    for a codec or stream this module does not handle."""
    from vlcli.media.container import open_input, packets, stream_facts, video_stream

    with open_input(path, "video") as container:
        stream = video_stream(container, path)
        facts = stream_facts(container, stream, path)
        codec = facts.codec or ""
        if codec not in CODECS:
            raise FastPathUnavailable(f"codec {codec}")
        syntax = syntax_for(codec, stream.codec_context.extradata)
        rows: list[tuple[int, int, int, int, bool, Any]] = []
        for packet in packets(container, stream, path):
            pts = packet.pts if packet.pts is not None else packet.dts
            dts = packet.dts if packet.dts is not None else pts
            if pts is None:
                raise FastPathUnavailable("packets without timestamps")
            pf = packet_facts(syntax, memoryview(packet))
            if not pf.supported:
                raise FastPathUnavailable(f"unusual {codec} packets")
            pos = packet.pos if packet.pos is not None else -1
            rows.append((pts, dts, pos, packet.size, bool(packet.is_discard), pf))
        index = stream.index
    if not rows:
        raise FastPathUnavailable("no packets")
    in_band = any(r[5].parameter_sets for r in rows)
    top_layer = max(r[5].temporal_id for r in rows)
    table = tuple(
        CodedPacket(
            pts=pts,
            dts=dts,
            pos=pos,
            size=size,
            discard=discard,
            reference=pf.reference and not (pf.sublayer_nonref and pf.temporal_id == top_layer),
            start=pf.random_access and (pf.parameter_sets or not in_band),
        )
        for pts, dts, pos, size, discard, pf in rows
    )
    return Table(codec, table, index, facts.coded_width, facts.coded_height)


# ---------------------------------------------------------------- one process's decoding


@dataclass(frozen=True)
class Output:
    """What each planned frame becomes: turned by ``rotation`` degrees, resized to ``size``."""

    rotation: int
    size: tuple[int, int]  # height, width
    source: tuple[int, int]  # height, width after turning (the plan's source size)


def turned(rgb: torch.Tensor, rotation: int) -> torch.Tensor:
    """An HWC frame turned as torchcodec turns it (``rot90`` by the display rotation, the result
    laid out HWC-contiguous), returned as a CHW view, which is what the resize sees."""
    import torch

    k = round(rotation / 90) % 4
    if k:
        rgb = torch.rot90(rgb, k, dims=(0, 1)).contiguous()
    return rgb.permute(2, 0, 1)


class Finisher:
    """Turns and resizes planned frames as the reference does, in buffers kept from frame to frame.

    The reference resizes each uint8 frame with torchvision (bicubic, antialiased): a float32
    copy of the whole frame, ``interpolate``, clamp, round, uint8. Where the compiled kernel is
    exact for this geometry (:mod:`vlcli.media.resample`: same floats as torch's, checked on this
    machine's torch) it does all of that in one call, in a quarter to a third of the time.
    Otherwise the same torch operations run here on one colour plane at a time, in fixed buffers
    (torchvision's whole-frame temporaries cost a decoding worker 114 MB more resident after 120
    1080p frames, measured). Either way every value is computed exactly as in the reference; the
    tests compare the bytes with torchvision's.
    """

    def __init__(self, output: Output):
        import torch

        from vlcli.media.resample import kernel_for

        self.output = output
        self._frame = torch.empty((3, *output.size), dtype=torch.uint8)
        self.kernel = kernel_for(output.source, output.size)
        self._plane: torch.Tensor | None = None  # the torch path's float copy, made when needed

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """``rgb`` (HWC uint8, as converted) as the planned CHW uint8 frame: a view of a buffer
        that the next call overwrites."""
        chw = turned(rgb, self.output.rotation)
        if tuple(chw.shape[1:]) != self.output.source:
            raise SegmentError(
                f"a frame of {tuple(chw.shape[1:])}, the plan expects {self.output.source}"
            )
        if self.output.size == self.output.source:
            return self._frame.copy_(chw)
        if self.kernel is not None:
            self.kernel.run(chw, self._frame)
            return self._frame
        return self._torch_resize(chw)

    def _torch_resize(self, chw: torch.Tensor) -> torch.Tensor:
        import torch

        from vlcli.media.resample import torch_resize

        if self._plane is None:
            self._plane = torch.empty(self.output.source, dtype=torch.float32)
        for c in range(3):
            self._plane.copy_(chw[c])
            resized = torch_resize(self._plane, self.output.size)
            self._frame[c].copy_(resized.clamp_(0, 255).round_())
        return self._frame


class _Reader:
    """One process's view of the file: packets from any packet number of the table on, and the
    stream's own decoder (set up from the container's parameters, as torchcodec's is)."""

    def __init__(self, path: str, table: Table, threads: int = 1):
        self.path = path
        self.table = table
        self.threads = threads
        self._open()

    def _open(self) -> None:
        import av

        from vlcli.media.container import packets

        self.container = av.open(
            "file:" + os.path.abspath(self.path), "r", metadata_errors="replace"
        )
        self.stream = self.container.streams[self.table.stream_index]
        self.decoder = self.stream.codec_context
        self.decoder.thread_count = self.threads
        self.decoder.thread_type = "AUTO" if self.threads != 1 else "SLICE"
        self.iterator: Iterator[Any] = packets(self.container, self.stream, self.path)
        self.next_index = 0  # the number of the packet the iterator gives next; -1: unknown

    def close(self) -> None:
        self.container.close()

    def _matches(self, packet: Any, index: int) -> bool:
        row = self.table.packets[index]
        pts = packet.pts if packet.pts is not None else packet.dts
        pos = packet.pos if packet.pos is not None else -1
        return (pts, pos, packet.size) == (row.pts, row.pos, row.size)

    def packets(self, first: int, last: int) -> Iterator[tuple[int, Any]]:
        """Packets ``first`` to ``last`` with their numbers, each checked against the table."""
        if first < self.next_index or first - self.next_index > SEEK_GAP:
            self._seek(first)
        while self.next_index <= last:
            packet = next(self.iterator, None)
            if packet is None:
                raise SegmentError("the file ended before the packet table did")
            index = self.next_index
            self.next_index += 1
            if index < first:
                continue
            if not self._matches(packet, index):
                raise SegmentError(f"packet {index} is not the one the table lists")
            yield index, packet

    def _seek(self, first: int) -> None:
        """Position the iterator on packet ``first``: seek to the key frame at or before it and
        read on; if the seek went past it, read from the beginning."""
        from vlcli.media.container import packets

        row = self.table.packets[first]
        self.container.seek(row.dts, stream=self.stream, backward=True, any_frame=False)
        iterator = packets(self.container, self.stream, self.path)
        for packet in iterator:
            if self._matches(packet, first):
                self.iterator = _chain(packet, iterator)
                self.next_index = first
                return
            pos = packet.pos if packet.pos is not None else -1
            if row.pos >= 0 and pos > row.pos:
                break
        self.container.close()
        self._open()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def decode_segments(
    reader: _Reader, segments: Sequence[Segment], output: Output
) -> Iterator[tuple[int, torch.Tensor]]:
    """Decode each segment afresh and yield ``(pts, frame)`` for its planned frames in order
    (turned and resized, see :class:`Finisher`); each frame is valid until the next is asked for."""

    from vlcli.media.rgb import converter

    rgb = converter()
    if rgb is None:
        raise FastPathUnavailable("torchcodec's libswscale not found")
    rotated = bool(round(output.rotation / 90) % 4)
    finisher = Finisher(output)
    for seg in segments:
        wanted = iter(seg.frames)
        expected: int | None = next(wanted)
        for frame in _decoded(reader, seg):
            if frame.pts != expected:
                continue
            image = rgb.convert(frame, rotated)
            yield frame.pts, finisher(image)
            expected = next(wanted, None)
        if expected is not None:
            raise SegmentError(f"the decoder did not give the frame at pts {expected}")


def _decoded(reader: _Reader, seg: Segment) -> Iterator[Any]:
    """Every frame a fresh decoder gives for the segment's packets (the skipped ones left out),
    in the decoder's order; the decoder is drained and reset at the end."""
    import av

    decoder: Any = reader.decoder
    try:
        for index, packet in reader.packets(seg.first, seg.last):
            if index not in seg.skip:
                yield from decoder.decode(packet)
        yield from decoder.decode(None)
        decoder.flush_buffers()
    except av.error.FFmpegError as exc:
        raise SegmentError(f"the decoder failed ({exc.strerror or exc})") from None


# ---------------------------------------------------------------- the plan's frames


@dataclass(frozen=True)
class Job:
    """Everything decoding one video's planned frames needs, decided before any decoding."""

    path: str
    table: Table
    segments: tuple[Segment, ...]
    output: Output
    order: tuple[int, ...]  # the distinct planned pts, in plan order


def prepare(path: str, plan: VideoPlan) -> Job:
    """The packet table and pieces for ``plan``; raises FastPathUnavailable where this module
    does not decode the video, InputError where the file no longer matches the plan."""
    table = read_table(path)
    shown = frame_pts(table.packets)
    if len(shown) != plan.source_frames:
        raise InputError(
            f"changed since it was probed: {len(shown)} frames now, the plan was made for "
            f"{plan.source_frames}",
            path,
        )
    if len(set(shown)) != len(shown):
        raise FastPathUnavailable("frames share timestamps")
    order = tuple(dict.fromkeys(shown[i] for i in plan.frame_indices))
    if list(order) != sorted(order):
        raise FastPathUnavailable("planned frames out of order")
    rotation = first_frame_rotation(path, table)
    turned_size = (table.coded_height, table.coded_width)
    if round(rotation / 90) % 2:
        turned_size = turned_size[::-1]
    source = (plan.source_height, plan.source_width)
    if turned_size != source:
        raise InputError(
            f"changed since it was probed: {turned_size[1]}x{turned_size[0]} now, the plan was "
            f"made for {source[1]}x{source[0]}",
            path,
        )
    output = Output(rotation, (plan.frame_height, plan.frame_width), source)
    segments = tuple(plan_segments(table.packets, set(order)))
    return Job(path, table, segments, output, order)


def first_frame_rotation(path: str, table: Table) -> int:
    """The display rotation, from the stream's first shown frame (PyAV shows it nowhere else).

    The same frame also checks, once per kind of frame in this process, that this module turns
    it into the same RGB bytes as torchcodec (see :func:`conversion_matches`)."""
    from vlcli.media.rgb import converter

    rgb = converter()
    if rgb is None:
        raise FastPathUnavailable("torchcodec's libswscale not found")
    first = frame_pts(table.packets)[0]
    reader = _Reader(path, table)
    try:
        frame = next((f for f in _decoded(reader, _whole(table)) if f.pts == first), None)
        if frame is None:
            raise FastPathUnavailable("the first frame did not decode")
        rotation = int(frame.rotation or 0)
        kind = (table.codec, frame.format.name, int(frame.colorspace), int(frame.color_range),
                frame.width, frame.height, rotation)  # fmt: skip
        if kind not in _CHECKED:
            verdict = conversion_matches(path, frame, rotation)
            if verdict is None:
                raise FastPathUnavailable("torchcodec could not show its first frame")
            _CHECKED[kind] = verdict
        if not _CHECKED[kind]:
            raise FastPathUnavailable(f"frames of kind {kind} convert otherwise than torchcodec")
    finally:
        reader.close()
    return rotation


_CHECKED: dict[tuple[object, ...], bool] = {}


def _whole(table: Table) -> Segment:
    """All packets, sent as they are (to find the first shown frame)."""
    return Segment(0, len(table.packets) - 1, frozenset(), ())


def conversion_matches(path: str, frame: Any, rotation: int) -> bool | None:
    """Whether this module's RGB of ``frame`` (a PyAV frame of ``path``) equals torchcodec's, byte
    for byte; ``None`` where torchcodec cannot show the same frame to compare with."""
    import torch

    from vlcli.media.frames import decoder_source, video_decoder_class
    from vlcli.media.rgb import converter

    VideoDecoder = video_decoder_class()  # noqa: N806

    rgb = converter()
    assert rgb is not None
    ours = turned(rgb.convert(frame, bool(round(rotation / 90) % 4)), rotation)
    seconds = float(frame.pts * frame.time_base)
    try:
        decoder = VideoDecoder(decoder_source(path), seek_mode="approximate", num_ffmpeg_threads=1)
        theirs = decoder.get_frames_played_at(seconds=[seconds])
    except (RuntimeError, ValueError, IndexError, OSError):
        return None
    if abs(float(theirs.pts_seconds[0]) - seconds) > 1e-6:
        return None
    return ours.shape == theirs.data[0].shape and torch.equal(ours, theirs.data[0])


def planned_frames(job: Job, workers: int) -> Iterator[torch.Tensor]:
    """The job's distinct planned frames in order, each valid until the next is asked for.

    ``workers`` is how many CPUs decoding may use: ``min(workers, pieces)`` forked processes
    decode the pieces, each with ``workers // processes`` FFmpeg threads, while this process
    goes on with what the caller does with the frames (even one worker overlaps decoding with
    that). Little work (under ``MIN_FORK_WORK``), or a single CPU, is decoded in this process.
    """
    used = max(1, min(workers, len(job.segments)))
    threads = max(1, workers // used)
    work = sum(s.sent for s in job.segments) * job.table.coded_width * job.table.coded_height
    if work < MIN_FORK_WORK or (used == 1 and _cpus() == 1):
        reader = _Reader(job.path, job.table, threads)
        try:
            for _, frame in decode_segments(reader, job.segments, job.output):
                yield frame
        finally:
            reader.close()
        return
    from vlcli.media.workers import Pool

    yield from Pool(job, used, threads).frames()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
