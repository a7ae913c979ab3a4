"""Streaming one answer from the server, and reading what it cost from the stream's usage.

An answer that fails with "not now" is asked for again as its :class:`~vlcli.backends.vllm.
patience.Patience` allows; when part of it had been streamed, the sink is told to discard it
(the whole answer comes again from its start).

The prefill's time is only seen here: it ends when the first piece of text arrives. The
server's ``usage`` says how many tokens its prompt had (what the answer reports, and what
:mod:`~vlcli.backends.vllm.tokens` compares with vlcli's count) and how many it generated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vlcli.backends import Answer, TextSink, timings
from vlcli.backends.vllm.client import Completion, ServerBusy, ServerClient
from vlcli.backends.vllm.patience import Patience
from vlcli.backends.vllm.request import PreparedRequest
from vlcli.times.axis import TimeAxis


@dataclass(frozen=True)
class Streamed:
    """A completed answer and how long it took: to its first piece, and in all."""

    completion: Completion
    prefill_s: float
    generate_s: float


def stream_chat(
    client: ServerClient,
    body: dict[str, Any],
    on_text: TextSink | None,
    patience: Patience,
    away: Callable[[], ServerBusy | None],
) -> Streamed:
    """Send ``body`` and stream the answer's pieces to ``on_text`` as they arrive, sending it
    again while the server is ``away()`` (``on_text`` told of each wait, and of the resend);
    the times are those of the try that answered."""
    first: list[float] = []
    started = [time.perf_counter()]

    def sink(piece: str) -> None:
        if not first:
            first.append(time.perf_counter())
        if on_text is not None:
            on_text(piece)

    def again() -> None:
        if on_text is not None and first:
            on_text.discard()
        elif on_text is not None:
            on_text.waiting("")
        first.clear()
        started[0] = time.perf_counter()

    def waiting(line: str) -> None:
        if on_text is not None:
            on_text.waiting(line)

    completion = patience.call(lambda: client.chat(body, sink), away, again, waiting)
    generate_s = time.perf_counter() - started[0]
    prefill_s = (first[0] - started[0]) if first else generate_s
    return Streamed(completion, prefill_s, generate_s)


def answer_of(
    prepared: PreparedRequest,
    streamed: Streamed,
    axes: tuple[TimeAxis | None, ...],
    notes: tuple[str, ...],
) -> Answer:
    """The answer with the server's own token counts when it gave them (vlcli's otherwise)."""
    completion = streamed.completion
    return Answer(
        text=completion.text,
        prompt_tokens=completion.prompt_tokens
        if completion.prompt_tokens is not None
        else prepared.prompt_tokens,
        generated_tokens=completion.completion_tokens or 0,
        visual_tokens=prepared.visual_tokens,
        timings=timings(
            prepared.decode_s, prepared.preprocess_s, streamed.prefill_s, streamed.generate_s
        ),
        axes=axes,
        notes=notes,
        cached_tokens=completion.cached_tokens,
    )
