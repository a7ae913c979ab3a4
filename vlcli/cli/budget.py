"""``vlcli budget``: the dry run of ``ask``; the estimates are :class:`vlcli.run.budget.Budget`'s,
shown here as they come, in input order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from vlcli.cli import views as render
from vlcli.cli.options import (
    ApiKeyOption,
    End,
    EngineOption,
    EstimateAttn,
    EstimateDtype,
    Fps,
    Json,
    MaxFrames,
    MaxNew,
    MaxPixels,
    MediaArguments,
    MinFrames,
    MinPixels,
    Model,
    NFrames,
    Null,
    Overlap,
    Question,
    QuestionsCount,
    ServerOption,
    Start,
    SystemOption,
    TaskOption,
    Think,
    Together,
    TotalPixels,
    Window,
    media_paths,
    sampling,
    utf8_text,
)
from vlcli.cli.probe import failure_status, report
from vlcli.errors import InputError, VlcliError
from vlcli.models.families import DEFAULT_MODEL

if TYPE_CHECKING:
    from vlcli.run.budget import Estimate


def budget(
    media: MediaArguments,
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
    questions: QuestionsCount = 1,
    task: TaskOption = "qa",
    system: SystemOption = None,
    think: Think = None,
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
    # On first use: the command line starts (and answers -h) without the run's modules.
    from vlcli.planning.windows import check_window
    from vlcli.run.budget import Budget, BudgetSettings, InWindows, Planned, TogetherTotal, Warned

    utf8_text("--question", question)
    utf8_text("--system", system)
    options = sampling(
        fps, nframes, min_frames, max_frames, min_pixels, max_pixels, total_pixels, start, end
    )
    windowing = check_window(window, overlap, together)
    settings = BudgetSettings(
        model, max_new_tokens, dtype, attn, question, task, system, together, windowing,
        server, api_key, engine, think, questions,
    )  # fmt: skip
    run = Budget(settings, options)
    errors: list[VlcliError] = []
    for event in run.estimates(media_paths(media, null)):
        if isinstance(event, Warned):
            render.warning(event.message)
        elif isinstance(event, InWindows):
            render.budget_windows(event.path, event.windows, run.model, json_out)
        elif isinstance(event, Planned):  # an input that could not be probed or planned
            errors.append(event.error or InputError("unreadable", event.path))
            report(event.path, errors[-1], json_out)
        elif isinstance(event, TogetherTotal):
            if not json_out:
                render.out.print(
                    f"[bold]together:[/] {event.inputs} inputs in one prompt, "
                    f"{event.tokens} prompt tokens"
                )
        else:
            _show(event, run.model, run.positions, json_out)
    if errors:
        raise typer.Exit(failure_status(errors))


def _show(e: Estimate, model: str, positions: str, json_out: bool) -> None:
    if json_out:
        render.json_line(render.budget_dict(e, model, positions))
    else:
        render.budget_view(e, model, positions)
