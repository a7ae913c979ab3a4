"""vlcli.media.probe against the reference: probing against torchcodec's exact-mode metadata, decoding
bit for bit against qwen-vl-utils' fetch_video / fetch_image, plus input expansion and errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers_media import ffmpeg, make_clip, make_image, set_rotation, truncate
from PIL import Image
from qwen_vl_utils import vision_process as ref
from torchcodec.decoders import VideoDecoder

from vlcli.errors import InputError
from vlcli.media.frames import frame_at, frames_at, iter_video_chunks, load_image
from vlcli.media.probe import expand_inputs, is_media_file, probe, sniff
from vlcli.models.families import QWEN2_5_VL
from vlcli.planning.plan import SamplingOptions, plan_image, plan_video

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- clips made here


@pytest.fixture(scope="module")
def clips(
    media_dir: Path, clip_landscape: str, clip_rotated: str, clip_vfr: str, clip_with_audio: str
) -> dict[str, str]:
    """Clips of many kinds, by name; the probe must agree with torchcodec on every one."""
    d = media_dir / "kinds"
    small = {"size": (160, 96), "seconds": 2}
    # Cut without re-encoding from mid-GOP: an edit list, its leading packets flagged discard.
    d.mkdir(exist_ok=True)
    cut = d / "copy_cut.mp4"
    ffmpeg("-ss", "1.3", "-i", clip_landscape, "-c", "copy", str(cut))
    return {
        "copy_cut_editlist": str(cut),
        "cfr25_bframes": clip_landscape,
        "rotated90": clip_rotated,
        "vfr": clip_vfr,
        "with_audio": clip_with_audio,
        "cfr30_no_bframes": make_clip(d / "cfr30.mp4", fps=30, extra_args=("-bf", "0"), **small),
        "ntsc_29_97": make_clip(d / "ntsc.mp4", fps="30000/1001", **small),
        "mkv_start_1_5s": make_clip(
            d / "offset.mkv", fps=24, extra_args=("-output_ts_offset", "1.5"), **small
        ),
        "mpegts": make_clip(d / "clip.ts", fps=25, extra_args=("-bf", "0"), **small),
        # torchcodec 0.14 cannot decode this one (it fails on the first frame), but counts it.
        "mpegts_bframes": make_clip(d / "clip_bf.ts", fps=25, **small),
        "avi_mpeg4": make_clip(d / "clip.avi", fps=15, codec=("-c:v", "mpeg4"), **small),
        "rotated270_mov": set_rotation(
            make_clip(d / "r.mov", fps=10, **small), d / "rot270.mov", 270
        ),
        "gif_animated": make_clip(
            d / "anim.gif", fps=10, codec=("-c:v", "gif"), size=(64, 48), seconds=1
        ),
    }


def _tc_meta(path: str):
    return VideoDecoder(path, seek_mode="exact").metadata


# ---------------------------------------------------------------- probe == torchcodec

KINDS = [
    "copy_cut_editlist",
    "cfr25_bframes",
    "rotated90",
    "vfr",
    "with_audio",
    "cfr30_no_bframes",
    "ntsc_29_97",
    "mkv_start_1_5s",
    "mpegts",
    "mpegts_bframes",
    "avi_mpeg4",
    "rotated270_mov",
    "gif_animated",
]


@pytest.mark.parametrize("kind", KINDS)
def test_probe_counts_frames_and_fps_exactly_as_torchcodec(clips, kind):
    path = clips[kind]
    info = probe(path)
    md = _tc_meta(path)
    assert info.kind == "video" and info.frames_counted
    assert info.frames == md.num_frames  # exact: the same packet count
    assert info.fps == md.average_fps  # exact: the same float arithmetic
    assert (info.width, info.height) == (md.width, md.height)  # as decoded, rotation applied
    assert info.duration_s == pytest.approx(md.duration_seconds, abs=1e-9)
    assert info.rotation == round(md.rotation or 0)
    assert info.pixel_format == md.pixel_format and info.codec == md.codec
    # Frame times: every frame's pts from the first, as the decoder stamps the decoded frames.
    times = info.frame_times_s
    assert times is not None and len(times) == info.frames
    assert times[0] == 0.0 and all(a < b for a, b in zip(times, times[1:], strict=False))
    if kind == "mpegts_bframes":
        return
    decoded = VideoDecoder(path).get_frames_at(list(range(md.num_frames))).pts_seconds.tolist()
    assert times == pytest.approx([t - md.begin_stream_seconds for t in decoded], abs=1e-6)
    facts = info.video_facts()
    assert (facts.num_frames, facts.average_fps, facts.frame_times_s) == (
        info.frames,
        info.fps,
        times,
    )


def test_probe_details(clips, clip_landscape):
    d = probe(clip_landscape).to_dict()
    assert set(d) == {
        "path",
        "kind",
        "container",
        "codec",
        "width",
        "height",
        "rotation",
        "duration_s",
        "fps",
        "frames",
        "frames_counted",
        "pixel_format",
        "audio",
    }
    assert d == {
        **d,
        "kind": "video",
        "container": "mp4",
        "codec": "h264",
        "width": 320,
        "height": 180,
        "rotation": 0,
        "duration_s": 4.0,
        "fps": 25.0,
        "frames": 100,
        "pixel_format": "yuv420p",
        "audio": False,
    }
    json.dumps(d, allow_nan=False)
    assert probe(clips["with_audio"]).audio is True
    rot = probe(clips["rotated90"])
    assert (rot.width, rot.height, rot.rotation) == (180, 320, 90)
    assert probe(clips["rotated270_mov"]).rotation in (-90, 270)
    assert probe(clips["mkv_start_1_5s"]).container == "matroska"
    assert probe(clips["copy_cut_editlist"]).frames == 67  # 100 frames less the 33 before 1.3 s
    vfr = probe(clips["vfr"])
    assert vfr.frame_times_s is not None
    assert vfr.frame_times_s[38:43] == pytest.approx([1.9, 1.95, 2.0, 2.2, 2.4])


def test_probe_header_only_estimate(clip_landscape):
    info = probe(clip_landscape, count_frames=False)
    assert (info.frames, info.fps, info.frames_counted, info.frame_times_s) == (
        100,
        25.0,
        False,
        None,
    )


def test_probe_images_with_pil(still_image, rgba_image, tall_image, media_dir):
    info = probe(still_image)
    assert (info.kind, info.width, info.height, info.container, info.frames) == (
        "image",
        200,
        120,
        "png",
        None,
    )
    assert probe(rgba_image).pixel_format == "RGBA"
    jpg = media_dir / "photo.jpg"
    Image.open(still_image).convert("RGB").save(jpg)
    assert probe(str(jpg)).container == "jpeg"
    tall = probe(tall_image)
    assert (tall.width, tall.height) == (3, 700)
    with pytest.raises(InputError, match="aspect ratio"):
        plan_image(tall.width, tall.height, SamplingOptions(), QWEN2_5_VL)
    with pytest.raises(InputError, match="image, not a video"):
        info.video_facts()


# ---------------------------------------------------------------- errors


def test_probe_errors_are_one_clear_phrase(
    media_dir,
    empty_file,
    not_media,
    clip_audio_only,
    still_image,
    truncated_clip,
    truncated_faststart_clip,
):
    cases = {
        str(media_dir / "nope.mp4"): "missing",
        str(media_dir): "is a folder",
        empty_file: "empty file",
        not_media: "not media",
        clip_audio_only: "audio only",
        truncated_clip: "truncated or corrupt",
        truncated_faststart_clip: "truncated or corrupt",
    }
    bad_png = media_dir / "bad.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    cases[str(bad_png)] = "corrupt"
    cover = media_dir / "cover.m4a"  # audio with a cover picture: still audio only
    ffmpeg("-i", clip_audio_only, "-i", still_image, "-map", "0", "-map", "1", "-c:a", "copy",
           "-c:v", "png", "-disposition:v:0", "attached_pic", str(cover))  # fmt: skip
    cases[str(cover)] = "audio only"
    dangling = media_dir / "dangling.mp4"
    if not dangling.is_symlink():
        dangling.symlink_to(media_dir / "gone.mp4")
    cases[str(dangling)] = "missing: a link to nothing"
    for path, phrase in cases.items():
        with pytest.raises(InputError, match=phrase) as err:
            probe(path)
        assert err.value.path == path
        assert "Traceback" not in str(err.value)


def test_decoder_errors_become_input_errors(media_dir, clip_landscape):
    plan = plan_video(probe(clip_landscape).video_facts(), SamplingOptions(), QWEN2_5_VL)
    cut = truncate(clip_landscape, media_dir / "cut_for_decode.mp4", 0.5)
    with pytest.raises(InputError):
        list(iter_video_chunks(cut, plan))
    fast = make_clip(media_dir / "fast_full.mp4", extra_args=("-movflags", "+faststart"))
    plan = plan_video(probe(fast).video_facts(), SamplingOptions(nframes=100), QWEN2_5_VL)
    with pytest.raises(InputError, match="truncated or corrupt|changed since"):
        list(iter_video_chunks(truncate(fast, media_dir / "fast_cut.mp4", 0.5), plan))
    with pytest.raises(InputError):
        frame_at(cut, 1.0)


# ---------------------------------------------------------------- decoding == fetch_video

OPTION_SETS = [
    {},
    {"fps": 1.0},
    {"nframes": 8},
    {"start": 1.0, "end": 3.0},
    {"start": 0.5, "end": 2.5, "fps": 4.0},
    {"min_pixels": 128 * 28 * 28, "max_pixels": 160 * 28 * 28},
    {"min_pixels": 16 * 28 * 28, "max_pixels": 40 * 28 * 28},
    {"total_pixels": 20480 * 28 * 28, "nframes": 32},
    {"min_pixels": 600 * 28 * 28, "nframes": 6},  # upscaled
]
_REF_KEYS = {"start": "video_start", "end": "video_end"}


def _reference_video(path: str, options: dict) -> torch.Tensor:
    ele = {"video": path, **{_REF_KEYS.get(k, k): v for k, v in options.items()}}
    return ref.fetch_video(ele)


def _ours(path: str, options: dict, chunk_frames: int = 16) -> tuple[torch.Tensor, list]:
    plan = plan_video(probe(path).video_facts(), SamplingOptions(**options), QWEN2_5_VL)
    chunks = list(iter_video_chunks(path, plan, chunk_frames=chunk_frames))
    for c in chunks:
        assert c.dtype == torch.uint8 and c.shape[1:] == (3, plan.frame_height, plan.frame_width)
    assert [len(c) for c in chunks[:-1]] == [chunk_frames] * (len(chunks) - 1)
    assert sum(len(c) for c in chunks) == plan.frames
    return torch.cat(chunks), chunks


@pytest.mark.parametrize(
    "options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_decoded_frames_equal_the_reference(clip_landscape, options):
    ours, _ = _ours(clip_landscape, options, chunk_frames=5)
    expected = _reference_video(clip_landscape, options)
    assert ours.shape == expected.shape
    assert torch.equal(ours.float(), expected)


@pytest.mark.parametrize(
    "kind", ["rotated90", "vfr", "ntsc_29_97", "mkv_start_1_5s", "with_audio", "rotated270_mov"]
)
def test_decoded_frames_equal_the_reference_on_other_clips(clips, kind):
    options = {"start": 0.4, "end": 1.6} if kind == "rotated270_mov" else {"fps": 3.0}
    ours, _ = _ours(clips[kind], options, chunk_frames=4)
    expected = _reference_video(clips[kind], options)
    assert torch.equal(ours.float(), expected)


# ---------------------------------------------------------------- images == fetch_image


@pytest.mark.parametrize(
    "options", [{}, {"max_pixels": 30 * 28 * 28}, {"min_pixels": 100 * 28 * 28}]
)
def test_load_image_equals_the_reference(still_image, rgba_image, media_dir, options):
    gray = make_image(media_dir / "gray.png", (90, 70), mode="L")
    jpg = media_dir / "photo2.jpg"
    Image.open(still_image).convert("RGB").save(jpg, quality=80)
    for path in (still_image, rgba_image, gray, str(jpg)):
        info = probe(path)
        plan = plan_image(info.width, info.height, SamplingOptions(**options), QWEN2_5_VL)
        ours = load_image(path, plan)
        expected = ref.fetch_image({"image": path, **options})
        assert ours.mode == "RGB" and ours.size == expected.size
        assert ours.tobytes() == expected.tobytes()


# ---------------------------------------------------------------- frames at seconds


def test_frame_at_seconds(clip_landscape, clips):
    dec = VideoDecoder(clip_landscape)

    def pil(i: int) -> bytes:
        return Image.fromarray(dec[i].permute(1, 2, 0).numpy()).tobytes()

    assert frame_at(clip_landscape, 1.0).tobytes() == pil(25)
    assert frame_at(clip_landscape, 1.03).tobytes() == pil(25)  # shown 1.00 to 1.04
    assert frame_at(clip_landscape, -3).tobytes() == pil(0)
    assert frame_at(clip_landscape, 99).tobytes() == pil(99)
    assert frame_at(clip_landscape, 4.0).tobytes() == pil(99)
    got = frames_at(clip_landscape, [0.0, 2.0, 3.99])
    assert [g.tobytes() for g in got] == [pil(0), pil(50), pil(99)]
    assert frames_at(clip_landscape, []) == []
    # Seconds count from the first frame, also where the stream starts later.
    offset = clips["mkv_start_1_5s"]
    dec2 = VideoDecoder(offset)
    assert (
        frame_at(offset, 0.0).tobytes()
        == Image.fromarray(dec2[0].permute(1, 2, 0).numpy()).tobytes()
    )
    # Rotated clips come upright (displayed size).
    assert frame_at(clips["rotated90"], 0.5).size == (180, 320)


# ---------------------------------------------------------------- inputs


@pytest.fixture()
def tree(tmp_path, clip_landscape, clip_audio_only, still_image):
    t = tmp_path / "in"
    (t / "b").mkdir(parents=True)
    (t / ".hid").mkdir()
    shutil.copy(clip_landscape, t / "x.mp4")
    shutil.copy(clip_landscape, t / "b" / "Y.MOV")
    shutil.copy(clip_landscape, t / "noext")
    shutil.copy(clip_landscape, t / ".hidden.mp4")
    shutil.copy(clip_landscape, t / ".hid" / "z.mp4")
    shutil.copy(clip_audio_only, t / "song.m4a")
    shutil.copy(clip_audio_only, t / "song_noext")
    shutil.copy(still_image, t / "b" / "pic.png")
    shutil.copy(still_image, t / "pic_noext")
    (t / "readme.txt").write_text("hello")
    return t


def test_expand_folder_recursive_sorted_media_only(tree):
    got = expand_inputs([str(tree)])
    rel = [os.path.relpath(p, tree) for p in got]
    assert rel == ["noext", "pic_noext", "x.mp4", "b/Y.MOV", "b/pic.png"]


def test_expand_globs_stdin_missing_and_duplicates(tree):
    t = str(tree)
    assert expand_inputs([f"{t}/*.mp4"]) == [f"{t}/x.mp4"]
    rec = expand_inputs([f"{t}/**"])
    assert sorted(os.path.relpath(p, t) for p in rec) == [
        "b/Y.MOV",
        "b/pic.png",
        "noext",
        "pic_noext",
        "x.mp4",
    ]
    assert expand_inputs([f"{t}/**/*.png"]) == [f"{t}/b/pic.png"]
    stdin = io.StringIO(f"{t}/x.mp4\n\n   \n{t}/b\n{t}/missing.mp4\n")
    got = expand_inputs(
        [f"{t}/readme.txt", "-", f"{t}/x.mp4", f"{t}/./x.mp4", f"{t}/nomatch*.mp4"], stdin
    )
    assert got == [
        f"{t}/readme.txt",
        f"{t}/x.mp4",
        f"{t}/b/Y.MOV",
        f"{t}/b/pic.png",
        f"{t}/missing.mp4",
        f"{t}/nomatch*.mp4",
    ]
    assert expand_inputs(["-"], None) == []


def test_sniff(tree):
    assert sniff(str(tree / "noext")) == "video"
    assert sniff(str(tree / "pic_noext")) == "image"
    assert sniff(str(tree / "song_noext")) == "audio"
    assert sniff(str(tree / "readme.txt")) is None
    assert is_media_file(str(tree / "x.mp4")) and not is_media_file(str(tree / "readme.txt"))


# ---------------------------------------------------------------- import cost


def test_import_is_light():
    code = (
        "import sys, vlcli.media.probe, vlcli.media.frames\n"
        "heavy = ('torch', 'torchvision', 'torchcodec', 'transformers', 'PIL', 'av')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------- the committed samples

SAMPLES = ROOT / "sample_media"


@pytest.mark.skipif(not (SAMPLES / "landscape.mp4").is_file(), reason="sample media not made")
def test_sample_media_is_what_its_readme_says():
    land = probe(str(SAMPLES / "landscape.mp4"))
    assert (land.width, land.height, land.fps, land.frames, land.audio) == (
        640,
        360,
        30.0,
        360,
        False,
    )
    portrait = probe(str(SAMPLES / "portrait_rotated.mp4"))
    assert (portrait.width, portrait.height, portrait.rotation) == (360, 640, 90)
    assert frame_at(str(SAMPLES / "portrait_rotated.mp4"), 1.0).size == (360, 640)
    audio = probe(str(SAMPLES / "with_audio.mp4"))
    assert (audio.width, audio.height, audio.fps, audio.frames, audio.audio) == (
        480,
        270,
        25.0,
        200,
        True,
    )
    still = probe(str(SAMPLES / "still.png"))
    assert (still.kind, still.width, still.height) == ("image", 640, 360)
    for name in ("landscape.mp4", "portrait_rotated.mp4", "with_audio.mp4"):
        md = _tc_meta(str(SAMPLES / name))
        info = probe(str(SAMPLES / name))
        assert (info.frames, info.fps) == (md.num_frames, md.average_fps)


def test_probe_runs_no_program(clip_landscape, monkeypatch):
    """Probing reads the file in-process (PyAV): no ffprobe, no subprocess at all."""

    def no_subprocess(*args, **kwargs):
        raise AssertionError("probe started a program")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setenv("PATH", "/nonexistent")
    info = probe(clip_landscape)
    assert (info.frames, info.fps) == (100, 25.0)
