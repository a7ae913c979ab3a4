"""Frame decode + preprocessing: vlcli against the reference pipeline, on the CPU.

Not collected by the test run. `make bench` (or `python tests/benchmarks/bench_preprocess.py`)
makes a 60 s 1080p H.264 clip (x264, 30 fps, its default GOP and B-frames) once under .bench/,
saves a small processor (the tiny test model's: same image/video processor classes and
constants as the released checkpoints), then runs each pipeline in a fresh process, alternating,
``--repeat`` times:

* reference: ``qwen_vl_utils.process_vision_info`` (torchcodec backend) and then the
  transformers processor over the whole video, as the Qwen2.5-VL README does
  (tests/helpers_reference.py, the equivalence test's oracle);
* vlcli: ``vlcli.media.probe`` + ``vlcli.plan.plan_video`` + ``vlcli.inputs.build_inputs``
  (decode the planned frames 8 at a time, resize, normalise and patch each chunk into one
  preallocated tensor, in ``--dtype``: float32 as ``ask`` on the CPU, bfloat16 as on a GPU,
  where that tensor then lives on the GPU).

Measured per run, after the imports: wall seconds of the work, peak resident memory of the
process (``ru_maxrss``) and that peak less the resident memory before the work. Prints a table
and one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"
sys.path.insert(0, str(ROOT / "tests"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_clip(path: Path, seconds: int = 60) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )


def make_processor(folder: Path) -> None:
    if (folder / "config.json").exists():
        return
    from tinymodels import save_tiny_model

    save_tiny_model("qwen2_5_vl", folder)


def child(which: str, clip: str, model: str, dtype: str = "float32") -> dict[str, float]:
    import torch
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model)
    question = "What happens in this video?"
    if which == "reference":
        import qwen_vl_utils  # noqa: F401 - imported before the clock starts, as vlcli's modules
        from helpers_reference import reference_inputs, video_question
    else:
        from vlcli.families import resolve_model
        from vlcli.inputs import build_inputs
        from vlcli.media import probe
        from vlcli.plan import SamplingOptions, plan_video
    before = rss_mb()
    start = time.perf_counter()
    if which == "reference":
        inputs = reference_inputs(processor, video_question(clip, question))
        rows = inputs["pixel_values_videos"].shape[0]
    else:
        family = resolve_model(model).family
        plan = plan_video(probe(clip).video_facts(), SamplingOptions(), family)
        inputs, _ = build_inputs(
            processor, family, [(clip, plan)], question, dtype=getattr(torch, dtype)
        )
        rows = inputs["pixel_values_videos"].shape[0]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "peak_rss_mb": peak,
        "peak_over_start_mb": peak - before,
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--child", choices=["reference", "vlcli"])
    ap.add_argument("--clip")
    ap.add_argument("--model")
    ap.add_argument(
        "--dtype",
        default="float32",
        help="vlcli's pixel values: float32 (ask on the CPU) or bfloat16 (ask on a GPU)",
    )
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.clip, args.model, args.dtype)))
        return
    clip = BENCH / f"h264_1080p_{args.seconds}s.mp4"
    model = BENCH / "tiny_qwen25"
    make_clip(clip, args.seconds)
    make_processor(model)
    runs: dict[str, list[dict[str, float]]] = {"reference": [], "vlcli": []}
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for _ in range(args.repeat):
        for which in ("reference", "vlcli"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    which,
                    "--clip",
                    str(clip),
                    "--model",
                    str(model),
                    "--dtype",
                    args.dtype,
                ],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            runs[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    assert best["reference"]["rows"] == best["vlcli"]["rows"], (
        "the two pipelines made different inputs"
    )
    print(f"{'pipeline':<10} {'seconds':>8} {'peak RSS MB':>12} {'peak over start MB':>19}")
    for k, r in best.items():
        print(
            f"{k:<10} {r['seconds']:>8.2f} {r['peak_rss_mb']:>12.0f} {r['peak_over_start_mb']:>19.0f}"
        )
    speed = best["reference"]["seconds"] / best["vlcli"]["seconds"]
    mem = best["reference"]["peak_rss_mb"] / best["vlcli"]["peak_rss_mb"]
    mem_work = best["reference"]["peak_over_start_mb"] / max(
        best["vlcli"]["peak_over_start_mb"], 1.0
    )
    print(f"vlcli is {speed:.2f}x faster; reference peak RSS is {mem:.2f}x vlcli's")
    print(f"counting the work alone (peak less the memory before it): {mem_work:.2f}x")
    print(
        json.dumps(
            {
                "clip": clip.name,
                "cpu_count": os.cpu_count(),
                "runs": runs,
                "speedup": speed,
                "peak_rss_ratio": mem,
                "peak_work_ratio": mem_work,
            }
        )
    )


if __name__ == "__main__":
    main()
