"""vlcli's activation-memory estimate against the peak measured while the model runs, on the CPU.

Not collected by the test run. ``python tests/benchmarks/bench_memory.py`` builds random-weight
models under .bench/memory/ (the tiny test models, and mid-size ones with the released vision
towers' widths and a language model half the 7B's width: a few hundred million parameters),
makes images and clips of several sizes, and runs each case in a fresh process:
``TransformersBackend`` (the real loading and input code) prepares the prompt, then ``generate`` with one
new token (the vision tower and the prefill, nothing else) runs under ``torch.profiler`` with
``profile_memory=True``.

What is measured, and why it is the GPU's figure: the profiler reports every allocation and free
of the CPU allocator; their running sum is the bytes of live tensors, the quantity CUDA's
``max_memory_allocated`` reports on a GPU. Its peak during the vision tower (the profiler's
``vlcli.vision`` range) and during the prefill (after it) are taken apart; the prefill's less the
KV cache's exact size (read from the returned cache), and both plus the pixel values (built
before the profiled range and held to the end), give the measured activation peak. The weights
are loaded before the range and the KV cache is subtracted: both are counted apart, exactly,
by the estimate. Two differences from a GPU remain: PyTorch's CPU attention kernel is its own
flash kernel (like CUDA's, it builds no score matrix; ``eager`` builds the same matrices on
both), and the CPU runs float32 by default where a GPU runs bfloat16, so cases run in both.

Cross-check, from a first run of the same ``generate`` without the profiler: the peak resident
memory (``VmHWM`` after resetting it through ``/proc/self/clear_refs``) less the resident
memory at its start, less the KV cache, plus the pixel values; glibc is told to give every
block of 128 KiB or more back at once (``MALLOC_MMAP_THRESHOLD_``) so that freed tensors leave
the resident set. It also counts what a GPU's figure would not: the first run's one-time set-up
(thread pools, kernel code), kernel scratch buffers and the small-block heap.

    python tests/benchmarks/bench_memory.py                # every case (1.5 h on 2 loaded cores)
    python tests/benchmarks/bench_memory.py --only mid     # the cases naming "mid"
    python tests/benchmarks/bench_memory.py --table        # the stored results, estimate redone
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench" / "memory"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

QUESTION = "Describe what happens, with times."

# Mid-size models: each family's released vision tower widths (fewer blocks: the peak is one
# block's), a language model of half the 7B's width with 4 layers. Built with random weights.
MID_TEXT = dict(
    hidden_size=1792,
    intermediate_size=9472,
    num_hidden_layers=4,
    num_attention_heads=14,
    num_key_value_heads=2,
    head_dim=128,
)
MID_VISION = {
    "qwen2_5_vl": dict(
        depth=4,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        window_size=112,
        fullatt_block_indexes=[3],
    ),
    "qwen2_vl": dict(depth=2, embed_dim=1280, mlp_ratio=4, num_heads=16),
    "qwen3_vl": dict(
        depth=3,
        hidden_size=1152,
        intermediate_size=4304,
        num_heads=16,
        num_position_embeddings=2304,
        deepstack_visual_indexes=[0, 1],
    ),
    "qwen3_5": dict(
        depth=2, hidden_size=1152, intermediate_size=4304, num_heads=16, num_position_embeddings=2304
    ),
}
# Qwen3.5: the released language model's layer widths (Qwen3.5-2B's: 2048 wide, 8 heads of 256,
# 16 linear key and value heads of 128), four layers (three linear, one full).
MID_QWEN3_5_TEXT = dict(
    hidden_size=2048,
    intermediate_size=6144,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=256,
    linear_num_key_heads=16,
    linear_num_value_heads=16,
    linear_key_head_dim=128,
    linear_value_head_dim=128,
)

# name -> (kind, width, height, seconds): images as PNG of noise, clips from FFmpeg's testsrc2.
MEDIA = {
    "img-0.3mp": ("image", 640, 480, 0),
    "img-1.2mp": ("image", 1280, 960, 0),
    "img-3mp": ("image", 2048, 1536, 0),
    "img-12mp": ("image", 4000, 3000, 0),
    "vid-360p-8s": ("video", 640, 360, 8),
    "vid-720p-4s": ("video", 1280, 720, 4),
    "vid-270p-30s": ("video", 480, 270, 30),
}

# (model, dtype, attn, media)
CASES = [
    *[
        (f"tiny-{fam}", "float32", "sdpa", m)
        for fam in ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
        for m in ("img-1.2mp", "img-12mp", "vid-720p-4s", "vid-270p-30s")
    ],
    ("tiny-qwen2_5_vl", "float32", "eager", "img-1.2mp"),
    ("tiny-qwen2_5_vl", "float32", "eager", "vid-360p-8s"),
    *[
        ("mid-qwen2_5_vl", dtype, "sdpa", m)
        for dtype in ("float32", "bfloat16")
        for m in ("img-0.3mp", "img-3mp", "vid-360p-8s", "vid-270p-30s")
    ],
    ("mid-qwen2_5_vl", "float32", "sdpa", "img-12mp"),
    ("mid-qwen2_5_vl", "float32", "eager", "img-0.3mp"),
    ("mid-qwen2_5_vl", "bfloat16", "eager", "img-0.3mp"),
    ("mid-qwen2_5_vl", "float32", "eager", "vid-360p-8s"),
    ("mid-qwen2_vl", "bfloat16", "sdpa", "img-3mp"),
    ("mid-qwen2_vl", "float32", "sdpa", "vid-360p-8s"),
    ("mid-qwen3_vl", "bfloat16", "sdpa", "img-3mp"),
    ("mid-qwen3_vl", "float32", "sdpa", "vid-360p-8s"),
    *[("tiny-qwen3_5", "float32", "sdpa", m) for m in ("img-1.2mp", "vid-720p-4s", "vid-270p-30s")],
    *[("mid-qwen3_5", "float32", "sdpa", m) for m in ("img-3mp", "vid-360p-8s", "vid-270p-30s")],
    ("mid-qwen3_5", "bfloat16", "sdpa", "vid-360p-8s"),
    *[("tiny-qwen3_5_moe", "float32", "sdpa", m) for m in ("img-1.2mp", "vid-270p-30s")],
]


# ---------------------------------------------------------------- set-up (parent process)


def mid_config(family: str, tok: Any) -> Any:
    """The mid-size ``family`` config: the released vision tower's widths, a half-width 4-layer
    language model, the tiny tokenizer's special-token ids."""
    from tinymodels import build_config

    config = build_config(family, tok)
    text = config.text_config
    hybrid = family == "qwen3_5"
    for key, value in (MID_QWEN3_5_TEXT if hybrid else MID_TEXT).items():
        setattr(text, key, value)
    sections = {"qwen3_vl": [24, 20, 20], "qwen3_5": [11, 11, 10]}.get(family, [16, 24, 24])
    text.rope_parameters = dict(text.rope_parameters, mrope_section=sections)
    if not hybrid:  # Qwen3.5 keeps its three linear layers and one full
        text.layer_types = ["full_attention"] * MID_TEXT["num_hidden_layers"]
    vision = config.vision_config
    for key, value in MID_VISION[family].items():
        setattr(vision, key, value)
    if family == "qwen2_vl":
        vision.hidden_size = MID_TEXT["hidden_size"]  # Qwen2-VL: hidden_size is the merger's output
    else:
        vision.out_hidden_size = text.hidden_size
    return config


