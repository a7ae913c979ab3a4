"""Every option of the ``vlcli`` commands, declared once (``typing.Annotated`` aliases), and
what turns their raw values into the typed objects the commands pass on.

A command's signature is its list of options: ``fps: Fps = None``. An option two commands share
is the same alias, so its flag, metavar, help and panel cannot drift apart. Where ``budget`` and
``ask`` mean different things by one flag (``--dtype`` of an estimate, ``--dtype`` to load the
weights in), the two are two aliases side by side, each named for its meaning.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from vlcli.errors import InputError, UsageError
from vlcli.models.families import DEFAULT_MODEL
from vlcli.planning.plan import SamplingOptions

MediaArguments = Annotated[
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
        help="Hugging Face model id or local folder (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3.5/3.6, "
        "dense or MoE; config.json's model_type decides); selects the family's constants.",
    ),
]
MaxNew = Annotated[
    int,
    typer.Option("--max-new-tokens", metavar="N", min=1, help="Most tokens the answer may have."),
]
Together = Annotated[bool, typer.Option("--together", help="Put all inputs into one prompt.")]
Think = Annotated[
    bool | None,
    typer.Option(
        "--think/--no-think",
        help="Let a thinking model reason before it answers, or not: its chat template's "
        "enable_thinking, for models whose template has it (default: the model's own).",
        rich_help_panel="Model",
        show_default=False,
    ),
]
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
        help="qa (plain question), ground (when does it happen), caption (dense captions with "
        "times), detect (boxes of what the question names) or point (points of it).",
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


Null = Annotated[
    bool,
    typer.Option(
        "--null",
        "-0",
        help="Paths read from standard input (-) are separated by NUL, as find -print0 writes them.",
    ),
]


EstimateDtype = Annotated[
    str,
    typer.Option(
        "--dtype",
        metavar="DTYPE",
        help="Weights dtype for the memory estimate: bfloat16, float16 or float32.",
    ),
]

EstimateAttn = Annotated[
    str,
    typer.Option(
        "--attn",
        metavar="KERNEL",
        help="Attention kernel for the memory estimate: sdpa, flash_attention_2 or eager.",
    ),
]

Question = Annotated[
    str, typer.Option("--question", metavar="TEXT", help="The question, to count its tokens.")
]

MediaAndQuestion = Annotated[
    list[str],
    typer.Argument(
        metavar="MEDIA... QUESTION",
        help="Files, folders, globs or -, then the question (the last argument).",
        show_default=False,
    ),
]

QuestionsCount = Annotated[
    int,
    typer.Option(
        "--questions",
        metavar="N",
        min=1,
        help="Questions asked of each input (ask -q, --questions): their kept prefill is counted.",
    ),
]
AskQuestions = Annotated[
    list[str] | None,
    typer.Option(
        "--question",
        "-q",
        metavar="TEXT",
        help="A question to ask of every input (repeat it for several: one record each; "
        "then every argument is an input).",
        show_default=False,
    ),
]
QuestionsFile = Annotated[
    str | None,
    typer.Option(
        "--questions",
        metavar="FILE",
        help='Questions to ask of every input, one per line, or JSON Lines with "question" and '
        'an optional "task"; - for standard input.',
        show_default=False,
    ),
]

AskModel = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="MODEL",
        help=f"Hugging Face model id or local folder (default {DEFAULT_MODEL}; Qwen2-VL, "
        "Qwen2.5-VL, Qwen3-VL, Qwen3.5/3.6, dense or MoE); with --server, "
        "the served model's name (default: the one the server lists).",
        show_default=False,
    ),
]

VllmPython = Annotated[
    str | None,
    typer.Option(
        "--vllm-python",
        metavar="PATH",
        help="The Python that runs vLLM for --engine vllm (default: $VLCLI_VLLM_PYTHON, "
        "else the environment `make vllm-env` builds).",
        rich_help_panel="Server",
        show_default=False,
    ),
]

VllmArgs = Annotated[
    list[str] | None,
    typer.Option(
        "--vllm-arg",
        metavar="ARG",
        help="A flag passed to the vLLM server of --engine vllm, e.g. "
        "--vllm-arg=--tensor-parallel-size=2 (repeatable).",
        rich_help_panel="Server",
        show_default=False,
    ),
]

Concurrency = Annotated[
    int,
    typer.Option(
        "--concurrency",
        metavar="N",
        min=1,
        help="Prompts in flight at once with --server or --engine vllm (the server batches "
        "them); answers still come out in input order.",
        rich_help_panel="Server",
    ),
]

ServerPatience = Annotated[
    float,
    typer.Option(
        "--server-patience",
        metavar="SECONDS",
        min=0,
        help="How long a request waits for a server that is away (restarting, overloaded, "
        "unreachable) before the run stops, resumable with --resume; the default outlasts a "
        "vLLM restart (66-196 s measured).",
        rich_help_panel="Server",
    ),
]

FrameFormat = Annotated[
    str,
    typer.Option(
        "--frame-format",
        metavar="FORMAT",
        help="How frames travel to the server: png (lossless) or jpeg (smaller, lossy).",
        rich_help_panel="Server",
    ),
]

Device = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="DEVICE",
        help="auto (CUDA when available, else CPU), cuda, cuda:N or cpu.",
        rich_help_panel="Model",
    ),
]

Dtype = Annotated[
    str,
    typer.Option(
        "--dtype",
        metavar="DTYPE",
        help="auto (bf16 on a GPU that has it), bfloat16, float16 or float32.",
        rich_help_panel="Model",
    ),
]

Attn = Annotated[
    str,
    typer.Option(
        "--attn",
        metavar="KERNEL",
        help="Attention kernel: sdpa, flash_attention_2 or eager.",
        rich_help_panel="Model",
    ),
]

Temperature = Annotated[
    float,
    typer.Option(
        "--temperature",
        metavar="T",
        min=0.0,
        help="0 is greedy decoding.",
        rich_help_panel="Model",
    ),
]

Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Run even when the memory estimate says the weights or the prompt do not fit.",
    ),
]

Srt = Annotated[
    str | None,
    typer.Option(
        "--srt",
        metavar="FILE",
        help="Write the answer's time spans as SubRip subtitles to this file (a folder for several inputs).",
    ),
]

Vtt = Annotated[
    str | None,
    typer.Option(
        "--vtt",
        metavar="FILE",
        help="Write the time spans as WebVTT subtitles to this file (a folder for several inputs).",
    ),
]

Evidence = Annotated[
    str | None,
    typer.Option(
        "--evidence",
        metavar="DIR",
        help="Save the frame at each stated time, and the source with the stated boxes and "
        "points drawn, as PNGs in this folder.",
    ),
]
Crops = Annotated[
    str | None,
    typer.Option(
        "--crops",
        metavar="DIR",
        help="Save the region of each box the answer states, cut from the source image or "
        "frame at full resolution, as a PNG in this folder.",
    ),
]
Clips = Annotated[
    str | None,
    typer.Option(
        "--clips",
        metavar="DIR",
        help="Cut each stated span out of the video into this folder as the answer arrives, "
        "as vlcli cut does (exact, re-encoded).",
    ),
]

Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="Append each input's JSON record to this file (JSON Lines) as soon as it is done.",
        rich_help_panel="Long runs",
    ),
]

Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Skip the inputs that already have a record in --output; append the rest.",
        rich_help_panel="Long runs",
    ),
]

RetryFailed = Annotated[
    bool,
    typer.Option(
        "--retry-failed",
        help="Resume, and try again the inputs whose record in --output is a failure.",
        rich_help_panel="Long runs",
    ),
]

Quiet = Annotated[
    bool,
    typer.Option(
        "--quiet",  # -q is --question's (issue 17 names it so)
        help="No progress on standard error (warnings and errors are still shown).",
        rich_help_panel="Long runs",
    ),
]


def seconds(value: str | None) -> float | None:
    """A ``--start``/``--end`` value in seconds; a value that is not a time is a usage error."""
    if value is None:
        return None
    from vlcli.times.parse import parse_time_value  # on first use: only a time option needs it

    try:
        return parse_time_value(value)
    except ValueError:
        raise UsageError(
            f"{value!r} is not a time (use seconds like 90 or 12.5, or mm:ss, hh:mm:ss)"
        ) from None


def sampling(
    fps: float | None,
    nframes: int | None,
    min_frames: int | None,
    max_frames: int | None,
    min_pixels: int | None,
    max_pixels: int | None,
    total_pixels: int | None,
    start: str | None,
    end: str | None,
) -> SamplingOptions:
    """The Sampling panel's options as one object (times parsed to seconds)."""
    return SamplingOptions(
        fps=fps,
        nframes=nframes,
        min_frames=min_frames,
        max_frames=max_frames,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        total_pixels=total_pixels,
        start=seconds(start),
        end=seconds(end),
    )


