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

One process's decoding of the pieces (the packet reader, the decoder, the finishing of each
frame) is in :mod:`vlcli.media.pieces`; the forked workers are in :mod:`vlcli.media.workers`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from vlcli.errors import InputError, UsageError
from vlcli.media.bitstream import CODECS, packet_facts, syntax_for
from vlcli.media.container import open_input, packets, stream_facts, video_stream
from vlcli.media.pieces import (
    FastPathUnavailable,
    Job,
    Output,
    Reader,
    Table,
    cpus,
    decode_segments,
    decoded,
    turned,
)
from vlcli.media.rgb import converter, decoder_source, video_decoder_class
from vlcli.media.segments import CodedPacket, Segment, frame_pts, plan_segments
from vlcli.media.workers import Pool

if TYPE_CHECKING:
    from vlcli.planning.plan import VideoPlan

WORKERS_ENV = "VLCLI_DECODE_WORKERS"
# Forking costs tens of milliseconds (more in a process holding a model): below this much work
# (packets sent times coded pixels, about 50 frames of 1080p) one process decodes, with FFmpeg's
# own threads.
MIN_FORK_WORK = 100_000_000


def default_workers() -> int:
    """``$VLCLI_DECODE_WORKERS`` if set, else the CPUs this process may run on."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise UsageError(f"${WORKERS_ENV} must be a whole number, got {value!r}") from None
    return cpus()


# ---------------------------------------------------------------- the packet table


def read_table(path: str) -> Table:
    """Every packet of the video stream with its bitstream facts; raises FastPathUnavailable
    for a codec or stream this module does not handle."""
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


# ---------------------------------------------------------------- the plan's frames


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
    rgb = converter()
    if rgb is None:
        raise FastPathUnavailable("torchcodec's libswscale not found")
    first = frame_pts(table.packets)[0]
    reader = Reader(path, table)
    try:
        frame = next((f for f in decoded(reader, _whole(table)) if f.pts == first), None)
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
    if work < MIN_FORK_WORK or (used == 1 and cpus() == 1):
        reader = Reader(job.path, job.table, threads)
        try:
            for _, frame in decode_segments(reader, job.segments, job.output):
                yield frame
        finally:
            reader.close()
        return

    yield from Pool(job, used, threads).frames()
