"""The ordered pipeline (vlcli.run.pipeline) and a whole run (vlcli.run.ask) with several requests in
flight.

The model tests use the real tiny models (test_cli_batch.py). Here a small in-test backend with
``concurrency = 3`` stands in for a server, ONLY to test the pipeline's order and bounds: it
answers after a seeded random delay, so that later prompts often finish first.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vlcli.errors import InputError, Interrupted
from vlcli.run.pipeline import Interrupts, Outcome, Ready, run_ordered


class Tracker:
    """Counts what is held at once: prepared items not yet generated, generate calls running."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held = self.max_held = 0
        self.running = self.max_running = 0
        self.events: list[tuple[str, int]] = []
        self.generate_threads: set[str] = set()
        self.prepare_threads: set[str] = set()

    def note(self, what: str, n: int) -> None:
        with self.lock:
            self.events.append((what, n))


def make_steps(
    tracker: Tracker, delays: dict[int, float], fail_prepare: set[int], fail_generate: set[int]
):  # type: ignore[no-untyped-def]
    def prepare(n: int) -> int:
        tracker.prepare_threads.add(threading.current_thread().name)
        tracker.note("prepare", n)
        if n in fail_prepare:
            raise InputError("cannot decode", f"clip{n}")
        with tracker.lock:
            tracker.held += 1
            tracker.max_held = max(tracker.max_held, tracker.held)
        return n

    def generate(n: int) -> str:
        tracker.generate_threads.add(threading.current_thread().name)
        with tracker.lock:
            tracker.running += 1
            tracker.max_running = max(tracker.max_running, tracker.running)
        tracker.note("generate", n)
        time.sleep(delays.get(n, 0.0))
        with tracker.lock:
            tracker.running -= 1
            tracker.held -= 1
        tracker.note("generated", n)
        if n in fail_generate:
            raise InputError("out of luck", f"clip{n}")
        return f"answer {n}"

    return prepare, generate


@pytest.mark.parametrize("concurrency", [1, 3])
def test_records_come_in_input_order_with_failures(concurrency: int) -> None:
    rng = random.Random(7)
    n_items = 24
    delays = {n: rng.choice([0.0, 0.005, 0.02, 0.05]) for n in range(n_items)}
    tracker = Tracker()
    prepare, generate = make_steps(tracker, delays, fail_prepare={4, 11}, fail_generate={7})
    source: list[Any] = [
        Ready(n, error=InputError("not media", f"clip{n}")) if n in (2, 15) else n
        for n in range(n_items)
    ]
    finished: list[Outcome[int, str]] = []
    warmed: list[int] = []
    run_ordered(source, prepare, generate, finished.append, concurrency=concurrency,
                warm_up=lambda: warmed.append(len(finished)))  # fmt: skip
    assert [o.item for o in finished] == list(range(n_items))
    for o in finished:
        if o.item in (2, 4, 7, 11, 15):
            assert isinstance(o.error, InputError) and o.result is None
        else:
            assert o.result == f"answer {o.item}" and o.error is None
    assert warmed == [0]  # once, before anything was finished (while the first prepares)
    # bounds: at most `concurrency` generating, and prepared-ahead at most concurrency + 1
    assert tracker.max_running <= concurrency
    assert tracker.max_held <= concurrency + 1
    assert tracker.prepare_threads == {"vlcli-prepare"}
    if concurrency == 1:
        assert tracker.generate_threads == {threading.current_thread().name}  # where the model is
    else:
        assert tracker.max_running == concurrency  # it did keep several in flight
        # and answers did finish out of order, yet were recorded in order
        done = [n for what, n in tracker.events if what == "generated"]
        assert done != sorted(done)


def test_the_next_input_is_prepared_while_one_is_generated() -> None:
    """With one generator: prepare(i+1) starts before generate(i) ends; never two ahead."""
    tracker = Tracker()
    gate = threading.Event()

    def prepare(n: int) -> int:
        tracker.note("prepare", n)
        if n == 1:
            gate.set()
        return n

    def generate(n: int) -> int:
        tracker.note("generate", n)
        if n == 0:
            assert gate.wait(30)  # the worker prepares input 1 meanwhile
            time.sleep(0.05)  # room for a (wrong) prepare of input 2
        tracker.note("generated", n)
        return n

    run_ordered(range(4), prepare, generate, lambda o: tracker.note("finish", o.item))
    ev = tracker.events
    assert ev.index(("prepare", 1)) < ev.index(("generated", 0))
    assert ev.index(("prepare", 2)) > ev.index(("generated", 0))  # bounded: one ahead
    assert [n for what, n in ev if what == "finish"] == [0, 1, 2, 3]


def test_without_preparing_ahead_it_is_one_at_a_time() -> None:
    tracker = Tracker()
    prepare, generate = make_steps(tracker, {}, set(), set())
    out: list[Any] = []
    run_ordered(range(5), prepare, generate, lambda o: out.append(o.item), ahead=False)
    kinds = [what for what, _ in tracker.events]
    assert kinds == ["prepare", "generate", "generated"] * 5 and out == list(range(5))


