"""Frame decode + preprocessing: vlcli against the reference pipeline, on the CPU, in one run.

Not collected by the test run. `make bench` (or `python tests/benchmarks/bench_preprocess.py`)
makes two 60 s 1080p30 H.264 clips once under .bench/ (testsrc2, x264 ``veryfast``: B-frames with
b-pyramid and 250-frame GOPs, as most camera and web video; x264 ``ultrafast``: no B-frames, so
every frame is a reference), saves a small processor (the tiny test model's: the same image and
video processor classes and constants as the released checkpoints), then runs every pipeline on
every clip in a fresh process, interleaved, ``--repeat`` rounds:

* ``reference``: ``qwen_vl_utils.process_vision_info`` (torchcodec) and the transformers
  processor over the whole video, as the Qwen2.5-VL README does (tests/helpers_reference.py);
* ``vlcli``: ``probe`` + ``plan_video`` + ``build_inputs`` (decode only the planned frames'
  packets, resize, normalise and patch one temporal patch at a time into one preallocated
  tensor, ``--dtype``: float32 as ``ask`` on the CPU), with every CPU for decoding;
* ``vlcli-w1``, ``vlcli-w2``: the same with decoding limited to 1 and 2 CPUs
  (``VLCLI_DECODE_WORKERS``), to show how the keyframe pieces scale;
* ``vlcli-torch-resize``: the same with the resize done by torch (``VLCLI_RESIZE=torch``), not
  by the compiled kernel (vlcli.media.resample), to show what the kernel saves.

Imports (torch, transformers, torchcodec, PyAV, qwen-vl-utils) happen before the clock starts.
Per run: wall seconds of the work; CPU seconds of the process and its decoding workers; peak
memory as the largest sum of the proportional set sizes (PSS, shared pages split between the
processes sharing them) over the pipeline's processes, sampled every 20 ms from outside, and the
process's own peak RSS (``ru_maxrss``; its workers are separate processes). Times and memory
come from two runs, back to back: sampling slows the run it watches (see :func:`run_one`). After the clock
stops, each pipeline hashes its ``pixel_values_videos``: the table says whether vlcli's bytes
equal the reference's in every round. Ratios are taken within a round (same machine state) and
given as best and spread. Prints a table and one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"
sys.path.insert(0, str(ROOT / "tests"))

CLIPS = {"veryfast": "veryfast", "ultrafast": "ultrafast"}
PIPELINES = {
    "reference": {},
    "vlcli": {},
    "vlcli-w1": {"VLCLI_DECODE_WORKERS": "1"},
    "vlcli-w2": {"VLCLI_DECODE_WORKERS": "2"},
    "vlcli-torch-resize": {"VLCLI_RESIZE": "torch"},
}


def make_clip(path: Path, preset: str, seconds: int = 60) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    source = "testsrc2=size=1920x1080:rate=30"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds),
         "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip


def make_processor(folder: Path) -> None:
    if (folder / "config.json").exists():
        return
    from tinymodels import save_tiny_model

    save_tiny_model("qwen2_5_vl", folder)


def child(which: str, clip: str, model: str, dtype: str) -> dict[str, object]:
    import av  # noqa: F401 - imported before the clock starts, as every other module
    import qwen_vl_utils  # noqa: F401
    import torch
    import torchcodec  # noqa: F401
    from transformers import AutoProcessor

    from vlcli.backends.transformers.model_inputs import build_inputs
    from vlcli.media.probe import probe
    from vlcli.models.families import resolve_model
    from vlcli.planning.plan import SamplingOptions, plan_video

    processor = AutoProcessor.from_pretrained(model)
    # The processor's first call imports more of transformers (about 2 s): do it before the clock.
    tiny = torch.zeros((2, 3, 56, 56), dtype=torch.uint8)
    processor.video_processor(videos=[tiny], do_sample_frames=False, return_tensors="pt")
    question = "What happens in this video?"
    from helpers_reference import reference_inputs, video_question

    wall, cpu, workers = time.perf_counter(), _cpu_seconds(), _cpu_seconds(resource.RUSAGE_CHILDREN)
    if which == "reference":
        inputs = reference_inputs(processor, video_question(clip, question))
    else:
        family = resolve_model(model).family
        plan = plan_video(probe(clip).video_facts(), SamplingOptions(), family)
        inputs, _ = build_inputs(
            processor, family, [(clip, plan)], question, dtype=getattr(torch, dtype)
        )
    seconds = time.perf_counter() - wall
    cpu = _cpu_seconds() - cpu
    workers = _cpu_seconds(resource.RUSAGE_CHILDREN) - workers
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pixels = inputs["pixel_values_videos"]
    digest = hashlib.sha256()
    for rows in pixels.split(4096):  # no copy of the whole tensor: it would be the peak
        digest.update(memoryview(rows.contiguous().view(torch.uint8).numpy()))
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "workers_cpu_s": workers,
        "ru_maxrss_mb": peak,
        "rows": int(pixels.shape[0]),
        "sha256": digest.hexdigest(),
    }


def _cpu_seconds(who: int | None = None) -> float:
    """CPU seconds of this process and its reaped decoding workers (or of ``who`` alone)."""
    kinds = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) if who is None else (who,)
    return sum(resource.getrusage(k).ru_utime + resource.getrusage(k).ru_stime for k in kinds)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the decoding workers)."""
    found = [pid]
    for p in found:
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        found.extend(int(c) for c in children)
    return found


