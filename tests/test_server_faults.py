"""A long run outlives its server (issue 20): retries, patience, one input's failure kept to it.

A real HTTP server on 127.0.0.1 stands in for vLLM, scripted to fail: it answers 503, drops the
connection (before answering, or midway through a streamed answer), refuses one request with
400, or goes away altogether. The model's files are a tiny random Qwen2.5-VL (vlcli plans and
counts tokens with them, as it does with a real server's model); the inputs are small images.
The waits are made tiny (the backoff's bounds, ``--server-patience``); the one wait whose
length is asserted (``Retry-After``) goes through an injected clock and sleep.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import invoke
from helpers_media import make_clip, make_image

from vlcli.backends.vllm import patience
from vlcli.backends.vllm.client import ServerBusy, ServerClient, chat_request, retry_after_s
from vlcli.backends.vllm.patience import Patience
from vlcli.backends.vllm.streaming import stream_chat
from vlcli.errors import ExitStatus, ServerGone

pytest_plugins = ("conftest_models",)


def _media_key(body: dict[str, Any]) -> str:
    """Which input a chat request is for: a digest of its image or video."""
    part = body["messages"][-1]["content"][0]
    url = (part.get("image_url") or part["video_url"])["url"]
    return hashlib.sha1(url.encode()).hexdigest()[:8]


def _sse(*events: Any) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)


def _chunk(text: str) -> dict[str, Any]:
    return {"model": "tiny", "choices": [{"delta": {"content": text}, "finish_reason": None}]}


class Scripted:
    """The stand-in server's state: what the next chat requests get (``script``, in order;
    then full answers), whether it is ``down`` (every connection dropped unanswered), and
    which inputs it answered in full (``answered``, by :func:`_media_key`). ``served`` is its
    ``/v1/models`` entry, answered after the statuses of ``listing`` (in order: a 503 while it
    restarts); ``/tokenize`` drops the connection while ``tokenize_drops`` lasts."""

    def __init__(self, root: Path):
        self.served = {"id": "tiny", "root": str(root), "max_model_len": 32768}
        self.script: list[tuple[Any, ...]] = []
        self.listing: list[tuple[int, str]] = []  # (status, message) before the model list
        self.listed = 0  # /v1/models requests received
        self.tokenize_drops = 0
        self.tokenize_status: int | None = None  # every /tokenize answered with this status
        self.tokenized = 0  # /tokenize requests received
        self.down = False
        self.down_after: int | None = None  # answers after which it goes down by itself
        self.answered: list[str] = []
        self.chats = 0  # chat requests received
        self.health = 0  # /health requests received
        self.lock = threading.Lock()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length)) if length else None
        with self.lock:
            if self.down:
                h.close_connection = True  # no answer at all: the connection is dropped
                return
            if h.path == "/health":
                self.health += 1
                return _send(h, 200, b"")
            if h.path == "/v1/models":
                self.listed += 1
                if self.listing:
                    code, message = self.listing.pop(0)
                    return _send(h, code, json.dumps({"error": {"message": message}}).encode())
                return _send(h, 200, json.dumps({"data": [self.served]}).encode())
            if h.path == "/tokenize":
                self.tokenized += 1
                if self.tokenize_status is not None:
                    return _send(h, self.tokenize_status, b'{"error": {"message": "broken"}}')
                self.tokenize_drops -= 1
                if self.tokenize_drops >= 0:
                    h.close_connection = True
                    return None
                return _send(h, 200, json.dumps({"count": 20}).encode())
            self.chats += 1
            action = self.script.pop(0) if self.script else ("answer",)
        self._chat(h, body, action)

    def _chat(self, h: BaseHTTPRequestHandler, body: Any, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "status":  # ("status", code, message, headers)
            error = {"error": {"message": action[2], "code": action[1]}}
            return _send(h, action[1], json.dumps(error).encode(), action[3])
        if kind == "drop":  # the connection dropped before any answer
            h.close_connection = True
            return None
        key = _media_key(body)
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.end_headers()
        if kind == "event":  # ("event", obj): one event of the test's making, then the end
            h.wfile.write(_sse(action[1]) + b"data: [DONE]\n\n")
            return None
        if kind == "cut":  # part of the answer, then the connection drops
            h.wfile.write(_sse(_chunk("half an ans")))
            h.wfile.flush()
            h.close_connection = True
            return None
        with self.lock:  # before the answer goes: the run may be over once it has arrived
            self.answered.append(key)
            self.down = self.down or len(self.answered) == self.down_after
        usage = {"model": "tiny", "choices": [], "usage": {"completion_tokens": 3}}
        h.wfile.write(_sse(_chunk(f"answer {key}"), usage) + b"data: [DONE]\n\n")
        return None


def _send(h: BaseHTTPRequestHandler, code: int, data: bytes, headers: Any = None) -> None:
    h.send_response(code)
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


@pytest.fixture
def server(tiny_qwen25_path: Path) -> Iterator[tuple[str, Scripted]]:
    scripted = Scripted(tiny_qwen25_path)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            scripted.handle(self)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", scripted
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def quick_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff of a few milliseconds, so that a run with retries takes no time."""
    monkeypatch.setattr(patience, "FIRST_WAIT_S", 0.002)
    monkeypatch.setattr(patience, "LONGEST_WAIT_S", 0.01)


