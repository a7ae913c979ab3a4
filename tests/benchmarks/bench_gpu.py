"""End to end on a GPU: vlcli's pipeline against the reference pipeline, same model, same clip.

Not collected by the test run. Nothing is downloaded: ``--size 7b`` builds the full-size
Qwen2.5-VL-7B architecture (the released config.json's shapes, tokens_per_second 2) with random
bf16 weights and the tiny test tokenizer (the real special tokens and chat template), saves it as
safetensors, and both pipelines load that folder. ``--size tiny`` does the same with the tiny test
model, to check the script on a CPU.

Each pipeline runs in its own process (so peak memory is its own), after a warm-up answer:

* reference: tests/helpers_reference.py (qwen_vl_utils.process_vision_info, torchcodec when
  importable, + the transformers processor with the video metadata) + ``model.generate``;
* vlcli: ``TransformersBackend.ask`` (planned frames decoded in chunks, reference mRoPE positions).

Figures: decode+preprocess seconds, time to first token (from the start of preprocessing), prefill
tokens per second, decode tokens per second, peak GPU memory, and vlcli's memory estimate beside
the measured peak. Random weights answer nonsense, so every run generates exactly
``--new-tokens`` tokens (min_new_tokens = max_new_tokens).

    python tests/benchmarks/bench_gpu.py --size 7b --clip .bench/h264_1080p_60s_veryfast.mp4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

QWEN25_7B = dict(  # Qwen/Qwen2.5-VL-7B-Instruct config.json
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vocab_size=152064,
    max_position_embeddings=128000,
    rope_theta=1000000.0,
    mrope_section=[16, 24, 24],
    vision=dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=2,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
    ),
)


def config_7b(tok):  # noqa: ANN001, ANN201
    """The Qwen2.5-VL-7B-Instruct architecture, with the tiny tokenizer's special-token ids."""
    from tinymodels import build_config

    config = build_config("qwen2_5_vl", tok)
    d = QWEN25_7B
    text = config.text_config
    for key in (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "vocab_size",
        "max_position_embeddings",
    ):
        setattr(text, key, d[key])
    text.head_dim = d["hidden_size"] // d["num_attention_heads"]
    text.rope_parameters = {
        "rope_type": "default",
        "rope_theta": d["rope_theta"],
        "mrope_section": d["mrope_section"],
    }
    text.layer_types = ["full_attention"] * d["num_hidden_layers"]
    for key, value in d["vision"].items():
        setattr(config.vision_config, key, value)
    config.vocab_size = d["vocab_size"]
    config.tie_word_embeddings = False  # the 7B has its own lm_head
    text.tie_word_embeddings = False
    return config


def build_7b(folder: Path, device: str) -> None:
    import torch
    from tinymodels import build_processor, build_tokenizer
    from transformers import Qwen2_5_VLForConditionalGeneration

    tok = build_tokenizer()
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config_7b(tok), dtype=torch.bfloat16
        )
    model.save_pretrained(folder, safe_serialization=True)
    build_processor("qwen2_5_vl", tok).save_pretrained(folder)


def timed(prepare, generate, sync) -> dict[str, float]:  # noqa: ANN001
    """Time one answer: ``prepare()`` -> (inputs, prompt length); ``generate(inputs, streamer)``.

    transformers' streamer gets the prompt first and then each new token: the second ``put`` marks
    the first token (time to first token counts from the start of preprocessing).
    """
    marks: list[float] = []

    class Mark:
        def put(self, value):  # noqa: ANN001
            if len(marks) < 2:
                sync()
                marks.append(time.perf_counter())

        def end(self) -> None:
            pass

    t0 = time.perf_counter()
    inputs, prompt = prepare()
    sync()
    t1 = time.perf_counter()
    out = generate(inputs, Mark())
    sync()
    t2 = time.perf_counter()
    n = out.shape[1] - prompt
    return {
        "preprocess_s": t1 - t0,
        "ttft_s": marks[1] - t0,
        "prefill_tok_s": prompt / (marks[1] - t1),
        "decode_tok_s": (n - 1) / (t2 - marks[1]),
        "prompt_tokens": prompt,
        "new_tokens": n,
    }


def video_facts(clip: str, facts: str | None):  # noqa: ANN201
    """The clip's VideoFacts: probed (ffprobe), or read from ``--facts`` where there is no ffprobe."""
    from vlcli.media.probe import probe
    from vlcli.planning.plan import VideoFacts

    if facts is None:
        return probe(clip).video_facts()
    d = json.loads(Path(facts).read_text())
    times = d.get("frame_times_s")
    return VideoFacts(
        d["width"], d["height"], d["num_frames"], d["average_fps"], tuple(times) if times else None
    )


