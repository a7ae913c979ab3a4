"""The fast decoder (vlcli.media.decode) against torchcodec, the reference's decoder: every frame equal,
on the codecs and stream features where leaving packets out or starting afresh could go wrong.

Each clip is decoded whole (every frame, at its own size) and as a sparse plan (only some frames,
so that packets are left out), in this process and by forked workers, and compared with
torchcodec's full decode, byte for byte. The unit tests below hold the packet bookkeeping
(vlcli.media.segments) and the bitstream reading (vlcli.media.bitstream) to hand-made cases.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
import torch
from helpers_media import av1, ffmpeg, make_clip, make_vp9_altref, set_rotation, x264, x265
from torchcodec.decoders import VideoDecoder

from vlcli.media import decode, pieces
from vlcli.media import workers as worker_pool
from vlcli.media.bitstream import (
    PacketFacts,
    Syntax,
    nal_units,
    packet_facts,
    syntax_for,
)
from vlcli.media.frames import _torchcodec_chunks, iter_video_chunks
from vlcli.media.probe import probe
from vlcli.media.segments import CodedPacket, Segment, assign, frame_pts, plan_segments
from vlcli.models.families import QWEN2_5_VL
from vlcli.planning.plan import SamplingOptions, plan_video

SMALL = {"size": (176, 144), "fps": 25, "seconds": 2}


@pytest.fixture(scope="module")
def codec_clips(media_dir: Path, clip_vfr: str, clip_rotated: str) -> dict[str, str]:
    d = media_dir / "codecs"
    d.mkdir(exist_ok=True)
    idr = make_clip(d / "h264_idr.mp4", codec=x264("keyint=12:min-keyint=12:scenecut=0"), **SMALL)
    cut = d / "h264_cut.mp4"  # from mid-GOP, stream copy: an edit list, leading packets discarded
    ffmpeg("-ss", "1.3", "-i", idr, "-c", "copy", str(cut))
    odd = make_clip(d / "odd.mp4", size=(202, 114), fps=25, seconds=1)
    return {
        "h264_bpyramid_opengop": make_clip(
            d / "h264_open.mp4",
            codec=x264("keyint=20:min-keyint=20:scenecut=0:open-gop=1:bframes=3:b-pyramid=normal"),
            **SMALL,
        ),
        "h264_idr_pieces": idr,
        "h264_cut_editlist": str(cut),
        "h264_10bit": make_clip(d / "h264_10.mp4", codec=x264("keyint=25", "yuv420p10le"), **SMALL),
        "hevc_idr_pieces": make_clip(
            d / "hevc.mp4", codec=x265("keyint=15:min-keyint=15:scenecut=0:no-open-gop=1"), **SMALL
        ),
        "hevc_10bit_opengop": make_clip(
            d / "hevc10.mp4", codec=x265("keyint=20:min-keyint=20", "yuv420p10le"), **SMALL
        ),
        "vp9_altref_fullrange": make_vp9_altref(
            d / "vp9.webm", "-g", "20", "-color_range", "pc", **SMALL
        ),
        "av1": make_clip(d / "av1.mp4", codec=av1("-g", "20"), size=(160, 96), fps=25, seconds=2),
        "vfr": clip_vfr,
        "rotated90": clip_rotated,
        "rotated270_odd_width": set_rotation(odd, d / "rot270.mp4", 270),
        "mkv_start_1_5s": make_clip(
            d / "offset.mkv", extra_args=("-output_ts_offset", "1.5"), **SMALL
        ),
    }


def _plan(path: str, indices: list[int] | None = None, full_size: bool = True):
    info = probe(path)
    plan = plan_video(info.video_facts(), SamplingOptions(), QWEN2_5_VL)
    indices = list(range(info.frames or 0)) if indices is None else indices
    plan = dataclasses.replace(plan, frame_indices=tuple(indices), frames=len(indices))
    if full_size:
        plan = dataclasses.replace(plan, frame_height=info.height, frame_width=info.width)
    return plan


def _ours(path: str, plan, workers: int) -> torch.Tensor:
    job = decode.prepare(path, plan)
    return torch.stack([frame.clone() for frame in decode.planned_frames(job, workers)])


def _torchcodec_all(path: str) -> torch.Tensor:
    decoder = VideoDecoder(path, seek_mode="exact")
    return decoder.get_frames_in_range(0, decoder.metadata.num_frames).data


KINDS = [
    "h264_bpyramid_opengop",
    "h264_idr_pieces",
    "h264_cut_editlist",
    "h264_10bit",
    "hevc_idr_pieces",
    "hevc_10bit_opengop",
    "vp9_altref_fullrange",
    "av1",
    "vfr",
    "rotated90",
    "rotated270_odd_width",
    "mkv_start_1_5s",
]


@pytest.mark.parametrize("kind", KINDS)
def test_every_frame_equals_torchcodecs_full_decode(codec_clips, kind, monkeypatch):
    path = codec_clips[kind]
    expected = _torchcodec_all(path)
    n = len(expected)
    whole = _ours(path, _plan(path), workers=1)
    assert whole.shape == expected.shape and torch.equal(whole, expected)
    # Sparse plans leave packets out: every third frame (in this process, FFmpeg's threads), and
    # an irregular handful (forked workers, however little the work).
    got = _ours(path, _plan(path, list(range(1, n, 3))), workers=2)
    assert torch.equal(got, expected[1::3])
    monkeypatch.setattr(decode, "MIN_FORK_WORK", 0)
    indices = sorted({0, 2, 5, n // 2, n // 2 + 1, n - 2, n - 1})
    assert torch.equal(_ours(path, _plan(path, indices), workers=3), expected[indices])


def test_the_clips_have_what_they_test(codec_clips):
    """The fixtures hold the features under test: pieces, skipped packets, hidden frames..."""
    sparse = {}
    for kind in KINDS:
        path = codec_clips[kind]
        job = decode.prepare(path, _plan(path, list(range(0, probe(path).frames or 0, 3))))
        sparse[kind] = job
    pieces = {k: len(j.segments) for k, j in sparse.items()}
    assert pieces["h264_idr_pieces"] >= 4 and pieces["hevc_idr_pieces"] >= 3
    assert pieces["vp9_altref_fullrange"] >= 2 and pieces["av1"] >= 2
    assert pieces["h264_bpyramid_opengop"] == 1  # open GOP: its I frames are no place to start
    assert pieces["hevc_10bit_opengop"] == 1  # CRA pictures are not IDR ones
    for kind in ("h264_bpyramid_opengop", "h264_idr_pieces", "hevc_idr_pieces"):
        job = sparse[kind]
        assert sum(s.sent for s in job.segments) < len(job.table.packets), kind  # skipped some
    cut = sparse["h264_cut_editlist"].table.packets
    assert cut[0].discard and not cut[-1].discard
    assert any(p.discard and p.reference for p in cut)  # decoded for its references, not shown
    vp9_packets = decode.read_table(codec_clips["vp9_altref_fullrange"]).packets
    assert any(p.size for p in vp9_packets)
    assert probe(codec_clips["mkv_start_1_5s"]).frames == 50


def test_vp9_clip_has_hidden_altref_frames(codec_clips):
    import av

    with av.open(codec_clips["vp9_altref_fullrange"]) as c:
        stream = c.streams.video[0]
        # a superframe (hidden alt-ref + shown frame) ends with its index, marker 0b110xxxxx
        superframes = sum(1 for p in c.demux(stream) if p.size and bytes(p)[-1] & 0xE0 == 0xC0)
    with av.open(codec_clips["vp9_altref_fullrange"]) as c:
        frame = next(c.decode(c.streams.video[0]))
    assert superframes >= 1
    assert int(frame.color_range) == 2 and frame.format.name == "yuv420p"  # full range, not yuvj


@pytest.mark.parametrize(
    "source, size, rotation",
    [
        ((1080, 1920), (560, 1008), 0),  # the default plan of a 1080p clip
        ((123, 457), (56, 224), 90),  # odd sizes, turned
        ((64, 96), (112, 168), 270),  # enlarged (a small video raised to the minimum pixels)
        ((70, 84), (70, 84), 180),  # no resize
    ],
)
@pytest.mark.parametrize("resizer", ["kernel", "torch"])
def test_finisher_gives_torchvisions_bytes(source, size, rotation, resizer, monkeypatch):
    """The Finisher resizes with the compiled kernel where it is exact, else one colour plane at
    a time through torch in reused buffers; each frame must equal torchvision's resize of the
    whole turned uint8 frame, the reference's step."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    from vlcli.media import resample

    monkeypatch.setattr(resample, "_kernels", {})
    if resizer == "torch":
        monkeypatch.setenv("VLCLI_RESIZE", "torch")

    generator = torch.Generator().manual_seed(sum(source) + rotation)
    turned_source = source[::-1] if rotation % 180 else source
    finisher = pieces.Finisher(pieces.Output(rotation, size, source))
    if resizer == "torch" or size == source:
        assert finisher.kernel is None
    elif finisher.kernel is None:
        pytest.skip("no exact kernel on this machine")
    for _ in range(3):  # the buffers are reused: every call must be right, not only the first
        hwc = torch.randint(0, 256, (*turned_source, 3), dtype=torch.uint8, generator=generator)
        chw = torch.rot90(hwc, rotation // 90, dims=(0, 1)).permute(2, 0, 1).contiguous()
        expected = (
            chw
            if size == source
            else resize(chw, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True)
        )
        assert torch.equal(finisher(hwc), expected)
    with pytest.raises(pieces.SegmentError):  # every size above is oblong: a frame on its side
        finisher(torch.zeros((*turned_source[::-1], 3), dtype=torch.uint8))


@pytest.mark.parametrize("kind", ["h264_idr_pieces", "hevc_10bit_opengop", "rotated90"])
def test_chunks_equal_the_torchcodec_path_at_the_plans_size(codec_clips, kind):
    path = codec_clips[kind]
    info = probe(path)
    plan = plan_video(info.video_facts(), SamplingOptions(fps=6.0), QWEN2_5_VL)
    ours = torch.cat(list(iter_video_chunks(path, plan, chunk_frames=4, workers=2)))
    reference = torch.cat(list(_torchcodec_chunks(path, plan, 4)))
    assert ours.shape == (plan.frames, 3, plan.frame_height, plan.frame_width)
    assert torch.equal(ours, reference)


def test_which_codecs_take_the_fast_path(codec_clips, media_dir):
    for kind in KINDS:
        path = codec_clips[kind]
        decode.prepare(path, _plan(path, [0]))  # does not raise
    avi = make_clip(media_dir / "codecs" / "mpeg4.avi", codec=("-c:v", "mpeg4"), **SMALL)
    gif = make_clip(media_dir / "codecs" / "a.gif", codec=("-c:v", "gif"), size=(64, 48), seconds=1)
    for path in (avi, gif):
        with pytest.raises(pieces.FastPathUnavailable, match="codec"):
            decode.prepare(path, _plan(path, [0]))
        plan = plan_video(probe(path).video_facts(), SamplingOptions(nframes=4), QWEN2_5_VL)
        got = torch.cat(list(iter_video_chunks(path, plan, chunk_frames=3)))
        assert torch.equal(got, torch.cat(list(_torchcodec_chunks(path, plan, 3))))


def test_workers_reuse_few_slots_and_leave_no_process(codec_clips, monkeypatch):
    path = codec_clips["h264_idr_pieces"]
    expected = _torchcodec_all(path)
    monkeypatch.setattr(decode, "MIN_FORK_WORK", 0)
    monkeypatch.setattr(worker_pool, "SLOT_BYTES_PER_WORKER", 1)  # MIN_SLOTS slots each: reuse
    got = _ours(path, _plan(path), workers=3)
    assert torch.equal(got, expected)
    job = decode.prepare(path, _plan(path))
    frames = decode.planned_frames(job, 2)
    next(frames)
    frames.close()  # the consumer stops early: the workers are ended and reaped
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_slots_go_back_as_the_workers_run_out_of_frames(codec_clips, monkeypatch):
    """Once a worker has a slot for every frame it has left, each slot the parent is done with
    is given back to the system instead of to the worker; the frames are still all right."""
    path = codec_clips["h264_idr_pieces"]
    released: list[tuple[int, int]] = []
    real = worker_pool._release

    def counting(memory, start, length):
        released.append((start, length))
        real(memory, start, length)

    monkeypatch.setattr(worker_pool, "_release", counting)
    monkeypatch.setattr(decode, "MIN_FORK_WORK", 0)
    monkeypatch.setattr(worker_pool, "SLOT_BYTES_PER_WORKER", 1)  # MIN_SLOTS slots each
    assert torch.equal(_ours(path, _plan(path), workers=2), _torchcodec_all(path))
    # every slot that was written is given back by the end: each worker's last MIN_SLOTS frames
    # (or all its frames, if fewer) free one slot each
    assert len(released) == len(set(released)) >= 2


def test_release_gives_back_whole_pages_only():
    import mmap

    page = mmap.PAGESIZE
    memory = mmap.mmap(-1, 8 * page)
    memory[:] = b"\xab" * (8 * page)
    worker_pool._release(memory, 100, 5 * page)  # pages 1-4 lie wholly inside
    assert memory[page : 5 * page] == bytes(4 * page)  # read as zeros: the pages went back
    assert memory[100:page] == b"\xab" * (page - 100)  # the part of page 0 is kept
    assert memory[5 * page : 5 * page + 100] == b"\xab" * 100  # and of page 5
    memory.close()


def test_a_failing_piece_falls_back_to_torchcodec(codec_clips, monkeypatch):
    path = codec_clips["h264_idr_pieces"]
    plan = plan_video(probe(path).video_facts(), SamplingOptions(fps=10.0), QWEN2_5_VL)
    reference = torch.cat(list(_torchcodec_chunks(path, plan, 4)))
    real = decode.read_table

    def tampered(p):
        table = real(p)
        packets = list(table.packets)
        packets[30] = dataclasses.replace(packets[30], size=packets[30].size + 1)
        return dataclasses.replace(table, packets=tuple(packets))

    monkeypatch.setattr(decode, "read_table", tampered)
    monkeypatch.setattr(decode, "MIN_FORK_WORK", 0)
    for workers in (1, 2):
        got = torch.cat(list(iter_video_chunks(path, plan, chunk_frames=4, workers=workers)))
        assert torch.equal(got, reference)


def test_workers_setting(monkeypatch):
    monkeypatch.setenv(decode.WORKERS_ENV, "3")
    assert decode.default_workers() == 3
    monkeypatch.delenv(decode.WORKERS_ENV)
    assert decode.default_workers() == len(os.sched_getaffinity(0))


# ---------------------------------------------------------------- pieces (pure)


def _packet(pts, *, ref=True, start=False, discard=False):
    return CodedPacket(pts=pts, dts=pts, pos=pts, size=1, discard=discard, reference=ref,
                       start=start)  # fmt: skip


def test_plan_segments_skips_what_no_planned_frame_needs():
    # decode order: I0 P3 b1 b2 P6 b4 b5 | IDR7 P9 b8 P10
    table = [
        _packet(0, start=True), _packet(3), _packet(1, ref=False), _packet(2, ref=False),
        _packet(6), _packet(4, ref=False), _packet(5, ref=False),
        _packet(7, start=True), _packet(9), _packet(8, ref=False), _packet(10),
    ]  # fmt: skip
    assert frame_pts(table) == list(range(11))
    segments = plan_segments(table, {2, 4})
    assert segments == [Segment(0, 5, frozenset({2}), (2, 4))]  # b1 skipped, after b4 trimmed
    segments = plan_segments(table, {0, 8})
    assert segments == [Segment(0, 0, frozenset(), (0,)), Segment(7, 9, frozenset(), (8,))]
    assert segments[1].sent == 3
    assert plan_segments(table, {10}) == [Segment(7, 10, frozenset({9}), (10,))]
    assert assign([Segment(0, 0, frozenset(), (0,))] * 5, 2) == [[0, 2, 4], [1, 3]]


def test_plan_segments_keeps_discarded_references():
    table = [_packet(0, start=True, discard=True), _packet(1, discard=True, ref=False),
             _packet(2), _packet(3, ref=False)]  # fmt: skip
    assert frame_pts(table) == [2, 3]
    assert plan_segments(table, {3}) == [Segment(0, 3, frozenset({1}), (3,))]


# ---------------------------------------------------------------- bitstream (pure)


def _avcc(*nals: bytes, length_size: int = 4) -> bytes:
    return b"".join(len(n).to_bytes(length_size, "big") + n for n in nals)


def test_h264_reference_and_idr():
    avcc = Syntax("h264", 4)
    assert packet_facts(avcc, _avcc(b"\x65\x88")) == PacketFacts(reference=True, random_access=True)
    nonref_b = packet_facts(
        avcc, _avcc(b"\x06\x05", b"\x01\x9e")
    )  # SEI, then a nal_ref_idc=0 slice
    assert not nonref_b.reference and not nonref_b.random_access
    assert packet_facts(avcc, _avcc(b"\x41\x9a")).reference  # P slice, nal_ref_idc=2
    open_i = packet_facts(avcc, _avcc(b"\x61\x88"))  # non-IDR I slice: no place to start
    assert open_i.reference and not open_i.random_access
    with_sets = packet_facts(Syntax("h264"), b"\x00\x00\x00\x01\x67\x64\x00\x00\x01\x68\xee"
                             b"\x00\x00\x01\x65\x88")  # fmt: skip
    assert with_sets.random_access and with_sets.parameter_sets
    assert not packet_facts(avcc, _avcc(b"\x74\x00")).supported  # MVC extension slice
    assert not packet_facts(avcc, _avcc(b"\x06\x05")).supported  # no slice at all
    assert list(nal_units(_avcc(b"\x65", b"\x01\x02", length_size=2), 2)) == [2, 5]


def test_hevc_reference_and_idr():
    hvcc = Syntax("hevc", 4)

    def nal(kind: int, tid: int = 0, layer: int = 0) -> bytes:
        return bytes([(kind << 1) | (layer >> 5), ((layer & 31) << 3) | (tid + 1), 0xAF])

    idr = packet_facts(hvcc, _avcc(nal(19)))
    assert idr.random_access and not idr.sublayer_nonref
    cra = packet_facts(hvcc, _avcc(nal(21)))
    assert not cra.random_access
    trail_n = packet_facts(hvcc, _avcc(nal(0, tid=2)))
    assert trail_n.sublayer_nonref and trail_n.temporal_id == 2
    assert not packet_facts(hvcc, _avcc(nal(1))).sublayer_nonref  # TRAIL_R
    sets = packet_facts(
        Syntax("hevc"), b"".join(b"\x00\x00\x01" + nal(k) for k in (32, 33, 34, 19))
    )
    assert sets.parameter_sets and sets.random_access
    assert not packet_facts(hvcc, _avcc(nal(1, layer=1))).supported  # a second layer (MV-HEVC)


def test_vp9_and_av1_key_frames():
    vp9_key = bytes([0b10000000 | 0b0000])  # marker 2, profile 0, show_existing 0, key frame
    assert packet_facts(Syntax("vp9"), vp9_key + b"\x00" * 8).random_access
    vp9_inter = bytes([0b10000100])  # frame_type 1
    assert not packet_facts(Syntax("vp9"), vp9_inter + b"\x00" * 8).random_access
    obu = lambda kind, payload: bytes([(kind << 3) | 2, len(payload)]) + payload  # noqa: E731
    seq = obu(1, b"\x00\x00\x00")  # profile 0, not a still picture
    key = obu(6, bytes([0b00010000]))  # show_existing 0, KEY_FRAME, show_frame 1
    inter = obu(6, bytes([0b00110000]))  # INTER_FRAME
    assert packet_facts(Syntax("av1"), obu(2, b"") + seq + key).random_access
    assert not packet_facts(Syntax("av1"), obu(2, b"") + key).random_access  # no sequence header
    assert not packet_facts(Syntax("av1"), seq + inter).random_access
    assert syntax_for("h264", bytes([1, 100, 0, 30, 0xFF, 0xE1, 0])) == Syntax("h264", 4)
    assert syntax_for("h264", b"\x00\x00\x00\x01\x67") == Syntax("h264", 0)


def test_without_ffmpegs_libraries_decoding_says_so(codec_clips, monkeypatch):
    """torchcodec needs the system's FFmpeg libraries; without them decoding stops with exit
    status 6 and one line, on both paths (the fast one needs torchcodec's libswscale)."""
    from vlcli.errors import ExitStatus, VlcliError
    from vlcli.media import rgb

    monkeypatch.setitem(sys.modules, "torchcodec", None)  # import torchcodec now fails
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)
    monkeypatch.setattr(rgb, "_TRIED", False)
    monkeypatch.setattr(rgb, "_CONVERTER", None)
    monkeypatch.setattr(decode, "_CHECKED", {})
    path = codec_clips["h264_idr_pieces"]
    plan = plan_video(probe(path).video_facts(), SamplingOptions(nframes=4), QWEN2_5_VL)
    with pytest.raises(VlcliError, match="FFmpeg's shared libraries") as info:
        list(iter_video_chunks(path, plan))
    assert info.value.status == ExitStatus.MISSING_DEPENDENCY


def test_repeated_indices_across_chunks(codec_clips, monkeypatch):
    path = codec_clips["h264_idr_pieces"]
    info = probe(path)
    plan = plan_video(info.video_facts(), SamplingOptions(nframes=8), QWEN2_5_VL)
    indices = (0, 0, 1, 1, 1, 9, 30, 30, 31, 49, 49, 49)
    plan = dataclasses.replace(plan, frame_indices=indices, frames=len(indices))
    reference = torch.cat(list(_torchcodec_chunks(path, plan, 4)))
    for workers, fork_work in ((1, decode.MIN_FORK_WORK), (2, 0)):
        monkeypatch.setattr(decode, "MIN_FORK_WORK", fork_work)
        got = torch.cat([c.clone() for c in iter_video_chunks(path, plan, 2, workers=workers)])
        assert torch.equal(got, reference)
