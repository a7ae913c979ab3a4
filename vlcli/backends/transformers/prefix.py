"""The media's prefill kept for an input's next questions: each continues from a copy of it.

After an answer the kept cache grows by it (the question and the answer), so that a follow-up
of ``vlcli chat``, whose prompt holds the turns before it, prefills only its new tokens; a
question that shares less with it (``ask -q``'s next question) continues from the copy cut back
to what they share (``crop``), at least the media.

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
    """A prefill kept for an input's next questions: the pixel tensors it was made from (the
    very objects, shared by every question of the input), the token ids its cache holds, and
    the cache."""

    pixels: tuple[torch.Tensor | None, ...]
    ids: torch.Tensor
    cache: Any

    def same_media(self, pixels: tuple[torch.Tensor | None, ...]) -> bool:
        return all(a is b for a, b in zip(self.pixels, pixels, strict=True))

    def reach(self, pixels: tuple[torch.Tensor | None, ...], ids: torch.Tensor) -> int:
        """How many of the prompt's first tokens this cache holds (none for other media)."""
        if not self.same_media(pixels):
            return 0
        n = min(self.ids.shape[1], ids.shape[1])
        differ = (self.ids[0, :n] != ids[0, :n]).nonzero()
        return int(differ[0]) if len(differ) else n

    def holds(self, tokens: int) -> bool:
        """Whether its cache can be cut back to ``tokens``: always when it holds no more, and
        never for a recurrent (linear-attention) state, which cannot be rolled back."""
        rolls_back = not any(
            hasattr(layer, "is_recurrent_states_initialized") for layer in self.cache.layers
        )
        return tokens >= self.ids.shape[1] or rolls_back


PREFILLED_AGAIN = (
    "the text before the media differs from the input's earlier question (another system "
    "prompt, or a prompt that puts text before the media): its media were prefilled again"
)


def shared_length(input_ids: torch.Tensor, vision_end_id: int) -> int | None:
    """The tokens up to and including the last media's end; None for a prompt of text alone."""
    ends = (input_ids[0] == vision_end_id).nonzero()
    return int(ends[-1]) + 1 if len(ends) else None


class PrefixCache:
    """The last input's kept prefill (at most one: the next input's replaces it)."""

    def __init__(self) -> None:
        self.kept: KeptPrefix | None = None

    def release(self) -> None:
        self.kept = None

    def continuation(
        self, model: Any, tokenizer: Any, inputs: dict[str, torch.Tensor], keep: bool
    ) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
        """``generate``'s inputs for this prompt, and the answer's notes.

        A prompt over the kept media continues from the kept cache, cut back to the tokens it
        shares with it (at least the media): from a copy when ``keep`` (more questions of the
        input follow), else from the kept cache itself, then let go. Otherwise the media are
        prefilled and kept when ``keep``; without ``keep`` the prompt is prefilled whole, as
        any prompt. Same media with another text before them is said in a note."""
        input_ids = inputs["input_ids"]
        length = shared_length(input_ids, tokenizer.convert_tokens_to_ids(VISION_END))
        if length is None or length >= input_ids.shape[1]:
            self.kept = None
            return inputs, ()
        pixels = tuple(inputs.get(name) for name in PIXELS)
        kept = self.kept
        reach = min(kept.reach(pixels, input_ids), input_ids.shape[1] - 1) if kept else 0
        notes: tuple[str, ...] = ()
        if kept is None or reach < length or not kept.holds(reach):
            if kept is not None and kept.same_media(pixels):
                notes = (PREFILLED_AGAIN,)
            self.kept = kept = None  # given back before the next prefill
            if not keep:
                return inputs, notes
            kept = KeptPrefix(pixels, input_ids[:, :length], prefill(model, inputs, length))
            reach = length
        self.kept = kept if keep else None  # the input's last question uses it up
        model.model.rope_deltas = None  # the last prompt's: the positions are computed again
        rest = {k: v for k, v in inputs.items() if k not in PIXELS}
        with torch.inference_mode():
            cache = copy.deepcopy(kept.cache) if keep else kept.cache
            if cache.get_seq_length() > reach:
                cache.crop(reach - cache.get_seq_length())
        rest["cache"] = cache
        return rest, notes

    def grown(self, inputs: dict[str, torch.Tensor], ids: torch.Tensor) -> None:
        """After an answer that continued from the kept prefill and keeps it: its own cache
        (the prompt, and the answer but its last token) is kept in its place, so that a
        follow-up (``vlcli chat``) continues from all of it; not a recurrent state, which could
        not be cut back for a question that shares less."""
        cache: Any = inputs.get("cache")
        if cache is None or self.kept is None:
            return
        grown = KeptPrefix(self.kept.pixels, ids[:, : cache.get_seq_length()], cache)
        if grown.holds(0):
            self.kept = grown


def prefill(model: Any, inputs: dict[str, torch.Tensor], length: int) -> Any:
    """The cache of the prompt's first ``length`` tokens: the media through the vision tower."""
    prefix = {
        k: (v[:, :length] if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v)
        for k, v in inputs.items()
    }
    with torch.inference_mode():
        out = model(**prefix, use_cache=True, logits_to_keep=1)
    return out.cache
