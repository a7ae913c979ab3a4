"""``vlcli chat MEDIA...``: questions and follow-ups about the media, one line each.

On a terminal the line is read with Python's standard ``readline`` (editing, history); each
answer is streamed and its times shown as ``ask`` shows them; the commands are in
:data:`COMMANDS`. Ctrl-C during an answer stops it and returns to the prompt; at the prompt it
leaves with status 130, as an interrupt does anywhere. When standard input is not a terminal each
line is a question, answered in turn with the conversation kept (``--json``: one record per
turn). The conversation itself is :class:`vlcli.run.chat.Conversation`.
"""

from __future__ import annotations

import sys
from typing import Any

from vlcli.backends.vllm import DEFAULT_PATIENCE_S
from vlcli.cli import views as render
from vlcli.cli.options import (
    ApiKeyOption,
    AskModel,
    Attn,
    Device,
    Dtype,
    End,
    EngineOption,
    Force,
    Fps,
    FrameFormat,
    Json,
    MaxFrames,
    MaxNew,
    MaxPixels,
    MediaArguments,
    MinFrames,
    MinPixels,
    NFrames,
    ServerOption,
    ServerPatience,
    Start,
    SystemOption,
    TaskOption,
    Temperature,
    TotalPixels,
    VllmArgs,
    VllmPython,
    media_paths,
    sampling,
    utf8_text,
)
from vlcli.errors import Interrupted, UsageError, VlcliError

COMMANDS = """\
/help        these lines
/save FILE   every turn so far as JSON Lines records (the fields of ask --json)
/srt FILE    the spans of the last answer as SubRip subtitles (/vtt FILE: WebVTT)
/reset       forget the conversation (the media stay prepared)
/quit        leave (Ctrl-D too)"""


def chat(
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
    model: AskModel = None,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    engine: EngineOption = "transformers",
    vllm_python: VllmPython = None,
    vllm_args: VllmArgs = None,
    server_patience: ServerPatience = DEFAULT_PATIENCE_S,
    frame_format: FrameFormat = "png",
    device: Device = "auto",
    dtype: Dtype = "auto",
    attn: Attn = "sdpa",
    max_new_tokens: MaxNew = 512,
    temperature: Temperature = 0.0,
    system: SystemOption = None,
    task: TaskOption = "qa",
    force: Force = False,
    json_out: Json = False,
) -> None:
    """Talk about the media: each line a question, answered with the conversation so far."""
    # On first use, as in ask: the command line starts without the run's modules.
    from vlcli.planning.tasks import check_task
    from vlcli.run.chat import Conversation
    from vlcli.run.engine import EngineOptions, check_engine, open_backend
    from vlcli.run.prompt import AskSettings, Generation

    check_task(task)
    if "-" in media:
        raise UsageError("chat reads its questions from standard input: name the media as files")
    utf8_text("--system", system)
    options = sampling(
        fps, nframes, min_frames, max_frames, min_pixels, max_pixels, total_pixels, start, end
    )
    settings = AskSettings("", task, system, options, Generation(max_new_tokens, temperature))
    paths = media_paths(media)
    engine_options = EngineOptions(
        engine, model, server, api_key, device, dtype, attn, vllm_python,
        tuple(vllm_args or ()), 1, frame_format, force, server_patience,
    )  # fmt: skip
    check_engine(engine_options)
    view = render.AskOutput(json_out, quiet=True)  # no live display under the input line
    backend = open_backend(engine_options, options, render.warning, view.loading)
    try:
        conversation = Conversation(backend, paths, settings, render.warning)
        _Repl(conversation, view, sys.stdin.isatty()).run()
    finally:
        backend.close()


class _Repl:
    """The loop: read a line, run a command or answer a question (see the module docstring)."""

    def __init__(self, conversation: Any, view: render.AskOutput, interactive: bool) -> None:
        self.conversation, self.view, self.interactive = conversation, view, interactive
        self.records: list[dict[str, Any]] = []
        self.last: Any = None  # the last answer's result, for /srt and /vtt

    def run(self) -> None:
        if self.interactive:
            import readline  # noqa: F401  (input() gets line editing and history)

            render.info(self.conversation.holds())
            render.info("/help lists the commands; Ctrl-D leaves")
        while (line := self._read()) is not None:
            line = line.strip()
            if line.startswith("/"):
                if not self._command(line):
                    return
            elif line:
                self._answer(line)

    def _read(self) -> str | None:
        """The next line; None at the end of the input (Ctrl-D on a terminal)."""
        if not self.interactive:
            return sys.stdin.readline() or None
        try:
            return input("> ")
        except EOFError:
            render.write_out("\n")
            return None

    def _answer(self, question: str) -> None:
        from vlcli.run import signals  # on first use, as in chat(): not at the CLI's start

        sink = self.view.start(self.conversation.paths, None, False)
        try:
            record, result = self.conversation.ask(question, sink, lambda done, total: None)
        except (Interrupted, KeyboardInterrupt):
            signals.forget()  # handled here: not a reason to end the process
            self.view.stopped()
            render.warning("answer stopped")
            return
        except VlcliError as exc:
            self.view.stopped()
            render.error(exc)
            return
        self.records.append(record)
        self.last = result
        self.view.result(record, result)

    def _command(self, line: str) -> bool:
        """Run one command; False to leave."""
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name == "/quit":
            return False
        if name == "/help":
            render.write_out(COMMANDS + "\n")
        elif name == "/reset":
            self.conversation.reset()
            render.info("the conversation is forgotten; the media stay prepared")
        elif name in ("/save", "/srt", "/vtt") and arg:
            self._write(name, arg)
        elif name in ("/save", "/srt", "/vtt"):
            render.error(f"{name} needs a file name: {name} FILE")
        else:
            render.error(f"no command {name}: /help lists them")
        return True

    def _write(self, name: str, path: str) -> None:
        """``/save``, ``/srt`` or ``/vtt`` into ``path``, written whole or not at all."""
        # On first use, as in chat(): the CLI starts without the output modules.
        from vlcli.outputs.files import write_owned
        from vlcli.outputs.text import json_text
        from vlcli.run.answer_files import no_cue_reason, subtitles_of

        if name == "/save":
            text: str | None = "".join(json_text(r) + "\n" for r in self.records)
        elif self.last is None:
            render.error(f"{name}: no answer yet")
            return
        else:
            text = subtitles_of(self.last, name.lstrip("/"))
        if text is None:
            render.error(f"{name}: the last answer {no_cue_reason(self.last)}")
            return
        try:
            write_owned(path, text, "chat" if name == "/save" else "subtitles")
        except (VlcliError, OSError) as exc:
            render.error(f"{path}: {exc}")
            return
        render.info(f"wrote {path}")
