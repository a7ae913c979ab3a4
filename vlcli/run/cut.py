"""``vlcli cut``: the spans that ``ask --json`` records state, cut out of their source videos.

Each record is checked before anything is cut: a failed record or one without times is skipped
and counted; a source that is gone, or that changed since it was answered (its size or
modification time differ from the record's ``file``), is refused for that record with a line,
and the other records go on. Each span is then cut to the frame (re-encoded), or from the
keyframe at or before it with ``copy`` (:mod:`vlcli.outputs.clip_file`), and said with the seconds
the clip really starts and ends at (a copy's end read back from the clip written). No clip
replaces a source or another clip of the run, and a clip from an earlier run is kept unless
``force``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from vlcli.errors import InputError, UsageError, VlcliError
from vlcli.media.container import FrameTable, frame_table
from vlcli.outputs.clip_file import Cut, find_ffmpeg, write_clip
from vlcli.outputs.clips import Span, clip_path, clip_stem, common_root, plan_spans, record_spans
from vlcli.outputs.reel import ReelPart, write_reel
from vlcli.times.format import format_clock


@dataclass(frozen=True)
class CutOptions:
    out_dir: str
    pad: float | None = None  # seconds each side; None: 1 s each side of an instant only
    copy: bool = False
    force: bool = False
    root: str | None = None  # the folder clip names start under (default: the sources' common one)
    reel: str | None = None  # every clip joined into this file, a chapter each


@dataclass(frozen=True)
class ClipMade:
    """One clip, as ``--json`` prints it."""

    source: str
    span: Span
    clip: str
    start_s: float  # where the clip really starts and ends, in source seconds
    end_s: float
    copied: bool
    kept: bool  # it was there from an earlier run and is left as it is

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "span": list(self.span.stated),
            "text": self.span.text,
            "clip": self.clip,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "cut": "copied" if self.copied else "exact",
            "kept": self.kept,
        }


class ClipView(Protocol):
    """What cutting one record's spans reports to (``ask --clips`` too)."""

    def clip(self, made: ClipMade) -> None: ...
    def skipped(self, source: str, reason: str) -> None: ...
    def progress(self, clip: str, done_s: float, total_s: float) -> None: ...
    def note(self, message: str) -> None: ...


class CutView(ClipView, Protocol):
    """What ``vlcli cut`` reports to: its records' failures and the reel besides."""

    def failed(self, error: VlcliError) -> None: ...
    def reel(self, path: str, chapters: int, written: bool) -> None: ...


@dataclass
class CutSummary:
    clips: int = 0
    kept: int = 0
    skipped: int = 0
    errors: list[VlcliError] = field(default_factory=list)


