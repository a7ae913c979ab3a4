"""Thinking models: the chat template's switch, and the reasoning kept apart from the answer.

A thinking checkpoint writes its reasoning between ``<think>`` and ``</think>``, then the
answer. Its chat template may open the ``<think>`` itself at the end of the prompt (Qwen3-VL
Thinking always does; Qwen3.5 does unless told ``enable_thinking=False``, when it writes an
empty ``<think></think>`` instead): the model's output then holds only the ``</think>``.
Whether the prompt opened it is read off the rendered template, never off a family's name.

``--think`` / ``--no-think`` set the template's ``enable_thinking``; a template without that
switch refuses them (:func:`check_think`). The times of an answer are parsed from the answer
alone: a time the model weighed in its reasoning is no time it answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlcli.errors import UsageError
from vlcli.planning.prompt import chat_template_text, prompt_files, render

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
SWITCH = "enable_thinking"  # the template variable --think / --no-think set


def think_flag(think: bool) -> str:
    return "--think" if think else "--no-think"


def check_think(folder: str | None, think: bool | None) -> None:
    """Refuse ``--think`` / ``--no-think`` for a model whose chat template has no thinking
    switch. A template that cannot be read here (a server's model with no files on this
    machine) is not refused: the server's template takes or ignores the switch."""
    if think is None or folder is None:
        return
    template = chat_template_text(Path(folder))
    if template is not None and SWITCH not in template:
        flag = think_flag(think)
        raise UsageError(
            f"{flag}: the chat template of {folder} has no thinking switch ({SWITCH}); "
            f"leave {flag} out (the model thinks or not as its template says)"
        )


def reasoning_opened(
    folder: str | None, question: str, system: str | None, think: bool | None
) -> bool:
    """Whether the prompt itself ends inside ``<think>`` (so the model's output begins with
    reasoning): the template rendered as the prompt is, its generation prompt looked at."""
    files = prompt_files(folder) if folder else None
    if files is None:
        return False
    try:
        text = render(files, (), question, system, think)
    except Exception:  # a template this sandbox cannot render: as prompt.count_prompt_tokens
        return False
    return text.rstrip().endswith(THINK_OPEN)


@dataclass(frozen=True)
class Reasoned:
    """A model's output apart: its reasoning (None when it gave none) and its answer;
    ``finished`` is False when the output ended inside the reasoning (no answer)."""

    reasoning: str | None
    answer: str
    finished: bool = True


def split_reasoning(text: str, opened: bool) -> Reasoned:
    """The reasoning and the answer of ``text``; ``opened``: the prompt opened ``<think>``."""
    head = text.lstrip()
    if head.startswith(THINK_OPEN):
        opened, text = True, head[len(THINK_OPEN) :]
    end = text.find(THINK_CLOSE)
    if end >= 0:
        return Reasoned(text[:end].strip(), text[end + len(THINK_CLOSE) :].lstrip())
    if opened:
        return Reasoned(text.strip(), "", finished=False)
    return Reasoned(None, text)


class ReasoningPieces:
    """A streamed output split as :func:`split_reasoning` splits the whole: each piece gives
    the parts it holds, ``(True, text)`` for reasoning and ``(False, text)`` for the answer.
    A tag cut between two pieces is held until it is whole; the blank lines after each tag
    are not shown. A ``</think>`` that comes when the prompt was not known to open the
    reasoning (a template vlcli could not read) shows that what came before it, given as
    answer, was reasoning: ``misshown`` says so, for the run to tell the user."""

    def __init__(self, opened: bool) -> None:
        self.reasoning = opened  # the text now coming is reasoning
        self._held = ""
        self._begun = False  # the output's first words are in (a leading <think> is past)
        self._closed = False  # </think> has come
        self._trim = opened  # the blank start of the part now coming is not shown
        self._answered = False  # some text was given as answer
        self.misshown = False  # text given as answer turned out to be reasoning

    def piece(self, piece: str) -> list[tuple[bool, str]]:
        text, self._held = self._held + piece, ""
        if not self._begun:
            head = text.lstrip()
            if len(head) < len(THINK_OPEN) and THINK_OPEN.startswith(head):
                self._held = text  # maybe the start of a <think>
                return []
            self._begun = True
            if head.startswith(THINK_OPEN):
                self.reasoning, self._trim, text = True, True, head[len(THINK_OPEN) :]
        parts: list[tuple[bool, str]] = []
        if not self._closed:
            end = text.find(THINK_CLOSE)
            if end >= 0:
                parts.extend(self._part(text[:end]))
                self.misshown = self._answered and not self.reasoning
                self._closed, self.reasoning, self._trim = True, False, True
                text = text[end + len(THINK_CLOSE) :]
            else:
                keep = _partial_tag(text, THINK_CLOSE)
                text, self._held = text[: len(text) - keep], text[len(text) - keep :]
        return parts + self._part(text)

    def rest(self) -> list[tuple[bool, str]]:
        """What is still held when the output ends (a tag that never came whole)."""
        held, self._held = self._held, ""
        return self._part(held)

    def _part(self, text: str) -> list[tuple[bool, str]]:
        if self._trim:
            text = text.lstrip()
            self._trim = not text
        self._answered = self._answered or (bool(text) and not self.reasoning)
        return [(self.reasoning, text)] if text else []


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` may begin ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0
