"""Thinking models (issue 16): --think / --no-think, and the reasoning kept apart from the answer.

Two tiny random Qwen3-VL checkpoints carry released chat templates (``tests/data/README.md``
says where each was read): one with Qwen3-VL Thinking's, which always opens ``<think>`` at the
end of the prompt and has no ``enable_thinking``; one with Qwen3.5's, which has the switch
(its vision markup is Qwen3-VL's, so a Qwen3-VL body serves it until the Qwen3.5 family is in).
Their tokenizers have ``<think>`` and ``</think>`` as the released ones do: added tokens, not
special (a decoded answer keeps them). A backend on the ``Backend`` protocol (``helpers_forced``)
forces an output whose reasoning and answer state different times; a scripted stand-in HTTP server plays a vLLM
server that sends the reasoning apart (``reasoning_content``) or inline.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import error_lines, invoke
from helpers_forced import Forced, force_answer
from helpers_media import make_image
from tinymodels import save_tiny_model

from vlcli.models.families import QWEN3_VL
from vlcli.models.locate import locate_spec
from vlcli.planning.thinking import ReasoningPieces, split_reasoning

pytest_plugins = ("conftest_models",)

DATA = Path(__file__).parent / "data"
NEW = ("--max-new-tokens", "6")


def thinking_checkpoint(folder: Path, template: str) -> Path:
    """A tiny Qwen3-VL whose chat template is the released ``template`` (a file of
    ``tests/data``) and whose tokenizer has ``<think>`` and ``</think>`` as added tokens."""
    from transformers import AddedToken, AutoTokenizer

    save_tiny_model("qwen3_vl", folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t in ("<think>", "</think>")]
    )
    tok.save_pretrained(folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    text = (DATA / template).read_text(encoding="utf-8")
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": text}))
    return folder


@pytest.fixture(scope="session")
def always_thinks(tiny_models_dir: Path) -> Path:
    """Qwen3-VL Thinking's template: the prompt opens <think>; no enable_thinking."""
    folder = tiny_models_dir / "tiny-Qwen3-VL-Thinking"
    return thinking_checkpoint(folder, "qwen3_vl_thinking_chat_template.jinja")


@pytest.fixture(scope="session")
def switchable(tiny_models_dir: Path) -> Path:
    """Qwen3.5's template: enable_thinking, on by default."""
    return thinking_checkpoint(tiny_models_dir / "tiny-switch", "qwen3_5_chat_template.jinja")


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


# ---------------------------------------------------------------- reasoning apart


@pytest.mark.parametrize(
    ("text", "opened", "reasoning", "answer", "finished"),
    [
        ("<think>\nat 1 s?\n</think>\n\nAt 2 s.", False, "at 1 s?", "At 2 s.", True),
        ("at 1 s?\n</think>\n\nAt 2 s.", True, "at 1 s?", "At 2 s.", True),
        ("at 1 s?\n</think>\n\nAt 2 s.", False, "at 1 s?", "At 2 s.", True),  # template unread
        ("at 1 s? or", True, "at 1 s? or", "", False),  # cut off inside the reasoning
        ("<think>\nat 1 s", False, "at 1 s", "", False),
        ("At 2 s.", False, None, "At 2 s.", True),  # no thinking at all: as it was
    ],
)
def test_the_reasoning_is_set_apart_from_the_answer(
    text: str, opened: bool, reasoning: str | None, answer: str, finished: bool
) -> None:
    parts = split_reasoning(text, opened)
    assert (parts.reasoning, parts.answer, parts.finished) == (reasoning, answer, finished)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 100])
@pytest.mark.parametrize(
    ("text", "opened"),
    [
        ("Near 1.0 s, or 2.0 s.\n</think>\n\nAt 2.5 seconds.", True),
        ("<think>\nNear 1.0 s.</think>\n\nAt 2.5 seconds.", False),
        ("Just the answer, at 3 s.", False),
        ("Still thinking at 1 s </thi", True),
    ],
)
def test_a_streamed_output_is_split_as_the_whole_is(text: str, opened: bool, size: int) -> None:
    """Tags cut between pieces anywhere: what is shown of each part is its recorded text."""
    stream = ReasoningPieces(opened)
    parts: list[tuple[bool, str]] = []
    for k in range(0, len(text), size):
        parts += stream.piece(text[k : k + size])
    parts += stream.rest()
    whole = split_reasoning(text, opened)
    shown_reasoning = "".join(t for r, t in parts if r)
    assert shown_reasoning.strip() == (whole.reasoning or "")
    assert "".join(t for r, t in parts if not r) == whole.answer


