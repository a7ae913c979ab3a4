"""The output file of ``vlcli ask -o FILE``: one JSON record per input, and what ``--resume`` reads.

Each record starts with its ``key`` and ``status``::

    {"key": "3f9c...", "status": "ok", "path": "clips/a.mp4", ...}

``key`` (:func:`placed_key`) is made from everything that decides the answer. Its first half (the
*place*) names what is asked: the input's path, the question, task and system prompt, the
sampling options, the generation settings, the backend's identity (engine, model, revision,
dtype...) and ``--window``; its second half adds the input's size and modification time (a
window's record has its video's place, and the window in its second half). ``status`` is
``ok``, ``failed`` (the record has an ``error``) or ``window`` (one finished window of a video
still in progress).

One record per place: a record that supersedes others of its place (the answer to a file that
changed, a retried failure, a video's record over its windows' records) is written in the place
of the first of them, by rewriting the file (:meth:`Ledger.append`); so the file is one record
per input, in input order, at every moment, an interrupt included.

Writing: a new record goes in one ``write`` on a file opened for appending, then ``fsync``; if
the write fails half-way the file is cut back to where it was. A rewrite goes to a temporary
file renamed over the old one. A torn last line (a crash or a kill in the middle of a write) is
ignored when the file is read and cut off before anything is appended; a torn line before others
(two writers, an older vlcli) is not counted as done, said, and dropped.

One run at a time: the file is locked (:class:`_Lock`) for the whole run, and another run on it
is refused with the holder's pid.

Reading (:meth:`Ledger.open`) is fast because a record's key and status are read from the start
of its line without parsing the rest; only a window record is parsed, when it is used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from vlcli.errors import UsageError
from vlcli.outputs.files import atomic_write, refuse_not_regular
from vlcli.outputs.text import json_text

STATUSES = ("ok", "failed", "window")
PLACE = 16  # the hex digits of a key that name its place (see the module docstring)
_START = b'{"key": "'
_HEAD = re.compile(rb'\{"key": "([0-9a-f]{32})", "status": "(ok|failed|window)"')
_LOCK_TEXT = re.compile(rb"vlcli ask: pid (\d+)\n")


def input_facts(path: str) -> dict[str, Any]:
    """What identifies one input file for a key: its absolute path, size and modification time.

    A file that cannot be read gets no size: its key changes once it can be, so it is retried.
    """
    facts: dict[str, Any] = {"path": os.path.abspath(path)}
    try:
        st = os.stat(path)
        facts.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    except OSError:
        pass
    return facts


def record_key(*parts: Any) -> str:
    """A stable key (32 hex digits of SHA-256) of JSON-able ``parts`` (dict keys sorted), file
    names that are not valid UTF-8 included."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def placed_key(place: Any, version: Any) -> str:
    """A key whose first half names the record's ``place`` (what is asked about which input) and
    whose second half its ``version`` (the input's size and time): a record supersedes the
    records of its place (64 bits each: no two places or versions of a file's records meet)."""
    return record_key(place)[:PLACE] + record_key(place, version)[PLACE:]


def part_key(key: str, part: Any) -> str:
    """The key of a ``part`` of the record ``key`` (a window of a video): in its place, so that
    the video's own record supersedes it."""
    return key[:PLACE] + record_key(key, part)[PLACE:]


def record_line(record: Mapping[str, Any]) -> bytes:
    """One record as the bytes of one line: ``key`` and ``status`` first, no NaN, UTF-8 (a name
    that is not valid UTF-8 written as ``--json`` writes it: :func:`vlcli.outputs.text.json_text`)."""
    if "key" not in record or record.get("status") not in STATUSES:
        raise ValueError("a record needs a key and a status first")
    ordered = {"key": record["key"], "status": record["status"], **record}
    return (json_text(ordered) + "\n").encode("utf-8")


class Entry(NamedTuple):
    """Where the latest record of a key is in the file."""

    status: str
    offset: int
    length: int


