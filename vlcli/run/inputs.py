"""The inputs of a run, as records to make, and which of them a resumed run skips.

Each input is one record to make (a :class:`Task`), or all inputs are one with ``--together``;
a task is answered in one prompt or, a long video with ``--window``, in several (each a
:class:`Job`). With ``-o FILE``, ``--resume`` skips the tasks that already have a record there
(``--retry-failed``: only those that succeeded), by their keys (:mod:`vlcli.outputs.ledger`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlcli.outputs.ledger import Ledger, input_facts
from vlcli.planning.plan import Plan, VideoPlan
from vlcli.planning.windows import Window
from vlcli.run.prompt import AskResult
from vlcli.run.view import AskView

# The key of the record of these inputs (their facts: path, size, time), in this run.
KeyOf = Callable[[Sequence[dict[str, Any]]], str]


@dataclass(frozen=True)
class WindowPart:
    """One answered window of a video, kept until its last window is in (then merged)."""

    window: Window
    plan: VideoPlan
    result: AskResult
    summary: dict[str, Any]  # what the window adds to its video's record (and its own)


@dataclass
class Task:
    """One record to make: one input (maybe in windows), or all inputs together."""

    paths: list[str]
    stem: str
    key: str
    plans: list[Plan] | None = None  # planned up front (--together)
    windows: int = 0  # set by the worker when the video is answered in windows
    parts: list[WindowPart] = field(default_factory=list)
    closed: bool = False  # recorded (a window failed: the later ones are dropped)
    counted: bool = True  # one of the run's inputs (not a bad input split off --together)
    facts: list[dict[str, Any]] = field(default_factory=list)  # each input's, when keyed
    question: int = 0  # which of the run's questions (vlcli.run.questions) it answers

    @property
    def label(self) -> str:
        return self.paths[0] if len(self.paths) == 1 else f"{len(self.paths)} inputs together"

    def file(self) -> Any:
        """The record's ``file``: each input's size and modification time when it was keyed, so
        that ``vlcli cut`` can tell a changed source; one dict for one input, else a list."""
        files = [{k: f[k] for k in ("size", "mtime_ns") if k in f} for f in self.facts]
        return files[0] if len(self.paths) == 1 and len(files) == 1 else files


@dataclass(frozen=True)
class Job:
    """One prompt: a task, or one window of it."""

    task: Task
    plans: list[Plan]
    key: str
    window: Window | None = None
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.window is None:
            return self.task.label
        return f"{self.task.label} ({self.window.label(self.task.windows)})"


class Abandoned(Exception):
    """A later window of a video whose record is already made (an earlier window failed), or a
    prompt still being prepared when the run stopped."""


def task_for(paths: list[str], stem: str, key_of: KeyOf, counted: bool = True) -> Task:
    """A task keyed by its inputs' facts, taken once: its key and its record's ``file`` agree."""
    facts = [input_facts(p) for p in paths]
    return Task(paths, stem, key_of(facts), counted=counted, facts=facts)


def tasks_of(
    paths: list[str], stems: list[str], together: bool, keys_of: Sequence[KeyOf]
) -> list[Task]:
    """One task per input and question (``keys_of``: one per question), in input order then
    question order, or one per question for all inputs with ``--together`` (named by the
    first). An input's facts are taken once, so that its questions' records agree."""
    groups = [([p], s) for p, s in zip(paths, stems, strict=True)]
    if together:
        groups = [(list(paths), stems[0])]
    tasks = []
    for group, stem in groups:
        facts = [input_facts(p) for p in group]
        for n, key_of in enumerate(keys_of):
            tasks.append(Task(group, stem, key_of(facts), facts=facts, question=n))
    return tasks


def skip_recorded(
    tasks: list[Task],
    ledger: Ledger | None,
    retry_failed: bool,
    view: AskView,
    what: str = "inputs",
) -> list[Task]:
    """The tasks without a record in the output file (failed ones too with --retry-failed);
    says how many are skipped, and how to try the failed ones again."""
    if ledger is None:
        return tasks
    pending, failed = [], 0
    for task in tasks:
        status = ledger.status(task.key)
        if status == "ok" or (status == "failed" and not retry_failed):
            failed += status == "failed"
            continue
        pending.append(task)
    skipped = len(tasks) - len(pending)
    if skipped:
        again = f" ({failed} of them failed: --retry-failed tries them again)" if failed else ""
        view.info(
            f"resuming {ledger.path}: {skipped} of {len(tasks)} {what} already have a "
            f"record and are skipped{again}"
        )
    return pending


def how_to_go_on(
    done: int, total: int, ledger: Ledger | None, resuming: bool, what: str = "input"
) -> str:
    """What an interrupt leaves: how many inputs (or answers) are done, and how to go on."""
    said = f"{done} of {total} {what}{'s' if total != 1 else ''} done"
    if ledger is None:
        how = "nothing records them for resuming (-o FILE makes a run resumable)"
    elif resuming:
        how = f"{ledger.path} holds them: run the same command again to go on"
    else:
        how = f"{ledger.path} holds them: run the same command with --resume to go on"
    return f"{said}; {how}"