# ---------------------------------------------------------------- --think / --no-think


@pytest.mark.parametrize("flag", ["--think", "--no-think"])
def test_a_template_without_the_switch_refuses_it_in_one_line(
    always_thinks: Path, tiny_qwen3_path: Path, tiny_clip: str, flag: str
) -> None:
    for model in (always_thinks, tiny_qwen3_path):
        for command in (("ask", tiny_clip, "Where?"), ("budget", tiny_clip)):
            r = invoke(*command, "--model", model, flag, *NEW)
            assert r.exit_code == 2, r.stderr
            (line,) = error_lines(r)
            assert f"{flag}: the chat template of {model} has no thinking switch" in line
            assert f"leave {flag} out" in line and r.stdout == ""


def test_no_think_adds_the_templates_empty_reasoning_and_budget_counts_as_ask(
    switchable: Path, tiny_clip: str
) -> None:
    """Qwen3.5's template: --think is its default (the prompt ends in <think>), --no-think
    closes an empty one (\\n\\n</think>\\n\\n); budget's count equals ask's each way."""
    from tokenizers import Tokenizer

    counted = {}
    for flags in ((), ("--think",), ("--no-think",)):
        r = invoke("budget", tiny_clip, "--model", switchable, "--question", "Where?",
                   "--json", *flags)  # fmt: skip
        assert r.exit_code == 0, r.stderr
        (row,) = records(r.stdout)
        a = invoke("ask", tiny_clip, "Where?", "--model", switchable, "--json", *NEW, *flags)
        assert a.exit_code in (0, 4), a.stderr
        (rec,) = records(a.stdout)
        assert row["prompt_tokens_exact"] and row["prompt_tokens"] == rec["prompt_tokens"]
        counted[flags] = rec["prompt_tokens"]
    tok = Tokenizer.from_file(str(switchable / "tokenizer.json"))
    n = lambda s: len(tok.encode(s, add_special_tokens=False).ids)  # noqa: E731
    assert counted[()] == counted[("--think",)]
    assert counted[("--no-think",)] - counted[()] == n("\n\n</think>\n\n") - n("\n")


def test_the_switch_is_part_of_the_record_key_only_when_given() -> None:
    from vlcli.run.ask import settings_key
    from vlcli.run.prompt import AskSettings

    keys = {settings_key(AskSettings("q", think=t), {"m": 1}) for t in (None, True, False)}
    assert len(keys) == 3


# ---------------------------------------------------------------- a forced output, CLI


REASONED = (
    "The ball is by the door at 1.0 seconds, or was it 2.0 seconds?\n</think>\n\n"
    "The ball appears at 2.5 seconds."
)


@pytest.fixture
def forced(monkeypatch: pytest.MonkeyPatch, always_thinks: Path) -> Forced:
    return force_answer(monkeypatch, locate_spec(str(always_thinks)).spec, REASONED)


def test_only_the_answers_times_are_mapped_and_recorded(
    forced: Forced, always_thinks: Path, tiny_clip: str, tmp_path: Path
) -> None:
    r = invoke("ask", tiny_clip, "When?", "--model", always_thinks, "--json",
               "--srt", tmp_path / "a.srt")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert rec["reasoning"] == "The ball is by the door at 1.0 seconds, or was it 2.0 seconds?"
    assert rec["answer"] == "The ball appears at 2.5 seconds."
    assert [(t["start_s"], t["mapped"]) for t in rec["times"]] == [(2.5, True)]
    assert "00:00:02,500" in (tmp_path / "a.srt").read_text()
    assert "00:00:01,000" not in (tmp_path / "a.srt").read_text()


