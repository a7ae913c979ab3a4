"""Reference mRoPE positions (Qwen2-VL, Qwen2.5-VL) and the hook that makes a model use them.

Each prompt token gets three positions (temporal, height, width). The reference (the
``get_rope_index`` the Qwen2.5-VL release was trained and evaluated with) assigns them so:

* a text token gets the same position on all three axes, one more than the token before;
* a vision block (the pad tokens after a ``<|vision_start|>``, image or video) of merged grid
  ``t x h x w`` (``h = grid_h / merge``, ``w = grid_w / merge``) starting at ``s`` (the position
  after the text before it) gets, for temporal patch ``g``, row ``i``, column ``j``::

      temporal = s + T(g)        height = s + i        width = s + j

  with ``T(g) = floor(g * second_per_grid_t * tokens_per_second)`` (Qwen2.5-VL video, computed
  in float32 as ``(g * second_per_grid_t) * tokens_per_second``, then truncated), ``T(g) = 0``
  for an image, ``T(g) = g`` for Qwen2-VL;
* the text after a vision block starts at ``1 + max`` of the block's positions over all three
  axes, the temporal one included, so text never shares a position with any patch before it.

``rope_deltas[b] = max position + 1 - (unpadded length)``: a generated token ``k`` (0-based) then
sits at ``max + 1 + k``.

transformers 5.24 differs
-------------------------
``Qwen2_5_VLModel.get_rope_index`` (and Qwen2-VL's) in transformers 5.24 groups the tokens by
``mm_token_type_ids`` (0 text, 1 image, 2 video) and keeps a running ``current_pos``. A vision
block's positions are those above (``get_vision_position_ids``: temporal
``(arange(t) * (tokens_per_second * second_per_grid_t)).long() + s``), but after the block it
advances ``current_pos += max(grid_h, grid_w) // merge_size``: the block's temporal extent is
ignored. With Qwen2.5-VL's absolute time, the temporal positions of a video reach
``s + floor((t - 1) * second_per_grid_t * tokens_per_second)`` (about twice its duration in
seconds), so the text after a video longer than ``max(h, w) / 2`` seconds is placed on positions
the video's later patches already use. Qwen2-VL is hit when ``t > max(h, w)``.

Hand-worked example: 3 text tokens (``a b <|vision_start|>``), a video of grid (t=3, h=4, w=4)
(merged 3 x 2 x 2 = 12 tokens) with ``second_per_grid_t = 1.0`` and ``tokens_per_second = 2``,
then 2 text tokens (``<|vision_end|> c``); 17 tokens::

    token            a  b  vs | video (12 tokens)                   | ve  c
    temporal (both)  0  1  2  | 3 3 3 3  5 5 5 5  7 7 7 7           |
    height   (both)  0  1  2  | 3 3 4 4  3 3 4 4  3 3 4 4           |
    width    (both)  0  1  2  | 3 4 3 4  3 4 3 4  3 4 3 4           |
    reference                                                       | 8   9    (max 7, + 1)
    transformers 5.24                                               | 5   6    (3 + max(4, 4) // 2)

    rope_deltas: reference 10 - 17 = -7; transformers 5.24 8 - 17 = -9

(Both compute the same temporal values: ``tokens_per_second * second_per_grid_t`` first and
``g *`` after, in float32, equals ``(g * second_per_grid_t) * tokens_per_second`` when
``tokens_per_second`` is a power of two, as the released 2 is.) In 5.24's ``generate`` the new
tokens continue from the last prompt position plus one (``_update_model_kwargs_for_generation``
extends the ``[4, B, L]`` position ids it computed once in
``_prepare_position_ids_for_generation``), so the answer also lands at 7, 8, ... inside the
video's range. For a 60 s 640x360 video at 2 fps (60 temporal patches, merged grid 13 x 23) the
video spans temporal positions ``s .. s + 118`` but the question and the answer start at
``s + 23``: everything after the video overlaps its last 47 seconds.

Also in 5.24: positions are only computed from ``mm_token_type_ids``; called without them
(``generate`` or ``forward``) the model silently gives every token, pads included, plain 1-D text
positions.

The hook: :func:`use_reference_positions` replaces ``get_rope_index`` on the model instance
(``model.model.get_rope_index``), the one method both ``generate``'s prefill
(``_prepare_position_ids_for_generation``) and a plain ``forward`` (``compute_3d_position_ids``)
call; decoding then continues from the reference positions. Qwen3-VL is left to transformers:
its video is split into one block per temporal patch (``t = 1``), each preceded by a textual
timestamp, so advancing by ``max(h, w) / merge`` is the reference there.
"""

from __future__ import annotations

