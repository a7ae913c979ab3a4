"""The reference's resize of a frame, to the same bytes, in less time: the compiled kernel
(``vlcli/_resample.c``) where it is exact, torch where it is not.

The reference resizes each frame with torchvision: a float32 copy, torch's antialiased bicubic
interpolation, clamp, round, uint8. The bytes depend on every float operation of torch's
kernel, including which of its products and sums the compiler fused, which differs between
builds (measured on torch 2.14.1's AVX512 kernel: each output's sum is unrolled by four, the
unrolled part rounded twice per tap, the remainder fused). So nothing is assumed here:

1. the supports and weights are torch's own, read off torch by resizing one-hot rows (each
   output of a one-hot row is exactly one weight) and NaN rows (a NaN reaches every output
   whose support holds it, zero weights included);
2. the rounding rule is found by trying the candidates on a random plane of the same geometry
   and keeping the first whose floats equal torch's, every one of them, bit for bit;
3. if none does, or the CPU lacks AVX2 and FMA, or the kernel was not built, or
   ``VLCLI_RESIZE=torch`` is set, the frame goes through torch, as before.

A kernel is set up once per geometry and process (0.1-0.2 s for 1080p, measured), before the
decoding workers fork, so that they inherit it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.functional import interpolate

from vlcli.media import heap

# (unroll, body fused, remainder fused); the first is what torch 2.14.1 builds do on x86-64
RULES: tuple[tuple[int, bool, bool], ...] = (
    (4, False, True),
    (1, False, False),
    (1, True, True),
    (2, False, True),
    (8, False, True),
    (16, False, True),
    (4, True, False),
    (2, True, False),
    (8, True, False),
)
_CHUNK = 512  # one-hot rows per interpolate call while reading the weights off torch


def _module() -> Any | None:
    """The compiled kernel, if it is built, runs on this CPU and is not turned off."""
    if os.environ.get("VLCLI_RESIZE", "").strip().lower() == "torch":
        return None
    try:
        from vlcli.media import _resample  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _resample if _resample.available() else None


def torch_resize(plane: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Torch's float result for one float32 plane (H, W): the call torchvision makes."""
    return interpolate(
        plane[None, None], size=list(size), mode="bicubic", align_corners=False, antialias=True
    )[0, 0]


@dataclass(frozen=True)
class Axis:
    """One axis of a resize as torch computes it: each output's first source index, its support
    (torch's count, zero weights included) and its weights, zero after the support."""

    first: torch.Tensor  # int32 (n_out,)
    size: torch.Tensor  # int32 (n_out,)
    weights: torch.Tensor  # float32 (n_out, taps)

    @property
    def taps(self) -> int:
        return int(self.weights.shape[1])


def read_axis(n_in: int, n_out: int) -> Axis:
    """Torch's supports and weights for resizing ``n_in`` values to ``n_out``, read off torch."""
    weights = torch.empty((n_in, n_out), dtype=torch.float32)
    inside = torch.empty((n_in, n_out), dtype=torch.bool)
    for r0 in range(0, n_in, _CHUNK):
        rows = min(_CHUNK, n_in - r0)
        probe = torch.zeros((rows, n_in), dtype=torch.float32)
        diagonal = (torch.arange(rows), r0 + torch.arange(rows))
        probe[diagonal] = 1.0
        weights[r0 : r0 + rows] = torch_resize(probe, (rows, n_out))
        probe[diagonal] = float("nan")
        inside[r0 : r0 + rows] = torch_resize(probe, (rows, n_out)).isnan()
    size = inside.sum(0)
    first = inside.to(torch.int8).argmax(0)
    last = n_in - 1 - inside.flip(0).to(torch.int8).argmax(0)
    if bool((size == 0).any()) or not torch.equal(last - first + 1, size):
        raise ValueError(f"torch's supports for {n_in} -> {n_out} are not contiguous")
    if bool(weights[~inside].ne(0).any()):
        raise ValueError(f"torch weighs values outside its supports for {n_in} -> {n_out}")
    taps = int(size.max())
    index = (first[None, :] + torch.arange(taps)[:, None]).clamp_(max=n_in - 1)
    table = weights.gather(0, index) * (torch.arange(taps)[:, None] < size[None, :])
    return Axis(
        first.to(torch.int32).contiguous(),
        size.to(torch.int32).contiguous(),
        table.t().contiguous(),
    )


def _up8(n: int) -> int:
    return (n + 7) // 8 * 8


def workspace_floats(source: tuple[int, int], size: tuple[int, int]) -> int:
    """The floats the kernel keeps between its steps for one plane (see ``resample_plane``)."""
    (h_in, w_in), w_out = source, size[1]
    hp, wip = _up8(h_in), _up8(w_in)
    w_now = _up8(w_out) if w_out != w_in else wip  # the intermediate plane's row
    return 8 * wip + wip * 8 + 64 + hp * w_now + w_now


