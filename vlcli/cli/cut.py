"""``vlcli cut RECORDS...``: the command line of :mod:`vlcli.run.cut` (registered by app.py)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from vlcli.cli import views as render
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
    records: Annotated[
        list[str],
        typer.Argument(
            metavar="RECORDS...",
            help="Files of `vlcli ask --json` records (one per line), or - for standard input.",
            show_default=False,
        ),
    ],
    out: Annotated[
        str, typer.Option("--out", metavar="DIR", help="The folder the clips are written under.")
    ] = ".",
    pad: Annotated[
        float | None,
        typer.Option(
            "--pad",
            metavar="SECONDS",
            help="Widen each span by this much on each side, clipped to the video "
            "(default: 0, and 1 on each side of an instant).",
            show_default=False,
        ),
    ] = None,
    copy: Annotated[
        bool,
        typer.Option(
            "--copy",
            help="Copy the streams from the keyframe at or before each start: fast, not exact "
            "(the clip's real start is said).",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Cut again a clip that exists (kept otherwise).")
    ] = False,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            metavar="DIR",
            help="Clip names keep the sources' folders below DIR (default: the folder all "
            "sources share).",
            show_default=False,
        ),
    ] = None,
    reel: Annotated[
        str | None,
        typer.Option(
            "--reel",
            metavar="FILE",
            help="Also join every clip, in record order, into FILE (MP4), a chapter per span "
            "titled by its text.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per clip, one per line.")
    ] = False,
) -> None:
    """Cut the spans that `vlcli ask --json` records state out of their source videos."""
    # On first use: the command line starts (and answers -h) without the run's modules.
    from vlcli.run.cut import CutOptions, read_records, run_cut

    if pad is not None and not 0 <= pad < float("inf"):
        raise UsageError(f"--pad must be zero or a positive number of seconds, got {pad}")
    found: list[dict[str, Any]] = []
    errors: list[VlcliError] = []
    for name in records:
        for item in read_records(_lines(name), "standard input" if name == "-" else name):
            if isinstance(item, VlcliError):
                errors.append(item)
                render.error(item)
            else:
                found.append(item)
    view = _Lines(json_out)
    summary = run_cut(found, CutOptions(out, pad, copy, force, root, reel), view)
    errors += summary.errors
    render.info(
        f"{summary.clips} clips written, {summary.kept} kept, {summary.skipped} skipped, "
        f"{len(summary.errors)} records refused"
    )
    if errors:
        raise typer.Exit(ExitStatus.INPUT)


def _lines(name: str) -> list[str]:
    if name == "-":
        return sys.stdin.read().splitlines()
    try:
        with open(name, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read().splitlines()
    except OSError as exc:
        raise VlcliError(f"cannot read its records: {exc.strerror or exc}", path=name) from None
