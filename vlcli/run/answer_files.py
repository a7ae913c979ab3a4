"""The files an answer gets besides its record: subtitles (``--srt``/``--vtt``), evidence
frames (``--evidence DIR``: the frames of its times, and its boxes and points drawn on the
source, :mod:`vlcli.run.place_files`), the regions of its boxes (``--crops DIR``) and clips
(``--clips DIR``).

They are written before the record (atomically, :mod:`vlcli.outputs.files`), so that a recorded
input has its files. Subtitles that cannot be written fail that input (the run goes on);
evidence frames that cannot be saved are only warned about, and so are clips that cannot be cut
(the answer is good: ``vlcli cut`` can cut them from the records later, while a failed input
would be asked again). No file of the run's inputs is ever
written over, and only files vlcli can prove it wrote are replaced or removed.
"""

from __future__ import annotations

from collections.abc import Sequence

from vlcli.errors import ExitStatus, VlcliError
from vlcli.outputs.clip_file import find_ffmpeg
from vlcli.outputs.files import (
    SubtitleTarget,
    check_not_input,
    file_ids,
    remove_owned,
    write_owned,
)
from vlcli.outputs.subtitles import to_srt, to_vtt
from vlcli.planning.plan import VideoPlan
from vlcli.planning.windows import shown_range
from vlcli.run.cut import ClipMade, CutOptions, Cutter
from vlcli.run.inputs import Task
from vlcli.run.place_files import save_places
from vlcli.run.prompt import AskResult, evidence_video, save_evidence
from vlcli.run.view import AskView


def subtitles_of(result: AskResult, fmt: str) -> str | None:
    """The answer's subtitles as a SubRip (``fmt`` ``"srt"``) or WebVTT file, or None when no
    span would be a cue (no times, or none inside the clip): a file with no cue is none that
    players and FFmpeg read. No cue runs past the video's end (the last window's, with
    ``--window``). ``ask --srt`` and ``chat``'s ``/srt`` write the same file."""
    if all(span.outside for span in result.times):
        return None
    end = max(
        (shown_range(p)[1] for p in result.plans if isinstance(p, VideoPlan)), default=None
    )
    text = (to_srt if fmt == "srt" else to_vtt)(result.times, end_s=end)
    return text if "-->" in text else None  # no cue came of it (to_vtt's header alone)


def no_cue_reason(result: AskResult) -> str:
    """Why :func:`subtitles_of` gave no file: what the answer states."""
    return "states no time inside the clip" if result.times else "states no times"