def _pss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total / 1024


def run_one(which: str, clip: Path, model: Path, dtype: str) -> dict[str, object]:
    """Two runs of one pipeline: one timed with nothing watching it, then one whose memory is
    sampled. Reading a process's ``smaps_rollup`` walks its page tables under the lock that
    its page faults take, so sampling slows what it watches, the more so the more processes
    and page faults a pipeline has (measured: vlcli's 5.9 s became 8.2-8.9 s)."""
    timed = _child_run(which, clip, model, dtype, watch=False)
    watched = _child_run(which, clip, model, dtype, watch=True)
    if watched["sha256"] != timed["sha256"]:
        raise SystemExit(f"{which} on {clip.name}: two runs gave different pixel values")
    timed["peak_pss_mb"] = watched["peak_pss_mb"]
    return timed


def _child_run(which: str, clip: Path, model: Path, dtype: str, watch: bool) -> dict[str, object]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **PIPELINES[which]}
    base = which.split("-")[0]
    cmd = [sys.executable, __file__, "--child", base, "--clip", str(clip), "--model", str(model),
           "--dtype", dtype]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0.0
    while watch and proc.poll() is None:
        peak = max(peak, _pss_mb(_tree(proc.pid)))
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{which} on {clip.name} failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_pss_mb"] = peak
    return result


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--child", choices=["reference", "vlcli"])
    ap.add_argument("--clip")
    ap.add_argument("--model")
    ap.add_argument("--clips", default=",".join(CLIPS), help="veryfast,ultrafast")
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument(
        "--dtype",
        default="float32",
        help="vlcli's pixel values: float32 (ask on the CPU) or bfloat16 (ask on a GPU)",
    )
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.clip, args.model, args.dtype)))
        return
    model = BENCH / "tiny_qwen25"
    make_processor(model)
    clips = {}
    for name in args.clips.split(","):
        clips[name] = BENCH / f"h264_1080p_{args.seconds}s_{CLIPS[name]}.mp4"
        make_clip(clips[name], CLIPS[name], args.seconds)
    pipelines = args.pipelines.split(",")
    runs: dict[str, dict[str, list[dict[str, object]]]] = {
        c: {p: [] for p in pipelines} for c in clips
    }
    started = time.strftime("%Y-%m-%d %H:%M")
    load = os.getloadavg()
    for _ in range(args.repeat):
        for name, clip in clips.items():
            for which in pipelines:
                runs[name][which].append(run_one(which, clip, model, args.dtype))
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, {started}, load before "
        f"{load[0]:.1f}/{load[1]:.1f}, after {os.getloadavg()[0]:.1f}; best (range) of "
        f"{args.repeat} interleaved rounds; pixel_values_videos {args.dtype}"
    )
    head = f"{'clip':<10} {'pipeline':<10} {'wall s':>18} {'CPU s':>18} {'peak PSS MB':>22}"
    print(head + f" {'ru_maxrss MB':>13} {'pixels == reference':>20}")
    summary: dict[str, dict[str, object]] = {}
    for name in clips:
        ref = runs[name].get("reference", [])
        for which, rs in runs[name].items():
            same = [
                r["sha256"] == ref[i]["sha256"] and r["rows"] == ref[i]["rows"]
                for i, r in enumerate(rs)
            ] if ref else []  # fmt: skip
            print(
                f"{name:<10} {which:<10} {_spread([r['seconds'] for r in rs]):>18} "  # type: ignore[misc]
                f"{_spread([r['cpu_s'] for r in rs]):>18} "  # type: ignore[misc]
                f"{_spread([r['peak_pss_mb'] for r in rs]):>22} "  # type: ignore[misc]
                f"{min(r['ru_maxrss_mb'] for r in rs):>13.0f} "  # type: ignore[type-var]
                f"{'yes' if same and all(same) else 'NO' if same else '-':>20}"
            )
        if not ref:
            continue
        for which, rs in runs[name].items():
            if which == "reference":
                continue
            wall = [r["seconds"] / ref[i]["seconds"] for i, r in enumerate(rs)]  # type: ignore[operator]
            mem = [r["peak_pss_mb"] / ref[i]["peak_pss_mb"] for i, r in enumerate(rs)]  # type: ignore[operator]
            summary[f"{name}/{which}"] = {"wall_ratio": wall, "peak_pss_ratio": mem}
            print(
                f"{name:<10} {which:<10} wall / reference's in the same round: "
                f"{_spread(wall)}; peak PSS / reference's: {_spread(mem)}"
            )
    print(json.dumps({"cpu_count": os.cpu_count(), "started": started, "runs": runs,
                      "ratios": summary}))  # fmt: skip


if __name__ == "__main__":
    main()
