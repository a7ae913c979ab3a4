"""What vlcli needs to know about a model, without importing torch or transformers.

A model belongs to a *family* (Qwen2-VL, Qwen2.5-VL, Qwen3-VL and its MoE, Qwen3.5/3.6 and
their MoE). The family fixes the
preprocessing constants (patch size, merge size, temporal patch size, hence the resize factor),
the way the model is told the time, what its processor takes, the coordinates it answers in and
its presets: everything that differs between families is a field or property of
:class:`Family`, and the rest of vlcli asks those. The model's *dimensions* (layers, heads,
vocabulary, vision tower) size the GPU-memory estimate.

Both are read from the model's own ``config.json`` and preprocessor files when the model is a
local folder or already in the Hugging Face cache; otherwise they come from the presets below,
copied from the released checkpoints' ``config.json`` files.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from vlcli.errors import ModelError

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"


class TimeEncoding(StrEnum):
    """How a family's model is told the time, and so what a second it states means."""

    FRAME_INDEX = "frame-index"  # Qwen2-VL: one temporal position per temporal patch
    ABSOLUTE_MROPE = "absolute-mrope"  # Qwen2.5-VL: position floor(g * spg * tokens_per_second)
    TEXT_TIMESTAMPS = "text-timestamps"  # Qwen3-VL, Qwen3.5: a "<t seconds>" text before each patch

    @property
    def positions_are_seconds(self) -> bool:
        """A temporal position ``p`` stands for second ``p / tokens_per_second`` of the clip (the
        model takes ``second_per_grid_ts``; the positions depend on the engine's arithmetic)."""
        return self is TimeEncoding.ABSOLUTE_MROPE

    @property
    def states_source_seconds(self) -> bool:
        """The model was shown the source's seconds as text: a second it states is one already."""
        return self is TimeEncoding.TEXT_TIMESTAMPS


class Coordinates(StrEnum):
    """The coordinate system a family answers positions in the picture with (for boxes)."""

    RESIZED_PIXELS = "resized-pixels"  # Qwen2.5-VL: absolute pixels of the resized input
    RELATIVE_1000 = "relative-1000"  # Qwen2-VL, Qwen3-VL: 0..1000 of the width and the height

    def extent(self, resized_width: int, resized_height: int) -> tuple[float, float]:
        """The picture's width and height in these coordinates, for a model shown it resized to
        ``resized_width`` x ``resized_height`` (what a stated position is a fraction of)."""
        if self is Coordinates.RESIZED_PIXELS:
            return float(resized_width), float(resized_height)
        return 1000.0, 1000.0

    def unit(self, resized_width: int, resized_height: int) -> str:
        """What one unit of a stated position is, in words (``budget`` says it)."""
        if self is Coordinates.RESIZED_PIXELS:
            return f"pixels of the {resized_width}x{resized_height} resized input"
        return "thousandths of the width and of the height"


