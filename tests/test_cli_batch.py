"""`vlcli ask` over many inputs, end to end, on tiny random-weight models: the output file that
resumes, records in input order, windows of a long video, outputs that are checked, written
whole or not at all, interrupts (real signals to a real process), progress on stderr.

The ``spy`` fixture (from test_cli_ask.py) wraps the real TransformersBackend: it counts model
loads and, only when a test sets ``spy.fixed``, replaces the generated text with a fixed answer
so that the answer states times. stdout and stderr are checked apart.
"""

# ruff: noqa: F811  (the spy and two_clips fixtures are imported from test_cli_ask.py)
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

import pytest
from helpers_clock import make_clock_clip, read_clock
from helpers_media import make_clip
from PIL import Image
from test_cli_ask import (  # noqa: F401  (spy, two_clips: fixtures)
    NEW,
    ROOT,
    Spy,
    invoke,
    records,
    spy,
    stderr_lines,
    two_clips,
)

from vlcli.backends.transformers.backend import TransformersBackend
from vlcli.errors import Interrupted
from vlcli.outputs.files import write_owned
from vlcli.outputs.subtitles import to_srt
from vlcli.planning.plan import VideoPlan
from vlcli.times.parse import TimeSpan

pytest_plugins = ("conftest_models",)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="session")
def clock_long(media_dir: Path) -> str:
    """95 s at 10 fps whose every frame shows its own number (helpers_clock)."""
    return make_clock_clip(media_dir / "clock_95s.mp4", seconds=95, fps=10)


@pytest.fixture(scope="session")
def eight_clips(media_dir: Path, tiny_clip: str) -> Path:
    folder = media_dir / "eight_clips"
    folder.mkdir(exist_ok=True)
    for n in range(8):
        if not (folder / f"c{n}.mp4").exists():
            shutil.copy(tiny_clip, folder / f"c{n}.mp4")
    return folder


# ---------------------------------------------------------------- the output file


def test_output_file_holds_the_records_in_input_order(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, not_media: str, tmp_path: Path
) -> None:
    out = tmp_path / "answers.jsonl"
    missing = tmp_path / "missing.mp4"
    a, b = str(two_clips / "a.mp4"), str(two_clips / "b.mp4")
    r = invoke("ask", a, not_media, missing, b, "What happens?", "--model", tiny_qwen25_path,
               *NEW, "--json", "-o", out)  # fmt: skip
    assert r.exit_code == 3
    saved = lines(out)
    assert saved == records(r.stdout)  # the same records, on stdout and in the file
    assert [x["path"] for x in saved] == [a, not_media, str(missing), b]
    assert [x["status"] for x in saved] == ["ok", "failed", "failed", "ok"]
    assert all(len(x["key"]) == 32 for x in saved) and len({x["key"] for x in saved}) == 4
    assert saved[0]["backend"]["backend"] == "transformers" and "error" in saved[1]
    # the per-input messages are today's: one line each, the progress lines aside
    assert len(stderr_lines(r)) == 2
    assert "[4/4]" in r.stderr and "[4/4]" not in r.stdout