@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    return [make_image(tmp_path / f"img{i}.png", (56 + 28 * i, 56)) for i in range(4)]


def _ask(url: str, inputs: list[str], *extra: Any) -> Any:
    return invoke("ask", *inputs, "What is it?", "--server", url, "--json", *extra)


def _records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


# ---------------------------------------------------------------- retried, and every record made


def test_503_on_the_first_request_and_mid_run_are_retried(
    server: Any, images: list[str], quick_waits: None
) -> None:
    url, scripted = server
    scripted.script = [("status", 503, "server restarting", {}), ("answer",)]
    scripted.script += [("status", 503, "server restarting", {}), ("status", 502, "bad gw", {})]
    r = _ask(url, images)
    assert r.exit_code == 0, r.stderr
    recs = _records(r.stdout)
    assert [rec["path"] for rec in recs] == images
    assert all(rec["answer"].startswith("answer ") for rec in recs)
    assert len(set(scripted.answered)) == len(images) == len(scripted.answered)
    assert scripted.chats == len(images) + 3
    assert "waiting for the server (503 server restarting), 0 s of 300" in r.stderr
    assert "waiting for the server (502 bad gw)" in r.stderr


def test_a_server_restarting_when_the_run_begins_is_waited_for(
    server: Any, images: list[str], quick_waits: None
) -> None:
    """Its first request, the model list, answered 503 twice (vLLM, or the proxy in front of
    it, while it restarts): waited for as any request, then every input answered."""
    url, scripted = server
    scripted.listing = [(503, "server restarting"), (503, "server restarting")]
    r = _ask(url, images[:2])
    assert r.exit_code == 0, r.stderr
    assert [rec["path"] for rec in _records(r.stdout)] == images[:2]
    assert scripted.listed == 3
    assert r.stderr.count("waiting for the server (503 server restarting)") == 2


