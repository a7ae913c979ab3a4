"""The ``vlcli`` command: thin commands that parse, call one core function and render.

Results go to standard output, everything else to standard error. Every user-facing failure is
a :class:`~vlcli.errors.VlcliError`, reported in one place (:func:`main`) as one line.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import render
from .errors import ExitStatus, InputError, UsageError, VlcliError
from .families import DEFAULT_MODEL, resolve_model
from .plan import SamplingOptions, VideoPlan, estimate_prompt_tokens

app = typer.Typer(
    name="vlcli",
    help="Probe, budget and ask Qwen2.5-VL-family models about videos and images, on your own GPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """The one place that turns a VlcliError into one line on stderr and its exit status."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except VlcliError as exc:
            render.error(exc)
            raise typer.Exit(int(exc.status)) from None
        except BrokenPipeError:  # `vlcli budget ... | head`: the reader left
            render.reader_gone()

    return wrapper  # type: ignore[return-value]


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    from .times import parse_time_value

    try:
        return parse_time_value(value)
    except ValueError:
        raise UsageError(
            f"{value!r} is not a time (use seconds like 90 or 12.5, or mm:ss, hh:mm:ss)"
        ) from None


Media = Annotated[
    list[str],
    typer.Argument(
        help="Files, folders, glob patterns, or - to read paths from standard input.",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="One JSON object per input, one per line.")]
Fps = Annotated[
    float | None,
    typer.Option(
        "--fps",
        help="Frames to sample per second of video (default: 2.0).",
        rich_help_panel="Sampling",
    ),
]
NFrames = Annotated[
    int | None,
    typer.Option(
        "--nframes",
        help="Sample exactly this many frames (rounded to a multiple of 2); excludes --fps.",
        rich_help_panel="Sampling",
    ),
]
MinFrames = Annotated[
    int | None,
    typer.Option(
        "--min-frames",
        help="Least frames to sample with --fps (default: 4).",
        rich_help_panel="Sampling",
    ),
]
MaxFrames = Annotated[
    int | None,
    typer.Option(
        "--max-frames",
        help="Most frames to sample with --fps (default: 768).",
        rich_help_panel="Sampling",
    ),
]
MinPixels = Annotated[
    int | None,
    typer.Option(
        "--min-pixels",
        help="Least pixels per frame (default: video 128*28*28, image 4*28*28).",
        rich_help_panel="Sampling",
    ),
]
MaxPixels = Annotated[
    int | None,
    typer.Option(
        "--max-pixels",
        help="Most pixels per frame (default: video 768*28*28, image 16384*28*28).",
        rich_help_panel="Sampling",
    ),
]
TotalPixels = Annotated[
    int | None,
    typer.Option(
        "--total-pixels",
        help="Pixel budget of the whole video; caps each frame at total/frames*2 (default: 128000*28*28*0.9).",
        rich_help_panel="Sampling",
    ),
]
Start = Annotated[
    str | None,
    typer.Option(
        "--start",
        help="Start of the clip to analyse (seconds, mm:ss or hh:mm:ss).",
        rich_help_panel="Sampling",
    ),
]
End = Annotated[
    str | None,
    typer.Option(
        "--end",
        help="End of the clip to analyse (seconds, mm:ss or hh:mm:ss).",
        rich_help_panel="Sampling",
    ),
]
Model = Annotated[
    str,
    typer.Option(
        "--model", help="Hugging Face model id or local folder; selects the family's constants."
    ),
]
MaxNew = Annotated[
    int, typer.Option("--max-new-tokens", min=1, help="Most tokens the answer may have.")
]
Together = Annotated[bool, typer.Option("--together", help="Put all inputs into one prompt.")]


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


def _paths(media: list[str]) -> list[str]:
    from .media import expand_inputs

    paths = expand_inputs(media, sys.stdin)
    if not paths:
        raise UsageError("no media found in the inputs given")
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


@app.command()
@reports_errors
def probe(media: Media, json_out: Json = False) -> None:
    """Tell what each media file is, from its container, without decoding it."""
    from .core import plan_inputs

    errors: list[VlcliError] = []
    rows = []
    for item in plan_inputs(_paths(media), SamplingOptions(), None):
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


