"""Normalising and patching straight into the prompt's tensor (vlcli.backends.transformers.model_inputs.normalise_into)
must give the video processor's rows bit for bit, and fall back to the processor otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoProcessor

from vlcli.backends.transformers import model_inputs as inputs
from vlcli.media.probe import probe
from vlcli.models.families import resolve_model
from vlcli.planning.plan import SamplingOptions, plan_video

pytest_plugins = ("conftest_models",)


@pytest.fixture(params=["qwen2_5", "qwen2", "qwen3"])
def model_path(request, tiny_qwen25_path: Path, tiny_qwen2_path: Path, tiny_qwen3_path: Path):
    return {"qwen2_5": tiny_qwen25_path, "qwen2": tiny_qwen2_path, "qwen3": tiny_qwen3_path}[
        request.param
    ]


def _frames(frames: int, grid: tuple[int, int], patch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (frames, 3, grid[0] * patch, grid[1] * patch)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)


def test_direct_rows_equal_the_processors(model_path):
    vp = AutoProcessor.from_pretrained(str(model_path)).video_processor
    grid = (6, 10)  # patches: multiples of the merge size
    tp = vp.temporal_patch_size
    for frames in (_frames(tp, grid, vp.patch_size), _frames(3 * tp, grid, vp.patch_size, 1)):
        rows = inputs._processor_rows(vp, frames, grid, tp, 3 * tp * vp.patch_size**2)
        assert inputs._direct_matches(vp, frames, grid, tp, rows)
        out = torch.full_like(rows, float("nan"))
        inputs.normalise_into(vp, frames, grid, tp, out)
        assert torch.equal(out.view(torch.int32), rows.view(torch.int32))


def test_a_processor_without_the_step_falls_back(tiny_qwen25_path):
    vp = AutoProcessor.from_pretrained(str(tiny_qwen25_path)).video_processor
    frames = _frames(2, (4, 4), vp.patch_size)
    rows = inputs._processor_rows(vp, frames, (4, 4), 2, 2 * 3 * vp.patch_size**2)

    class Other:  # another transformers: the processor has no such method
        def __getattr__(self, name):
            if name == "rescale_and_normalize":
                raise AttributeError(name)
            return getattr(vp, name)

    assert not inputs._direct_matches(Other(), frames, (4, 4), 2, rows)
    assert not inputs._direct_matches(vp, frames[:1], (4, 4), 2, rows)  # not whole patches


def test_video_pixels_uses_the_direct_path_after_the_first_chunk(
    tiny_qwen25_path, clip_landscape, monkeypatch
):
    """A whole video: the first chunk through the processor, the rest written directly; the
    rows equal those of the processor alone."""
    processor = AutoProcessor.from_pretrained(str(tiny_qwen25_path))
    family = resolve_model(str(tiny_qwen25_path)).family
    plan = plan_video(probe(clip_landscape).video_facts(), SamplingOptions(nframes=8), family)
    rows = plan.grid_thw[0] * plan.grid_thw[1] * plan.grid_thw[2]
    dim = 3 * family.temporal_patch_size * family.patch_size**2
    direct = torch.empty((rows, dim))
    calls: list[int] = []
    real = inputs.normalise_into

    def counting(*args):
        calls.append(1)
        real(*args)

    monkeypatch.setattr(inputs, "normalise_into", counting)
    inputs.video_pixels(processor, clip_landscape, plan, family, direct)
    direct_calls = len(calls)
    monkeypatch.setattr(inputs, "_direct_matches", lambda *a: False)
    through_processor = torch.empty((rows, dim))
    inputs.video_pixels(processor, clip_landscape, plan, family, through_processor)
    assert direct_calls == plan.grid_thw[0]  # the check on the first chunk, then each later one
    assert torch.equal(direct.view(torch.int32), through_processor.view(torch.int32))
