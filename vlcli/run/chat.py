"""``vlcli chat``: a conversation about some media, which are planned and prepared once.

A :class:`Conversation` plans its media when it starts, decodes and preprocesses them with the
first question (:meth:`~vlcli.backends.Backend.prepare`), and answers every later question over
the same prepared media (:meth:`~vlcli.backends.Backend.reprompt`) with the turns so far as its
history: the media open the first user turn, then each earlier question and answer, then the
new question. With the transformers backend the media's prefill is kept
(:mod:`vlcli.backends.transformers.prefix`): each turn prefills only the conversation's text.

Each turn is a record with the fields of ``ask --json``; its ``key`` is made, as ``ask``'s, from
what decides the answer, the conversation before it included. ``/reset`` forgets the turns and
keeps the prepared media. A turn that would not fit in the model's context is refused before
anything runs, with the room that is left.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlcli.backends import Backend, Prepared, Prompt, TextSink
from vlcli.errors import InputError, MemoryBudgetError, UsageError
from vlcli.outputs.ledger import record_key
from vlcli.planning.memory import GIB, estimate_memory
from vlcli.planning.plan import Plan
from vlcli.planning.prompt import Turns
from vlcli.run.ask import input_key
from vlcli.run.budget import plan_inputs
from vlcli.run.inputs import task_for
from vlcli.run.prompt import AskResult, AskSettings, make_prompt, prompt_tokens, result_of


class Conversation:
    """The turns about one set of media, with one backend (see the module docstring)."""

    def __init__(
        self, backend: Backend, paths: list[str], settings: AskSettings, warn: Callable[[str], None]
    ) -> None:
        self.backend, self.paths, self.settings, self.warn = backend, paths, settings, warn
        self.plans = _plans(paths, settings, backend)
        self.identity = backend.identity()
        self.prepared: Prepared | None = None  # the media, prepared with the first question
        self.history: Turns = ()
        self.results: list[AskResult] = []  # every turn answered, for /save (a /reset too)

    def holds(self) -> str:
        """What the chat will hold, said on its first line: the media's tokens and, for a
        model in this process, its memory beside the weights with the kept prefill."""
        generation = self.settings.generation
        media = tuple(zip(self.paths, self.plans, strict=True))
        prompt = Prompt(media, "", self.settings.system, generation.max_new_tokens)
        tokens = prompt_tokens(self.backend, prompt)
        said = f"{', '.join(self.paths)}: {tokens:,} prompt tokens with the media"
        dtype, attn = self.identity.get("dtype"), self.identity.get("attn")
        if dtype is None or attn is None:  # a server: its memory is its own
            return said
        est = estimate_memory(self.backend.spec, self.plans, tokens, prompt.max_new_tokens,
                              dtype, attn, questions=2)  # fmt: skip
        if est is None:
            return said
        beside = (est.total_bytes - est.weights_bytes) / GIB
        return f"{said}; about {beside:.1f} GiB beside the weights, the kept prefill included"

    def reset(self) -> None:
        """Forget the conversation; the prepared media stay."""
        self.history = ()

    def ask(
        self, question: str, on_text: TextSink | None, on_frames: Callable[[int, int], None]
    ) -> tuple[dict[str, Any], AskResult]:
        """Answer one turn: its record (as ``ask --json``'s) and its result."""
        settings = dataclasses.replace(self.settings, question=question)
        prompt = dataclasses.replace(
            make_prompt(self.paths, self.plans, settings), keep_media=True, history=self.history
        )
        self._check_fit(prompt)
        if self.prepared is None:
            self.backend.load()
            self.prepared = self.backend.prepare(prompt, on_frames)
            prepared = self.prepared
        else:
            prepared = self.backend.reprompt(self.prepared, prompt)
        answer = self.backend.generate(prepared, on_text)
        stem = Path(self.paths[0]).stem
        result = result_of(answer, self.paths, self.plans, settings, self.backend.spec.model,
                           self.warn, stem)  # fmt: skip
        key_of = functools.partial(input_key, self._key(settings))
        task = task_for(self.paths, stem, key_of)
        result.key, result.backend = task.key, self.identity
        record = {**result.to_dict(), "file": task.file()}
        if self.history:
            record["history"] = [list(turn) for turn in self.history]
        self.history = (*self.history, (prompt.text, answer.text))
        self.results.append(result)
        return record, result

    def _key(self, settings: AskSettings) -> str:
        """What decides this turn's answer: ``ask``'s settings and backend, and the turns before."""
        return record_key(
            {**dataclasses.asdict(settings), "backend": self.identity, "history": self.history}
        )

    def _check_fit(self, prompt: Any) -> None:
        """Refuse a turn that would overflow the context, saying how much room is left."""
        tokens = prompt_tokens(self.backend, prompt)
        try:
            self.backend.check_fit(prompt, tokens, self.settings.sampling)
        except MemoryBudgetError as exc:
            dims = self.backend.spec.dims
            if not self.history or dims is None or dims.context_length is None:
                raise
            media = prompt_tokens(self.backend, dataclasses.replace(prompt, history=(), text=""))
            room = max(dims.context_length - media - prompt.max_new_tokens, 0)
            raise UsageError(
                f"this turn does not fit: {exc.message}; beside the media and the answer, "
                f"{room:,} tokens are left for the conversation: /reset forgets it"
            ) from None


def _plans(paths: list[str], settings: AskSettings, backend: Backend) -> list[Plan]:
    """Every input planned once; one that cannot be is a failure of the whole chat."""
    plans = []
    for item in plan_inputs(paths, settings.sampling, backend.spec):
        if item.error is not None or item.plan is None:
            raise item.error or InputError("unreadable", item.path)
        plans.append(item.plan)
    return plans
