"""The output file of ``vlcli ask -o FILE``: one JSON record per input, and what ``--resume`` reads.

Each record starts with its ``key`` and ``status``::

    {"key": "3f9c...", "status": "ok", "path": "clips/a.mp4", ...}

``key`` (:func:`record_key`) is made from everything that decides the answer: the input's path,
size and modification time, the question, task and system prompt, the sampling options, the
generation settings, the backend's identity (engine, model, revision, dtype...) and, for a
window of a long video, the window. ``status`` is ``ok``, ``failed`` (the record has an
``error``) or ``window`` (one finished window of a video still in progress; folded into the
video's own record when the file is rewritten).

Writing (:meth:`Ledger.append`): the whole line in one ``write`` on a file opened for appending,
then ``fsync``; if the write fails half-way the file is cut back to where it was. A torn last
line (a crash or a kill in the middle of a write, by this or an older writer) is ignored when
the file is read and cut off before anything is appended.

Reading (:meth:`Ledger.open`) is fast because a record's key and status are read from the start
of its line without parsing the rest; only a window record is parsed, when it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vlcli.errors import UsageError
from vlcli.outputs.files import atomic_write
from vlcli.outputs.text import json_text

STATUSES = ("ok", "failed", "window")
_HEAD = re.compile(rb'\{"key": "([0-9a-f]{32})", "status": "(ok|failed|window)"')


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


def record_line(record: Mapping[str, Any]) -> bytes:
    """One record as the bytes of one line: ``key`` and ``status`` first, no NaN, UTF-8 (a name
    that is not valid UTF-8 written as ``--json`` writes it: :func:`vlcli.outputs.text.json_text`)."""
    if "key" not in record or record.get("status") not in STATUSES:
        raise ValueError("a record needs a key and a status first")
    ordered = {"key": record["key"], "status": record["status"], **record}
    return (json_text(ordered) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Entry:
    """Where the latest record of a key is in the file."""

    status: str
    offset: int
    length: int


class Ledger:
    """An output file of records, open for appending, with the index of what it holds."""

    def __init__(self, path: str, fd: int, index: dict[str, Entry], size: int, notes: list[str]):
        self.path = path
        self._fd = fd
        self.index = index
        self.size = size
        self.notes = notes  # what the reader should know about the file as it was found
        self.superseded = 0  # records whose key has a later record (a retry)
        self.appended = 0

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str, *, resume: bool) -> Ledger:
        """Open ``path`` for appending and index its records.

        Without ``resume`` a file that already holds records is refused (status 2): vlcli never
        adds a second run to a file by accident, nor throws one away. With ``resume`` the file
        must be one vlcli wrote (its records have keys). A torn last line is cut off.
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise UsageError(f"--output {path}: cannot open it ({exc.strerror or exc})") from None
        try:
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read()
            index, good_end, notes, superseded, foreign = _index(data)
            if data and not resume:
                raise UsageError(
                    f"--output {path} already holds records: --resume continues it, "
                    "or remove it (or give another file) to start again"
                )
            if data and not index and foreign:
                raise UsageError(
                    f"--output {path} is not an output file of vlcli ask (no record with a key): "
                    "refusing to add to it"
                )
            if good_end < len(data):
                os.ftruncate(fd, good_end)  # the torn last line: ignored and overwritten
            ledger = cls(path, fd, index, good_end, notes)
            ledger.superseded = superseded
            return ledger
        except BaseException:
            os.close(fd)
            raise

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
        """Append one record as one whole line, then sync it to the disk.

        When the write fails (a full disk), the file is cut back to its size before, so that no
        torn line stays, and the error is raised.
        """
        line = record_line(record)
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
        key = str(record["key"])
        if key in self.index:
            self.superseded += 1
        self.index[key] = Entry(str(record["status"]), before, len(line))
        self.size = before + len(line)
        self.appended += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # ------------------------------------------------------------ rewriting

    def needs_rewrite(self) -> bool:
        """True when the file holds superseded records or finished videos' window records."""
        return self.superseded > 0 or any(e.status == "window" for e in self.index.values())

    def rewrite(self) -> None:
        """Rewrite the file with one record per key (its latest, at the place of its first), less
        the window records of videos whose own record is in, through a temporary file and a
        rename; the ledger stays open on the new file. After a whole run the file is then one
        record per input, in input order.
        """
        with os.fdopen(os.dup(self._fd), "rb") as fh:
            fh.seek(0)
            data = fh.read(self.size)
        order: list[str] = []
        latest: dict[str, tuple[str, bytes]] = {}
        parents: dict[str, str] = {}  # window record key -> its video's key
        for line in data.splitlines(keepends=True):
            head = _HEAD.match(line)
            if head is not None:
                key, status = head.group(1).decode(), head.group(2).decode()
            else:
                key, status = _slow_head(line)
                if key is None:
                    continue
                status = status or "ok"
            if status == "window":
                try:
                    parents[key] = str(json.loads(line).get("parent"))
                except ValueError:
                    pass
            if key not in latest:
                order.append(key)
            latest[key] = (status, line)
        final = {k for k, (status, _) in latest.items() if status != "window"}
        body = b"".join(
            latest[k][1]
            for k in order
            if not (latest[k][0] == "window" and parents.get(k) in final)
        )
        atomic_write(self.path, body)
        self.close()
        reopened = Ledger.open(self.path, resume=True)
        self._fd, self.index, self.size = reopened._fd, reopened.index, reopened.size
        self.superseded = 0


def _index(data: bytes) -> tuple[dict[str, Entry], int, list[str], int, bool]:
    """Index whole lines: key -> latest entry; the end of the last whole line; notes; the number
    of superseded records; whether lines without keys were met."""
    index: dict[str, Entry] = {}
    notes: list[str] = []
    superseded = 0
    foreign = False
    good_end = data.rfind(b"\n") + 1  # bytes after the last newline: a torn line
    if good_end < len(data):
        notes.append("its last line was torn (an interrupted write): it is ignored and overwritten")
    offset = 0
    bad = 0
    while offset < good_end:
        end = data.index(b"\n", offset) + 1
        head = _HEAD.match(data, offset, end)
        if head is not None:
            key, status = head.group(1).decode(), head.group(2).decode()
        else:
            key, status = _slow_head(data[offset:end])
        if key is None:
            if data[offset:end].strip():
                bad += 1
                foreign = True
        else:
            if key in index:
                superseded += 1
            index[key] = Entry(status or "ok", offset, end - offset)
        offset = end
    if bad and index:
        notes.append(f"{bad} line{'s' if bad > 1 else ''} without a record key ignored")
    return index, good_end, notes, superseded, foreign


def _slow_head(line: bytes) -> tuple[str | None, str | None]:
    try:
        rec = json.loads(line)
    except ValueError:
        return None, None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
        return None, None
    status = rec.get("status")
    return rec["key"], status if status in STATUSES else ("failed" if "error" in rec else "ok")
