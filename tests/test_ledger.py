"""The output file that resumes (vlcli.outputs.ledger) and the file writers (vlcli.outputs.files)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vlcli.errors import InputError, UsageError
from vlcli.outputs import ledger as ledger_mod
from vlcli.outputs.files import (
    SubtitleTarget,
    atomic_write,
    check_not_input,
    check_targets,
    file_ids,
    output_stems,
    proof_path,
    remove_owned,
    subtitle_targets,
    write_owned,
    written_by_vlcli,
)
from vlcli.outputs.ledger import Ledger, input_facts, placed_key, record_key, record_line
from vlcli.outputs.subtitles import to_srt, to_vtt
from vlcli.times.parse import TimeSpan


def rec(n: int, status: str = "ok", **extra: Any) -> dict[str, Any]:
    return {"key": record_key("input", n), "status": status, "path": f"clip{n}.mp4", **extra}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# ---------------------------------------------------------------- keys


def test_key_changes_with_what_decides_the_answer(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x" * 10)
    base = input_facts(str(clip))
    assert base["size"] == 10 and Path(base["path"]).is_absolute()
    k = record_key(base, "q?")
    assert k == record_key(dict(base), "q?") and len(k) == 32
    assert record_key(base, "another question") != k
    clip.write_bytes(b"y" * 11)  # the file changed: its size (and time) with it
    assert record_key(input_facts(str(clip)), "q?") != k
    assert "size" not in input_facts(str(tmp_path / "missing.mp4"))


def test_record_line_starts_with_key_and_status() -> None:
    line = record_line({"path": "a.mp4", "status": "ok", "key": "0" * 32, "answer": "ça"})
    assert line.startswith(b'{"key": "' + b"0" * 32 + b'", "status": "ok", ')
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and "ça".encode() in line
    with pytest.raises(ValueError):
        record_line({"key": "0" * 32, "status": "done"})
    with pytest.raises(ValueError):  # no NaN in a record a strict reader must read
        record_line({"key": "0" * 32, "status": "ok", "x": float("nan")})


# ---------------------------------------------------------------- appending and reading


def test_append_then_resume_index(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    led = Ledger.open(str(out), resume=False)
    for n in range(3):
        led.append(rec(n, "failed" if n == 1 else "ok"))
    led.close()
    assert [r["path"] for r in lines(out)] == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    again = Ledger.open(str(out), resume=True)
    assert again.status(rec(0)["key"]) == "ok" and again.status(rec(1)["key"]) == "failed"
    assert again.status(record_key("input", 9)) is None
    assert again.read(rec(2)["key"])["path"] == "clip2.mp4"  # type: ignore[index]
    again.close()


def test_an_existing_file_needs_resume_and_must_be_a_vlcli_one(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    Ledger.open(str(out), resume=False).close()  # an empty file is fine
    led = Ledger.open(str(out), resume=False)
    led.append(rec(0))
    led.close()
    with pytest.raises(UsageError, match="--resume"):
        Ledger.open(str(out), resume=False)
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text('{"path": "a.mp4", "answer": "no key"}\n')
    with pytest.raises(UsageError, match="not an output file of vlcli"):
        Ledger.open(str(foreign), resume=True)
    assert foreign.read_text() == '{"path": "a.mp4", "answer": "no key"}\n'  # untouched


def test_a_torn_last_line_is_ignored_and_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    good = record_line(rec(0)) + record_line(rec(1))
    torn = record_line(rec(2))[:40]  # a writer killed half-way through its line
    out.write_bytes(good + torn)
    led = Ledger.open(str(out), resume=True)
    assert led.status(rec(1)["key"]) == "ok" and led.status(rec(2)["key"]) is None
    assert any("torn" in note for note in led.notes)
    assert out.read_bytes() == good  # cut off before anything is appended
    led.append(rec(2))
    led.close()
    assert [r["path"] for r in lines(out)] == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]


def test_a_failed_write_leaves_no_torn_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk in the middle of a record: the file is cut back to its last whole line."""
    out = tmp_path / "answers.jsonl"
    led = Ledger.open(str(out), resume=False)
    led.append(rec(0))
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        if fd == led._fd:
            real_write(fd, bytes(data[:10]))
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(ledger_mod.os, "write", half_then_full)
    with pytest.raises(OSError, match="No space"):
        led.append(rec(1))
    monkeypatch.undo()
    led.close()
    assert out.read_bytes() == record_line(rec(0))


