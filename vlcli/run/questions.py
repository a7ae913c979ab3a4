"""The questions a run asks of every input: ``-q/--question`` (repeated) and ``--questions FILE``.

Each question is one record per input, with its own key: the question and its task are part of
what decides the answer (:class:`~vlcli.run.prompt.AskSettings`), so ``-o`` and ``--resume``
work per input and question. The rest of the settings (sampling, system prompt, generation,
window) are the run's, shared by every question, so that an input is planned and decoded once
for all of them (:mod:`vlcli.run.planned`, :mod:`vlcli.run.answering`).

A questions file is one question per line, or JSON Lines (its first non-blank line starts with
``{``) with ``question`` and an optional ``task``; blank lines are skipped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import NamedTuple

from vlcli.errors import UsageError
from vlcli.planning.tasks import build_prompt, check_task
from vlcli.run.prompt import AskSettings


class Question(NamedTuple):
    """One question and the task it is asked under (``None``: the run's ``--task``)."""

    text: str
    task: str | None = None


def read_questions(lines: Iterable[str], source: str) -> list[Question]:
    """The questions of a ``--questions`` file (``source`` names it in messages)."""
    rows = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise UsageError(f"--questions {source}: no question in it")
    if not rows[0][1].startswith("{"):
        return [Question(text) for _, text in rows]
    return [_json_question(text, f"--questions {source}, line {n}") for n, text in rows]


def _json_question(text: str, where: str) -> Question:
    """One JSON Lines question: an object with a ``question`` string and maybe a ``task``."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get("question"), str):
        raise UsageError(f'{where}: give an object with a "question" string')
    task = row.get("task")
    if task is not None and not isinstance(task, str):
        raise UsageError(f'{where}: "task" must be a string')
    return Question(row["question"], task)


def asked(settings: AskSettings, questions: list[Question]) -> list[AskSettings]:
    """Each question's settings: the run's, with its question and task; each checked as
    ``ask`` checks its one question (a known task, text it can build a prompt from)."""
    out = []
    for question in questions:
        task = question.task or settings.task
        check_task(task)
        try:
            build_prompt(task, question.text)
        except ValueError as exc:
            raise UsageError(f"{exc} (question {question.text!r})") from None
        out.append(dataclasses.replace(settings, question=question.text, task=task))
    return out
