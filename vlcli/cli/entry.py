"""The ``vlcli`` program: signals and standard streams made safe first, then the command line.

This module imports next to nothing, so that a signal that comes while the command line's
modules (typer, rich) and then torch and transformers are imported is handled like any other:
one line, status 128 + the signal (:mod:`vlcli.run.signals` says why it waits for an import to
end). Only the interpreter's own start and ``import vlcli`` come before.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn, TextIO

from vlcli.errors import Interrupted
from vlcli.run import signals


def main() -> NoReturn:
    signals.install()
    _hold_closed_streams()
    if sys.stdout is not None:
        sys.stdout = _Stdout(sys.stdout)  # type: ignore[assignment]
    status: int | None = None  # None: stopped by an interrupt nobody has said yet
    stopped_by: int = signal.SIGINT
    try:
        from vlcli.cli.app import main as command_line  # after the handlers (module docstring)

        command_line()
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Interrupted as exc:  # before a command began, or while it said why it stops
        stopped_by = exc.signum
    except KeyboardInterrupt:
        pass
    signals.exit_now_on_signal(_say_interrupted)
    signum = signals.received()
    if status is not None and signum is None:
        sys.exit(status)
    interrupted = 128 + (signum or stopped_by)
    if status != interrupted:  # not said yet (or a library swallowed the signal)
        _say_interrupted()
    signals.leave(interrupted)


def _say_interrupted() -> None:
    try:
        sys.stderr.write("vlcli: interrupted\n")
    except (OSError, ValueError, AttributeError):
        pass


def _hold_closed_streams() -> None:
    """A standard stream the shell closed (``vlcli probe x >&-``) is held on /dev/null, so that
    no file vlcli opens takes its number: standard output read-only, so that writing to it
    fails and is said (status 1), standard input at its end, standard error writing nowhere."""
    for fd, name, flags, mode in ((0, "stdin", os.O_RDONLY, "r"), (1, "stdout", os.O_RDONLY, "w"),
                                  (2, "stderr", os.O_WRONLY, "w")):  # fmt: skip
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, flags)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        stream = open(fd, mode, encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
        setattr(sys, name, stream)


class _Stdout:
    """Standard output whose failures are said as such by whoever writes (typer's help too):
    a full disk or a closed stream is one line and status 1, a reader that left status 0
    (:func:`vlcli.cli.views.output_failed`)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            _failed(exc)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            _failed(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _failed(exc: OSError) -> NoReturn:
    from vlcli.cli.views import output_failed  # rich: only when output fails

    output_failed(exc)
