"""One prompt through the backend, the pipeline's two steps: prepare it (frames decoded, the fit
checked) and generate its answer (streamed to the view).

The questions of one input come one after the other: the first is prepared (decoded,
preprocessed) as any prompt, the next ones reuse its media (:meth:`~vlcli.backends.Backend.reprompt`),
so that an input is decoded once however many questions it is asked.

A prompt of a video whose record is already made (an earlier window failed), or one still being
decoded when the run stops, is abandoned (:class:`~vlcli.run.inputs.Abandoned`). A prompt that
does not fit the device's memory fails with the plan's hint of what to lower. An answer whose
text is not valid Unicode costs the user a few characters, not the input.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vlcli.errors import DeviceOutOfMemory, MemoryBudgetError
from vlcli.outputs.text import ValidPieces, valid_text
from vlcli.planning.context import fit_hint
from vlcli.planning.plan import Media, SamplingOptions
from vlcli.planning.thinking import ReasoningPieces, reasoning_opened, split_reasoning
from vlcli.run.inputs import Abandoned, Job
from vlcli.run.prompt import AskSettings, make_prompt, prompt_tokens
from vlcli.run.view import AnswerSink, AskView
from vlcli.run.windowed import window_title

if TYPE_CHECKING:
    from vlcli.backends import Answer, Backend, Prepared


class Answering:
    """Prepares and answers the run's prompts with one backend, showing their progress."""

    def __init__(
        self,
        backend: Backend,
        asked: Sequence[AskSettings],
        options: SamplingOptions,
        view: AskView,
        stopping: threading.Event,
        several: bool,
    ) -> None:
        self.backend, self.options, self.view = backend, options, view
        self.asked = asked  # each question's settings (a record's task.question picks one)
        self.stopping = stopping  # set when the run stops: preparing gives up
        # the last prompt's media and what they were prepared into, for the input's next question
        self.last: tuple[Media, Prepared] | None = None
        self.several = several  # more than one input: each streamed answer is headed
        # the prompt ends inside <think> (the template's generation prompt, the same for every
        # question: --think and --system are the run's)
        first = asked[0]
        self.opened = reasoning_opened(
            backend.spec.local_path, first.question, first.system, first.think
        )

    def prepare(self, job: Job) -> tuple[Job, Prepared]:
        """Make the prompt, refuse it if it cannot fit, decode its frames (on the worker)."""
        if job.task.closed:
            raise Abandoned
        prompt = make_prompt(job.task.paths, job.plans, self.asked[job.task.question])
        if job.task.question < len(self.asked) - 1:  # its media serve the input's next questions
            prompt = dataclasses.replace(prompt, keep_media=True)
        self.backend.check_fit(prompt, prompt_tokens(self.backend, prompt), self.options)
        label = job.label

        def frames(done: int, total: int) -> None:
            if self.stopping.is_set():  # the run stopped: leave no decoding behind
                raise Abandoned
            self.view.decoding(label, done, total)

        if self.last is not None and self.last[0] == prompt.media:
            # another question of the same input: its media were prepared once for all
            prepared = self.backend.reprompt(self.last[1], prompt)
            self.last = prompt.media, prepared
            return job, prepared
        self.last = None  # not held while the next input decodes
        try:
            prepared = self.backend.prepare(prompt, frames)
        except DeviceOutOfMemory as exc:
            raise MemoryBudgetError(f"{exc.message}: {fit_hint(job.plans, self.options)}") from exc
        finally:
            self.view.decoding(label, 0, 0)
        self.last = prompt.media, prepared
        return job, prepared

    def generate(self, item: tuple[Job, Prepared]) -> Answer:
        """Answer one prepared prompt; its text is streamed when one prompt runs at a time."""
        job, prepared = item
        if job.task.closed:
            raise Abandoned
        for note in job.notes:
            self.view.warn(f"{job.task.label}: {note}")
        self.view.stage(job.label, "prefill")
        several = self.several or job.window is not None
        sink = (
            self.view.start(job.task.paths, window_title(job), several)
            if self.backend.concurrency == 1
            else None
        )
        shown = _Shown(self.view, job.label, sink, self.opened)
        try:
            answer = self.backend.generate(prepared, shown)
        except DeviceOutOfMemory as exc:
            raise MemoryBudgetError(f"{exc.message}: {fit_hint(job.plans, self.options)}") from exc
        shown.end()
        return self._apart(self._valid(job, answer))

    def _apart(self, answer: Answer) -> Answer:
        """A thinking model's reasoning set apart from its answer
        (:func:`~vlcli.planning.thinking.split_reasoning`); other answers as they are."""
        parts = split_reasoning(answer.text, self.opened)
        if parts.reasoning is None:
            return answer
        return dataclasses.replace(
            answer,
            text=parts.answer,
            reasoning=parts.reasoning,
            reasoning_finished=parts.finished,
        )

    def _valid(self, job: Job, answer: Answer) -> Answer:
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


class _Shown:
    """An answer's text on its way to the view (:class:`~vlcli.backends.TextSink`): the first
    piece starts the "generating" stage; a character split between two pieces is held until
    it is whole; a thinking model's reasoning goes to the sink's ``reasoning``, its answer to
    the sink itself (:class:`~vlcli.planning.thinking.ReasoningPieces`); an answer asked for
    again after it broke off is said, and its text so far is voided (the view's sink ends its
    line and heads the new answer)."""

    def __init__(self, view: AskView, label: str, sink: AnswerSink | None, opened: bool) -> None:
        self.view, self.label, self.sink, self.opened = view, label, sink, opened
        self.pieces = ValidPieces()
        self.parts = ReasoningPieces(opened)
        self.started = False

    def __call__(self, piece: str) -> None:
        if not self.started:
            self.started = True
            self.view.stage(self.label, "generating")
        if self.sink is not None and (text := self.pieces.piece(piece)):
            self._show(self.parts.piece(text))

    def _show(self, parts: list[tuple[bool, str]]) -> None:
        assert self.sink is not None
        for reasoning, text in parts:
            if reasoning:
                self.sink.reasoning(text)
            else:
                self.sink(text)

    def waiting(self, message: str) -> None:
        """The display says the answer waits for the server (empty: sent again, "prefill")."""
        self.view.stage(self.label, message or "prefill")

    def discard(self) -> None:
        shown = " (the text above is void)" if self.sink is not None else ""
        self.view.warn(f"{self.label}: the answer broke off: asked again from the start{shown}")
        self.pieces = ValidPieces()
        self.parts = ReasoningPieces(self.opened)
        self.started = False
        self.view.stage(self.label, "prefill")
        if self.sink is not None:
            self.sink.discard()

    def end(self) -> None:
        if self.sink is None:
            return
        rest = self.pieces.rest()
        self._show((self.parts.piece(rest) if rest else []) + self.parts.rest())
        if self.parts.misshown:
            self.view.warn(
                f"{self.label}: the text shown before the model's </think> was its reasoning, "
                "not its answer (its prompt opened <think> in a chat template vlcli could not "
                "read); the record keeps the two apart"
            )
