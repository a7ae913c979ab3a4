"""One error type and one exit-status table for the whole tool, and how a failure is said.

Every failure a user can cause (a missing file, a clip range outside the video, a model that
cannot be found) is raised as :class:`VlcliError` with the exit status it maps to. The CLI
catches it in one place and prints one line on standard error, never a traceback.
"""

from __future__ import annotations

import re
import signal
import sys
from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit statuses of the ``vlcli`` command, documented in the README."""

    OK = 0
    ERROR = 1  # an unexpected failure (a bug: please report it)
    USAGE = 2  # bad options or arguments
    INPUT = 3  # at least one input could not be used (missing, not media, corrupt, range...)
    MODEL = 4  # the model could not be found or loaded
    MEMORY = 5  # the weights or the plan do not fit in the device memory (or CUDA ran out of it)
    MISSING_DEPENDENCY = 6  # FFmpeg or another system part is missing


class VlcliError(Exception):
    """A failure with a message meant for the user and the exit status it maps to."""

    def __init__(
        self, message: str, status: ExitStatus = ExitStatus.INPUT, path: str | None = None
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputError(VlcliError):
    """One input (file, folder, range) cannot be used; other inputs of the run still go on."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message, ExitStatus.INPUT, path)


class UsageError(VlcliError):
    def __init__(self, message: str):
        super().__init__(message, ExitStatus.USAGE)


class ModelError(VlcliError):
    def __init__(self, message: str):
        super().__init__(message, ExitStatus.MODEL)


class MemoryBudgetError(VlcliError):
    def __init__(self, message: str):
        super().__init__(message, ExitStatus.MEMORY)


class DeviceOutOfMemory(MemoryBudgetError):
    """The device ran out of memory while a backend answered (``vlcli.run.prompt`` adds what would fit)."""


class RequestFailed(VlcliError):
    """The engine refused or botched one input's request for a reason of that request (a
    server's 400 for its frames, 413 for its size, a context overflow, an answer that is not
    one): that input's record says so and the run goes on. Status 4 (5 for a prompt too long)."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.MODEL):
        super().__init__(message, status)


class ServerGone(VlcliError):
    """The model's server stayed unreachable or busy for longer than ``--server-patience``:
    the run stops as an interrupt does (what is recorded stays), status 4."""

    def __init__(self, message: str):
        super().__init__(message, ExitStatus.MODEL)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: stop, keep what is finished; exit status 128 + the signal.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` takes it for
    one input's failure.
    """

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum
        self.detail: str | None = None  # what was done and how to resume, said by the run

    @property
    def status(self) -> int:
        return 128 + self.signum


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_LINE_BREAKERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """A name or message for one line of standard error or a table cell: newline, tab and
    carriage return written ``\\n``, ``\\t``, ``\\r``, other control characters as ``\\xNN``,
    so that one error stays one line and a name cannot move the cursor or clear the screen."""
    return _LINE_BREAKERS.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, or "" when it has none: what a one-line message
    can quote of a library's error (which may go on with a traceback or an HTTP body)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def warn_on_stderr(message: str) -> None:
    """Say a warning on standard error: the default of the modules that take a ``warn`` callback
    (the CLI passes its own, which shows it on its console)."""
    print(f"vlcli: warning: {message}", file=sys.stderr)
