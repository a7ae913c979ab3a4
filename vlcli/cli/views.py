"""Everything vlcli prints: rich tables for a person, JSON lines for a pipeline.

Results go to standard output; errors, warnings and progress go to standard error (``err``).
Colour and boxes only where the stream is a terminal: rich turns them off by itself otherwise.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vlcli.errors import VlcliError, one_line
from vlcli.outputs.text import json_text
from vlcli.planning.memory import GIB, MemoryEstimate
from vlcli.planning.plan import Plan, VideoPlan
from vlcli.space.place import coordinate_system
from vlcli.times.format import format_hms
from vlcli.times.parse import TimeSpan

if TYPE_CHECKING:
    from vlcli.run.budget import Estimate
    from vlcli.run.prompt import AskResult


class ReaderGone(Exception):
    """Standard output's reader has gone (``vlcli budget ... | head -1``): stop quietly.

    Not an ``OSError``, so that click does not turn it into exit status 1 on the way out;
    :func:`vlcli.cli.app.main` ends the run with status 0.
    """


class OutputFailed(Exception):
    """Standard output cannot be written for another reason than a reader leaving (a full disk,
    an I/O error): :func:`vlcli.cli.app.main` says so in one line, status 1."""


def _detach_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that nothing fails again on the way out."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test's captured stream)
        pass


def reader_gone() -> NoReturn:
    """Send what is still to be written to standard output nowhere, and raise :class:`ReaderGone`."""
    _detach_stdout()
    raise ReaderGone


def output_failed(exc: OSError) -> NoReturn:
    """Standard output could not be written: a closed pipe ends quietly, anything else is said."""
    if isinstance(exc, BrokenPipeError):
        reader_gone()
    _detach_stdout()
    raise OutputFailed(f"cannot write to standard output: {exc.strerror or exc}") from None


def write_out(text: str) -> None:
    """Write ``text`` to standard output now (flushed), reporting a failure as such."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        output_failed(exc)


class _Console(Console):
    def on_broken_pipe(self) -> None:  # rich's own handler exits with status 1
        self.quiet = True
        reader_gone()

    def _check_buffer(self) -> None:  # rich handles a broken pipe only
        try:
            super()._check_buffer()
        except OSError as exc:
            self.quiet = True
            output_failed(exc)


def plain_terminal() -> bool:
    """``NO_COLOR`` (https://no-color.org) or ``TERM=dumb``: no colour, no bold, no cursor moves."""
    return bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM", "") == "dumb"


_COLORS: Any = None if plain_terminal() else "auto"
# Not a terminal: no colour (rich's own rule) and no wrapping at 80 columns, so that a line a
# script reads is one line.
out = _Console(
    highlight=False,
    soft_wrap=True,
    width=None if sys.stdout.isatty() else 1000,
    color_system=_COLORS,
)
err = Console(stderr=True, highlight=False, soft_wrap=True, color_system=_COLORS)


def can_rewrite_line(console: Console) -> bool:
    """A line that is rewritten in place (``\r``, erase) only on a real, capable terminal."""
    return console.is_terminal and not console.is_dumb_terminal and not plain_terminal()


def json_line(obj: dict[str, Any]) -> None:
    """One JSON object on one line of standard output."""
    write_out(json_text(obj) + "\n")


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """Control characters (but newline and tab) shown as escapes, for a terminal: an answer
    must not ring the bell, move the cursor or change colours."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def tsv_cell(text: str) -> str:
    """A cell of a tab-separated line: backslash, tab, newline and carriage return escaped as
    ``\\\\``, ``\\t``, ``\\n``, ``\\r``, so that one input is always one line."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def print_out(renderable: Any) -> None:
    """A table or text on standard output: as rich draws it on a terminal; elsewhere without
    box-drawing lines and without the spaces that pad the ends of lines."""
    if out.is_terminal:
        out.print(renderable)
        return
    if isinstance(renderable, Table):
        renderable.box = None
    with out.capture() as captured:
        out.print(renderable)
    write_out("\n".join(line.rstrip() for line in captured.get().split("\n")))


