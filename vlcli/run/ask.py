"""A run of ``vlcli ask`` over many inputs: records in order, resuming, windows, outputs.

:func:`run_ask` answers every input (or every window of a long video, or all inputs in one
prompt with ``--together``) with one backend:

* Planning is lazy and happens on the worker that prepares prompts (:mod:`vlcli.run.pipeline`): the
  first answer never waits for a 2,000-file folder to be probed, and while the model answers
  one input the next is probed, decoded and preprocessed.
* Each input's record is written as soon as it is done, in input order, failures included: to
  standard output (``--json``) and to the output file (``-o``, :mod:`vlcli.outputs.ledger`), whose keys
  let ``--resume`` skip what is done. The model is loaded only once there is work to do.
* Subtitles and evidence frames are written before the record (atomically,
  :mod:`vlcli.outputs.files`), so that a recorded input has its files; a failure to write them fails
  that input and the run goes on.
* A long video in windows (:mod:`vlcli.planning.windows`) gets one record, made when its last window is
  answered; each window is recorded on its own meanwhile (``"status": "window"``), so that
  ``--resume`` continues inside the video.
* SIGINT and SIGTERM abandon the prompt in progress; what is recorded stays; one line says how
  many inputs are done and how to resume (:class:`~vlcli.errors.Interrupted`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from vlcli.errors import (
    DeviceOutOfMemory,
    ExitStatus,
    InputError,
    Interrupted,
    MemoryBudgetError,
    UsageError,
    VlcliError,
)
from vlcli.outputs.files import (
    SubtitleTarget,
    check_not_input,
    file_ids,
    remove_owned,
    write_owned,
)
from vlcli.outputs.ledger import Ledger, input_facts, part_key, placed_key, record_key
from vlcli.outputs.text import ValidPieces, valid_text
from vlcli.planning.context import fit_hint
from vlcli.planning.plan import ImagePlan, SamplingOptions, VideoPlan
from vlcli.planning.windows import Window, merge_spans, plan_windows, shown_range
from vlcli.run.pipeline import Interrupts, Outcome, Ready, run_ordered
from vlcli.run.prompt import (
    AskResult,
    AskSettings,
    evidence_video,
    make_prompt,
    prompt_tokens,
    result_of,
    save_evidence,
)

if TYPE_CHECKING:
    from vlcli.backends import Backend

TextSink = Callable[[str], None]
# Failures that stop one input, from the least to the most telling for the run's exit status:
# an input that cannot be used (3) < a bug met on one input (1) < a prompt that does not fit (5).
PER_INPUT = (ExitStatus.INPUT, ExitStatus.ERROR, ExitStatus.MEMORY)


def worse(a: ExitStatus | None, b: ExitStatus) -> ExitStatus:
    """The status that tells more about a run, of a run's status so far and a new failure's."""
    return b if a is None or PER_INPUT.index(b) > PER_INPUT.index(a) else a


@dataclass(frozen=True)
class RunOptions:
    """How a run goes through its inputs (besides what decides each answer)."""

    together: bool = False
    resume: bool = False
    retry_failed: bool = False
    ahead: bool = True  # prepare the next input while the model answers (off: to measure it)


def check_run(run: RunOptions, output: str | None) -> None:
    """Resuming needs the file of records to resume from."""
    if (run.resume or run.retry_failed) and output is None:
        raise UsageError(
            "--resume and --retry-failed need -o/--output FILE (the records to resume)"
        )


class AskView(Protocol):
    """What :func:`run_ask` reports to (``vlcli.cli.views.AskOutput`` shows it)."""

    def begin(self, total: int, done: int) -> None: ...
    def stage(self, label: str, stage: str) -> None: ...
    def decoding(self, label: str, done: int, total: int) -> None: ...
    def start(self, paths: list[str], title: str | None, several: bool) -> TextSink | None: ...
    def window_answered(self, label: str, seconds: float) -> None: ...
    def result(self, record: dict[str, Any], result: AskResult) -> None: ...
    def failure(self, paths: list[str], exc: VlcliError, record: dict[str, Any]) -> None: ...
    def finished(self, label: str, status: str, seconds: float) -> None: ...
    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def close(self) -> None: ...


@dataclass
class _Task:
    """One record to make: one input (maybe in windows), or all inputs together."""

    paths: list[str]
    stem: str
    key: str
    plans: list[VideoPlan | ImagePlan] | None = None  # planned up front (--together)
    windows: int = 0  # set by the worker when the video is answered in windows
    parts: list[tuple[Window, VideoPlan, AskResult, dict[str, Any]]] = field(default_factory=list)
    closed: bool = False  # recorded (a window failed: the later ones are dropped)
    counted: bool = True  # one of the run's inputs (not a bad input split off --together)
    facts: list[dict[str, Any]] = field(default_factory=list)  # each input's, when keyed

    @property
    def label(self) -> str:
        return self.paths[0] if len(self.paths) == 1 else f"{len(self.paths)} inputs together"

    def file(self) -> Any:
        """The record's ``file``: each input's size and modification time when it was keyed, so
        that ``vlcli cut`` can tell a changed source; one dict for one input, else a list."""
        files = [{k: f[k] for k in ("size", "mtime_ns") if k in f} for f in self.facts]
        return files[0] if len(self.paths) == 1 and len(files) == 1 else files


@dataclass(frozen=True)
class _Job:
    """One prompt: a task, or one window of it."""

    task: _Task
    plans: list[VideoPlan | ImagePlan]
    key: str
    window: Window | None = None
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.window is None:
            return self.task.label
        return f"{self.task.label} ({self.window.label(self.task.windows)})"


class _Abandoned(Exception):
    """A later window of a video whose record is already made (an earlier window failed)."""


def settings_key(settings: AskSettings, options: SamplingOptions, identity: dict[str, Any]) -> str:
    """The part of every key of a run that is not the inputs: what decides the answers."""
    return record_key(
        {
            "question": settings.question,
            "task": settings.task,
            "system": settings.system,
            "sampling": dataclasses.asdict(options),
            "generation": {
                "max_new_tokens": settings.max_new_tokens,
                "temperature": settings.temperature,
            },
            "backend": identity,
            "window": list(settings.window) if settings.window else None,
        }
    )


def input_key(base: str, facts: Sequence[dict[str, Any]]) -> str:
    """The key of one record: in the place of the run's :func:`settings_key` and the inputs'
    paths, the version of their sizes and modification times
    (:func:`vlcli.outputs.ledger.input_facts`): the answer to a changed file supersedes the
    record of the file as it was."""
    return placed_key([base, [f["path"] for f in facts]], list(facts))


def _task(base: str, paths: list[str], stem: str, counted: bool = True) -> _Task:
    """A task keyed by its inputs' facts, taken once: the key and the record's ``file`` agree."""
    facts = [input_facts(p) for p in paths]
    return _Task(paths, stem, input_key(base, facts), facts=facts, counted=counted)


def run_ask(
    backend: Backend,
    paths: list[str],
    stems: list[str],
    settings: AskSettings,
    options: SamplingOptions,
    run: RunOptions,
    view: AskView,
    *,
    output: str | None = None,
    subtitles: Sequence[SubtitleTarget] = (),
) -> ExitStatus | None:
    """Answer every input (see the module docstring); the worst per-input status, or None.

    Raises :class:`~vlcli.errors.Interrupted` on SIGINT/SIGTERM (after saying how to resume),
    and a :class:`~vlcli.errors.VlcliError` that stops the run (a model that cannot load).
    """
    check_run(run, output)
    if run.together and settings.window:
        raise UsageError("--window answers one video in parts: it cannot go with --together")
    ledger = Ledger.open(output, resume=run.resume or run.retry_failed) if output else None
    try:
        with Interrupts() as interrupts:
            return _Run(
                backend, paths, stems, settings, options, run, view, ledger, subtitles, interrupts
            ).go()
    finally:
        view.close()
        if ledger is not None:
            ledger.close()


class _Run:
    def __init__(
        self,
        backend: Backend,
        paths: list[str],
        stems: list[str],
        settings: AskSettings,
        options: SamplingOptions,
        run: RunOptions,
        view: AskView,
        ledger: Ledger | None,
        subtitles: Sequence[SubtitleTarget],
        interrupts: Interrupts,
    ):
        self.backend = backend
        self.paths, self.stems = paths, stems
        self.settings, self.options, self.run = settings, options, run
        self.view, self.ledger, self.subtitles = view, ledger, list(subtitles)
        self.interrupts = interrupts
        self.identity = backend.identity()
        self.inputs = file_ids(paths)
        self.base_key = settings_key(settings, options, self.identity)
        self.worst: ExitStatus | None = None
        self.done = 0  # tasks with a record: skipped ones and those of this run
        self.total = 0
        self.last_finish = self.last_window = time.perf_counter()
        self.stopping = threading.Event()  # set when the run stops: preparing gives up

    # ------------------------------------------------------------ the run

    def go(self) -> ExitStatus | None:
        if self.ledger is not None:
            for note in self.ledger.notes:
                self.view.warn(f"{self.ledger.path}: {note}")
        tasks = self._tasks()
        pending = self._skip_done(tasks)
        self.total = len(tasks)
        self.view.begin(self.total, self.done)
        if pending:
            try:
                run_ordered(
                    self._source(pending),
                    self._prepare,
                    self._generate,
                    self._finish,
                    concurrency=max(1, int(getattr(self.backend, "concurrency", 1))),
                    warm_up=self._load,
                    ahead=self.run.ahead,
                    stopping=self.stopping,
                )
            except Interrupted as exc:
                self.view.close()
                exc.detail = self._interrupted()
                raise
        return self.worst

    def _tasks(self) -> list[_Task]:
        if not self.run.together:
            return [
                _task(self.base_key, [p], stem)
                for p, stem in zip(self.paths, self.stems, strict=True)
            ]
        return [_task(self.base_key, list(self.paths), self.stems[0])]

    def _skip_done(self, tasks: list[_Task]) -> list[_Task]:
        """The tasks without a record in the output file (failed ones too with --retry-failed)."""
        if self.ledger is None:
            return tasks
        pending, failed = [], 0
        for task in tasks:
            status = self.ledger.status(task.key)
            if status == "ok" or (status == "failed" and not self.run.retry_failed):
                failed += status == "failed"
                continue
            pending.append(task)
        skipped = len(tasks) - len(pending)
        self.done = skipped
        if skipped:
            again = f" ({failed} of them failed: --retry-failed tries them again)" if failed else ""
            self.view.info(
                f"resuming {self.ledger.path}: {skipped} of {len(tasks)} inputs already have a "
                f"record and are skipped{again}"
            )
        return pending

    def _load(self) -> None:
        self.view.stage("", "loading the model")
        load = getattr(self.backend, "load", None)  # a backend that needs no loading may lack it
        if load is not None:
            load()

    def _interrupted(self) -> str:
        """What an interrupt leaves: how many inputs are done, and how to go on."""
        done = f"{self.done} of {self.total} input{'s' if self.total != 1 else ''} done"
        if self.ledger is None:
            how = "nothing records them for resuming (-o FILE makes a run resumable)"
        elif self.run.resume or self.run.retry_failed:
            how = f"{self.ledger.path} holds them: run the same command again to go on"
        else:
            how = f"{self.ledger.path} holds them: run the same command with --resume to go on"
        return f"{done}; {how}"

    # ------------------------------------------------------------ the pipeline's steps

    def _source(self, pending: list[_Task]) -> Iterator[_Job | Ready[_Job]]:
        """The prompts, planned lazily (on the worker): one per input, or one per window."""
        if self.run.together:
            yield from self._together(pending[0])
            return
        from vlcli.run.budget import plan_one

        for task in pending:
            path = task.paths[0]
            planned = plan_one(path, self.options, self.backend.spec)
            if planned.error is not None or planned.plan is None or planned.info is None:
                error = planned.error or InputError("unreadable", path)
                yield Ready(_Job(task, [], task.key), error=error)
                continue
            plan = planned.plan
            if self.settings.window and isinstance(plan, VideoPlan):
                try:
                    windows = plan_windows(
                        planned.info.video_facts(),
                        self.options,
                        self.backend.spec.family,
                        *self.settings.window,
                    )
                except VlcliError as exc:
                    exc.path = exc.path or path
                    yield Ready(_Job(task, [], task.key), error=exc)
                    continue
                if len(windows) > 1:
                    task.windows = len(windows)
                    for window, wplan in windows:
                        job = _Job(
                            task,
                            [wplan],
                            part_key(task.key, window.to_dict()),
                            window,
                            wplan.notes,
                        )
                        kept = self.ledger.read(job.key) if self.ledger is not None else None
                        if kept is not None and kept.get("status") == "window":
                            yield Ready(job, result=kept)
                        else:
                            yield job
                    continue
            yield _Job(
                task, [plan], task.key, None, plan.notes if isinstance(plan, VideoPlan) else ()
            )

    def _together(self, task: _Task) -> Iterator[_Job | Ready[_Job]]:
        """``--together``: every input planned first; a bad one is reported on its own."""
        from vlcli.run.budget import plan_inputs

        plans, good = [], []
        for item in plan_inputs(task.paths, self.options, self.backend.spec):
            if item.error is not None or item.plan is None:
                alone = _task(self.base_key, [item.path], task.stem, counted=False)
                yield Ready(
                    _Job(alone, [], alone.key),
                    error=item.error or InputError("unreadable", item.path),
                )
                continue
            plans.append(item.plan)
            good.append(item.path)
        if good:
            task.paths, task.plans = good, plans
            notes = tuple(n for p in plans if isinstance(p, VideoPlan) for n in p.notes)
            yield _Job(task, plans, task.key, None, notes)

    def _prepare(self, job: _Job) -> tuple[_Job, Any]:
        if job.task.closed:
            raise _Abandoned
        prompt = make_prompt(job.task.paths, job.plans, self.settings)
        self.backend.check_fit(prompt, prompt_tokens(self.backend, prompt), self.options)
        label = job.label

        def frames(done: int, total: int) -> None:
            if self.stopping.is_set():  # the run stopped: leave no decoding behind
                raise _Abandoned
            self.view.decoding(label, done, total)

        try:
            prepared = self.backend.prepare(prompt, frames)
        except DeviceOutOfMemory as exc:
            raise MemoryBudgetError(f"{exc.message}: {fit_hint(job.plans, self.options)}") from exc
        finally:
            self.view.decoding(label, 0, 0)
        return job, prepared

    def _generate(self, item: tuple[_Job, Any]) -> Any:
        job, prepared = item
        if job.task.closed:
            raise _Abandoned
        for note in job.notes:
            self.view.warn(f"{job.task.label}: {note}")
        self.view.stage(job.label, "prefill")
        title = None
        if job.window is not None:
            from vlcli.times.format import format_hms

            title = (
                f"{job.window.label(job.task.windows)}: "
                f"{format_hms(job.window.start_s)} to {format_hms(job.window.end_s)}"
            )
        several = self.total > 1 or job.window is not None
        sink = (
            self.view.start(job.task.paths, title, several)
            if getattr(self.backend, "concurrency", 1) == 1
            else None
        )
        started = [False]
        pieces = ValidPieces()

        def on_text(piece: str) -> None:
            if not started[0]:
                started[0] = True
                self.view.stage(job.label, "generating")
            if sink is not None and (text := pieces.piece(piece)):
                sink(text)

        try:
            answer = self.backend.generate(prepared, on_text)
        except DeviceOutOfMemory as exc:
            raise MemoryBudgetError(f"{exc.message}: {fit_hint(job.plans, self.options)}") from exc
        if sink is not None and (rest := pieces.rest()):
            sink(rest)
        return self._valid(job, answer)

    def _valid(self, job: _Job, answer: Any) -> Any:
        """The answer with text that can be written anywhere (:mod:`vlcli.outputs.text`): a
        server that sent broken Unicode costs the user a few characters, not the input."""
        text, replaced = valid_text(answer.text)
        if not replaced:
            return answer
        self.view.warn(
            f"{job.label}: the answer held "
            + (f"{replaced} characters that are" if replaced > 1 else "1 character that is")
            + " not valid Unicode (lone surrogates): written as U+FFFD"
        )
        return dataclasses.replace(answer, text=text)

    def _finish(self, outcome: Outcome[_Job, Any]) -> None:
        job = outcome.item
        task = job.task
        if task.closed or isinstance(outcome.error, _Abandoned):
            return
        if outcome.error is not None:
            error = outcome.error
            if not isinstance(error, VlcliError) or error.status not in PER_INPUT:
                raise error
            if len(task.paths) == 1:
                error.path = error.path or task.paths[0]
            self._record_failure(task, error)
            return
        if job.window is None:
            result = result_of(
                outcome.result,
                task.paths,
                job.plans,
                self.settings,
                self.backend.spec.model,
                self.view.warn,
                task.stem,
            )
            self._record(task, result)
            return
        self._window_done(job, outcome.result)

    # ------------------------------------------------------------ windows

    def _window_done(self, job: _Job, answer: Any) -> None:
        task, window = job.task, job.window
        assert window is not None
        (plan,) = job.plans
        assert isinstance(plan, VideoPlan)
        if isinstance(answer, dict):  # recorded by an earlier run
            result = _result_from_record(answer, task, plan, self.settings)
            summary = {
                k: v for k, v in answer.items() if k not in ("key", "status", "parent", "path")
            }
        else:
            result = result_of(
                answer,
                task.paths,
                [plan],
                self.settings,
                self.backend.spec.model,
                self.view.warn,
                task.stem,
            )
            summary = {**window.to_dict(), **_summary(result)}
            if any(not span.mapped for span in result.times):
                self.view.warn(
                    f"{job.label}: the answer's times could not be mapped: they count from the "
                    f"window's start ({window.start_s:g} s), not from the video's"
                )
            if self.ledger is not None:
                record = {
                    "key": job.key,
                    "status": "window",
                    "parent": task.key,
                    "path": task.paths[0],
                    **summary,
                }
                with self.interrupts.held():
                    self._append(record)
            now = time.perf_counter()
            self.view.window_answered(job.label, now - max(self.last_window, self.last_finish))
            self.last_window = now
        task.parts.append((window, plan, result, summary))
        if len(task.parts) == task.windows:
            self._record(task, self._merged(task))

    def _merged(self, task: _Task) -> AskResult:
        from vlcli.times.format import format_hms

        parts = sorted(task.parts, key=lambda p: p[0].index)
        merged = merge_spans([(w, plan, result.times) for w, plan, result, _ in parts])
        timings: dict[str, float] = {}
        for _, _, result, _ in parts:
            for name, value in result.timings.items():
                timings[name] = round(timings.get(name, 0.0) + value, 4)
        return AskResult(
            paths=task.paths,
            plans=[plan for _, plan, _, _ in parts],
            question=self.settings.question,
            answer="\n\n".join(
                f"[{format_hms(w.start_s)} to {format_hms(w.end_s)}] {r.answer}"
                for w, _, r, _ in parts
            ),
            times=[span for _, span in merged],
            prompt_tokens=sum(r.prompt_tokens for _, _, r, _ in parts),
            generated_tokens=sum(r.generated_tokens for _, _, r, _ in parts),
            model=self.backend.spec.model,
            timings=timings,
            task=self.settings.task,
            name=task.stem,
            windows=[summary for _, _, _, summary in parts],
            span_windows=[w for w, _ in merged],
        )

    # ------------------------------------------------------------ records and files

    def _record(self, task: _Task, result: AskResult) -> None:
        """Write an answered task's files, then its record; show it."""
        result.key, result.backend = task.key, self.identity
        error: VlcliError | None = None
        with self.interrupts.held():
            try:
                result.subtitles = self._write_subtitles(task, result) if self.subtitles else None
            except OSError as exc:
                error = VlcliError(
                    f"cannot write its subtitles: {exc.strerror or exc}", ExitStatus.INPUT
                )
            except VlcliError as exc:
                error = exc
            if error is None and self.settings.evidence_dir:
                self._save_evidence(task, result)
            record = result.to_dict()
            record["file"] = task.file()
            if error is not None:
                error.path = error.path or (task.paths[0] if len(task.paths) == 1 else None)
                record["status"] = "failed"
                record["error"] = error.message
            self._append(record)
            task.closed = True
            if error is None:
                self.view.result(record, result)
            else:
                self.worst = worse(self.worst, error.status)
                self.view.failure(task.paths, error, record)
            self._finished(task, "ok" if error is None else "failed")

    def _record_failure(self, task: _Task, error: VlcliError) -> None:
        record: dict[str, Any] = {
            "key": task.key,
            "status": "failed",
            "path": task.paths[0] if len(task.paths) == 1 else task.paths,
            "file": task.file(),
            "error": error.message,
        }
        with self.interrupts.held():
            self._append(record)
            task.closed = True
            self.worst = worse(self.worst, error.status)
            self.view.failure(task.paths, error, record)
            self._finished(task, f"failed (status {int(error.status)})")

    def _finished(self, task: _Task, status: str) -> None:
        if not task.counted:
            return
        self.done += 1
        now = time.perf_counter()
        self.view.finished(task.label, status, now - self.last_finish)
        self.last_finish = now

    def _append(self, record: dict[str, Any]) -> None:
        if self.ledger is None:
            return
        try:
            self.ledger.append(record)
        except OSError as exc:
            raise VlcliError(
                f"cannot write --output {self.ledger.path} ({exc.strerror or exc}): the run stops "
                f"with {self.done} inputs recorded",
                ExitStatus.INPUT,
            ) from None

    def _write_subtitles(self, task: _Task, result: AskResult) -> list[str]:
        """Each subtitle file of one answer, whole; none when the answer states no times.

        No times: nothing is written (an empty SubRip file is not one that players and FFmpeg
        read, and a WebVTT file with no cue has no subtitle stream), and the file an earlier run
        of vlcli wrote at that name (proven: :func:`vlcli.outputs.files.written_by_vlcli`) is
        removed, so that no stale cues stay; any other file there is left alone.
        """
        from vlcli.outputs.subtitles import to_srt, to_vtt

        written: list[str] = []
        # no cue runs past the video's end (the last window's, with --window)
        end = max(
            (shown_range(p)[1] for p in result.plans if isinstance(p, VideoPlan)), default=None
        )
        for target in self.subtitles:
            path = target.path_for(task.stem)
            check_not_input(path, self.inputs)
            if any(not span.outside for span in result.times):  # a span outside has no cue
                text = (to_srt if target.fmt == "srt" else to_vtt)(result.times, end_s=end)
                write_owned(path, text, "subtitles")
                written.append(str(path))
                self.view.info(f"wrote {path}")
                continue
            stale = remove_owned(path)
            self.view.info(
                f"{task.label}: the answer states no times: no {path} written"
                + (" (the one from an earlier run was removed)" if stale else "")
            )
        return written

    def _save_evidence(self, task: _Task, result: AskResult) -> None:
        assert self.settings.evidence_dir is not None
        video = (task.paths[0], task.stem) if task.windows else evidence_video(result)
        if video is None:
            return
        try:
            result.evidence = save_evidence(
                video[0], result.times, self.settings.evidence_dir, video[1], self.inputs
            )
        except (VlcliError, OSError) as exc:
            self.view.warn(f"{video[0]}: evidence frames not saved: {exc}")