def read_records(lines: Iterable[str], name: str) -> Iterator[dict[str, Any] | VlcliError]:
    """The records of an ``ask --json`` output, one per line; a line that is not one is an error."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            yield record
        else:
            yield InputError(f"line {n} is not a JSON record of vlcli ask", name)


def run_cut(records: list[dict[str, Any]], options: CutOptions, view: CutView) -> CutSummary:
    """Cut every span of every record, in record order (see the module)."""
    ffmpeg_path = find_ffmpeg()
    sources = [
        r["path"] for r in records if r.get("status") == "ok" and isinstance(r.get("path"), str)
    ]
    run = Cutter(options, view, ffmpeg_path, options.root or common_root(sources), sources)
    if options.reel is not None and os.path.abspath(options.reel) in run.inputs:
        raise UsageError(f"--reel {options.reel} is one of the records' sources")
    for record in records:
        try:
            run.record(record)
        except VlcliError as exc:
            exc.path = exc.path or str(record.get("path"))
            run.summary.errors.append(exc)
            view.failed(exc)
    if options.reel is not None and run.parts:
        run.write_reel(options.reel, view)
    return run.summary


class Cutter:
    """Cuts the spans of one record after another (``vlcli cut``, and ``ask --clips`` as each
    answer arrives), never over one of ``inputs`` nor over another clip it made."""

    def __init__(
        self, options: CutOptions, view: ClipView, ffmpeg_path: str, root: str, inputs: list[str]
    ):
        self.options, self.view, self.ffmpeg, self.root = options, view, ffmpeg_path, root
        self.summary = CutSummary()
        self.inputs = {os.path.abspath(p) for p in inputs}
        self.made: dict[str, tuple[str, tuple[float, float]]] = {}  # clip -> its source and span
        self.parts: list[ReelPart] = []  # each clip, for the reel

    def record(self, record: dict[str, Any], stem: str | None = None) -> None:
        """Cut every span ``record`` states, each clip said to the view; ``stem``: what the
        clips' names start with (by default the source's path under the root)."""
        times, reason = record_spans(record)
        source = str(record.get("path"))
        if reason is not None:
            self.summary.skipped += 1
            self.view.skipped(source, reason)
            return
        if not _check_source(source, record.get("file")):
            self.view.note(
                f"{source}: its record (of an older vlcli) has no file size and time: not "
                "checked to be the file it was made from"
            )
        table = frame_table(source)
        spans, outside = plan_spans(times, self.options.pad, float(table.end_s))
        if outside:
            self.summary.skipped += outside
            self.view.skipped(source, f"{outside} span(s) outside the video")
        stem = stem if stem is not None else clip_stem(self.root, source)
        for span in spans:
            self.view.clip(self._cut(source, stem, table, span))

    def _cut(self, source: str, stem: str, table: FrameTable, span: Span) -> ClipMade:
        target = clip_path(self.options.out_dir, stem, span, self.options.copy)
        self._check_target(target, source, span)
        first = table.starts[table.frame_at(span.start_s)]
        end = table.frame_end(table.frame_at(span.end_s))
        start = table.keyframe_at(first) if self.options.copy else first
        cut = Cut(source, start, end - start, table.audio, self.options.copy)
        total = float(cut.length)
        written = write_clip(
            self.ffmpeg,
            cut,
            target,
            force=self.options.force,
            progress=lambda done: self.view.progress(target, min(done, total), total),
        )
        self.summary.clips += written
        self.summary.kept += not written
        if cut.copy:
            end = start + _shown_length(target, end - start, kept=not written)
        title = span.text or f"{source} {format_clock(float(start), 1)}"
        self.parts.append(ReelPart(target, title, float(end - start), table.audio))
        return ClipMade(source, span, target, float(start), float(end), cut.copy, not written)

    def write_reel(self, target: str, view: CutView) -> None:
        """Every clip of the run joined into ``target``; a failure is one line, as a clip's."""
        if os.path.abspath(target) in self.made:
            raise InputError(f"--reel {target} is a clip of this run: not joined")
        total = sum(p.length_s for p in self.parts)
        written = write_reel(
            self.ffmpeg,
            self.parts,
            target,
            force=self.options.force,
            progress=lambda done: view.progress(target, min(done, total), total),
        )
        view.reel(target, len(self.parts), written)

    def _check_target(self, target: str, source: str, span: Span) -> None:
        """No clip replaces an input, nor another clip of this run (two sources, one name)."""
        full = os.path.abspath(target)
        if full in self.inputs or any(_same_file(full, p) for p in self.inputs):
            raise InputError(
                f"its clip {target} would replace an input: give the clips another folder"
            )
        earlier = self.made.setdefault(full, (source, (span.start_s, span.end_s)))
        if earlier != (source, (span.start_s, span.end_s)):
            raise InputError(f"its clip {target} has the name of a clip of {earlier[0]}")


def _check_source(source: str, file: Any) -> bool:
    """The source is there and is the file the record was made from (size, modification time);
    False when the record does not say which file that was."""
    try:
        st = os.stat(source)
    except OSError as exc:
        raise InputError(f"cannot cut: {exc.strerror or exc}", source) from None
    if not isinstance(file, dict) or "size" not in file:
        return False
    if (st.st_size, st.st_mtime_ns) != (file.get("size"), file.get("mtime_ns")):
        raise InputError(
            "changed since it was answered (size or modification time differ from the "
            "record's): ask again, its times may not be this file's",
            source,
        )
    return True


def _shown_length(clip: str, cut_length: Fraction, kept: bool) -> Fraction:
    """How long a stream copy shows its frames: past the end it was cut at when B-frames there
    are decoded from later frames, which the copy then carries (and shows). A kept clip that
    cannot be read (a file of the user's at its name) is kept as it is, with the length it was
    cut to: "a clip that exists is kept", whatever it holds."""
    try:
        table = frame_table(clip)
    except VlcliError:
        if kept:
            return cut_length
        raise
    return table.end_s - table.starts[0]


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
