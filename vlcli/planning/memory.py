"""GPU-memory estimate for one ``ask``, from the model's shapes and the plan's token counts.

The estimate is a sum of these parts (bytes; ``b`` = bytes per value of the dtype, 2 for bf16):

* ``weights = parameters * b`` — parameters counted from config.json (``ModelDims``); for a
  mixture of experts every expert is resident (``active_weights_bytes``: what one token uses).
* ``kv_cache = 2 * full-attention layers * kv_heads * head_dim * (prompt + new tokens) * b``:
  every layer but a hybrid's (Qwen3.5's) linear-attention ones.
* ``linear_state``: Qwen3.5's Gated DeltaNet layers keep a fixed state however long the prompt
  (:func:`linear_state_bytes`).
* ``activations = max(vision_peak, prefill_peak)``: the vision tower runs first and all but its
  output is freed before the language model's prefill (see :func:`vision_peak_bytes` and
  :func:`prefill_peak_bytes` for the terms, each read off transformers 5.24's Qwen2-VL,
  Qwen2.5-VL, Qwen3-VL and Qwen3.5 modeling code).
* ``overhead = 0.5 GiB`` — CUDA context and allocator slack (a constant, not measured per GPU).

What the attention kernel builds decides most of the difference between ``--attn`` values. The
vision tower attends within one frame (``cu_seqlens``: one temporal patch, ``grid_h * grid_w``
patches; Qwen2.5-VL's windowed blocks within 8x8 patches) and the language model over the whole
prompt. ``sdpa`` (PyTorch's flash / memory-efficient kernels on CUDA, its flash kernel on the
CPU) and ``flash_attention_2`` never hold the ``heads x L x L`` score matrix; ``eager`` does, for
one frame at a time in the vision tower and for the whole prompt (plus its ``L x L`` causal mask)
in every decoder layer.

The activation part was checked against peaks measured on the CPU (tests/benchmarks/
bench_memory.py; the README's "GPU memory estimate" has the table), not yet on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vlcli.errors import MemoryBudgetError, UsageError
from vlcli.models.families import ModelDims, ModelSpec
from vlcli.planning.plan import Plan

GIB = 1024**3
OVERHEAD_BYTES = GIB // 2
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
FLOAT32 = 4
# The attention implementations ``ask --attn`` takes (transformers' names).
ATTENTION = ("sdpa", "flash_attention_2", "eager")
# The names --dtype takes (``budget`` and ``ask``), each to its canonical (torch) name.
DTYPE_ALIASES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
}


def canonical_dtype(name: str) -> str:
    """``bfloat16``, ``float16`` or ``float32`` for a --dtype value; UsageError for others."""
    try:
        return DTYPE_ALIASES[name.strip().lower()]
    except KeyError:
        raise UsageError(f"--dtype {name!r}: use bfloat16, float16 or float32") from None


@dataclass(frozen=True)
class MemoryEstimate:
    dtype: str
    weights_bytes: int
    kv_cache_bytes: int
    vision_peak_bytes: int
    prefill_peak_bytes: int
    overhead_bytes: int
    attn: str = "sdpa"
    # A hybrid's linear-attention layers' fixed state (Qwen3.5), 0 for the others.
    linear_state_bytes: int = 0
    # A mixture of experts: the weights one token uses (all of weights_bytes stays resident).
    active_weights_bytes: int | None = None
    # several questions of one input (ask -q, chat): the media's prefill kept beside the cache
    # each question works on (a copy of it), with the transformers backend
    kept_prefix_bytes: int = 0

    @property
    def activation_bytes(self) -> int:
        return max(self.vision_peak_bytes, self.prefill_peak_bytes)

    @property
    def total_bytes(self) -> int:
        cache = self.kv_cache_bytes + self.linear_state_bytes + self.kept_prefix_bytes
        return self.weights_bytes + cache + self.activation_bytes + self.overhead_bytes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["activation_bytes"] = self.activation_bytes
        d["total_bytes"] = self.total_bytes
        d["total_gib"] = round(self.total_bytes / GIB, 2)
        return d


def weights_bytes(spec: ModelSpec, dtype: str, active: bool = False) -> int | None:
    """Bytes of the model's weights in ``dtype``; None when the model's shapes are unknown.
    ``active``: a mixture of experts' weights that one token uses."""
    dims = spec.dims
    if dims is None:
        return None
    fam = spec.family
    params = dims.parameter_count(
        fam.patch_size, fam.temporal_patch_size, fam.spatial_merge_size, active=active
    )
    return params * DTYPE_BYTES[canonical_dtype(dtype)]