def test_no_warm_up_when_every_item_failed_before_preparing() -> None:
    warmed: list[bool] = []
    out: list[Any] = []
    items = [Ready(n, error=InputError("missing", f"c{n}")) for n in range(3)]
    run_ordered(items, lambda n: n, lambda n: n, out.append, warm_up=lambda: warmed.append(True))
    assert warmed == [] and [o.item for o in out] == [0, 1, 2]


def test_a_broken_source_stops_the_run() -> None:
    def source() -> Any:
        yield 0
        raise RuntimeError("the folder went away")

    out: list[Any] = []
    with pytest.raises(RuntimeError, match="went away"):
        run_ordered(source(), lambda n: n, lambda n: n, out.append)


def test_an_error_in_finish_stops_the_run() -> None:
    def finish(o: Outcome[int, int]) -> None:
        if o.item == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ordered(range(10), lambda n: n, lambda n: n, finish)


def test_interrupts_are_held_while_a_record_is_written() -> None:
    order: list[str] = []
    with Interrupts() as interrupts:
        with pytest.raises(Interrupted) as caught:
            with interrupts.held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                order.append("written whole")
        assert caught.value.signum == signal.SIGTERM and caught.value.status == 143
        with pytest.raises(Interrupted) as caught:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
            order.append("never")
        assert caught.value.status == 130
    assert order == ["written whole"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back


# ---------------------------------------------------------------- a whole run, 3 in flight


class FakeServer:
    """A Backend with three requests in flight, for the run's order and bounds only."""

    name = "fake-server"
    concurrency = 3

    def __init__(self, spec: Any, seed: int = 3) -> None:
        self.spec = spec
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.held = self.max_held = self.running = self.max_running = 0
        self.loads = 0

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.spec.model}

    def load(self) -> None:
        self.loads += 1

    def check_fit(self, prompt: Any, prompt_tokens: int, options: Any) -> None:
        return None

    def prepare(self, prompt: Any, on_frames: Any = None) -> Any:
        with self.lock:
            self.held += 1
            self.max_held = max(self.max_held, self.held)
        return prompt

    def generate(self, prepared: Any, on_text: Any = None) -> Any:
        from vlcli.backends import Answer

        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            delay = self.rng.choice([0.2, 0.4, 0.8])  # slower than probing the next input
        time.sleep(delay)
        with self.lock:
            self.running -= 1
            self.held -= 1
        path = prepared.media[0][0]
        return Answer(text=f"{Path(path).name} at 0.5 seconds.", prompt_tokens=10,
                      generated_tokens=3, visual_tokens=5)  # fmt: skip

    def close(self) -> None:
        pass


