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
from vlcli.cli.cut import cut
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


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    from vlcli.times.parse import parse_time_value

    try:
        return parse_time_value(value)
    except ValueError:
        raise UsageError(
            f"{value!r} is not a time (use seconds like 90 or 12.5, or mm:ss, hh:mm:ss)"
        ) from None


Media = Annotated[
    list[str],
    typer.Argument(
        metavar="MEDIA...",
        help="Files, folders, glob patterns, or - to read paths from standard input.",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="One JSON object per input, one per line.")]
Fps = Annotated[
    float | None,
    typer.Option(
        "--fps",
        metavar="FPS",
        help="Frames to sample per second of video (default: 2.0).",
        rich_help_panel="Sampling",
    ),
]
NFrames = Annotated[
    int | None,
    typer.Option(
        "--nframes",
        metavar="N",
        help="Sample exactly this many frames (rounded to a multiple of 2); excludes --fps.",
        rich_help_panel="Sampling",
    ),
]
MinFrames = Annotated[
    int | None,
    typer.Option(
        "--min-frames",
        metavar="N",
        help="Least frames to sample with --fps (default: 4).",
        rich_help_panel="Sampling",
    ),
]
MaxFrames = Annotated[
    int | None,
    typer.Option(
        "--max-frames",
        metavar="N",
        help="Most frames to sample with --fps (default: 768).",
        rich_help_panel="Sampling",
    ),
]
MinPixels = Annotated[
    int | None,
    typer.Option(
        "--min-pixels",
        metavar="PIXELS",
        help="Least pixels per frame (default: video 128*28*28, image 4*28*28).",
        rich_help_panel="Sampling",
    ),
]
MaxPixels = Annotated[
    int | None,
    typer.Option(
        "--max-pixels",
        metavar="PIXELS",
        help="Most pixels per frame (default: video 768*28*28, image 16384*28*28).",
        rich_help_panel="Sampling",
    ),
]
TotalPixels = Annotated[
    int | None,
    typer.Option(
        "--total-pixels",
        metavar="PIXELS",
        help="Pixel budget of the whole video; caps each frame at total/frames*2 (default: 128000*28*28*0.9).",
        rich_help_panel="Sampling",
    ),
]
Start = Annotated[
    str | None,
    typer.Option(
        "--start",
        metavar="TIME",
        help="Start of the clip to analyse (seconds, mm:ss or hh:mm:ss).",
        rich_help_panel="Sampling",
    ),
]
End = Annotated[
    str | None,
    typer.Option(
        "--end",
        metavar="TIME",
        help="End of the clip to analyse (seconds, mm:ss or hh:mm:ss).",
        rich_help_panel="Sampling",
    ),
]
Model = Annotated[
    str,
    typer.Option(
        "--model",
        metavar="MODEL",
        help="Hugging Face model id or local folder; selects the family's constants.",
    ),
]
MaxNew = Annotated[
    int,
    typer.Option("--max-new-tokens", metavar="N", min=1, help="Most tokens the answer may have."),
]
Together = Annotated[bool, typer.Option("--together", help="Put all inputs into one prompt.")]
Window = Annotated[
    float | None,
    typer.Option(
        "--window",
        metavar="SECONDS",
        help="Cut a long video into windows of at most this many seconds, each planned like --start/--end.",
        rich_help_panel="Sampling",
    ),
]
Overlap = Annotated[
    float | None,
    typer.Option(
        "--overlap",
        metavar="SECONDS",
        help="Seconds that neighbouring windows share (default: 4, at most a quarter of --window).",
        rich_help_panel="Sampling",
    ),
]
TaskOption = Annotated[
    str,
    typer.Option(
        "--task",
        metavar="TASK",
        help="qa (plain question), ground (when does it happen) or caption (dense captions with times).",
    ),
]
SystemOption = Annotated[
    str | None,
    typer.Option(
        "--system",
        metavar="TEXT",
        help="System prompt (default: the model's own).",
        rich_help_panel="Model",
    ),
]
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="A running vLLM server (OpenAI-compatible, started with --trust-request-mm-kwargs), "
        "e.g. http://127.0.0.1:8000: ask answers with it, budget plans for the model it serves.",
        rich_help_panel="Server",
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        metavar="KEY",
        envvar="VLCLI_API_KEY",
        help="The server's API key (better given as the VLCLI_API_KEY environment variable).",
        rich_help_panel="Server",
        show_default=False,
    ),
]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="ENGINE",
        help="transformers (in this process) or vllm (a local vLLM server vlcli starts and "
        "stops; see --vllm-python); budget follows its arithmetic for the positions.",
        rich_help_panel="Server",
    ),
]


def _options(
    fps, nframes, min_frames, max_frames, min_pixels, max_pixels, total_pixels, start, end
) -> SamplingOptions:  # type: ignore[no-untyped-def]
    return SamplingOptions(
        fps=fps,
        nframes=nframes,
        min_frames=min_frames,
        max_frames=max_frames,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        total_pixels=total_pixels,
        start=_seconds(start),
        end=_seconds(end),
    )


Null = Annotated[
    bool,
    typer.Option(
        "--null",
        "-0",
        help="Paths read from standard input (-) are separated by NUL, as find -print0 writes them.",
    ),
]