def test_resume_skips_what_is_done(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, tmp_path: Path
) -> None:
    out = tmp_path / "answers.jsonl"
    a = str(two_clips / "a.mp4")
    ask = ("ask", "What happens?", "--model", tiny_qwen25_path, *NEW, "-o", out)
    first = invoke(ask[0], a, *ask[1:])
    assert first.exit_code == 0 and len(lines(out)) == 1 and spy.loaded == 1
    # the same command again without --resume: refused, nothing lost, before anything loads
    again = invoke(ask[0], a, *ask[1:])
    assert again.exit_code == 2 and "--resume" in again.stderr and len(lines(out)) == 1
    # the whole folder with --resume: a.mp4 is skipped, b.mp4 answered and appended
    rest = invoke(ask[0], two_clips, *ask[1:], "--resume", "--json")
    assert rest.exit_code == 0, rest.stderr
    assert "1 of 2 inputs already have a record and are skipped" in rest.stderr
    assert [Path(x["path"]).name for x in records(rest.stdout)] == ["b.mp4"]
    assert [Path(x["path"]).name for x in lines(out)] == ["a.mp4", "b.mp4"]
    assert len(spy.questions) == 2
    # all done: nothing to do, and the model is not even loaded
    loaded = spy.loaded
    done = invoke(ask[0], two_clips, *ask[1:], "--resume")
    assert done.exit_code == 0 and done.stdout == "" and spy.loaded == loaded
    assert "2 of 2 inputs already have a record" in done.stderr
    # another question is another answer: not skipped
    other = invoke(ask[0], a, "Who is there?", *ask[2:], "--resume", "--json")
    assert other.exit_code == 0 and len(records(other.stdout)) == 1 and len(lines(out)) == 3


