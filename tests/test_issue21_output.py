"""What ``vlcli ask`` writes, end to end, when the answer or a file name is not plain (issue 21):
the streamed answer reads as the model wrote it, names that are not UTF-8 keep their bytes,
a malformed answer stays one input's affair, and a user's own files are never removed.

The answers come from a scripted stand-in for an OpenAI-compatible server (``--server``): it
serves one model (the tiny Qwen2.5-VL folder, which vlcli also reads for its tokenizer and
configuration) and streams the pieces a test gives it, as vLLM streams its chunks.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import invoke

pytest_plugins = ("conftest_models",)

ROOT = Path(__file__).resolve().parents[1]
PIECES = ["The dog", " jumps ", "from 2.", "0 to 3.", "0 seconds."]


class StandIn:
    """The stand-in server's script: the pieces of the next answers (raw event lines when a
    piece is bytes) and the requests it was sent."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.pieces: list[str | bytes] = list(PIECES)
        self.requests = 0
        self.url = ""

    def stream(self) -> bytes:
        events = []
        for piece in self.pieces:
            if isinstance(piece, bytes):  # sent as it is: not necessarily UTF-8
                events.append(b'data: {"choices": [{"delta": {"content": "' + piece + b'"}}]}')
                continue
            chunk = {"model": self.model, "choices": [{"delta": {"content": piece}}]}
            events.append(b"data: " + json.dumps(chunk).encode())
        usage = {"prompt_tokens": 100, "completion_tokens": len(self.pieces)}
        events.append(b"data: " + json.dumps({"choices": [], "usage": usage}).encode())
        events.append(b"data: [DONE]")
        return b"".join(e + b"\n\n" for e in events)


@pytest.fixture
def stand_in(tiny_qwen25_path: Path) -> Iterator[StandIn]:
    script = StandIn(str(tiny_qwen25_path))

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(json.dumps({"data": [{"id": script.model}]}).encode())

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/tokenize":
                self._send(json.dumps({"count": 100}).encode())
                return
            script.requests += 1
            self._send(script.stream(), "text/event-stream")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()


def served(script: StandIn) -> tuple[str, ...]:
    return ("--server", script.url, "--model", script.model)


# ---------------------------------------------------------------- the streamed answer


def test_a_streamed_answer_reads_as_the_model_wrote_it(
    stand_in: StandIn, tiny_clip: str, tmp_path: Path
) -> None:
    """Each piece the server streams continues the line: no line break between pieces."""
    r = invoke("ask", tiny_clip, "What happens?", *served(stand_in))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("".join(PIECES) + "\n\n")
    # several inputs: each answer under its input's name, still one line each
    second = tmp_path / "second.mp4"
    shutil.copy(tiny_clip, second)
    r = invoke("ask", tiny_clip, second, "What happens?", *served(stand_in))
    assert r.exit_code == 0, r.stderr
    answers = [line for line in r.stdout.splitlines() if line.startswith("The dog")]
    assert answers == ["".join(PIECES)] * 2
    assert r.stdout.index(Path(tiny_clip).name) < r.stdout.index(answers[0])
    assert r.stdout.index(answers[0]) < r.stdout.index("second.mp4")


# ---------------------------------------------------------------- names that are not UTF-8


def test_a_name_that_is_not_utf8_is_answered_and_keeps_its_bytes(
    stand_in: StandIn, tiny_clip: str, tmp_path: Path
) -> None:
    """The record's key, the output file, --json, the subtitles' names and --resume all take a
    name with a byte that is not UTF-8 (0xff), as probe and budget do."""
    raw = os.fsencode(tmp_path) + b"/clip\xff.mp4"
    shutil.copy(tiny_clip, raw)
    name = os.fsdecode(raw)
    out, subs = tmp_path / "answers.jsonl", tmp_path / "subs"
    ask = ("ask", name, tiny_clip, "What happens?", *served(stand_in), "-o", out, "--srt", subs)
    r = invoke(*ask, "--json")
    assert r.exit_code == 0, r.stderr
    printed = [json.loads(line) for line in r.stdout.splitlines()]
    saved = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert printed == saved and [x["status"] for x in saved] == ["ok", "ok"]
    assert os.fsencode(saved[0]["path"]) == raw  # the bytes, back from the record
    assert saved[0]["answer"] == "".join(PIECES)
    other = os.fsencode(Path(tiny_clip).stem) + b".srt"
    names = [n for n in os.listdir(os.fsencode(subs)) if not n.startswith(b".")]  # no proofs
    assert sorted(names) == sorted([b"clip\xff.srt", other])
    assert saved[0]["subtitles"] == [os.path.join(str(subs), "clip\udcff.srt")]
    again = invoke(*ask, "--resume")
    assert again.exit_code == 0, again.stderr
    assert "2 of 2 inputs already have a record" in again.stderr
    assert stand_in.requests == 2 and len(out.read_text("utf-8").splitlines()) == 2


# ---------------------------------------------------------------- a malformed answer