def _summary(result: AskResult) -> dict[str, Any]:
    """What a window contributes to its video's record (and its own ``window`` record)."""
    d = result.to_dict()
    return {
        k: d[k]
        for k in (
            "answer",
            "times",
            "frames",
            "visual_tokens",
            "prompt_tokens",
            "generated_tokens",
            "timings",
            "time_axes",
        )
        if k in d
    }


def _result_from_record(
    record: dict[str, Any], task: _Task, plan: VideoPlan, settings: AskSettings
) -> AskResult:
    """A window's answer as an earlier run recorded it (its spans as they were mapped)."""
    from vlcli.times.parse import TimeSpan

    spans = [
        TimeSpan(
            t["model_start_s"],
            t["model_end_s"],
            t.get("text", ""),
            t.get("raw", ""),
            t["start_s"] if t.get("mapped") else None,
            t["end_s"] if t.get("mapped") else None,
            bool(t.get("clipped")),
            bool(t.get("outside")),
            bool(t.get("reversed")),
        )
        for t in record.get("times", [])
    ]
    return AskResult(
        paths=task.paths,
        plans=[plan],
        question=settings.question,
        answer=record.get("answer", ""),
        times=spans,
        prompt_tokens=int(record.get("prompt_tokens", 0)),
        generated_tokens=int(record.get("generated_tokens", 0)),
        model=str(record.get("model", "")),
        timings=dict(record.get("timings", {})),
        task=settings.task,
        name=task.stem,
    )
