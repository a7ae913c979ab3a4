"""`vlcli chat` (issue 17): from a pipe (each line a question, the conversation kept) and on a
terminal (a pseudo-terminal: the prompt, a question, /save, Ctrl-D), on the tiny random
Qwen2.5-VL with the real TransformersBackend."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from vlcli.cli.app import app

pytest_plugins = ("conftest_models",)

ROOT = Path(__file__).resolve().parents[1]


def test_each_line_of_a_pipe_is_a_turn_that_sees_the_ones_before(
    tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    args = ["chat", tiny_clip, "--model", str(tiny_qwen25_path), "--max-new-tokens", "6"]
    r = CliRunner().invoke(app, [*args, "--json"], input="What happens?\n\nWho is there?\n")
    assert r.exit_code == 0, r.stderr
    first, second = (json.loads(line) for line in r.stdout.splitlines())
    assert [first["question"], second["question"]] == ["What happens?", "Who is there?"]
    assert "history" not in first
    assert second["history"] == [["What happens?", first["answer"]]]
    # the first turn is in the second's prompt: its question, answer and the turn marks
    assert second["prompt_tokens"] > first["prompt_tokens"] + first["generated_tokens"]
    assert first["key"] != second["key"] and first["file"] == second["file"]
    # the same first question after /reset is the first turn again: the same key
    again = CliRunner().invoke(
        app, [*args, "--json"], input="What happens?\n/reset\nWhat happens?\n"
    )
    one, two = (json.loads(line) for line in again.stdout.splitlines())
    assert one["key"] == two["key"] == first["key"] and one["answer"] == two["answer"]
    dash = CliRunner().invoke(app, ["chat", "-", "--model", str(tiny_qwen25_path)], input="x\n")
    assert dash.exit_code == 2 and "reads its questions from standard input" in dash.stderr


def test_a_turn_past_the_context_is_refused_with_the_room_left(
    tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    config = json.loads((tiny_qwen25_path / "config.json").read_text())
    context = config["text_config"]["max_position_embeddings"]
    long = " ".join(["word"] * (context // 5))  # about 3 tokens a word: one turn fits, two do not
    r = CliRunner().invoke(
        app, ["chat", tiny_clip, "--model", str(tiny_qwen25_path), "--max-new-tokens", "4",
              "--json"], input=f"{long}\n{long}\n",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1
    assert "this turn does not fit" in r.stderr and "/reset forgets it" in r.stderr


def _read_until(fd: int, wanted: bytes, seen: bytearray, timeout_s: float = 120.0) -> None:
    """Read the terminal into ``seen`` until ``wanted`` comes after what was seen before."""
    start = len(seen)
    deadline = time.monotonic() + timeout_s
    while wanted not in seen[start:]:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        assert ready, f"no {wanted!r} in {bytes(seen)[-400:]!r}"
        try:
            seen += os.read(fd, 4096)
        except OSError:  # the terminal's other end closed
            break


def _chat_on_a_terminal(model: Path, clip: str, cwd: Path, new_tokens: int) -> tuple[Any, int]:
    """``vlcli chat`` in its own process on a pseudo-terminal: the process and the terminal."""
    main, side = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb", "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vlcli", "chat", clip, "--model", str(model),
         "--max-new-tokens", str(new_tokens)],
        stdin=side, stdout=side, stderr=side, cwd=cwd, env=env, close_fds=True,
    )  # fmt: skip
    os.close(side)
    return process, main


def test_on_a_terminal_a_question_a_follow_up_save_and_ctrl_d(
    tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    process, main = _chat_on_a_terminal(tiny_qwen25_path, tiny_clip, tmp_path, 6)
    seen = bytearray()
    try:
        _read_until(main, b"> ", seen)
        assert b"GiB beside the weights, the kept prefill included" in seen  # the first line
        os.write(main, b"What happens?\n")
        _read_until(main, b"\n> ", seen)  # the answer, then the prompt again
        os.write(main, b"And then?\n")
        _read_until(main, b"\n> ", seen)
        os.write(main, b"/save turns.jsonl\n")
        # Ctrl-D typed at the prompt: before readline has the terminal again, the line
        # discipline may drop it (a full suite run hung here)
        _read_until(main, b"wrote turns.jsonl\r\n> ", seen)
        os.write(main, b"\x04")  # Ctrl-D
        assert process.wait(timeout=60) == 0, bytes(seen)[-400:]
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
    saved = [json.loads(line) for line in (tmp_path / "turns.jsonl").read_text().splitlines()]
    first, second = saved
    assert [first["question"], second["question"]] == ["What happens?", "And then?"]
    assert second["history"] == [["What happens?", first["answer"]]]
    assert set(first) >= {"key", "path", "answer", "times", "prompt_tokens", "timings", "file"}


def test_ctrl_c_during_an_answer_returns_to_the_prompt(
    tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    process, main = _chat_on_a_terminal(tiny_qwen25_path, tiny_clip, tmp_path, 20_000)
    seen = bytearray()
    try:
        _read_until(main, b"> ", seen)
        os.write(main, b"What happens?\n")
        _read_until(main, b"What happens?", seen)  # the line's echo
        echoed = len(seen)
        while len(seen) < echoed + 40:  # the answer is streaming
            seen += os.read(main, 4096)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _read_until(main, b"answer stopped\r\n> ", seen)  # back at the prompt
        os.write(main, b"/quit\n")
        assert process.wait(timeout=60) == 0, bytes(seen)[-400:]  # the interrupt was handled
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)


def test_ctrl_c_at_the_prompt_leaves_with_status_130(
    tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    """Ctrl-C at the prompt ends the chat as an interrupted run ends: status 130, no
    traceback."""
    process, main = _chat_on_a_terminal(tiny_qwen25_path, tiny_clip, tmp_path, 6)
    seen = bytearray()
    try:
        _read_until(main, b"> ", seen)
        os.write(main, b"What happens?\n")
        _read_until(main, b"\n> ", seen)  # answered, back at the prompt
        # as a person types it, not in the instant the prompt is written: a signal in that
        # instant, before Python's readline waits for a key, is seen only at the next key
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends (the pty is not its terminal)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            # the terminal read while the chat ends: its last lines are not left unread
            if select.select([main], [], [], 0.2)[0]:
                try:
                    seen += os.read(main, 4096)
                except OSError:  # the terminal's other end closed
                    break
        assert process.wait(timeout=10) == 130, bytes(seen)[-400:]
        assert b"interrupted" in seen and b"Traceback" not in seen
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)


def test_a_follow_up_continues_from_the_conversation_s_cache_as_if_asked_afresh(
    tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    """transformers: the kept cache grows by each turn; the next turn prefills only its own
    tokens, and answers as a fresh run of the whole conversation does."""
    import torch
    from helpers_backend import ask_media
    from test_questions import _first_token_logits, _watched
    from test_runner import _quiet, _video_plan

    from vlcli.backends import Prompt
    from vlcli.backends.transformers.backend import TransformersBackend

    kept = TransformersBackend(str(tiny_qwen25_path), device="cpu", dtype="float32", warn=_quiet)
    fresh = TransformersBackend(str(tiny_qwen25_path), device="cpu", dtype="float32", warn=_quiet)
    media = ((tiny_clip, _video_plan(kept, tiny_clip)),)
    calls, fresh_calls = _watched(kept), _watched(fresh)
    first = kept.prepare(Prompt(media, "What happens?", max_new_tokens=6, keep_media=True))
    one = kept.generate(first)
    history = (("What happens?", one.text),)
    follow = Prompt(media, "And then?", max_new_tokens=6, keep_media=True, history=history)
    before = len(calls)
    two = kept.generate(kept.reprompt(first, follow))
    alone = ask_media(fresh, media, "And then?", max_new_tokens=6, history=history)
    assert two.text == alone.text and two.prompt_tokens == alone.prompt_tokens
    mine, theirs = _first_token_logits(calls[before:]), _first_token_logits(fresh_calls)
    assert torch.allclose(mine, theirs, atol=1e-4, rtol=1e-4)
    prefilled = calls[before][0]  # the follow-up's first forward: its tokens not in the cache
    assert prefilled <= two.prompt_tokens - one.prompt_tokens


def test_a_conversation_s_messages_are_the_same_for_both_engines() -> None:
    """The media open the first user turn, then each earlier question and answer, then the new
    question: in vlcli's own prompt (transformers, token counts) and in a server's request."""
    from test_server import _plan

    from vlcli.backends.vllm.client import chat_messages
    from vlcli.planning.prompt import build_messages

    plan = _plan(nframes=8)
    history = (("What happens?", "A ball rolls."), ("Where?", "On a table."))
    mine = build_messages([("v.mp4", plan)], "And then?", "Be brief.", history)
    served = chat_messages([{"type": "video_url"}], "And then?", "Be brief.", history)
    roles = ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["role"] for m in mine] == [m["role"] for m in served] == roles
    for a, b in zip(mine, served, strict=True):
        if a["role"] != "user":
            assert a == b
            continue
        assert [p["type"] for p in a["content"]] == [
            "video" if p["type"] == "video_url" else p["type"] for p in b["content"]
        ]
        assert [p.get("text") for p in a["content"]] == [p.get("text") for p in b["content"]]
    assert [p["type"] for p in mine[1]["content"]] == ["video", "text"]
    assert mine[-1]["content"] == [{"type": "text", "text": "And then?"}]