def build_mid(family: str, folder: Path) -> None:
    import torch
    from tinymodels import (
        _token_ids,
        build_processor,
        build_tokenizer,
        model_class,
        save_processor_like_release,
    )
    from transformers import GenerationConfig

    tok = build_tokenizer(family=family)
    torch.manual_seed(0)
    model = model_class(family)._from_config(mid_config(family, tok)).eval()
    ids = _token_ids(tok)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["eos_token_id"]], pad_token_id=ids["pad_token_id"], do_sample=False
    )
    model.save_pretrained(folder, safe_serialization=True)
    save_processor_like_release(build_processor(family, tok), folder, family)


def model_folder(name: str) -> Path:
    folder = BENCH / name
    if (folder / "config.json").exists():
        return folder
    size, family = name.split("-", 1)
    if size == "tiny":
        from tinymodels import save_tiny_model

        save_tiny_model(family, folder)
    else:
        build_mid(family, folder)
    return folder


def media_path(name: str) -> Path:
    return BENCH / (name + (".png" if MEDIA[name][0] == "image" else ".mp4"))


def media_file(name: str) -> Path:
    kind, width, height, seconds = MEDIA[name]
    path = media_path(name)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "image":
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    else:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size={width}x{height}:rate=30", "-t", str(seconds),
             "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )  # fmt: skip
    return path


