"""The ``vlcli`` command: thin commands that parse, call one core function and render.

Results go to standard output, everything else to standard error. Every user-facing failure is
a :class:`~vlcli.errors.VlcliError`, reported in one place (:func:`main`) as one line.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from vlcli.cli import views as render
from vlcli.cli.options import (
    ApiKeyOption,
    AskModel,
    Attn,
    Concurrency,
    Device,
    Dtype,
    End,
    EngineOption,
    EstimateAttn,
    EstimateDtype,
    Evidence,
    Force,
    Fps,
    FrameFormat,
    Json,
    MaxFrames,
    MaxNew,
    MaxPixels,
    Media,
    MediaAndQuestion,
    MinFrames,
    MinPixels,
    Model,
    NFrames,
    Null,
    Output,
    Overlap,
    Question,
    Quiet,
    Resume,
    RetryFailed,
    ServerOption,
    Srt,
    Start,
    SystemOption,
    TaskOption,
    Temperature,
    Together,
    TotalPixels,
    VllmArgs,
    VllmPython,
    Vtt,
    Window,
    media_paths,
    sampling,
)
from vlcli.errors import ExitStatus, InputError, Interrupted, UsageError, VlcliError
from vlcli.models.families import DEFAULT_MODEL, resolve_model
from vlcli.planning.plan import SamplingOptions, VideoPlan, check_options


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
        from vlcli import __version__

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


def _failure_status(errors: list[VlcliError]) -> ExitStatus:
    """Status 1 when a bug was met on some input, else 3 (an input could not be used)."""
    return (
        ExitStatus.ERROR if any(e.status == ExitStatus.ERROR for e in errors) else ExitStatus.INPUT
    )


def _report(path: str, exc: VlcliError, json_out: bool) -> None:
    if json_out:
        render.json_line({"path": path, "error": exc.message})
    render.error(exc)


@app.command(cls=_Command)
@reports_errors
def probe(media: Media, json_out: Json = False, null: Null = False) -> None:
    """Tell what each media file is, from its container, without decoding it."""
    from vlcli.run.budget import plan_inputs

    errors: list[VlcliError] = []
    rows = []
    for item in plan_inputs(media_paths(media, null), SamplingOptions(), None):
        if item.error is not None or item.info is None:
            errors.append(item.error or InputError("unreadable", item.path))
            _report(item.path, errors[-1], json_out)
            continue
        row = item.info.to_dict()
        if json_out:
            render.json_line(row)
        else:
            rows.append(row)
    if rows:
        render.probe_table(rows)
    if errors:
        raise typer.Exit(_failure_status(errors))


@app.command(cls=_Command)
@reports_errors
def budget(
    media: Media,
    fps: Fps = None,
    nframes: NFrames = None,
    min_frames: MinFrames = None,
    max_frames: MaxFrames = None,
    min_pixels: MinPixels = None,
    max_pixels: MaxPixels = None,
    total_pixels: TotalPixels = None,
    start: Start = None,
    end: End = None,
    model: Model = DEFAULT_MODEL,
    max_new_tokens: MaxNew = 512,
    dtype: EstimateDtype = "bfloat16",
    attn: EstimateAttn = "sdpa",
    question: Question = "",
    task: TaskOption = "qa",
    system: SystemOption = None,
    together: Together = False,
    window: Window = None,
    overlap: Overlap = None,
    json_out: Json = False,
    null: Null = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    engine: EngineOption = "transformers",
) -> None:
    """Dry run: the frames, sizes, tokens, positions and GPU memory that `ask` would use."""
    from vlcli.planning.context import context_problem
    from vlcli.planning.memory import canonical_attn, canonical_dtype, estimate_memory
    from vlcli.planning.prompt import count_prompt_tokens
    from vlcli.planning.tasks import GROUND_TEMPLATE, TASKS, build_prompt
    from vlcli.planning.windows import check_window
    from vlcli.run.budget import plan_inputs, window_budget

    options = sampling(
        fps, nframes, min_frames, max_frames, min_pixels, max_pixels, total_pixels, start, end
    )
    windowing = check_window(window, overlap, together)
    dtype = canonical_dtype(dtype)
    attn = canonical_attn(attn)
    if task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}")
    # Without --question the question's own tokens are not counted (a ground prompt is then
    # the template around an empty query).
    prompt = build_prompt(task, question) if question.strip() or task == "caption" else ""
    if task == "ground" and not question.strip():
        prompt = GROUND_TEMPLATE.format(query="")
    if engine not in ("transformers", "vllm"):
        raise UsageError("--engine must be transformers or vllm")
    context: int | None = None  # the model's own context length, unless a server says less
    if server is not None:
        from vlcli.backends.vllm.backend import ServerBackend

        served = ServerBackend(
            server, model=None if model == DEFAULT_MODEL else model, api_key=api_key
        )
        spec, model, engine = served.spec, served.served, "vllm"
        context = served.max_model_len if isinstance(served.max_model_len, int) else None
    else:
        spec = resolve_model(model)
    positions = "vllm" if engine == "vllm" else "reference"
    check_options(options, spec.family)

    def count(items: list[tuple[str, Any]]) -> tuple[int, bool]:
        return count_prompt_tokens(spec.local_path, spec.family, items, prompt, system)

    errors: list[VlcliError] = []
    done = []
    for item in plan_inputs(media_paths(media, null), options, spec):
        if item.error is not None or item.plan is None:
            errors.append(item.error or InputError("unreadable", item.path))
            _report(item.path, errors[-1], json_out)
            continue
        if windowing and item.info is not None and isinstance(item.plan, VideoPlan):
            rows = window_budget(item, options, spec, windowing, count, max_new_tokens, dtype, attn)
            if len(rows) > 1:  # a video longer than one window: each window is its own prompt
                render.budget_windows(item.path, rows, model, json_out)
                continue
        if isinstance(item.plan, VideoPlan):
            for note in item.plan.notes:
                render.warning(f"{item.path}: {note}")
        if together:
            done.append(item)
            continue
        tokens, exact = count([(item.path, item.plan)])
        mem = estimate_memory(spec, [item.plan], tokens, max_new_tokens, dtype, attn)
        problem = context_problem(spec, [item.plan], options, tokens, max_new_tokens, context)
        if problem is not None:
            render.warning(f"{item.path}: {problem}")
        if json_out:
            render.json_line(
                render.budget_dict(item.path, item.plan, tokens, mem, model, exact, positions)
            )
        else:
            render.budget_view(item.path, item.plan, tokens, mem, model, exact, positions)
    if together and done:
        plans = [i.plan for i in done if i.plan is not None]
        tokens, exact = count([(i.path, i.plan) for i in done])
        mem = estimate_memory(spec, plans, tokens, max_new_tokens, dtype, attn)
        problem = context_problem(spec, plans, options, tokens, max_new_tokens, context)
        if problem is not None:
            render.warning(f"together: {problem}")
        for i in done:
            assert i.plan is not None
            if json_out:
                render.json_line(
                    render.budget_dict(i.path, i.plan, tokens, mem, model, exact, positions)
                )
            else:
                render.budget_view(i.path, i.plan, tokens, mem, model, exact, positions)
        if not json_out:
            render.out.print(
                f"[bold]together:[/] {len(plans)} inputs in one prompt, {tokens} prompt tokens"
            )
    if errors:
        raise typer.Exit(_failure_status(errors))


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
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


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
    text = str(exc).strip()
    reason = f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__
    render.error(
        f"unexpected error ({reason}): a bug, please report it (VLCLI_DEBUG=1 shows the traceback)"
    )
    sys.exit(ExitStatus.ERROR)


@app.command(cls=_Command)
@reports_errors
def ask(
    media_and_question: MediaAndQuestion,
    fps: Fps = None,
    nframes: NFrames = None,
    min_frames: MinFrames = None,
    max_frames: MaxFrames = None,
    min_pixels: MinPixels = None,
    max_pixels: MaxPixels = None,
    total_pixels: TotalPixels = None,
    start: Start = None,
    end: End = None,
    model: AskModel = None,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    engine: EngineOption = "transformers",
    vllm_python: VllmPython = None,
    vllm_args: VllmArgs = None,
    concurrency: Concurrency = 1,
    frame_format: FrameFormat = "png",
    device: Device = "auto",
    dtype: Dtype = "auto",
    attn: Attn = "sdpa",
    max_new_tokens: MaxNew = 512,
    temperature: Temperature = 0.0,
    system: SystemOption = None,
    task: TaskOption = "qa",
    together: Together = False,
    force: Force = False,
    json_out: Json = False,
    null: Null = False,
    srt: Srt = None,
    vtt: Vtt = None,
    evidence: Evidence = None,
    output: Output = None,
    resume: Resume = False,
    retry_failed: RetryFailed = False,
    window: Window = None,
    overlap: Overlap = None,
    quiet: Quiet = False,
) -> None:
    """Ask the model about each input; print the answer with its times in seconds of the source."""
    from vlcli.outputs.files import check_targets, output_stems, subtitle_targets
    from vlcli.planning.windows import check_window
    from vlcli.run.ask import RunOptions, check_run, run_ask
    from vlcli.run.prompt import AskSettings

    # Every option is checked, then the outputs, then the model, before any input is probed.
    media, question, task = _media_and_question(media_and_question, task)
    options = sampling(
        fps, nframes, min_frames, max_frames, min_pixels, max_pixels, total_pixels, start, end
    )
    windowing = check_window(window, overlap, together)
    settings = AskSettings(
        question, task, system, max_new_tokens, temperature, force, evidence, windowing
    )
    run = RunOptions(together=together, resume=resume or retry_failed, retry_failed=retry_failed)
    check_run(run, output)
    paths = media_paths(media, null)
    stems = output_stems(media, paths)
    targets = subtitle_targets(srt, vtt, several=not together and len(paths) > 1)
    check_targets(paths, stems[:1] if together else stems, targets, output, evidence, run.resume)

    # The engine and the model next (a missing model or server fails in a second, before torch
    # is imported and before any input is probed); the plans use the model's own files.
    from vlcli.backends import Backend

    if engine not in ("transformers", "vllm"):
        raise UsageError("--engine must be transformers or vllm")
    if server is not None and engine == "vllm":
        raise UsageError("--server and --engine vllm exclude each other: give one")
    if concurrency > 1 and server is None and engine != "vllm":
        raise UsageError(
            "--concurrency needs --server or --engine vllm (one model in-process "
            "answers one prompt at a time)"
        )
    if server is None and engine == "transformers":  # named wrong: said before torch loads
        from vlcli.planning.memory import canonical_attn, canonical_dtype

        if dtype != "auto":
            try:
                canonical_dtype(dtype)
            except UsageError:
                raise UsageError(
                    f"--dtype {dtype!r}: use auto, bfloat16, float16 or float32"
                ) from None
        canonical_attn(attn)
    view = render.AskOutput(json_out, quiet)
    backend: Backend
    if server is not None:
        from vlcli.backends.vllm.backend import ServerBackend

        backend = ServerBackend(
            server,
            model=model,
            api_key=api_key,
            frame_format=frame_format,
            warn=render.warning,
            concurrency=concurrency,
        )
        check_options(options, backend.spec.family)
    else:
        from vlcli.models.locate import locate_spec

        located = locate_spec(model or DEFAULT_MODEL, render.warning)
        check_options(options, located[1].family)
        if engine == "vllm":
            from vlcli.backends.vllm.backend import ServerBackend

            backend = ServerBackend.start_local(  # started once an input is to be answered
                located[0],
                located[1],
                python=vllm_python,
                extra_args=tuple(vllm_args or ()),
                frame_format=frame_format,
                warn=render.warning,
                progress=view.loading,
                concurrency=concurrency,
            )
        else:
            from vlcli.backends.transformers.backend import (
                TransformersBackend,  # torch: device, dtype, attn
            )

            backend = TransformersBackend(
                model or DEFAULT_MODEL,
                device=device,
                dtype=dtype,
                attn=attn,
                warn=render.warning,
                located=located,
                force=force,
                load=False,  # loaded once the run knows there is work, while the first decodes
            )
    try:
        worst = run_ask(
            backend, paths, stems, settings, options, run, view, output=output, subtitles=targets
        )
    finally:
        backend.close()  # a server vlcli started stops here, also on Ctrl-C
    if worst is not None:
        raise typer.Exit(int(worst))


_PATH_LIKE = re.compile(r"^\S*(?:/\S*|\.[A-Za-z0-9]{2,5})$")


def _media_and_question(args: list[str], task: str) -> tuple[list[str], str, str]:
    """Split ``MEDIA... QUESTION``; return the media, the question and the task to run.

    With media only (the last argument names an existing file or folder, or ``-``), there is
    no question: the default task becomes ``caption`` (what happens, with start and end times),
    said in one line on stderr. A last argument that looks like a file name (one word ending in
    an extension, or with a ``/``) but names nothing is refused: it is a mistyped input far more
    often than a question.
    """
    from vlcli.planning.tasks import TASKS, build_prompt

    if task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}")
    last = args[-1]
    if last == "-" or os.path.lexists(last):
        if task == "ground":
            raise UsageError(
                f"the last argument, {last!r}, is an input: --task ground needs the question "
                "(what to find) after the media"
            )
        if task == "qa":
            render.info(
                "no question given: describing what happens, with start and end times "
                "(--task caption); give a question after the media to ask it"
            )
            task = "caption"
        media, question = list(args), ""
    else:
        *media, question = args
        if not media:
            raise UsageError("give at least one media input before the question")
        if _PATH_LIKE.match(question):
            raise UsageError(
                f"the last argument, {question!r}, looks like a file name but there is no such "
                "file: check it, or quote the question and put it last"
            )
    try:
        build_prompt(task, question)
    except ValueError as exc:
        raise UsageError(f"{exc} (the last argument)") from None
    return media, question, task