def _paths(media: list[str], null: bool = False) -> list[str]:
    """The media files the arguments name; none at all (every argument a folder or pattern
    without media, or an empty standard input) is an input failure (status 3), not a usage one."""
    from vlcli.media.probe import expand_inputs

    paths = expand_inputs(media, sys.stdin, null=null)
    if not paths:
        searched = ", ".join("standard input" if m == "-" else m for m in media)
        raise InputError(f"no media found under {searched}")
    return paths


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
    for item in plan_inputs(_paths(media, null), SamplingOptions(), None):
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
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype",
            metavar="DTYPE",
            help="Weights dtype for the memory estimate: bfloat16, float16 or float32.",
        ),
    ] = "bfloat16",
    attn: Annotated[
        str,
        typer.Option(
            "--attn",
            metavar="KERNEL",
            help="Attention kernel for the memory estimate: sdpa, flash_attention_2 or eager.",
        ),
    ] = "sdpa",
    question: Annotated[
        str, typer.Option("--question", metavar="TEXT", help="The question, to count its tokens.")
    ] = "",
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

    options = _options(
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
    for item in plan_inputs(_paths(media, null), options, spec):
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
    media_and_question: Annotated[
        list[str],
        typer.Argument(
            metavar="MEDIA... QUESTION",
            help="Files, folders, globs or -, then the question (the last argument).",
            show_default=False,
        ),
    ],
    fps: Fps = None,
    nframes: NFrames = None,
    min_frames: MinFrames = None,
    max_frames: MaxFrames = None,
    min_pixels: MinPixels = None,
    max_pixels: MaxPixels = None,
    total_pixels: TotalPixels = None,
    start: Start = None,
    end: End = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="MODEL",
            help=f"Hugging Face model id or local folder (default {DEFAULT_MODEL}); with --server, "
            "the served model's name (default: the one the server lists).",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    engine: EngineOption = "transformers",
    vllm_python: Annotated[
        str | None,
        typer.Option(
            "--vllm-python",
            metavar="PATH",
            help="The Python that runs vLLM for --engine vllm (default: $VLCLI_VLLM_PYTHON, "
            "else the environment `make vllm-env` builds).",
            rich_help_panel="Server",
            show_default=False,
        ),
    ] = None,
    vllm_args: Annotated[
        list[str] | None,
        typer.Option(
            "--vllm-arg",
            metavar="ARG",
            help="A flag passed to the vLLM server of --engine vllm, e.g. "
            "--vllm-arg=--tensor-parallel-size=2 (repeatable).",
            rich_help_panel="Server",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            metavar="N",
            min=1,
            help="Prompts in flight at once with --server or --engine vllm (the server batches "
            "them); answers still come out in input order.",
            rich_help_panel="Server",
        ),
    ] = 1,
    frame_format: Annotated[
        str,
        typer.Option(
            "--frame-format",
            metavar="FORMAT",
            help="How frames travel to the server: png (lossless) or jpeg (smaller, lossy).",
            rich_help_panel="Server",
        ),
    ] = "png",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            metavar="DEVICE",
            help="auto (CUDA when available, else CPU), cuda, cuda:N or cpu.",
            rich_help_panel="Model",
        ),
    ] = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype",
            metavar="DTYPE",
            help="auto (bf16 on a GPU that has it), bfloat16, float16 or float32.",
            rich_help_panel="Model",
        ),
    ] = "auto",
    attn: Annotated[
        str,
        typer.Option(
            "--attn",
            metavar="KERNEL",
            help="Attention kernel: sdpa, flash_attention_2 or eager.",
            rich_help_panel="Model",
        ),
    ] = "sdpa",
    max_new_tokens: MaxNew = 512,
    temperature: Annotated[
        float,
        typer.Option(
            "--temperature",
            metavar="T",
            min=0.0,
            help="0 is greedy decoding.",
            rich_help_panel="Model",
        ),
    ] = 0.0,
    system: SystemOption = None,
    task: TaskOption = "qa",
    together: Together = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Run even when the memory estimate says the weights or the prompt do not fit.",
        ),
    ] = False,
    json_out: Json = False,
    null: Null = False,
    srt: Annotated[
        str | None,
        typer.Option(
            "--srt",
            metavar="FILE",
            help="Write the answer's time spans as SubRip subtitles to this file (a folder for several inputs).",
        ),
    ] = None,
    vtt: Annotated[
        str | None,
        typer.Option(
            "--vtt",
            metavar="FILE",
            help="Write the time spans as WebVTT subtitles to this file (a folder for several inputs).",
        ),
    ] = None,
    evidence: Annotated[
        str | None,
        typer.Option(
            "--evidence",
            metavar="DIR",
            help="Save the frame at each stated time as a PNG in this folder.",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Append each input's JSON record to this file (JSON Lines) as soon as it is done.",
            rich_help_panel="Long runs",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Skip the inputs that already have a record in --output; append the rest.",
            rich_help_panel="Long runs",
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Resume, and try again the inputs whose record in --output is a failure.",
            rich_help_panel="Long runs",
        ),
    ] = False,
    window: Window = None,
    overlap: Overlap = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress on standard error (warnings and errors are still shown).",
            rich_help_panel="Long runs",
        ),
    ] = False,
) -> None:
    """Ask the model about each input; print the answer with its times in seconds of the source."""
    from vlcli.outputs.files import check_targets, output_stems, subtitle_targets
    from vlcli.planning.windows import check_window
    from vlcli.run.ask import RunOptions, check_run, run_ask
    from vlcli.run.prompt import AskSettings

    # Every option is checked, then the outputs, then the model, before any input is probed.
    media, question, task = _media_and_question(media_and_question, task)
    options = _options(
        fps, nframes, min_frames, max_frames, min_pixels, max_pixels, total_pixels, start, end
    )
    windowing = check_window(window, overlap, together)
    settings = AskSettings(
        question, task, system, max_new_tokens, temperature, force, evidence, windowing
    )
    run = RunOptions(together=together, resume=resume or retry_failed, retry_failed=retry_failed)
    check_run(run, output)
    paths = _paths(media, null)
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


app.command(cls=_Command)(reports_errors(cut))  # vlcli cut: vlcli/cli/cut.py