def test_on_a_terminal_the_reasoning_streams_dimmed_then_the_answer(
    forced: Forced, always_thinks: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vlcli.cli import views

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(views, "out", views._Console(force_terminal=True, width=200))
    r = invoke("ask", tiny_clip, "When?", "--model", always_thinks)
    assert r.exit_code == 0, r.stderr
    reasoning = "The ball is by the door at 1.0 seconds, or was it 2.0 seconds?"
    dimmed = "".join(f"{views.DIM}{reasoning[k : k + 5]}{views.NORMAL}" for k in range(0, 60, 5))
    assert r.stdout.startswith(dimmed[:40])
    answer_at = r.stdout.index("The ball appears at 2.5 seconds.")
    before = r.stdout[:answer_at].replace(views.DIM, "").replace(views.NORMAL, "")
    assert before == reasoning + "\n\n"  # a blank line, then the answer
    table = r.stdout[answer_at:]
    assert "2.5" in table and "1.0" not in table and "2.0" not in table


def test_each_windows_reasoning_is_kept_and_only_the_answers_times_merged(
    forced: Forced, always_thinks: Path, tiny_clip: str
) -> None:
    r = invoke("ask", tiny_clip, "When?", "--model", always_thinks, "--json",
               "--window", "2", "--overlap", "0.5")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    reasoning = "The ball is by the door at 1.0 seconds, or was it 2.0 seconds?"
    assert len(rec["windows"]) == 2
    assert [w["reasoning"] for w in rec["windows"]] == [reasoning, reasoning]
    paragraphs = rec["reasoning"].split("\n\n")
    assert len(paragraphs) == 2 and all(p.endswith("] " + reasoning) for p in paragraphs)
    assert rec["times"] and {t["model_start_s"] for t in rec["times"]} == {2.5}


def test_a_pipe_gets_the_answer_alone(forced: Forced, always_thinks: Path, tiny_clip: str) -> None:
    r = invoke("ask", tiny_clip, "When?", "--model", always_thinks, "--quiet")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("The ball appears at 2.5 seconds.\n") and "door" not in r.stdout


def test_reasoning_streamed_as_the_answer_is_said_where_the_template_was_unread(
    monkeypatch: pytest.MonkeyPatch, tiny_clip: str
) -> None:
    """A model whose prompt opened <think> in a template vlcli could not read (here a family
    with no files; a server's model named by its hub id) streams its reasoning before vlcli
    can know it is reasoning: a pipe gets it as answer text, and one line says so."""
    force_answer(monkeypatch, QWEN3_VL, REASONED)
    r = invoke("ask", tiny_clip, "When?", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("The ball is by the door")  # shown before the </think> came
    (line,) = error_lines(r)
    assert "the text shown before the model's </think> was its reasoning" in line
    assert "the record keeps the two apart" in line
    (rec,) = records(invoke("ask", tiny_clip, "When?", "--json").stdout)
    assert rec["answer"] == "The ball appears at 2.5 seconds." and "door" in rec["reasoning"]
    force_answer(monkeypatch, QWEN3_VL, "The ball appears at 2.5 seconds.")  # no </think>
    assert error_lines(invoke("ask", tiny_clip, "When?", "--quiet")) == []


def test_an_output_cut_off_inside_its_reasoning_has_no_answer(
    forced: Forced, always_thinks: Path, tiny_clip: str, tmp_path: Path
) -> None:
    forced.text = "The ball is by the door at 1.0 seconds, or"
    out = tmp_path / "runs.jsonl"
    r = invoke("ask", tiny_clip, "When?", "--model", always_thinks, "--json", "-o", out,
               "--max-new-tokens", "20")  # fmt: skip
    assert r.exit_code == 4
    (rec,) = records(r.stdout)
    assert rec["status"] == "failed" and rec["answer"] == "" and rec["times"] == []
    assert rec["reasoning"] == "The ball is by the door at 1.0 seconds, or"
    assert "cut off by --max-new-tokens (20) inside the model's reasoning" in rec["error"]
    (line,) = error_lines(r)
    assert "cut off by --max-new-tokens (20)" in line
    assert records(out.read_text()) == [rec]


# ---------------------------------------------------------------- a tiny real model


def test_a_tiny_thinking_model_end_to_end(always_thinks: Path, tiny_clip: str) -> None:
    """The real template opens <think>: the random output has no </think>, so all of it is
    reasoning, cut off at --max-new-tokens; budget counts the prompt ask sent."""
    a = invoke("ask", tiny_clip, "Where?", "--model", always_thinks, "--json", *NEW)
    (rec,) = records(a.stdout)
    assert a.exit_code == 4 and rec["status"] == "failed", a.stderr
    assert rec["answer"] == "" and rec["times"] == [] and rec["generated_tokens"] == 6
    assert "cut off by --max-new-tokens (6)" in rec["error"]
    b = invoke("budget", tiny_clip, "--model", always_thinks, "--question", "Where?", "--json")
    assert records(b.stdout)[0]["prompt_tokens"] == rec["prompt_tokens"]


# ---------------------------------------------------------------- a vLLM server


def _sse(*events: Any) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)


def _delta(**delta: str) -> dict[str, Any]:
    return {"model": "tiny", "choices": [{"delta": delta, "finish_reason": None}]}


@pytest.fixture
def served(switchable: Path) -> Iterator[tuple[str, list[dict[str, Any]], list[bytes]]]:
    """A stand-in vLLM server for the tiny switchable model: its chat answers are the
    streams in ``answers`` (in order); the bodies it got are in ``seen``."""
    seen: list[dict[str, Any]] = []
    answers: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            if self.path == "/v1/models":
                entry = {"id": "tiny", "root": str(switchable), "max_model_len": 32768}
                data = json.dumps({"data": [entry]}).encode()
            elif self.path == "/tokenize":
                seen.append(body)
                data = json.dumps({"count": 7}).encode()
            else:
                seen.append(body)
                data = answers.pop(0) + b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen, answers
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("stream", "flags", "switch"),
    [  # a server with a reasoning parser sends the reasoning apart; one without, inline
        ([_delta(reasoning_content="Cat or dog?"), _delta(content="A cat.")], ("--think",), True),
        (
            [_delta(reasoning="Cat or "), _delta(reasoning="dog?"), _delta(content="A cat.")],
            (),
            None,
        ),
        (
            [_delta(content="Cat or dog?\n</thi"), _delta(content="nk>\n\nA cat.")],
            ("--no-think",),
            False,
        ),
    ],
)
def test_a_server_gets_the_switch_and_its_reasoning_is_set_apart(
    served: Any, tmp_path: Path, stream: list[dict[str, Any]], flags: tuple[str, ...],
    switch: bool | None,
) -> None:  # fmt: skip
    url, seen, answers = served
    answers.append(_sse(*stream))
    image = make_image(tmp_path / "pet.png", (64, 48))
    r = invoke("ask", image, "What is it?", "--server", url, "--json", *flags)
    assert r.exit_code == 0, r.stderr
    (body,) = seen
    kwargs = body.get("chat_template_kwargs")
    assert kwargs == (None if switch is None else {"enable_thinking": switch})
    (rec,) = records(r.stdout)
    assert (rec["reasoning"], rec["answer"]) == ("Cat or dog?", "A cat.")