@dataclass(frozen=True)
class Family:
    """Everything that differs between model families, declared once: the rest of vlcli asks
    these fields and properties and never compares a family's name.

    A local checkpoint's files may override the constants (``resolve_model``); ``name`` stays
    the family's, so two families are the same family when their names are equal.
    """

    name: str  # the config.json model_type of its main checkpoints, as the JSON output shows it
    label: str
    model_types: tuple[str, ...]  # config.json model_type values of the family's checkpoints
    name_patterns: tuple[str, ...]  # how a hub id names it (lower case, "-" for "_")
    transformers_class: str  # the ``...ForConditionalGeneration`` class in transformers
    # What follows "Qwen/<size>" in the released hub ids ("-Instruct"; "" for Qwen3.5/3.6,
    # whose one checkpoint per size is the chat model).
    hub_suffix: str
    # The released chat template takes ``enable_thinking`` and thinks unless told not to
    # (Qwen3.5/3.6); a local checkpoint's own template is what counts when it is read.
    template_thinking: bool
    patch_size: int
    # How the model is told the time; tokens_per_second is the released checkpoints' value for
    # positions that are seconds, None otherwise (a local config.json overrides it).
    time_encoding: TimeEncoding
    tokens_per_second: float | None
    # Estimated text tokens of the "<12.3 seconds>" shown before each temporal patch (Qwen3-VL).
    timestamp_tokens: int
    # transformers 5.24 places the text after a video otherwise than the reference does;
    # vlcli's transformers backend puts the reference's positions back (Qwen2-VL, Qwen2.5-VL).
    reference_positions: bool
    coordinates: Coordinates  # what a position in the picture the model states is measured in
    # The vision tower adds an interpolated, learned position embedding to every patch
    # (Qwen3-VL), whose float32 copies add to the memory peak (vlcli.planning.memory).
    vision_position_embedding: bool
    # The transformers processor resizes once more after qwen-vl-utils, within its own limits:
    # the released checkpoints' preprocessor files' values (a local model's files override them).
    processor_video_min_pixels: int
    processor_video_max_pixels: int
    processor_image_min_pixels: int
    processor_image_max_pixels: int
    # Whether the video processor's limits count the whole clip (frames x height x width,
    # Qwen3-VL: plan.qwen3_video_resize) rather than one frame (Qwen2/2.5-VL).
    processor_bounds_clip: bool
    # The video processor's ``max_video_tokens``, which means something else in each processor:
    # for Qwen3-VL (see plan.qwen3_video_resize) the per-frame token ceiling of the cap (768);
    # for Qwen2/2.5-VL (see plan.processor_video_resize) the context length whose 90% in pixels,
    # shared evenly between the frames, caps each frame (128000, as qwen-vl-utils' own total).
    processor_video_max_tokens: int
    # Built-in presets: (hub name lower-cased without "Qwen/" and the suffix, its dimensions).
    presets: tuple[tuple[str, ModelDims], ...]
    # The same in every family so far; a checkpoint's files may say otherwise.
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    # The video processor's ``cap_pixels_per_frame`` (unset means off in transformers 5.24).
    processor_video_cap_pixels_per_frame: bool = False

    @property
    def factor(self) -> int:
        """Side of one merged visual token in pixels: 28 for Qwen2/2.5-VL, 32 for Qwen3-VL."""
        return self.patch_size * self.spatial_merge_size

    def timestamp_text(self, seconds: float) -> str:
        """The text shown before a temporal patch that starts at ``seconds`` (Qwen3-VL's form)."""
        return f"<{seconds:.1f} seconds>"


