"""``vlcli`` run in-process for the tests, its standard output and error apart."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from vlcli.cli.app import app


def invoke(*args: Any) -> Any:
    """``vlcli ARGS`` in-process; stdout and stderr come back apart. An exception that is not
    an exit is raised, so that a crash fails the test with its traceback."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def error_lines(r: Any) -> list[str]:
    """The lines of standard error, less the CPU warning every run here gets."""
    return [line for line in r.stderr.splitlines() if line.strip() and "no CUDA" not in line]