def check_weights_fit(
    spec: ModelSpec, dtype: str, device: str, available_bytes: int | None, force: bool = False
) -> None:
    """Stop before loading weights that cannot fit in the memory ``device`` has available.

    Loading a 7B model in float32 on a machine with less memory ends in the kernel killing the
    process, with no message; a GPU runs out of memory half-way through loading. ``device`` is
    ``"cpu"`` or ``"cuda"``; ``available_bytes`` None (unknown) or ``force`` skips the check.
    """
    need = weights_bytes(spec, dtype)
    if need is None or available_bytes is None or force or need <= available_bytes:
        return
    dtype = canonical_dtype(dtype)
    where = "memory is available" if device == "cpu" else "GPU memory is free"
    hint = (
        f"--dtype bfloat16 halves it ({_size(need // 2)})"
        if dtype == "float32"
        else "use a smaller model"
    )
    if device == "cpu":
        hint += ", or run on a GPU"
    raise MemoryBudgetError(
        f"the model's weights need {_size(need)} in {dtype} and {_size(available_bytes)} of "
        f"{where}: {hint}; --force loads it anyway"
    )


def _size(n: int) -> str:
    if n >= GIB // 10:
        return f"{n / GIB:.1f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def canonical_attn(name: str) -> str:
    """``sdpa``, ``flash_attention_2`` or ``eager`` for an --attn value; UsageError for others."""
    if name not in ATTENTION:
        raise UsageError(f"--attn {name!r}: use {', '.join(ATTENTION)}")
    return name


def _patches(spec: ModelSpec, plans: list[Plan]) -> tuple[int, int, int]:
    """(patches, visual tokens, patches of the largest frame) of the prompt's media."""
    merge2 = spec.family.spatial_merge_size**2
    tokens = sum(p.visual_tokens for p in plans)
    frame = max((p.grid_thw[1] * p.grid_thw[2] for p in plans), default=0)
    return tokens * merge2, tokens, frame


def vision_peak_bytes(spec: ModelSpec, plans: list[Plan], b: int, attn: str = "sdpa") -> int:
    """Peak bytes while the vision tower runs over every patch of the prompt at once.

    ``generate`` runs the tower before the prefill, before the token embeddings exist. Held
    throughout: the pixel values (``patches x 3 * temporal_patch * patch**2``, in the model's
    dtype on the device), the tower's rotary tables (cos and sin, float32) and, for Qwen3-VL,
    the DeepStack features. On top, the largest moment of one block, per patch:

    * MLP: the block's input (the tower's loop holds it), the residual after attention and the
      normed input (``3 x width``), and three MLP-wide tensors for the gated SiLU (gate after
      the activation, up, their product) and QuickGELU (input, sigmoid, product), two for
      tanh-GELU;
    * rotary embedding: residual, normed input and qkv (``5 x width`` in ``b``) while q and k
      are rotated in float32 (their float32 copies when the dtype is not float32, then
      ``q*cos``, ``rotate_half``, ``*sin`` and the rotated q: 16 bytes per width);
    * attention output: the above in the dtype (7 x width), the per-chunk outputs and their
      concatenation (2 x width);
    * ``eager`` only: the scores of the largest chunk, one frame, ``heads x L**2`` of them at
      :func:`softmax_bytes` each, next to the input, normed input, qkv and rotated q and k
      (7 x width per patch), and for a video the outputs of the frames done (1 x width).

    Qwen3-VL's tower first interpolates its learned position embedding from 4 neighbours: the
    patch embedding, the 4 looked-up rows in the dtype and their weighted float32 product (with
    a float32 copy of the rows for a 2-byte dtype) per patch, before the rotary tables exist.
    That is its peak in bf16 (measured). The summed float32 embedding is then held to the end.
    """
    dims = spec.dims
    if dims is None or not plans:
        return 0
    fam = spec.family
    patches, tokens, frame = _patches(spec, plans)
    vh, vi = dims.vision_hidden, dims.vision_intermediate
    head_dim = vh // max(dims.vision_heads, 1)
    pixels = patches * 3 * fam.temporal_patch_size * fam.patch_size**2 * b
    rotary_tables = patches * 2 * head_dim * FLOAT32
    deepstack = dims.vision_deepstack * tokens * dims.vision_out * b
    mlp_wide = 2 if dims.vision_act in ("gelu_pytorch_tanh", "gelu", "gelu_new") else 3
    mlp = (3 * vh + mlp_wide * vi) * b
    upcast = 0 if b == FLOAT32 else 2 * FLOAT32
    rotary = vh * (5 * b + 4 * FLOAT32 + upcast)
    output = 9 * vh * b
    block = patches * max(mlp, rotary, output)
    if attn == "eager":
        held = 8 if any(p.grid_thw[0] > 1 for p in plans) else 7
        scores = dims.vision_heads * frame * frame * softmax_bytes(b)
        block = max(block, patches * held * vh * b + scores)
    peak = rotary_tables + deepstack + block
    if fam.vision_position_embedding:
        position = vh * (b + 4 * b + 4 * FLOAT32 + (4 * FLOAT32 if b < FLOAT32 else 0))
        peak = max(peak + patches * vh * FLOAT32, patches * position)
    return pixels + peak


