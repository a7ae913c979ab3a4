"""Which packets the planned frames need, and how a video splits into pieces decoded apart.

Pure bookkeeping over the packet table (no decoding, no torch), so that it can be tested case by
case. The decoder (:mod:`vlcli.media.decode`) sends each piece's packets to a fresh decoder:

* a piece (:class:`Segment`) starts at the first packet or at a packet from which decoding gives
  every later frame exactly (an IDR picture, a VP9/AV1 key frame; see :mod:`vlcli.media.bitstream`),
  and where packets carry their own parameter sets, one that carries them too;
* it ends at the last packet whose frame is planned: what follows is not needed for any planned
  frame of the piece, and the next piece starts afresh;
* inside it, a packet that is never a reference and whose frame is not planned is not sent.

A frame is named by its presentation timestamp: the plan's frame index ``i`` is the ``i``-th
smallest ``pts`` of the packets not flagged discard, as in torchcodec's exact mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CodedPacket:
    """One packet of the video stream, in file (decoding) order."""

    pts: int  # pts, or dts where there is none
    dts: int  # dts, or pts where there is none
    pos: int  # byte offset in the file, -1 if unknown
    size: int
    discard: bool  # decoded, but its frame is not shown (edit lists)
    reference: bool  # a later picture may predict from it
    start: bool  # a piece may start here


@dataclass(frozen=True)
class Segment:
    """Packets ``first`` to ``last`` (file order) less ``skip``, decoded by one fresh decoder,
    give the frames ``frames`` (pts, ascending), which is all this piece must deliver."""

    first: int
    last: int
    skip: frozenset[int]
    frames: tuple[int, ...]

    @property
    def sent(self) -> int:
        return self.last - self.first + 1 - len(self.skip)


def frame_pts(packets: Sequence[CodedPacket]) -> list[int]:
    """Every shown frame's pts in display order: the frame index is the position here."""
    return sorted(p.pts for p in packets if not p.discard)


def plan_segments(packets: Sequence[CodedPacket], wanted: set[int]) -> list[Segment]:
    """The pieces that deliver the frames with the ``wanted`` pts, in file order."""
    starts = [0] + [i for i, p in enumerate(packets) if p.start and i]
    ends = starts[1:] + [len(packets)]
    segments: list[Segment] = []
    for first, stop in zip(starts, ends, strict=True):
        mine = [
            i for i in range(first, stop) if packets[i].pts in wanted and not packets[i].discard
        ]
        if not mine:
            continue
        last = mine[-1]
        skip = frozenset(
            i
            for i in range(first, last + 1)
            if not packets[i].reference and (packets[i].discard or packets[i].pts not in wanted)
        )
        frames = tuple(sorted(packets[i].pts for i in mine))
        segments.append(Segment(first, last, skip, frames))
    return segments


def assign(segments: Sequence[Segment], workers: int) -> list[list[int]]:
    """Segment numbers for each worker, round robin: worker ``k`` takes ``k``, ``k + workers``...

    The frames are used in order, so round robin keeps every worker on the earliest pieces not
    yet decoded; a worker's frames reach the consumer in the order the worker makes them.
    """
    return [list(range(k, len(segments), workers)) for k in range(workers)]