# ---------------------------------------------------------------- one case (child process)


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _cache_bytes(out: object, linear: bool = False) -> int:
    """The returned cache's keys and values; ``linear``: its linear-attention layers' states."""
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
    total = 0
    for layer in getattr(cache, "layers", []):
        if linear:
            states = [getattr(layer, "conv_states", {}), getattr(layer, "recurrent_states", {})]
            held = [t for kept in states for t in kept.values()]
        else:
            held = [getattr(layer, "keys", None), getattr(layer, "values", None)]
        total += sum(t.numel() * t.element_size() for t in held if hasattr(t, "numel"))
    return total


def measure_peaks(runner: Any, inputs: dict[str, Any]) -> dict[str, int]:
    """Peak live tensor bytes of ``generate`` (one new token) over ``inputs``, under the profiler.

    ``vision`` is the peak up to the end of the vision tower's range, ``prefill`` the peak after
    it; both count from the live bytes when the profiler starts (weights and inputs already
    loaded: not counted). ``kv`` is the returned cache's size, ``pixels`` the pixel values'.
    """
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    visual = runner.model.model.visual
    forward = visual.forward

    def marked(*args: object, **kwargs: object) -> object:
        with record_function("vlcli.vision"):
            return forward(*args, **kwargs)

    visual.forward = marked
    try:
        gc.collect()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = _generate(runner, inputs)
        kv, linear = _cache_bytes(out), _cache_bytes(out, linear=True)
        del out
    finally:
        visual.forward = forward
    events = prof.profiler.kineto_results.events()
    (vision_range,) = [e for e in events if e.name() == "vlcli.vision"]
    live = vision = prefill = 0
    for e in sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns()):
        live += e.nbytes()
        if e.start_ns() <= vision_range.end_ns():
            vision = max(vision, live)
        else:
            prefill = max(prefill, live)
    pixels = sum(
        v.numel() * v.element_size() for k, v in inputs.items() if k.startswith("pixel_values")
    )
    return {"vision": vision, "prefill": prefill, "kv": kv, "linear": linear, "pixels": pixels}


def _generate(runner: Any, inputs: dict[str, Any]) -> object:
    import torch

    from vlcli.backends.transformers.generation import generation_config

    config = generation_config(runner.model, runner.processor.tokenizer, 1, 0.0)
    with torch.inference_mode():
        return runner.model.generate(
            **inputs, generation_config=config, return_dict_in_generate=True
        )


def run_case(model: str, dtype: str, attn: str, media: str) -> dict[str, object]:
    import torch

    from vlcli.backends.transformers.backend import TransformersBackend
    from vlcli.planning.plan import SamplingOptions
    from vlcli.run.budget import plan_inputs

    folder, path = str(BENCH / model), str(media_path(media))
    runner = TransformersBackend(folder, device="cpu", dtype=dtype, attn=attn, warn=lambda m: None)
    item = next(iter(plan_inputs([path], SamplingOptions(), runner.spec)))
    assert item.plan is not None, item.error
    inputs, stats = runner.inputs_for([(path, item.plan)], QUESTION)
    # First run, without the profiler: the resident-memory cross-check (and the warm-up). The
    # weights are read once before: loaded from safetensors they may still be file pages that
    # only become resident when first used.
    with torch.inference_mode():
        float(sum(p.float().sum() for p in runner.model.parameters()))
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss0 = _status_kib("VmRSS")
    started = time.perf_counter()
    out = _generate(runner, inputs)
    kv = _cache_bytes(out) + _cache_bytes(out, linear=True)
    del out
    seconds = time.perf_counter() - started
    rss_peak = (_status_kib("VmHWM") - rss0) * 1024
    # Second run, under the profiler: live tensor bytes, the vision tower's range marked.
    peaks = measure_peaks(runner, inputs)
    assert peaks["kv"] + peaks["linear"] == kv
    pixels = peaks["pixels"]
    return {
        "model": model,
        "dtype": dtype,
        "attn": attn,
        "media": media,
        "grid_thw": list(item.plan.grid_thw),
        "prompt_tokens": stats.prompt_tokens,
        "pixel_bytes": pixels,
        "kv_bytes": peaks["kv"],
        "linear_state_bytes": peaks["linear"],
        "measured_vision_bytes": peaks["vision"] + pixels,
        "measured_prefill_bytes": peaks["prefill"] - kv + pixels,
        "measured_bytes": max(peaks["vision"], peaks["prefill"] - kv) + pixels,
        "rss_bytes": rss_peak - kv + pixels,
        "seconds": round(seconds, 1),
        **estimate(model, dtype, attn, media, stats.prompt_tokens),
    }


