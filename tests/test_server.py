"""The server backend's pure parts, and its error paths against a fake HTTP server.

The fake server here only replays answers measured from a real vLLM 0.32 server (the 400 for
per-request kwargs without ``--trust-request-mm-kwargs``, the 401 without the API key, a
stream, a failure mid-stream); the backend itself is tested against a real vLLM server in
``test_server_vllm.py``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from vlcli.backends import Prompt
from vlcli.backends.vllm.backend import ServerBackend
from vlcli.backends.vllm.client import (
    API_KEY_ENV,
    QUICK_TIMEOUT_S,
    TIMEOUT_S,
    TRUST_FLAG,
    VIDEO_MIME,
    ServerBusy,
    ServerClient,
    ServerError,
    chat_request,
    encode_picture,
    error_message,
    image_url,
    iter_events,
    parse_completion,
    read_stream,
    request_settings,
    video_settings,
    video_size_pin,
    video_url,
    vllm_temporal_positions,
)
from vlcli.errors import ExitStatus, RequestFailed, VlcliError
from vlcli.models.families import QWEN2_5_VL, QWEN3_VL
from vlcli.planning.plan import (
    SamplingOptions,
    VideoFacts,
    plan_image,
    plan_video,
    temporal_positions,
)

pytest_plugins = ("conftest_models",)

# What vLLM 0.32 answered (measured) to media_io_kwargs without --trust-request-mm-kwargs.
UNTRUSTED_400 = {
    "error": {
        "message": "Per-request media_io_kwargs are disabled by default because they can change "
        "multimodal media loading resource usage. Start the server with --trust-request-mm-kwargs "
        "only when clients are trusted. (parameter=media_io_kwargs)",
        "type": "BadRequestError",
        "param": "media_io_kwargs",
        "code": 400,
    }
}


def _frames(n: int = 4, h: int = 56, w: int = 84) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)


def _decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def _plan(family: Any = QWEN2_5_VL, frames: int = 420, fps: float = 25.0, **options: Any) -> Any:
    return plan_video(VideoFacts(160, 96, frames, fps), SamplingOptions(**options), family)


# ---------------------------------------------------------------- frames


def test_png_frames_decode_to_the_same_pixels_from_every_layout() -> None:
    frame = _frames(1)[0]
    hwc = frame.permute(1, 2, 0).numpy()
    for picture in (frame, hwc, Image.fromarray(hwc)):
        assert np.array_equal(_decode(encode_picture(picture)), hwc)


def test_jpeg_is_lossy() -> None:
    frame = _frames(1)[0]
    decoded = _decode(encode_picture(frame, "jpeg"))
    assert decoded.shape == (56, 84, 3)
    assert not np.array_equal(decoded, frame.permute(1, 2, 0).numpy())


def test_pictures_that_are_not_rgb_uint8_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        encode_picture(np.zeros((4, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        encode_picture(np.zeros((4, 5, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="format"):
        encode_picture(np.zeros((4, 5, 3), dtype=np.uint8), "webp")


def test_a_video_is_one_data_url_of_comma_separated_frames_in_order() -> None:
    frames = _frames(3)
    url = video_url(frames)
    prefix = f"data:{VIDEO_MIME};base64,"
    assert url.startswith(prefix)
    parts = url[len(prefix) :].split(",")
    assert len(parts) == 3
    for part, frame in zip(parts, frames, strict=True):
        assert np.array_equal(_decode(part), frame.permute(1, 2, 0).numpy())
    assert image_url(frames[0]).startswith("data:image/png;base64,")


# ---------------------------------------------------------------- requests


def test_qwen25_video_settings_keep_every_frame_at_the_sampled_fps() -> None:
    plan = _plan(nframes=16)
    assert video_settings(plan) == {"num_frames": -1, "fps": plan.sample_fps}
    assert video_size_pin(plan) == {
        "shortest_edge": plan.resized_height * plan.resized_width,
        "longest_edge": plan.resized_height * plan.resized_width,
    }


def test_qwen3_video_settings_carry_the_source_indices_fps_and_frame_count() -> None:
    plan = _plan(QWEN3_VL, nframes=16)
    assert video_settings(plan) == {
        "num_frames": -1,
        "fps": 25.0,
        "frames_indices": list(plan.frame_indices),
        "total_num_frames": 420,
    }
    pixels = plan.frames * plan.resized_height * plan.resized_width  # the whole clip's budget
    assert video_size_pin(plan) == {"shortest_edge": pixels, "longest_edge": pixels}


def test_videos_of_one_request_must_agree_on_their_settings() -> None:
    a, b = _plan(nframes=16), _plan(nframes=8)
    assert request_settings([a, a])["media_io_kwargs"] == {"video": video_settings(a)}
    with pytest.raises(VlcliError, match="one at a time") as caught:
        request_settings([a, b])
    assert caught.value.status == ExitStatus.USAGE
    image = plan_image(200, 120, SamplingOptions(), QWEN2_5_VL)
    assert request_settings([image]) == {}


def test_the_chat_request_puts_the_media_in_order_then_the_question() -> None:
    video = _plan(nframes=8)
    image = plan_image(200, 120, SamplingOptions(), QWEN2_5_VL)
    body = chat_request(
        "m", [(video, "data:v"), (image, "data:i")], "When?", system="Be brief.", max_tokens=7
    )
    assert body["model"] == "m" and body["max_tokens"] == 7 and body["temperature"] == 0.0
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"] == [
        {"type": "video_url", "video_url": {"url": "data:v"}},
        {"type": "image_url", "image_url": {"url": "data:i"}},
        {"type": "text", "text": "When?"},
    ]
    assert body["media_io_kwargs"] == {"video": video_settings(video)}
    assert body["mm_processor_kwargs"] == {"videos_kwargs": {"size": video_size_pin(video)}}
    assert "stream_options" not in body
    streamed = chat_request("m", [], "Hi", stream=True)
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    assert len(streamed["messages"]) == 1 and "media_io_kwargs" not in streamed


# ---------------------------------------------------------------- responses


def test_a_completion_is_parsed_with_its_token_counts() -> None:
    body = {
        "model": "m",
        "choices": [{"message": {"content": "At 3 seconds."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 604, "completion_tokens": 5},
    }
    got = parse_completion(body)
    assert (got.text, got.prompt_tokens, got.completion_tokens) == ("At 3 seconds.", 604, 5)
    assert got.finish_reason == "stop" and got.model == "m"
    with pytest.raises(RequestFailed, match="not a chat completion"):  # that input's failure
        parse_completion({"object": "error"})


def _sse(*events: Any) -> list[bytes]:
    lines = [b": keep-alive comment\n"]
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        lines += [f"data: {data}\n".encode(), b"\n"]
    return lines


def _chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"model": "m", "choices": [{"delta": delta, "finish_reason": finish}]}


def test_a_stream_is_read_piece_by_piece_with_the_usage_of_its_last_chunk() -> None:
    usage = {"model": "m", "choices": [], "usage": {"prompt_tokens": 23, "completion_tokens": 3}}
    lines = _sse(
        {"model": "m", "choices": [{"delta": {"role": "assistant", "content": ""}}]},
        _chunk("At "),
        _chunk("3 s"),
        _chunk(".", "length"),
        usage,
        "[DONE]",
        _chunk("after the end"),
    )
    pieces: list[str] = []
    got = read_stream(iter_events(lines), pieces.append)
    assert pieces == ["At ", "3 s", "."]
    assert (got.text, got.prompt_tokens, got.completion_tokens, got.finish_reason) == (
        "At 3 s.",
        23,
        3,
        "length",
    )


def test_an_error_or_garbage_in_a_stream_fails_the_request_or_is_retried() -> None:
    """An error event fails that input, unless its code says "not now"; garbage fails it; a
    stream that ends before ``[DONE]`` was cut short, and is asked for again."""
    with pytest.raises(RequestFailed, match="mid-answer: engine died"):
        list(iter_events(_sse(_chunk("a"), {"error": {"message": "engine died"}})))
    busy = {"error": {"message": "engine restarting", "code": 503}}
    with pytest.raises(ServerBusy, match="mid-answer: engine restarting") as caught:
        list(iter_events(_sse(_chunk("a"), busy, "[DONE]")))
    assert caught.value.reason == "503 engine restarting" and caught.value.gone
    with pytest.raises(RequestFailed, match="malformed"):
        list(iter_events(_sse("{not json")))
    for code in ([503], {"status": 503}, "503"):  # a code of another shape: that input fails
        odd = {"error": {"message": "odd", "code": code}}
        with pytest.raises(RequestFailed, match="mid-answer: odd"):
            list(iter_events(_sse(_chunk("a"), odd, "[DONE]")))
    with pytest.raises(ServerBusy, match="broke off before its end"):
        list(iter_events(_sse(_chunk("a"))))


@pytest.mark.parametrize(
    "event",
    [
        42,
        "text",
        {"choices": "x"},
        {"choices": ["x"]},
        {"choices": [{"delta": "x"}]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": [{"delta": {"reasoning_content": ["a"]}}]},
        {"choices": [], "usage": "x"},
        {"choices": [], "usage": {"prompt_tokens": "many"}},
    ],
)
def test_an_event_that_is_no_chat_chunk_fails_its_request(event: Any) -> None:
    """Valid JSON of another shape is an answer that is not one: that input fails (not a crash
    of the whole run)."""
    events = iter_events(_sse(_chunk("a"), json.dumps(event), "[DONE]"))
    with pytest.raises(RequestFailed, match="not a chat completion chunk"):
        read_stream(events)


def test_error_lines_name_the_flag_the_key_and_the_model() -> None:
    url = "http://127.0.0.1:8000"
    line = error_message(400, json.dumps(UNTRUSTED_400), url)
    assert TRUST_FLAG in line and url in line and "\n" not in line
    assert API_KEY_ENV in error_message(401, '{"error":"Unauthorized"}', url)
    missing = {"error": {"message": "The model `x` does not exist.", "code": 404}}
    assert "--model" in error_message(404, json.dumps(missing), url)
    assert error_message(500, b"<html>oops</html>", url).endswith("HTTP 500: <html>oops</html>")


def test_server_addresses_are_normalised_and_checked() -> None:
    assert ServerClient("http://h:1/v1/").url == "http://h:1"
    with pytest.raises(VlcliError, match="http://HOST:PORT") as caught:
        ServerClient("h:1")
    assert caught.value.status == ExitStatus.USAGE


# ---------------------------------------------------------------- vLLM's positions


def test_the_fixed_case_where_vllm_and_the_reference_differ() -> None:
    """16 frames of a 420-frame 25 fps clip: second_per_grid_t = 2.1 (float32 2.0999999...)."""
    plan = _plan(nframes=16)
    assert plan.second_per_grid_t == pytest.approx(2.1)
    assert vllm_temporal_positions(8, plan.second_per_grid_t, 2) == [0, 4, 8, 12, 16, 20, 25, 29]
    assert list(plan.temporal_positions) == [0, 4, 8, 12, 16, 21, 25, 29]


def test_vllm_and_reference_positions_differ_by_at_most_one_and_rarely() -> None:
    plans, differing = 0, 0
    for frames in range(70, 1200, 7):
        for nframes in (8, 16, 32, 64):
            for fps in (23.976, 25.0, 29.97, 30.0):
                plan = _plan(frames=frames, fps=fps, nframes=nframes)
                ours = vllm_temporal_positions(plan.grid_thw[0], plan.second_per_grid_t, 2)
                reference = temporal_positions(QWEN2_5_VL, plan.grid_thw[0], plan.second_per_grid_t)
                assert all(abs(a - b) <= 1 for a, b in zip(ours, reference, strict=True))
                plans += 1
                differing += ours != reference
    assert 0 < differing < plans * 0.1


# ---------------------------------------------------------------- a fake server: error paths


Handler = Callable[[BaseHTTPRequestHandler], None]


def _reply(status: int, body: Any, content_type: str = "application/json") -> Handler:
    def handle(h: BaseHTTPRequestHandler) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return handle


@pytest.fixture
def fake_server() -> Iterator[tuple[str, dict[str, Handler], list[dict[str, Any]]]]:
    """A loopback HTTP server answering each path with the handler the test sets."""
    routes: dict[str, Handler] = {}
    seen: list[dict[str, Any]] = []

    class Fake(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            seen.append(
                {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
            )
            routes.get(self.path, _reply(404, {"detail": "Not Found"}))(self)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes, seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_without_the_trust_flag_is_one_line_naming_it(fake_server: Any) -> None:
    url, routes, _ = fake_server
    routes["/v1/chat/completions"] = _reply(400, UNTRUSTED_400)
    body = chat_request("m", [(_plan(nframes=8), "data:v")], "When?")
    with pytest.raises(ServerError) as caught:
        ServerClient(url).chat(body)
    assert TRUST_FLAG in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.status == ExitStatus.MODEL


def test_the_api_key_is_sent_as_a_bearer_token(fake_server: Any) -> None:
    url, routes, seen = fake_server
    routes["/v1/models"] = _reply(200, {"object": "list", "data": [{"id": "served"}]})
    assert ServerClient(url, api_key="k").default_model() == "served"
    assert seen[-1]["auth"] == "Bearer k"
    ServerClient(url).models()
    assert seen[-1]["auth"] is None


def test_the_default_model_needs_exactly_one_served_model(fake_server: Any) -> None:
    url, routes, _ = fake_server
    routes["/v1/models"] = _reply(200, {"data": [{"id": "a"}, {"id": "b"}]})
    with pytest.raises(ServerError, match="choose one with --model"):
        ServerClient(url).default_model()
    routes["/v1/models"] = _reply(200, {"data": []})
    with pytest.raises(ServerError, match="serves no model"):
        ServerClient(url).default_model()


def test_a_stream_that_fails_midway_fails_its_request(fake_server: Any) -> None:
    url, routes, _ = fake_server
    stream = b"".join(_sse(_chunk("At "), {"error": {"message": "engine died"}}))
    routes["/v1/chat/completions"] = _reply(200, stream, "text/event-stream")
    pieces: list[str] = []
    with pytest.raises(RequestFailed, match="engine died"):
        ServerClient(url).chat(chat_request("m", [], "Hi", stream=True), pieces.append)
    assert pieces == ["At "]


def test_answers_that_are_not_json_and_unreachable_servers_are_one_line(fake_server: Any) -> None:
    url, routes, _ = fake_server
    routes["/v1/models"] = _reply(200, b"<html>a proxy page</html>", "text/html")
    with pytest.raises(ServerError, match="did not answer with JSON"):
        ServerClient(url).models()
    routes["/tokenize"] = _reply(200, {"count": 29, "tokens": []})
    assert ServerClient(url).count_tokens([{"role": "user", "content": "hi"}]) == 29
    with pytest.raises(ServerError, match="cannot reach the server"):
        ServerClient("http://127.0.0.1:9", timeout_s=5).models()
    assert isinstance(ServerClient("http://127.0.0.1:9").away(timeout_s=2), ServerBusy)


# ---------------------------------------------------------------- the environment script


def test_the_vllm_environment_script_fails_in_one_line(tmp_path: Path) -> None:
    """A machine where the environment cannot be built says why in one line, and fails."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "vllm_env.sh"
    env = dict(os.environ, VLCLI_VLLM_BASE_PYTHON=str(tmp_path / "no-python"))
    env["VLCLI_VLLM_ENV"] = str(tmp_path / "env")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vllm-env: cannot build")
    assert "VLCLI_VLLM_BASE_PYTHON" in lines[0]