def error(exc: VlcliError | str) -> None:
    err.print(f"[bold red]vlcli:[/] {escape(one_line(str(exc)))}")


def warning(message: str) -> None:
    err.print(f"[yellow]vlcli: warning:[/] {escape(one_line(message))}")


def info(message: str) -> None:
    err.print(f"[dim]{escape(message)}[/]")


_STATUS = {"said": False}


def status(message: str) -> None:
    """A progress line on stderr (``starting vLLM on ...: 35 s``): rewritten in place on a
    terminal and wiped by an empty message; elsewhere only the first message is said, once."""
    if can_rewrite_line(err):
        err.file.write("\r\033[K" + visible(message))
        err.file.flush()
    elif message and not _STATUS["said"]:
        info(message.rsplit(":", 1)[0] + "...")
        _STATUS["said"] = True


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def _s(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if x == x else "?"


# ---------------------------------------------------------------- probe


PROBE_COLUMNS = (
    "path",
    "kind",
    "container",
    "codec",
    "size",
    "rotation",
    "duration",
    "fps",
    "frames",
    "pix_fmt",
    "audio",
)


def probe_table(rows: list[dict[str, Any]]) -> None:
    """A table on a terminal; tab-separated lines with a header row elsewhere."""
    cells = [_probe_cells(r) for r in rows]
    if not out.is_terminal:
        lines = ["\t".join(PROBE_COLUMNS)] + ["\t".join(tsv_cell(x) for x in c) for c in cells]
        write_out("".join(line + "\n" for line in lines))
        return
    table = Table(title="media", title_justify="left")
    for col in PROBE_COLUMNS:
        table.add_column(col, overflow="fold")
    for c in cells:
        table.add_row(escape(one_line(c[0])), *c[1:])
    out.print(table)


def _probe_cells(r: dict[str, Any]) -> list[str]:
    frames = (
        ""
        if r.get("frames") is None
        else f"{r['frames']}{'' if r.get('frames_counted') else ' (est.)'}"
    )
    return [
        str(r["path"]),
        r["kind"],
        str(r.get("container") or ""),
        str(r.get("codec") or ""),
        f"{r['width']}x{r['height']}",
        str(r.get("rotation") or 0),
        "" if r.get("duration_s") is None else f"{r['duration_s']:.3f}s",
        "" if r.get("fps") is None else f"{r['fps']:.3f}",
        frames,
        str(r.get("pixel_format") or ""),
        "yes" if r.get("audio") else "no",
    ]


# ---------------------------------------------------------------- budget


def budget_dict(e: Estimate, model: str, engine: str) -> dict[str, Any]:
    """``budget --json``'s line for one input; ``engine`` computes its temporal positions."""
    plan = e.plan
    d: dict[str, Any] = {"path": e.path, **plan.to_dict()}
    if isinstance(plan, VideoPlan):  # the positions as the chosen engine computes them
        d["temporal_positions"] = list(plan.time_axis(engine).positions)
        d["positions_engine"] = engine
    d["coordinates"] = coordinate_system(plan)
    d["prompt_tokens"] = e.tokens
    d["prompt_tokens_exact"] = e.exact
    d["model"] = model
    d["memory"] = e.memory.to_dict() if e.memory else None
    return d


def _coordinates_line(plan: Plan) -> str:
    """How a box the model states maps to source pixels, for a user of another tool."""
    c = coordinate_system(plan)
    (ext_w, ext_h), (src_w, src_h) = c["extent"], c["source"]
    return (
        f"{c['system']}, {c['unit']}: source x = x * {src_w}/{ext_w:g}, y = y * {src_h}/{ext_h:g}"
    )


def _memory_parts(mem: MemoryEstimate) -> str:
    """The estimate and what it is made of: a mixture of experts' weights are all resident (what a
    token uses said beside them), a hybrid's linear layers keep a fixed state beside the KV cache
    of its full-attention layers."""
    weights = f"weights {_gib(mem.weights_bytes)}"
    if mem.active_weights_bytes is not None:
        weights += f" (all experts; {_gib(mem.active_weights_bytes)} used per token)"
    kv = f"KV cache {_gib(mem.kv_cache_bytes)}"
    if mem.linear_state_bytes:
        kv += f" (full-attention layers), linear-attention state {_gib(mem.linear_state_bytes)}"
    if mem.kept_prefix_bytes:  # several questions: the media's prefill kept for the next ones
        kv += f", kept prefill {_gib(mem.kept_prefix_bytes)}"
    return (
        f"{_gib(mem.total_bytes)} ({mem.dtype}): {weights}, {kv}, "
        f"activations {_gib(mem.activation_bytes)} (vision {_gib(mem.vision_peak_bytes)}, "
        f"prefill {_gib(mem.prefill_peak_bytes)}), overhead {_gib(mem.overhead_bytes)}"
    )


def budget_view(e: Estimate, model: str, engine: str) -> None:
    """``budget``'s table for one input; ``engine`` computes its temporal positions."""
    plan = e.plan
    print_out(f"[bold]{escape(visible(e.path))}[/]")
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="dim")
    summary.add_column()
    if isinstance(plan, VideoPlan):
        summary.add_row(
            "source",
            f"{plan.source_width}x{plan.source_height}, {plan.source_frames} frames "
            f"at {plan.source_fps:.3f} fps, {plan.duration_s:.3f}s",
        )
        summary.add_row(
            "clip",
            f"frames {plan.start_frame}..{plan.end_frame}, {_s(plan.clip_start_s)}s to {_s(plan.clip_end_s)}s",
        )
        summary.add_row("sampled", f"{plan.frames} frames at {plan.sample_fps:.4f} fps")
        summary.add_row("second_per_grid_t", f"{plan.second_per_grid_t:.4f} s per temporal patch")
        if plan.tokens_per_second:
            summary.add_row(
                "tokens_per_second",
                f"{plan.tokens_per_second:g} (temporal position = seconds x {plan.tokens_per_second:g})",
            )
    else:
        summary.add_row("source", f"{plan.source_width}x{plan.source_height} image")
    summary.add_row("resized", f"{plan.resized_width}x{plan.resized_height} (w x h)")
    summary.add_row("boxes", _coordinates_line(plan))
    summary.add_row("grid_thw", " x ".join(map(str, plan.grid_thw)))
    summary.add_row("visual tokens", str(plan.visual_tokens))
    summary.add_row(
        "prompt tokens",
        f"{e.tokens}" + ("" if e.exact else " (visual exact, text estimated: no local tokenizer)"),
    )
    if e.memory is not None:
        summary.add_row("GPU memory", _memory_parts(e.memory))
    else:
        summary.add_row(
            "GPU memory", f"unknown for {escape(model)} (no config.json; pass --model PATH)"
        )
    print_out(summary)
    if isinstance(plan, VideoPlan):
        t = Table(show_edge=False, pad_edge=False)
        for col in (
            "patch",
            "frames",
            "frame times (s)",
            "position t",
            "model second",
            "source second",
        ):
            t.add_column(col, justify="right")
        step = plan.frames // plan.grid_thw[0] if plan.grid_thw[0] else 2
        axis = plan.time_axis(engine)
        for g, pos in enumerate(axis.positions):
            idx = plan.frame_indices[g * step : (g + 1) * step]
            times = plan.frame_times_s[g * step : (g + 1) * step]
            t.add_row(
                str(g),
                ",".join(map(str, idx)),
                ", ".join(_s(x) for x in times),
                str(pos),
                _s(axis.position_seconds(pos)),
                _s(plan.patch_times_s[g]),
            )
        print_out(t)
    write_out("\n")