@dataclass(frozen=True)
class ModelDims:
    """The sizes that decide weights and KV-cache memory (from config.json)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    vision_hidden: int
    vision_depth: int
    vision_intermediate: int
    vision_heads: int
    vision_out: int
    vision_gated_mlp: bool = True
    # What sizes the activations (vlcli.planning.memory) beyond the widths above: the vision MLP's
    # activation function (QuickGELU and the gated SiLU hold three MLP-wide tensors at once,
    # tanh-GELU two), and Qwen3-VL's DeepStack features (one merged copy per listed layer).
    vision_act: str = "silu"
    vision_deepstack: int = 0
    # The language model's context length: ``max_position_embeddings`` of the text config.
    context_length: int | None = None
    # Qwen3.5's hybrid language model: ``linear_layers`` of the ``num_layers`` are Gated DeltaNet
    # (linear attention: a fixed state, no KV cache), the rest full attention, whose q_proj also
    # makes an output gate (``attention_output_gate``: twice the query width).
    linear_layers: int = 0
    linear_key_heads: int = 0
    linear_value_heads: int = 0
    linear_key_dim: int = 0
    linear_value_dim: int = 0
    linear_conv_kernel: int = 0
    attention_output_gate: bool = False
    # Mixture of experts (Qwen3-VL MoE, Qwen3.5 MoE): every layer's MLP is ``experts`` MLPs of
    # width ``expert_intermediate``, ``experts_per_token`` of them used per token, plus a shared
    # expert of width ``shared_expert_intermediate`` (Qwen3.5) that every token uses.
    experts: int = 0
    experts_per_token: int = 0
    expert_intermediate: int = 0
    shared_expert_intermediate: int = 0

    @property
    def full_attention_layers(self) -> int:
        """The layers that keep a KV cache growing with the prompt."""
        return self.num_layers - self.linear_layers

    def parameter_count(
        self, patch_size: int, temporal_patch_size: int, merge: int, active: bool = False
    ) -> int:
        """Parameters of the whole model, counted from its shapes (biases and norms included).

        Exact for Qwen2-VL and Qwen2.5-VL (a test builds both on the meta device and counts) and
        for Qwen3.5's language model; Qwen3-VL's and Qwen3.5's vision towers have parts this
        leaves out (position embedding, deepstack mergers), so their count is a little low.
        ``active``: a mixture of experts' parameters one token uses (all are resident).
        """
        h = self.hidden_size
        text = self.full_attention_layers * (self._attention_parameters() + 2 * h)
        text += self.linear_layers * (self._linear_attention_parameters() + 2 * h)
        text += self.num_layers * self._mlp_parameters(active) + h
        text += self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return text + self._vision_parameters(patch_size, temporal_patch_size, merge)

    def _attention_parameters(self) -> int:
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        q = self.num_heads * self.head_dim
        if self.attention_output_gate:  # Qwen3.5: no biases, q and k normed per head
            return h * 2 * q + 2 * h * kv + q * h + 2 * self.head_dim
        return h * q + q + 2 * (h * kv + kv) + q * h

    def _linear_attention_parameters(self) -> int:
        """One Gated DeltaNet layer (transformers' Qwen3_5GatedDeltaNet)."""
        h, heads = self.hidden_size, self.linear_value_heads
        keys, values = self.linear_key_heads * self.linear_key_dim, heads * self.linear_value_dim
        conv = 2 * keys + values
        projections = h * conv + h * values + 2 * h * heads + values * h
        return projections + conv * self.linear_conv_kernel + 2 * heads + self.linear_value_dim

    def _mlp_parameters(self, active: bool) -> int:
        h = self.hidden_size
        if not self.experts:
            return 3 * h * self.intermediate_size
        used = self.experts_per_token if active else self.experts
        shared = 3 * h * self.shared_expert_intermediate + h if self.shared_expert_intermediate else 0
        return self.experts * h + used * 3 * h * self.expert_intermediate + shared

    def _vision_parameters(self, patch_size: int, temporal_patch_size: int, merge: int) -> int:
        vh, vi = self.vision_hidden, self.vision_intermediate
        if self.vision_gated_mlp:  # Qwen2.5-VL: gate/up/down with biases, RMSNorm (weight only)
            vmlp, norm = 3 * vh * vi + 2 * vi + vh, vh
        else:  # Qwen2-VL: fc1/fc2 with biases, LayerNorm (weight and bias)
            vmlp, norm = 2 * vh * vi + vi + vh, 2 * vh
        block = (vh * 3 * vh + 3 * vh) + (vh * vh + vh) + vmlp + 2 * norm
        merged = vh * merge * merge
        merger = norm + merged * merged + merged + merged * self.vision_out + self.vision_out
        patch = 3 * temporal_patch_size * patch_size * patch_size * vh
        return self.vision_depth * block + merger + patch


@dataclass(frozen=True)
class ModelSpec:
    """A model as vlcli plans for it: its family, its dimensions, and where they came from."""

    model: str
    family: Family
    dims: ModelDims | None
    source: str  # "local config" or "built-in preset" or "guessed from the name"
    local_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "family": self.family.name,
            "source": self.source,
            "local_path": self.local_path,
            "patch_size": self.family.patch_size,
            "factor": self.family.factor,
            "tokens_per_second": self.family.tokens_per_second,
            "dims": asdict(self.dims) if self.dims else None,
        }


# fmt: off
def _dims(hidden, layers, heads, kv, inter, vocab, tied, v_hidden, v_depth, v_inter, v_out, v_act, context):  # type: ignore[no-untyped-def]
    return ModelDims(
        hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv, head_dim=128,
        intermediate_size=inter, vocab_size=vocab, tie_word_embeddings=tied, vision_hidden=v_hidden,
        vision_depth=v_depth, vision_intermediate=v_inter, vision_heads=16, vision_out=v_out,
        vision_gated_mlp=v_act == "silu", vision_act=v_act,
        vision_deepstack=3 if v_act == "gelu_pytorch_tanh" else 0,  # Qwen3-VL: blocks [8, 16, 24]
        context_length=context,
    )