# --concurrency: order and width of the run are the pipeline's, tested in tests/test_pipeline.py
# (a whole run with a stand-in backend of concurrency 3) and against the real server in
# tests/test_server_vllm.py (answers equal to serial ones, in input order).


# ---------------------------------------------------------------- budget --engine


def test_budget_shows_the_positions_of_the_engine_ask_will_use(
    media_dir: Path, tmp_path: Path
) -> None:
    from helpers_media import make_clip
    from typer.testing import CliRunner

    from vlcli.cli.app import app

    clip = make_clip(media_dir / "clip_420_budget.mp4", size=(160, 96), fps=25, seconds=16.8)
    args = ["budget", clip, "--nframes", "16", "--json"]
    records = {}
    for engine in ("transformers", "vllm"):
        result = CliRunner().invoke(app, [*args, "--engine", engine])
        assert result.exit_code == 0, result.output
        records[engine] = json.loads(result.stdout)
    assert records["transformers"]["temporal_positions"] == [0, 4, 8, 12, 16, 21, 25, 29]
    assert records["vllm"]["temporal_positions"] == [0, 4, 8, 12, 16, 20, 25, 29]
    assert records["vllm"]["positions_engine"] == "vllm"
    bad = CliRunner().invoke(app, [*args, "--engine", "tgi"])
    assert bad.exit_code == 2


