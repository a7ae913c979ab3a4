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
from vlcli.outputs.ledger import Ledger, input_facts, record_key, record_line
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


def test_rewrite_keeps_one_record_per_key_in_first_place(tmp_path: Path) -> None:
    """A retried failure takes its first record's place; windows of a finished video go."""
    out = tmp_path / "answers.jsonl"
    led = Ledger.open(str(out), resume=False)
    video = rec(3)["key"]
    led.append(rec(0))
    led.append(rec(1, "failed", error="decoder failed"))
    led.append({"key": record_key(video, 0), "status": "window", "parent": video, "window": 0})
    led.append({"key": record_key(video, 1), "status": "window", "parent": video, "window": 1})
    led.append(rec(2))
    led.append(rec(3, answer="merged"))
    led.append({"key": record_key("other", 0), "status": "window", "parent": "f" * 32})
    led.append(rec(1, answer="retried"))
    assert led.needs_rewrite()
    led.rewrite()
    assert [(r["path"], r["status"]) for r in lines(out)[:4]] == [
        ("clip0.mp4", "ok"), ("clip1.mp4", "ok"), ("clip2.mp4", "ok"), ("clip3.mp4", "ok")
    ]  # fmt: skip
    assert lines(out)[1]["answer"] == "retried"
    assert lines(out)[4]["status"] == "window"  # its video has no record yet: kept
    led.append(rec(4))  # still open, on the new file
    led.close()
    assert lines(out)[-1]["path"] == "clip4.mp4"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


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
