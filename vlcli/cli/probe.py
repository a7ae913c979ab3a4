"""``vlcli probe``: what each input is, from its container; and how a command that goes
through inputs one by one reports the ones that fail."""

from __future__ import annotations

import typer

from vlcli.cli import views as render
from vlcli.cli.options import Json, MediaArguments, Null, media_paths
from vlcli.errors import ExitStatus, InputError, VlcliError
from vlcli.planning.plan import SamplingOptions


def probe(media: MediaArguments, json_out: Json = False, null: Null = False) -> None:
    """Tell what each media file is, from its container, without decoding it."""
    # On first use: the command line starts (and answers -h) without the run's modules.
    from vlcli.run.budget import plan_inputs

    errors: list[VlcliError] = []
    rows = []
    for item in plan_inputs(media_paths(media, null), SamplingOptions(), None):
        if item.error is not None or item.info is None:
            errors.append(item.error or InputError("unreadable", item.path))
            report(item.path, errors[-1], json_out)
            continue
        row = item.info.to_dict()
        if json_out:
            render.json_line(row)
        else:
            rows.append(row)
    if rows:
        render.probe_table(rows)
    if errors:
        raise typer.Exit(failure_status(errors))


def failure_status(errors: list[VlcliError]) -> ExitStatus:
    """Status 1 when a bug was met on some input, else 3 (an input could not be used)."""
    return (
        ExitStatus.ERROR if any(e.status == ExitStatus.ERROR for e in errors) else ExitStatus.INPUT
    )


def report(path: str, exc: VlcliError, json_out: bool) -> None:
    """One input's failure: on stderr, and as its JSON line with ``--json``."""
    if json_out:
        render.json_line({"path": path, "error": exc.message})
    render.error(exc)