def estimate(model: str, dtype: str, attn: str, media: str, prompt_tokens: int) -> dict[str, int]:
    """vlcli's estimate for a case (no torch: it can be worked out again for stored results)."""
    from vlcli.models.families import resolve_model
    from vlcli.planning.memory import estimate_memory
    from vlcli.planning.plan import SamplingOptions
    from vlcli.run.budget import plan_inputs

    spec = resolve_model(str(BENCH / model))
    item = next(iter(plan_inputs([str(media_path(media))], SamplingOptions(), spec)))
    assert item.plan is not None, item.error
    est = estimate_memory(spec, [item.plan], prompt_tokens, 0, dtype, attn)  # KV: the prompt only
    assert est is not None
    return {
        "kv_estimate_bytes": est.kv_cache_bytes,
        "linear_state_estimate_bytes": est.linear_state_bytes,
        "estimate_vision_bytes": est.vision_peak_bytes,
        "estimate_prefill_bytes": est.prefill_peak_bytes,
        "estimate_bytes": est.activation_bytes,
    }


# ---------------------------------------------------------------- table


def _mib(n: object) -> str:
    return f"{int(n) / 2**20:,.0f}" if isinstance(n, (int, float)) else str(n)


def table(rows: list[dict[str, object]]) -> str:
    head = (
        "| model | dtype | --attn | media | grid_thw | prompt tokens | measured vision / prefill "
        "(MiB) | estimate vision / prefill (MiB) | measured peak (MiB) | estimate (MiB) | "
        "estimate / measured | RSS cross-check (MiB) |\n|" + " --- |" * 12
    )
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['dtype']} | {r['attn']} | {r['media']} | "
                         f"failed: {r['error']} |" + " |" * 7)  # fmt: skip
            continue
        ratio = int(r["estimate_bytes"]) / max(int(r["measured_bytes"]), 1)  # type: ignore[call-overload]
        grid = "x".join(map(str, r["grid_thw"]))  # type: ignore[call-overload]
        lines.append(
            f"| {r['model']} | {r['dtype']} | {r['attn']} | {r['media']} | {grid} | "
            f"{r['prompt_tokens']:,} | {_mib(r['measured_vision_bytes'])} / "
            f"{_mib(r['measured_prefill_bytes'])} | {_mib(r['estimate_vision_bytes'])} / "
            f"{_mib(r['estimate_prefill_bytes'])} | {_mib(r['measured_bytes'])} | "
            f"{_mib(r['estimate_bytes'])} | {ratio:.2f} | {_mib(r['rss_bytes'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    ap.add_argument("--out", default=str(BENCH / "results.jsonl"))
    ap.add_argument("--child", nargs=4, metavar=("MODEL", "DTYPE", "ATTN", "MEDIA"))
    ap.add_argument(
        "--table",
        action="store_true",
        help="measure nothing: print the table of the stored results (--out), with the estimate "
        "worked out again",
    )
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_case(*args.child)))
        return
    if args.table:
        stored = [json.loads(line) for line in Path(args.out).read_text().splitlines()]
        for row in stored:
            if "error" not in row:
                row.update(estimate(*(row[k] for k in ("model", "dtype", "attn", "media")),
                                    row["prompt_tokens"]))  # fmt: skip
        order = {case: n for n, case in enumerate(CASES)}

        def place(row: dict[str, object]) -> int:
            return order.get(tuple(row[k] for k in ("model", "dtype", "attn", "media")), len(order))  # type: ignore[arg-type]

        chosen = [r for r in stored if args.only in " ".join(map(str, r.values()))]
        print(table(sorted(chosen, key=place)))
        return
    cases = [c for c in CASES if args.only in " ".join(c)]
    if Path(args.out).exists():  # go on where a previous run stopped
        done = [json.loads(line) for line in Path(args.out).read_text().splitlines()]
        measured = {tuple(r[k] for k in ("model", "dtype", "attn", "media")) for r in done}
        cases = [c for c in cases if c not in measured]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MALLOC_MMAP_THRESHOLD_": "131072"}
    rows = []
    for model, dtype, attn, media in cases:
        model_folder(model)
        media_file(media)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", model, dtype, attn, media],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
            row: dict[str, object] = dict(
                model=model, dtype=dtype, attn=attn, media=media, error=tail[0][:120]
            )
        else:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
    import torch
    import transformers

    print(
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, {time.strftime('%Y-%m-%d')}"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
