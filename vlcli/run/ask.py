"""A run of ``vlcli ask`` over many inputs: records in order, resuming, windows, outputs.

:func:`run_ask` answers every input (or every window of a long video, or all inputs in one
prompt with ``--together``) with one backend, through these collaborators:
:mod:`~vlcli.run.inputs` (the records to make, and what a resumed run skips),
:mod:`~vlcli.run.planned` (the prompts, planned lazily), :mod:`~vlcli.run.answering` (each prompt
prepared and answered), :mod:`~vlcli.run.windowed` (windows and their merge),
:mod:`~vlcli.run.records` (records and the exit status) and :mod:`~vlcli.run.answer_files`
(subtitles and evidence frames; clips):

* Planning is lazy and happens on the worker that prepares prompts (:mod:`vlcli.run.pipeline`): the
  first answer never waits for a 2,000-file folder to be probed, and while the model answers
  one input the next is probed, decoded and preprocessed.
* Each input's record is written as soon as it is done, in input order, failures included: to
  standard output (``--json``) and to the output file (``-o``, :mod:`vlcli.outputs.ledger`), whose keys
  let ``--resume`` skip what is done. The model is loaded only once there is work to do.
* Subtitles and evidence frames are written before the record (atomically,
  :mod:`vlcli.outputs.files`), so that a recorded input has its files; a failure to write them fails
  that input and the run goes on.
* Clips (``--clips``) are cut before the record, as :mod:`vlcli.run.cut` cuts them, so that the
  record lists them; they are not held from an interrupt as the record is (a cut takes long):
  an interrupt stops FFmpeg and leaves no partial clip, and the input has no record yet.
* A long video in windows (:mod:`vlcli.planning.windows`) gets one record, made when its last window is
  answered; each window is recorded on its own meanwhile (``"status": "window"``), so that
  ``--resume`` continues inside the video.
* SIGINT and SIGTERM abandon the prompt in progress; what is recorded stays; one line says how
  many inputs are done and how to resume (:class:`~vlcli.errors.Interrupted`). A server that
  stays away past ``--server-patience`` stops the run the same way, with status 4
  (:class:`~vlcli.errors.ServerGone`).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlcli.errors import ExitStatus, Interrupted, ServerGone, UsageError, VlcliError
from vlcli.outputs.files import SubtitleTarget
from vlcli.outputs.ledger import Ledger, placed_key, record_key
from vlcli.run.answer_files import AnswerClips, AnswerFiles
from vlcli.run.answering import Answering
from vlcli.run.inputs import Abandoned, Job, Task, how_to_go_on, skip_recorded, tasks_of
from vlcli.run.pipeline import Interrupts, Outcome, run_ordered
from vlcli.run.planned import Planned
from vlcli.run.prompt import AskResult, AskSettings, result_of
from vlcli.run.records import Records, per_input
from vlcli.run.view import AskView
from vlcli.run.windowed import Windows

if TYPE_CHECKING:
    from vlcli.backends import Backend


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


@dataclass(frozen=True)
class Outputs:
    """The files a run writes besides standard output. They never decide an answer (they are
    not in the record key: a resumed run may add subtitles), and they are checked before any
    input is probed (:func:`vlcli.outputs.files.check_targets`)."""

    records: str | None = None  # -o/--output: the ledger of records, JSON Lines
    subtitles: tuple[SubtitleTarget, ...] = ()  # --srt, --vtt
    evidence: str | None = None  # --evidence: the folder of evidence frames
    clips: str | None = None  # --clips: the folder the stated spans are cut into
    crops: str | None = None  # --crops: the folder each stated box's region is saved in


def settings_key(settings: AskSettings, identity: dict[str, Any]) -> str:
    """The part of every key of a run that is not the inputs: what decides the answers (all of
    ``settings``) and the model that gives them (the backend's identity). ``think`` is left out
    when it is the template's own (None), as before it was an option: the keys of earlier
    records keep their values."""
    decides = dataclasses.asdict(settings)
    if decides["think"] is None:
        del decides["think"]
    return record_key({**decides, "backend": identity})


def input_key(base: str, facts: Sequence[dict[str, Any]]) -> str:
    """The key of one record: in the place of the run's :func:`settings_key` and the inputs'
    paths, the version of their sizes and modification times
    (:func:`vlcli.outputs.ledger.input_facts`): the answer to a changed file supersedes the
    record of the file as it was."""
    return placed_key([base, [f["path"] for f in facts]], list(facts))


def run_ask(
    backend: Backend,
    paths: list[str],
    stems: list[str],
    asked: Sequence[AskSettings],
    run: RunOptions,
    view: AskView,
    outputs: Outputs = Outputs(),
) -> ExitStatus | None:
    """Answer every input (see the module docstring); the worst per-input status, or None.

    ``asked`` holds each question's settings (:mod:`vlcli.run.questions`; they differ only in
    the question and task): every input gets one record per question, in that order.

    Raises :class:`~vlcli.errors.Interrupted` on SIGINT/SIGTERM (after saying how to resume),
    and a :class:`~vlcli.errors.VlcliError` that stops the run (a model that cannot load).
    """
    check_run(run, outputs.records)
    output = outputs.records
    if run.together and asked[0].window:
        raise UsageError("--window answers one video in parts: it cannot go with --together")
    if run.together and len(asked) > 1:
        raise UsageError("--together asks one question of all inputs at once: give one question")
    ledger = Ledger.open(output, resume=run.resume or run.retry_failed) if output else None
    try:
        with Interrupts() as interrupts:
            return _Run(
                backend, paths, stems, list(asked), run, view, ledger, outputs, interrupts
            ).go()
    finally:
        view.close()
        if ledger is not None:
            ledger.close()


class _Run:
    """One run: the collaborators made for its inputs and options, driven by the pipeline."""

    def __init__(
        self,
        backend: Backend,
        paths: list[str],
        stems: list[str],
        asked: list[AskSettings],
        run: RunOptions,
        view: AskView,
        ledger: Ledger | None,
        outputs: Outputs,
        interrupts: Interrupts,
    ):
        self.backend, self.paths, self.stems = backend, paths, stems
        self.asked, self.options, self.run = asked, asked[0].sampling, run
        self.view, self.ledger, self.interrupts = view, ledger, interrupts
        self.identity = backend.identity()
        self.keys_of = [functools.partial(input_key, settings_key(s, self.identity)) for s in asked]
        # what a run of one question counts, and what one of several counts
        self.what = "input" if len(asked) == 1 else "answer"
        self.records = Records(ledger, view, interrupts)
        self.files = AnswerFiles(outputs.subtitles, outputs.evidence, paths, view, outputs.crops)
        self.clips = AnswerClips(outputs.clips, paths, view) if outputs.clips else None
        self.windows = Windows(asked, backend.spec.model, self.records, view)

    def go(self) -> ExitStatus | None:
        """Answer what has no record yet; the worst per-input status, or None."""
        if self.ledger is not None:
            for note in self.ledger.notes:
                self.view.warn(f"{self.ledger.path}: {note}")
        tasks = tasks_of(self.paths, self.stems, self.run.together, self.keys_of)
        pending = skip_recorded(
            tasks, self.ledger, self.run.retry_failed, self.view, f"{self.what}s"
        )
        skipped = self.records.done = len(tasks) - len(pending)
        self.view.begin(len(tasks), skipped)
        if not pending:
            return self.records.worst
        planned = Planned(
            self.options, self.backend.spec, self.asked[0].window, self.ledger, self.keys_of[0]
        )
        source = planned.together(pending[0]) if self.run.together else planned.each(pending)
        stopping = threading.Event()  # set when the run stops: preparing gives up
        answering = Answering(
            self.backend, self.asked, self.options, self.view, stopping, len(tasks) > 1
        )
        try:
            run_ordered(
                source,
                answering.prepare,
                answering.generate,
                self._finish,
                concurrency=self.backend.concurrency,
                warm_up=self._load,
                ahead=self.run.ahead,
                stopping=stopping,
            )
        except Interrupted as exc:
            self.view.close()
            exc.detail = self._how_to_go_on(len(tasks))
            raise
        except VlcliError as exc:
            # the server gone past its patience, or refusing what every request needs (a key,
            # the trust flag) after inputs were answered: what is done is kept, and said
            answered = self.records.done > skipped
            if isinstance(exc, ServerGone) or (answered and exc.status == ExitStatus.MODEL):
                self.view.close()
                exc.message = f"{exc.message}; {self._how_to_go_on(len(tasks))}"
            raise
        return self.records.worst

    def _how_to_go_on(self, total: int) -> str:
        resuming = self.run.resume or self.run.retry_failed
        return how_to_go_on(self.records.done, total, self.ledger, resuming, self.what)

    def _load(self) -> None:
        self.view.stage("", "loading the model")
        self.backend.load()

    def _finish(self, outcome: Outcome[Job, Any]) -> None:
        """Record one prompt's outcome, in input order: a failure, an answer, or a window."""
        job = outcome.item
        task = job.task
        if task.closed or isinstance(outcome.error, Abandoned):
            return
        if outcome.error is not None:
            error = outcome.error
            if not isinstance(error, VlcliError) or not per_input(error):
                raise error
            if len(task.paths) == 1:
                error.path = error.path or task.paths[0]
            self.records.failed(task, error)
            return
        if job.window is not None:
            merged = self.windows.answered(job, outcome.result)
            if merged is not None:
                self._record(task, merged)
            return
        result = result_of(
            outcome.result,
            task.paths,
            job.plans,
            self.asked[task.question],
            self.backend.spec.model,
            self.view.warn,
            task.stem,
        )
        self._record(task, result)

    def _record(self, task: Task, result: AskResult) -> None:
        """Write an answered task's files, then its record; show it. An output that ended inside
        its reasoning has no answer: its record fails, saying why, and keeps the reasoning."""
        result.key, result.backend = task.key, self.identity
        if result.no_answer is not None:
            with self.interrupts.held():
                self.records.answered(task, result, VlcliError(result.no_answer, ExitStatus.MODEL))
            return
        if self.clips is not None:  # not held: an interrupt stops FFmpeg, and no clip is left half
            result.clips = self.clips.cut(task, result)
        with self.interrupts.held():
            self.records.answered(task, result, self.files.write(task, result))