def budget_windows(path: str, rows: list[Any], model: str, json_out: bool) -> None:
    """``budget --window``: one line (JSON) or one table per video, a row per window, totals.

    Each window is its own prompt: the memory shown is the largest window's.
    """
    mems = [mem for *_, mem in rows if mem is not None]
    peak = max(mems, key=lambda m: m.total_bytes) if mems else None
    frames = sum(plan.frames for _, plan, _, _ in rows)
    visual = sum(plan.visual_tokens for _, plan, _, _ in rows)
    prompt = sum(tokens for _, _, tokens, _ in rows)
    if json_out:
        json_line(
            {
                "path": path,
                "kind": "video",
                "windows": [
                    {**w.to_dict(), **plan.to_dict(), "prompt_tokens": tokens}
                    for w, plan, tokens, _ in rows
                ],
                "frames": frames,
                "visual_tokens": visual,
                "prompt_tokens": prompt,
                "model": model,
                "memory": peak.to_dict() if peak else None,
            }
        )
        return

    print_out(f"[bold]{escape(visible(path))}[/]: {len(rows)} windows, each its own prompt")
    t = Table(show_edge=False, pad_edge=False)
    for col in (
        "window",
        "from",
        "to",
        "frames",
        "fps",
        "s per patch",
        "visual tokens",
        "prompt tokens",
    ):
        t.add_column(col, justify="right")
    for w, plan, tokens, _ in rows:
        t.add_row(
            str(w.index),
            format_hms(plan.clip_start_s),
            format_hms(plan.clip_end_s),
            str(plan.frames),
            f"{plan.sample_fps:.3f}",
            f"{plan.second_per_grid_t:.3f}",
            str(plan.visual_tokens),
            str(tokens),
        )
    t.add_row("total", "", "", str(frames), "", "", str(visual), str(prompt))
    print_out(t)
    if peak is not None:
        print_out(f"GPU memory (largest window): {_gib(peak.total_bytes)} ({peak.dtype})")
    write_out("\n")