def child(
    which: str, folder: str, clip: str, new_tokens: int, device: str, facts: str | None = None
) -> dict[str, float]:
    import torch

    question = "Describe what happens in this video, with times."
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if which == "vlcli":
        from vlcli.backends.transformers.backend import TransformersBackend
        from vlcli.backends.transformers.generation import generation_config
        from vlcli.planning.memory import estimate_memory
        from vlcli.planning.plan import SamplingOptions, estimate_prompt_tokens, plan_video

        runner = TransformersBackend(folder, device=device, dtype="auto")
        plan = plan_video(video_facts(clip, facts), SamplingOptions(), runner.family)
        cfg = generation_config(runner.model, runner.processor.tokenizer, new_tokens, 0.0)
        cfg.min_new_tokens = new_tokens

        def prepare():  # noqa: ANN202
            inputs, stats = runner.inputs_for([(clip, plan)], question)
            return inputs, stats.prompt_tokens

        def generate(inputs, streamer):  # noqa: ANN001, ANN202
            with torch.inference_mode():
                return runner.model.generate(**inputs, generation_config=cfg, streamer=streamer)

        tokens = estimate_prompt_tokens([plan], question)
        est = estimate_memory(runner.spec, [plan], tokens, new_tokens, runner.dtype_name)
    else:
        from helpers_reference import reference_inputs, video_question
        from transformers import AutoProcessor, GenerationConfig, Qwen2_5_VLForConditionalGeneration

        dtype = torch.bfloat16 if cuda else torch.float32
        processor = AutoProcessor.from_pretrained(folder)
        model = (
            Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=dtype)
            .to(device)
            .eval()
        )
        cfg = GenerationConfig(
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=processor.tokenizer.pad_token_id,
        )
        est = None

        def prepare():  # noqa: ANN202
            inputs = reference_inputs(processor, video_question(clip, question)).to(device)
            return inputs, inputs["input_ids"].shape[1]

        def generate(inputs, streamer):  # noqa: ANN001, ANN202
            with torch.inference_mode():
                return model.generate(**inputs, generation_config=cfg, streamer=streamer)

    def run() -> dict[str, float]:
        return timed(prepare, generate, sync)

    run()  # warm-up: kernels, allocator, decoder libraries
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = run()
    if cuda:
        result["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if est is not None:
        result["estimate_gib"] = est.total_bytes / 2**30
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["7b", "tiny"], default="7b")
    ap.add_argument("--clip", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument(
        "--folder",
        default=None,
        help="where to save the random model (default /tmp/vlcli-bench-SIZE)",
    )
    ap.add_argument(
        "--facts",
        default=None,
        help="the clip's VideoFacts as JSON (tests/benchmarks/device_kit.sh writes it), for a "
        "machine without ffprobe",
    )
    ap.add_argument("--child", choices=["reference", "vlcli"])
    args = ap.parse_args()
    folder = Path(args.folder or f"/tmp/vlcli-bench-{args.size}")
    if args.child:
        result = child(
            args.child, str(folder), args.clip, args.new_tokens, args.device, args.facts
        )
        print(json.dumps(result))
        return
    if not (folder / "config.json").exists():
        if args.size == "7b":
            build_7b(folder, args.device)
        else:
            from tinymodels import save_tiny_model

            save_tiny_model("qwen2_5_vl", folder)
    results = {}
    for which in ("reference", "vlcli"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                which,
                "--clip",
                args.clip,
                "--size",
                args.size,
                "--device",
                args.device,
                "--new-tokens",
                str(args.new_tokens),
                "--folder",
                str(folder),
                *(["--facts", args.facts] if args.facts else []),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{which} failed")
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
    keys = sorted({k for r in results.values() for k in r})
    print(f"{'figure':<16} {'reference':>12} {'vlcli':>12}")
    for k in keys:
        row = [results[w].get(k) for w in ("reference", "vlcli")]
        print(
            f"{k:<16} "
            + " ".join(f"{x:>12.3f}" if isinstance(x, float) else f"{str(x):>12}" for x in row)
        )
    versions = {}
    try:
        import torch
        import transformers
        from torchcodec._core import ops

        versions = {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "ffmpeg": ops.get_ffmpeg_library_versions().get("ffmpeg_version"),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        }
    except Exception as exc:  # the figures matter more than the versions
        versions = {"error": str(exc)}
    print(
        json.dumps(
            {
                "size": args.size,
                "device": args.device,
                "clip": args.clip,
                "versions": versions,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
