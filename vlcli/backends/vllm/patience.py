"""Waiting out a server that is restarting, overloaded or briefly unreachable (``--server-patience``).

A shared vLLM server answers 503 or 429 under load, drops its connections when it is restarted
or rescheduled, and takes 66-196 s to start again (measured: the README's vLLM section). A run
over thousands of clips must not die of that, so a failure that says "not now"
(:class:`~vlcli.backends.vllm.client.ServerBusy`) is waited out and the request sent again:

* the waits grow (:data:`FIRST_WAIT_S`, twice that, ... up to :data:`LONGEST_WAIT_S`), each
  drawn between half and all of its length, so that many clients do not all come back at once;
  a server's ``Retry-After`` is waited as asked;
* a request whose server is away is not sent again (its frames can be megabytes) until
  ``/health`` answers;
* each wait is said in one line (``waiting for the server (503 server restarting), 40 s of
  300``); once the patience is spent, :class:`~vlcli.errors.ServerGone` stops the run.

The patience counts from a request's first failure; every request has its own.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from vlcli.backends.vllm import DEFAULT_PATIENCE_S
from vlcli.backends.vllm.client import ServerBusy
from vlcli.errors import ServerGone

T = TypeVar("T")

FIRST_WAIT_S = 1.0
LONGEST_WAIT_S = 30.0


class Patience:
    """How long, and how, requests to one server are retried (see the module docstring).

    ``sleep`` and ``clock`` are the waiting and the measuring (the tests give their own);
    ``first_wait_s`` and ``longest_wait_s`` bound the growing waits.
    """

    def __init__(
        self,
        seconds: float = DEFAULT_PATIENCE_S,
        warn: Callable[[str], None] = lambda _message: None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        first_wait_s: float | None = None,
        longest_wait_s: float | None = None,
    ):
        self.seconds, self.warn, self.sleep, self.clock = seconds, warn, sleep, clock
        self.first_wait_s = FIRST_WAIT_S if first_wait_s is None else first_wait_s
        self.longest_wait_s = LONGEST_WAIT_S if longest_wait_s is None else longest_wait_s

    def call(
        self,
        send: Callable[[], T],
        away: Callable[[], ServerBusy | None],
        again: Callable[[], None] = lambda: None,
        waiting: Callable[[str], None] = lambda _line: None,
    ) -> T:
        """``send()``, sent again while it fails with "not now" and patience lasts. ``away()``
        says why the server is still away (None: back); ``again()`` runs before each resend;
        ``waiting`` gets each wait's line (besides ``warn``: for a progress display)."""
        started: float | None = None  # the first failure (an answer may stream for minutes)
        attempt = 0
        while True:
            try:
                return send()
            except ServerBusy as exc:
                failure: ServerBusy | None = exc
            started = self.clock() if started is None else started
            while failure is not None:
                self._wait(failure, attempt, started, waiting)
                attempt += 1
                failure = away() if failure.gone else None
            again()

    def backoff_s(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failure in a row (from 0), jittered."""
        doubled = self.first_wait_s * 2 ** min(attempt, 64)  # 2**attempt overflows a float
        longest = min(doubled, self.longest_wait_s)
        return random.uniform(longest / 2, longest)

    def _wait(
        self, failure: ServerBusy, attempt: int, started: float, waiting: Callable[[str], None]
    ) -> None:
        """Wait before the next try, saying so; give up when the patience is spent, or when the
        server asks for more of it than is left."""
        waited = self.clock() - started
        left = self.seconds - waited
        asked = failure.retry_after_s
        if left <= 0 or (asked is not None and asked > left):
            longer = f" (it asked for {asked:g} s more)" if asked is not None and left > 0 else ""
            raise ServerGone(
                f"{failure.message}; the server did not come back within --server-patience "
                f"{self.seconds:g} s{longer}"
            )
        line = f"waiting for the server ({failure.reason}), {waited:.0f} s of {self.seconds:g}"
        self.warn(line)
        waiting(line)
        self.sleep(min(asked if asked is not None else self.backoff_s(attempt), left))
