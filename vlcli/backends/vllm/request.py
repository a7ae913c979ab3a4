"""A prompt as one request to the server: its frames decoded as planned and encoded into it.

The server must see exactly the frames vlcli planned, or the answer's times cannot be mapped:
so the frames are decoded here, with vlcli's own decoder and sizes (the same frames the
transformers backend gets), and sent as pictures (PNG by default: lossless) in one data URL per
video, with the settings that make vLLM keep them as they are (:func:`~vlcli.backends.vllm.client.chat_request`).
The seconds spent decoding and encoding are kept apart, as the answer's timings report them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vlcli.backends import FrameProgress, Prompt, check_planned_for, frame_counter
from vlcli.backends.vllm.client import VIDEO_MIME, chat_request, encode_picture, image_url
from vlcli.media.frames import iter_video_chunks, load_image
from vlcli.models.families import Family
from vlcli.planning.plan import ImagePlan, Plan, VideoPlan

MediaUrls = list[tuple[Plan, str]]


@dataclass(frozen=True)
class PreparedRequest:
    """One prompt as a request body, with vlcli's own count of its tokens."""

    prompt: Prompt
    body: dict[str, Any]
    prompt_tokens: int  # as vlcli built the prompt
    counted_by: str  # "tokenizer" (the model's own files), "server" (/tokenize) or "estimate"
    visual_tokens: int
    decode_s: float
    preprocess_s: float  # encoding the frames, building the request, counting its tokens
    request_bytes: int
    media_urls: MediaUrls  # the encoded media, the same for every question of the input


@dataclass
class Spent:
    """Seconds spent so far on the prompt's media: decoding it, and encoding it for the request."""

    decode_s: float = 0.0
    encode_s: float = 0.0


def prepare_request(
    prompt: Prompt,
    served: str,
    family: Family,
    frame_format: str,
    count_tokens: Callable[[Prompt], tuple[int, str]],
    on_frames: FrameProgress | None = None,
) -> PreparedRequest:
    """The streamed chat request for ``prompt`` to the model the server names ``served``, with
    the prompt's length as ``count_tokens`` counts it (and what counted it)."""
    urls, spent = _media_urls(prompt, family, frame_format, on_frames)
    return request_of(prompt, served, urls, spent, count_tokens)


def request_of(
    prompt: Prompt,
    served: str,
    urls: MediaUrls,
    spent: Spent,
    count_tokens: Callable[[Prompt], tuple[int, str]],
) -> PreparedRequest:
    """The request for ``prompt`` with its media already encoded (``urls``, which cost
    ``spent``): every question of one input sends the same frames, byte for byte, before its
    text, so that the server's prefix and encoder caches can serve the later ones."""
    started = time.perf_counter()
    body = chat_request(
        served,
        urls,
        prompt.text,
        system=prompt.system,
        max_tokens=prompt.max_new_tokens,
        temperature=prompt.temperature,
        stream=True,
        think=prompt.think,
        history=prompt.history,
    )
    tokens, counted_by = count_tokens(prompt)
    return PreparedRequest(
        prompt=prompt,
        body=body,
        prompt_tokens=tokens,
        counted_by=counted_by,
        visual_tokens=sum(p.visual_tokens for p in prompt.plans),
        decode_s=spent.decode_s,
        preprocess_s=spent.encode_s + time.perf_counter() - started,
        request_bytes=sum(len(url) for _, url in urls),
        media_urls=urls,
    )


def _media_urls(
    prompt: Prompt, family: Family, frame_format: str, on_frames: FrameProgress | None
) -> tuple[MediaUrls, Spent]:
    """Each media item of the prompt as a data URL, in order; ``on_frames(done, total)`` hears
    the video frames encoded so far, of all the prompt's videos."""
    check_planned_for(prompt.media, family)
    spent = Spent()
    total = sum(p.frames for p in prompt.plans if isinstance(p, VideoPlan))
    chunk_done = frame_counter(total, on_frames)
    urls: MediaUrls = []
    for path, plan in prompt.media:
        if isinstance(plan, ImagePlan):
            started = time.perf_counter()
            image = load_image(path, plan)
            spent.decode_s += time.perf_counter() - started
            started = time.perf_counter()
            urls.append((plan, image_url(image, frame_format)))
            spent.encode_s += time.perf_counter() - started
        else:
            urls.append((plan, _video_url(path, plan, frame_format, spent, chunk_done)))
    return urls, spent


def _video_url(
    path: str, plan: VideoPlan, frame_format: str, spent: Spent, chunk_done: Callable[[int], None]
) -> str:
    """One video's planned frames, decoded a chunk at a time, as one data URL of pictures."""
    pieces: list[str] = []
    chunks = iter_video_chunks(path, plan)
    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        spent.decode_s += time.perf_counter() - started
        if chunk is None:
            break
        started = time.perf_counter()
        pieces.extend(encode_picture(frame, frame_format) for frame in chunk)
        spent.encode_s += time.perf_counter() - started
        chunk_done(int(chunk.shape[0]))
    return f"data:{VIDEO_MIME};base64," + ",".join(pieces)
