"""A real vLLM server for the tests: its environment, its process, and a look at what it saw.

vLLM runs from its own environment (``scripts/vllm_env.sh``, the one ``make vllm-env`` builds
and caches outside the clone); :func:`vllm_python` builds it when it is missing and fails the
test, with the script's one line, when it cannot be built: it never skips.

:class:`VllmServer` is the server ``--engine vllm`` starts (``python -m
vllm.entrypoints.openai.api_server`` on 127.0.0.1 and a free port, in a session of its own,
stopped as a whole process group: the API server, its engine core and its worker), with the
settings the tests need.

What the server saw is read through its own render endpoint (``/v1/chat/completions/render``,
served with ``--enable-scale-out``): the same request body goes through the same renderer and
multimodal processor as a chat completion, and the answer carries the prompt's token ids and
the processed tensors (msgpack, base64). :class:`ServerViewer` decodes them with vLLM's own
decoder, in vLLM's environment, and also runs vLLM's own Qwen2.5-VL position function on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from vlcli.backends.vllm.process import EngineError, LocalVllmServer, group_alive

ROOT = Path(__file__).resolve().parent.parent
ENV_SCRIPT = ROOT / "scripts" / "vllm_env.sh"


def vllm_python() -> str:
    """The vLLM environment's python, built (once, cached) by ``scripts/vllm_env.sh``."""
    done = subprocess.run(["bash", str(ENV_SCRIPT)], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        pytest.fail(lines[-1] if lines else f"{ENV_SCRIPT} failed ({done.returncode})", False)
    return done.stdout.strip().splitlines()[-1]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: its parent has not reaped it yet
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class VllmServer(LocalVllmServer):
    """vlcli's own local server (:class:`~vlcli.backends.vllm.process.LocalVllmServer`: its
    command, environment, start and stop) with what the tests add: float32, a 16k context, no
    torch.compile (start-up 100 s instead of 200 s here), the render endpoint, the prompt tokens
    its prefix cache served in each answer's usage (issue 17), an optional API key; a failed
    start fails the test with the log's tail; and the processes it started are remembered, so
    that a test can check none outlives :meth:`stop`."""

    def __init__(
        self,
        python: str,
        model: str,
        log_path: Path,
        *,
        api_key: str | None = None,
        extra_args: tuple[str, ...] = (),
    ):
        args = (
            "--dtype",
            "float32",
            "--max-model-len",
            "16384",
            "--enforce-eager",
            "--enable-scale-out",  # the render endpoint that shows what the server processed
            "--enable-prompt-tokens-details",  # usage.prompt_tokens_details.cached_tokens
            *(["--api-key", api_key] if api_key else []),
            *extra_args,
        )
        super().__init__(python, model, extra_args=args, log_path=str(log_path))
        self.api_key = api_key
        self.group: int | None = None
        self.started_pids: set[int] = set()  # the server and every process it had started

    def __enter__(self) -> VllmServer:
        try:
            self.start()
        except EngineError as exc:
            pytest.fail(f"{exc.message}\n{self.log_tail()}", False)
        assert self.process is not None
        self.group = self.process.pid
        self.started_pids = {self.group} | descendants(self.group)
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        """Whether any process of the server's group, or any it had started, still runs."""
        if self.group is None:
            return False
        return group_alive(self.group) or any(pid_alive(p) for p in self.started_pids)

    def memory_kib(self) -> int:
        """Proportional set size of the server's processes, summed (KiB)."""
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) != self.group:
                    continue
                for line in (entry / "smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except (OSError, ProcessLookupError):
                continue
        return total


# Run in vLLM's environment, once per test session: for each request line (a render answer's
# path, the model's config.json, a folder for the tensors) it decodes the answer with vLLM's own
# msgpack decoder, saves the large tensors as .npy files, computes vLLM's own Qwen2.5-VL
# positions for it, and answers one JSON line.
_VIEW_SCRIPT = r"""
import json, sys, traceback, types
import numpy as np
import torch
from vllm.entrypoints.scale_out.token_in_token_out.mm_serde import decode_mm_kwargs_item


def view(render_path, config_path, out_dir):
    render = json.load(open(render_path))
    config = json.load(open(config_path))
    features = render["features"]
    result = {"token_ids": render["token_ids"], "placeholders": features["mm_placeholders"],
              "items": []}
    specs = []
    for modality, items in (features.get("kwargs_data") or {}).items():
        for k, (item, ph) in enumerate(zip(items, features["mm_placeholders"][modality])):
            data = decode_mm_kwargs_item(item)
            entry = {"modality": modality, "offset": ph["offset"], "length": ph["length"]}
            for key, elem in data.items():
                value = elem.data
                if isinstance(value, torch.Tensor) and value.numel() > 64:
                    path = f"{out_dir}/{modality}{k}_{key}.npy"
                    np.save(path, value.numpy())
                    entry[key] = {"npy": path, "dtype": str(value.dtype),
                                  "shape": list(value.shape)}
                elif isinstance(value, torch.Tensor):
                    entry[key] = value.tolist()
                else:
                    entry[key] = value
            result["items"].append(entry)
            specs.append(types.SimpleNamespace(
                modality=modality, data=data,
                mm_position=types.SimpleNamespace(offset=ph["offset"], length=ph["length"])))
    if config.get("model_type") == "qwen2_5_vl":
        from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration as C
        me = types.SimpleNamespace(config=types.SimpleNamespace(
            vision_config=types.SimpleNamespace(**config["vision_config"])))
        me.iter_mm_grid_thw = lambda feats: C.iter_mm_grid_thw(me, feats)
        positions, _ = C.get_mrope_input_positions(me, render["token_ids"], specs)
        result["positions"] = positions.numpy().tolist()
    return result


print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    try:
        answer = view(*json.loads(line))
    except Exception:
        answer = {"error": traceback.format_exc()}
    print(json.dumps(answer), flush=True)
"""


class ServerViewer:
    """A process in vLLM's environment that decodes render answers (see :func:`server_view`).

    Started once (importing vLLM takes 10-30 s here), asked one line at a time; a context manager.
    """

    def __init__(self, python: str):
        self.folder = Path(tempfile.mkdtemp(prefix="vllm_view_"))
        script = self.folder / "view.py"
        script.write_text(_VIEW_SCRIPT)
        self.process = subprocess.Popen(
            [python, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, VLLM_TARGET_DEVICE="cpu"),
        )
        self._read()  # the ready line
        self.count = 0

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the vLLM view process exited ({self.process.wait()})")
        answer = dict(json.loads(line))
        if "error" in answer:
            raise RuntimeError(f"decoding the render answer failed:\n{answer['error']}")
        return answer

    def view(self, render: dict[str, Any], model_folder: str | Path) -> dict[str, Any]:
        """What the server made of a request: token ids, each item's processed tensors and grid,
        and, for Qwen2.5-VL, the (3, tokens) mRoPE positions vLLM's own code gives them.

        Large tensors come back as ``{"npy": path, ...}`` (load with ``numpy.load``).
        """
        self.count += 1
        out_dir = self.folder / str(self.count)
        out_dir.mkdir()
        (out_dir / "render.json").write_text(json.dumps(render))
        request = [
            str(out_dir / "render.json"),
            str(Path(model_folder) / "config.json"),
            str(out_dir),
        ]
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerViewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def patchify(frames: Any, patch_size: int, temporal_patch_size: int = 2, merge: int = 2) -> Any:
    """uint8 frames ``(n, 3, H, W)`` laid out as the Qwen-VL processors' patch rows.

    ``(grid_t * grid_h * grid_w, 3 * temporal_patch_size * patch_size**2)``, rows ordered by
    temporal patch, then merged block, then the patch inside the block: the layout of
    ``pixel_values_videos`` before normalisation (vLLM sends it as uint8 and normalises later).
    """
    n, c, h, w = frames.shape
    gt, gh, gw = n // temporal_patch_size, h // patch_size, w // patch_size
    x = frames.reshape(
        gt, temporal_patch_size, c, gh // merge, merge, patch_size, gw // merge, merge, patch_size
    )
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * temporal_patch_size * patch_size * patch_size)