# The presets, from the released Qwen/<name>-Instruct checkpoints' config.json. Columns: text hidden, layers, heads,
# kv heads, MLP width, vocabulary, tied embeddings; vision width, depth, MLP width, output width, MLP activation (SiLU:
# gated); context length (the text config's max_position_embeddings). The context lengths were checked on
# 2026-12-01 against public copies of the published config.json files: Qwen2.5-VL-3B and -7B 128000 (the -7B
# file quoted whole, with fullatt_block_indexes [7, 15, 23, 31] and out_hidden_size 3584), Qwen3-VL-8B 262144
# (its text_config quoted whole in test files naming Qwen3-VL-8B-Instruct); Qwen2-VL 32768 (a test quoting the
# 7B's config.json, and two serving projects' model pages: "context length 32768").
SILU, QUICK, TANH = "silu", "quick_gelu", "gelu_pytorch_tanh"
QWEN2_VL = Family(
    "qwen2_vl",
    "Qwen2-VL",
    model_types=("qwen2_vl",),
    name_patterns=("qwen2-vl",),
    transformers_class="Qwen2VLForConditionalGeneration",
    hub_suffix="-Instruct",
    template_thinking=False,
    patch_size=14,
    time_encoding=TimeEncoding.FRAME_INDEX,
    tokens_per_second=None,
    timestamp_tokens=0,
    reference_positions=True,
    coordinates=Coordinates.RELATIVE_1000,
    vision_position_embedding=False,
    # preprocessor_config.json's min_pixels and max_pixels (the video processor takes them too)
    processor_video_min_pixels=3136,
    processor_video_max_pixels=12845056,
    processor_image_min_pixels=3136,
    processor_image_max_pixels=12845056,
    processor_bounds_clip=False,
    processor_video_max_tokens=128000,
    presets=(
        ("qwen2-vl-2b", _dims(1536, 28, 12, 2,  8960, 151936, True,  1280, 32, 5120, 1536, QUICK, 32768)),
        ("qwen2-vl-7b", _dims(3584, 28, 28, 4, 18944, 152064, False, 1280, 32, 5120, 3584, QUICK, 32768)),
    ),
)
# Qwen2.5-VL: Qwen2-VL's processor and patches; absolute-time mRoPE, and boxes in pixels of the
# resized input.
QWEN2_5_VL = replace(
    QWEN2_VL,
    name="qwen2_5_vl",
    label="Qwen2.5-VL",
    model_types=("qwen2_5_vl",),
    name_patterns=("qwen2.5-vl", "qwen2-5-vl"),
    transformers_class="Qwen2_5_VLForConditionalGeneration",
    time_encoding=TimeEncoding.ABSOLUTE_MROPE,
    tokens_per_second=2,
    coordinates=Coordinates.RESIZED_PIXELS,
    presets=(
        ("qwen2.5-vl-3b", _dims(2048, 36, 16, 2, 11008, 151936, True,  1280, 32, 3420, 2048, SILU, 128000)),
        ("qwen2.5-vl-7b", _dims(3584, 28, 28, 4, 18944, 152064, False, 1280, 32, 3420, 3584, SILU, 128000)),
        ("qwen2.5-vl-32b", _dims(5120, 64, 40, 8, 27648, 152064, False, 1280, 32, 3456, 5120, SILU, 128000)),
        ("qwen2.5-vl-72b", _dims(8192, 80, 64, 8, 29568, 152064, False, 1280, 32, 3456, 8192, SILU, 128000)),
    ),
)
# Qwen3-VL's processors take ``size`` = {shortest_edge, longest_edge}. The released checkpoints'
# video_preprocessor_config.json says size {"shortest_edge": 4096, "longest_edge": 25165824} and
# sets neither cap_pixels_per_frame nor max_video_tokens (so: cap off, 768), preprocessor_config.json
# (images) {"shortest_edge": 65536, "longest_edge": 16777216}. Checked against what public copies
# show: notes quoting huggingface.co/Qwen/Qwen3-VL-8B-Instruct/blob/main/video_preprocessor_config.json
# (size.longest_edge=25165824, described there as the clip's T x H x W pixel budget); a printed
# AutoProcessor.from_pretrained("Qwen/Qwen3-VL-2B-Instruct") (video 4096 / 25165824, image
# 65536 / 16777216, no cap keys); github.com/QwenLM/Qwen3-VL/issues/1836, quoting the 8B model's
# preprocessor_config.json (65536 / 16777216). For video both limits count the whole clip's
# pixels (frames x height x width), not one frame's.
QWEN3_VL = Family(
    "qwen3_vl",
    "Qwen3-VL",
    model_types=("qwen3_vl",),
    name_patterns=("qwen3-vl",),
    transformers_class="Qwen3VLForConditionalGeneration",
    hub_suffix="-Instruct",
    template_thinking=False,
    patch_size=16,
    time_encoding=TimeEncoding.TEXT_TIMESTAMPS,
    tokens_per_second=None,
    timestamp_tokens=6,
    reference_positions=False,
    coordinates=Coordinates.RELATIVE_1000,
    vision_position_embedding=True,
    processor_video_min_pixels=4096,
    processor_video_max_pixels=25165824,
    processor_image_min_pixels=65536,
    processor_image_max_pixels=16777216,
    processor_bounds_clip=True,
    processor_video_max_tokens=768,
    presets=(
        ("qwen3-vl-8b", _dims(4096, 36, 32, 8, 12288, 151936, False, 1152, 27, 4304, 4096, TANH, 262144)),
    ),
)
# Qwen3-VL's mixture-of-experts checkpoints (Qwen3-VL-30B-A3B, -235B-A22B): Qwen3-VL's processor
# and time, another model class (its experts would not load into Qwen3VLForConditionalGeneration).
# Qwen3-VL-30B-A3B-Instruct's figures from a public test that transcribes its config.json (at
# the hub's commit 1fc78ad): 48 layers, 2048 wide, 32 heads and 4 KV heads of 128, 128 experts of
# 768 (8 per token, every layer), vocabulary 151,936, untied, context 262,144, the 27 x 1152 tower
# with DeepStack at [8, 16, 24].
QWEN3_VL_MOE = replace(
    QWEN3_VL,
    name="qwen3_vl_moe",
    label="Qwen3-VL MoE",
    model_types=("qwen3_vl_moe",),
    name_patterns=("qwen3-vl-30b-a3b", "qwen3-vl-235b-a22b"),
    transformers_class="Qwen3VLMoeForConditionalGeneration",
    presets=(
        ("qwen3-vl-30b-a3b", replace(
            _dims(2048, 48, 32, 4, 6144, 151936, False, 1152, 27, 4304, 2048, TANH, 262144),
            experts=128, experts_per_token=8, expert_intermediate=768,
        )),
    ),
)


