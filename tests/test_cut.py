# ruff: noqa: F811  (the spy and two_clips fixtures are imported from test_cli_ask.py)
"""`vlcli cut`: clips cut out of the source at the spans `ask --json` records state (issue 19).

The sources carry a burned-in frame counter (helpers_clock): a clip's frames are decoded back
and read, so "the clip starts at 5.05 s" is checked as "its first frame is the source's frame
50". FFmpeg is the system one, as in every media test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import pytest
from helpers_clock import make_clock_clip, read_clock
from helpers_media import ffmpeg, make_clip, set_rotation
from test_cli_ask import NEW, Spy, invoke, records, spy, two_clips  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from vlcli.cli.app import app
from vlcli.times.format import format_clock

pytest_plugins = ("conftest_models",)
ROOT = Path(__file__).resolve().parents[1]
FPS = 10


@pytest.fixture(scope="session")
def clock_av(media_dir: Path) -> str:
    """20 s at 10 fps with its frame number burned in, a keyframe every 2.5 s, and a tone."""
    plain = make_clock_clip(media_dir / "cut_clock_plain.mp4", seconds=20, fps=FPS)
    out = media_dir / "cut_clock.mp4"
    ffmpeg(
        "-i", plain, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "20",
        "-c:v", "libx264", "-qp", "4", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
        "-c:a", "aac", str(out),
    )  # fmt: skip
    return str(out)


def record(path: str | Path, *spans: tuple[float, float], **extra: Any) -> dict[str, Any]:
    """An ``ask --json`` record of ``path`` stating ``spans`` (source seconds), as ask writes it."""
    st = os.stat(path)
    times = [
        {"start_s": a, "end_s": b, "text": f"span {n}", "mapped": True, "outside": False}
        for n, (a, b) in enumerate(spans)
    ]
    rec = {"status": "ok", "path": str(path), "times": times}
    rec["file"] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    rec.update(extra)
    return rec


def cut(tmp_path: Path, records: list[dict[str, Any]], *args: Any) -> Any:
    """``vlcli cut - ARGS`` in-process with ``records`` on standard input."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    return CliRunner().invoke(app, ["cut", "-", *map(str, args)], input=text)


def clips(r: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in r.stdout.splitlines()]


def frame_numbers(path: str) -> list[int]:
    with av.open(path) as container:
        return [read_clock(f.to_image()) for f in container.decode(video=0)]


def durations(path: str, fps: int = FPS) -> tuple[float, float, float]:
    """The clip's video and audio durations (decoded) and one audio frame's length, seconds."""
    with av.open(path) as container:
        video = container.streams.video[0]
        frames = list(container.decode(video=0))
        last = frames[-1]
        first_pts = frames[0].pts
        v = float((last.pts - first_pts) * video.time_base) + 1 / fps
    with av.open(path) as container:
        samples = [f.samples for f in container.decode(audio=0)]
        rate = container.streams.audio[0].rate
    return v, sum(samples) / rate, max(samples) / rate


