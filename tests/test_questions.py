"""`vlcli ask` with several questions (issue 17): ``-q/--question`` and ``--questions FILE``.

End to end on the tiny random-weight models (the ``spy`` of test_cli_ask wraps the real
TransformersBackend and records each prompt's text). Each input gets one record per question, in
input order then question order, each with its own key (``-o`` and ``--resume`` per question),
and each input is probed, planned and decoded once for all its questions, with answers equal to
asking each question alone.
"""

# ruff: noqa: F811  (the spy and two_clips fixtures are imported from test_cli_ask.py)
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_cli_ask import NEW, Spy, invoke, records, spy, two_clips  # noqa: F401
from typer.testing import CliRunner

import vlcli.backends.transformers.model_inputs as model_inputs
import vlcli.run.budget as run_budget
from vlcli.cli.app import app

pytest_plugins = ("conftest_models",)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_each_input_gets_one_record_per_question_in_order(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, tmp_path: Path
) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"question": "Who is there?"}\n\n{"question": "", "task": "caption"}\n')
    r = invoke("ask", two_clips, "-q", "What happens?", "--questions", qfile,
               "--model", tiny_qwen25_path, *NEW, "--json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    got = records(r.stdout)
    names = [Path(x["path"]).name for x in got]
    assert names == ["a.mp4"] * 3 + ["b.mp4"] * 3
    assert [x["question"] for x in got] == ["What happens?", "Who is there?", ""] * 2
    assert [x["task"] for x in got] == ["qa", "qa", "caption"] * 2
    assert len({x["key"] for x in got}) == 6
    # one question with -q is the positional question: the same record key
    alone = invoke("ask", two_clips / "a.mp4", "What happens?", "--model", tiny_qwen25_path,
                   *NEW, "--json")  # fmt: skip
    assert records(alone.stdout)[0]["key"] == got[0]["key"]


def test_resume_goes_on_at_the_next_question_of_an_input(
    spy: Spy, tiny_qwen25_path: Path, two_clips: Path, tmp_path: Path
) -> None:
    out = tmp_path / "answers.jsonl"
    ask = ("ask", two_clips, "-q", "What?", "-q", "Who?", "--model", tiny_qwen25_path, *NEW,
           "-o", out)  # fmt: skip
    assert invoke(*ask).exit_code == 0
    whole = lines(out)
    assert len(whole) == 4
    # as if the run had stopped after a.mp4's first question
    out.write_text(json.dumps(whole[0]) + "\n")
    asked_before = len(spy.questions)
    again = invoke(*ask, "--resume")
    assert again.exit_code == 0, again.stderr
    assert "1 of 4 answers already have a record" in again.stderr
    assert spy.questions[asked_before:] == ["Who?", "What?", "Who?"]
    assert [x["key"] for x in lines(out)] == [x["key"] for x in whole]
    # a question added later is one more record per input, the others skipped
    more = invoke(*ask, "-q", "Where?", "--resume", "--json")
    assert [x["question"] for x in records(more.stdout)] == ["Where?", "Where?"]
    assert len(lines(out)) == 6


def test_an_input_is_probed_and_decoded_once_for_all_its_questions(
    spy: Spy,
    tiny_qwen25_path: Path,
    two_clips: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[str] = []
    planned: list[str] = []
    real_chunks, real_plan = model_inputs.iter_video_chunks, run_budget.plan_one

    def chunks(path: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(Path(path).name)
        return real_chunks(path, *args, **kwargs)

    def plan_one(path: str, *args: Any) -> Any:
        planned.append(Path(path).name)
        return real_plan(path, *args)

    monkeypatch.setattr(model_inputs, "iter_video_chunks", chunks)
    monkeypatch.setattr(run_budget, "plan_one", plan_one)
    questions = ["What happens?", "Who is there?", "What colour is it?"]
    r = invoke("ask", two_clips, *[a for q in questions for a in ("-q", q)],
               "--model", tiny_qwen25_path, *NEW, "--json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert decoded == ["a.mp4", "b.mp4"] and planned == ["a.mp4", "b.mp4"]
    together = records(r.stdout)
    assert [x["timings"]["decode_s"] > 0 for x in together] == [True, False, False] * 2
    # each answer is the one the question gets asked alone (greedy, the same model)
    for record in together:
        alone = invoke("ask", record["path"], record["question"], "--model", tiny_qwen25_path,
                       *NEW, "--json")  # fmt: skip
        (single,) = records(alone.stdout)
        assert single["answer"] == record["answer"]
        assert single["prompt_tokens"] == record["prompt_tokens"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("\n\n", "no question in it"),
        ('{"question": "a"}\n{"q": "b"}\n', 'line 2: give an object with a "question" string'),
        ('{"question": "a"}\n{oops\n', "line 2: not JSON"),
        ('{"question": "a", "task": "summarize"}\n', "--task must be one of"),
        ('{"question": "", "task": "qa"}\n', "the 'qa' task needs a question"),
    ],
)
def test_a_bad_questions_file_is_a_usage_error(
    tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path, text: str, said: str
) -> None:
    qfile = tmp_path / "q.txt"
    qfile.write_text(text)
    r = invoke("ask", tiny_clip, "--questions", qfile, "--model", tiny_qwen25_path)
    assert r.exit_code == 2 and said in r.stderr, r.stderr


def test_questions_from_standard_input_one_per_line(
    spy: Spy, tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    r = CliRunner().invoke(
        app,
        ["ask", tiny_clip, "--questions", "-", "--model", str(tiny_qwen25_path), *NEW, "--json"],
        input="What happens?\n\nWho is there?\n",
    )
    assert r.exit_code == 0, r.stderr
    assert [x["question"] for x in records(r.stdout)] == ["What happens?", "Who is there?"]
    both = CliRunner().invoke(app, ["ask", "-", "--questions", "-", "--model",
                                    str(tiny_qwen25_path)], input="x\n")  # fmt: skip
    assert both.exit_code == 2 and "both read standard input" in both.stderr


def test_outputs_named_after_the_input_need_one_question(
    tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path
) -> None:
    r = invoke("ask", tiny_clip, "-q", "a", "-q", "b", "--srt", tmp_path / "x.srt",
               "--model", tiny_qwen25_path)  # fmt: skip
    assert r.exit_code == 2 and "ask one question per run" in r.stderr


# ---------------------------------------------------------------- with a server


class _Server:
    """A stand-in for vLLM on 127.0.0.1: it serves the tiny model's folder, keeps each chat
    request's body, and says in its usage that the prompt tokens before the question were
    cached from the second request on (as vLLM's prefix cache would with identical media)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bodies: list[dict[str, Any]] = []
        self.details = True  # whether usage has prompt_tokens_details


@pytest.fixture
def stand_in(tiny_qwen25_path: Path) -> Any:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = _Server(tiny_qwen25_path)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, data: bytes, kind: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            entry = {"id": "tiny", "root": str(state.root), "max_model_len": 32768}
            self._send(json.dumps({"data": [entry]}).encode())

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            state.bodies.append(body)
            usage: dict[str, Any] = {"prompt_tokens": 1, "completion_tokens": 1}
            if state.details:
                usage["prompt_tokens_details"] = {"cached_tokens": 64 * (len(state.bodies) > 1)}
            chunk = {"model": "tiny", "choices": [{"delta": {"content": "yes"}}]}
            events = [chunk, {"model": "tiny", "choices": [], "usage": usage}]
            data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            self._send(data.encode(), "text/event-stream")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_server_gets_the_same_frames_before_each_question_and_its_cache_is_reported(
    stand_in: Any, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vlcli.backends.vllm.request as request

    url, state = stand_in
    decoded: list[str] = []
    real_chunks = request.iter_video_chunks

    def chunks(path: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(path)
        return real_chunks(path, *args, **kwargs)

    monkeypatch.setattr(request, "iter_video_chunks", chunks)
    r = invoke("ask", tiny_clip, "-q", "What happens?", "-q", "Who is there?", "--server", url,
               "--json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert decoded == [tiny_clip]  # the frames encoded once
    contents = [b["messages"][-1]["content"] for b in state.bodies]
    assert [c[-1] for c in contents] == [
        {"type": "text", "text": "What happens?"},
        {"type": "text", "text": "Who is there?"},
    ]
    assert contents[0][:-1] == contents[1][:-1] and len(contents[0]) == 2  # the media first
    assert [x["cached_tokens"] for x in records(r.stdout)] == [0, 64]
    state.details = False  # a server that does not say: no field
    r = invoke("ask", tiny_clip, "What happens?", "--server", url, "--json")
    assert "cached_tokens" not in records(r.stdout)[0]


# ---------------------------------------------------------------- one prefill of the media


def _watched(backend: Any) -> list[tuple[int, bool, Any]]:
    """Every forward of the backend's model: its length, whether it took the media's pixels
    (or their encoding), and its last logits (the first new token's, for the last forward of a prompt's prefill)."""
    calls: list[tuple[int, bool, Any]] = []

    def seen(_module: Any, _args: Any, kwargs: dict[str, Any], out: Any) -> None:
        # the media through the vision tower: in this forward, or by generate just before it
        pixels = any(kwargs.get(k) is not None for k in ("pixel_values", "pixel_values_videos"))
        pixels = pixels or bool(kwargs.get("mm_encoder_outputs"))
        calls.append((int(kwargs["input_ids"].shape[1]), pixels, out.logits[0, -1].clone()))

    backend.model.register_forward_hook(seen, with_kwargs=True)
    return calls


def _first_token_logits(calls: list[tuple[int, bool, Any]]) -> Any:
    """The logits of a prompt's last forward over more than one token (its prefill's end)."""
    return [logits for length, _, logits in calls if length > 1][-1]


@pytest.mark.parametrize(
    "fixture",
    [
        "tiny_qwen2_path",
        "tiny_qwen25_path",
        "tiny_qwen3_path",
        "tiny_qwen35_path",
        "tiny_qwen35_moe_path",
    ],
)
def test_questions_continue_from_one_prefill_of_the_media_as_if_asked_alone(
    fixture: str, request: pytest.FixtureRequest, tiny_clip: str, tiny_image: str
) -> None:
    import torch
    from helpers_backend import ask_media
    from test_runner import _image_plan, _quiet, _video_plan

    from vlcli.backends import Prompt
    from vlcli.backends.transformers.backend import TransformersBackend
    from vlcli.planning.tasks import build_prompt

    path = str(request.getfixturevalue(fixture))
    kept = TransformersBackend(path, device="cpu", dtype="float32", warn=_quiet)
    fresh = TransformersBackend(path, device="cpu", dtype="float32", warn=_quiet)
    media = ((tiny_clip, _video_plan(kept, tiny_clip)), (tiny_image, _image_plan(kept, tiny_image)))
    texts = ["What happens?", "Who is there, and where?", build_prompt("ground", "a ball rolls")]
    kept_calls, fresh_calls = _watched(kept), _watched(fresh)
    prepared = None
    for n, text in enumerate(texts):  # the last one uses the kept prefill up
        prompt = Prompt(media, text, max_new_tokens=6, keep_media=n < len(texts) - 1)
        prepared = kept.prepare(prompt) if prepared is None else kept.reprompt(prepared, prompt)
        before = len(kept_calls)
        answer = kept.generate(prepared)
        mine = _first_token_logits(kept_calls[before:])
        before = len(fresh_calls)
        alone = ask_media(fresh, media, text, max_new_tokens=6)
        theirs = _first_token_logits(fresh_calls[before:])
        assert answer.text == alone.text and answer.generated_tokens == alone.generated_tokens
        assert torch.allclose(mine, theirs, atol=1e-4, rtol=1e-4), (mine - theirs).abs().max()
        assert answer.axes == alone.axes and answer.prompt_tokens == alone.prompt_tokens
    # the media went through the vision tower once for the three questions (alone: each time)
    assert sum(pixels for _, pixels, _ in kept_calls) == 1
    assert sum(pixels for _, pixels, _ in fresh_calls) == 3
    assert kept.prefix.kept is None  # nothing held after the input's last question


def test_another_prefix_over_the_same_media_is_prefilled_again_and_said(
    tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    from helpers_backend import ask_media
    from test_runner import _quiet, _video_plan

    from vlcli.backends import Prompt
    from vlcli.backends.transformers.backend import TransformersBackend
    from vlcli.backends.transformers.prefix import PREFILLED_AGAIN

    kept = TransformersBackend(str(tiny_qwen25_path), device="cpu", dtype="float32", warn=_quiet)
    media = ((tiny_clip, _video_plan(kept, tiny_clip)),)
    first = kept.prepare(Prompt(media, "What happens?", system="Be brief.", keep_media=True))
    assert kept.generate(first).notes == ()
    other = Prompt(media, "Who is there?", system="Be precise.", max_new_tokens=6)
    answer = kept.generate(kept.reprompt(first, other))
    assert PREFILLED_AGAIN in answer.notes
    alone = ask_media(kept, media, "Who is there?", system="Be precise.", max_new_tokens=6)
    assert answer.text == alone.text


def test_budget_counts_the_prefill_kept_for_later_questions(
    tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    from test_cli_ask import budget

    one = budget(tiny_qwen25_path, tiny_clip)
    three = budget(tiny_qwen25_path, tiny_clip, "--questions", 3)
    kept = three["memory"]["kept_prefix_bytes"]
    assert one["memory"]["kept_prefix_bytes"] == 0 and kept > 0
    assert three["memory"]["total_bytes"] == one["memory"]["total_bytes"] + kept
    per_token = one["memory"]["kv_cache_bytes"] // (one["prompt_tokens"] + 512)
    assert kept == per_token * one["prompt_tokens"]  # the prompt's own cache, once more
    shown = invoke("budget", tiny_clip, "--model", tiny_qwen25_path, "--questions", 3)
    assert "kept prefill" in shown.stdout
