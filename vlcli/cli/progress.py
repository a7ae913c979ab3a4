"""How far a run of ``vlcli ask`` is, on standard error.

Three modes, chosen once (:func:`progress_mode`):

* ``live``: standard error is a terminal (not ``TERM=dumb``). A ``rich.progress`` display: the
  inputs done and their total, the input being answered and its stage (loading the model,
  prefill, generating), the next input being decoded (frames n/N), elapsed and remaining time.
  It is wiped when the run ends. While an answer is written to the same terminal on standard
  output the display steps aside (:meth:`Progress.pause`), so that the two never mix.
* ``lines``: standard error is a file or a pipe (a log). One line per finished input, when the
  run has several: ``[17/200] clips/a.mp4: ok in 3.2 s``.
* ``off``: ``--quiet``.

Updates may come from the worker that decodes ahead; rich's progress is thread-safe.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from vlcli.errors import one_line

MODES = ("live", "lines", "off")


def progress_mode(console: Console, quiet: bool, rewrite: bool | None = None) -> str:
    """``off`` when quiet; ``live`` where lines can be redrawn (``rewrite``: by default a
    terminal that is not ``TERM=dumb``; vlcli also says no under ``NO_COLOR``); else ``lines``."""
    if quiet:
        return "off"
    if rewrite is None:
        rewrite = (
            console.is_terminal
            and not console.is_dumb_terminal
            and os.environ.get("TERM") != "dumb"
        )
    return "live" if rewrite else "lines"


class Progress:
    """The run's progress display (see the module docstring)."""

    def __init__(self, console: Console, mode: str, total: int = 0):
        if mode not in MODES:
            raise ValueError(f"unknown progress mode {mode!r}")
        self.console = console
        self.mode = mode
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._live: RichProgress | None = None
        self._main: Any = None
        self._paused = False
        self._current = ""  # the input being answered and its stage
        self._ahead = ""  # the input being decoded, and how far

    # ------------------------------------------------------------ lifecycle

    def start(self, total: int) -> None:
        self.total = total
        if self.mode != "live" or self._live is not None:
            return
        self._live = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("remaining"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._main = self._live.add_task("starting", total=total or None, completed=self.done)
        self._live.start()

    def close(self) -> None:
        """Wipe the display (live) for good."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def pause(self) -> None:
        """Step aside (wiped) while standard output writes to the same terminal."""
        with self._lock:
            if self._live is not None and not self._paused:
                self._paused = True
                self._live.stop()

    def resume(self) -> None:
        with self._lock:
            if self._live is not None and self._paused:
                self._paused = False
                self._live.start()

    # ------------------------------------------------------------ updates

    def _show(self, refresh: bool) -> None:
        if self._live is not None:
            text = " | ".join(x for x in (self._current, self._ahead) if x) or "starting"
            self._live.update(self._main, description=text, refresh=refresh)

    def stage(self, path: str, stage: str) -> None:
        """The input being answered (empty: none yet) and what is happening to it."""
        self._current = f"{escape(one_line(path))}: {stage}" if path else stage
        self._show(refresh=True)

    def decoding(self, path: str, done: int, total: int) -> None:
        """Frames decoded of the input being prepared (the next one, while one is answered);
        ``done >= total`` when it is ready."""
        first = not self._ahead
        self._ahead = (
            f"{escape(one_line(path))}: decoding frames {done}/{total}" if done < total else ""
        )
        self._show(refresh=first or not self._ahead)

    def window_finished(self, label: str, seconds: float) -> None:
        """One window of a long video answered: a log line (a video may take hours)."""
        if self.mode == "lines":
            self.console.print(
                f"[dim]vlcli: {escape(one_line(label))}: answered in {seconds:.1f} s[/]",
                highlight=False,
            )

    def finished(self, path: str, status: str, seconds: float) -> None:
        """One input done: the count moves on; a log line when standard error is not a terminal."""
        self.done += 1
        if self._live is not None:
            self._live.update(self._main, completed=self.done, refresh=True)
        elif self.mode == "lines" and self.total > 1:
            self.console.print(
                f"[dim]vlcli: [{self.done}/{self.total}] {escape(one_line(path))}: {status} in {seconds:.1f} s[/]",
                highlight=False,
            )
