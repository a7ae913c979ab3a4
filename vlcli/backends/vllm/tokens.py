"""The prompt-token check: whether the server's prompt is the one vlcli built, and so whether
each video's time axis can be vouched for.

vlcli counts its prompt's tokens before sending it; the server reports how many it used
(``usage.prompt_tokens``). Equal counts mean the server kept the planned frames, sizes and
template, and each video's axis is vLLM's (:meth:`VideoPlan.time_axis` with ``engine="vllm"``:
its float64 positions, the text after the video one past its largest position). Anything else
(the server resized or cut the frames, used another template, or vlcli could not count exactly)
leaves the axes ``None`` with a note, so that the answer's times are left as the model stated
them rather than mapped through a guess.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from vlcli.backends import Prompt
from vlcli.backends.vllm.client import ServerBusy, ServerClient, ServerError, chat_messages
from vlcli.errors import RequestFailed
from vlcli.models.families import Family, ModelSpec
from vlcli.planning.plan import VideoPlan
from vlcli.planning.prompt import (
    VISION_END,
    VISION_START,
    count_prompt_tokens,
    pads_beyond_one_per_run,
    placeholder,
)
from vlcli.times.axis import TimeAxis

UNCHECKED = (
    "so vlcli cannot check that the server saw the planned frames: the answer's times are left "
    "as the model stated them"
)
UNCOUNTED = (
    "vlcli could not count this prompt exactly (no tokenizer files here and no /tokenize on the "
    f"server), {UNCHECKED}"
)
UNREPORTED = (
    "the server's answer does not say how long its prompt was (no usage.prompt_tokens), "
    f"{UNCHECKED}"
)


def count_tokens(
    spec: ModelSpec,
    prompt: Prompt,
    reach: Callable[[], tuple[ServerClient, str] | None],
    patiently: Callable[[Callable[[], int]], int],
) -> tuple[int, str]:
    """The prompt's length as vlcli builds it, and what counted it.

    The model's own tokenizer and template when their files are here; otherwise the
    server's ``/tokenize`` over the same text, each run of pad tokens shortened to one;
    an estimate (which cannot vouch for the server's prompt) when neither works. ``reach``
    gives the server and its name for the model, waiting for a local one to start (None when
    it did not); ``patiently`` sends the count again while the server is away, as an answer's
    request is (:class:`~vlcli.backends.vllm.patience.Patience`): a restarting server's
    count is waited for, not given up for an estimate.
    """
    family = spec.family
    media = list(prompt.media)
    tokens, exact = count_prompt_tokens(
        spec.local_path, family, media, prompt.text, prompt.system, prompt.think, prompt.history
    )
    if exact:
        return tokens, "tokenizer"
    parts = [
        {"type": "text", "text": VISION_START + placeholder(plan, family, True) + VISION_END}
        for _, plan in media
    ]
    server = reach()
    if server is None:
        return tokens, "estimate"
    client, served = server
    try:
        messages = chat_messages(parts, prompt.text, prompt.system, prompt.history)
        counted = patiently(lambda: _count_while_up(client, messages, served, prompt.think))
    except (ServerError, RequestFailed):  # no /tokenize: vlcli's count
        return tokens, "estimate"
    return counted + sum(pads_beyond_one_per_run(p, family) for _, p in media), "server"


def _count_while_up(
    client: ServerClient, messages: list[dict[str, Any]], served: str, think: bool | None
) -> int:
    """The server's count, waited for only while the server itself is away (refused, reset,
    502-504: a restart); a /tokenize that fails on a server that is up (a 500, a 429, silence)
    is no count, and vlcli's estimate is used at once rather than after the whole patience."""
    try:
        return client.count_tokens(messages, served, think)
    except ServerBusy as exc:
        if not exc.gone:
            raise ServerError(exc.message) from None
        raise


def served_axes(
    prompt: Prompt, family: Family, expected: int, counted_by: str, served_tokens: int | None
) -> tuple[tuple[TimeAxis | None, ...], tuple[str, ...]]:
    """Each video's time axis as vLLM placed it, when the server's prompt is vlcli's; else
    None for each, and the note that says why."""
    videos = [p for p in prompt.plans if isinstance(p, VideoPlan)]
    if not videos:
        return (), ()
    if counted_by == "estimate":
        return tuple(None for _ in videos), (UNCOUNTED,)
    if served_tokens is None:
        return tuple(None for _ in videos), (UNREPORTED,)
    if served_tokens != expected:
        return tuple(None for _ in videos), (
            f"the server's prompt has {served_tokens} tokens where vlcli's has {expected}: it "
            "resized or cut the frames, or used another chat template, so the answer's times "
            "are left as the model stated them",
        )
    merge = family.spatial_merge_size
    axes: list[TimeAxis | None] = []
    for plan in videos:
        axis = plan.time_axis(engine="vllm")
        if not axis.encoding.states_source_seconds:
            text_after = _text_after(plan, axis.positions, merge)
            axis = dataclasses.replace(axis, text_after=text_after)
        axes.append(axis)
    return tuple(axes), ()


def _text_after(plan: VideoPlan, positions: tuple[int, ...], merge: int) -> int:
    """Where vLLM starts the text after a video, from the video's first position: one past the
    largest position of the video on any axis (temporal, height, width)."""
    _, h, w = plan.grid_thw
    return max(positions[-1] if positions else 0, h // merge - 1, w // merge - 1) + 1
