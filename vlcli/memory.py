"""GPU-memory estimate for one ``ask``, from the model's shapes and the plan's token counts.

The estimate is a sum of four parts (bytes; ``b`` = bytes per value of the dtype, 2 for bf16):

* ``weights = parameters * b`` — parameters counted from config.json (``ModelDims``).
* ``kv_cache = 2 * layers * kv_heads * head_dim * (prompt_tokens + max_new_tokens) * b``.
* ``activations = max(vision_peak, prefill_peak)``; they do not coexist:
  - ``vision_peak = patches * (4 * vision_hidden + 3 * vision_intermediate) * b
    + vision_heads * group_patches**2 * b`` — one vision block over all patches (residual,
    attention in/out, the MLP) plus the attention scores of the largest attention group (one
    temporal patch: ``grid_h * grid_w`` patches) where the kernel materialises them;
  - ``prefill_peak = prompt_tokens * (4 * hidden + 3 * intermediate) * b + prompt_tokens * hidden * b``
    — one decoder layer over the whole prompt, plus the merged visual embeddings.
* ``overhead = 0.5 GiB`` — CUDA context and allocator slack (a constant, not measured per GPU).

It is an estimate: it errs on the generous side and is compared to measured peaks in the
README's Performance section.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .errors import MemoryBudgetError, UsageError
from .families import ModelSpec
from .plan import ImagePlan, VideoPlan

GIB = 1024**3
OVERHEAD_BYTES = GIB // 2
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
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

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes
            + self.kv_cache_bytes
            + max(self.vision_peak_bytes, self.prefill_peak_bytes)
            + self.overhead_bytes
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_bytes"] = self.total_bytes
        d["total_gib"] = round(self.total_bytes / GIB, 2)
        return d


def weights_bytes(spec: ModelSpec, dtype: str) -> int | None:
    """Bytes of the model's weights in ``dtype``; None when the model's shapes are unknown."""
    dims = spec.dims
    if dims is None:
        return None
    fam = spec.family
    params = dims.parameter_count(fam.patch_size, fam.temporal_patch_size, fam.spatial_merge_size)
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


def estimate_memory(
    spec: ModelSpec,
    plans: list[VideoPlan | ImagePlan],
    prompt_tokens: int,
    max_new_tokens: int,
    dtype: str = "bfloat16",
) -> MemoryEstimate | None:
    """The estimate for one prompt holding ``plans``; None when the model's shapes are unknown."""
    dims = spec.dims
    if dims is None:
        return None
    dtype = canonical_dtype(dtype)
    b = DTYPE_BYTES[dtype]
    fam = spec.family
    weights = weights_bytes(spec, dtype) or 0
    tokens = prompt_tokens + max_new_tokens
    kv = 2 * dims.num_layers * dims.num_kv_heads * dims.head_dim * tokens * b
    merge2 = fam.spatial_merge_size**2
    patches = sum(p.visual_tokens for p in plans) * merge2
    group = max((p.grid_thw[1] * p.grid_thw[2] for p in plans), default=0)
    vision = patches * (4 * dims.vision_hidden + 3 * dims.vision_intermediate) * b
    vision += dims.vision_heads * group * group * b
    prefill = prompt_tokens * (4 * dims.hidden_size + 3 * dims.intermediate_size) * b
    prefill += prompt_tokens * dims.hidden_size * b
    return MemoryEstimate(dtype, weights, kv, vision, prefill, OVERHEAD_BYTES)