def test_the_client_puts_reasoning_back_between_its_tags() -> None:
    from vlcli.backends.vllm.client import parse_completion, read_stream

    pieces: list[str] = []
    events = [_delta(reasoning_content="a"), _delta(reasoning_content="b"), _delta(content="c")]
    assert read_stream(events, pieces.append).text == "<think>ab</think>c"
    assert pieces == ["<think>a", "b", "</think>c"]
    message = {"content": "c", "reasoning_content": "ab"}
    assert parse_completion({"choices": [{"message": message}]}).text == "<think>ab</think>c"


def test_the_servers_token_count_is_asked_with_the_switch(served: Any) -> None:
    """With no tokenizer files here, vlcli counts its prompt with the server's /tokenize: the
    template there gets the same enable_thinking as the chat request."""
    from vlcli.backends.vllm.client import ServerClient

    url, seen, _ = served
    client = ServerClient(url)
    assert client.count_tokens([{"role": "user", "content": "q"}], "tiny", False) == 7
    assert client.count_tokens([{"role": "user", "content": "q"}], "tiny") == 7
    assert seen[0]["chat_template_kwargs"] == {"enable_thinking": False}
    assert "chat_template_kwargs" not in seen[1]


def test_only_the_answers_boxes_are_read(
    monkeypatch: pytest.MonkeyPatch, always_thinks: Path, still_image: str
) -> None:
    """A box the model considers in its reasoning is not one it answered (issues 16 and 18
    together: boxes, as times, are read from the answer alone)."""
    text = (
        'Maybe [{"bbox_2d": [0, 0, 500, 500], "label": "guess"}]?\n</think>\n\n'
        '[{"bbox_2d": [100, 200, 300, 400], "label": "cat"}]'
    )
    force_answer(monkeypatch, locate_spec(str(always_thinks)).spec, text)
    r = invoke("ask", still_image, "Where?", "--model", always_thinks, "--json", "--task", "detect")
    assert r.exit_code == 0, r.stderr
    (rec,) = records(r.stdout)
    assert [b["label"] for b in rec["boxes"]] == ["cat"]
    assert "guess" in rec["reasoning"]