def utf8_text(option: str, text: str | None) -> None:
    """Refuse text the tokenizer cannot take: an argument with bytes that are not UTF-8 (they
    reach Python as lone surrogates), said with those bytes escaped."""
    if text is None:
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(text).decode("ascii", "backslashreplace")
        raise UsageError(f"{option} is not valid UTF-8 text: '{shown[:80]}'") from None


def media_paths(media: list[str], null: bool = False) -> list[str]:
    """The media files the arguments name; none at all (every argument a folder or pattern
    without media, or an empty standard input) is an input failure (status 3), not a usage one."""
    from vlcli.media.probe import expand_inputs  # the media layer, on first use

    paths = expand_inputs(media, sys.stdin, null=null)
    if not paths:
        searched = ", ".join("standard input" if m == "-" else m for m in media)
        raise InputError(f"no media found under {searched}")
    return paths


# vlcli cut's own options (the rest of the command line's are above).
Records = Annotated[
    list[str],
    typer.Argument(
        metavar="RECORDS...",
        help="Files of `vlcli ask --json` records (one per line), or - for standard input.",
        show_default=False,
    ),
]
ClipFolder = Annotated[
    str, typer.Option("--out", metavar="DIR", help="The folder the clips are written under.")
]
Pad = Annotated[
    float | None,
    typer.Option(
        "--pad",
        metavar="SECONDS",
        help="Widen each span by this much on each side, clipped to the video "
        "(default: 0, and 1 on each side of an instant).",
        show_default=False,
    ),
]
CopyStreams = Annotated[
    bool,
    typer.Option(
        "--copy",
        help="Copy the streams from the keyframe at or before each start: fast, not exact "
        "(the clip's real start is said).",
    ),
]
CutAgain = Annotated[
    bool, typer.Option("--force", help="Cut again a clip that exists (kept otherwise).")
]
ClipRoot = Annotated[
    str | None,
    typer.Option(
        "--root",
        metavar="DIR",
        help="Clip names keep the sources' folders below DIR (default: the folder all "
        "sources share).",
        show_default=False,
    ),
]
Reel = Annotated[
    str | None,
    typer.Option(
        "--reel",
        metavar="FILE",
        help="Also join every clip, in record order, into FILE (MP4), a chapter per span "
        "titled by its text.",
        show_default=False,
    ),
]
ClipsJson = Annotated[bool, typer.Option("--json", help="One JSON object per clip, one per line.")]