# ---------------------------------------------------------------- ask


def stream_text(piece: str) -> None:
    """Print answer text as the model generates it (control characters made visible on a
    terminal; a pipe gets the text as it is)."""
    write_out(visible(piece) if out.is_terminal else piece)


DIM, NORMAL = "\x1b[2m", "\x1b[22m"


def stream_reasoning(piece: str) -> None:
    """Print a thinking model's reasoning as it comes: on a terminal only, dimmed (plain with
    ``NO_COLOR`` or ``TERM=dumb``); a pipe gets the answer alone (``--json`` records keep both)."""
    if not out.is_terminal:
        return
    write_out(visible(piece) if plain_terminal() else DIM + visible(piece) + NORMAL)


class AskOutput:
    """How ``vlcli ask`` shows its run: streamed answers and tables, or JSON lines, on standard
    output; errors, warnings and the progress display (:mod:`vlcli.cli.progress`) on standard error.

    When several answers share a terminal, each is headed by its input's name on stdout. When
    standard output and standard error are the same terminal, the progress display steps aside
    while an answer is written.
    """

    def __init__(self, json_out: bool, quiet: bool = False):
        from vlcli.cli.progress import Progress, progress_mode  # rich.progress: for ask only

        self.json_out = json_out
        self.quiet = quiet
        self.progress = Progress(err, progress_mode(err, quiet, can_rewrite_line(err)))
        self.shared_terminal = out.is_terminal and err.is_terminal
        self._header: list[Any] | None = None  # paths, title, several, shown
        self._line_open = False  # a streamed answer has not ended its line
        self._streamed = False  # this record's answer (or a window's) was streamed
        self._reasoned = False  # reasoning was shown: the answer starts on a line of its own

    # ------------------------------------------------------------ progress

    def begin(self, total: int, done: int) -> None:
        self.progress.done = done
        self.progress.start(total)

    def stage(self, label: str, stage: str) -> None:
        self.progress.stage(label, stage)

    def loading(self, message: str) -> None:
        """What loading the model says as it goes (``starting vLLM on ...: 35 s``; empty when
        done): the display's stage on a terminal, said once in a log, nothing with --quiet."""
        if self.progress.mode == "live":
            self.stage("", message or "loading the model")
        elif self.progress.mode == "lines":
            status(message)

    def decoding(self, label: str, done: int, total: int) -> None:
        self.progress.decoding(label, done, total)

    def finished(self, label: str, status: str, seconds: float) -> None:
        self.progress.finished(label, status, seconds)

    def close(self) -> None:
        self.progress.close()

    # ------------------------------------------------------------ answers

    def _stdout_begins(self) -> None:
        if self.shared_terminal:
            self.progress.pause()

    def _stdout_ends(self) -> None:
        if self.shared_terminal:
            self.progress.resume()

    def _end_line(self) -> None:
        if self._line_open:
            write_out("\n")
            self._line_open = False

    def _show_header(self) -> None:
        """Once per answer, before its first text: end the line left open by the answer
        before, then name the input (when the run has several). Never between two pieces of
        one answer, which must read as the model wrote it."""
        if self._header is not None and not self._header[3]:
            self._header[3] = True
            self._end_line()
            if self._header[2]:
                answer_header(self._header[0], self._header[1])

    def start(self, paths: list[str], title: str | None, several: bool) -> Any:
        """Before an answer is generated: a sink for its text (None with ``--json``). The
        header (the input's name, when the run has several answers) comes with the first text."""
        if self.json_out:
            return None
        self._header = [paths, title, several, False]
        return _AnswerSink(self)

    def _piece(self, piece: str) -> None:
        self._stdout_begins()
        self._show_header()
        if self._reasoned:  # the reasoning ends: a blank line, then the answer
            self._end_line()
            write_out("\n")
            self._reasoned = False
        stream_text(piece)
        self._line_open = not piece.endswith("\n")
        self._streamed = True

    def _reasoning(self, piece: str) -> None:
        if not out.is_terminal:
            return
        self._stdout_begins()
        self._show_header()
        stream_reasoning(piece)
        self._line_open = not piece.endswith("\n")
        self._reasoned = self._streamed = True

    def _discard(self) -> None:
        """The answer broke off and comes again (the warning says so on stderr): its line is
        ended and the whole answer headed again, on its own lines."""
        self._end_line()
        self._reasoned = False
        if self._header is not None:
            self._header[3] = False

    def stopped(self) -> None:
        """An answer stopped before its end (``vlcli chat``'s Ctrl-C): its line is ended."""
        self._end_line()
        self._line_open = self._streamed = False
        self._header = None

    def window_answered(self, label: str, seconds: float) -> None:
        """One window of a video is answered (its record comes with the last one)."""
        self.progress.window_finished(label, seconds)
        self._end_line()
        self._header = None
        self._stdout_ends()

    def result(self, record: dict[str, Any], result: AskResult) -> None:
        self._stdout_begins()
        try:
            if self.json_out:
                json_line(record)
            else:
                if self._header is None:  # not streamed: the header comes now
                    self._header = [result.paths, None, self.progress.total > 1, False]
                self._show_header()
                self._end_line()
                if not self._streamed:  # answered elsewhere (several requests in flight)
                    if result.reasoning:
                        stream_reasoning(result.reasoning + "\n\n")
                    stream_text(result.answer)
                answer_view(result, figures=not self.quiet)
        finally:
            self._line_open = self._streamed = self._reasoned = False
            self._header = None
            self._stdout_ends()

    def failure(self, paths: list[str], exc: VlcliError, record: dict[str, Any]) -> None:
        if len(paths) == 1:
            exc.path = exc.path or paths[0]
        if self.json_out:
            json_line(record)
        self._end_line()  # what was streamed of it (its reasoning) ends before the error
        self._line_open = self._streamed = self._reasoned = False
        self._header = None
        error(exc)
        self._stdout_ends()

    def info(self, message: str) -> None:
        if not self.quiet:
            info(message)

    def warn(self, message: str) -> None:
        warning(message)