def test_a_server_that_refuses_the_run_s_first_request_is_said_at_once(
    images: list[str], quick_waits: None
) -> None:
    """No server at the address (most often a mistyped one): one line, no waiting, status 4;
    a server that answers the model list with a refusal that is no "not now" (401): the same."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _ask(f"http://127.0.0.1:{port}", images[:1], "--server-patience", "300")
    assert r.exit_code == ExitStatus.MODEL, r.stderr
    assert "waiting for the server" not in r.stderr
    assert f"cannot reach the server at http://127.0.0.1:{port}" in r.stderr


def test_a_model_list_refused_with_401_is_said_at_once(
    server: Any, images: list[str], quick_waits: None
) -> None:
    url, scripted = server
    scripted.listing = [(401, "wrong key")]
    r = _ask(url, images[:1])
    assert r.exit_code == ExitStatus.MODEL, r.stderr
    assert "waiting for the server" not in r.stderr and "wants an API key" in r.stderr
    assert scripted.listed == 1 and scripted.chats == 0


@pytest.mark.parametrize("kind", ["image", "video"])
def test_budget_with_a_server_imports_no_torch(
    server: Any, images: list[str], tmp_path: Path, kind: str
) -> None:
    """budget --server asks the server what it serves and plans with the model's files (here)
    without torch, transformers or torchvision: the vLLM engine is a client."""
    url, scripted = server
    media = images[0] if kind == "image" else make_clip(tmp_path / "c.mp4", size=(160, 96), fps=10, seconds=2)
    code = (
        "import sys; from vlcli.cli.app import main\n"
        f"sys.argv = ['vlcli', 'budget', {str(media)!r}, '--server', {url!r}, '--json']\n"
        "try:\n main()\nexcept SystemExit as exit: assert not exit.code, exit.code\n"
        "heavy = {'torch', 'transformers', 'torchcodec', 'torchvision'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["visual_tokens"] > 0
    assert scripted.listed >= 1 and scripted.chats == 0


def test_a_connection_dropped_mid_stream_is_asked_again_from_the_start(
    server: Any, images: list[str], quick_waits: None
) -> None:
    """The partial answer is voided (said on stderr; on stdout the answer is headed again) and
    the record holds the whole answer of the try that finished."""
    url, scripted = server
    scripted.script = [("answer",), ("cut",), ("drop",)]
    r = invoke("ask", *images[:3], "What is it?", "--server", url)
    assert r.exit_code == 0, r.stderr
    assert "img1.png: the answer broke off: asked again from the start" in r.stderr
    assert "(the text above is void)" in r.stderr
    out = r.stdout
    assert (
        out.index("half an ans")
        < out.rindex(images[1])
        < out.index("answer ", out.rindex(images[1]))
    )
    assert (
        sorted(scripted.answered) == sorted(set(scripted.answered)) and len(scripted.answered) == 3
    )
    r = _ask(url, images[:2])
    assert [rec["answer"].startswith("answer ") for rec in _records(r.stdout)] == [True, True]


def test_a_400_for_one_input_fails_that_record_only(
    server: Any, images: list[str], quick_waits: None
) -> None:
    url, scripted = server
    scripted.script = [("answer",), ("status", 400, "the video's frames are unreadable", {})]
    r = _ask(url, images[:3])
    assert r.exit_code == ExitStatus.MODEL, r.stderr
    recs = _records(r.stdout)
    assert [rec["path"] for rec in recs] == images[:3]
    assert [rec.get("status") for rec in recs][1] == "failed"
    assert "HTTP 400: the video's frames are unreadable" in recs[1]["error"]
    assert recs[0]["answer"].startswith("answer ") and recs[2]["answer"].startswith("answer ")
    assert scripted.chats == 3  # a 400 is not asked again


def test_an_answer_that_is_no_chat_chunk_fails_that_record_only(
    server: Any, images: list[str], quick_waits: None
) -> None:
    url, scripted = server
    scripted.script = [("event", {"choices": [{"delta": "not an object"}]}), ("event", 42)]
    r = _ask(url, images[:3])
    assert r.exit_code == ExitStatus.MODEL, r.stderr
    recs = _records(r.stdout)
    assert [rec["path"] for rec in recs] == images[:3]
    assert [rec.get("status") for rec in recs][:2] == ["failed", "failed"]
    assert "not a chat completion chunk" in recs[0]["error"]
    assert recs[2]["answer"].startswith("answer ")
    assert scripted.chats == 3  # not asked again: the same request would get the same answer


def test_a_context_overflow_fails_its_input_with_the_memory_status(
    server: Any, images: list[str], quick_waits: None
) -> None:
    url, scripted = server
    too_long = "This model's maximum context length is 32768 tokens. However, you requested 40000"
    scripted.script = [("status", 400, too_long, {}), ("answer",)]
    r = _ask(url, images[:2])
    assert r.exit_code == ExitStatus.MEMORY, r.stderr
    assert [rec.get("status") for rec in _records(r.stdout)][0] == "failed"


def test_with_concurrency_requests_in_flight_are_retried_in_input_order(
    server: Any, images: list[str], quick_waits: None
) -> None:
    url, scripted = server
    scripted.script = [("drop",), ("status", 503, "restarting", {}), ("drop",), ("answer",)]
    r = _ask(url, images, "--concurrency", "3")
    assert r.exit_code == 0, r.stderr
    assert [rec["path"] for rec in _records(r.stdout)] == images
    assert (
        sorted(scripted.answered) == sorted(set(scripted.answered)) and len(scripted.answered) == 4
    )


def test_a_token_count_asked_while_the_server_is_away_waits_for_it(
    server: Any, quick_waits: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the model's files here the server's /tokenize counts the prompt; asked while the
    server is away, it is waited for as the answer is, not given up for an estimate (which left
    the video's times unmapped, saying the server had no /tokenize)."""
    url, scripted = server
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # the preset's files are not here
    scripted.served = {"id": "Qwen/Qwen2.5-VL-3B-Instruct", "max_model_len": 32768}
    scripted.tokenize_drops = 2
    clip = make_clip(tmp_path / "c.mp4", size=(160, 96), fps=10, seconds=1)
    r = _ask(url, [clip])
    assert r.exit_code == 0, r.stderr
    assert scripted.tokenized == 3
    assert "waiting for the server (" in r.stderr
    assert "could not count this prompt exactly" not in r.stderr
    assert "does not say how long its prompt was" in r.stderr  # the server's count was compared