def _qwen3_5(hidden, layers, heads, kv, inter, value_heads, tied, v_depth, v_hidden, v_inter, v_heads,  # type: ignore[no-untyped-def]
             experts=(0, 0, 0, 0)):
    """A Qwen3.5/3.6 preset: every fourth layer full attention (``full_attention_interval`` 4),
    head size 256, 16 linear key heads of 128, value heads of 128, convolution 4, vocabulary
    248,320, context 262,144, a vision tower without DeepStack whose output is the text width."""
    n_experts, per_token, expert_inter, shared_inter = experts
    return ModelDims(
        hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv, head_dim=256,
        intermediate_size=inter, vocab_size=248320, tie_word_embeddings=tied,
        vision_hidden=v_hidden, vision_depth=v_depth, vision_intermediate=v_inter,
        vision_heads=v_heads, vision_out=hidden, vision_gated_mlp=False, vision_act=TANH,
        context_length=262144, linear_layers=layers - layers // 4, linear_key_heads=16,
        linear_value_heads=value_heads, linear_key_dim=128, linear_value_dim=128,
        linear_conv_kernel=4, attention_output_gate=True, experts=n_experts,
        experts_per_token=per_token, expert_intermediate=expert_inter,
        shared_expert_intermediate=shared_inter,
    )


