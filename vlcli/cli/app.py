"""The ``vlcli`` command: the app, its help layout, and :func:`main`.

The commands are one module each (:mod:`vlcli.cli.probe`, :mod:`vlcli.cli.budget`,
:mod:`vlcli.cli.ask`): each parses its options (:mod:`vlcli.cli.options`), builds the typed
objects of :mod:`vlcli.run`, calls one function there and shows what comes back.

Results go to standard output, everything else to standard error. Every user-facing failure is
a :class:`~vlcli.errors.VlcliError`, reported in one place (:func:`main`) as one line.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from vlcli import __version__
from vlcli.cli import views as render
from vlcli.cli.ask import ask
from vlcli.cli.budget import budget
from vlcli.cli.chat import chat
from vlcli.cli.cut import cut
from vlcli.cli.probe import probe
from vlcli.errors import ExitStatus, Interrupted, VlcliError, first_line
from vlcli.run import signals


def _plain_labels(params: list[Any]) -> list[Any]:
    """No ``<bool>`` or ``<list[str]>`` type labels beside flags and arguments in the help."""
    for param in params:
        if isinstance(param, TyperArgument) or getattr(param, "is_flag", False):
            param.display_type_rich = _no_type_label
    return params


def _no_type_label(ctx: Any) -> None:
    return None


class _Command(TyperCommand):
    """typer's command with plain metavars: ``MEDIA...`` in the usage line, no type labels
    beside flags and arguments (an option's label is its metavar)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.params:
            if isinstance(param, TyperArgument):
                pieces.append(param.metavar or f"{(param.name or '').upper()}...")
        return pieces

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_labels(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_labels(super().get_params(ctx))


app = typer.Typer(
    name="vlcli",
    cls=_Group,
    help="Probe, budget and ask Qwen2.5-VL-family models about videos and images, on your own GPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        render.out.print(f"vlcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Probe, budget and ask Qwen2.5-VL-family models about videos and images, on your own GPU."""


F = TypeVar("F", bound=Callable[..., Any])


_INTERRUPT_SAID: list[int] = []  # a command has said that (and how) it was interrupted


def reports_errors(command: F) -> F:
    """The one place that turns a VlcliError into one line on stderr and its exit status."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except VlcliError as exc:
            render.error(exc)
            raise typer.Exit(int(exc.status)) from None
        except Interrupted as exc:  # SIGINT or SIGTERM during a run: 130 or 143
            render.error(f"interrupted: {exc.detail}" if exc.detail else "interrupted")
            _INTERRUPT_SAID.append(exc.status)
            raise typer.Exit(exc.status) from None
        except KeyboardInterrupt:  # typer would turn it into a silent exit 130
            render.error("interrupted")
            _INTERRUPT_SAID.append(130)
            raise typer.Exit(130) from None
        except BrokenPipeError:  # `vlcli budget ... | head`: the reader left
            render.reader_gone()

    return wrapper  # type: ignore[return-value]


app.command(cls=_Command)(reports_errors(probe))
app.command(cls=_Command)(reports_errors(budget))
app.command(cls=_Command)(reports_errors(ask))
app.command(cls=_Command)(reports_errors(cut))
app.command(cls=_Command)(reports_errors(chat))


def main() -> None:
    """Console entry point: every failure is one line on stderr with its exit status.

    Usage mistakes that the command-line parser finds (a missing argument, an unknown option or
    command, a value of the wrong type) are status 2, with click's message. typer 0.29 raises
    them as its own bundled click's exceptions, which are ``typer.TyperException``s, not the
    ``click`` package's. Standard output that cannot be written (a full disk) is said so.
    Anything else that escapes is a bug: one line and status 1, or the traceback with
    ``VLCLI_DEBUG=1``.
    """
    args = sys.argv[1:]
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # file names that are not UTF-8 go out as the bytes they are
        reconfigure(errors="surrogateescape")
    try:
        status = app(args, standalone_mode=False, prog_name="vlcli")
        render.write_out("")  # flushes: a full disk is reported here, not at exit
    except typer.TyperException as exc:
        sys.exit(_usage_failure(exc, args))
    except (typer.Abort, KeyboardInterrupt):
        render.error("interrupted")
        sys.exit(130)
    except render.ReaderGone:  # `vlcli budget ... | head`: the reader left, nothing to report
        sys.exit(0)
    except render.OutputFailed as exc:  # `vlcli budget x --json > /dev/full`
        render.error(str(exc))
        sys.exit(ExitStatus.ERROR)
    except Exception as exc:  # a bug: one line, status 1; the traceback when asked for
        _bug(exc)
    if status == 130 and not _INTERRUPT_SAID:  # typer turns Ctrl-C into 130, silently
        render.error("interrupted")
    if _INTERRUPT_SAID:  # what is done is on disk: leave now, without waiting on a decoder
        _leave(int(status or _INTERRUPT_SAID[-1]))
    sys.exit(status or 0)


def _leave(status: int) -> NoReturn:
    """Exit at once after an interrupt, streams flushed: a decoder still running on another
    thread must not be torn down by the interpreter's exit (C++ aborts the process then)."""
    signals.leave(status)


def _usage_failure(exc: typer.TyperException, args: list[str]) -> int:
    """One line for a parser error (``Try 'vlcli budget -h' for help.``); its status (2)."""
    status = int(getattr(exc, "exit_code", ExitStatus.USAGE) or ExitStatus.USAGE)
    if type(exc).__name__ == "NoArgsIsHelpError":  # plain `vlcli`: typer has printed the help
        return ExitStatus.USAGE
    message = exc.format_message().strip()
    ctx = getattr(exc, "ctx", None)
    option = getattr(exc, "option_name", None)
    named = [a for a in args if option and a.startswith(option) and os.path.lexists(a)]
    if named:
        message += f" (a file whose name starts with '-': write ./{named[0]}, or put -- before it)"
    if ctx is not None:
        message = message.rstrip(".") + f". Try '{ctx.command_path} -h' for help."
    render.error(message)
    return status


def _bug(exc: BaseException) -> None:
    if os.environ.get("VLCLI_DEBUG"):
        raise exc
    line = first_line(exc)
    reason = f"{type(exc).__name__}: {line[:300]}" if line else type(exc).__name__
    render.error(
        f"unexpected error ({reason}): a bug, please report it (VLCLI_DEBUG=1 shows the traceback)"
    )
    sys.exit(ExitStatus.ERROR)