def prefill_peak_bytes(
    spec: ModelSpec,
    plans: list[Plan],
    prompt_tokens: int,
    b: int,
    attn: str = "sdpa",
) -> int:
    """Peak bytes of the language model's prefill over the whole prompt (the KV cache apart).

    Held throughout: the pixel values (the caller's inputs), the vision tower's output object
    (``generate`` keeps it to the end: its last hidden states, patches x width, and the merged
    visual embeddings), the embeddings' concatenated copy, Qwen3-VL's DeepStack features and
    their copies, and the rotary cos/sin. On top, per prompt token, the largest of one decoder
    layer's parts: its MLP (:func:`_mlp_bytes`), its attention (the token embeddings, the layer's
    input and the normed input, ``3 x hidden``, q, k and v, and q rotated: ``4 x q + 2 x kv``;
    Qwen3.5's gated attention also holds the gate, ``2 x q`` more) and, in a hybrid, its linear
    attention (:func:`_linear_attention_bytes`). ``eager`` holds the ``L x L`` causal mask in
    the dtype throughout, and the scores, ``heads x L**2`` of them at :func:`softmax_bytes`
    each, next to rotated q and k and v repeated to every head; the layer keeps the
    probabilities (in the dtype) until it returns, through its MLP.
    """
    dims = spec.dims
    if dims is None:
        return 0
    fam = spec.family
    patches, tokens, _ = _patches(spec, plans)
    h = dims.hidden_size
    q, kv = dims.num_heads * dims.head_dim, dims.num_kv_heads * dims.head_dim
    t = prompt_tokens
    pixels = patches * 3 * fam.temporal_patch_size * fam.patch_size**2 * b
    vision_out = patches * dims.vision_hidden * b
    merged = 2 * (1 + dims.vision_deepstack) * tokens * dims.vision_out * b
    rotary = t * (2 * dims.head_dim * b + 3 * 8)  # cos and sin; the int64 3-D positions
    mlp = _mlp_bytes(dims, t, b)
    gate = 2 * q if dims.attention_output_gate else 0
    linear = _linear_attention_bytes(dims, t, b)
    layer = max(mlp, t * (3 * h + 4 * q + gate + 2 * kv) * b, linear)
    if attn == "eager":
        heads = dims.num_heads * t * t
        attention = t * (3 * h + 3 * q + gate) * b + heads * softmax_bytes(b)
        layer = max(mlp + heads * b, attention, linear) + t * t * b
    return pixels + vision_out + merged + rotary + layer


def _mlp_bytes(dims: ModelDims, t: int, b: int) -> int:
    """One decoder layer's MLP over ``t`` tokens: the token embeddings, the layer's input, the
    residual after attention and the normed input (``4 x hidden``), and gate, up and their
    product (``3 x intermediate``). A mixture of experts: the shared expert's three, the router's
    float32 logits and probabilities per expert, and the largest expert's share of the tokens,
    taken as all of them routed to it (``experts_per_token x 3 x expert width``): an upper bound."""
    h = dims.hidden_size
    if not dims.experts:
        return t * (4 * h + 3 * dims.intermediate_size) * b
    shared = 3 * dims.shared_expert_intermediate * b
    router = 2 * dims.experts * FLOAT32
    routed = dims.experts_per_token * (h + 3 * dims.expert_intermediate) * b
    return t * (4 * h * b + shared + router + routed)