@app.command()
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
            "--dtype", help="Weights dtype for the memory estimate: bfloat16, float16 or float32."
        ),
    ] = "bfloat16",
    attn: Annotated[
        str,
        typer.Option(
            "--attn",
            help="Attention kernel for the memory estimate: sdpa, flash_attention_2 or eager.",
        ),
    ] = "sdpa",
    question: Annotated[
        str, typer.Option("--question", help="The question, to count its tokens.")
    ] = "",
    together: Together = False,
    json_out: Json = False,
) -> None:
    """Dry run: the frames, sizes, tokens, positions and GPU memory that `ask` would use."""
    from .context import context_problem
    from .core import plan_inputs
    from .memory import canonical_attn, canonical_dtype, estimate_memory

    options = _options(
        fps, nframes, min_frames, max_frames, min_pixels, max_pixels, total_pixels, start, end
    )
    dtype = canonical_dtype(dtype)
    attn = canonical_attn(attn)
    spec = resolve_model(model)
    errors: list[VlcliError] = []
    done = []
    for item in plan_inputs(_paths(media), options, spec):
        if item.error is not None or item.plan is None:
            errors.append(item.error or InputError("unreadable", item.path))
            _report(item.path, errors[-1], json_out)
            continue
        if isinstance(item.plan, VideoPlan):
            for note in item.plan.notes:
                render.warning(f"{item.path}: {note}")
        if together:
            done.append(item)
            continue
        tokens = estimate_prompt_tokens([item.plan], question)
        mem = estimate_memory(spec, [item.plan], tokens, max_new_tokens, dtype, attn)
        problem = context_problem(spec, [item.plan], options, tokens, max_new_tokens)
        if problem is not None:
            render.warning(f"{item.path}: {problem}")
        if json_out:
            render.json_line(render.budget_dict(item.path, item.plan, tokens, mem, model))
        else:
            render.budget_view(item.path, item.plan, tokens, mem, model)
    if together and done:
        plans = [i.plan for i in done if i.plan is not None]
        tokens = estimate_prompt_tokens(plans, question)
        mem = estimate_memory(spec, plans, tokens, max_new_tokens, dtype, attn)
        problem = context_problem(spec, plans, options, tokens, max_new_tokens)
        if problem is not None:
            render.warning(f"together: {problem}")
        for i in done:
            assert i.plan is not None
            if json_out:
                render.json_line(render.budget_dict(i.path, i.plan, tokens, mem, model))
            else:
                render.budget_view(i.path, i.plan, tokens, mem, model)
        if not json_out:
            render.out.print(
                f"[bold]together:[/] {len(plans)} inputs in one prompt, {tokens} prompt tokens"
            )
    if errors:
        raise typer.Exit(_failure_status(errors))


def main() -> None:
    """Console entry point: click's usage errors also become one line and status 2.

    Anything else that escapes is a bug: one line and status 1, or the traceback with
    ``VLCLI_DEBUG=1``.
    """
    import click

    try:
        status = app(standalone_mode=False)
    except click.ClickException as exc:
        render.error(exc.format_message())
        sys.exit(ExitStatus.USAGE)
    except (click.Abort, KeyboardInterrupt):
        render.error("interrupted")
        sys.exit(130)
    except render.ReaderGone:  # `vlcli budget ... | head`: the reader left, nothing to report
        sys.exit(0)
    except Exception as exc:  # a bug: one line, status 1; the traceback when asked for
        if os.environ.get("VLCLI_DEBUG"):
            raise
        text = str(exc).strip()
        reason = (
            f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__
        )
        render.error(
            f"unexpected error ({reason}): a bug, please report it "
            "(VLCLI_DEBUG=1 shows the traceback)"
        )
        sys.exit(ExitStatus.ERROR)
    sys.exit(status or 0)


