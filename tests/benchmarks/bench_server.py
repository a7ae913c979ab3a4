"""Records per minute over a folder of short clips: the in-process backend against a vLLM server.

Run from the repository root with vlcli's venv (the vLLM environment comes from `make vllm-env`):

    python tests/benchmarks/bench_server.py [--clips 20] [--new-tokens 16]

It makes the clips (2-4 s, 160x96 to 320x180, testsrc2) and a tiny random Qwen2.5-VL (head size
32, as vLLM's CPU kernels need), starts one vLLM server, and times whole `vlcli ask FOLDER ...
--json` commands, alternating: the in-process transformers backend, then `--server URL` with
`--concurrency 1` and `4`. Each command's time includes Python's start and, in-process, loading
the model; the server's start-up is not counted (it is printed apart). vlcli's own work per
request (decoding, and encoding the frames into the request) is read from the records' timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from helpers_media import make_clip  # noqa: E402
from helpers_vllm import VllmServer, vllm_python  # noqa: E402
from tinymodels import save_tiny_model  # noqa: E402

QUESTION = "What happens, and at which second?"


def run(args: list[str]) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vlcli", "ask", *args], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"vlcli failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, [json.loads(line) for line in done.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    a = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_server_"))
    clips = work / "clips"
    sizes = [(160, 96), (320, 180), (240, 136), (96, 160)]
    for i in range(a.clips):
        make_clip(clips / f"c{i:02d}.mp4", size=sizes[i % 4], fps=25, seconds=2 + (i % 3))
    model = save_tiny_model("qwen2_5_vl", work / "tiny-Qwen2.5-VL-hd32", head_dim=32)
    common = [str(clips), QUESTION, "--json", "--max-new-tokens", str(a.new_tokens)]
    with VllmServer(vllm_python(), str(model), work / "server.log") as server:
        print(f"server start-up: {server.startup_s:.0f} s", flush=True)
        variants = {
            "in-process (transformers, CPU, float32)": ["--model", str(model), "--device", "cpu"],
            "server, --concurrency 1": ["--server", server.url, "--concurrency", "1"],
            "server, --concurrency 4": ["--server", server.url, "--concurrency", "4"],
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        overhead: dict[str, list[dict]] = {}
        for _ in range(a.repeat):
            for name, extra in variants.items():
                elapsed, records = run([*common, *extra])
                assert len(records) == a.clips, records
                times[name].append(elapsed)
                overhead[name] = [r["timings"] for r in records]
    print(f"{a.clips} clips, {a.new_tokens} new tokens each; best of {a.repeat} runs:")
    for name, values in times.items():
        best = min(values)
        print(
            f"  {name}: {best:.1f} s ({', '.join(f'{v:.1f}' for v in values)}), "
            f"{a.clips / best * 60:.0f} records/min"
        )
    for name in ("server, --concurrency 1",):
        t = overhead[name]
        decode = statistics.median(x["decode_s"] for x in t)
        encode = statistics.median(x["preprocess_s"] for x in t)
        answer = statistics.median(x["generate_s"] for x in t)
        print(
            f"  per request ({name}): decoding {decode * 1000:.0f} ms, encoding and building the "
            f"request {encode * 1000:.0f} ms, the server's answer {answer * 1000:.0f} ms (medians)"
        )


if __name__ == "__main__":
    main()
