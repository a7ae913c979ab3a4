"""The records of a run and its exit status: each task's record, made once, in input order.

A record goes to the output file (``-o``, :mod:`vlcli.outputs.ledger`) and to the view, each
under :meth:`~vlcli.run.pipeline.Interrupts.held`, so that an interrupt leaves an input recorded
whole or not at all. A failure of one input (an unusable input, a request the server refused or
botched, a bug met on it, a prompt that does not fit) is recorded and the run goes on
(:func:`per_input`); the run's exit status is the most telling of them (:func:`worse`).
Failing to write the output file stops the run.
"""

from __future__ import annotations

import time
from typing import Any

from vlcli.errors import ExitStatus, RequestFailed, VlcliError
from vlcli.outputs.ledger import Ledger
from vlcli.run.inputs import Task
from vlcli.run.pipeline import Interrupts
from vlcli.run.prompt import AskResult
from vlcli.run.view import AskView

# Failures that stop one input, from the least to the most telling for the run's exit status:
# an input that cannot be used (3) < a request the server refused or botched (4) < a bug met on
# one input (1) < a prompt that does not fit (5).
PER_INPUT = (ExitStatus.INPUT, ExitStatus.MODEL, ExitStatus.ERROR, ExitStatus.MEMORY)
ONE_INPUT = (ExitStatus.INPUT, ExitStatus.ERROR, ExitStatus.MEMORY)  # whatever raised them


def per_input(error: BaseException) -> bool:
    """Whether ``error`` fails one input and lets the run go on. Of status 4, only one request's
    failure does (:class:`~vlcli.errors.RequestFailed`): a model that cannot load, or a server
    that refuses every request, stops the run."""
    if isinstance(error, RequestFailed):
        return True
    return isinstance(error, VlcliError) and error.status in ONE_INPUT


def worse(a: ExitStatus | None, b: ExitStatus) -> ExitStatus:
    """The status that tells more about a run, of a run's status so far and a new failure's."""
    return b if a is None or PER_INPUT.index(b) > PER_INPUT.index(a) else a


class Records:
    """Makes each task's record, keeps the run's worst status and how many inputs are done,
    and times each input (and each window) from the one before."""

    def __init__(self, ledger: Ledger | None, view: AskView, interrupts: Interrupts) -> None:
        self.ledger, self.view, self.interrupts = ledger, view, interrupts
        self.worst: ExitStatus | None = None
        self.done = 0  # tasks with a record: skipped ones and those of this run
        self.last_finish = self.last_window = time.perf_counter()

    def answered(self, task: Task, result: AskResult, error: VlcliError | None) -> None:
        """Record an answered task, or its failure when its files could not be written; show
        it. Called inside :meth:`~vlcli.run.pipeline.Interrupts.held`, with its files."""
        record = result.to_dict()
        record["file"] = task.file()
        if error is not None:
            error.path = error.path or (task.paths[0] if len(task.paths) == 1 else None)
            record["status"] = "failed"
            record["error"] = error.message
        self.append(record)
        task.closed = True
        if error is None:
            self.view.result(record, result)
        else:
            self.worst = worse(self.worst, error.status)
            self.view.failure(task.paths, error, record)
        self._finished(task, "ok" if error is None else "failed")

    def failed(self, task: Task, error: VlcliError) -> None:
        """Record a task that could not be answered (its input, its prompt or the model)."""
        record: dict[str, Any] = {
            "key": task.key,
            "status": "failed",
            "path": task.paths[0] if len(task.paths) == 1 else task.paths,
            "file": task.file(),
            "error": error.message,
        }
        with self.interrupts.held():
            self.append(record)
            task.closed = True
            self.worst = worse(self.worst, error.status)
            self.view.failure(task.paths, error, record)
            self._finished(task, f"failed (status {int(error.status)})")

    def window(self, record: dict[str, Any], label: str) -> None:
        """Record one answered window of a video (``"status": "window"``), so that ``--resume``
        continues inside the video; show how long it took."""
        if self.ledger is not None:
            with self.interrupts.held():
                self.append(record)
        now = time.perf_counter()
        self.view.window_answered(label, now - max(self.last_window, self.last_finish))
        self.last_window = now

    def append(self, record: dict[str, Any]) -> None:
        """One record to the output file, if any; failing to write it stops the run."""
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

    def _finished(self, task: Task, status: str) -> None:
        if not task.counted:
            return
        self.done += 1
        now = time.perf_counter()
        self.view.finished(task.label, status, now - self.last_finish)
        self.last_finish = now
