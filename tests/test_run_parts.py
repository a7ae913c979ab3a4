"""The collaborators of a run of ``ask`` (vlcli.run.ask), each on its own: the records to make
and what a resumed run skips (run.inputs), records and statuses (run.records), windows and
their merge (run.windowed), the files an answer gets (run.answer_files), one prompt through a
backend (run.answering). The whole run is tested through the CLI (test_cli_batch.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from vlcli.backends import Answer
from vlcli.errors import ExitStatus, InputError, VlcliError
from vlcli.models.families import QWEN2_5_VL, ModelSpec
from vlcli.outputs.files import SubtitleTarget, write_owned
from vlcli.outputs.ledger import Ledger, placed_key
from vlcli.planning.plan import SamplingOptions, VideoFacts, plan_image
from vlcli.planning.windows import plan_windows
from vlcli.run.answer_files import AnswerFiles
from vlcli.run.answering import Answering
from vlcli.run.inputs import Job, Task, how_to_go_on, skip_recorded, tasks_of
from vlcli.run.pipeline import Interrupts, Ready
from vlcli.run.prompt import AskResult, AskSettings
from vlcli.run.records import Records, worse
from vlcli.run.windowed import Windows, window_jobs
from vlcli.times.parse import TimeSpan


class Seen:
    """A view that keeps what it is told, by kind."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def _add(self, kind: str, *args: Any) -> None:
        self.calls.append((kind, args))

    def said(self, kind: str) -> list[Any]:
        return [args for k, args in self.calls if k == kind]

    def begin(self, total: int, done: int) -> None:
        self._add("begin", total, done)

    def stage(self, label: str, stage: str) -> None:
        self._add("stage", label, stage)

    def decoding(self, label: str, done: int, total: int) -> None:
        self._add("decoding", label, done, total)

    def start(self, paths: list[str], title: str | None, several: bool) -> Any:
        self._add("start", title, several)
        return lambda text: self._add("text", text)

    def window_answered(self, label: str, seconds: float) -> None:
        self._add("window_answered", label)

    def result(self, record: dict[str, Any], result: Any) -> None:
        self._add("result", record)

    def failure(self, paths: list[str], exc: Any, record: dict[str, Any]) -> None:
        self._add("failure", record)

    def finished(self, label: str, status: str, seconds: float) -> None:
        self._add("finished", label, status)

    def info(self, message: str) -> None:
        self._add("info", message)

    def warn(self, message: str) -> None:
        self._add("warn", message)

    def close(self) -> None: ...


def key(name: str) -> str:
    return placed_key(["settings", [name]], [name])


def _windows() -> list[Any]:
    """The three windows of a 30 s video, asked as 12 s with 2 s of overlap (made even)."""
    facts = VideoFacts(64, 48, 300, 10.0)  # 300 frames at 10 fps
    return plan_windows(facts, SamplingOptions(fps=1.0), QWEN2_5_VL, 12.0, 2.0)


# ---------------------------------------------------------------- inputs and resuming


def test_each_input_is_a_task_or_all_are_one_together() -> None:
    keys: list[list[str]] = []

    def key_of(facts: Any) -> str:  # keyed by each input's facts: here its name
        names = [os.path.basename(f["path"]) for f in facts]
        keys.append(names)
        return "+".join(names)

    tasks = tasks_of(["a.mp4", "b.png"], ["a", "b"], False, [key_of])
    assert [(t.paths, t.stem, t.key) for t in tasks] == [
        (["a.mp4"], "a", "a.mp4"),
        (["b.png"], "b", "b.png"),
    ]
    (together,) = tasks_of(["a.mp4", "b.png"], ["a", "b"], True, [key_of])
    assert (together.paths, together.stem, together.key) == (["a.mp4", "b.png"], "a", "a.mp4+b.png")
    assert together.label == "2 inputs together" and tasks[0].label == "a.mp4"