def _linear_attention_bytes(dims: ModelDims, t: int, b: int) -> int:
    """One Gated DeltaNet layer over ``t`` tokens, as transformers 5.24 computes it without the
    optional kernels (``torch_chunk_gated_delta_rule``, which runs on every device) — 0 for a
    model without such layers.

    In the dtype: the embeddings, the layer's input and its normed input (``3 x hidden``), the
    convolved q, k and v (``2 x keys + values``) and the output gate z (``values``). In float32,
    with q and k repeated to every value head: q, k, k*beta, its decayed copy and k's
    cumulative decay (5 key widths, and the 6th while q and k are decayed), v, v*beta, the new
    values and the output (4 value widths), and three ``chunk x chunk`` matrices per chunk of 64
    (the pairwise decays, the UT system and the intra-chunk attention): ``64 x 3`` per token and
    value head. With the flash-linear-attention kernels installed (a GPU), transformers uses
    them instead, which keep less: this is then an upper bound (not measured on a GPU).
    """
    if not dims.linear_layers:
        return 0
    heads, h = dims.linear_value_heads, dims.hidden_size
    keys = dims.linear_key_heads * dims.linear_key_dim
    values = heads * dims.linear_value_dim
    in_dtype = (3 * h + 2 * keys + 2 * values) * b
    chunk = 64
    in_float32 = heads * (6 * dims.linear_key_dim + 4 * dims.linear_value_dim + 3 * chunk) * FLOAT32
    padded = -(-t // chunk) * chunk
    return t * in_dtype + padded * in_float32


def linear_state_bytes(dims: ModelDims, b: int) -> int:
    """The fixed state of a hybrid's linear-attention layers (Qwen3.5's Gated DeltaNet), whatever
    the prompt's length: per layer, the convolution's last ``kernel`` inputs (q, k and v: ``2 x
    keys + values`` wide, in the dtype) and the recurrent state, ``key dim x value dim`` per value
    head, in float32 (transformers keeps the float32 state its delta rule returns)."""
    keys = dims.linear_key_heads * dims.linear_key_dim
    values = dims.linear_value_heads * dims.linear_value_dim
    conv = (2 * keys + values) * dims.linear_conv_kernel * b
    recurrent = dims.linear_value_heads * dims.linear_key_dim * dims.linear_value_dim * FLOAT32
    return dims.linear_layers * (conv + recurrent)


def softmax_bytes(b: int) -> int:
    """Bytes per attention score at eager attention's peak: the scaled scores in the dtype, and
    ``softmax(dtype=float32)``'s output with, for a 2-byte dtype, the float32 copy of its input
    (8 bytes in float32, 10 in bf16: measured)."""
    return b + FLOAT32 + (FLOAT32 if b < FLOAT32 else 0)


def estimate_memory(
    spec: ModelSpec,
    plans: list[Plan],
    prompt_tokens: int,
    max_new_tokens: int,
    dtype: str = "bfloat16",
    attn: str = "sdpa",
    questions: int = 1,
) -> MemoryEstimate | None:
    """The estimate for one prompt holding ``plans``; None when the model's shapes are unknown.
    With several ``questions`` of its media the prompt's cache is kept for the later ones
    (counted at the whole prompt's length: the question's own tokens are few)."""
    dims = spec.dims
    if dims is None:
        return None
    dtype = canonical_dtype(dtype)
    attn = canonical_attn(attn)
    b = DTYPE_BYTES[dtype]
    weights = weights_bytes(spec, dtype) or 0
    tokens = prompt_tokens + max_new_tokens
    per_token = 2 * dims.full_attention_layers * dims.num_kv_heads * dims.head_dim * b
    state = linear_state_bytes(dims, b)
    # the kept prefill: the prompt's KV of the full-attention layers, the linear layers' state
    kept = per_token * prompt_tokens + state if questions > 1 else 0
    vision = vision_peak_bytes(spec, plans, b, attn)
    prefill = prefill_peak_bytes(spec, plans, prompt_tokens, b, attn)
    active = weights_bytes(spec, dtype, active=True) if dims.experts else None
    return MemoryEstimate(
        dtype,
        weights,
        per_token * tokens,
        vision,
        prefill,
        OVERHEAD_BYTES,
        attn,
        state,
        active,
        kept,
    )
