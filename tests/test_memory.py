"""The GPU-memory estimate: what each --attn really builds, checked against measured peaks.

The figures for the released 7B come from its preset's shapes (no weights). The measured checks
run the tiny Qwen2.5-VL on the CPU under torch.profiler (tests/benchmarks/bench_memory.py's
``measure_peaks``: live tensor bytes, the quantity CUDA's ``max_memory_allocated`` reports).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import error_lines, invoke
from helpers_media import make_image

from vlcli.backends.transformers.backend import TransformersBackend
from vlcli.models.families import resolve_model
from vlcli.planning.memory import GIB, canonical_attn, estimate_memory
from vlcli.planning.plan import SamplingOptions, estimate_prompt_tokens, plan_image

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))

pytest_plugins = ("conftest_models",)

QWEN25_7B = "Qwen/Qwen2.5-VL-7B-Instruct"


def photo_estimate(attn: str, width: int = 4000, height: int = 3000) -> Any:
    spec = resolve_model(QWEN25_7B)
    plan = plan_image(width, height, SamplingOptions(), spec.family)
    tokens = estimate_prompt_tokens([plan], "What is in this photo?")
    return estimate_memory(spec, [plan], tokens, 512, "bfloat16", attn)


def test_a_12_megapixel_photo_fits_a_24_gib_gpu_with_sdpa() -> None:
    """The issue's case: 130 GiB (113 GiB of activations) before; sdpa builds no score matrix."""
    est = photo_estimate("sdpa")
    assert est.weights_bytes > 15 * GIB
    assert est.activation_bytes < 3 * GIB
    assert est.total_bytes < 20 * GIB
    flash = photo_estimate("flash_attention_2")  # no score matrix either
    assert flash.activation_bytes == est.activation_bytes


def test_eager_holds_one_frame_of_scores_per_head() -> None:
    """eager: 16 heads x 61,204^2 patches x 10 bytes in the tower (bf16 scores, and the float32
    softmax with its float32 copy of them)."""
    sdpa, eager = photo_estimate("sdpa"), photo_estimate("eager")
    patches = 214 * 286
    scores = 16 * patches**2 * 10
    assert scores <= eager.vision_peak_bytes <= scores + sdpa.vision_peak_bytes
    assert eager.prefill_peak_bytes > 10 * sdpa.prefill_peak_bytes  # the prompt's L x L too


@pytest.mark.parametrize("attn, low, high", [("sdpa", 1.8, 2.2), ("eager", 3.5, 4.1)])
def test_activations_grow_linearly_with_sdpa_and_quadratically_with_eager(
    attn: str, low: float, high: float
) -> None:
    """Twice the pixels: about twice the activations with sdpa, about four times with eager."""
    small = photo_estimate(attn, 2000, 1500).activation_bytes
    large = photo_estimate(attn, 2828, 2121).activation_bytes
    assert low < large / small < high


def test_attention_names() -> None:
    assert canonical_attn("eager") == "eager"
    with pytest.raises(Exception, match="--attn 'flash'"):
        canonical_attn("flash")


# ---------------------------------------------------------------- measured on the CPU


@pytest.fixture(scope="module")
def square_image(media_dir: Path) -> str:
    """448x448: one frame of 32 x 32 patches (1,024), so eager's scores are 2 x 1,024^2."""
    return make_image(media_dir / "square_448.png", (448, 448))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_estimate_is_within_a_quarter_of_the_measured_peak(
    attn: str, tiny_qwen25_path: Path, square_image: str
) -> None:
    import bench_memory

    runner = TransformersBackend(
        str(tiny_qwen25_path), device="cpu", dtype="float32", attn=attn, warn=lambda m: None
    )
    plan = plan_image(448, 448, SamplingOptions(), runner.family)
    inputs, stats = runner.inputs_for([(square_image, plan)], "What is in this picture?")
    peaks = bench_memory.measure_peaks(runner, inputs)
    measured = max(peaks["vision"], peaks["prefill"] - peaks["kv"]) + peaks["pixels"]
    est = estimate_memory(runner.spec, [plan], stats.prompt_tokens, 0, "float32", attn)
    assert est is not None
    assert peaks["kv"] == est.kv_cache_bytes
    assert 0.75 * measured <= est.activation_bytes <= 1.25 * measured, (measured, est)


# ---------------------------------------------------------------- ask and budget