class Collect:
    """A view that keeps what a run shows."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.lines: list[str] = []

    def begin(self, total: int, done: int) -> None: ...
    def stage(self, label: str, stage: str) -> None: ...
    def decoding(self, label: str, done: int, total: int) -> None: ...
    def start(self, paths: list[str], title: str | None, several: bool) -> Any:
        return None

    def window_answered(self, label: str, seconds: float) -> None: ...
    def result(self, record: dict[str, Any], result: Any) -> None:
        self.records.append(record)

    def failure(self, paths: list[str], exc: Any, record: dict[str, Any]) -> None:
        self.records.append(record)

    def finished(self, label: str, status: str, seconds: float) -> None: ...
    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(message)

    def close(self) -> None: ...


def test_a_run_with_three_in_flight_keeps_input_order(media_dir: Path, tmp_path: Path) -> None:
    from helpers_media import make_clip

    from vlcli.models.families import QWEN2_5_VL, ModelSpec
    from vlcli.run.ask import Outputs, RunOptions, run_ask
    from vlcli.run.prompt import AskSettings

    folder = media_dir / "twelve"
    paths = []
    for n in range(12):
        p = folder / f"c{n:02d}.mp4"
        if not p.exists():
            make_clip(p, size=(64, 48), fps=4, seconds=2)
        paths.append(str(p))
    paths.insert(5, str(folder / "missing.mp4"))
    backend = FakeServer(ModelSpec("fake", QWEN2_5_VL, None, "built-in preset"))
    view = Collect()
    out = tmp_path / "answers.jsonl"
    status = run_ask(
        backend, paths, [Path(p).stem for p in paths], [AskSettings("What?")],
        RunOptions(), view, Outputs(str(out)),
    )  # fmt: skip
    assert status == 3  # the missing one
    assert [r["path"] for r in view.records] == paths
    assert [r["status"] for r in view.records] == ["ok"] * 5 + ["failed"] + ["ok"] * 7
    assert all(
        r["answer"].startswith(Path(r["path"]).name) for r in view.records if r["status"] == "ok"
    )
    assert 2 <= backend.max_running <= 3 and backend.max_held <= 4 and backend.loads == 1
    import json

    assert [json.loads(x)["path"] for x in out.read_text().splitlines()] == paths


# A record that vlcli wrote before the record key was made from one settings object (issue 15):
# `ask` with the question "What?" and every default, answered by FakeServer, of a clip of
# 3,229 bytes at /tmp/h15fx2/c.mp4, by the code of main at aae6487 (the key in its place and
# version form). Its key is made of the settings' key (WRITTEN_BASE) and those facts.
WRITTEN_RECORD = (
    '{"key": "ee683838f98c6fd366dd6fbaa578ff53", "status": "ok", "path": "/tmp/h15fx2/c.mp4", '
    '"question": "What?", "task": "qa", "answer": "c.mp4 at 0.5 seconds.", "times": [{"start_s": '
    '0.5, "end_s": 0.5, "start_hms": "00:00:00.5", "end_hms": "00:00:00.5", "text": "c.mp4 at 0.5 '
    'seconds.", "raw": "0.5 seconds", "model_start_s": 0.5, "model_end_s": 0.5, "mapped": false, '
    '"clipped": false, "outside": false}], "frames": 4, "visual_tokens": 280, "prompt_tokens": 10, '
    '"generated_tokens": 3, "model": "fake", "timings": {}, "backend": {"backend": "fake-server", '
    '"model": "fake"}}'
)
WRITTEN_FACTS = {"path": "/tmp/h15fx2/c.mp4", "size": 3229, "mtime_ns": 1796299353990400573}
WRITTEN_BASE = "23e53ac5b12362fcfe6f41ec21aae2a6"


def test_a_ledger_written_before_issue_15_still_resumes(media_dir: Path, tmp_path: Path) -> None:
    """The key of the same options keeps its value: a record written by the earlier code is
    found by --resume and its input is not asked again."""
    import json

    from helpers_media import make_clip

    from vlcli.models.families import QWEN2_5_VL, ModelSpec
    from vlcli.outputs.ledger import input_facts, placed_key
    from vlcli.planning.plan import SamplingOptions
    from vlcli.run.ask import Outputs, RunOptions, input_key, run_ask, settings_key
    from vlcli.run.prompt import AskSettings, Generation

    written = json.loads(WRITTEN_RECORD)
    place = [WRITTEN_BASE, [WRITTEN_FACTS["path"]]]
    assert placed_key(place, [WRITTEN_FACTS]) == written["key"]
    backend = FakeServer(ModelSpec("fake", QWEN2_5_VL, None, "built-in preset"))
    assert settings_key(AskSettings("What?"), backend.identity()) == WRITTEN_BASE
    # every field of the settings, as the earlier code keyed them (also computed by it)
    sampling = SamplingOptions(fps=1.0, max_frames=16, max_pixels=200704, start=2.5, end=90.0)
    settings = AskSettings(
        "Where is the cat?", "ground", "Be brief.", sampling, Generation(64, 0.5), (30.0, 4.0)
    )
    served = {
        "backend": "vllm",
        "server": "http://127.0.0.1:8000",
        "model": "Qwen/Qwen2.5-VL-3B-Instruct",
    }
    assert settings_key(settings, served) == "afb0da18dc084e3a01bb9a1ccf67d2b3"
    # the same record for a clip here: its key made as the earlier code made it
    clip = media_dir / "written" / "c.mp4"
    if not clip.exists():
        make_clip(clip, size=(64, 48), fps=4, seconds=2)
    written.update(path=str(clip), key=input_key(WRITTEN_BASE, [input_facts(str(clip))]))
    out = tmp_path / "answers.jsonl"
    out.write_text(json.dumps(written) + "\n")
    view = Collect()
    status = run_ask(
        backend, [str(clip)], ["c"], [AskSettings("What?")],
        RunOptions(resume=True), view, Outputs(str(out)),
    )  # fmt: skip
    assert status is None and view.records == [] and backend.loads == 0
    assert out.read_text() == json.dumps(written) + "\n"


def test_a_stopped_run_leaves_no_preparation_running() -> None:
    """The run stops (here finish fails on the first item) while the worker prepares the next:
    the prepare sees `stopping`, gives up, and the run returns only once it has."""
    stopping = threading.Event()
    began = threading.Event()
    gave_up: list[bool] = []

    def prepare(n: int) -> int:
        if n == 1:
            began.set()
            gave_up.append(stopping.wait(30))
        return n

    def generate(n: int) -> int:
        assert began.wait(30)  # the worker is inside prepare(1) when the run stops
        return n

    def finish(o: Outcome[int, int]) -> None:
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError, match="disk"):
        run_ordered(range(3), prepare, generate, finish, stopping=stopping)
    assert gave_up == [True]  # it was told, and had finished before run_ordered returned