# Qwen3.5 and Qwen3.6 (model_type qwen3_5; qwen3_5_moe below): natively multimodal, a hybrid
# language model (three Gated DeltaNet layers, then one full-attention layer), the Qwen3-VL
# processor (transformers 5.24's auto mappings: Qwen3VLProcessor, Qwen3VLVideoProcessor, the
# Qwen2-VL image processor), so Qwen3-VL's time (text timestamps) and 16-pixel patches. The
# processor limits are taken to be Qwen3-VL's: no published preprocessor file of a Qwen3.5
# checkpoint was found to check them against (a local checkpoint's own files override them).
# Presets, columns: text hidden, layers, heads, kv heads, MLP width, linear value heads, tied
# embeddings; vision depth, width, MLP width, heads. Read on 2026-12-03 from public copies of the
# released config.json files: Qwen3.5-0.8B, whole, in a public session log that fetched
# huggingface.co/Qwen/Qwen3.5-0.8B/resolve/main/config.json (vision 12 x 768, MLP 3072, 12 heads,
# no DeepStack); Qwen3.5-9B's text_config from the same kind of fetch of its config.json and from
# notes quoting huggingface.co/Qwen/Qwen3.5-9B/blob/main/config.json (32 layers, 16 heads, 4 KV
# heads of 256, MLP 12288, 32 linear value heads), untied per a test pinning the 9B's layout;
# Qwen3.5-27B's text_config from Megatron-Bridge's Qwen3.5-27B test config (64 layers, 5120 wide,
# 24 heads, MLP 17408, 48 linear value heads) and its vision_config from a published-config
# fixture of that architecture (27 x 1152, MLP 4304, 16 heads, output 5120); Qwen3.6-35B-A3B,
# whole, transcribed in a public test of its NVFP4 checkpoint (40 layers, 2048 wide, 16 heads,
# 2 KV heads, 256 experts of 512, 8 per token, a shared expert of 512, the 27 x 1152 tower), with
# the same text figures for Qwen3.5-35B-A3B in another public test. The 9B's tower is taken to
# be that 27 x 1152 one (the larger sizes' tower; its output is the text width).
QWEN3_5 = replace(
    QWEN3_VL,
    name="qwen3_5",
    label="Qwen3.5",
    model_types=("qwen3_5",),
    name_patterns=("qwen3.5", "qwen3-5", "qwen3.6", "qwen3-6"),
    transformers_class="Qwen3_5ForConditionalGeneration",
    hub_suffix="",
    template_thinking=True,
    presets=(
        ("qwen3.5-0.8b", _qwen3_5(1024, 24,  8, 2,  3584, 16, True,  12,  768, 3072, 12)),
        ("qwen3.5-9b",   _qwen3_5(4096, 32, 16, 4, 12288, 32, False, 27, 1152, 4304, 16)),
        ("qwen3.5-27b",  _qwen3_5(5120, 64, 24, 4, 17408, 48, False, 27, 1152, 4304, 16)),
    ),
)
_A3B = (256, 8, 512, 512)  # experts, used per token, expert MLP width, shared expert MLP width
QWEN3_5_MOE = replace(
    QWEN3_5,
    name="qwen3_5_moe",
    label="Qwen3.5 MoE",
    model_types=("qwen3_5_moe",),
    name_patterns=("qwen3.5-35b-a3b", "qwen3.6-35b-a3b", "qwen3.5-122b-a10b", "qwen3.5-397b-a17b"),
    transformers_class="Qwen3_5MoeForConditionalGeneration",
    presets=(
        ("qwen3.5-35b-a3b", _qwen3_5(2048, 40, 16, 2, 512, 32, False, 27, 1152, 4304, 16, _A3B)),
        ("qwen3.6-35b-a3b", _qwen3_5(2048, 40, 16, 2, 512, 32, False, 27, 1152, 4304, 16, _A3B)),
    ),
)
# fmt: on
# A mixture of experts first: its hub names also match the dense family's patterns.
FAMILIES = (QWEN2_VL, QWEN2_5_VL, QWEN3_VL_MOE, QWEN3_VL, QWEN3_5_MOE, QWEN3_5)
_PRESETS = {key + f.hub_suffix.lower(): (f, dims) for f in FAMILIES for key, dims in f.presets}
_MODEL_TYPES = {model_type: f for f in FAMILIES for model_type in f.model_types}
KNOWN = "Qwen2-VL, Qwen2.5-VL, Qwen3-VL (dense or MoE) or Qwen3.5/3.6 (dense or MoE)"


