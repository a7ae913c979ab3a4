"""`vlcli ask` as a user meets it, end to end, on tiny random-weight models.

Every test runs the real command (typer's ``CliRunner`` in-process, ``python -m vlcli`` once)
with the real TransformersBackend: the model folder is located and loaded by vlcli's loading code, the
clip is probed, planned, decoded and preprocessed, the reference positions are used and
``generate`` really runs (``--max-new-tokens 8``). A tiny random model answers random text,
so to test what vlcli does with the times an answer states (mapping to source seconds,
subtitles, evidence frames) the ``spy`` fixture wraps ``TransformersBackend.generate``: it calls the real
method and then, only when a test sets ``spy.fixed``, replaces the answer's *text* with that
fixed answer (``dataclasses.replace(answer, text=FIXED)``) and streams it in place of the
random one, in pieces of 7 characters. Nothing else of the answer is changed (token counts and
timings are the real ones).
The spy also counts how many times the model was loaded (``TransformersBackend._load``: a run makes
its backend before probing anything, to check the options, and loads the model only when an input
needs it) and records the prompt each call received.
``test_json_record_of_a_real_answer`` and ``test_human_output_of_a_real_answer`` patch nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import invoke
from helpers_media import make_clip

from vlcli.backends.transformers.backend import TransformersBackend
from vlcli.media.frames import frames_at
from vlcli.media.probe import probe
from vlcli.models.families import resolve_model
from vlcli.planning.plan import SamplingOptions, VideoPlan, plan_video
from vlcli.planning.tasks import build_prompt
from vlcli.times.format import format_hms

pytest_plugins = ("conftest_models",)

ROOT = Path(__file__).resolve().parents[1]
NEW = ("--max-new-tokens", "8")
RECORD_KEYS = {
    "path",
    "question",
    "answer",
    "times",
    "frames",
    "visual_tokens",
    "prompt_tokens",
    "model",
    "timings",
}
TIMINGS = {"decode_s", "preprocess_s", "prefill_s", "decode_tokens_s", "generate_s"}
BALL = (
    "The ball appears at 0.5 seconds and leaves from 1.0 to 1.5 seconds. It is back at 9 seconds."
)


# ---------------------------------------------------------------- helpers


class Spy:
    """What the wrapped TransformersBackend saw and did during one test."""

    def __init__(self) -> None:
        self.fixed: str | None = None  # replaces the generated text when set
        self.loaded = 0  # models loaded (TransformersBackend._load calls)
        self.questions: list[str] = []
        self.real_texts: list[str] = []  # what the model generated
        self.streamed: list[str] = []  # what its streamer emitted, joined


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Wrap the real TransformersBackend (see the module docstring): count loads, record, maybe fix
    the text."""
    state = Spy()
    real_load, real_generate = TransformersBackend._load, TransformersBackend.generate

    def load(self: TransformersBackend, folder: str) -> Any:
        state.loaded += 1
        return real_load(self, folder)

    def generate(self: TransformersBackend, prepared: Any, on_text: Any = None) -> Any:
        pieces: list[str] = []

        def collect(piece: str) -> None:
            pieces.append(piece)
            if on_text is not None and state.fixed is None:
                on_text(piece)

        answer = real_generate(self, prepared, collect)
        state.questions.append(prepared.prompt.text)
        state.real_texts.append(answer.text)
        state.streamed.append("".join(pieces))
        if state.fixed is None:
            return answer
        if on_text is not None:  # in pieces that end mid-word, as a model streams
            for k in range(0, len(state.fixed), 7):
                on_text(state.fixed[k : k + 7])
        return dataclasses.replace(answer, text=state.fixed)

    monkeypatch.setattr(TransformersBackend, "_load", load)
    monkeypatch.setattr(TransformersBackend, "generate", generate)
    return state


def shown(folder: Path) -> list[str]:
    """The files of ``folder`` a user sees: not the hidden proofs that vlcli wrote them."""
    names = sorted(p.name for p in folder.iterdir())
    visible = [n for n in names if not n.startswith(".")]
    assert sorted(f".{n}.written-by-vlcli" for n in visible) == [n for n in names if n[0] == "."]
    return visible


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def budget(model: Path, *args: Any) -> dict[str, Any]:
    r = invoke("budget", *args, "--model", model, "--json")
    assert r.exit_code == 0, r.stderr
    (row,) = records(r.stdout)
    return row


def plan_of(model: Path, clip: str, **options: Any) -> VideoPlan:
    plan = plan_video(
        probe(clip).video_facts(), SamplingOptions(**options), resolve_model(str(model)).family
    )
    assert isinstance(plan, VideoPlan)
    return plan