def test_a_token_count_that_fails_on_a_server_that_is_up_is_estimated_at_once(
    server: Any, quick_waits: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/tokenize answering 500 while the server is up is no count, not an outage: vlcli's
    estimate at once (the times then left unmapped, said), not the whole patience waited."""
    url, scripted = server
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # the preset's files are not here
    scripted.served = {"id": "Qwen/Qwen2.5-VL-3B-Instruct", "max_model_len": 32768}
    scripted.tokenize_status = 500
    clip = make_clip(tmp_path / "c.mp4", size=(160, 96), fps=10, seconds=1)
    r = _ask(url, [clip], "--server-patience", "300")
    assert r.exit_code == 0, r.stderr
    assert scripted.tokenized == 1
    assert "waiting for the server (" not in r.stderr
    assert "could not count this prompt exactly" in r.stderr


# ---------------------------------------------------------------- patience spent, then resumed


def test_a_server_gone_past_the_patience_stops_the_run_and_resume_finishes_it(
    server: Any, images: list[str], quick_waits: None, tmp_path: Path
) -> None:
    url, scripted = server
    out = tmp_path / "out.jsonl"
    scripted.down_after = 1  # goes down once its first answer is out
    r = _ask(url, images, "-o", out, "--server-patience", "0.2")
    assert r.exit_code == ExitStatus.MODEL, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "did not come back within --server-patience 0.2 s" in last
    assert f"1 of 4 inputs done; {out} holds them: run the same command with --resume" in last
    assert "waiting for the server (" in r.stderr
    assert len(out.read_text().splitlines()) == 1
    first = list(scripted.answered)

    scripted.down, scripted.down_after = False, None
    r = _ask(url, images, "-o", out, "--server-patience", "0.2", "--resume")
    assert r.exit_code == 0, r.stderr
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == images
    assert scripted.answered[: len(first)] == first
    assert len(set(scripted.answered)) == len(scripted.answered) == 4  # none answered twice


def test_a_server_that_refuses_every_request_mid_run_stops_it_saying_how_to_go_on(
    server: Any, images: list[str], quick_waits: None, tmp_path: Path
) -> None:
    """A server restarted mid-run with an API key (or without --trust-request-mm-kwargs) would
    refuse every request alike: the run stops, and says what is done and how to go on."""
    url, scripted = server
    out = tmp_path / "out.jsonl"
    scripted.script = [("answer",), ("status", 401, "wrong key", {})]
    r = _ask(url, images[:3], "-o", out)
    assert r.exit_code == ExitStatus.MODEL, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "wants an API key" in last
    assert f"1 of 3 inputs done; {out} holds them: run the same command with --resume" in last
    assert len(out.read_text().splitlines()) == 1


# ---------------------------------------------------------------- the waits themselves


def test_retry_after_is_waited_as_asked_and_the_backoff_grows(server: Any) -> None:
    url, scripted = server
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    said: list[str] = []
    waits = Patience(60, said.append, sleep=sleep, clock=lambda: now[0], first_wait_s=1)
    client = ServerClient(url)
    scripted.script = [("status", 429, "slow down", {"Retry-After": "7"}), ("drop",), ("drop",)]
    body = chat_request("tiny", [], "Hi", stream=True)
    body["messages"][-1]["content"].insert(0, {"type": "image_url", "image_url": {"url": "x"}})
    answer = waits.call(lambda: client.chat(body), client.away)
    assert answer.text.startswith("answer ")
    assert slept[0] == 7.0  # Retry-After, as asked
    assert 1 <= slept[1] <= 2 and 2 <= slept[2] <= 4  # the 2nd and 3rd failures: 2 s, 4 s, jittered
    assert said[0] == "waiting for the server (429 slow down), 0 s of 60"
    assert said[1].startswith("waiting for the server (") and "7 s of 60" in said[1]
    assert scripted.health == 2  # a dropped connection: /health asked before sending again

    scripted.script = [("status", 503, "restarting", {"Retry-After": "600"})]
    with pytest.raises(ServerGone, match=r"--server-patience 60 s \(it asked for 600 s more\)"):
        waits.call(lambda: client.chat(body), client.away)
    assert slept[3:] == []  # not waited: the server asked for more than the patience left


def test_the_answers_sink_is_told_of_each_wait_and_of_the_resend(server: Any) -> None:
    """What a progress display shows while an answer waits (``ask`` puts the line in place of
    "prefill"): each wait's line, then an empty one when the request is sent again."""
    url, scripted = server
    told: list[tuple[str, str]] = []

    class Sink:
        def __call__(self, piece: str) -> None:
            told.append(("piece", piece))

        def discard(self) -> None:
            told.append(("discard", ""))

        def waiting(self, message: str) -> None:
            told.append(("waiting", message))

    scripted.script = [("status", 503, "server restarting", {})]
    body = chat_request("tiny", [], "Hi", stream=True)
    body["messages"][-1]["content"].insert(0, {"type": "image_url", "image_url": {"url": "x"}})
    waits = Patience(60, sleep=lambda s: None, clock=lambda: 0.0)
    client = ServerClient(url)
    stream_chat(client, body, Sink(), waits, client.away)
    assert told[:2] == [
        ("waiting", "waiting for the server (503 server restarting), 0 s of 60"),
        ("waiting", ""),
    ]
    assert told[2][0] == "piece" and len(told) == 3


def test_the_backoff_stays_bounded_however_long_the_patience() -> None:
    """A day's patience is thousands of tries: the doubling stops at the longest wait (2**1100
    overflowed a float, an "unexpected error" after hours of waiting)."""
    waits = Patience(86400)
    for attempt in (0, 5, 1100, 10**6):
        assert 0 < waits.backoff_s(attempt) <= patience.LONGEST_WAIT_S


def test_retry_after_as_an_http_date() -> None:
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert retry_after_s("Tue, 14 Nov 2023 22:13:50 GMT", now) == 30.0
    assert retry_after_s("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0  # already past
    assert retry_after_s("12", now) == 12.0
    assert retry_after_s("soon", now) is None and retry_after_s(None, now) is None


def test_no_patience_is_no_retry(server: Any) -> None:
    url, scripted = server
    scripted.script = [("status", 503, "restarting", {})]
    client = ServerClient(url)
    with pytest.raises(ServerGone, match="HTTP 503: restarting"):
        Patience(0).call(
            lambda: client.chat(chat_request("tiny", [], "Hi", stream=True)), client.away
        )
    assert scripted.chats == 1
    assert isinstance(client.away(), type(None))
    scripted.down = True
    assert isinstance(client.away(), ServerBusy)


def test_the_patience_counts_from_the_first_failure() -> None:
    """An answer that streamed for longer than the patience and then broke off is asked again:
    the patience is for waiting on the server, not for the answer."""
    now = [0.0]
    tries: list[float] = []

    def send() -> str:
        tries.append(now[0])
        now[0] += 100 if len(tries) == 1 else 1  # the first try streams for 100 s
        if len(tries) < 3:
            raise ServerBusy("cut", "the answer broke off", gone=False)
        return "whole"

    def sleep(s: float) -> None:
        now[0] += s

    waits = Patience(60, sleep=sleep, clock=lambda: now[0], first_wait_s=1)
    assert waits.call(send, lambda: None) == "whole"
    assert len(tries) == 3 and tries[1] - tries[0] > 100


# ---------------------------------------------------------------- --engine vllm: restarted once

STAND_IN_VLLM = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

args = sys.argv[1:]
port, model = int(args[args.index("--port") + 1]), args[args.index("--model") + 1]
deaths = os.environ["STAND_IN_DEATHS"]  # a file: how many times a server may still die
starts = os.environ["STAND_IN_STARTS"]
with open(starts, "a") as f:
    f.write(" ".join(args) + "\\n")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            return self._send(b"")
        entry = {"id": model, "root": model, "max_model_len": 32768}
        self._send(json.dumps({"data": [entry]}).encode())

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        chunk = {"choices": [{"delta": {"content": "an answer"}, "finish_reason": "stop"}]}
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\\n\\ndata: [DONE]\\n\\n")
        self.wfile.flush()
        left = int(open(deaths).read())
        if left > 0:  # dies once this answer is out, as a server killed for its memory
            open(deaths, "w").write(str(left - 1))
            print("RuntimeError: the stand-in ran out of memory", flush=True)
            os._exit(9)

    def _send(self, data):
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@pytest.fixture
def stand_in_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, Path]:
    """A "vLLM Python" whose server answers every chat and dies after the first ones (as many
    times as the deaths file says); each start is written to the starts file."""
    import sys

    script = tmp_path / "stand_in_vllm.py"
    script.write_text(STAND_IN_VLLM)
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nshift 2\nexec {sys.executable} {script} "$@"\n')
    python.chmod(0o755)
    deaths, starts = tmp_path / "deaths", tmp_path / "starts"
    monkeypatch.setenv("STAND_IN_DEATHS", str(deaths))
    monkeypatch.setenv("STAND_IN_STARTS", str(starts))
    return str(python), deaths, starts


def test_engine_vllm_restarts_its_dead_server_once(
    stand_in_vllm: Any, images: list[str], quick_waits: None, tiny_qwen25_path: Path, tmp_path: Path
) -> None:
    python, deaths, starts = stand_in_vllm
    base = ["--engine", "vllm", "--vllm-python", python, "--model", tiny_qwen25_path]
    deaths.write_text("1")
    r = invoke("ask", *images[:3], "What is it?", *base, "--json")
    assert r.exit_code == 0, r.stderr
    assert [rec["answer"] for rec in _records(r.stdout)] == ["an answer"] * 3
    assert len(starts.read_text().splitlines()) == 2
    assert (
        "the local vLLM server died (status 9): RuntimeError: the stand-in ran out of memory;"
        in r.stderr
    )
    assert "starting it again with the same flags" in r.stderr

    deaths.write_text("2")  # it dies again after the first answer of its second life
    out = tmp_path / "out.jsonl"
    r = invoke("ask", *images[:3], "What is it?", *base, "--json", "-o", out)
    assert r.exit_code == ExitStatus.MODEL, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "died (status 9)" in last and "for the second time" in last
    assert "2 of 3 inputs done" in last and "--resume" in last