@app.command()
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
    model: Model = DEFAULT_MODEL,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="auto (CUDA when available, else CPU), cuda, cuda:N or cpu.",
            rich_help_panel="Model",
        ),
    ] = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype",
            help="auto (bf16 on a GPU that has it), bfloat16, float16 or float32.",
            rich_help_panel="Model",
        ),
    ] = "auto",
    attn: Annotated[
        str,
        typer.Option(
            "--attn",
            help="Attention kernel: sdpa, flash_attention_2 or eager.",
            rich_help_panel="Model",
        ),
    ] = "sdpa",
    max_new_tokens: MaxNew = 512,
    temperature: Annotated[
        float,
        typer.Option(
            "--temperature", min=0.0, help="0 is greedy decoding.", rich_help_panel="Model"
        ),
    ] = 0.0,
    system: Annotated[
        str | None,
        typer.Option(
            "--system", help="System prompt (default: the model's own).", rich_help_panel="Model"
        ),
    ] = None,
    task: Annotated[
        str,
        typer.Option(
            "--task",
            help="qa (plain question), ground (when does it happen) or caption (dense captions with times).",
        ),
    ] = "qa",
    together: Together = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Run even when the memory estimate says the weights or the prompt do not fit.",
        ),
    ] = False,
    json_out: Json = False,
    srt: Annotated[
        str | None,
        typer.Option(
            "--srt",
            help="Write the answer's time spans as SubRip subtitles to this file (a folder for several inputs).",
        ),
    ] = None,
    vtt: Annotated[
        str | None,
        typer.Option(
            "--vtt",
            help="Write the time spans as WebVTT subtitles to this file (a folder for several inputs).",
        ),
    ] = None,
    evidence: Annotated[
        str | None,
        typer.Option(
            "--evidence", help="Save the frame at each stated time as a PNG in this folder."
        ),
    ] = None,
) -> None:
    """Ask the model about each input; print the answer with its times in seconds of the source."""
    from .ask import AskSettings, answer_all
    from .core import plan_inputs

    media, question = _media_and_question(media_and_question, task)
    options = _options(
        fps, nframes, min_frames, max_frames, min_pixels, max_pixels, total_pixels, start, end
    )
    settings = AskSettings(question, task, system, max_new_tokens, temperature, force, evidence)
    paths = _paths(media)
    subtitles = [(fmt, target) for fmt, target in (("srt", srt), ("vtt", vtt)) if target]
    groups_expected = 1 if together else len(paths)
    for fmt, target in subtitles:
        if groups_expected > 1 and Path(target).is_file():
            raise UsageError(f"--{fmt} {target}: several inputs need a folder, and this is a file")

    # The model first: a missing model fails in a second, and the plans use its own files.
    from .runner import ModelRunner, locate_spec

    located = locate_spec(model, render.warning)
    spec = located[1]

    errors: list[VlcliError] = []
    planned = []
    for item in plan_inputs(paths, options, spec):
        if item.error is not None or item.plan is None:
            errors.append(item.error or InputError("unreadable", item.path))
            _report(item.path, errors[-1], json_out)
            continue
        if isinstance(item.plan, VideoPlan):
            for note in item.plan.notes:
                render.warning(f"{item.path}: {note}")
        planned.append(item)
    if not planned:
        raise typer.Exit(_failure_status(errors))

    runner = ModelRunner(
        model,
        device=device,
        dtype=dtype,
        attn=attn,
        warn=render.warning,
        located=located,
        force=force,
    )
    groups = (
        [[(i.path, i.plan) for i in planned]] if together else [[(i.path, i.plan)] for i in planned]
    )
    folder_form = {fmt: groups_expected > 1 or Path(t).is_dir() for fmt, t in subtitles}
    view = render.AskOutput(json_out, subtitles, folder_form)
    worst = answer_all(runner, groups, settings, options, view)
    if worst is not None or errors:
        raise typer.Exit(int(max(worst or 0, _failure_status(errors) if errors else 0)))


def _media_and_question(args: list[str], task: str) -> tuple[list[str], str]:
    """Split ``MEDIA... QUESTION``; check the question makes a prompt for ``task``.

    ``--task caption`` needs no question: when the last argument names an existing file or
    folder, every argument is media.
    """
    from .prompts import TASKS, build_prompt

    if task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}")
    if task == "caption" and args and (len(args) == 1 or Path(args[-1]).exists()):
        media, question = list(args), ""
    elif len(args) < 2:
        raise UsageError("give at least one media input and then the question")
    else:
        *media, question = args
        if Path(question).is_file():
            raise UsageError(
                f"the last argument, {question!r}, is a file: give the question after the media"
            )
    try:
        build_prompt(task, question)
    except ValueError as exc:
        raise UsageError(f"{exc} (the last argument)") from None
    return media, question