def test_a_resumed_run_skips_what_is_recorded(tmp_path: Path) -> None:
    out = str(tmp_path / "answers.jsonl")
    ledger = Ledger.open(out, resume=False)
    ledger.append({"key": key("a"), "status": "ok"})
    ledger.append({"key": key("b"), "status": "failed"})
    tasks = [Task([n], n, key(n)) for n in ("a", "b", "c")]
    view = Seen()
    try:
        assert [t.paths for t in skip_recorded(tasks, ledger, False, view)] == [["c"]]
        (said,) = view.said("info")
        assert "2 of 3 inputs already have a record" in said[0]
        assert "1 of them failed: --retry-failed" in said[0]
        again = skip_recorded(tasks, ledger, True, Seen())
        assert [t.paths for t in again] == [["b"], ["c"]]  # the failed one is tried again
    finally:
        ledger.close()
    assert skip_recorded(tasks, None, False, view) == tasks  # no output file: nothing skipped


def test_an_interrupt_says_how_to_go_on(tmp_path: Path) -> None:
    assert how_to_go_on(1, 1, None, False) == (
        "1 of 1 input done; nothing records them for resuming (-o FILE makes a run resumable)"
    )
    ledger = Ledger.open(str(tmp_path / "a.jsonl"), resume=False)
    try:
        assert how_to_go_on(2, 5, ledger, False).endswith("with --resume to go on")
        assert how_to_go_on(2, 5, ledger, True).endswith("run the same command again to go on")
    finally:
        ledger.close()


# ---------------------------------------------------------------- records and statuses


def test_the_worst_status_is_the_most_telling() -> None:
    assert worse(None, ExitStatus.INPUT) == ExitStatus.INPUT
    assert worse(ExitStatus.INPUT, ExitStatus.MEMORY) == ExitStatus.MEMORY
    assert worse(ExitStatus.MEMORY, ExitStatus.ERROR) == ExitStatus.MEMORY
    assert worse(ExitStatus.ERROR, ExitStatus.INPUT) == ExitStatus.ERROR