def test_resume_reads_keys_without_parsing_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 records are indexed from the start of each line: no record is parsed as JSON
    (what makes resuming fast; `bench_batch.py --resume` times it)."""
    out = tmp_path / "answers.jsonl"
    body = "x" * 2000  # records are a few kB
    out.write_bytes(b"".join(record_line(rec(n, answer=body)) for n in range(10_000)))
    parsed: list[bytes] = []
    real_loads = json.loads
    monkeypatch.setattr(
        ledger_mod.json, "loads", lambda s, *a, **k: parsed.append(s) or real_loads(s)
    )
    led = Ledger.open(str(out), resume=True)
    assert len(led.index) == 10_000 and parsed == []
    assert led.read(rec(9_999)["key"])["path"] == "clip9999.mp4"  # type: ignore[index]
    assert len(parsed) == 1
    led.close()


def test_a_file_found_with_superseded_records_is_tidied_when_opened(tmp_path: Path) -> None:
    """Two records of one key (written by two runs at once before the lock): the latest stays,
    in the place of the first; nothing else moves."""
    out = tmp_path / "answers.jsonl"
    out.write_bytes(
        record_line(rec(0))
        + record_line(rec(1, "failed", error="decoder failed"))
        + record_line(rec(2))
        + record_line(rec(1, answer="retried"))
    )
    led = Ledger.open(str(out), resume=True)
    assert [(r["path"], r["status"]) for r in lines(out)] == [
        ("clip0.mp4", "ok"), ("clip1.mp4", "ok"), ("clip2.mp4", "ok")
    ]  # fmt: skip
    assert lines(out)[1]["answer"] == "retried" and led.status(rec(1)["key"]) == "ok"
    led.append(rec(3))  # still open, on the new file
    led.close()
    assert lines(out)[-1]["path"] == "clip3.mp4"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a video's old record, then windows of its new version: the windows are what is current
    video = version(5, 2)["key"]
    windows = [
        {"key": placed_key(("input", 5), (2, w)), "status": "window", "parent": video}
        for w in range(2)
    ]
    out.write_bytes(b"".join(record_line(r) for r in [version(5, 1), rec(6), *windows]))
    Ledger.open(str(out), resume=True).close()
    assert [r["status"] for r in lines(out)] == ["ok", "window", "window"]
    assert lines(out)[0]["path"] == "clip6.mp4"


# ---------------------------------------------------------------- writers


def test_atomic_write_leaves_the_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "clip.srt"
    target.write_text("old\n")

    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("vlcli.outputs.files.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, "new\n")
    monkeypatch.undo()
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.srt"]  # no temporary left
    atomic_write(tmp_path / "sub" / "clip.vtt", "WEBVTT\n")
    assert (tmp_path / "sub" / "clip.vtt").read_text() == "WEBVTT\n"


def test_output_names_come_from_the_path_relative_to_the_argument(tmp_path: Path) -> None:
    (tmp_path / "clips" / "a").mkdir(parents=True)
    (tmp_path / "clips" / "b").mkdir()
    a, b = tmp_path / "clips" / "a" / "clip.mp4", tmp_path / "clips" / "b" / "clip.mp4"
    top = tmp_path / "clips" / "clip.mov"
    for p in (a, b, top):
        p.write_bytes(b"")
    folder = str(tmp_path / "clips")
    assert output_stems([folder], [str(a), str(b), str(top)]) == ["a/clip", "b/clip", "clip"]
    # the same names whichever of them a run still has to do, and in any order of finishing
    assert output_stems([folder], [str(b)]) == ["b/clip"]
    glob_arg = str(tmp_path / "clips" / "*" / "clip.mp4")
    assert output_stems([glob_arg], [str(a), str(b)]) == ["a/clip", "b/clip"]
    # files given one by one: their names, a later namesake numbered
    assert output_stems([str(a), str(b)], [str(a), str(b)]) == ["clip", "clip-2"]
    assert output_stems(["-"], [str(a), str(top)]) == ["clip", "clip-2"]


def test_only_files_vlcli_can_prove_it_wrote_are_replaced_or_removed(tmp_path: Path) -> None:
    """A file in exactly the form vlcli writes is not proof: the SHA-256 kept beside it is."""
    spans = [TimeSpan(1.0, 2.0, "A dog.", source_start_s=1.0, source_end_s=2.0)]
    mine, ours = tmp_path / "mine.srt", tmp_path / "ours.srt"
    mine.write_text(to_srt(spans))  # hand-made, byte for byte what vlcli would write
    assert not written_by_vlcli(mine) and not remove_owned(mine)
    with pytest.raises(InputError, match="vlcli did not write it"):
        write_owned(mine, to_srt(spans))
    assert mine.read_text() == to_srt(spans)
    write_owned(ours, to_srt(spans))
    assert written_by_vlcli(ours) and proof_path(ours).name == ".ours.srt.written-by-vlcli"
    write_owned(ours, to_vtt(spans))  # its own file: replaced, and proven again
    assert written_by_vlcli(ours) and ours.read_text() == to_vtt(spans)
    ours.write_text(to_vtt(spans) + "my own line\n")  # changed by hand since: not vlcli's
    assert not written_by_vlcli(ours) and not remove_owned(ours) and ours.exists()
    ours.write_text(to_vtt(spans))
    assert remove_owned(ours) and not ours.exists() and not proof_path(ours).exists()
    empty = tmp_path / "empty.srt"
    empty.write_text("")  # nothing to lose: written over, never removed
    assert not remove_owned(empty)
    write_owned(empty, to_srt(spans))
    assert written_by_vlcli(empty)


def test_targets_that_would_destroy_or_clash_are_refused(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"video bytes")
    one = [str(clip)]
    stems = ["clip"]

    def refused(
        srt: str | None, vtt: str | None, output: str | None = None, evidence: str | None = None
    ) -> str:
        with pytest.raises(UsageError) as caught:
            check_targets(one, stems, subtitle_targets(srt, vtt, False), output, evidence)
        return caught.value.message

    assert "is an input" in refused(str(clip), None)
    assert "is an input" in refused(None, None, output=str(clip))
    assert "also the target of --srt" in refused(str(tmp_path / "x.srt"), str(tmp_path / "x.srt"))
    assert "also the target of --output" in refused(
        str(tmp_path / "x.srt"), None, output=str(tmp_path / "x.srt")
    )
    (tmp_path / "notes.srt").write_text("my own notes\n")
    assert "vlcli did not write it" in refused(str(tmp_path / "notes.srt"), None)
    (tmp_path / "mine.srt").write_text(to_srt([TimeSpan(1, 2, "x")]))  # in vlcli's form: not proof
    assert "vlcli did not write it" in refused(str(tmp_path / "mine.srt"), None)
    assert "not a folder" in refused(None, None, evidence=str(clip))
    assert (
        clip.read_bytes() == b"video bytes"
        and (tmp_path / "notes.srt").read_text() == "my own notes\n"
    )
    # a subtitle file of vlcli's is replaced; a folder holds one file per input
    write_owned(tmp_path / "ours.srt", to_srt([TimeSpan(1, 2, "x")]))
    check_targets(one, stems, subtitle_targets(str(tmp_path / "ours.srt"), None, False), None, None)
    out = tmp_path / "subs"
    check_targets(
        one, stems, subtitle_targets(str(out), str(out), True), str(tmp_path / "a.jsonl"), None
    )
    (tmp_path / "answers.jsonl").write_text(record_line(rec(0)).decode())
    with pytest.raises(UsageError, match="--resume"):
        check_targets(one, stems, [], str(tmp_path / "answers.jsonl"), None)
    check_targets(one, stems, [], str(tmp_path / "answers.jsonl"), None, resume=True)


def test_folder_targets_check_each_input_s_file(tmp_path: Path) -> None:
    """`--srt clips/` next to the videos: an existing clip.srt that is not vlcli's stops the run."""
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(b"v")
    (clips / "b.mp4").write_bytes(b"v")
    (clips / "b.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\r\nHand-made\r\n")
    paths = [str(clips / "a.mp4"), str(clips / "b.mp4")]
    targets = [SubtitleTarget("srt", str(clips), True)]
    with pytest.raises(UsageError, match="b.srt exists"):
        check_targets(paths, ["a", "b"], targets, None, None)
    with pytest.raises(InputError, match="is an input"):
        check_not_input(clips / "a.mp4", file_ids(paths))


