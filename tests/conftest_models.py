"""Fixtures for the model tests: tiny saved models, a small clip and image, loaded runners.

Use from a test module with ``pytest_plugins = ("conftest_models",)``. Everything is made once
per test session (building and saving the tiny models takes a few seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_media import make_clip, make_image
from tinymodels import save_tiny_model


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_qwen25_path(tiny_models_dir: Path) -> Path:
    """A tiny random Qwen2.5-VL checkpoint folder (config, safetensors, tokenizer, processor)."""
    return save_tiny_model("qwen2_5_vl", tiny_models_dir / "tiny-Qwen2.5-VL")


@pytest.fixture(scope="session")
def tiny_qwen2_path(tiny_models_dir: Path) -> Path:
    return save_tiny_model("qwen2_vl", tiny_models_dir / "tiny-Qwen2-VL")


@pytest.fixture(scope="session")
def tiny_qwen3_path(tiny_models_dir: Path) -> Path:
    return save_tiny_model("qwen3_vl", tiny_models_dir / "tiny-Qwen3-VL")


@pytest.fixture(scope="session")
def tiny_qwen3_moe_path(tiny_models_dir: Path) -> Path:
    """A tiny random Qwen3-VL mixture of experts (model_type qwen3_vl_moe)."""
    return save_tiny_model("qwen3_vl_moe", tiny_models_dir / "tiny-Qwen3-VL-MoE")


@pytest.fixture(scope="session")
def tiny_qwen35_path(tiny_models_dir: Path) -> Path:
    """A tiny random Qwen3.5 (hybrid: three linear-attention layers, one full) with the released
    chat template."""
    return save_tiny_model("qwen3_5", tiny_models_dir / "tiny-Qwen3.5")


@pytest.fixture(scope="session")
def tiny_qwen35_moe_path(tiny_models_dir: Path) -> Path:
    """The same with a mixture of experts (model_type qwen3_5_moe)."""
    return save_tiny_model("qwen3_5_moe", tiny_models_dir / "tiny-Qwen3.5-MoE")


@pytest.fixture(scope="session")
def tiny_clip(media_dir: Path) -> str:
    """160x120, 10 fps, 3 s (30 frames), testsrc2, H.264."""
    return make_clip(media_dir / "tiny_160x120_10fps.mp4", size=(160, 120), fps=10, seconds=3)


@pytest.fixture(scope="session")
def tiny_image(media_dir: Path) -> str:
    """200x120 RGB PNG gradient."""
    return make_image(media_dir / "tiny_200x120.png", (200, 120))


@pytest.fixture(scope="session")
def qwen25_runner(tiny_qwen25_path: Path):  # type: ignore[no-untyped-def]
    """The tiny Qwen2.5-VL loaded by vlcli's real loading code, on the CPU in float32."""
    from vlcli.backends.transformers.backend import TransformersBackend

    return TransformersBackend(
        str(tiny_qwen25_path), device="cpu", dtype="float32", warn=lambda _m: None
    )