class Ledger:
    """An output file of records, open for appending, with the index of what it holds."""

    def __init__(self, path: str, lock: _Lock):
        self.path = path
        self._lock = lock
        self._fd = -1
        self.index: dict[str, Entry] = {}
        self._places: dict[str, set[str]] = {}  # place -> its keys
        self.size = 0
        self.notes: list[str] = []  # what the reader should know about the file as it was found

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str, *, resume: bool) -> Ledger:
        """Open ``path`` for appending, locked for this run, and index its records.

        Without ``resume`` a file that already holds records is refused (status 2): vlcli never
        adds a second run to a file by accident, nor throws one away. With ``resume`` the file
        must be one vlcli wrote (its records have keys). A torn last line is cut off; a file with
        superseded or torn records is rewritten at once, one record per place.
        """
        refuse_not_regular("--output", path)  # before it is opened: a pipe would block
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # as subtitles and evidence do
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o666)
        except OSError as exc:
            raise UsageError(f"--output {path}: cannot open it ({exc.strerror or exc})") from None
        try:
            refuse_not_regular("--output", path, os.fstat(fd).st_mode)  # what was opened
            ledger = cls(path, _Lock.take(path))
        except BaseException:
            os.close(fd)
            raise
        try:
            ledger._fd = fd
            ledger._load(resume)
            return ledger
        except BaseException:
            ledger.close()
            raise

    def _load(self, resume: bool) -> None:
        with os.fdopen(os.dup(self._fd), "rb") as fh:
            fh.seek(0)
            data = fh.read()
        scan = _Scan(data)
        if data and not resume:
            raise UsageError(
                f"--output {self.path} already holds records: --resume continues it, "
                "or remove it (or give another file) to start again"
            )
        if data and not scan.index and scan.foreign:
            raise UsageError(
                f"--output {self.path} is not an output file of vlcli ask (no record with a key): "
                "refusing to add to it"
            )
        self.notes = scan.notes
        if scan.good_end < len(data):
            os.ftruncate(self._fd, scan.good_end)  # the torn last line: ignored and overwritten
        self._index(scan)
        if scan.untidy:
            self._rewrite(scan, None, set())

    # ------------------------------------------------------------ what it holds

    def status(self, key: str) -> str | None:
        entry = self.index.get(key)
        return entry.status if entry is not None else None

    def read(self, key: str) -> dict[str, Any] | None:
        """The latest record of ``key``, parsed (None when there is none)."""
        entry = self.index.get(key)
        if entry is None:
            return None
        record: dict[str, Any] = json.loads(os.pread(self._fd, entry.length, entry.offset))
        return record

    # ------------------------------------------------------------ writing

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one record: in the place of the first record it supersedes (the other records of
        its place; for a window's record, those that are not windows), else at the end.

        Appending writes the whole line at once, then syncs it; when the write fails (a full
        disk), the file is cut back to its size before, so that no torn line stays.
        """
        line = record_line(record)
        key, status = str(record["key"]), str(record["status"])
        superseded = {
            k
            for k in self._places.get(key[:PLACE], ())
            if status != "window" or self.index[k].status != "window"
        }
        if superseded:
            with os.fdopen(os.dup(self._fd), "rb") as fh:
                fh.seek(0)
                data = fh.read(self.size)
            self._rewrite(_Scan(data), line, superseded)
            return
        before = self.size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except BaseException:
            try:
                os.ftruncate(self._fd, before)
            except OSError:
                pass
            raise
        self.index[key] = Entry(status, before, len(line))
        self._places.setdefault(key[:PLACE], set()).add(key)
        self.size = before + len(line)

    def _rewrite(self, scan: _Scan, line: bytes | None, superseded: set[str]) -> None:
        """Rewrite the file through a temporary one and a rename: the records of
        :meth:`_Scan.kept`, with ``line`` in the place of the first ``superseded`` one (or at the
        end); then index it again. The lock is on another file (:class:`_Lock`): the rename
        does not release it."""
        parts: list[bytes] = []
        for key, offset, end in scan.kept():
            if key in superseded:
                if line is not None:
                    parts.append(line)
                    line = None
                continue
            parts.append(scan.data[offset:end])
        if line is not None:
            parts.append(line)
        atomic_write(self.path, b"".join(parts))
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        os.close(self._fd)
        self._fd = fd
        with os.fdopen(os.dup(fd), "rb") as fh:
            self._index(_Scan(fh.read()))

    def _index(self, scan: _Scan) -> None:
        self.index, self.size = scan.index, scan.good_end
        self._places = {}
        for key in self.index:
            self._places.setdefault(key[:PLACE], set()).add(key)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._lock.release()


class _Scan:
    """The records in a file's bytes, each read from the start of its line (its key, status).

    A record is a line that starts with its key and ends with ``}``; a line cut short by a
    newline, or by the start of another record (two writes run together), is torn: not a
    record, so its input is not done.
    """

    def __init__(self, data: bytes):
        self.data = data
        self.index: dict[str, Entry] = {}
        self.notes: list[str] = []
        self.good_end = data.rfind(b"\n") + 1  # bytes after the last newline: a torn line
        torn: list[int] = []
        foreign = 0
        places: set[str] = set()
        count = 0
        for number, key, status, start, end in _records(data, self.good_end):
            if key is None:
                if data.startswith(_START, start):
                    torn.append(number)
                elif data[start:end].strip():
                    foreign += 1
                continue
            count += 1
            places.add(key[:PLACE])
            self.index[key] = Entry(status, start, end - start)
        self.foreign = foreign > 0
        self.untidy = bool(torn) or len(places) != count  # more records than places
        if self.good_end < len(data):
            self.notes.append(
                "its last line was torn (an interrupted write): it is ignored and overwritten"
            )
        if torn:
            where = ", ".join(str(n) for n in torn[:5]) + (", ..." if len(torn) > 5 else "")
            self.notes.append(
                f"line{'s' if len(torn) > 1 else ''} {where} torn (an interrupted or interleaved "
                "write): not counted as done (answered again) and dropped from the file"
            )
        if foreign and self.index:
            plural = "s" if foreign > 1 else ""
            self.notes.append(f"{foreign} line{plural} without a record key ignored")

    def kept(self) -> list[tuple[str, int, int]]:
        """The records a tidy file holds (key, start, end), as :meth:`Ledger.append` leaves
        them: per place, its last record when that is not a window (where the place's first
        was), else the windows after its last other record (per key, the latest)."""
        records = [
            (key, status, start, end)
            for _, key, status, start, end in _records(self.data, self.good_end)
            if key is not None
        ]
        last: dict[str, int] = {}
        last_final: dict[str, int] = {}
        for n, (key, status, _, _) in enumerate(records):
            last[key[:PLACE]] = n
            if status != "window":
                last_final[key[:PLACE]] = n
        chosen: dict[str, int] = {}
        for n, (key, _, _, _) in enumerate(records):
            place = key[:PLACE]
            final = last_final.get(place, -1)
            if final == last[place]:
                chosen[place] = final
            elif n > final:
                chosen[key] = n
        return [(records[n][0], records[n][2], records[n][3]) for n in chosen.values()]


def _records(data: bytes, end: int) -> Iterator[tuple[int, str | None, str, int, int]]:
    """(line number, key, status, start, end) of each line up to ``end``; key None for a line
    that is not a whole record. A line is cut where another record starts in it (``{"key": "``
    cannot occur inside a record: its strings escape quotes): what comes before is torn."""
    number, start = 0, 0
    while start < end:
        newline = data.index(b"\n", start) + 1
        number += 1
        cut = data.find(_START, start + 1, newline)
        while cut >= 0:
            yield number, None, "", start, cut
            start, cut = cut, data.find(_START, cut + 1, newline)
        head = _HEAD.match(data, start, newline)
        if head is None:
            key, status = _slow_head(data[start:newline])
            yield number, key, status or "ok", start, newline
        elif data[newline - 2 : newline] != b"}\n":
            yield number, None, "", start, newline
        else:
            yield number, head.group(1).decode(), head.group(2).decode(), start, newline
        start = newline


class _Lock:
    """A run's hold on its output file: an advisory lock (``flock``) on ``FILE.lock`` beside it.

    Not a lock on the output file itself: a rewrite renames a new file over it, and a lock on
    the old one would then guard nothing (the next run would open and lock the new one). The
    lock file is never renamed over. It is removed at the end of the run while still locked,
    and a run that gets a lock checks that the name still leads to the file it locked (if not,
    the file was just removed: it takes the new one). The holder writes its pid in it, for the
    run that is refused.
    """

    def __init__(self, path: str, fd: int):
        self.path = path
        self._fd = fd

    @classmethod
    def take(cls, output: str) -> _Lock:
        path = output + ".lock"
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
            except OSError as exc:
                raise UsageError(
                    f"--output {output}: cannot use its lock file {path} ({exc.strerror or exc})"
                ) from None
            try:
                if cls._hold(fd, output, path):
                    return cls(path, fd)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    @staticmethod
    def _hold(fd: int, output: str, path: str) -> bool:
        """Lock ``fd`` (refused when another run holds it); False when ``path`` has moved on."""
        text = os.pread(fd, 256, 0)
        if not stat.S_ISREG(os.fstat(fd).st_mode) or (text and not _LOCK_TEXT.fullmatch(text)):
            raise UsageError(
                f"--output {output}: {path} exists and is not a lock file of vlcli's: refusing "
                "to replace it (move it away)"
            )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found = _LOCK_TEXT.fullmatch(os.pread(fd, 256, 0))
            holder = f"pid {found.group(1).decode()}" if found else "its pid not written yet"
            raise UsageError(
                f"--output {output} is in use by another vlcli run ({holder}; lock file "
                f"{path}): wait for it to end, or give another file"
            ) from None
        if not _same_file(fd, path):
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"vlcli ask: pid {os.getpid()}\n".encode(), 0)
        return True

    def release(self) -> None:
        if self._fd < 0:
            return
        if _same_file(self._fd, self.path):
            os.unlink(self.path)  # while locked: see the class docstring
        os.close(self._fd)
        self._fd = -1


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    here = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)


def _slow_head(line: bytes) -> tuple[str | None, str | None]:
    try:
        rec = json.loads(line)
    except ValueError:
        return None, None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
        return None, None
    status = rec.get("status")
    return rec["key"], status if status in STATUSES else ("failed" if "error" in rec else "ok")