# ---------------------------------------------------------------- what may be a ledger (issue 21)


@pytest.mark.parametrize("kind", ["device", "pipe"])
def test_a_device_or_a_pipe_is_refused_without_reading_it(tmp_path: Path, kind: str) -> None:
    """`-o /dev/full` was read as an old ledger (memory without end), a pipe hung: refused."""
    if kind == "device":
        target = "/dev/null"
    else:
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    with pytest.raises(UsageError, match=f"--output {target} is not a regular file \\(a {kind}"):
        Ledger.open(target, resume=True)
    with pytest.raises(UsageError, match=f"--output {target} is not a regular file"):
        check_targets(["x.mp4"], ["x"], [], target, None, resume=True)


# ---------------------------------------------------------------- one run at a time (issue 21)


def test_a_second_run_on_one_file_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    first = Ledger.open(str(out), resume=False)
    with pytest.raises(UsageError, match=f"in use by another vlcli run \\(pid {os.getpid()}"):
        Ledger.open(str(out), resume=True)
    first.append(rec(0))
    first.append(rec(0, answer="again"))  # replaces the file: the lock must hold across that
    with pytest.raises(UsageError, match="in use by another vlcli run"):
        Ledger.open(str(out), resume=True)
    first.close()
    second = Ledger.open(str(out), resume=True)  # free again once the first run ends
    second.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.jsonl"]  # no lock file left


