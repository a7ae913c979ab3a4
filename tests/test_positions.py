"""Reference mRoPE positions: hand-worked cases, transformers 5.24's divergence, the model hook."""

from __future__ import annotations

import pytest
import torch
from helpers_backend import ask_media

from vlcli.backends.transformers.positions import rope_index, temporal_index
from vlcli.models.families import QWEN2_5_VL, QWEN2_VL, QWEN3_VL
from vlcli.planning.plan import SamplingOptions, plan_video
from vlcli.planning.plan import temporal_positions as plan_temporal_positions

pytest_plugins = ("conftest_models",)

# Token ids of the hand-worked cases (any ids work: only these four are special).
VS, VE, IMG, VID, PAD = 90, 91, 92, 93, 0
IDS = dict(image_token_id=IMG, video_token_id=VID, vision_start_token_id=VS)


def _t(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def test_video_then_text_starts_after_the_temporal_maximum() -> None:
    # a b <vs> [video: grid (3, 4, 4) -> 3 x 2 x 2 = 12 tokens] <ve> c
    ids = torch.tensor([[1, 2, VS] + [VID] * 12 + [VE, 3]])
    pos, deltas = rope_index(
        ids,
        family=QWEN2_5_VL,
        video_grid_thw=_t([[3, 4, 4]]),
        second_per_grid_ts=torch.tensor([1.0]),
        tokens_per_second=2,
        **IDS,
    )
    expected = _t(
        [
            [0, 1, 2, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7, 8, 9],  # temporal: 3 + floor(g * 1.0 * 2)
            [0, 1, 2, 3, 3, 4, 4, 3, 3, 4, 4, 3, 3, 4, 4, 8, 9],  # height
            [0, 1, 2, 3, 4, 3, 4, 3, 4, 3, 4, 3, 4, 3, 4, 8, 9],  # width
        ]
    ).unsqueeze(1)
    assert torch.equal(pos, expected)
    assert deltas.tolist() == [[10 - 17]]  # max 9, + 1, minus 17 tokens


def test_image_block() -> None:
    # a <vs> [image: grid (1, 4, 6) -> 2 x 3 = 6 tokens] <ve> b c
    ids = torch.tensor([[1, VS] + [IMG] * 6 + [VE, 2, 3]])
    pos, deltas = rope_index(ids, family=QWEN2_5_VL, image_grid_thw=_t([[1, 4, 6]]), **IDS)
    expected = _t(
        [
            [0, 1, 2, 2, 2, 2, 2, 2, 5, 6, 7],
            [0, 1, 2, 2, 2, 3, 3, 3, 5, 6, 7],
            [0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7],
        ]
    ).unsqueeze(1)
    assert torch.equal(pos, expected)
    assert deltas.tolist() == [[8 - 11]]


def test_two_videos_with_their_own_seconds_per_patch() -> None:
    # <vs> [video 1: (2, 2, 2) -> 2 x 1 x 1] <ve> a <vs> [video 2: (4, 2, 4) -> 4 x 1 x 2] <ve>
    ids = torch.tensor([[VS] + [VID] * 2 + [VE, 1, VS] + [VID] * 8 + [VE]])
    pos, deltas = rope_index(
        ids,
        family=QWEN2_5_VL,
        video_grid_thw=_t([[2, 2, 2], [4, 2, 4]]),
        second_per_grid_ts=torch.tensor([0.5, 1.5]),  # temporal steps of 1 and 3 positions
        tokens_per_second=2,
        **IDS,
    )
    expected = _t(
        [
            [0, 1, 2, 3, 4, 5, 6, 6, 9, 9, 12, 12, 15, 15, 16],
            [0, 1, 1, 3, 4, 5, 6, 6, 6, 6, 6, 6, 6, 6, 16],
            [0, 1, 1, 3, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 16],
        ]
    ).unsqueeze(1)
    assert torch.equal(pos, expected)
    assert deltas.tolist() == [[17 - 15]]


def test_left_padded_batch_skips_padding() -> None:
    row0 = [1, 2, VS] + [VID] * 12 + [VE, 3]  # the first case, 17 tokens
    row1 = [PAD] * 9 + [1, VS] + [VID] * 4 + [VE, 2]  # 8 tokens, grid (2, 4, 2) -> 2 x 2 x 1
    ids = torch.tensor([row0, row1])
    mask = (ids != PAD).long()
    pos, deltas = rope_index(
        ids,
        family=QWEN2_5_VL,
        video_grid_thw=_t([[3, 4, 4], [2, 4, 2]]),
        second_per_grid_ts=torch.tensor([1.0, 1.0]),
        attention_mask=mask,
        tokens_per_second=2,
        **IDS,
    )
    pads = [1] * 9  # padding gets position 1 (masked anyway), as the reference
    assert pos[:, 1].tolist() == [
        pads + [0, 1, 2, 2, 4, 4, 5, 6],
        pads + [0, 1, 2, 3, 2, 3, 5, 6],
        pads + [0, 1, 2, 2, 2, 2, 5, 6],
    ]
    assert pos[0, 0].tolist() == [0, 1, 2, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7, 8, 9]
    assert deltas.tolist() == [[-7], [7 - 8]]  # deltas count unpadded tokens (transformers 5.x)


def test_qwen2_vl_counts_temporal_patches() -> None:
    # a <vs> [video: grid (4, 2, 4) -> 4 x 1 x 2] <ve>; temporal index = patch number
    ids = torch.tensor([[1, VS] + [VID] * 8 + [VE]])
    pos, deltas = rope_index(ids, family=QWEN2_VL, video_grid_thw=_t([[4, 2, 4]]), **IDS)
    expected = _t(
        [
            [0, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6],
            [0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 6],
            [0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 6],
        ]
    ).unsqueeze(1)
    assert torch.equal(pos, expected)
    assert deltas.tolist() == [[7 - 11]]


@pytest.mark.parametrize(
    "spg", [1.0, 2 / 3, 0.7, 2 / 2.9970029970029968, 2 / 1.9047619047619047, 0.0625]
)
def test_temporal_index_equals_the_plans(spg: float) -> None:
    """The model's temporal positions are the ones ``vlcli budget`` shows (float32 arithmetic)."""
    ours = temporal_index(QWEN2_5_VL, 300, spg, 2).tolist()
    assert ours == plan_temporal_positions(QWEN2_5_VL, 300, spg)


def test_malformed_prompts_are_refused() -> None:
    ids = torch.tensor([[1, VS] + [VID] * 5 + [VE]])  # 5 pads, the grid needs 12
    with pytest.raises(ValueError, match="pad tokens"):
        rope_index(ids, family=QWEN2_5_VL, video_grid_thw=_t([[3, 4, 4]]), **IDS)
    with pytest.raises(ValueError, match="fewer vision blocks"):
        rope_index(torch.tensor([[1, 2]]), family=QWEN2_5_VL, video_grid_thw=_t([[3, 4, 4]]), **IDS)
    with pytest.raises(ValueError, match="qwen3_vl"):
        rope_index(torch.tensor([[1, 2]]), family=QWEN3_VL, **IDS)


# ---------------------------------------------------------------- transformers' own positions


def _transformers_model(family: str) -> torch.nn.Module:
    from tinymodels import build_config, build_tokenizer
    from transformers import Qwen2_5_VLModel, Qwen2VLModel

    cls = Qwen2_5_VLModel if family == "qwen2_5_vl" else Qwen2VLModel
    return cls(build_config(family, build_tokenizer()))


def test_transformers_puts_text_after_a_video_inside_its_temporal_range() -> None:
    """transformers 5.24 advances by max(h, w) / merge after a video, ignoring its duration.

    If this fails, transformers changed its positions: check whether it now matches the
    reference and whether ``vlcli.backends.transformers.positions`` is still needed.
    """
    model = _transformers_model("qwen2_5_vl")
    ids = torch.tensor([[1, 2, VS] + [VID] * 12 + [VE, 3]])
    mm_types = (ids == VID).long() * 2
    grid, spg = _t([[3, 4, 4]]), torch.tensor([1.0])
    theirs, their_deltas = model.get_rope_index(
        ids, mm_token_type_ids=mm_types, video_grid_thw=grid, second_per_grid_ts=spg
    )
    ours, our_deltas = rope_index(
        ids,
        family=QWEN2_5_VL,
        video_grid_thw=grid,
        second_per_grid_ts=spg,
        tokens_per_second=2,
        **IDS,
    )
    assert torch.equal(theirs[:, :, :15], ours[:, :, :15])  # text before and the video agree
    assert theirs[:, 0, 15:].tolist() == [[5, 6]] * 3  # 3 + max(4, 4) // 2: inside 3..7
    assert ours[:, 0, 15:].tolist() == [[8, 9]] * 3
    assert their_deltas.tolist() == [[-9]] and our_deltas.tolist() == [[-7]]


def test_transformers_qwen2_vl_diverges_when_there_are_more_patches_than_rows() -> None:
    model = _transformers_model("qwen2_vl")
    ids = torch.tensor([[1, VS] + [VID] * 8 + [VE]])
    theirs, _ = model.get_rope_index(
        ids, mm_token_type_ids=(ids == VID).long() * 2, video_grid_thw=_t([[4, 2, 4]])
    )
    assert theirs[:, 0, -1].tolist() == [4, 4, 4]  # 2 + max(2, 4) // 2, while the video reaches 5
    ours, _ = rope_index(ids, family=QWEN2_VL, video_grid_thw=_t([[4, 2, 4]]), **IDS)
    assert ours[:, 0, -1].tolist() == [6, 6, 6]


# ---------------------------------------------------------------- the model uses them


def _small_plan(runner, clip: str):  # type: ignore[no-untyped-def]
    """3 temporal patches on a 2 x 2 merged grid: the video's temporal range (0..4) is wider
    than its spatial one, so transformers' positions and the reference differ after it."""
    from vlcli.media.probe import probe

    options = SamplingOptions(min_pixels=784, max_pixels=2000)
    plan = plan_video(probe(clip).video_facts(), options, runner.family)
    assert plan.grid_thw == (3, 4, 4) and plan.temporal_positions == (0, 2, 4)
    return plan


def _reference(runner, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    cfg = runner.model.config
    return rope_index(
        inputs["input_ids"],
        family=QWEN2_5_VL,
        video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs["second_per_grid_ts"],
        attention_mask=inputs["attention_mask"],
        tokens_per_second=2,
        image_token_id=cfg.image_token_id,
        video_token_id=cfg.video_token_id,
        vision_start_token_id=cfg.vision_start_token_id,
    )


def test_generate_prefills_and_decodes_with_reference_positions(
    qwen25_runner, tiny_clip: str
) -> None:  # type: ignore[no-untyped-def]
    runner = qwen25_runner
    plan = _small_plan(runner, tiny_clip)
    inputs, _ = runner.inputs_for([(tiny_clip, plan)], "When does it change?")
    expected, _ = _reference(runner, inputs)
    seen: list[torch.Tensor] = []

    def spy(_module, _args, kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs["position_ids"].detach().clone())

    hook = runner.model.model.language_model.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        answer = ask_media(runner, [(tiny_clip, plan)], "When does it change?", max_new_tokens=4)
    finally:
        hook.remove()
    assert len(seen) == answer.generated_tokens >= 2  # one prefill, then decoding steps
    prefill = seen[0]
    assert prefill.shape[-1] == inputs["input_ids"].shape[1]
    assert torch.equal(
        prefill[-3:], expected
    )  # rows 1..3 of generate's [4, B, L] are the mRoPE ones
    top = int(expected.max())
    for k, step in enumerate(seen[1:]):
        assert (
            step[-3:].flatten().tolist() == [top + 1 + k] * 3
        )  # decoding continues after the maximum


def test_forward_logits_follow_the_reference_positions(qwen25_runner, tiny_clip: str) -> None:  # type: ignore[no-untyped-def]
    runner = qwen25_runner
    plan = _small_plan(runner, tiny_clip)
    inputs, _ = runner.inputs_for([(tiny_clip, plan)], "When does it change?")
    ours, _ = _reference(runner, inputs)
    inner = runner.model.model
    theirs, _ = type(inner).get_rope_index(
        inner,
        inputs["input_ids"],
        mm_token_type_ids=inputs["mm_token_type_ids"],
        video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs["second_per_grid_ts"],
        attention_mask=inputs["attention_mask"],
    )
    assert not torch.equal(ours, theirs)
    with torch.no_grad():
        hooked = runner.model(**inputs, use_cache=False).logits
        explicit = runner.model(**inputs, position_ids=ours, use_cache=False).logits
        transformers_own = runner.model(**inputs, position_ids=theirs, use_cache=False).logits
    assert torch.equal(hooked, explicit)
    assert not torch.allclose(hooked[0, -1], transformers_own[0, -1])
