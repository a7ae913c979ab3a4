"""``vlcli ask``: the command's options, turned into the run's typed objects, then the run.

Every option is checked, then the outputs, then the engine and the model, before any input is
probed; the run itself is :func:`vlcli.run.engine.ask_with`.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

import typer

from vlcli.backends.vllm import DEFAULT_PATIENCE_S
from vlcli.cli import views as render
from vlcli.cli.options import (
    ApiKeyOption,
    AskModel,
    AskQuestions,
    Attn,
    Clips,
    Concurrency,
    Crops,
    Device,
    Dtype,
    End,
    EngineOption,
    Evidence,
    Force,
    Fps,
    FrameFormat,
    Json,
    MaxFrames,
    MaxNew,
    MaxPixels,
    MediaAndQuestion,
    MinFrames,
    MinPixels,
    NFrames,
    Null,
    Output,
    Overlap,
    QuestionsFile,
    Quiet,
    Resume,
    RetryFailed,
    ServerOption,
    ServerPatience,
    Srt,
    Start,
    SystemOption,
    TaskOption,
    Temperature,
    Think,
    Together,
    TotalPixels,
    VllmArgs,
    VllmPython,
    Vtt,
    Window,
    media_paths,
    sampling,
    utf8_text,
)
from vlcli.errors import UsageError, first_line

if TYPE_CHECKING:
    from vlcli.run.ask import Outputs, RunOptions
    from vlcli.run.questions import Question


def ask(
    media_and_question: MediaAndQuestion,
    questions: AskQuestions = None,
    questions_file: QuestionsFile = None,
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
    server_patience: ServerPatience = DEFAULT_PATIENCE_S,
    frame_format: FrameFormat = "png",
    device: Device = "auto",
    dtype: Dtype = "auto",
    attn: Attn = "sdpa",
    max_new_tokens: MaxNew = 512,
    temperature: Temperature = 0.0,
    system: SystemOption = None,
    think: Think = None,
    task: TaskOption = "qa",
    together: Together = False,
    force: Force = False,
    json_out: Json = False,
    null: Null = False,
    srt: Srt = None,
    vtt: Vtt = None,
    evidence: Evidence = None,
    clips: Clips = None,
    crops: Crops = None,
    output: Output = None,
    resume: Resume = False,
    retry_failed: RetryFailed = False,
    window: Window = None,
    overlap: Overlap = None,
    quiet: Quiet = False,
) -> None:
    """Ask the model about each input; print the answer with its times in seconds of the source.
    Several questions (-q, --questions): one answer each, the input prepared once for all."""
    # On first use: the command line starts (and answers -h) without the run's modules.
    from vlcli.outputs.files import output_stems
    from vlcli.planning.windows import check_window
    from vlcli.run.ask import RunOptions, check_run
    from vlcli.run.engine import EngineOptions, ask_with
    from vlcli.run.prompt import AskSettings, Generation
    from vlcli.run.questions import asked

    media, question, task, several = _what_is_asked(
        media_and_question, questions, questions_file, task, system
    )
    options = sampling(fps, nframes, min_frames, max_frames, min_pixels, max_pixels,
                       total_pixels, start, end)  # fmt: skip
    windowing = check_window(window, overlap, together)
    generation = Generation(max_new_tokens, temperature)
    settings = AskSettings(question, task, system, options, generation, windowing, think)
    each = [settings] if several is None else asked(settings, several)
    run = RunOptions(together=together, resume=resume or retry_failed, retry_failed=retry_failed)
    check_run(run, output)
    paths = media_paths(media, null)
    stems = output_stems(media, paths)
    outputs = _outputs(paths, stems, run, len(each), srt, vtt, output, evidence, clips, crops)
    engine_options = EngineOptions(
        engine, model, server, api_key, device, dtype, attn, vllm_python,
        tuple(vllm_args or ()), concurrency, frame_format, force, server_patience,
    )  # fmt: skip
    view = render.AskOutput(json_out, quiet)
    worst = ask_with(
        engine_options, paths, stems, each, run, view, outputs, render.warning, view.loading
    )
    if worst is not None:
        raise typer.Exit(int(worst))


def _outputs(
    paths: list[str],
    stems: list[str],
    run: RunOptions,
    questions: int,
    srt: str | None,
    vtt: str | None,
    output: str | None,
    evidence: str | None,
    clips: str | None,
    crops: str | None,
) -> Outputs:
    """The run's output files, checked before the engine starts (a missing FFmpeg too)."""
    from vlcli.outputs.clip_file import find_ffmpeg  # on first use, as in ask()
    from vlcli.outputs.files import check_targets, subtitle_targets
    from vlcli.run.ask import Outputs

    together = run.together
    targets = subtitle_targets(srt, vtt, several=not together and len(paths) > 1)
    named = stems[:1] if together else stems
    check_targets(paths, named, targets, output, evidence, run.resume, clips, crops)
    if questions > 1 and (targets or evidence or clips or crops):
        raise UsageError(
            "--srt, --vtt, --evidence, --clips and --crops name their files after the input: "
            "ask one question per run to write them"
        )
    if clips is not None:
        find_ffmpeg()  # missing: one line, before the engine starts (the run looks it up again)
    return Outputs(output, tuple(targets), evidence, clips, crops)


def _what_is_asked(
    args: list[str], given: list[str] | None, file: str | None, task: str, system: str | None
) -> tuple[list[str], str, str, list[Question] | None]:
    """The media, the positional question and its task, and the questions of -q/--questions
    (None without them: the last argument is the question, as always; with them every argument
    is an input); a --system that is not UTF-8 refused."""
    utf8_text("--system", system)
    from vlcli.planning.tasks import check_task  # on first use, as in ask()

    several = _several_questions(given, file, args)
    if several is None:
        return (*_media_and_question(args, task), None)
    check_task(task)
    return list(args), "", task, several


def _several_questions(
    given: list[str] | None, file: str | None, media: list[str]
) -> list[Question] | None:
    """The questions of -q/--question and --questions FILE, in that order; None when neither
    is given (the question is then the last argument, as always)."""
    from vlcli.run.questions import Question, read_questions  # on first use, as in ask()

    if not given and file is None:
        return None
    questions = [Question(text) for text in given or ()]
    if file == "-":
        if "-" in media:
            raise UsageError(
                "--questions - and the input - both read standard input: give one of them a file"
            )
        questions += read_questions(sys.stdin, "-")
    elif file is not None:
        try:
            with open(file, encoding="utf-8") as lines:
                questions += read_questions(lines, file)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--questions {file}: cannot be read ({first_line(exc)})") from None
    for question in questions:
        utf8_text("a question", question.text)
    return questions


_PATH_LIKE = re.compile(r"^\S*(?:/\S*|\.[A-Za-z0-9]{2,5})$")


def _media_and_question(args: list[str], task: str) -> tuple[list[str], str, str]:
    """Split ``MEDIA... QUESTION``; return the media, the question and the task to run.

    With media only (the last argument names an existing file or folder, or ``-``), there is
    no question: the default task becomes ``caption`` (what happens, with start and end times),
    said in one line on stderr. A last argument that looks like a file name (one word ending in
    an extension, or with a ``/``) but names nothing is refused: it is a mistyped input far more
    often than a question.
    """
    from vlcli.planning.tasks import build_prompt, check_task  # on first use, as in ask()

    check_task(task)
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
    utf8_text("the question", question)
    try:
        build_prompt(task, question)
    except ValueError as exc:
        raise UsageError(f"{exc} (the last argument)") from None
    return media, question, task