def test_the_lock_is_held_across_processes(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "answers.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from vlcli.outputs.ledger import Ledger; "
         f"led = Ledger.open({str(out)!r}, resume=False); print('held', flush=True); "
         "sys.stdin.read(); led.close()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(UsageError, match=f"pid {holder.pid}\\b"):
            Ledger.open(str(out), resume=True)
    finally:
        holder.communicate("")
    Ledger.open(str(out), resume=True).close()


def test_someone_else_s_file_at_the_lock_s_name_is_not_touched(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    mine = tmp_path / "answers.jsonl.lock"
    mine.write_text("my notes\n")
    with pytest.raises(UsageError, match="answers.jsonl.lock"):
        Ledger.open(str(out), resume=False)
    assert mine.read_text() == "my notes\n"


# ---------------------------------------------------------------- one record per input (issue 21)


def test_a_torn_line_in_the_middle_is_not_done_and_said(tmp_path: Path) -> None:
    """A writer killed half-way, then another record appended after it on the same line."""
    out = tmp_path / "answers.jsonl"
    torn = record_line(rec(1))[:50]
    out.write_bytes(record_line(rec(0)) + torn + record_line(rec(2)) + record_line(rec(3)))
    led = Ledger.open(str(out), resume=True)
    assert led.status(rec(1)["key"]) is None  # not done: answered again
    assert [led.status(rec(n)["key"]) for n in (0, 2, 3)] == ["ok", "ok", "ok"]
    assert any("torn" in note and "line 2" in note for note in led.notes)
    led.append(rec(1))
    led.close()
    assert [r["path"] for r in lines(out)] == ["clip0.mp4", "clip2.mp4", "clip3.mp4", "clip1.mp4"]
    out.write_bytes(record_line(rec(0)) + torn + b"\n" + record_line(rec(2)))
    led = Ledger.open(str(out), resume=True)  # cut off by a newline: torn too
    assert led.status(rec(1)["key"]) is None and any("torn" in n for n in led.notes)
    led.close()


def version(n: int, v: int, status: str = "ok", **extra: Any) -> dict[str, Any]:
    """Record ``n`` of version ``v`` of its input (a file that changed has a new version)."""
    return {"key": placed_key(("input", n), v), "status": status, "path": f"clip{n}.mp4", **extra}


def test_a_new_version_replaces_the_old_record_in_its_place(tmp_path: Path) -> None:
    """A changed input, a retried failure, a video over its windows: never two records for one
    input, even between two appends (what an interrupt leaves)."""
    out = tmp_path / "answers.jsonl"
    led = Ledger.open(str(out), resume=False)
    for n in range(3):
        led.append(version(n, 1, "failed" if n == 2 else "ok"))
    led.append(version(1, 2, answer="the file changed"))
    assert [(r["path"], r.get("answer")) for r in lines(out)] == [
        ("clip0.mp4", None), ("clip1.mp4", "the file changed"), ("clip2.mp4", None)
    ]  # fmt: skip
    assert led.status(version(1, 1)["key"]) is None and led.status(version(1, 2)["key"]) == "ok"
    led.append(version(2, 1, answer="retried"))
    assert [r.get("answer") for r in lines(out)] == [None, "the file changed", "retried"]
    video = version(3, 1)["key"]
    for w in range(2):
        led.append({"key": placed_key(("input", 3), (1, w)), "status": "window", "parent": video})
    assert [r["status"] for r in lines(out)] == ["ok", "ok", "ok", "window", "window"]
    led.append(version(3, 1, answer="merged"))
    assert [r.get("answer") for r in lines(out)] == [None, "the file changed", "retried", "merged"]
    led.append(version(4, 1))  # still open, on the new file
    led.close()
    assert len(lines(out)) == 5 and not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