# ---------------------------------------------------------------- --engine vllm, started lazily


def test_engine_vllm_starts_its_server_only_once_an_input_is_to_be_answered(
    tmp_path: Path, tiny_qwen25_path: Path, tiny_clip: str
) -> None:
    """vLLM takes a minute or more to start: a run with nothing to answer (here: a missing
    input) must not start it; a run with an input does, and a server that fails to start is
    reported as the model not loading (status 4). A stand-in for vLLM's Python records how it
    was started and fails, as a broken vLLM environment would."""
    import sys

    started = tmp_path / "started"
    fake = tmp_path / "python"
    fake.write_text(
        f'#!/bin/sh\necho "$@" > {started}\necho "RuntimeError: no engine here"\nexit 1\n'
    )
    fake.chmod(0o755)
    base = [sys.executable, "-m", "vlcli", "ask", "--engine", "vllm", "--vllm-python", str(fake)]
    base += ["--model", str(tiny_qwen25_path), "--json"]

    nothing = subprocess.run(
        [*base, str(tmp_path / "missing.mp4"), "What happens?"], capture_output=True, text=True
    )
    assert nothing.returncode == ExitStatus.INPUT, nothing.stderr
    assert "missing.mp4" in nothing.stderr and not started.exists()

    answered = subprocess.run([*base, tiny_clip, "What happens?"], capture_output=True, text=True)
    assert answered.returncode == ExitStatus.MODEL, answered.stderr
    assert "vLLM exited (1) while starting: RuntimeError: no engine here" in answered.stderr
    command = started.read_text()
    assert "--trust-request-mm-kwargs" in command and str(tiny_qwen25_path) in command
    assert answered.stdout == ""