class _AnswerSink:
    """The sink of one streamed answer (:class:`vlcli.run.view.AnswerSink`) on standard output."""

    def __init__(self, output: AskOutput):
        self.output = output

    def __call__(self, piece: str) -> None:
        self.output._piece(piece)

    def reasoning(self, piece: str) -> None:
        self.output._reasoning(piece)

    def discard(self) -> None:
        self.output._discard()

    def waiting(self, message: str) -> None:
        """Nothing: chat shows no progress display, and each wait is a warning line already."""


def answer_header(paths: list[str], title: str | None = None) -> None:
    """Before a streamed answer, when a run has several: which input(s) (and window) it is about."""
    extra = f" [dim]({escape(visible(title))})[/]" if title else ""
    print_out(f"[bold]{escape(visible(', '.join(paths)))}[/]{extra}")


def answer_view(result: AskResult, figures: bool = True) -> None:
    """After the streamed answer: its time spans in source seconds, evidence files; figures.

    The seconds are printed to the millisecond (as in ``--json`` and the subtitles) and the
    clock time to the tenth, both rounded from the same value.
    """
    write_out("\n")
    if result.times:
        title = (
            "times in the source video"
            if all(span.mapped for span in result.times)
            else "times as the model stated them (not mapped to a source video)"
        )
        t = Table(title=title, title_justify="left", show_edge=False)
        windows = result.span_windows
        for col in (
            "start s",
            "end s",
            "start",
            "end",
            "",
            *(["window"] if windows else []),
            "text",
        ):
            t.add_column(col, overflow="fold")
        for k, span in enumerate(result.times):
            flag = _span_flags(span)
            t.add_row(
                _s(span.display_start_s),
                _s(span.display_end_s),
                format_hms(span.display_start_s),
                format_hms(span.display_end_s),
                flag,
                *([str(windows[k])] if windows else []),
                escape(visible(span.text)),
            )
        print_out(t)
    if result.places:
        print_out(places_table(result.places))
    for path in result.evidence:
        print_out(f"evidence: {escape(visible(path))}")
    for path in result.crops or []:
        print_out(f"crop: {escape(visible(path))}")
    if not figures:
        return
    info(timing_summary(result.prompt_tokens, result.generated_tokens, result.timings))


