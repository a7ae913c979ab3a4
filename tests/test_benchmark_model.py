"""The GPU benchmark's random 7B is the released architecture, and the memory estimate counts it.

Built on the meta device (no memory, no weights): its parameter count must equal both the
released checkpoint's (8.29 B) and what vlcli's estimate derives from the preset's shapes.
"""

from __future__ import annotations

import sys
from pathlib import Path

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

    from vlcli.families import resolve_model

    config = bench_gpu.config_7b(build_tokenizer())
    counted = meta_parameters(Qwen2_5_VLForConditionalGeneration, config)
    spec = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    assert counted == spec.dims.parameter_count(14, 2, 2)
    assert round(counted / 1e7) == 829  # the release's model card: 8.29 B parameters
    assert config.vision_config.tokens_per_second == 2


def test_parameter_count_of_qwen2_vl_7b_is_exact():
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from vlcli.families import resolve_model

    config = Qwen2VLConfig(
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
    counted = meta_parameters(Qwen2VLForConditionalGeneration, config)
    assert round(counted / 1e7) == 829  # the release's model card: 8.29 B parameters
    assert counted == resolve_model("Qwen/Qwen2-VL-7B-Instruct").dims.parameter_count(14, 2, 2)