def test_engine_vllm_checks_a_max_model_len_given_to_vllm_before_it_starts(
    tmp_path: Path, tiny_qwen25_path: Path
) -> None:
    """A prompt is checked against the context before the local server has started (it starts
    while the first input decodes): a --max-model-len passed to vLLM is that context."""
    from vlcli.backends import Prompt
    from vlcli.errors import MemoryBudgetError
    from vlcli.models.families import resolve_model

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    spec = resolve_model(str(tiny_qwen25_path))
    for args, limit in (
        (("--max-model-len", "2048"), 2048),
        (("--enforce-eager", "--max-model-len=3000"), 3000),
        ((), None),  # the model's own context, as vLLM's default
    ):
        backend = ServerBackend.start_local(
            str(tiny_qwen25_path), spec, python=str(fake), extra_args=args
        )
        assert backend.max_model_len == limit
        assert backend.identity() == {
            "backend": "vllm",
            "server": "local",
            "model": str(tiny_qwen25_path),
        }
        prompt = Prompt(media=[], text="What happens?", max_new_tokens=100)
        backend.check_fit(prompt, 1900, SamplingOptions())  # fits every context here
        if limit is not None:
            with pytest.raises(MemoryBudgetError, match=f"{limit:,} tokens .*the server's context"):
                backend.check_fit(prompt, limit, SamplingOptions())
        backend.close()  # never started: nothing to stop


