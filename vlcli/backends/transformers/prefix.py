"""The media's prefill kept for an input's next questions: each continues from a copy of it.

vlcli's prompt is the system prompt, then every media item, then the question (the task's text)
and the generation prompt. Everything up to the end of the last media item (its
``<|vision_end|>``) is the same for every question of an input: its *shared prefix*. It is run
through the vision tower and prefilled once, its cache kept (:class:`KeptPrefix`); each question
then generates from a ``copy.deepcopy`` of that cache (a hybrid model's linear-attention state
included, as it lives in the cache), prefilling only its own tokens.

Positions: ``generate`` is given the whole prompt's ``input_ids``, mask and
``mm_token_type_ids`` (and the grids), with the cache. transformers 5.24's Qwen2/2.5/3-VL
``_prepare_position_ids_for_generation`` reuses the model's stored ``rope_deltas`` when a cache
is given, and those are the last prompt's; so they are cleared first, and the whole prompt's
mRoPE positions are computed again (through vlcli's reference ``get_rope_index`` where the
family uses it), of which ``generate`` feeds only the uncached tokens' to the model. The pixels
are not passed again: the question's tokens hold no media.

A prompt whose prefix differs from the kept one (another input, another system prompt, a family
or task whose text comes before the media) gets its own prefill, kept in the place of the old.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from vlcli.planning.prompt import VISION_END

PIXELS = ("pixel_values", "pixel_values_videos")  # what only the prefill of the media needs


@dataclass(frozen=True)
class KeptPrefix:
    """One input's shared prefix, prefilled: the pixel tensors it was made from (the very
    objects, shared by every question of the input), its token ids, and its cache."""

    pixels: tuple[torch.Tensor | None, ...]
    ids: torch.Tensor
    cache: Any

    def same_media(self, pixels: tuple[torch.Tensor | None, ...]) -> bool:
        return all(a is b for a, b in zip(self.pixels, pixels, strict=True))

    def serves(self, pixels: tuple[torch.Tensor | None, ...], ids: torch.Tensor) -> bool:
        return self.same_media(pixels) and torch.equal(self.ids, ids)


PREFILLED_AGAIN = (
    "the text before the media differs from the input's earlier question (another system "
    "prompt, or a prompt that puts text before the media): its media were prefilled again"
)


def shared_length(input_ids: torch.Tensor, vision_end_id: int) -> int | None:
    """The tokens up to and including the last media's end; None for a prompt of text alone."""
    ends = (input_ids[0] == vision_end_id).nonzero()
    return int(ends[-1]) + 1 if len(ends) else None


class PrefixCache:
    """The last input's kept prefix (at most one: the next input's replaces it)."""

    def __init__(self) -> None:
        self.kept: KeptPrefix | None = None

    def release(self) -> None:
        self.kept = None

    def continuation(
        self, model: Any, tokenizer: Any, inputs: dict[str, torch.Tensor], keep: bool
    ) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
        """``generate``'s inputs for this prompt, and the answer's notes.

        A prompt whose prefix is the kept one continues from it: from a copy when ``keep``
        (more questions of the input follow), else from the kept cache itself, then let go.
        Another prefix is prefilled and kept when ``keep``; without ``keep`` the prompt is
        prefilled whole, as any prompt. Same media with another prefix is said in a note."""
        length = shared_length(inputs["input_ids"], tokenizer.convert_tokens_to_ids(VISION_END))
        if length is None or length >= inputs["input_ids"].shape[1]:
            self.kept = None
            return inputs, ()
        pixels = tuple(inputs.get(name) for name in PIXELS)
        ids = inputs["input_ids"][:, :length]
        notes: tuple[str, ...] = ()
        if self.kept is None or not self.kept.serves(pixels, ids):
            if self.kept is not None and self.kept.same_media(pixels):
                notes = (PREFILLED_AGAIN,)
            self.kept = None  # given back before the next prefill
            if not keep:
                return inputs, notes
            self.kept = KeptPrefix(pixels, ids, prefill(model, inputs, length))
        kept = self.kept
        if not keep:
            self.kept = None  # the input's last question: its prefill is used up
        model.model.rope_deltas = None  # the last prompt's: the positions are computed again
        rest = {k: v for k, v in inputs.items() if k not in PIXELS}
        with torch.inference_mode():
            rest["cache"] = copy.deepcopy(kept.cache) if keep else kept.cache
        return rest, notes


def prefill(model: Any, inputs: dict[str, torch.Tensor], length: int) -> Any:
    """The cache of the prompt's first ``length`` tokens: the media through the vision tower."""
    prefix = {
        k: (v[:, :length] if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v)
        for k, v in inputs.items()
    }
    with torch.inference_mode():
        out = model(**prefix, use_cache=True, logits_to_keep=1)
    return out.cache