def test_ask_records_carry_their_file_and_cut_reads_them_from_a_pipe(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, tmp_path: Path
) -> None:
    """`vlcli ask clips/ ... --json | vlcli cut - --out goals/`: each record carries its
    source's size and modification time; each clip keeps its source's name."""
    spy.fixed = "A dot moves from 0.5 to 1.0 seconds."
    r = invoke("ask", two_clips, "What moves?", "--model", tiny_qwen25_path, *NEW, "--json")
    assert r.exit_code == 0, r.stderr
    answers = records(r.stdout)
    for rec in answers:
        st = os.stat(rec["path"])
        assert rec["file"] == {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    made = clips(cut(tmp_path, answers, "--out", tmp_path / "goals", "--json"))
    assert [Path(c["clip"]).parent for c in made] == [tmp_path / "goals"] * 2
    assert [Path(c["clip"]).name.split("_")[0] for c in made] == ["a", "b"]
    assert [c["span"] for c in made] == [
        [t["start_s"], t["end_s"]] for a in answers for t in a["times"]
    ]


def test_an_exact_clip_starts_and_ends_at_the_frames_of_its_span(
    clock_av: str, tmp_path: Path
) -> None:
    """5.05-7.0 s: the frame shown at 5.05 s is frame 50, the one at 7.0 s frame 70; the audio
    lasts as long as the video, within one audio frame."""
    r = cut(tmp_path, [record(clock_av, (5.05, 7.0))], "--out", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.stderr
    (made,) = clips(r)
    assert made["clip"] == str(tmp_path / "out" / "cut_clock_00-00-05.050_00-00-07.000.mp4")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(made["clip"]).st_mode & 0o777 == 0o666 & ~umask  # as any file made here
    assert (made["cut"], made["start_s"], made["end_s"]) == ("exact", 5.0, 7.1)
    assert frame_numbers(made["clip"]) == list(range(50, 71))
    video, audio, one = durations(made["clip"])
    assert abs(video - 2.1) < 1e-6 and abs(audio - video) <= one
    with av.open(made["clip"]) as container:
        assert (
            container.streams.video[0].codec_context.name,
            container.streams.audio[0].codec_context.name,
        ) == ("h264", "aac")


def test_copy_starts_at_the_keyframe_its_record_says(clock_av: str, tmp_path: Path) -> None:
    """6.0 s lies between the keyframes at 5.0 and 7.5 s: the copy starts at frame 50. Its end
    is where its last frame really stops: a stream copy that stops at 7.1 s still carries the
    later frames the ones before 7.1 s are decoded from (B-frames), which the clip shows."""
    r = cut(tmp_path, [record(clock_av, (6.0, 7.0))], "--out", tmp_path, "--copy", "--json")
    assert r.exit_code == 0, r.stderr
    (made,) = clips(r)
    assert made["clip"].endswith("cut_clock_00-00-06.000_00-00-07.000.copy.mp4")
    assert (made["cut"], made["start_s"]) == ("copied", 5.0)
    numbers = frame_numbers(made["clip"])
    assert numbers[0] == round(made["start_s"] * FPS) == 50 and 70 in numbers
    assert numbers[-1] == round(made["end_s"] * FPS) - 1
    with av.open(made["clip"]) as container:  # the picture and the sound start together
        assert [s.start_time for s in container.streams] == [0, 0]


def test_a_kept_copy_that_is_no_video_is_kept_and_the_run_goes_on(
    clock_av: str, tmp_path: Path
) -> None:
    """A file of the user's at a --copy clip's name (no video in it) is kept, as any existing
    clip is, with the end it was cut to; the record's other span is cut as before."""
    records = [record(clock_av, (6.0, 7.0), (1.0, 2.0))]
    first = clips(cut(tmp_path, records, "--out", tmp_path, "--copy", "--json"))
    Path(first[0]["clip"]).write_bytes(b"")  # the user's own file at that name
    r = cut(tmp_path, records, "--out", tmp_path, "--copy", "--json")
    assert r.exit_code == 0, r.stderr
    again = clips(r)
    assert [c["kept"] for c in again] == [True, True]
    assert {**again[1], "kept": False} == first[1]
    assert (again[0]["start_s"], again[0]["end_s"]) == (5.0, 7.1)  # as cut: not read back
    assert Path(first[0]["clip"]).read_bytes() == b""


def test_times_on_frame_starts_at_30000_1001_fps_cut_from_that_frame(
    media_dir: Path, tmp_path: Path
) -> None:
    """5.005 s is where frame 150 starts (150 x 1001 / 30000), as the record writes it; the
    binary float 5.005 lies a hair before it (frame 149 before the fix)."""
    ntsc = make_clock_clip(media_dir / "cut_ntsc.mp4", seconds=8, fps="30000/1001")  # type: ignore[arg-type]
    spans = [(1.0, 2.0), (3.3, 4.4), (5.005, 6.006)]
    r = cut(tmp_path, [record(ntsc, *spans)], "--out", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.stderr
    firsts_lasts = [(n[0], n[-1]) for n in map(frame_numbers, (c["clip"] for c in clips(r)))]
    assert firsts_lasts == [(29, 59), (98, 131), (150, 180)]


def test_ffmpeg_s_progress_is_followed_to_the_clip_s_end(clock_av: str, tmp_path: Path) -> None:
    """The seconds written so far, as FFmpeg's -progress says them, up to the clip's length."""
    from fractions import Fraction

    from vlcli.outputs.clip_file import Cut, find_ffmpeg, write_clip

    seen: list[float] = []
    cut_ = Cut(clock_av, Fraction(2), Fraction(10), audio=True, copy=False)
    target = str(tmp_path / "c.mp4")
    assert write_clip(find_ffmpeg(), cut_, target, force=False, progress=seen.append)
    assert seen and seen == sorted(seen) and abs(seen[-1] - 10) < 0.05
    assert os.listdir(tmp_path) == ["c.mp4"]


def test_instants_get_a_second_each_side_and_pad_widens_clipped_to_the_video(
    clock_av: str, tmp_path: Path
) -> None:
    r = cut(tmp_path, [record(clock_av, (12.0, 12.0))], "--out", tmp_path, "--json")
    assert [(c["start_s"], c["end_s"]) for c in clips(r)] == [(11.0, 13.1)]
    r = cut(
        tmp_path,
        [record(clock_av, (0.5, 1.0), (19.0, 19.5))],
        "--out",
        tmp_path,
        "--pad",
        2,
        "--json",
    )
    assert [(c["start_s"], c["end_s"]) for c in clips(r)] == [(0.0, 3.1), (17.0, 20.0)]
    assert frame_numbers(clips(r)[1]["clip"])[-1] == 199


@pytest.mark.parametrize("how", [(), ("--copy",)], ids=["exact", "copy"])
def test_a_rotated_phone_clip_stays_rotated(tmp_path: Path, how: tuple[str, ...]) -> None:
    """Coded 320x180 shown turned by 90 degrees: the clip shows 180x320 too (exact: the frames
    are turned; copied: the display matrix goes along)."""
    plain = make_clip(tmp_path / "plain.mp4", size=(320, 180), fps=10, seconds=3)
    phone = set_rotation(plain, tmp_path / "phone.mp4", 90)
    r = cut(tmp_path, [record(phone, (1.0, 2.0))], "--out", tmp_path / "out", "--json", *how)
    assert r.exit_code == 0, r.stderr
    with av.open(clips(r)[0]["clip"]) as container:
        frame = next(container.decode(video=0))
        shown = (frame.width, frame.height)
        if frame.rotation in (90, -90, 270, -270):
            shown = shown[::-1]
    assert shown == (180, 320)


@pytest.fixture
def full_disk(tmp_path: Path) -> Any:
    """A 64 KiB tmpfs mounted under tmp_path (root only), unmounted after the test."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is a small tmpfs mount, which needs root")
    folder = tmp_path / "full"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]
    if subprocess.run(mount, capture_output=True, check=False).returncode != 0:
        pytest.skip("this machine does not let a tmpfs be mounted (a container without the right)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_one_line_and_leaves_no_file(
    clock_av: str, tmp_path: Path, full_disk: Path
) -> None:
    """The 20 s clip does not fit in what is left (FFmpeg 5.1 may exit 0 then, with an "Error
    writing trailer" line: that fails the clip too): one line, no file; the clips that fit are
    cut."""
    spans = [(1.0, 1.5), (0.0, 20.0), (2.0, 3.0)]
    r = cut(tmp_path, [record(clock_av, s) for s in spans], "--out", full_disk, "--json")
    assert r.exit_code == 3
    kept = ["cut_clock_00-00-01.000_00-00-01.500.mp4", "cut_clock_00-00-02.000_00-00-03.000.mp4"]
    assert [Path(c["clip"]).name for c in clips(r)] == kept
    (failed,) = [x for x in r.stderr.splitlines() if "ffmpeg failed" in x]
    clip = full_disk / "cut_clock_00-00-00.000_00-00-20.000.mp4"
    assert failed.startswith(f"vlcli: {clip}: ffmpeg failed: ")
    assert failed.endswith("No space left on device")
    assert sorted(os.listdir(full_disk)) == kept


def test_records_that_cannot_be_cut_are_said_and_the_others_go_on(
    clock_av: str, tmp_path: Path
) -> None:
    """A failed record and one without times are skipped and counted; a missing and a changed
    source are refused with a line each (status 3); the good record is cut."""
    changed = tmp_path / "changed.mp4"
    shutil.copy(clock_av, changed)
    stale = record(changed, (1.0, 2.0))
    with open(changed, "ab") as fh:
        fh.write(b"\0")
    records = [
        {"status": "failed", "path": clock_av, "error": "boom"},
        record(clock_av),
        record(clock_av, (1.0, 2.0)) | {"path": str(tmp_path / "gone.mp4")},
        stale,
        record(clock_av, (3.0, 4.0)),
        {k: v for k, v in record(clock_av, (5.0, 6.0)).items() if k != "file"},
    ]
    r = cut(tmp_path, records, "--out", tmp_path / "out", "--json")
    assert r.exit_code == 3
    assert [Path(c["clip"]).name for c in clips(r)] == [
        "cut_clock_00-00-03.000_00-00-04.000.mp4",
        "cut_clock_00-00-05.000_00-00-06.000.mp4",
    ]
    assert (
        f"vlcli: warning: {clock_av}: its record (of an older vlcli) has no file size and time: "
        "not checked to be the file it was made from"
    ) in r.stderr
    err = r.stderr
    assert f"{clock_av}: skipped: the record failed" in err
    assert f"{clock_av}: skipped: the answer states no times" in err
    assert f"{tmp_path / 'gone.mp4'}: cannot cut: No such file or directory" in err
    assert f"{changed}: changed since it was answered" in err
    assert "2 clips written, 0 kept, 2 skipped, 2 records refused" in err
    made = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert made == [Path(c["clip"]).name for c in clips(r)]


def test_a_second_run_keeps_the_clips_and_force_cuts_them_again(
    clock_av: str, tmp_path: Path
) -> None:
    src = tmp_path / "clips" / "a" / "match.mp4"
    src.parent.mkdir(parents=True)
    shutil.copy(clock_av, src)
    other = tmp_path / "clips" / "b.mp4"
    shutil.copy(clock_av, other)
    records = [record(src, (1.0, 2.0)), record(other, (1.0, 2.0))]
    out = tmp_path / "goals"
    first = clips(cut(tmp_path, records, "--out", out, "--json"))
    assert [c["clip"] for c in first] == [
        str(out / "a" / "match_00-00-01.000_00-00-02.000.mp4"),
        str(out / "b_00-00-01.000_00-00-02.000.mp4"),
    ]
    inode = os.stat(first[0]["clip"]).st_ino
    again = cut(tmp_path, records, "--out", out, "--json")
    assert [c["kept"] for c in clips(again)] == [True, True]
    assert os.stat(first[0]["clip"]).st_ino == inode
    forced = cut(tmp_path, records, "--out", out, "--json", "--force")
    assert [c["kept"] for c in clips(forced)] == [False, False]
    assert os.stat(first[0]["clip"]).st_ino != inode
    assert sorted(os.listdir(out)) == ["a", "b_00-00-01.000_00-00-02.000.mp4"]


def test_root_names_the_folders_kept_and_a_line_that_is_no_record_is_said(
    clock_av: str, tmp_path: Path
) -> None:
    src = tmp_path / "clips" / "a" / "match.mp4"
    src.parent.mkdir(parents=True)
    shutil.copy(clock_av, src)
    text = "not json\n" + json.dumps(record(src, (1.0, 2.0))) + "\n"
    out, root = tmp_path / "goals", tmp_path / "clips"
    r = CliRunner().invoke(
        app, ["cut", "-", "--out", str(out), "--root", str(root), "--json"], input=text
    )
    assert r.exit_code == 3
    assert (
        r.stderr.splitlines()[0]
        == "vlcli: standard input: line 1 is not a JSON record of vlcli ask"
    )
    assert [c["clip"] for c in clips(r)] == [str(out / "a" / "match_00-00-01.000_00-00-02.000.mp4")]


def test_a_reel_joins_the_clips_with_a_chapter_each(clock_av: str, tmp_path: Path) -> None:
    """Two spans of the clock (with sound) and one of a silent 320x180 clip: one 1280x720 video,
    three chapters titled by the spans' texts, each starting where its clip's frames start,
    as long as its clips together (each clip's AAC runs a few ms past its picture: a reel that
    kept it showed one frame more), the sound as long as the picture."""
    silent = make_clip(tmp_path / "silent.mp4", size=(320, 180), fps=10, seconds=3)
    records = [record(clock_av, (5.05, 7.0), (3.0, 4.0)), record(silent, (1.0, 2.0))]
    records[0]["times"][0]["text"] = "goal = one; #1"
    reel = tmp_path / "reel.mp4"
    r = cut(tmp_path, records, "--out", tmp_path / "out", "--reel", reel)
    assert r.exit_code == 0, r.stderr
    assert f"wrote the reel {reel} (3 chapters)" in r.stderr
    with av.open(str(reel)) as container:
        chapters = [(c["start"], c["end"], c["metadata"]["title"]) for c in container.chapters()]
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        frames = [(float(f.time), f.to_image()) for f in container.decode(video=0)]
    assert chapters == [
        (0, 2100, "goal = one; #1"), (2100, 3200, "span 1"), (3200, 4300, "span 0")
    ]  # fmt: skip

    def clock_at(seconds: float) -> int:  # the clock, 192x48, was scaled to 1280x320
        image = next(im for t, im in frames if t >= seconds - 1e-6)
        return read_clock(image.crop((0, 200, 1280, 520)).resize((192, 48)))

    assert (clock_at(0.0), clock_at(2.1), clock_at(3.1)) == (50, 30, 40)
    assert len(frames) == 129  # 4.3 s at 30 fps
    assert (clock_at(2.0), clock_at(3.16)) == (70, 40)  # the last frames of the first two
    video, audio, one = durations(str(reel), fps=30)
    assert abs(video - 4.3) < 1e-6 and abs(audio - video) <= one


def test_a_clip_never_replaces_an_input(clock_av: str, tmp_path: Path) -> None:
    src = tmp_path / "m.mp4"
    shutil.copy(clock_av, src)
    victim = tmp_path / "m_00-00-01.000_00-00-02.000.mp4"
    shutil.copy(clock_av, victim)
    records = [record(src, (1.0, 2.0)), record(victim, (3.0, 4.0))]
    r = cut(tmp_path, records, "--out", tmp_path, "--force")
    assert r.exit_code == 3 and "would replace an input" in r.stderr
    assert victim.read_bytes() == Path(clock_av).read_bytes()
    r = cut(tmp_path, records[:1], "--out", tmp_path / "out", "--reel", src, "--force")
    assert r.exit_code == 2 and f"--reel {src} is one of the records' sources" in r.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is cut


def test_two_sources_of_one_name_never_share_a_clip(clock_av: str, tmp_path: Path) -> None:
    """m.mp4 and m.mkv would both give m_<span>.mp4: the second is refused with a line (even
    with --force), the first's clip stays whole."""
    mp4, mkv = tmp_path / "m.mp4", tmp_path / "m.mkv"
    shutil.copy(clock_av, mp4)
    ffmpeg("-i", clock_av, "-c", "copy", str(mkv))
    records = [record(mp4, (1.0, 2.0)), record(mkv, (1.0, 2.0))]
    r = cut(tmp_path, records, "--out", tmp_path / "out", "--json", "--force")
    assert r.exit_code == 3
    clip = tmp_path / "out" / "m_00-00-01.000_00-00-02.000.mp4"
    assert [(c["source"], c["clip"]) for c in clips(r)] == [(str(mp4), str(clip))]
    assert f"vlcli: {mkv}: its clip {clip} has the name of a clip of {mp4}" in r.stderr
    assert frame_numbers(str(clip)) == list(range(10, 21))


def test_a_missing_ffmpeg_is_one_line(
    clock_av: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    r = cut(tmp_path, [record(clock_av, (1.0, 2.0))], "--out", tmp_path / "out")
    assert r.exit_code == 6
    assert r.stderr.splitlines() == [
        "vlcli: ffmpeg not found on PATH: cutting clips needs FFmpeg's command-line tool (make "
        "setup installs it; or apt-get install ffmpeg)"
    ]


@pytest.mark.parametrize("to_group", [False, True], ids=["vlcli", "terminal"])
def test_sigint_mid_cut_leaves_no_partial_clip_and_exits_130(
    media_dir: Path, tmp_path: Path, to_group: bool
) -> None:
    """A real SIGINT while FFmpeg encodes a long clip: to vlcli alone, or to its process group
    as Ctrl-C on a terminal sends it (FFmpeg gets it too, and would finish its file)."""
    codec = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    long = make_clip(media_dir / "cut_long.mp4", size=(640, 360), fps=25, seconds=60, codec=codec)
    out = tmp_path / "out"
    records = tmp_path / "answers.jsonl"
    records.write_text(
        json.dumps(record(long, (0.0, 60.0))) + "\n" + json.dumps(record(long, (1.0, 2.0))) + "\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlcli", "cut", str(records), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        start_new_session=True,  # its own process group, which the test may signal whole
    )
    deadline = time.monotonic() + 60
    while not (out.exists() and os.listdir(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.exists() and os.listdir(out), "the cut never started"
    time.sleep(0.5)
    if to_group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines()[-1] == "vlcli: interrupted"
    assert os.listdir(out) == []


# ---------------------------------------------------------------- ask --clips


def frame_at(seconds: float) -> int:
    """The clock's frame shown at ``seconds`` (10 fps from 0)."""
    return int(seconds * FPS + 1e-9)


def test_ask_clips_cuts_each_answer_s_spans_and_its_record_lists_them(
    spy: Spy, tiny_qwen25_path: Path, clock_av: str, tmp_path: Path
) -> None:
    """`ask clip.mp4 "q" --clips out/`: the clip of the span the answer states, named as its
    subtitles are (the input's stem), starts and ends at the span's frames; the record lists
    it. A rerun with --resume asks nothing and cuts nothing again."""
    spy.fixed = "The clock runs from 5 to 7 seconds."
    out, answers = tmp_path / "out", tmp_path / "answers.jsonl"
    ask = ("ask", clock_av, "When?", "--model", tiny_qwen25_path, *NEW, "--clips", out,
           "-o", answers, "--json")  # fmt: skip
    r = invoke(*ask)
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    (span,) = rec["times"]
    start, end = span["start_s"], span["end_s"]
    name = f"cut_clock_{format_clock(start, 3, sep='-')}_{format_clock(end, 3, sep='-')}.mp4"
    assert rec["clips"] == [str(out / name)] and os.listdir(out) == [name]
    assert f"wrote {out / name}" in r.stderr
    assert frame_numbers(rec["clips"][0]) == list(range(frame_at(start), frame_at(end) + 1))
    before = os.stat(rec["clips"][0])
    asked = len(spy.questions)
    again = invoke(*ask, "--resume")
    assert again.exit_code == 0, again.stderr
    assert len(spy.questions) == asked and again.stdout == ""
    after = os.stat(rec["clips"][0])
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert os.listdir(out) == [name]


def test_ask_clips_of_an_answer_without_times_cuts_nothing(
    spy: Spy, tiny_qwen25_path: Path, clock_av: str, tmp_path: Path
) -> None:
    spy.fixed = "Nothing happens."
    out = tmp_path / "out"
    r = invoke("ask", clock_av, "When?", "--model", tiny_qwen25_path, *NEW, "--clips", out,
               "--json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert rec["times"] == [] and rec["clips"] == []
    assert f"{clock_av}: no clip cut: the answer states no times" in r.stderr
    assert not out.exists() or os.listdir(out) == []


def test_ask_clips_onto_an_input_or_without_ffmpeg_is_refused_before_loading(
    spy: Spy,
    tiny_qwen25_path: Path,
    clock_av: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = invoke("ask", clock_av, "When?", "--model", tiny_qwen25_path, *NEW, "--clips", clock_av)
    assert r.exit_code == 2 and f"--clips {clock_av} is not a folder" in r.stderr
    assert spy.loaded == 0
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg: one line, status 6, nothing loaded
    r = invoke("ask", clock_av, "When?", "--model", tiny_qwen25_path, *NEW, "--clips", tmp_path)
    assert r.exit_code == 6 and "ffmpeg not found on PATH" in r.stderr
    assert spy.loaded == 0 and r.stdout == ""


def test_ask_clips_interrupted_mid_cut_leaves_no_partial_clip_and_no_record(
    spy: Spy,
    tiny_qwen25_path: Path,
    clock_av: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real SIGINT to vlcli once FFmpeg has written part of the clip, through the run's own
    signal handling: status 130, no clip and no temporary file, no record (the input is asked
    again on --resume)."""
    from vlcli.outputs import clip_file

    real_follow = clip_file._follow

    def interrupted_once_written(proc: Any, progress: Any) -> None:
        def tick(done: float) -> None:
            if done > 0:
                os.kill(os.getpid(), signal.SIGINT)
            progress(done)

        real_follow(proc, tick)

    monkeypatch.setattr(clip_file, "_follow", interrupted_once_written)
    spy.fixed = "The clock runs from 1 to 19 seconds."
    out, answers = tmp_path / "out", tmp_path / "answers.jsonl"
    r = invoke("ask", clock_av, "When?", "--model", tiny_qwen25_path, *NEW, "--clips", out,
               "-o", answers)  # fmt: skip
    assert r.exit_code == 130, r.stderr
    assert "interrupted: 0 of 1 input done" in r.stderr
    assert os.listdir(out) == [] and answers.read_text() == ""


def test_ask_clips_a_clip_that_cannot_be_cut_is_one_line_and_fails_nothing(
    spy: Spy, tiny_qwen25_path: Path, clock_av: str, tmp_path: Path
) -> None:
    """The clip of m.mp4 would have the name of another input of the run (given as the folder
    --clips writes into): refused with one warning line; m.mp4's record stays ok (its answer is
    good), without the clip; the other input is cut; the run succeeds."""
    spy.fixed = "The clock runs from 5 to 7 seconds."
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(clock_av, folder / "m.mp4")
    first = invoke("ask", folder / "m.mp4", "When?", "--model", tiny_qwen25_path, *NEW,
                   "--clips", tmp_path / "first", "--json")  # fmt: skip
    (name,) = os.listdir(tmp_path / "first")
    victim = folder / name
    shutil.copy(clock_av, victim)
    r = invoke("ask", folder, "When?", "--model", tiny_qwen25_path, *NEW, "--clips", folder,
               "--json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    m, other = records(r.stdout)
    assert (m["path"], m["status"], m["clips"]) == (str(folder / "m.mp4"), "ok", [])
    (line,) = [x for x in r.stderr.splitlines() if "clip not cut" in x]
    assert line == (
        f"vlcli: warning: {folder / 'm.mp4'}: clip not cut: its clip {victim} would replace an "
        "input: give the clips another folder"
    )
    assert victim.read_bytes() == Path(clock_av).read_bytes()
    # the other input's stem is the victim's name less .mp4, its span the same
    assert other["status"] == "ok" and other["clips"] == [str(folder / (victim.stem + name[1:]))]
    assert records(first.stdout)[0]["clips"] == [str(tmp_path / "first" / name)]