def test_an_answer_that_is_not_valid_unicode_is_kept_with_replacement_characters(
    stand_in: StandIn, tiny_clip: str, tmp_path: Path
) -> None:
    """A lone surrogate in the server's JSON (``\\udcff``), an emoji whose two halves come in
    two chunks, and a byte that is not UTF-8: the answer is recorded, written to the subtitles
    and streamed, with U+FFFD for what cannot be read and the emoji whole; the run goes on."""
    stand_in.pieces = ["At 1 second a dog \udcff", " barks \ud83d", "\ude00 then ", b"\xff", "."]
    want = "At 1 second a dog \ufffd barks \U0001f600 then \ufffd."
    second = tmp_path / "second.mp4"
    shutil.copy(tiny_clip, second)
    out, subs = tmp_path / "answers.jsonl", tmp_path / "subs"
    r = invoke("ask", tiny_clip, second, "What happens?", *served(stand_in), "-o", out,
               "--srt", subs)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    saved = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [x["status"] for x in saved] == ["ok", "ok"]
    assert [x["answer"] for x in saved] == [want, want]
    assert all(want in (subs / f"{Path(x['path']).stem}.srt").read_text("utf-8") for x in saved)
    assert r.stdout.splitlines().count(want) == 2  # streamed as recorded
    assert r.stderr.count("1 character that is not valid Unicode") == 2  # the lone \udcff


# ---------------------------------------------------------------- files vlcli did not write


def test_a_users_own_subtitle_file_is_never_removed_or_replaced(
    stand_in: StandIn, tiny_clip: str, tmp_path: Path
) -> None:
    """A hand-made mine.srt, even in exactly vlcli's form, stops the run (status 2) and stays;
    a file vlcli wrote is replaced, and removed by an answer with no times, with its proof."""
    hand_made = "1\n00:00:01,000 --> 00:00:02,000\nMine\n"
    mine = tmp_path / "mine.srt"
    mine.write_text(hand_made)
    stand_in.pieces = ["Nothing happens."]
    r = invoke("ask", tiny_clip, "What happens?", *served(stand_in), "--srt", mine)
    assert r.exit_code == 2 and "vlcli did not write it" in r.stderr
    assert mine.read_text() == hand_made and stand_in.requests == 0
    # written by vlcli, then an answer with no times: that file goes
    ours = tmp_path / "ours.srt"
    stand_in.pieces = list(PIECES)
    r = invoke("ask", tiny_clip, "What happens?", *served(stand_in), "--srt", ours)
    assert r.exit_code == 0, r.stderr
    assert "The dog jumps" in ours.read_text()
    stand_in.pieces = ["Nothing happens."]
    r = invoke("ask", tiny_clip, "What happens?", *served(stand_in), "--srt", ours)
    assert r.exit_code == 0, r.stderr
    assert "earlier run was removed" in r.stderr and not ours.exists()
    assert os.listdir(tmp_path) == ["mine.srt"]  # no proof left behind


def test_an_evidence_frame_replaces_no_file_vlcli_did_not_write(
    tiny_clip: str, tmp_path: Path
) -> None:
    from vlcli.errors import InputError
    from vlcli.run.prompt import save_evidence
    from vlcli.times.parse import TimeSpan

    spans = [TimeSpan(1.0, 1.0, "a dog", source_start_s=1.0, source_end_s=1.0)]
    (saved,) = save_evidence(tiny_clip, spans, str(tmp_path), "clip")
    assert Path(saved).name == "clip_00-00-01.000.png"
    assert save_evidence(tiny_clip, spans, str(tmp_path), "clip") == [saved]  # its own: again
    Path(saved).write_bytes(b"my own picture")
    with pytest.raises(InputError, match="vlcli did not write it"):
        save_evidence(tiny_clip, spans, str(tmp_path), "clip")
    assert Path(saved).read_bytes() == b"my own picture"


def test_an_answer_whose_times_all_lie_outside_the_clip_says_so(
    stand_in: StandIn, tiny_clip: str, tmp_path: Path
) -> None:
    """25 s of a 3 s clip: no cue, so no subtitle file; the line said 'the answer states no
    times' of an answer that states one."""
    stand_in.pieces = ["At 25 seconds a dog barks."]
    subs = tmp_path / "clip.srt"
    r = invoke("ask", tiny_clip, "What happens?", *served(stand_in), "--srt", subs, "--json")
    assert r.exit_code == 0, r.stderr
    (record,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert [t["outside"] for t in record["times"]] == [True] and record["subtitles"] == []
    assert not subs.exists()
    assert "states no time inside the clip: no " in r.stderr
    assert "states no times" not in r.stderr


def test_chat_s_subtitles_follow_the_same_rules(
    stand_in: StandIn, tiny_clip: str, tmp_path: Path
) -> None:
    """`/srt` in vlcli chat: no cue past the clip's end (an instant at 2.5 s of a 3 s clip ran
    to 4.5 s), and no empty file for an answer whose times all lie outside the clip."""
    from typer.testing import CliRunner

    from vlcli.cli.app import app

    def chat(answer: str, srt: Path) -> Any:
        stand_in.pieces = [answer]
        r = CliRunner().invoke(app, ["chat", tiny_clip, *served(stand_in)],
                               input=f"What happens?\n/srt {srt}\n")  # fmt: skip
        assert r.exit_code == 0, r.stderr
        return r

    late, outside = tmp_path / "late.srt", tmp_path / "outside.srt"
    chat("At 2.5 seconds a dog barks.", late)
    assert late.read_text() == "1\n00:00:02,500 --> 00:00:03,000\nAt 2.5 seconds a dog barks.\n"
    r = chat("At 25 seconds a dog barks.", outside)
    assert not outside.exists() and "states no time inside the clip" in r.stderr