def test_a_missing_prompt_count_is_said_as_such() -> None:
    """The server's answer without ``usage.prompt_tokens``: the note names that, not missing
    tokenizer files (vlcli counted the prompt with them)."""
    from vlcli.backends.vllm.tokens import served_axes
    from vlcli.models.families import QWEN2_5_VL

    prompt = Prompt(media=(("clip.mp4", _plan(nframes=8)),), text="When?")
    axes, (note,) = served_axes(prompt, QWEN2_5_VL, 100, "tokenizer", None)
    assert axes == (None,)
    assert "usage.prompt_tokens" in note and "tokenizer" not in note
    axes, (note,) = served_axes(prompt, QWEN2_5_VL, 100, "estimate", 100)
    assert "no tokenizer files here and no /tokenize" in note


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket on 127.0.0.1 that accepts every connection and never answers."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_a_server_that_never_answers_is_said_with_what_vlcli_waited_for(
    silent_server: str,
) -> None:
    """Not 600 s of silence per request: the short wait of /v1/models and /tokenize, and the
    answer's own wait, each end in one line naming what did not come."""
    client = ServerClient(silent_server, timeout_s=0.3, quick_timeout_s=0.2)
    with pytest.raises(ServerError) as caught:
        client.models()
    assert str(caught.value) == (
        f"the server at {silent_server} accepted the connection but did not answer "
        "GET /v1/models within 0.2 s"
    )
    with pytest.raises(ServerError, match=r"did not answer POST /tokenize within 0\.2 s"):
        client.count_tokens([{"role": "user", "content": "hi"}])
    with pytest.raises(ServerError) as caught:
        client.chat(chat_request("m", [], "Hi", stream=True))
    assert "did not answer POST /v1/chat/completions within 0.3 s" in str(caught.value)
    assert "first byte of the answer" in str(caught.value)
    assert TIMEOUT_S > QUICK_TIMEOUT_S and QUICK_TIMEOUT_S <= 30