def test_an_image_over_budget_is_not_told_about_fps(
    tiny_qwen25_path: Path, square_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--fps, --total-pixels and --start/--end do nothing to an image: only --max-pixels."""
    monkeypatch.setattr(TransformersBackend, "free_memory_bytes", lambda self: 2**20)
    r = invoke("ask", square_image, "What is it?", "--model", tiny_qwen25_path)
    assert r.exit_code == 5
    (line,) = error_lines(r)
    assert "--max-pixels" in line and "--force" in line
    for option in ("--fps", "--nframes", "--total-pixels", "--start", "--end"):
        assert option not in line


def test_ask_sizes_the_prompt_for_its_attn(
    tiny_qwen25_path: Path, square_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free memory between what sdpa and eager need: sdpa answers, eager stops (status 5)."""
    spec = resolve_model(str(tiny_qwen25_path))
    plan = plan_image(448, 448, SamplingOptions(), spec.family)
    tokens = estimate_prompt_tokens([plan], "What is it?")
    need = {
        attn: est.total_bytes - est.weights_bytes
        for attn in ("sdpa", "eager")
        if (est := estimate_memory(spec, [plan], tokens, 8, "float32", attn)) is not None
    }
    assert need["eager"] > need["sdpa"] + 2**23  # 2 heads x 1,024^2 scores x 8 bytes: 16 MiB
    free = (need["sdpa"] + need["eager"]) // 2
    monkeypatch.setattr(TransformersBackend, "free_memory_bytes", lambda self: free)
    common = (square_image, "What is it?", "--model", tiny_qwen25_path, "--max-new-tokens", "8")
    assert invoke("ask", *common, "--attn", "sdpa").exit_code == 0
    eager = invoke("ask", *common, "--attn", "eager")
    assert eager.exit_code == 5 and "GiB free" in eager.stderr


def test_budget_takes_attn(square_image: str) -> None:
    rows = {
        attn: invoke("budget", square_image, "--model", QWEN25_7B, "--attn", attn, "--json")
        for attn in ("sdpa", "eager")
    }
    mem = {a: json.loads(r.stdout)["memory"] for a, r in rows.items()}
    assert mem["sdpa"]["attn"] == "sdpa" and mem["eager"]["attn"] == "eager"
    assert mem["eager"]["activation_bytes"] > mem["sdpa"]["activation_bytes"]
    bad = invoke("budget", square_image, "--attn", "flash")
    assert bad.exit_code == 2 and "--attn 'flash'" in bad.stderr


# ---------------------------------------------------------------- Qwen3.5: hybrid, experts


def test_a_hybrid_keeps_a_kv_cache_only_in_its_full_attention_layers() -> None:
    """Qwen3.5-9B: 8 of its 32 layers attend over the whole prompt (32 KiB of KV per token in
    bf16); its 24 Gated DeltaNet layers keep a fixed state (a convolution's last 4 inputs and a
    float32 128 x 128 state per value head: 49.5 MiB) however long the video."""
    spec = resolve_model("Qwen/Qwen3.5-9B")
    short, long = (estimate_memory(spec, [], n, 0, "bfloat16") for n in (1000, 100_000))
    assert short is not None and long is not None
    assert (long.kv_cache_bytes - short.kv_cache_bytes) // 99_000 == 2 * 8 * 4 * 256 * 2
    state = 24 * ((2 * 16 * 128 + 32 * 128) * 4 * 2 + 32 * 128 * 128 * 4)
    assert short.linear_state_bytes == long.linear_state_bytes == state
    assert long.total_bytes - long.activation_bytes == (
        long.weights_bytes + long.kv_cache_bytes + state + long.overhead_bytes
    )
    assert short.active_weights_bytes is None  # dense: every weight is used


def test_a_mixture_of_experts_keeps_every_expert_and_says_what_a_token_uses() -> None:
    est = estimate_memory(resolve_model("Qwen/Qwen3.6-35B-A3B"), [], 1000, 0, "bfloat16")
    assert est is not None and est.active_weights_bytes is not None
    assert round(est.weights_bytes / 1e9) == 70 and round(est.active_weights_bytes / 1e9, 1) == 7.8


def test_budget_shows_each_part_of_a_hybrid_and_its_experts(
    tiny_qwen35_moe_path: Path, tiny_clip: str
) -> None:
    r = invoke("budget", tiny_clip, "--model", tiny_qwen35_moe_path)
    assert r.exit_code == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "(all experts;" in text and "used per token)" in text
    assert "KV cache" in text and "(full-attention layers), linear-attention state" in text
    assert "(vision " in text and "prefill " in text
    r = invoke("budget", tiny_clip, "--model", tiny_qwen35_moe_path, "--json")
    memory = json.loads(r.stdout)["memory"]
    assert 0 < memory["linear_state_bytes"]
    assert memory["active_weights_bytes"] < memory["weights_bytes"]