def test_a_failure_is_recorded_counted_and_shown(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    ledger = Ledger.open(str(out), resume=False)
    view = Seen()
    records = Records(ledger, view, Interrupts())
    task = Task(["a.mp4"], "a", key("a"))
    split_off = Task(["b.mp4"], "a", key("b"), counted=False)  # a bad input of --together
    try:
        records.failed(task, InputError("cannot be read", "a.mp4"))
        records.failed(split_off, VlcliError("a bug", ExitStatus.ERROR))
        assert ledger.status(key("a")) == "failed" and ledger.status(key("b")) == "failed"
    finally:
        ledger.close()
    assert task.closed and split_off.closed
    assert records.worst == ExitStatus.ERROR and records.done == 1  # only the counted one
    assert [args[1] for args in view.said("finished")] == ["failed (status 3)"]
    assert [r[0]["path"] for r in view.said("failure")] == ["a.mp4", "b.mp4"]


def test_an_output_file_that_cannot_be_written_stops_the_run(tmp_path: Path) -> None:
    class Full:
        path = "answers.jsonl"

        def append(self, record: Any) -> None:
            raise OSError(28, "No space left on device")

    records = Records(Full(), Seen(), Interrupts())  # type: ignore[arg-type]
    records.done = 4
    with pytest.raises(VlcliError) as caught:
        records.append({"key": "k", "status": "ok"})
    assert caught.value.status == ExitStatus.INPUT
    assert caught.value.message == (
        "cannot write --output answers.jsonl (No space left on device): the run stops with 4 "
        "inputs recorded"
    )


# ---------------------------------------------------------------- windows and their merge


def test_a_window_recorded_before_is_not_asked_again(tmp_path: Path) -> None:
    windows = _windows()
    assert len(windows) == 3
    task = Task(["v.mp4"], "v", key("v"))
    ledger = Ledger.open(str(tmp_path / "a.jsonl"), resume=False)
    try:
        first = next(window_jobs(Task(["v.mp4"], "v", key("v")), windows, ledger))
        assert isinstance(first, Job)
        ledger.append({"key": first.key, "status": "window", "parent": task.key, "answer": "x"})
        jobs = list(window_jobs(task, windows, ledger))
    finally:
        ledger.close()
    assert task.windows == 3
    assert isinstance(jobs[0], Ready) and jobs[0].result["answer"] == "x"
    assert [isinstance(j, Job) for j in jobs[1:]] == [True, True]
    assert len({j.key if isinstance(j, Job) else j.item.key for j in jobs}) == 3


def test_windows_are_recorded_each_and_merged_after_the_last(tmp_path: Path) -> None:
    ledger = Ledger.open(str(tmp_path / "a.jsonl"), resume=False)
    view = Seen()
    records = Records(ledger, view, Interrupts())
    windowed = Windows([AskSettings("When?")], "tiny", records, view)
    task = Task(["v.mp4"], "v", key("v"))
    jobs = [j for j in window_jobs(task, _windows(), None) if isinstance(j, Job)]
    answers = ["It starts at 1 second.", "Nothing.", "It ends at 2 seconds."]
    merged: list[AskResult | None] = []
    try:
        for job, text in reversed(list(zip(jobs, answers, strict=True))):  # any order
            answer = Answer(text, prompt_tokens=10, generated_tokens=3, visual_tokens=5,
                            timings={"generate_s": 0.25})  # fmt: skip
            merged.append(windowed.answered(job, answer))
        assert [ledger.status(j.key) for j in jobs] == ["window"] * 3
        assert ledger.read(jobs[0].key)["parent"] == task.key  # type: ignore[index]
    finally:
        ledger.close()
    assert merged[:2] == [None, None]
    result = merged[2]
    assert result is not None
    assert result.answer.split("\n\n") == [
        "[00:00:00.0 to 00:00:11.3] It starts at 1 second.",
        "[00:00:09.3 to 00:00:20.7] Nothing.",
        "[00:00:18.7 to 00:00:30.0] It ends at 2 seconds.",
    ]
    assert (result.prompt_tokens, result.generated_tokens) == (30, 9)
    assert result.timings == {"generate_s": 0.75}
    assert [w["window"] for w in result.windows] == [0, 1, 2]
    assert result.span_windows == [0, 2]
    assert len(view.said("window_answered")) == 3
    unmapped = [w[0] for w in view.said("warn") if "could not be mapped" in w[0]]
    assert len(unmapped) == 2  # no time axis here: the times count from each window's start


# ---------------------------------------------------------------- the files an answer gets


def _result(path: str, times: list[TimeSpan]) -> AskResult:
    return AskResult([path], [], "q", "a", times, 1, 1, "tiny", {}, name="clip")


def test_an_answer_without_times_removes_only_vlcis_own_subtitles(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    write_owned(ours / "clip.srt", "1\n", "subtitles")
    (theirs / "clip.srt").write_text("mine\n")
    targets = [SubtitleTarget("srt", str(ours), True), SubtitleTarget("srt", str(theirs), True)]
    view = Seen()
    files = AnswerFiles(targets, None, [], view)
    task = Task(["clip.mp4"], "clip", key("clip"))
    result = _result("clip.mp4", [])
    assert files.write(task, result) is None
    assert result.subtitles == []
    assert not (ours / "clip.srt").exists() and (theirs / "clip.srt").read_text() == "mine\n"
    said = [args[0] for args in view.said("info")]
    assert said[0].endswith("(the one from an earlier run was removed)")
    assert said[1].endswith("no " + str(theirs / "clip.srt") + " written")


def test_a_subtitle_file_that_is_an_input_fails_that_input(tmp_path: Path) -> None:
    source = tmp_path / "clip.srt"
    source.write_text("an input\n")
    target = SubtitleTarget("srt", str(tmp_path), True)
    files = AnswerFiles([target], None, [str(source)], Seen())
    span = TimeSpan(1.0, 2.0, "x", source_start_s=1.0, source_end_s=2.0)
    error = files.write(Task([str(source)], "clip", key("c")), _result(str(source), [span]))
    assert isinstance(error, InputError) and "is an input: not overwritten" in error.message
    assert source.read_text() == "an input\n"


# ---------------------------------------------------------------- one prompt through a backend


class OneAnswer:
    """A Backend that answers every prompt with ``text``, streamed in two pieces."""

    name = "one-answer"

    def __init__(self, text: str, concurrency: int = 1) -> None:
        self.text, self.concurrency = text, concurrency
        self.spec = ModelSpec("tiny", QWEN2_5_VL, None, "built-in preset")

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name}

    def load(self) -> None: ...

    def check_fit(self, prompt: Any, prompt_tokens: int, options: Any) -> None: ...

    def prepare(self, prompt: Any, on_frames: Any = None) -> Any:
        return prompt

    def generate(self, prepared: Any, on_text: Any = None) -> Answer:
        half = len(self.text) // 2
        for piece in (self.text[:half], self.text[half:]):
            if on_text is not None:
                on_text(piece)
        return Answer(self.text, prompt_tokens=1, generated_tokens=2, visual_tokens=0)

    def close(self) -> None: ...


def _job() -> Job:
    image = plan_image(64, 48, SamplingOptions(), QWEN2_5_VL)
    return Job(Task(["a.png"], "a", key("a")), [image], key("a"))


@pytest.mark.parametrize("concurrency", [1, 2])
def test_an_answer_is_streamed_only_one_prompt_at_a_time(concurrency: int) -> None:
    view = Seen()
    backend = OneAnswer("It is a cat.", concurrency)
    answering = Answering(backend, [AskSettings("q")], SamplingOptions(), view,
                          threading.Event(), several=True)  # fmt: skip
    answer = answering.generate((_job(), None))
    assert answer.text == "It is a cat."
    streamed = "".join(args[0] for args in view.said("text"))
    assert streamed == ("It is a cat." if concurrency == 1 else "")
    assert view.said("start") == ([(None, True)] if concurrency == 1 else [])
    assert [args[1] for args in view.said("stage")] == ["prefill", "generating"]


def test_an_answer_waiting_for_its_server_is_the_displays_stage() -> None:
    """A server's answer that waits for the server to come back says so in the progress display
    (not "prefill" for minutes), and goes back to "prefill" when it is sent again."""

    class Waits(OneAnswer):
        def generate(self, prepared: Any, on_text: Any = None) -> Answer:
            on_text.waiting("waiting for the server (503 restarting), 0 s of 300")
            on_text.waiting("")
            return super().generate(prepared, on_text)

    view = Seen()
    answering = Answering(Waits("It is a cat."), [AskSettings("q")], SamplingOptions(), view,
                          threading.Event(), several=True)  # fmt: skip
    answering.generate((_job(), None))
    assert [args[1] for args in view.said("stage")] == [
        "prefill",
        "waiting for the server (503 restarting), 0 s of 300",
        "prefill",
        "generating",
    ]


def test_an_answer_that_is_not_valid_unicode_costs_only_its_characters() -> None:
    view = Seen()
    backend = OneAnswer("a\ud800b\udfffc")
    answering = Answering(backend, [AskSettings("q")], SamplingOptions(), view,
                          threading.Event(), several=False)  # fmt: skip
    answer = answering.generate((_job(), None))
    assert answer.text == "a\ufffdb\ufffdc"
    (warned,) = view.said("warn")
    assert "2 characters that are not valid Unicode" in warned[0]


def test_a_stopped_run_abandons_the_decoding_in_progress() -> None:
    from vlcli.run.inputs import Abandoned

    class Decoding(OneAnswer):
        def prepare(self, prompt: Any, on_frames: Any = None) -> Any:
            on_frames(1, 4)
            return prompt

    stopping = threading.Event()
    stopping.set()
    view = Seen()
    answering = Answering(Decoding("x"), [AskSettings("q")], SamplingOptions(), view,
                          stopping, several=False)  # fmt: skip
    with pytest.raises(Abandoned):
        answering.prepare(_job())
    assert view.said("decoding") == [("a.png", 0, 0)]  # the progress line is cleared