class AnswerFiles:
    """Writes each answer's subtitle files and evidence frames, as the run asks (the run's
    inputs are known from the start, so that none is written over)."""

    def __init__(
        self,
        subtitles: Sequence[SubtitleTarget],
        evidence_dir: str | None,
        paths: list[str],
        view: AskView,
        crops_dir: str | None = None,
    ) -> None:
        self.subtitles, self.evidence_dir = list(subtitles), evidence_dir
        self.crops_dir = crops_dir
        self.inputs = file_ids(paths)  # what no output may be written over
        self.view = view

    def write(self, task: Task, result: AskResult) -> VlcliError | None:
        """Write one answer's files (noted in ``result``); the error that fails the input."""
        try:
            result.subtitles = self._write_subtitles(task, result) if self.subtitles else None
        except OSError as exc:
            return VlcliError(
                f"cannot write its subtitles: {exc.strerror or exc}", ExitStatus.INPUT
            )
        except VlcliError as exc:
            return exc
        if self.evidence_dir:
            self._save_evidence(task, result, self.evidence_dir)
        if self.evidence_dir or self.crops_dir:  # also with no boxes: an earlier answer's go
            self._save_places(task, result)
        return None

    def _write_subtitles(self, task: Task, result: AskResult) -> list[str]:
        """Each subtitle file of one answer, whole; none when the answer states no times, or
        none inside the clip (a span outside it has no cue).

        No cue: nothing is written (an empty SubRip file is not one that players and FFmpeg
        read, and a WebVTT file with no cue has no subtitle stream), and the file an earlier run
        of vlcli wrote at that name (proven: :func:`vlcli.outputs.files.written_by_vlcli`) is
        removed, so that no stale cues stay; any other file there is left alone.
        """
        written: list[str] = []
        for target in self.subtitles:
            path = target.path_for(task.stem)
            check_not_input(path, self.inputs)
            text = subtitles_of(result, target.fmt)
            if text is not None:
                write_owned(path, text, "subtitles")
                written.append(str(path))
                self.view.info(f"wrote {path}")
                continue
            stale = remove_owned(path)
            self.view.info(
                f"{task.label}: the answer {no_cue_reason(result)}: no {path} written"
                + (" (the one from an earlier run was removed)" if stale else "")
            )
        return written

    def _save_evidence(self, task: Task, result: AskResult, folder: str) -> None:
        video = (task.paths[0], task.stem) if task.windows else evidence_video(result)
        if video is None:
            return
        try:
            result.evidence = save_evidence(video[0], result.times, folder, video[1], self.inputs)
        except (VlcliError, OSError) as exc:
            self.view.warn(f"{video[0]}: evidence frames not saved: {exc}")

    def _save_places(self, task: Task, result: AskResult) -> None:
        """The boxes and points drawn, each box cut out: of the one input they are on."""
        if len(result.paths) != 1:
            if result.places:
                self.view.info(f"{task.label}: boxes not drawn: nothing says which input each is on")
            return
        try:
            drawn, crops = save_places(
                result.paths[0],
                result.plans[0],
                result.places,
                task.stem,
                (self.evidence_dir, self.crops_dir),
                self.inputs,
            )
        except (VlcliError, OSError) as exc:
            self.view.warn(f"{result.paths[0]}: boxes not drawn nor cut: {exc}")
            return
        result.evidence += drawn
        result.crops = crops if self.crops_dir else None
        if isinstance(result.plans[0], VideoPlan):
            if unplaced := sum(p.frame_s is None for p in result.places):
                self.view.info(
                    f"{task.label}: {unplaced} of the boxes and points have no frame (no time "
                    "stated with them, or one outside the clip): not drawn nor cut"
                )


class AnswerClips:
    """Cuts the spans each answer states out of its video (``--clips DIR``), as ``vlcli cut``
    does (:class:`vlcli.run.cut.Cutter`: exact, re-encoded; a clip there already is kept), named
    from the input's output stem as its subtitles are. FFmpeg is looked for at once, before any
    input is probed."""

    def __init__(self, folder: str, paths: list[str], view: AskView) -> None:
        # no root: each clip is named from its input's stem (cut()), never under a root
        self.cutter = Cutter(CutOptions(folder), self, find_ffmpeg(), ".", paths)
        self.view = view
        self.made: list[str] = []
        self.label = ""  # the input being cut, for the progress display

    def cut(self, task: Task, result: AskResult) -> list[str]:
        """The clips of one answer (those cut before a failure included); a failure is a
        warning of one line."""
        self.made, self.label = [], task.label
        try:
            self.cutter.record({**result.to_dict(), "file": task.file()}, task.stem)
        except VlcliError as exc:
            self.view.warn(f"{exc.path or task.label}: clip not cut: {exc.message}")
        return self.made

    # what the cutter reports (vlcli.run.cut.ClipView)

    def clip(self, made: ClipMade) -> None:
        self.made.append(made.clip)
        self.view.info(f"kept {made.clip} (it exists)" if made.kept else f"wrote {made.clip}")

    def skipped(self, source: str, reason: str) -> None:  # source: a list with --together
        self.view.info(f"{self.label}: no clip cut: {reason}")

    def note(self, message: str) -> None:
        self.view.warn(message)

    def progress(self, clip: str, done_s: float, total_s: float) -> None:
        done = f": {done_s / total_s:.0%}" if total_s else ""
        self.view.stage(self.label, f"cutting {clip}{done}")