def _span_flags(span: TimeSpan) -> str:
    """What the times table says of a span, as --json's flags: outside the clip (or clipped to
    it), and reversed (stated end first, shown in order)."""
    where = "outside the clip" if span.outside else ("clipped" if span.clipped else "")
    return ", ".join(flag for flag in (where, "reversed" if span.reversed else "") if flag)


def places_table(places: list[Any]) -> Table:
    """The boxes and points of an answer in source pixels (x1 y1 x2 y2 edges, or x y), with the
    frame each is on for a video, the model's own coordinates and what was put right."""
    t = Table(title="boxes and points in source pixels", title_justify="left", show_edge=False)
    for col in ("", "label", "pixels", "frame s", "model", "flags"):
        t.add_column(col, overflow="fold")
    for p in places:
        t.add_row(
            p.kind,
            escape(visible(p.label)),
            " ".join(map(str, p.pixels)) if p.pixels else "-",
            _s(p.frame_s) if p.frame_s is not None else "",
            " ".join(f"{v:g}" for v in p.model),
            ", ".join(p.flags),
        )
    return t


def timing_summary(prompt_tokens: int, generated: int, tm: dict[str, float]) -> str:
    """``3611 prompt tokens, 40 generated: frames 0.42s, prefill 1.30s (to the first token), 39
    more tokens 2.00s (19.5/s), total 3.72s``. Prefill and the tokens after it are apart, so
    that neither reads as the other; the total is every step of the answer."""
    frames = tm.get("decode_s", 0.0) + tm.get("preprocess_s", 0.0)
    prefill = tm.get("prefill_s", 0.0)
    rest = tm.get("decode_tokens_s", max(tm.get("generate_s", 0.0) - prefill, 0.0))
    more = max(generated - 1, 0)
    rate = f" ({more / rest:.1f}/s)" if rest > 0 and more else ""
    return (
        f"{prompt_tokens} prompt tokens, {generated} generated: frames {frames:.2f}s, "
        f"prefill {prefill:.2f}s (to the first token), {more} more tokens {rest:.2f}s{rate}, "
        f"total {frames + prefill + rest:.2f}s"
    )