PROGRESS_LINE = re.compile(r"^vlcli: \[\d+/\d+\] .+: (ok|failed.*) in \d+\.\d s$")


def stderr_lines(r: Any) -> list[str]:
    """Standard error less the CPU warning of every run and the progress line of each input."""
    return [
        line
        for line in r.stderr.splitlines()
        if line.strip()
        and "no CUDA GPU found" not in line
        and not PROGRESS_LINE.match(line)
    ]


def srt_time(seconds: float, mark: str = ",") -> str:
    millis = round(seconds * 1000)
    return (
        f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:"
        f"{millis // 1000 % 60:02d}{mark}{millis % 1000:03d}"
    )


@pytest.fixture(scope="session")
def two_clips(media_dir: Path, tiny_clip: str) -> Path:
    """A folder of two small clips (and a text file, which a folder search skips)."""
    folder = media_dir / "two_clips"
    folder.mkdir(exist_ok=True)
    shutil.copy(tiny_clip, folder / "a.mp4")
    make_clip(folder / "b.mp4", size=(128, 96), fps=8, seconds=2)
    (folder / "notes.txt").write_text("not a clip\n")
    return folder


@pytest.fixture
def blackhole_hub() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers (a stuck proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


# ---------------------------------------------------------------- the record


def test_json_record_of_a_real_answer(tiny_qwen25_path: Path, tiny_clip: str) -> None:
    """No patching at all: the real command in a subprocess, stdout a pipe."""
    r = subprocess.run(
        [sys.executable, "-m", "vlcli", "ask", tiny_clip, "What happens?"]
        + ["--model", str(tiny_qwen25_path), *NEW, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "\x1b[" not in r.stdout and "\x1b[" not in r.stderr  # no terminal: no ANSI codes
    assert all(line.startswith("vlcli:") for line in r.stderr.splitlines())
    (rec,) = records(r.stdout)
    assert RECORD_KEYS <= set(rec)
    assert rec["path"] == tiny_clip and rec["question"] == "What happens?"
    assert isinstance(rec["answer"], str) and isinstance(rec["times"], list)
    assert rec["model"] == str(tiny_qwen25_path)
    assert set(rec["timings"]) == TIMINGS
    assert all(isinstance(v, float) and v >= 0 for v in rec["timings"].values())
    (axis,) = rec["time_axes"]  # the positions the model was given, read back from the prefill
    plan = plan_of(tiny_qwen25_path, tiny_clip)
    assert axis["engine"] == "reference" and axis["positions"] == list(plan.temporal_positions)
    assert rec["timings"]["prefill_s"] <= rec["timings"]["generate_s"]
    assert 1 <= rec["generated_tokens"] <= 8
    # budget and ask agree on what the model is fed
    planned = budget(tiny_qwen25_path, tiny_clip, "--question", "What happens?")
    assert (rec["frames"], rec["visual_tokens"]) == (planned["frames"], planned["visual_tokens"])
    assert rec["frames"] == 6 and rec["visual_tokens"] == 420  # 3 s at 2 fps; 3 x 10 x 14
    assert rec["visual_tokens"] < rec["prompt_tokens"] <= planned["prompt_tokens"] + 8
    for span in rec["times"]:  # the random text may state a time; then it is a whole record
        assert {"start_s", "end_s", "start_hms", "end_hms", "text"} <= set(span)


def test_human_output_of_a_real_answer(spy: Spy, tiny_qwen25_path: Path, tiny_clip: str) -> None:
    r = invoke("ask", tiny_clip, "What happens?", "--model", tiny_qwen25_path, *NEW)
    assert r.exit_code == 0, r.stderr
    (real,) = spy.real_texts
    assert spy.streamed == [real]  # the streamer emitted exactly the answer
    assert r.stdout.startswith(real)  # streamed to stdout as generated
    assert "\x1b[" not in r.stdout
    assert "prompt tokens" in r.stderr and "prompt tokens" not in r.stdout  # figures on stderr
    assert spy.questions == ["What happens?"]


def test_folder_of_two_clips_loads_the_model_once(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path
) -> None:
    r = invoke("ask", two_clips, "What happens?", "--model", tiny_qwen25_path, *NEW, "--json")
    assert r.exit_code == 0, r.stderr
    recs = records(r.stdout)  # stdout holds the records and nothing else
    assert [Path(x["path"]).name for x in recs] == ["a.mp4", "b.mp4"]
    assert spy.loaded == 1 and len(spy.questions) == 2
    for rec in recs:
        planned = budget(tiny_qwen25_path, rec["path"])
        assert (rec["frames"], rec["visual_tokens"]) == (
            planned["frames"],
            planned["visual_tokens"],
        )
    assert recs[1]["frames"] == 4  # 2 s at 2 fps
    assert "[1/2]" in r.stderr and "[2/2]" in r.stderr  # progress on stderr only
    assert "[1/" not in r.stdout


def test_folder_in_human_form_names_each_answer(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path
) -> None:
    spy.fixed = "It moves at 1 second."
    r = invoke("ask", two_clips, "What happens?", "--model", tiny_qwen25_path, *NEW)
    assert r.exit_code == 0, r.stderr
    a, b = r.stdout.index("a.mp4"), r.stdout.index("b.mp4")
    assert a < r.stdout.index(spy.fixed) < b  # each answer under its file's name
    assert r.stdout.count("times in the source video") == 2
    assert r.stderr.count("prompt tokens") == 2


def test_together_is_one_record(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, tiny_image: str
) -> None:
    r = invoke(
        "ask", tiny_clip, tiny_image, "What is shown?", "--together",
        "--model", tiny_qwen25_path, *NEW, "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert rec["path"] == [tiny_clip, tiny_image]
    clip, image = budget(tiny_qwen25_path, tiny_clip), budget(tiny_qwen25_path, tiny_image)
    assert rec["frames"] == clip["frames"]
    assert rec["visual_tokens"] == clip["visual_tokens"] + image["visual_tokens"]
    assert spy.loaded == 1 and len(spy.questions) == 1


def test_an_image_has_no_times(
    spy: Spy, tiny_qwen25_path: Path, tiny_image: str, tmp_path: Path
) -> None:
    # a clock read off a photo is no time of a video: no times, no subtitles
    spy.fixed = "The clock shows 10:10, open 9:00-17:00."
    srt = tmp_path / "photo.srt"
    r = invoke(
        "ask", tiny_image, "What time is it?", "--model", tiny_qwen25_path, *NEW, "--json",
        "--srt", srt,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert rec["times"] == [] and rec["subtitles"] == [] and not srt.exists()


def test_together_with_two_videos_leaves_times_unmapped(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, tiny_image: str, tmp_path: Path
) -> None:
    """Which video a stated second belongs to is unknown: no source seconds, no evidence."""
    other = make_clip(tmp_path / "other.mp4", size=(128, 96), fps=8, seconds=4)
    spy.fixed = BALL
    shots = tmp_path / "shots"
    r = invoke(
        "ask", tiny_clip, other, "Where is the ball?", "--together", "--start", "1",
        "--model", tiny_qwen25_path, *NEW, "--json", "--evidence", shots,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert [(t["start_s"], t["end_s"], t["mapped"]) for t in rec["times"]] == [
        (0.5, 0.5, False), (1.0, 1.5, False), (9.0, 9.0, False),
    ]  # fmt: skip
    assert "evidence" not in rec and not shots.exists()
    (warning,) = [line for line in stderr_lines(r) if "warning" in line]
    assert "2 videos in one prompt" in warning and "not mapped" in warning

    r = invoke(
        "ask", tiny_clip, tiny_image, "Where is the ball?", "--together", "--start", "1",
        "--model", tiny_qwen25_path, *NEW, "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)  # one video and an image: mapped through the video's plan
    assert all(t["mapped"] for t in rec["times"]) and rec["times"][0]["start_s"] > 1.0
    assert not [line for line in stderr_lines(r) if "warning" in line]

    r = invoke(
        "ask", tiny_clip, other, "Where is the ball?", "--together",
        "--model", tiny_qwen25_path, *NEW,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "times as the model stated them" in r.stdout
    assert "times in the source video" not in r.stdout


# ---------------------------------------------------------------- times, subtitles, evidence


def test_times_are_source_seconds(spy: Spy, tiny_qwen25_path: Path, tiny_clip: str) -> None:
    spy.fixed = BALL
    r = invoke(
        "ask", tiny_clip, "Where is the ball?", "--start", "1", "--end", "3",
        "--model", tiny_qwen25_path, *NEW, "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert rec["answer"] == BALL
    plan = plan_of(tiny_qwen25_path, tiny_clip, start=1.0, end=3.0)
    assert (rec["frames"], rec["visual_tokens"]) == (plan.frames, plan.visual_tokens)
    appears, leaves, back = rec["times"]

    assert (appears["model_start_s"], appears["model_end_s"]) == (0.5, 0.5)
    assert (
        appears["start_s"]
        == appears["end_s"]
        == pytest.approx(plan.time_axis().source_seconds(0.5))
    )
    assert 1.0 < appears["start_s"] < 2.0  # source seconds: after --start, not the model's 0.5
    assert appears["start_hms"] == format_hms(appears["start_s"])
    assert appears["start_hms"] == f"00:00:{appears['start_s'] + 1e-9:04.1f}"
    assert not appears["clipped"] and not appears["outside"] and appears["mapped"]

    assert leaves["start_s"] == pytest.approx(plan.time_axis().source_seconds(1.0))
    assert leaves["end_s"] == pytest.approx(plan.time_axis().source_seconds(1.5))
    assert 2.0 <= leaves["start_s"] < leaves["end_s"] <= 3.0
    assert leaves["end_hms"] == format_hms(leaves["end_s"])

    clip_end = plan.shown_end_s  # the last frame is shown one frame time, up to --end
    assert back["model_start_s"] == 9.0
    assert back["outside"] and back["clipped"]
    assert back["start_s"] == back["end_s"] == pytest.approx(clip_end)


def test_subtitles_have_the_mapped_times(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    spy.fixed = BALL
    srt, vtt = tmp_path / "ball.srt", tmp_path / "sub" / "ball.vtt"
    r = invoke(
        "ask", tiny_clip, "Where is the ball?", "--start", "1", "--end", "3",
        "--model", tiny_qwen25_path, *NEW, "--json", "--srt", srt, "--vtt", vtt,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    plan = plan_of(tiny_qwen25_path, tiny_clip, start=1.0, end=3.0)
    a = round(plan.time_axis().source_seconds(0.5), 6)
    b, c = (
        round(plan.time_axis().source_seconds(1.0), 6),
        round(plan.time_axis().source_seconds(1.5), 6),
    )
    end = round(plan.shown_end_s, 6)
    first = BALL.split(". ")[0] + "."
    # the instant's 2 s stop at the clip's end; the time outside the clip has no cue
    cues = sorted([(a, min(a + 2.0, end), first), (b, c, first)])
    assert srt.read_text() == "\n".join(
        f"{n}\n{srt_time(s)} --> {srt_time(e)}\n{text}\n" for n, (s, e, text) in enumerate(cues, 1)
    )
    assert vtt.read_text() == "WEBVTT\n\n" + "\n".join(
        f"{srt_time(s, '.')} --> {srt_time(e, '.')}\n{text}\n" for s, e, text in cues
    )
    assert f"wrote {srt}" in r.stderr and f"wrote {vtt}" in r.stderr
    assert records(r.stdout)[0]["times"][0]["start_s"] == a


def test_subtitles_for_several_inputs_go_into_a_folder(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, tmp_path: Path
) -> None:
    spy.fixed = "A dot moves from 0.5 to 1.0 seconds."
    out = tmp_path / "subs"
    r = invoke(
        "ask", two_clips, "What moves?", "--model", tiny_qwen25_path, *NEW,
        "--srt", out, "--vtt", out, "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert shown(out) == ["a.srt", "a.vtt", "b.srt", "b.vtt"]
    for rec in records(r.stdout):
        stem = Path(rec["path"]).stem
        (span,) = rec["times"]
        plan = plan_of(tiny_qwen25_path, rec["path"])
        assert span["start_s"] == pytest.approx(plan.time_axis().source_seconds(0.5))
        cue = f"{srt_time(span['start_s'])} --> {srt_time(span['end_s'])}"
        assert (out / f"{stem}.srt").read_text() == f"1\n{cue}\n{spy.fixed}\n"
        assert cue.replace(",", ".") in (out / f"{stem}.vtt").read_text()


def test_inputs_with_the_same_name_keep_their_own_subtitles_and_evidence(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, tmp_path: Path
) -> None:
    """x/a.mp4 and y/a.mp4: the second answer's files do not overwrite the first's."""
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    first, second = tmp_path / "x" / "a.mp4", tmp_path / "y" / "a.mp4"
    shutil.copy(two_clips / "a.mp4", first)
    shutil.copy(two_clips / "b.mp4", second)
    spy.fixed = "A dot moves from 0.5 to 1.0 seconds."
    out, ev = tmp_path / "subs", tmp_path / "ev"
    r = invoke(
        "ask", first, second, "What moves?", "--model", tiny_qwen25_path, *NEW,
        "--srt", out, "--evidence", ev, "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert shown(out) == ["a-2.srt", "a.srt"]
    recs = records(r.stdout)
    assert [Path(rec["path"]) for rec in recs] == [first, second]
    for rec, name in zip(recs, ["a", "a-2"], strict=True):
        (span,) = rec["times"]
        cue = f"{srt_time(span['start_s'])} --> {srt_time(span['end_s'])}"
        assert (out / f"{name}.srt").read_text() == f"1\n{cue}\n{spy.fixed}\n"
        assert rec["evidence"] and all(Path(p).name.startswith(f"{name}_") for p in rec["evidence"])
    saved = shown(ev)
    assert saved == sorted(Path(p).name for rec in recs for p in rec["evidence"])
    assert len(saved) == 4


def test_subtitles_for_several_inputs_refuse_a_file(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, tmp_path: Path
) -> None:
    target = tmp_path / "taken.srt"
    target.write_text("mine\n")
    r = invoke("ask", two_clips, "q?", "--model", tiny_qwen25_path, *NEW, "--srt", target)
    assert r.exit_code == 2 and "folder" in r.stderr
    assert spy.loaded == 0 and target.read_text() == "mine\n"


def test_evidence_frames(spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path) -> None:
    from PIL import Image

    spy.fixed = BALL
    folder = tmp_path / "evidence"
    args = ("ask", tiny_clip, "Where is the ball?", "--start", "1", "--end", "3")
    r = invoke(*args, "--model", tiny_qwen25_path, *NEW, "--json", "--evidence", folder)
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    inside = [t for t in rec["times"] if not t["outside"]]
    seconds = sorted({t["start_s"] for t in inside} | {t["end_s"] for t in inside})
    assert len(seconds) == 3 and len(rec["evidence"]) == 3  # the outside time has none
    assert shown(folder) == sorted(Path(p).name for p in rec["evidence"])
    for path, image in zip(rec["evidence"], frames_at(tiny_clip, seconds), strict=True):
        with Image.open(path) as saved:
            assert saved.format == "PNG" and saved.size == (160, 120)
            assert saved.convert("RGB").tobytes() == image.tobytes()  # the frame at that time

    human = invoke(*args, "--model", tiny_qwen25_path, *NEW, "--evidence", tmp_path / "again")
    assert human.exit_code == 0, human.stderr
    listed = [x.removeprefix("evidence: ") for x in human.stdout.splitlines() if "evidence:" in x]
    assert [Path(p).name for p in listed] == [Path(p).name for p in rec["evidence"]]
    assert all(Path(p).is_file() for p in listed)


def test_evidence_that_cannot_be_saved_keeps_the_answer(
    spy: Spy,
    tiny_qwen25_path: Path,
    tiny_clip: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vlcli.errors import InputError

    def broken(path: str, seconds: Any) -> Any:
        raise InputError("corrupt frame data", path)

    monkeypatch.setattr("vlcli.media.frames.frames_at", broken)
    spy.fixed = BALL
    r = invoke(
        "ask", tiny_clip, "Where?", "--model", tiny_qwen25_path, *NEW, "--json",
        "--evidence", tmp_path / "ev",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert rec["answer"] == BALL and "evidence" not in rec
    (line,) = stderr_lines(r)
    assert "evidence frames not saved" in line and "corrupt frame data" in line


def test_the_times_table_says_a_span_was_stated_end_first(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    """As --json's ``reversed``: the table shows the span in order and says it was reversed."""
    spy.fixed = "It rolls from 1.5 to 0.5 seconds."
    r = invoke("ask", tiny_clip, "When?", "--model", tiny_qwen25_path, *NEW)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(spy.fixed + "\n")  # the streamed answer, then the table
    (row,) = [line for line in r.stdout[len(spy.fixed) :].splitlines() if "rolls" in line]
    assert "reversed" in row


def test_human_output_streams_then_tabulates(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    spy.fixed = BALL
    args = ("ask", tiny_clip, "Where is the ball?", "--start", "1", "--end", "3")
    r = invoke(*args, "--model", tiny_qwen25_path, *NEW)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(BALL + "\n")  # the streamed answer first
    table = r.stdout[len(BALL) :]
    assert "times in the source video" in table
    plan = plan_of(tiny_qwen25_path, tiny_clip, start=1.0, end=3.0)
    start = plan.time_axis().source_seconds(0.5)
    seconds = f"{start:.3f}".rstrip("0").rstrip(".")  # to the millisecond, as in the JSON
    row = next(line for line in table.splitlines() if format_hms(start) in line)
    assert row.split()[0] == seconds  # the seconds and the clock time of the same value
    assert "outside the clip" in table  # 9 s of a 3 s clip
    assert "\x1b[" not in r.stdout
    (figures,) = [x for x in stderr_lines(r) if "prompt tokens" in x]
    assert "generated" in figures and "prefill" in figures
    assert "prompt tokens" not in r.stdout


# ---------------------------------------------------------------- tasks


@pytest.mark.parametrize(
    ("task", "question", "answer", "expected"),
    [
        ("ground", "When does the ball bounce?", "0.5 - 1.5", [(0.5, 1.5)]),
        (
            "caption",
            "",
            '[{"start_time": 0.0, "end_time": 1.0, "description": "A square appears."}, '
            '{"start_time": 1.0, "end_time": 2.5, "description": "A ball rolls."}]',
            [(0.0, 1.0), (1.0, 2.5)],
        ),
    ],
)
def test_task_prompts(
    spy: Spy,
    tiny_qwen25_path: Path,
    tiny_clip: str,
    task: str,
    question: str,
    answer: str,
    expected: list[tuple[float, float]],
) -> None:
    spy.fixed = answer
    given = [question] if question else []  # caption needs no question
    r = invoke(
        "ask", tiny_clip, *given, "--task", task, "--model", tiny_qwen25_path, *NEW, "--json"
    )
    assert r.exit_code == 0, r.stderr
    assert spy.questions == [build_prompt(task, question)]  # what the model received
    (rec,) = records(r.stdout)
    assert rec["question"] == question and rec["task"] == task
    plan = plan_of(tiny_qwen25_path, tiny_clip)
    assert [(t["model_start_s"], t["model_end_s"]) for t in rec["times"]] == expected
    for t, (s, e) in zip(rec["times"], expected, strict=True):
        assert t["start_s"] == pytest.approx(plan.time_axis().source_seconds(s))
        assert t["end_s"] == pytest.approx(plan.time_axis().source_seconds(e))
    if task == "caption":
        assert [t["text"] for t in rec["times"]] == ["A square appears.", "A ball rolls."]


# ---------------------------------------------------------------- errors


def test_missing_model_folder(spy: Spy, tiny_clip: str, tmp_path: Path) -> None:
    r = invoke("ask", tiny_clip, "q?", "--model", tmp_path / "no-such-model", *NEW)
    assert r.exit_code == 4
    (line,) = stderr_lines(r)
    assert "--model PATH" in line and "no-such-model" in line
    assert r.stdout == "" and spy.loaded == 0


def test_hub_id_not_cached_offline(
    spy: Spy, tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    started = time.perf_counter()
    r = invoke("ask", tiny_clip, "q?", *NEW)  # the default model
    assert time.perf_counter() - started < 5
    assert r.exit_code == 4
    (line,) = stderr_lines(r)
    assert "HF_HUB_OFFLINE" in line and "--model PATH" in line
    assert spy.loaded == 0


def test_hub_that_never_answers_fails_fast(
    spy: Spy, tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blackhole_hub: str
) -> None:
    """huggingface_hub's first request has no read timeout: vlcli bounds the wait itself."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", blackhole_hub)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("vlcli.models.locate.HUB_TIMEOUT_S", 0.5)
    started = time.perf_counter()
    r = invoke("ask", tiny_clip, "q?", "--model", "Qwen/Qwen2.5-VL-7B-Instruct", *NEW)
    assert time.perf_counter() - started < 3
    assert r.exit_code == 4
    (line,) = stderr_lines(r)
    assert "did not answer within 0.5 s" in line and "--model PATH" in line


def test_download_from_the_hub_then_run_offline(
    tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    """A hub id not yet cached: the real huggingface_hub client fetches it from a local stand-in
    of the hub (HF_ENDPOINT), only the files a model needs; the next run finds it in the cache
    with the hub gone and HF_HUB_OFFLINE set. Subprocesses, so that huggingface_hub reads its
    endpoint and cache from the environment as it does for a user."""
    from helpers_hub import serve_hub

    repo = tmp_path / "repo"
    shutil.copytree(tiny_qwen25_path, repo)
    (repo / "pytorch_model.bin").write_bytes(b"pickled weights vlcli must never fetch")
    (repo / "README.md").write_text("# a model card\n")
    (repo / "model.safetensors.index.json").unlink(missing_ok=True)
    repo_id = "tiny-org/Tiny-Qwen2.5-VL"
    cache = tmp_path / "hf-cache"
    command = [sys.executable, "-m", "vlcli", "ask", tiny_clip, "What happens?"]
    command += ["--model", repo_id, *NEW, "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_CACHE=str(cache), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1")

    with serve_hub(repo_id, repo) as hub:
        first = subprocess.run(
            command, capture_output=True, text=True, env={**env, "HF_ENDPOINT": hub.url}
        )
    assert first.returncode == 0, first.stderr
    (record,) = records(first.stdout)
    assert record["path"] == tiny_clip and record["model"] == repo_id
    assert f"{repo_id}: not in the local Hugging Face cache: downloading it" in first.stderr
    fetched = set(hub.downloaded())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= fetched
    assert not fetched & {"pytorch_model.bin", "README.md"}
    snapshot = cache / "models--tiny-org--Tiny-Qwen2.5-VL" / "snapshots"
    (folder,) = snapshot.iterdir()
    assert not (folder / "pytorch_model.bin").exists()

    second = subprocess.run(
        command, capture_output=True, text=True, env={**env, "HF_HUB_OFFLINE": "1"}
    )
    assert second.returncode == 0, second.stderr
    assert "downloading" not in second.stderr
    assert records(second.stdout)[0]["frames"] == record["frames"]


def test_bad_inputs_among_good_ones(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, not_media: str, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.mp4"
    r = invoke(
        "ask", not_media, tiny_clip, missing, "What happens?",
        "--model", tiny_qwen25_path, *NEW, "--json",
    )  # fmt: skip
    assert r.exit_code == 3
    recs = records(r.stdout)
    answered = [x for x in recs if "error" not in x]
    assert [x["path"] for x in answered] == [tiny_clip]
    assert sorted(x["path"] for x in recs if "error" in x) == sorted([not_media, str(missing)])
    lines = stderr_lines(r)
    assert len(lines) == 2 and all(x.startswith("vlcli:") for x in lines)
    assert "Traceback" not in r.stderr and spy.loaded == 1


def test_only_bad_inputs_do_not_load_the_model(
    spy: Spy, tiny_qwen25_path: Path, not_media: str
) -> None:
    r = invoke("ask", not_media, "What happens?", "--model", tiny_qwen25_path, *NEW)
    assert r.exit_code == 3 and spy.loaded == 0
    assert len(stderr_lines(r)) == 1


def test_media_without_a_question_runs_the_caption_task(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    """`vlcli ask video.mp4`: dense captions with times, said in one stderr line."""
    r = invoke("ask", tiny_clip, "--model", tiny_qwen25_path, *NEW, "--json")
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert rec["task"] == "caption" and rec["question"] == ""
    assert spy.questions == [build_prompt("caption", "")]
    assert any("no question given" in line for line in stderr_lines(r))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{clip}", "q?", "--task", "bogus"], "--task"),
        (["What is in the video?"], "media"),
        (["{clip}", "  "], "needs a question"),
        (["{clip}", "b.mpp4"], "'b.mpp4', looks like a file name but there is no such file"),
        (["{clip}", "clips/b.mp4"], "looks like a file name"),
        (["{clip}", "--task", "ground"], "--task ground needs the question"),
        (["{clip}", "q?", "--temperature", "inf"], "--temperature must be zero or a finite"),
        (["{clip}", "q?", "--nframes", "1"], "rounds to 0"),
        (["{clip}", "q?", "--max-pixels", "100"], "less than one visual token"),
        (["{clip}", "q?", "--start", "soon"], "not a time"),
    ],
)
def test_usage_errors(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, args: list[str], message: str
) -> None:
    r = invoke("ask", *[a.format(clip=tiny_clip) for a in args], "--model", tiny_qwen25_path)
    assert r.exit_code == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(stderr_lines(r)) == 1 and spy.loaded == 0 and r.stdout == ""


# ---------------------------------------------------------------- memory


def test_memory_check_stops_before_decoding(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared: list[Any] = []
    real_prepare = TransformersBackend.prepare
    monkeypatch.setattr(TransformersBackend, "free_memory_bytes", lambda self: 2**20)  # 1 MiB free
    monkeypatch.setattr(
        TransformersBackend,
        "prepare",
        lambda self, *a, **k: prepared.append(a) or real_prepare(self, *a, **k),
    )
    r = invoke("ask", tiny_clip, "What happens?", "--model", tiny_qwen25_path, *NEW)
    assert r.exit_code == 5
    (line,) = stderr_lines(r)
    for option in ("--fps", "--max-pixels", "--total-pixels", "--force"):
        assert option in line
    assert "0.0 GiB free" in line and "420 visual tokens" in line
    assert prepared == [] and spy.questions == [] and r.stdout == ""  # nothing was decoded

    forced = invoke(
        "ask", tiny_clip, "What happens?", "--model", tiny_qwen25_path, *NEW, "--force", "--json"
    )
    assert forced.exit_code == 0, forced.stderr
    assert len(prepared) == 1 and len(records(forced.stdout)) == 1


def test_weights_that_do_not_fit_stop_before_loading(
    tiny_qwen25_path: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host (or GPU) has less memory available than the weights take: one line, status 5,
    nothing loaded; --force loads and answers."""
    loads: list[str] = []
    real_load = TransformersBackend._load
    monkeypatch.setattr(
        "vlcli.backends.transformers.backend.available_memory_bytes", lambda device: 2**16
    )  # 64 KiB
    monkeypatch.setattr(
        TransformersBackend,
        "_load",
        lambda self, folder: loads.append(folder) or real_load(self, folder),
    )
    r = invoke("ask", tiny_clip, "What happens?", "--model", tiny_qwen25_path, *NEW)
    assert r.exit_code == 5 and r.stdout == "" and loads == []
    (line,) = stderr_lines(r)
    assert "the model's weights need 745 KiB in float32 and 64 KiB of memory is available" in line
    assert "--dtype bfloat16 halves it" in line and "--force" in line

    forced = invoke(
        "ask", tiny_clip, "What happens?", "--model", tiny_qwen25_path, *NEW, "--force", "--json"
    )
    assert forced.exit_code == 0, forced.stderr
    assert len(loads) == 1 and len(records(forced.stdout)) == 1


def test_memory_check_goes_on_with_the_other_inputs(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TransformersBackend, "free_memory_bytes", lambda self: 2**20)
    r = invoke("ask", two_clips, "What happens?", "--model", tiny_qwen25_path, *NEW, "--json")
    assert r.exit_code == 5
    assert [Path(x["path"]).name for x in records(r.stdout)] == ["a.mp4", "b.mp4"]
    assert all("GiB free" in x["error"] for x in records(r.stdout))
    assert spy.loaded == 1


def test_a_failure_while_decoding_wipes_the_progress_line(
    tiny_qwen25_path: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, the progress display shows the decoding, and the error does not land after
    it: it starts on a line the display has erased, and the display is wiped at the end."""
    import io

    from rich.console import Console

    from vlcli.cli import views as render
    from vlcli.errors import InputError

    def failing_prepare(self: TransformersBackend, prompt: Any, on_frames: Any = None) -> Any:
        on_frames(2, 6)
        raise InputError(
            "the decoder failed (invalid data): is it truncated or corrupt?", prompt.media[0][0]
        )

    buffer = io.StringIO()
    monkeypatch.setattr(render, "err", Console(file=buffer, force_terminal=True, width=300))
    monkeypatch.setattr(TransformersBackend, "prepare", failing_prepare)
    r = invoke("ask", tiny_clip, "What happens?", "--model", tiny_qwen25_path, *NEW)
    assert r.exit_code == 3
    shown = buffer.getvalue()
    progress = shown.index("decoding frames 2/6")
    failed = shown.index("the decoder failed")
    erase = "\x1b[2K"
    line_start = shown.rindex(erase, progress, failed) + len(erase)
    before = re.sub(r"\x1b\[[0-9;]*m", "", shown[line_start:failed])  # colours aside
    assert re.fullmatch(r"(\x1b\[1A\x1b\[2K)*vlcli: [^\n\r\x1b]*", before), before
    assert shown.rindex(erase) > shown.rindex("decoding frames")  # wiped when the run ends
    assert r.stdout == ""


@pytest.mark.parametrize("where", ["preparing", "generating"])
def test_cuda_out_of_memory_is_one_line(
    where: str, tiny_qwen25_path: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device running out of memory while the inputs are built or while the model runs."""
    import torch

    from vlcli.backends.transformers import backend, generation

    def oom(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    if where == "preparing":
        monkeypatch.setattr(backend, "build_inputs", oom)
    else:  # inside model.generate: the streamer receives the prompt first
        monkeypatch.setattr(generation.TextStream, "put", oom)
    r = invoke("ask", tiny_clip, "What happens?", "--model", tiny_qwen25_path, *NEW)
    assert r.exit_code == 5
    (line,) = stderr_lines(r)
    assert "ran out of memory" in line and "--fps" in line and "Traceback" not in r.stderr


# ---------------------------------------------------------------- the other families


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "qwen35", "qwen35_moe"])
def test_other_families(
    spy: Spy, request: pytest.FixtureRequest, tiny_clip: str, family: str
) -> None:
    model: Path = request.getfixturevalue(f"tiny_{family}_path")
    spy.fixed = "The ball is seen at 1.5 seconds."
    # Qwen3.5 thinks by default (its prompt opens <think>): the forced text is an answer only
    # after the template's empty reasoning, which --no-think asks for
    no_think = ["--no-think"] if family.startswith("qwen35") else []
    r = invoke(
        "ask", tiny_clip, "Where is the ball?", "--start", "1", "--end", "3",
        "--model", model, *NEW, "--json", *no_think,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    planned = budget(model, tiny_clip, "--start", "1", "--end", "3")
    assert (rec["frames"], rec["visual_tokens"]) == (planned["frames"], planned["visual_tokens"])
    assert set(rec["timings"]) == TIMINGS and rec["model"] == str(model)
    (span,) = rec["times"]
    plan = plan_of(model, tiny_clip, start=1.0, end=3.0)
    assert span["model_start_s"] == 1.5 and not span["outside"]
    if family != "qwen2":  # shown source timestamps as text: its seconds are source seconds
        assert span["start_s"] == pytest.approx(1.5)
    else:  # counts from the first frame of the clip it saw
        assert span["start_s"] == pytest.approx(plan.time_axis().source_seconds(1.5))
        assert span["start_s"] > 2.0