from typing import Any

import torch

from vlcli.models.families import FAMILIES, Family, family_of_model_type

PAD_POSITION = 1  # position given to padding (masked) tokens, as the reference does


def temporal_index(
    family: Family, groups: int, second_per_grid_t: float, tokens_per_second: float
) -> torch.Tensor:
    """Temporal position (from the block's start) of each of ``groups`` temporal patches."""
    if not family.time_encoding.positions_are_seconds:
        return torch.arange(groups, dtype=torch.long)
    spg = torch.tensor(second_per_grid_t, dtype=torch.float32)
    return ((torch.arange(groups, dtype=torch.float32) * spg) * tokens_per_second).long()


def vision_block(start: int, t_index: torch.Tensor, llm_h: int, llm_w: int) -> torch.Tensor:
    """``[3, t * h * w]`` positions of one vision block starting at ``start`` (t outermost)."""
    t = t_index.numel()
    temporal = t_index.view(-1, 1).expand(t, llm_h * llm_w).reshape(-1)
    height = torch.arange(llm_h).view(1, -1, 1).expand(t, llm_h, llm_w).reshape(-1)
    width = torch.arange(llm_w).view(1, 1, -1).expand(t, llm_h, llm_w).reshape(-1)
    return torch.stack([temporal, height, width]) + start


def _row_positions(
    ids: list[int],
    family: Family,
    image_grids: list[torch.Tensor],  # consumed: the grids of later rows stay
    video_grids: list[tuple[torch.Tensor, float]],
    merge: int,
    tokens_per_second: float,
    image_token_id: int,
    video_token_id: int,
    vision_start_token_id: int,
) -> torch.Tensor:
    parts: list[torch.Tensor] = []
    next_pos = 0  # position of the next text token
    st = 0  # index of the first token not yet placed
    n = len(ids)
    starts = [
        i
        for i in range(n - 1)
        if ids[i] == vision_start_token_id and ids[i + 1] in (image_token_id, video_token_id)
    ]
    for vs in starts:
        ed = vs + 1  # first pad token of the block
        if ed < st:
            raise ValueError("vision blocks overlap: the pad tokens do not match the grids")
        if ids[ed] == image_token_id:
            if not image_grids:
                raise ValueError("more image blocks in the prompt than image grids")
            grid = image_grids.pop(0)
            t_index = torch.zeros(int(grid[0]), dtype=torch.long)
        else:
            if not video_grids:
                raise ValueError("more video blocks in the prompt than video grids")
            grid, spg = video_grids.pop(0)
            t_index = temporal_index(family, int(grid[0]), spg, tokens_per_second)
        llm_h, llm_w = int(grid[1]) // merge, int(grid[2]) // merge
        length = t_index.numel() * llm_h * llm_w
        pad = ids[ed]
        if ed + length > n or any(tok != pad for tok in ids[ed : ed + length]):
            raise ValueError(
                f"a vision block of grid {tuple(int(g) for g in grid)} needs {length} pad tokens"
            )
        text_len = ed - st
        parts.append(torch.arange(text_len).view(1, -1).expand(3, -1) + next_pos)
        block = vision_block(next_pos + text_len, t_index, llm_h, llm_w)
        parts.append(block)
        next_pos = int(block.max()) + 1
        st = ed + length
    if st < n:
        parts.append(torch.arange(n - st).view(1, -1).expand(3, -1) + next_pos)
    return torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)


