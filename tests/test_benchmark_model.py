"""The benchmarks' random models are the architectures they stand for, and the estimate reads them.

Built on the meta device (no memory, no weights): the GPU benchmark's 7B must have the released
checkpoint's parameter count (8.29 B) and what vlcli's estimate derives from the preset's shapes;
a saved config must be read back as the same shapes (what ``--model PATH`` gives the estimate);
the memory benchmark's mid-size models must carry the released vision towers' widths.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))


def meta_parameters(model_class, config) -> int:  # noqa: ANN001
    """Parameters of ``model_class(config)`` built on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        model = model_class._from_config(config)
    return sum(p.numel() for p in model.parameters())


def test_benchmark_7b_matches_the_preset_parameter_count():
    import bench_gpu
    from tinymodels import build_tokenizer
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vlcli.models.families import resolve_model

    config = bench_gpu.config_7b(build_tokenizer())
    counted = meta_parameters(Qwen2_5_VLForConditionalGeneration, config)
    spec = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    assert counted == spec.dims.parameter_count(14, 2, 2)
    assert round(counted / 1e7) == 829  # the release's model card: 8.29 B parameters
    assert config.vision_config.tokens_per_second == 2


def qwen2_vl_7b_config():  # noqa: ANN201
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
        text_config=dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            vocab_size=152064,
        ),
        vision_config=dict(
            depth=32,
            embed_dim=1280,
            mlp_ratio=4,
            num_heads=16,
            hidden_size=3584,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        tie_word_embeddings=False,
    )


def test_parameter_count_of_qwen2_vl_7b_is_exact():
    from transformers import Qwen2VLForConditionalGeneration

    from vlcli.models.families import resolve_model

    config = qwen2_vl_7b_config()
    counted = meta_parameters(Qwen2VLForConditionalGeneration, config)
    assert round(counted / 1e7) == 829  # the release's model card: 8.29 B parameters
    assert counted == resolve_model("Qwen/Qwen2-VL-7B-Instruct").dims.parameter_count(14, 2, 2)


def test_saved_configs_read_back_as_the_presets(tmp_path: Path) -> None:
    """What a local folder's config.json gives the estimate equals the released preset: the
    tower's width (Qwen2-VL calls it embed_dim; its hidden_size is the merger's output), the
    activation, the context length."""
    import bench_gpu
    from tinymodels import build_tokenizer

    from vlcli.models.families import resolve_model

    for name, config in (
        ("Qwen/Qwen2-VL-7B-Instruct", qwen2_vl_7b_config()),
        ("Qwen/Qwen2.5-VL-7B-Instruct", bench_gpu.config_7b(build_tokenizer())),
    ):
        folder = tmp_path / name.split("/")[1]
        config.save_pretrained(folder)
        local, preset = resolve_model(str(folder)).dims, resolve_model(name).dims
        assert local is not None and preset is not None
        for key in ("vision_hidden", "vision_intermediate", "vision_act", "vision_out"):
            assert getattr(local, key) == getattr(preset, key), (name, key)
        assert local.context_length == preset.context_length
        assert local.parameter_count(14, 2, 2) == preset.parameter_count(14, 2, 2)


@pytest.mark.parametrize(
    "family, released",
    [
        ("qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct"),
        ("qwen2_vl", "Qwen/Qwen2-VL-7B-Instruct"),
        ("qwen3_vl", "Qwen/Qwen3-VL-8B-Instruct"),
    ],
)
def test_memory_benchmark_mid_models_have_the_released_vision_widths(
    family: str, released: str, tmp_path: Path
) -> None:
    import bench_memory
    from tinymodels import build_tokenizer, model_class

    from vlcli.models.families import resolve_model

    config = bench_memory.mid_config(family, build_tokenizer())
    config.save_pretrained(tmp_path)
    mid, preset = resolve_model(str(tmp_path)).dims, resolve_model(released).dims
    assert mid is not None and preset is not None
    for key in ("vision_hidden", "vision_intermediate", "vision_heads", "vision_act"):
        assert getattr(mid, key) == getattr(preset, key), key
    assert mid.hidden_size * 2 == 3584 and mid.vision_deepstack == (
        2 if family == "qwen3_vl" else 0
    )
    params = meta_parameters(model_class(family), config)
    assert 2e8 < params < 6e8  # "a few hundred million"
