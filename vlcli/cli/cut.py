"""``vlcli cut RECORDS...``: the command line of :mod:`vlcli.run.cut` (registered by app.py)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from vlcli.cli import views as render
from vlcli.cli.options import (
    ClipFolder,
    ClipRoot,
    ClipsJson,
    CopyStreams,
    CutAgain,
    Pad,
    Records,
    Reel,
)
from vlcli.errors import ExitStatus, UsageError, VlcliError
from vlcli.times.format import format_clock


class _Lines:
    """What ``vlcli cut`` says of each clip: a line on stderr, or its JSON on stdout."""

    def __init__(self, json_out: bool):
        self.json_out = json_out

    def progress(self, clip: str, done_s: float, total_s: float) -> None:
        """A line rewritten in place on a terminal (none elsewhere), for long cuts."""
        if render.can_rewrite_line(render.err):
            render.status(f"cutting {clip}: {done_s / total_s:.0%}" if total_s else "")

    def clip(self, made: Any) -> None:
        if render.can_rewrite_line(render.err):
            render.status("")  # the progress line wiped
        if self.json_out:
            render.json_line(made.to_dict())
            return
        span = f"{format_clock(made.start_s, 3)}-{format_clock(made.end_s, 3)}"
        how = "kept (it exists: --force cuts it again)" if made.kept else "wrote"
        copied = ", copied from a keyframe" if made.copied else ""
        render.write_out(f"{how} {made.clip} ({made.source} {span}{copied})\n")

    def reel(self, path: str, chapters: int, written: bool) -> None:
        if render.can_rewrite_line(render.err):
            render.status("")
        how = "wrote" if written else "kept (it exists: --force joins it again)"
        render.info(f"{how} the reel {path} ({chapters} chapters)")

    def note(self, message: str) -> None:
        render.warning(message)

    def skipped(self, source: str, reason: str) -> None:
        render.info(f"{source}: skipped: {reason}")

    def failed(self, error: VlcliError) -> None:
        if render.can_rewrite_line(render.err):
            render.status("")
        render.error(error)


def cut(
    records: Records,
    out: ClipFolder = ".",
    pad: Pad = None,
    copy: CopyStreams = False,
    force: CutAgain = False,
    root: ClipRoot = None,
    reel: Reel = None,
    json_out: ClipsJson = False,
) -> None:
    """Cut the spans that `vlcli ask --json` records state out of their source videos."""
    # On first use: the command line starts (and answers -h) without the run's modules.
    from vlcli.run.cut import CutOptions, read_records, run_cut

    if pad is not None and not 0 <= pad < float("inf"):
        raise UsageError(f"--pad must be zero or a positive number of seconds, got {pad}")
    found, errors = _read_all(records, read_records)
    view = _Lines(json_out)
    summary = run_cut(found, CutOptions(out, pad, copy, force, root, reel), view)
    errors += summary.errors
    render.info(
        f"{summary.clips} clips written, {summary.kept} kept, {summary.skipped} skipped, "
        f"{len(summary.errors)} records refused"
    )
    if errors:
        raise typer.Exit(ExitStatus.INPUT)


def _read_all(names: list[str], read_records: Any) -> tuple[list[dict[str, Any]], list[VlcliError]]:
    """The records of every file named (``-``: standard input), and the lines refused (said)."""
    found: list[dict[str, Any]] = []
    errors: list[VlcliError] = []
    for name in names:
        for item in read_records(_lines(name), "standard input" if name == "-" else name):
            if isinstance(item, VlcliError):
                errors.append(item)
                render.error(item)
            else:
                found.append(item)
    return found, errors


def _lines(name: str) -> list[str]:
    if name == "-":
        return sys.stdin.read().splitlines()
    try:
        with open(name, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read().splitlines()
    except OSError as exc:
        raise VlcliError(f"cannot read its records: {exc.strerror or exc}", path=name) from None
