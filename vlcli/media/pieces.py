"""One process's decoding (this one's, or a forked worker's): pieces of a video decoded afresh,
each planned frame converted to torchcodec's RGB, turned and resized.

:mod:`vlcli.media.decode` plans the work (the packet table, the pieces, the output size) and
:mod:`vlcli.media.workers` shares it among forked processes; both rest on what is here: the
packet reader, the decoding of a list of pieces, the finishing of a frame, and the CPU count.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import av
import torch

from vlcli.media.container import packets
from vlcli.media.resample import kernel_for, torch_resize
from vlcli.media.rgb import converter
from vlcli.media.segments import CodedPacket, Segment

SEEK_GAP = 64  # packets: a piece further ahead than this is reached by seeking, not reading


class FastPathUnavailable(Exception):
    """This video (or this machine) is decoded the ordinary way, with torchcodec."""


class SegmentError(Exception):
    """Decoding a piece went otherwise than the packet table said (the caller falls back)."""


@dataclass(frozen=True)
class Table:
    """The video stream's packets and what decoding needs from its header."""

    codec: str
    packets: tuple[CodedPacket, ...]
    stream_index: int
    coded_width: int
    coded_height: int


@dataclass(frozen=True)
class Output:
    """What each planned frame becomes: turned by ``rotation`` degrees, resized to ``size``."""

    rotation: int
    size: tuple[int, int]  # height, width
    source: tuple[int, int]  # height, width after turning (the plan's source size)


def turned(rgb: torch.Tensor, rotation: int) -> torch.Tensor:
    """An HWC frame turned as torchcodec turns it (``rot90`` by the display rotation, the result
    laid out HWC-contiguous), returned as a CHW view, which is what the resize sees."""
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
        if self._plane is None:
            self._plane = torch.empty(self.output.source, dtype=torch.float32)
        for c in range(3):
            self._plane.copy_(chw[c])
            resized = torch_resize(self._plane, self.output.size)
            self._frame[c].copy_(resized.clamp_(0, 255).round_())
        return self._frame


class Reader:
    """One process's view of the file: packets from any packet number of the table on, and the
    stream's own decoder (set up from the container's parameters, as torchcodec's is)."""

    def __init__(self, path: str, table: Table, threads: int = 1):
        self.path = path
        self.table = table
        self.threads = threads
        self._open()

    def _open(self) -> None:
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
    reader: Reader, segments: Sequence[Segment], output: Output
) -> Iterator[tuple[int, torch.Tensor]]:
    """Decode each segment afresh and yield ``(pts, frame)`` for its planned frames in order
    (turned and resized, see :class:`Finisher`); each frame is valid until the next is asked for."""

    rgb = converter()
    if rgb is None:
        raise FastPathUnavailable("torchcodec's libswscale not found")
    rotated = bool(round(output.rotation / 90) % 4)
    finisher = Finisher(output)
    for seg in segments:
        wanted = iter(seg.frames)
        expected: int | None = next(wanted)
        for frame in decoded(reader, seg):
            if frame.pts != expected:
                continue
            image = rgb.convert(frame, rotated)
            yield frame.pts, finisher(image)
            expected = next(wanted, None)
        if expected is not None:
            raise SegmentError(f"the decoder did not give the frame at pts {expected}")


def decoded(reader: Reader, seg: Segment) -> Iterator[Any]:
    """Every frame a fresh decoder gives for the segment's packets (the skipped ones left out),
    in the decoder's order; the decoder is drained and reset at the end."""
    decoder: Any = reader.decoder
    try:
        for index, packet in reader.packets(seg.first, seg.last):
            if index not in seg.skip:
                yield from decoder.decode(packet)
        yield from decoder.decode(None)
        decoder.flush_buffers()
    except av.error.FFmpegError as exc:
        raise SegmentError(f"the decoder failed ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class Job:
    """Everything decoding one video's planned frames needs, decided before any decoding."""

    path: str
    table: Table
    segments: tuple[Segment, ...]
    output: Output
    order: tuple[int, ...]  # the distinct planned pts, in plan order


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