def rope_index(
    input_ids: torch.Tensor,
    *,
    family: Family,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | list[float] | None = None,
    attention_mask: torch.Tensor | None = None,
    spatial_merge_size: int = 2,
    tokens_per_second: float = 2,
    image_token_id: int,
    video_token_id: int,
    vision_start_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference ``(position_ids [3, B, L], rope_deltas [B, 1])`` for a batch of prompts.

    Grids are consumed in prompt order across the batch, as the processor emits them;
    ``second_per_grid_ts`` has one value per video (1.0 when missing, as the reference).
    Tokens where ``attention_mask`` is 0 are skipped and get position ``PAD_POSITION``.
    """
    _check_reference(family.name, family)
    batch, length = input_ids.shape
    images = list(image_grid_thw.cpu()) if image_grid_thw is not None else []
    spgs: list[float]
    if second_per_grid_ts is None:
        spgs = [1.0] * (len(video_grid_thw) if video_grid_thw is not None else 0)
    else:
        spgs = [
            float(x)
            for x in (
                second_per_grid_ts.tolist()
                if isinstance(second_per_grid_ts, torch.Tensor)
                else second_per_grid_ts
            )
        ]
    videos = (
        list(zip(list(video_grid_thw.cpu()), spgs, strict=True))
        if video_grid_thw is not None
        else []
    )
    position_ids = torch.full((3, batch, length), PAD_POSITION, dtype=torch.long)
    deltas = []
    for b in range(batch):
        row = input_ids[b]
        keep = (
            attention_mask[b].bool()
            if attention_mask is not None
            else torch.ones(length, dtype=torch.bool, device=row.device)
        )
        ids = row[keep].tolist()
        pos = _row_positions(
            ids,
            family,
            images,
            videos,
            spatial_merge_size,
            tokens_per_second,
            image_token_id,
            video_token_id,
            vision_start_token_id,
        )
        position_ids[:, b, keep.cpu()] = pos
        deltas.append((int(pos.max()) + 1 if pos.numel() else 0) - len(ids))
    if images or videos:
        raise ValueError("fewer vision blocks in the prompts than grids")
    device = input_ids.device
    return position_ids.to(device), torch.tensor(deltas, dtype=torch.long, device=device).view(
        -1, 1
    )


def _check_reference(model_type: str, family: Family | None) -> Family:
    """``family``, where vlcli gives it the reference's positions; a ValueError otherwise."""
    if family is None or not family.reference_positions:
        names = tuple(f.name for f in FAMILIES if f.reference_positions)
        raise ValueError(f"reference positions are for {names}, not {model_type!r}")
    return family


def use_reference_positions(model: Any, *, tokens_per_second: float | None = None) -> None:
    """Make a Qwen2-VL / Qwen2.5-VL ``...ForConditionalGeneration`` use :func:`rope_index`.

    Replaces ``get_rope_index`` on the inner model instance; ``generate`` and ``forward`` both
    call it (with ``mm_token_type_ids`` given: without them transformers skips it).
    ``tokens_per_second`` defaults to the model config's value.
    """
    config = model.config
    family = _check_reference(config.model_type, family_of_model_type(config.model_type))
    vision = config.vision_config
    tps = (
        tokens_per_second
        if tokens_per_second is not None
        else getattr(vision, "tokens_per_second", 2)
    )
    ids = dict(
        image_token_id=config.image_token_id,
        video_token_id=config.video_token_id,
        vision_start_token_id=config.vision_start_token_id,
    )

    def get_rope_index(
        input_ids: torch.Tensor,
        mm_token_type_ids: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        result = rope_index(
            input_ids,
            family=family,
            image_grid_thw=image_grid_thw,
            video_grid_thw=video_grid_thw,
            second_per_grid_ts=second_per_grid_ts
            if family.time_encoding.positions_are_seconds
            else None,
            attention_mask=attention_mask
            if attention_mask is not None and attention_mask.dim() == 2
            else None,
            spatial_merge_size=vision.spatial_merge_size,
            tokens_per_second=tps,
            **ids,
        )
        # What the model is given, kept for recorded_video_axes (one prompt at a time).
        model.model.vlcli_last_positions = (input_ids.detach(), result[0].detach())
        return result

    get_rope_index.vlcli_reference = True  # type: ignore[attr-defined]
    model.model.get_rope_index = get_rope_index
    model.model.vlcli_last_positions = None


def recorded_video_axes(
    model: Any,
    input_ids: torch.Tensor,
    grids: list[tuple[int, int, int]],
    merge: int,
) -> list[tuple[list[int], int | None]] | None:
    """The temporal positions each video of the last prompt was really given, read back.

    For each video block (in prompt order, the pad tokens of a ``video_token_id`` run): the
    temporal position of each temporal patch, counted from the block's first position, and where
    the text after the block starts (same origin; None when the block ends the prompt). None
    when :func:`use_reference_positions` recorded no positions for this very prompt (one row).
    """
    recorded = getattr(model.model, "vlcli_last_positions", None)
    if recorded is None:
        return None
    ids, position_ids = recorded
    if ids.shape != input_ids.shape or not torch.equal(ids.cpu(), input_ids.cpu()):
        return None
    row = input_ids[0].tolist()
    temporal = position_ids[0, 0].tolist()
    video_token_id = model.config.video_token_id
    out: list[tuple[list[int], int | None]] = []
    i = 0
    for t, h, w in grids:
        while i < len(row) and row[i] != video_token_id:
            i += 1
        per_patch = (h // merge) * (w // merge)
        length = t * per_patch
        if i + length > len(row) or any(tok != video_token_id for tok in row[i : i + length]):
            return None
        start = temporal[i]
        positions = [temporal[i + g * per_patch] - start for g in range(t)]
        after = i + length
        out.append((positions, temporal[after] - start if after < len(row) else None))
        i = after
    return out
