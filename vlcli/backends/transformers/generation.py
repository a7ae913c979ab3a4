"""Generating one answer with transformers' ``generate``, its text streamed as it comes.

Kept apart from loading and from the inputs because this is where the answer's timings are
taken (the prefill ends at the first new token, which only the streamer sees) and where the
released generation configs are overridden: vlcli's ``--max-new-tokens`` and ``--temperature``
decide, greedy at zero, and sampling above it is not made greedy again by a ``top_k=1``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vlcli.backends import TextSink
from vlcli.backends.transformers.device import out_of_memory_reported


class TextStream:
    """Receives generated tokens from ``generate``; notes the first token's time, emits text.

    It implements transformers' streamer protocol (``put``, ``end``). ``generate`` puts the
    prompt first, then every new token. Text is decoded from all tokens so far and only the new
    part is emitted, held back while it ends inside a multi-byte character.
    """

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None] | None):
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.prompt_seen = False
        self.ids: list[int] = []
        self.emitted = ""
        self.first_token_at: float | None = None

    def _decode(self) -> str:
        return str(
            self.tokenizer.decode(
                self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.ids.extend(int(x) for x in value.reshape(-1).tolist())
        if self.on_text is not None:
            text = self._decode()
            if not text.endswith("\ufffd"):
                self._emit(text)

    def _emit(self, text: str) -> None:
        if (
            self.on_text is not None
            and text.startswith(self.emitted)
            and len(text) > len(self.emitted)
        ):
            self.on_text(text[len(self.emitted) :])
            self.emitted = text

    def end(self) -> None:
        self._emit(self._decode())


@dataclass(frozen=True)
class Generated:
    """What ``generate`` gave: the answer's text and tokens, and how long it took."""

    text: str
    new_tokens: int
    prefill_s: float  # to the first new token
    generate_s: float  # prefill and decoding together
    ids: torch.Tensor  # the prompt's tokens and the answer's


def generation_config(model: Any, tokenizer: Any, max_new_tokens: int, temperature: float) -> Any:
    """The model's generation config with vlcli's length and sampling in place of its own."""
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    if temperature > 0:
        config.do_sample = True
        config.temperature = temperature
        config.top_k = None  # the released configs' top_k=1 would make sampling greedy
        config.top_p = None
    else:
        config.do_sample = False
        config.temperature = None
        config.top_k = None
        config.top_p = None
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    return config


def generate_text(
    model: Any,
    tokenizer: Any,
    inputs: dict[str, torch.Tensor],
    prompt_tokens: int,
    config: Any,
    on_text: TextSink | None,
) -> Generated:
    """Run ``generate`` on one prompt's inputs, streaming the text to ``on_text``; the device
    running out of memory is raised as :class:`~vlcli.errors.DeviceOutOfMemory`."""
    stream = TextStream(tokenizer, on_text)
    started = time.perf_counter()
    with out_of_memory_reported(), torch.inference_mode():
        output = model.generate(**inputs, generation_config=config, streamer=stream)
    generate_s = time.perf_counter() - started
    new_ids = output[0, prompt_tokens:].tolist()
    text = tokenizer.decode(new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    prefill_s = (
        (stream.first_token_at - started) if stream.first_token_at is not None else generate_s
    )
    return Generated(text, len(new_ids), prefill_s, generate_s, output)
