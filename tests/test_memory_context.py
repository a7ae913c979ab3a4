"""The prompt against the model's context length: budget warns, ask refuses (status 5), and
both name options that were planned again and found to fit."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import error_lines, invoke

from vlcli.backends.transformers.backend import TransformersBackend
from vlcli.media.probe import probe
from vlcli.models.families import resolve_model
from vlcli.planning.context import check_context, context_problem, fitting_options
from vlcli.planning.plan import (
    SamplingOptions,
    VideoFacts,
    estimate_prompt_tokens,
    plan_image,
    plan_video,
)

pytest_plugins = ("conftest_models",)

NEW = ("--max-new-tokens", "8")


@pytest.mark.parametrize(
    "model, context",
    [
        ("Qwen/Qwen2-VL-7B-Instruct", 32768),
        ("Qwen/Qwen2-VL-2B-Instruct", 32768),
        ("Qwen/Qwen2.5-VL-7B-Instruct", 128000),
        ("Qwen/Qwen2.5-VL-72B-Instruct", 128000),
        ("Qwen/Qwen3-VL-8B-Instruct", 262144),
    ],
)
def test_released_context_lengths(model: str, context: int) -> None:
    """The published config.json files' max_position_embeddings (text config)."""
    dims = resolve_model(model).dims
    assert dims is not None and dims.context_length == context


def test_a_local_model_says_its_own_context_length(tiny_qwen3_path: Path) -> None:
    dims = resolve_model(str(tiny_qwen3_path)).dims
    assert dims is not None and dims.context_length == 32768  # text_config of the tiny model


TWO_MINUTES_1080P = VideoFacts(1920, 1080, 120 * 30, 30.0)


def test_qwen2_vl_7b_cannot_read_two_minutes_of_1080p_at_2_fps() -> None:
    """The issue's case: about 86,000 tokens planned for a 32,768-token model."""
    spec = resolve_model("Qwen/Qwen2-VL-7B-Instruct")
    options = SamplingOptions()
    plan = plan_video(TWO_MINUTES_1080P, options, spec.family)
    tokens = estimate_prompt_tokens([plan], "What happens?")
    assert tokens > 80_000
    check = check_context(spec, tokens, 512)
    assert check is not None and not check.fits
    line = context_problem(spec, [plan], options, tokens, 512)
    assert line is not None
    assert f"{tokens:,} prompt tokens and 512 new tokens" in line and "32,768" in line
    for option in ("--fps", "--max-pixels", "--total-pixels", "--start", "--end"):
        assert option in line


def test_every_suggested_option_fits_and_is_not_far_below_what_fits() -> None:
    """Each suggestion, planned again, fits; a quarter more does not (candidates step by 10%)."""
    spec = resolve_model("Qwen/Qwen2-VL-7B-Instruct")
    fam, options = spec.family, SamplingOptions()
    plan = plan_video(TWO_MINUTES_1080P, options, fam)
    tokens = estimate_prompt_tokens([plan], "What happens?")
    budget = 32768 - 512
    hints = fitting_options([plan], options, fam, tokens, budget)
    assert len(hints) == 4

    def prompt(**change: Any) -> int:
        again = plan_video(TWO_MINUTES_1080P, replace(options, **change), fam)
        return estimate_prompt_tokens([again], "What happens?")

    fps = float(hints[0].removeprefix("--fps "))
    assert prompt(fps=fps) <= budget < prompt(fps=fps * 1.25)
    max_pixels = int(hints[1].removeprefix("--max-pixels "))
    assert max_pixels % 784 == 0
    assert prompt(max_pixels=max_pixels) <= budget < prompt(max_pixels=int(max_pixels * 1.25))
    total = int(hints[2].removeprefix("--total-pixels "))
    assert prompt(total_pixels=total) <= budget < prompt(total_pixels=int(total * 1.25))
    assert hints[3].startswith("at most ") and "--start 0 --end " in hints[3]
    seconds = float(hints[3].split("--end ")[-1].rstrip(")"))
    assert prompt(start=0, end=seconds) <= budget < prompt(start=0, end=seconds * 1.25)


def test_an_image_is_told_only_about_max_pixels() -> None:
    spec = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    small = replace(spec, dims=replace(spec.dims, context_length=4000))  # type: ignore[type-var]
    options = SamplingOptions()
    plan = plan_image(4000, 3000, options, spec.family)
    tokens = estimate_prompt_tokens([plan], "What is it?")
    line = context_problem(small, [plan], options, tokens, 512)
    assert line is not None and "--max-pixels" in line
    for option in ("--fps", "--nframes", "--total-pixels", "--start"):
        assert option not in line


def test_max_new_tokens_alone_can_fit() -> None:
    spec = resolve_model("Qwen/Qwen2-VL-7B-Instruct")
    line = context_problem(spec, [], SamplingOptions(), 32000, 1024)
    assert line is not None and "--max-new-tokens 768" in line


# ---------------------------------------------------------------- budget and ask


@pytest.fixture
def short_context_model(tiny_qwen25_path: Path, tiny_clip: str, tmp_path: Path) -> Path:
    """The tiny Qwen2.5-VL with a context one token too short for the tiny clip's prompt (with
    8 new tokens) at the default 2 fps."""
    spec = resolve_model(str(tiny_qwen25_path))
    plan = plan_video(probe(tiny_clip).video_facts(), SamplingOptions(), spec.family)
    tokens = estimate_prompt_tokens([plan], "What happens?")
    folder = tmp_path / "short-context"
    shutil.copytree(tiny_qwen25_path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = tokens + 8 - 1
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_budget_warns_and_still_plans(short_context_model: Path, tiny_clip: str) -> None:
    r = invoke(
        "budget", tiny_clip, "--model", short_context_model, "--question", "What happens?", *NEW
    )
    assert r.exit_code == 0 and "visual tokens" in r.stdout
    (line,) = error_lines(r)
    assert "its context length" in line and "--fps" in line and "--start" in line


def test_ask_refuses_before_decoding_and_force_runs(
    short_context_model: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared: list[Any] = []
    real_prepare = TransformersBackend.prepare
    monkeypatch.setattr(
        TransformersBackend,
        "prepare",
        lambda self, *a, **k: prepared.append(a) or real_prepare(self, *a, **k),
    )
    r = invoke("ask", tiny_clip, "What happens?", "--model", short_context_model, *NEW)
    assert r.exit_code == 5 and r.stdout == "" and prepared == []
    (line,) = error_lines(r)
    assert "its context length" in line
    for option in ("--fps", "--start", "--end", "--force"):
        assert option in line
    fps = float(line.split("--fps ")[1].split(",")[0])
    fits = invoke(
        "ask", tiny_clip, "What happens?", "--model", short_context_model, *NEW, "--fps", fps
    )
    assert fits.exit_code == 0, fits.stderr
    forced = invoke(
        "ask", tiny_clip, "What happens?", "--model", short_context_model, *NEW, "--force"
    )
    assert forced.exit_code == 0 and len(prepared) == 2
