"""SIGINT, SIGTERM and SIGHUP over the whole life of the process, never inside an import.

From the first line of the command's entry (:func:`install`), each of these signals raises
:class:`~vlcli.errors.Interrupted` on the main thread, so that ``finally`` blocks run (a vLLM
server is stopped, a record is written whole) and the command ends with one line and status
128 + the signal. A signal the shell set to be ignored (``nohup``, a background job's SIGINT)
stays ignored.

Why a signal waits for the import in progress: raised inside ``import torch`` it leaves
half-initialised modules behind, and torch's C++ start-up swallows an exception from its import
of numpy (the run then goes on without numpy in torch, or fails later with "numpy has no
attribute minimum", or aborts in C++ at exit). So while the main thread is importing, a signal
is held and sent again every :data:`RETRY_S` seconds by a helper thread, until the import is
over (a handler cannot be told when that is). Exiting at once from the handler instead
(``os._exit``) would leave a started vLLM server and half-written outputs behind.

A signal that a library swallowed anyway is not lost: :func:`received` keeps it, and the run
checks it before it starts (:func:`raise_if_received`) and when it ends.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from vlcli.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RETRY_S = 0.05  # how often a signal held during an import is sent again

Handler = Callable[[int, FrameType | None], Any]

_received: list[int] = []  # kept once install() has run (the command line's process)
_watching = threading.Event()
_resend_pending = threading.Event()


def received() -> int | None:
    """The first signal this process was sent (held, raised or swallowed), if any."""
    return _received[0] if _received else None


def raise_if_received() -> None:
    """Raise :class:`Interrupted` for a signal that arrived earlier and was swallowed."""
    if _received:
        raise Interrupted(_received[0])


def importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside an import (Python's import machinery is on the stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def _send_again(signum: int) -> None:
    if _resend_pending.is_set():
        return
    _resend_pending.set()

    def resend() -> None:
        _resend_pending.clear()
        signal.raise_signal(signum)

    timer = threading.Timer(RETRY_S, resend)
    timer.daemon = True
    timer.start()


def after_imports(handler: Handler) -> Handler:
    """``handler``, run only once the main thread is not importing (the signal is sent again
    until then), with the signal kept for :func:`received`."""

    def guarded(signum: int, frame: FrameType | None) -> Any:
        if _watching.is_set() and not _received:
            _received.append(signum)
        if importing(frame):
            _send_again(signum)
            return None
        return handler(signum, frame)

    return guarded


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def install() -> None:
    """Every signal of :data:`SIGNALS` that is not ignored raises :class:`Interrupted`."""
    _watching.set()
    for sig in SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, after_imports(_interrupt))


def forget() -> None:
    """A signal the command handled itself (``vlcli chat``'s Ctrl-C during an answer, which
    returns to the prompt) is no reason for the process to end as interrupted."""
    _received.clear()


def exit_now_on_signal(say: Callable[[], None]) -> None:
    """Once the exit status is decided: a signal says so (``say``) and ends the process at once,
    as nothing is left to clean up."""

    def said_and_gone(signum: int, _frame: FrameType | None) -> None:
        say()
        leave(128 + signum)

    for sig in SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, said_and_gone)


def leave(status: int) -> NoReturn:
    """Exit at once, streams flushed: after an interrupt a decoder or torch thread may still
    run, and the interpreter's teardown would abort in C++ (status 134)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