class Kernel:
    """The compiled resize for one geometry, with the rule found exact for it."""

    def __init__(self, module: Any, source: tuple[int, int], size: tuple[int, int]):
        self.module = module
        self.source = source
        self.size = size
        # a size that stays is not resized by torch: its axis is never read
        self.rows = read_axis(source[1], size[1]) if size[1] != source[1] else _no_axis()
        self.columns = read_axis(source[0], size[0]) if size[0] != source[0] else _no_axis()
        self._local = threading.local()  # each thread's workspace, made at its first frame
        self.rule: tuple[int, bool, bool] | None = None

    def run(
        self,
        frame: torch.Tensor,
        out: torch.Tensor,
        rule: tuple[int, bool, bool] | None = None,
        floats: torch.Tensor | None = None,
    ) -> None:
        """``frame`` (C, H, W) uint8, any strides (HWC memory seen as CHW is the usual), resized
        into ``out`` (C, h, w) uint8, contiguous; ``floats``: the values before rounding."""
        rule = rule or self.rule
        if rule is None:
            raise ValueError("no rule is known to be exact for this kernel")
        channels, h_in, w_in = frame.shape
        if (h_in, w_in) != self.source or frame.dtype != torch.uint8 or frame.device.type != "cpu":
            raise ValueError(f"a frame of {tuple(frame.shape)}, the kernel is for {self.source}")
        for name, t, dtype in (("output", out, torch.uint8), ("floats", floats, torch.float32)):
            if t is not None and (
                tuple(t.shape) != (channels, *self.size)
                or t.dtype != dtype
                or not t.is_contiguous()
                or t.device.type != "cpu"
            ):
                raise ValueError(f"an {name} of {tuple(t.shape)} {t.dtype} for {self.size}")
        unroll, body, rest = rule
        self.module.resize(
            frame.data_ptr(), frame.stride(0), frame.stride(1), frame.stride(2),
            h_in, w_in, channels, out.data_ptr(), *self.size,
            self.rows.first.data_ptr(), self.rows.size.data_ptr(),
            self.rows.weights.data_ptr(), self.rows.taps,
            self.columns.first.data_ptr(), self.columns.size.data_ptr(),
            self.columns.weights.data_ptr(), self.columns.taps,
            unroll, int(body), int(rest), self.work().data_ptr(),
            0 if floats is None else floats.data_ptr(),
        )  # fmt: skip

    def work(self) -> torch.Tensor:
        """The floats the kernel keeps between its steps, zeroed once (the padding must be 0):
        one per thread, made when first needed, so that a decoding worker forked after the
        set-up makes its own and the parent holds none once the check is done."""
        work = getattr(self._local, "work", None)
        if work is None:
            work = torch.zeros(workspace_floats(self.source, self.size), dtype=torch.float32)
            self._local.work = work
        return work

    def exact(self, rule: tuple[int, bool, bool], seed: int = 0) -> bool:
        """Whether the kernel under ``rule`` gives torch's floats, every one, on a random plane."""
        generator = torch.Generator().manual_seed(seed)
        plane = torch.randint(0, 256, (1, *self.source), dtype=torch.uint8, generator=generator)
        expected = torch_resize(plane[0].float(), self.size)
        got = torch.empty((1, *self.size), dtype=torch.float32)
        self.run(plane, torch.empty((1, *self.size), dtype=torch.uint8), rule, floats=got)
        return bool(torch.equal(got[0].view(torch.int32), expected.view(torch.int32)))


def _no_axis() -> Axis:
    """The axis of a size that stays (never read by the kernel)."""
    empty = torch.zeros(1, dtype=torch.int32)
    return Axis(empty, empty, torch.zeros((1, 1), dtype=torch.float32))


_kernels: dict[tuple[tuple[int, int], tuple[int, int]], Kernel | None] = {}
_last_rule: list[tuple[int, bool, bool]] = []


def kernel_for(source: tuple[int, int], size: tuple[int, int]) -> Kernel | None:
    """The kernel for resizing ``source`` (height, width) to ``size``, with its exact rule, or
    None where torch must do it (no kernel here, or no rule gives torch's floats)."""
    key = (source, size)
    if key in _kernels:
        return _kernels[key]
    module = _module()
    kernel: Kernel | None = None
    if module is not None and source != size:
        try:
            candidate = Kernel(module, source, size)
            for rule in dict.fromkeys([*_last_rule, *RULES]):
                if candidate.exact(rule):
                    candidate.rule = rule
                    _last_rule[:] = [rule]
                    kernel = candidate
                    break
            candidate._local = threading.local()  # the check's workspace goes
        except (ValueError, RuntimeError, MemoryError):
            kernel = None  # torch's supports not as expected, or torch failed: torch resizes
        # the set-up's temporaries (about 55 MB at 1080p) would otherwise stay in the heap
        heap.give_back()
    _kernels[key] = kernel
    return kernel