def family_from_name(model: str) -> Family | None:
    """The family a model's name says (its hub id, folder or architectures), if any."""
    low = model.lower().replace("_", "-")
    return next((f for f in FAMILIES if any(p in low for p in f.name_patterns)), None)


def family_of_model_type(model_type: str) -> Family | None:
    """The family of a checkpoint whose config.json says ``model_type``."""
    return _MODEL_TYPES.get(model_type)


def hf_cache_dir() -> str | None:
    """The Hugging Face hub cache as the environment names it now (``HF_HUB_CACHE``, else
    ``HF_HOME``/hub); None for huggingface_hub's own default. Read at each call, not at import."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def hf_cache_snapshot(model_id: str) -> Path | None:
    """The local snapshot of a hub model id in the Hugging Face cache, if any.

    The one ``refs/main`` points at, found by huggingface_hub itself
    (``try_to_load_from_cache``). A snapshot fetched by commit has no ref: when the cache holds
    snapshots but no ``refs/main``, the most recently written one is taken.
    """
    if "/" not in model_id or Path(model_id).exists():
        return None
    # Here, not at the top: every command (``--help`` too) imports this module; the hub's
    # modules take a few tenths of a second.
    from huggingface_hub import try_to_load_from_cache

    cache = hf_cache_dir()
    try:
        found = try_to_load_from_cache(model_id, "config.json", cache_dir=cache)
    except Exception:  # a malformed id (huggingface_hub validates it): not in the cache
        return None
    if isinstance(found, str):
        return Path(found).parent
    hub = Path(cache) if cache else Path.home() / ".cache" / "huggingface" / "hub"
    repo = hub / ("models--" + model_id.replace("/", "--"))
    if (repo / "refs" / "main").is_file():
        return None  # main is known and has no config.json
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return None
    with_config = [p for p in snaps.iterdir() if (p / "config.json").is_file()]
    return max(with_config, key=lambda p: p.stat().st_mtime) if with_config else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _dims_from_config(cfg: dict[str, Any]) -> ModelDims | None:
    text = cfg.get("text_config") or cfg
    vision = cfg.get("vision_config") or {}
    try:
        hidden = int(text["hidden_size"])
        heads = int(text["num_attention_heads"])
        # Qwen2-VL names the tower's width embed_dim (its hidden_size is the merger's output)
        vhidden = int(vision.get("embed_dim", vision.get("hidden_size", 0)))
        if "embed_dim" in vision:  # Qwen2-VL: embed_dim is the tower width, hidden_size the output
            vout = int(vision.get("hidden_size", hidden))
            vinter = int(vhidden * vision.get("mlp_ratio", 4))
            gated = False
            act = str(vision.get("hidden_act", "quick_gelu"))
        else:
            vout = int(vision.get("out_hidden_size", hidden))
            vinter = int(vision.get("intermediate_size", 4 * vhidden))
            gated = cfg.get("model_type", "") == "qwen2_5_vl"
            act = str(vision.get("hidden_act", "silu" if gated else "gelu_pytorch_tanh"))
        context = text.get("max_position_embeddings", cfg.get("max_position_embeddings"))
        return ModelDims(
            hidden_size=hidden,
            num_layers=int(text["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or hidden // heads),
            intermediate_size=int(
                text.get("intermediate_size") or text.get("shared_expert_intermediate_size") or 0
            ),
            vocab_size=int(text.get("vocab_size", cfg.get("vocab_size", 0))),
            tie_word_embeddings=bool(
                cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
            ),
            vision_hidden=vhidden,
            vision_depth=int(vision.get("depth", 0)),
            vision_intermediate=vinter,
            vision_heads=int(vision.get("num_heads", 16)),
            vision_out=vout,
            vision_gated_mlp=gated,
            vision_act=act,
            vision_deepstack=len(vision.get("deepstack_visual_indexes") or ()),
            context_length=int(context) if context else None,
            **_hybrid_and_experts(text),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _hybrid_and_experts(text: dict[str, Any]) -> dict[str, Any]:
    """The ``ModelDims`` fields of a hybrid language model's linear layers and of its experts,
    from the text config (Qwen3.5: ``layer_types``, ``linear_*``; MoE: ``num_experts``...)."""
    layer_types = text.get("layer_types") or []
    dims: dict[str, Any] = {}
    if "linear_attention" in layer_types:
        dims = dict(
            linear_layers=layer_types.count("linear_attention"),
            linear_key_heads=int(text["linear_num_key_heads"]),
            linear_value_heads=int(text["linear_num_value_heads"]),
            linear_key_dim=int(text["linear_key_head_dim"]),
            linear_value_dim=int(text["linear_value_head_dim"]),
            linear_conv_kernel=int(text["linear_conv_kernel_dim"]),
            attention_output_gate=bool(text.get("attn_output_gate", True)),
        )
    if text.get("num_experts"):
        dims.update(
            experts=int(text["num_experts"]),
            experts_per_token=int(text["num_experts_per_tok"]),
            expert_intermediate=int(text["moe_intermediate_size"]),
            shared_expert_intermediate=int(text.get("shared_expert_intermediate_size") or 0),
        )
    return dims


def _family_from_folder(folder: Path, cfg: dict[str, Any]) -> Family:
    """The family a checkpoint folder's config.json says; its name only when it says none."""
    model_type = str(cfg.get("model_type", ""))
    if model_type:
        base = family_of_model_type(model_type)
    else:
        base = family_from_name(str(folder)) or family_from_name(
            " ".join(map(str, cfg.get("architectures", [])))
        )
    if base is None:
        said = f"its config.json says model_type {model_type!r}" if model_type else "no model_type"
        raise ModelError(f"{folder}: not a {KNOWN} checkpoint ({said})")
    vision = cfg.get("vision_config") or {}
    changes: dict[str, Any] = {}
    for key in ("patch_size", "spatial_merge_size", "temporal_patch_size"):
        if key in vision:
            changes[key] = int(vision[key])
    if base.time_encoding.positions_are_seconds:
        # Released checkpoints say 2; transformers' class default is 4, so never fall back to it.
        changes["tokens_per_second"] = vision.get("tokens_per_second", base.tokens_per_second)
    for fname, prefix in (
        ("video_preprocessor_config.json", "video"),
        ("preprocessor_config.json", "image"),
    ):
        pre = _read_json(folder / fname)
        size = pre.get("size") or {}
        lo = pre.get("min_pixels", size.get("shortest_edge"))
        hi = pre.get("max_pixels", size.get("longest_edge"))
        if lo and hi:
            changes[f"processor_{prefix}_min_pixels"] = int(lo)
            changes[f"processor_{prefix}_max_pixels"] = int(hi)
            if prefix == "image" and not (folder / "video_preprocessor_config.json").is_file():
                # transformers builds the video processor from preprocessor_config.json then.
                changes["processor_video_min_pixels"] = int(lo)
                changes["processor_video_max_pixels"] = int(hi)
    # The video processor is built from preprocessor_config.json when there is no video file.
    video = _read_json(folder / "video_preprocessor_config.json") or _read_json(
        folder / "preprocessor_config.json"
    )
    changes["processor_video_cap_pixels_per_frame"] = bool(video.get("cap_pixels_per_frame"))
    tokens = video.get("max_video_tokens")
    if tokens:
        changes["processor_video_max_tokens"] = int(tokens)
    return replace(base, **changes)


def resolve_model(model: str = DEFAULT_MODEL) -> ModelSpec:
    """Family and dimensions of ``model`` (a hub id or a local folder), reading no weights."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        cached = hf_cache_snapshot(model)
        folder = cached if cached is not None else folder
    if folder.is_dir():
        cfg = _read_json(folder / "config.json")
        if not cfg:
            raise ModelError(f"{model}: no readable config.json in this folder")
        return ModelSpec(
            model,
            _family_from_folder(folder, cfg),
            _dims_from_config(cfg),
            "local config",
            str(folder),
        )
    key = model.lower().removeprefix("qwen/")
    if model.lower().startswith("qwen/") and key in _PRESETS:
        fam, dims = _PRESETS[key]
        return ModelSpec(model, fam, dims, "built-in preset")
    fam_guess = family_from_name(model)
    if fam_guess is None:
        raise ModelError(
            f"{model}: not a known {KNOWN} model and not a local folder "
            "(pass --model PATH to a downloaded checkpoint)"
        )
    return ModelSpec(model, fam_guess, None, "guessed from the name")