def test_retry_failed_tries_failures_again_and_keeps_the_order(
    spy: Spy,
    tiny_qwen25_path: Path,
    two_clips: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vlcli.errors import InputError

    out = tmp_path / "answers.jsonl"
    real_prepare = TransformersBackend.prepare

    def flaky(self: TransformersBackend, prompt: Any, on_frames: Any = None) -> Any:
        if prompt.media[0][0].endswith("a.mp4"):
            raise InputError("the decoder failed (a bad disk day)", prompt.media[0][0])
        return real_prepare(self, prompt, on_frames)

    monkeypatch.setattr(TransformersBackend, "prepare", flaky)
    ask = ("ask", two_clips, "What happens?", "--model", tiny_qwen25_path, *NEW, "-o", out)
    assert invoke(*ask).exit_code == 3
    assert [x["status"] for x in lines(out)] == ["failed", "ok"]
    monkeypatch.setattr(TransformersBackend, "prepare", real_prepare)
    skipped = invoke(*ask, "--resume")
    assert skipped.exit_code == 0 and "1 of them failed: --retry-failed" in skipped.stderr
    retried = invoke(*ask, "--retry-failed", "--json")
    assert retried.exit_code == 0, retried.stderr
    progress = [x.split()[1] for x in retried.stderr.splitlines() if x.startswith("vlcli: [")]
    assert progress == ["[2/2]"], retried.stderr  # b was done: a's retry is the second of two
    assert [Path(x["path"]).name for x in records(retried.stdout)] == ["a.mp4"]
    # the file is rewritten whole: one record per input, in input order, the retry in place
    assert [(Path(x["path"]).name, x["status"]) for x in lines(out)] == [
        ("a.mp4", "ok"),
        ("b.mp4", "ok"),
    ]


def test_a_torn_line_is_overwritten_on_resume(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, tmp_path: Path
) -> None:
    out = tmp_path / "answers.jsonl"
    a = str(two_clips / "a.mp4")
    ask = ("What happens?", "--model", tiny_qwen25_path, *NEW, "-o", out)
    assert invoke("ask", a, *ask).exit_code == 0
    whole = out.read_bytes()
    with open(out, "ab") as fh:
        fh.write(b'{"key": "0123456789abcdef0123456789abcdef", "status": "ok", "path": "b.m')
    r = invoke("ask", two_clips, *ask, "--resume")
    assert r.exit_code == 0, r.stderr
    assert "torn" in r.stderr
    assert out.read_bytes().startswith(whole)
    assert [Path(x["path"]).name for x in lines(out)] == ["a.mp4", "b.mp4"]  # every line whole


def test_an_output_that_is_not_a_regular_file_is_refused_at_once(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    """`-o /dev/null` did the work, then failed; a pipe hung (issue 21): refused, status 2."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in ("/dev/null", str(fifo)):
        r = invoke("ask", tiny_clip, "q?", "--model", tiny_qwen25_path, *NEW, "-o", target)
        assert r.exit_code == 2 and spy.loaded == 0, r.stderr
        (line,) = stderr_lines(r)
        assert f"--output {target} is not a regular file" in line


def test_a_second_run_on_one_output_file_is_refused(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    """Two runs on one file both appended (duplicates; a rewrite lost the other's records)."""
    from vlcli.outputs.ledger import Ledger

    out = tmp_path / "answers.jsonl"
    held = Ledger.open(str(out), resume=False)  # another run, in the middle of its work
    try:
        r = invoke("ask", tiny_clip, "q?", "--model", tiny_qwen25_path, *NEW, "-o", out, "--resume")
    finally:
        held.close()
    assert r.exit_code == 2 and spy.loaded == 0 and out.read_bytes() == b""
    (line,) = stderr_lines(r)
    assert f"--output {out} is in use by another vlcli run (pid {os.getpid()}" in line


def test_a_changed_input_s_record_is_replaced_in_its_place(
    spy: Spy,
    tiny_qwen25_path: Path,
    two_clips: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After `touch`, the new answer takes the old record's place at once: an interrupt never
    leaves two records for one input (issue 21)."""
    clips = tmp_path / "clips"
    shutil.copytree(two_clips, clips)
    out = tmp_path / "answers.jsonl"
    ask = ("ask", clips, "What happens?", "--model", tiny_qwen25_path, *NEW, "-o", out)
    assert invoke(*ask).exit_code == 0
    before = lines(out)
    for name in ("a.mp4", "b.mp4"):
        st = os.stat(clips / name)
        os.utime(clips / name, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    real_generate = TransformersBackend.generate

    def interrupted_at_b(self: TransformersBackend, prepared: Any, on_text: Any = None) -> Any:
        if prepared.prompt.media[0][0].endswith("b.mp4"):
            raise Interrupted(signal.SIGTERM)
        return real_generate(self, prepared, on_text)

    monkeypatch.setattr(TransformersBackend, "generate", interrupted_at_b)
    assert invoke(*ask, "--resume").exit_code == 143
    now = lines(out)
    assert [Path(x["path"]).name for x in now] == ["a.mp4", "b.mp4"]
    assert now[0]["key"] != before[0]["key"] and now[1] == before[1]
    monkeypatch.setattr(TransformersBackend, "generate", real_generate)
    r = invoke(*ask, "--resume")
    assert r.exit_code == 0 and "1 of 2 inputs already have a record" in r.stderr
    assert [Path(x["path"]).name for x in lines(out)] == ["a.mp4", "b.mp4"]
    assert lines(out)[0] == now[0] and lines(out)[1]["key"] != before[1]["key"]


def test_the_same_file_named_twice_is_answered_once(
    spy: Spy,
    tiny_qwen25_path: Path,
    two_clips: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`a.mp4` and its absolute path: one file, one key: one answer and one record (it was
    answered twice and recorded once)."""
    monkeypatch.chdir(two_clips)
    out = tmp_path / "answers.jsonl"
    r = invoke("ask", "a.mp4", two_clips / "a.mp4", "q?", "--model", tiny_qwen25_path, *NEW,
               "--json", "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert len(spy.questions) == 1 and len(records(r.stdout)) == 1 and len(lines(out)) == 1


def test_resume_needs_an_output_file(spy: Spy, tiny_qwen25_path: Path, tiny_clip: str) -> None:
    r = invoke("ask", tiny_clip, "q?", "--model", tiny_qwen25_path, "--resume")
    assert r.exit_code == 2 and "-o/--output" in r.stderr and spy.loaded == 0


# ---------------------------------------------------------------- decoding ahead


def test_the_next_input_decodes_while_the_model_answers(
    spy: Spy, tiny_qwen25_path: Path, eight_clips: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the real backend: while the model answers input 1 (on the main thread), input 2 is
    prepared (on the worker): the answer to input 1 waits until it sees that happen, which
    without decoding ahead it never would. And never more than one input ahead."""
    import threading

    events: list[tuple[str, str, str]] = []
    second_prepared = threading.Event()
    seen_while_answering: list[bool] = []
    real_prepare, real_generate = TransformersBackend.prepare, TransformersBackend.generate

    def prepare(self: TransformersBackend, prompt: Any, on_frames: Any = None) -> Any:
        name = Path(prompt.media[0][0]).name
        events.append(("prepare", name, threading.current_thread().name))
        prepared = real_prepare(self, prompt, on_frames)
        if name == "c1.mp4":
            second_prepared.set()
        return prepared

    def generate(self: TransformersBackend, prepared: Any, on_text: Any = None) -> Any:
        name = Path(prepared.prompt.media[0][0]).name
        events.append(("generate", name, threading.current_thread().name))
        answer = real_generate(self, prepared, on_text)
        if name == "c0.mp4":
            seen_while_answering.append(second_prepared.wait(120))
        events.append(("generated", name, threading.current_thread().name))
        return answer

    monkeypatch.setattr(TransformersBackend, "prepare", prepare)
    monkeypatch.setattr(TransformersBackend, "generate", generate)
    r = invoke("ask", eight_clips, "What happens?", "--model", tiny_qwen25_path, *NEW, "--json")
    assert r.exit_code == 0, r.stderr
    assert [Path(x["path"]).name for x in records(r.stdout)] == [f"c{n}.mp4" for n in range(8)]
    assert seen_while_answering == [True]
    kinds = [(k, n) for k, n, _ in events]
    for n in range(6):  # bounded: input n+2 is prepared only once input n is answered
        assert kinds.index(("prepare", f"c{n + 2}.mp4")) > kinds.index(("generated", f"c{n}.mp4"))
    assert {t for k, _, t in events if k == "prepare"} == {"vlcli-prepare"}
    assert {t for k, _, t in events if k == "generate"} == {threading.main_thread().name}


# ---------------------------------------------------------------- outputs


def test_outputs_that_would_destroy_an_input_are_refused_before_loading(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    video = tmp_path / "clip.mp4"
    shutil.copy(tiny_clip, video)
    before = video.read_bytes()
    notes = tmp_path / "notes.srt"
    notes.write_text("my notes, not subtitles\n")
    same = tmp_path / "x.srt"
    for extra, message in [
        (("--srt", video), "is an input"),
        (("--vtt", video), "is an input"),
        (("-o", video), "is an input"),
        (("--srt", same, "--vtt", same), "also the target of --srt"),
        (("--srt", notes), "vlcli did not write it"),
    ]:
        r = invoke("ask", video, "q?", "--model", tiny_qwen25_path, *NEW, *extra)
        assert r.exit_code == 2, (extra, r.stderr)
        assert message in r.stderr and r.stdout == ""
    assert video.read_bytes() == before and notes.read_text() == "my notes, not subtitles\n"
    assert not same.exists() and spy.loaded == 0
    # a subtitle file vlcli wrote is replaced
    ours = tmp_path / "ours.srt"
    write_owned(ours, to_srt([TimeSpan(0.5, 1.0, "old cue")]))
    spy.fixed = "A dot moves from 0.5 to 1.0 seconds."
    r = invoke("ask", video, "q?", "--model", tiny_qwen25_path, *NEW, "--srt", ours)
    assert r.exit_code == 0, r.stderr and "old cue" not in ours.read_text()
    assert "A dot moves" in ours.read_text()


def test_an_answer_without_times_writes_no_subtitles(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    """No cue: no file (an empty .srt is not one FFmpeg or players read, a cue-less .vtt has
    no stream); an older subtitle file of vlcli's at that name goes, so no stale cues stay."""
    srt, vtt = tmp_path / "clip.srt", tmp_path / "clip.vtt"
    write_owned(srt, to_srt([TimeSpan(0.5, 1.0, "an earlier answer")]))
    spy.fixed = "Nothing happens."
    r = invoke("ask", tiny_clip, "What happens?", "--model", tiny_qwen25_path, *NEW, "--json",
               "--srt", srt, "--vtt", vtt)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert not srt.exists() and not vtt.exists()
    (rec,) = records(r.stdout)
    assert rec["times"] == [] and rec["subtitles"] == []
    assert "states no times" in r.stderr and "earlier run was removed" in r.stderr


def test_a_failure_to_write_one_input_s_outputs_fails_that_input_only(
    spy: Spy,
    tiny_qwen25_path: Path,
    two_clips: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vlcli.outputs import files

    real = files.atomic_write

    def full_disk_for_a(path: Any, data: Any) -> None:
        if Path(path).name == "a.srt":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(files, "atomic_write", full_disk_for_a)
    spy.fixed = "A dot moves from 0.5 to 1.0 seconds."
    subs = tmp_path / "subs"
    r = invoke("ask", two_clips, "q?", "--model", tiny_qwen25_path, *NEW, "--json",
               "--srt", subs, "-o", tmp_path / "out.jsonl")  # fmt: skip
    assert r.exit_code == 3
    a, b = records(r.stdout)
    assert a["status"] == "failed" and "No space left on device" in a["error"]
    assert a["answer"] == spy.fixed  # the answer is kept in the record
    assert b["status"] == "ok" and b["subtitles"] == [str(subs / "b.srt")]
    # no half file, no temporary; b.srt's proof that vlcli wrote it
    assert sorted(p.name for p in subs.iterdir()) == [".b.srt.written-by-vlcli", "b.srt"]
    assert "No space left on device" in r.stderr


@pytest.mark.parametrize("option", ["--srt", "--vtt"])
def test_a_subtitle_file_name_for_several_inputs_is_refused(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, tmp_path: Path, option: str
) -> None:
    """Several inputs get one subtitle file each, in a folder: a name that reads as one file
    (it ends in .srt or .vtt and is no folder yet) is refused, not made into a folder."""
    for name in ("out.srt", "out.VTT"):
        target = tmp_path / name
        r = invoke("ask", two_clips, "q?", "--model", tiny_qwen25_path, *NEW, option, target)
        assert r.exit_code == 2, r.stderr
        (line,) = [x for x in r.stderr.splitlines() if x.startswith("vlcli:")]
        assert f"{option} {target}" in line and "give a folder" in line
        assert not target.exists() and spy.loaded == 0 and r.stdout == ""
    # a folder of that name that is there already is used as a folder
    made = tmp_path / "made.srt"
    made.mkdir()
    spy.fixed = "A dot moves from 0.5 to 1.0 seconds."
    r = invoke("ask", two_clips, "q?", "--model", tiny_qwen25_path, *NEW, option, made)
    assert r.exit_code == 0, r.stderr
    fmt = option.lstrip("-")
    assert sorted(p.name for p in made.iterdir()) == [f"a.{fmt}", f"b.{fmt}"]


def test_output_files_under_missing_folders_make_them(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    """-o makes its missing folders as --srt, --vtt and --evidence do."""
    spy.fixed = "A dot moves from 0.5 to 1.0 seconds."
    out, srt = tmp_path / "runs" / "today" / "answers.jsonl", tmp_path / "subs" / "new" / "a.srt"
    r = invoke("ask", tiny_clip, "q?", "--model", tiny_qwen25_path, *NEW, "-o", out, "--srt", srt)
    assert r.exit_code == 0, r.stderr
    assert [rec["status"] for rec in lines(out)] == ["ok"]
    assert "A dot moves" in srt.read_text()


def test_progress_lines_on_a_log_and_quiet(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path
) -> None:
    r = invoke("ask", two_clips, "q?", "--model", tiny_qwen25_path, *NEW, "--json")
    progress = [x for x in r.stderr.splitlines() if x.startswith("vlcli: [")]
    assert [x.split()[1] for x in progress] == ["[1/2]", "[2/2]"]
    assert progress[0].endswith(" s") and "a.mp4: ok in " in progress[0]
    assert "[1/2]" not in r.stdout
    quiet = invoke("ask", two_clips, "q?", "--model", tiny_qwen25_path, *NEW, "--json", "--quiet")
    assert quiet.exit_code == 0 and "[1/2]" not in quiet.stderr
    assert len(records(quiet.stdout)) == 2


def test_progress_display_on_a_terminal_steps_aside_and_is_wiped() -> None:
    import io

    from rich.console import Console

    from vlcli.cli.progress import Progress, progress_mode

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    assert (
        progress_mode(console, quiet=False) == "live"
        and progress_mode(console, quiet=True) == "off"
    )
    assert progress_mode(Console(file=io.StringIO()), quiet=False) == "lines"
    p = Progress(console, "live")
    p.start(3)
    p.stage("clips/a.mp4", "loading the model")
    p.decoding("clips/b.mp4", 4, 12)
    shown = buffer.getvalue()
    assert (
        "clips/a.mp4: loading the model" in shown and "clips/b.mp4: decoding frames 4/12" in shown
    )
    p.pause()
    paused_at = len(buffer.getvalue())
    p.stage("clips/a.mp4", "generating")  # while an answer is written: nothing drawn
    assert "generating" not in buffer.getvalue()[paused_at:]
    p.resume()
    p.finished("clips/a.mp4", "ok", 1.0)
    p.close()
    shown = buffer.getvalue()
    assert "1/3" in shown and shown.rstrip(" ").endswith("\x1b[2K")  # wiped at the end


# ---------------------------------------------------------------- option mistakes first


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("--device", "bogus"), 2, "--device"),
        (("--dtype", "float8"), 2, "--dtype"),
        (("--attn", "fast"), 2, "--attn"),
        (("--window", "10", "--overlap", "10"), 2, "--overlap"),
        (("--window", "10", "--together"), 2, "--together"),
    ],
)
def test_option_mistakes_are_reported_before_any_input_is_probed(
    spy: Spy, tiny_qwen25_path: Path, eight_clips: Path, monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...], status: int, message: str,
) -> None:  # fmt: skip
    probed: list[str] = []
    import vlcli.run.budget

    real = vlcli.run.budget.probe
    monkeypatch.setattr(
        vlcli.run.budget, "probe", lambda path, **k: probed.append(path) or real(path, **k)
    )
    r = invoke("ask", eight_clips, "q?", "--model", tiny_qwen25_path, *NEW, *args)
    assert r.exit_code == status and message in r.stderr
    assert probed == [] and spy.loaded == 0 and r.stdout == ""


def test_a_missing_model_is_reported_before_any_input_is_probed(
    spy: Spy, eight_clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vlcli.run.budget

    probed: list[str] = []
    monkeypatch.setattr(vlcli.run.budget, "probe", lambda path, **k: probed.append(path))
    r = invoke("ask", eight_clips, "q?", "--model", tmp_path / "no-model", *NEW)
    assert r.exit_code == 4 and "--model PATH" in r.stderr and probed == []


# ---------------------------------------------------------------- windows


def test_a_long_video_in_windows(
    spy: Spy, tiny_qwen25_path: Path, clock_long: str, tmp_path: Path
) -> None:
    """Each window is answered with its own time axis; the merged record lists every span in
    source order with its window, a span stated by two neighbours about their overlap once;
    the evidence frames show the clock at the mapped seconds; budget and ask agree."""
    spy.fixed = "A light at 1 second; a door at 24 seconds."
    out, ev, srt = tmp_path / "answers.jsonl", tmp_path / "ev", tmp_path / "clock.srt"
    r = invoke("ask", clock_long, "What happens?", "--window", "30", "--overlap", "4",
               "--fps", "1", "--model", tiny_qwen25_path, *NEW, "--json",
               "-o", out, "--evidence", ev, "--srt", srt)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert lines(out) == [rec]  # the windows' own records were folded into it
    windows = rec["windows"]
    n = len(windows)
    assert n == 4 and [w["window"] for w in windows] == [0, 1, 2, 3]
    # budget --window plans the same windows
    planned = invoke("budget", clock_long, "--window", "30", "--overlap", "4", "--fps", "1",
                     "--model", tiny_qwen25_path, "--json")  # fmt: skip
    (budget_row,) = records(planned.stdout)
    assert [(w["frames"], w["visual_tokens"]) for w in budget_row["windows"]] == [
        (w["frames"], w["visual_tokens"]) for w in windows
    ]
    assert rec["frames"] == budget_row["frames"] == sum(w["frames"] for w in windows)
    # each window (26.75 s long, 4 s shared) stated 1 s and 24 s; a window's 24 s and the next
    # one's 1 s are the same moment of their overlap, kept once: n + 1 spans, in source order
    times = rec["times"]
    assert len(times) == n + 1
    assert [t["start_s"] for t in times] == sorted(t["start_s"] for t in times)
    assert [t["window"] for t in times][0] == 0 and [t["window"] for t in times][-1] == n - 1
    for w, planned_w in zip(windows, budget_row["windows"], strict=True):
        # each window's times went through its own time axis (the plan budget shows for it)
        fields = {k: v for k, v in planned_w.items() if k in VideoPlan.__dataclass_fields__}
        plan = VideoPlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
        axis = plan.time_axis()
        assert [t["start_s"] for t in w["times"]] == [
            pytest.approx(axis.source_seconds(1.0), abs=1e-6),
            pytest.approx(axis.source_seconds(24.0), abs=1e-6),
        ]
        assert w["times"][0]["start_s"] - plan.clip_start_s == pytest.approx(
            1, abs=plan.second_per_grid_t
        )
    # the frame at each mapped second shows that second on the clock
    assert len(rec["evidence"]) == len({t["start_s"] for t in times})
    for path in rec["evidence"]:
        stamp = Path(path).stem.split("_")[-1]  # clock_95s_00-00-27.123
        h, m, s = stamp.split("-")
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
        assert read_clock(Image.open(path)) / 10 == pytest.approx(seconds, abs=0.1 + 1e-6)
    assert srt.read_text().count(" --> ") == n + 1  # one track for the whole video


def test_windows_are_numbered_from_0_on_the_terminal_as_in_json(
    spy: Spy, tiny_qwen25_path: Path, clock_long: str
) -> None:
    """One numbering: the terminal's window titles, progress labels, times table and budget
    table use the numbers --json records give (from 0)."""
    import re

    spy.fixed = "A light at 1 second."
    window = ("--window", "30", "--overlap", "4", "--fps", "1", "--model", tiny_qwen25_path)
    r = invoke("ask", clock_long, "What happens?", *window, *NEW)
    assert r.exit_code == 0, r.stderr
    named = {int(n) for n in re.findall(r"\bwindow (\d+)", r.stdout + r.stderr)}
    assert named == {0, 1, 2, 3}, r.stdout + r.stderr
    assert [int(n) for n in re.findall(r"(\d+) +A light at 1 second", r.stdout)] == [0, 1, 2, 3]
    planned = invoke("budget", clock_long, *window)
    assert planned.exit_code == 0, planned.stderr
    rows = re.findall(r"^ *(\d+) +\d\d:\d\d:\d\d", planned.stdout, flags=re.MULTILINE)
    assert [int(n) for n in rows] == [0, 1, 2, 3], planned.stdout


def test_resume_continues_inside_a_long_video(
    spy: Spy,
    tiny_qwen25_path: Path,
    clock_long: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "answers.jsonl"
    spy.fixed = "At 2 seconds."
    ask = ("ask", clock_long, "When?", "--window", "30", "--fps", "1",
           "--model", tiny_qwen25_path, *NEW, "-o", out)  # fmt: skip
    real_generate = TransformersBackend.generate
    calls = [0]

    def interrupted_at_the_third(
        self: TransformersBackend, prepared: Any, on_text: Any = None
    ) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise Interrupted(signal.SIGTERM)
        return real_generate(self, prepared, on_text)

    monkeypatch.setattr(TransformersBackend, "generate", interrupted_at_the_third)
    r = invoke(*ask)
    assert r.exit_code == 143
    assert "interrupted: 0 of 1 input done" in r.stderr and "--resume" in r.stderr
    assert [x["status"] for x in lines(out)] == ["window", "window"]
    monkeypatch.setattr(TransformersBackend, "generate", real_generate)
    asked = len(spy.questions)
    r = invoke(*ask, "--resume", "--json")
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert len(rec["windows"]) == 4 and len(spy.questions) - asked == 2  # only the last two
    assert len(rec["times"]) == 4 and lines(out) == [rec]


# ---------------------------------------------------------------- signals, for real


def _wait_for_records(
    path: Path, n: int, proc: subprocess.Popen[str], timeout: float = 240
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("no record came")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_keeps_what_is_done_and_says_how_to_resume(
    tiny_qwen25_path: Path, eight_clips: Path, tmp_path: Path, sig: int, status: int
) -> None:
    out = tmp_path / "answers.jsonl"
    command = [sys.executable, "-m", "vlcli", "ask", str(eight_clips), "What happens?",
               "--model", str(tiny_qwen25_path), "--max-new-tokens", "48", "-o", str(out), "--json"]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    _wait_for_records(out, 1, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr
    saved = lines(out)  # every line whole
    assert 1 <= len(saved) < 8
    assert [x["path"] for x in saved] == [str(eight_clips / f"c{n}.mp4") for n in range(len(saved))]
    assert records(stdout) == saved
    last = stderr.strip().splitlines()[-1]
    assert last == (
        f"vlcli: interrupted: {len(saved)} of 8 inputs done; {out} holds them: "
        "run the same command with --resume to go on"
    )
    assert "Traceback" not in stderr
    rest = subprocess.run(
        command + ["--resume"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert rest.returncode == 0, rest.stderr
    assert [x["path"] for x in lines(out)] == [str(eight_clips / f"c{n}.mp4") for n in range(8)]
    assert f"{len(saved)} of 8 inputs already have a record" in rest.stderr


def test_ctrl_c_while_reading_paths_says_interrupted(tmp_path: Path) -> None:
    """`find ... | vlcli probe -` stopped with Ctrl-C: one line and status 130, not silence."""
    proc = subprocess.Popen([sys.executable, "-m", "vlcli", "probe", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    time.sleep(5)  # started, and waiting for paths on stdin
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == "vlcli: interrupted" and stdout == ""


def test_budget_warns_of_sparse_sampling_and_names_window(media_dir: Path) -> None:
    long = make_clip(media_dir / "long_1700s.mp4", size=(32, 32), fps=1, seconds=1700,
                     source="color=c=gray")  # fmt: skip
    r = invoke("budget", long, "--json")
    assert r.exit_code == 0
    (warning,) = [x for x in r.stderr.splitlines() if "warning" in x]
    assert "--window" in warning and "768" in warning
    windowed = invoke("budget", long, "--window", "300", "--json")
    assert windowed.exit_code == 0 and "warning" not in windowed.stderr
    (row,) = records(windowed.stdout)
    assert len(row["windows"]) == 6 and all(w["sample_fps"] >= 0.5 for w in row["windows"])
    assert os.path.basename(row["path"]) == "long_1700s.mp4"


def test_a_missing_model_is_reported_without_importing_torch(
    eight_clips: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from vlcli.cli.app import main\n"
        f"sys.argv = ['vlcli', 'ask', {str(eight_clips)!r}, 'q?', '--model', {str(tmp_path / 'none')!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'torch' in sys.modules, 'vlcli.run.budget' in sys.modules)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert r.stdout.split() == ["4", "False", "False"], r.stderr  # no torch, nothing probed
    assert "--model PATH" in r.stderr
