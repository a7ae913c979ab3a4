"""The vLLM server backend: vlcli's prompts answered by an OpenAI-compatible vLLM server.

:class:`ServerBackend` implements the :class:`~vlcli.backends.Backend` protocol over HTTP
(:mod:`vlcli.backends.vllm.client` builds and reads the requests):

* ``prepare`` decodes the planned frames exactly as the transformers backend does, encodes them
  (PNG by default) into one request with the settings that make vLLM keep them as planned, and
  counts the prompt's tokens as vlcli built it: with the model's own tokenizer when its files are
  on this machine, otherwise with the server's ``/tokenize`` over the same text with each run of
  pad tokens shortened to one (added back after);
* ``generate`` streams the answer and compares the server's ``usage.prompt_tokens`` with that
  count. Equal: each video's time axis is vLLM's (:meth:`VideoPlan.time_axis` with
  ``engine="vllm"``: its float64 positions, the text after the video one past its largest
  position). Different (the server resized or cut the frames, or used another template): the
  axes are ``None`` and a note says so, so that the answer's times are left as the model stated
  them rather than mapped through a guess.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlcli.backends import Answer, FrameProgress, Prompt, TextSink, timings
from vlcli.backends.vllm.client import (
    FRAME_FORMATS,
    VIDEO_MIME,
    ServerClient,
    ServerError,
    chat_messages,
    chat_request,
    encode_picture,
    image_url,
)
from vlcli.backends.vllm.process import EngineError
from vlcli.errors import MemoryBudgetError, ModelError, UsageError
from vlcli.models.families import ModelSpec, hf_cache_snapshot, resolve_model
from vlcli.planning.plan import ImagePlan, SamplingOptions, VideoPlan
from vlcli.times.axis import TimeAxis


def _stderr(message: str) -> None:
    print(f"vlcli: warning: {message}", file=sys.stderr)


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


def model_spec_for(served: str, root: str | None) -> ModelSpec:
    """What vlcli plans for, for a served model: its own files when they are on this machine
    (the folder the server loaded, or the Hugging Face cache), else a preset or the name."""
    for candidate in (root, served):
        if candidate and (Path(candidate).is_dir() or hf_cache_snapshot(candidate) is not None):
            return resolve_model(candidate)
    return resolve_model(root or served)


def _max_model_len(args: tuple[str, ...]) -> int | None:
    """The context length given to vLLM with ``--max-model-len N`` (or ``=N``), if any."""
    value = None
    for i, arg in enumerate(args):
        if arg == "--max-model-len" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--max-model-len="):
            value = arg.split("=", 1)[1]
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # vLLM's own forms (1k, 2K): its start-up says what it makes of them


def _text_after(plan: VideoPlan, positions: tuple[int, ...], merge: int) -> int:
    """Where vLLM starts the text after a video, from the video's first position: one past the
    largest position of the video on any axis (temporal, height, width)."""
    _, h, w = plan.grid_thw
    return max(positions[-1] if positions else 0, h // merge - 1, w // merge - 1) + 1


class ServerBackend:
    """An OpenAI-compatible vLLM server: a running one (``--server``), or one this backend starts
    and stops (:meth:`start_local`, ``--engine vllm``); see the module docstring.

    ``model`` names the served model (default: the one ``/v1/models`` lists). The plans use the
    model's own files when they are on this machine (``/v1/models`` says which folder the server
    loaded), so that vlcli's frames, sizes and tokens are the server's.
    """

    name = "vllm"

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        frame_format: str = "png",
        warn: Callable[[str], None] = _stderr,
        timeout_s: float = 600.0,
        concurrency: int = 1,
    ):
        self._setup(frame_format, warn, concurrency)
        self.api_key, self.timeout_s = api_key, timeout_s
        self._connect(url, model)

    def _setup(self, frame_format: str, warn: Callable[[str], None], concurrency: int) -> None:
        if frame_format not in FRAME_FORMATS:
            raise UsageError(f"--frame-format must be one of {', '.join(FRAME_FORMATS)}")
        self.owned: Any = None  # a LocalVllmServer this backend starts and stops (--engine vllm)
        # Prompts in flight at once (the server batches them); records stay in input order.
        self.concurrency = max(1, int(concurrency))
        self.warn = warn
        self.frame_format = frame_format
        self.max_model_len: Any = None
        self._client: ServerClient | None = None
        self._connected = threading.Event()  # set once the server answers (or failed to start)

    def _connect(self, url: str, model: str | None) -> None:
        """Ask the server at ``url`` what it serves; plan for ``model`` (default: the first)."""
        client = ServerClient(url, api_key=self.api_key, timeout_s=self.timeout_s)
        listed = client.get_json("/v1/models").get("data") or []
        entries = {str(m.get("id")): m for m in listed if isinstance(m, dict)}
        served = model or client.default_model()
        if served not in entries:
            raise ModelError(
                f"the server at {client.url} does not serve {served!r} "
                f"(it serves: {', '.join(entries) or 'nothing'})"
            )
        entry = entries[served]
        self.max_model_len = entry.get("max_model_len")
        self.served = served  # the name requests give
        if self.owned is None:  # a local server's files are known: it was started on them
            root = entry.get("root")
            spec = model_spec_for(served, str(root) if root else None)
            self.spec = dataclasses.replace(spec, model=served)  # records name the served model
            self.family = self.spec.family
        self._client = client
        self._connected.set()

    @property
    def client(self) -> ServerClient:
        if self._client is None:
            raise EngineError("the vLLM server has not been started")
        return self._client

    @classmethod
    def start_local(
        cls,
        model_folder: str,
        spec: ModelSpec,
        *,
        python: str | None = None,
        extra_args: tuple[str, ...] = (),
        frame_format: str = "png",
        warn: Callable[[str], None] = _stderr,
        progress: Callable[[str], None] | None = None,
        concurrency: int = 1,
    ) -> ServerBackend:
        """``--engine vllm``: a vLLM server on ``model_folder`` (whose files are ``spec``),
        started by :meth:`load` (so not at all when no input is left to answer, and while the
        first input decodes), stopped by :meth:`close`. The vLLM Python is checked now."""
        from vlcli.backends.vllm.process import LocalVllmServer, find_vllm_python

        backend = cls.__new__(cls)
        backend._setup(frame_format, warn, concurrency)
        backend.api_key, backend.timeout_s = None, 600.0
        backend.owned = LocalVllmServer(
            find_vllm_python(python), model_folder, extra_args=extra_args, progress=progress
        )
        backend.served = model_folder  # what vLLM serves it as (its --model)
        backend.spec = dataclasses.replace(spec, model=model_folder)
        backend.family = spec.family
        backend.max_model_len = _max_model_len(extra_args)  # else the model's own, as vLLM's
        return backend

    # ------------------------------------------------------------ the Backend protocol

    def load(self) -> None:
        """Start the local server (``--engine vllm``) and wait until it answers; a running
        server (``--server``) needs nothing."""
        if self.owned is None or self._connected.is_set():
            return
        try:
            self.owned.start()
            # vLLM serves the folder under its path, or under --served-model-name when given
            self._connect(self.owned.url, None)
        except BaseException:
            self.owned.stop()
            raise
        finally:
            self._connected.set()  # a prepare waiting for the server goes on either way

    def identity(self) -> dict[str, Any]:
        if self.owned is not None:  # known before the server starts: the folder it serves
            return {"backend": self.name, "server": "local", "model": self.spec.model}
        return {"backend": self.name, "server": self.client.url, "model": self.served}

    def check_fit(self, prompt: Prompt, prompt_tokens: int, options: SamplingOptions) -> None:
        """Refuse a prompt longer than the server's context (its ``max_model_len``), naming
        the options that would fit."""
        from vlcli.planning.context import context_problem

        limit = self.max_model_len if isinstance(self.max_model_len, int) else None
        problem = context_problem(
            self.spec, prompt.plans, options, prompt_tokens, prompt.max_new_tokens, limit
        )
        if problem is not None:
            raise MemoryBudgetError(
                problem.replace("(its context length)", "(the server's context)")
            )

    def prepare(self, prompt: Prompt, on_frames: FrameProgress | None = None) -> PreparedRequest:
        from vlcli.media.frames import iter_video_chunks, load_image

        decode_s = encode_s = 0.0
        total = sum(p.frames for p in prompt.plans if isinstance(p, VideoPlan))
        done = 0
        urls: list[tuple[VideoPlan | ImagePlan, str]] = []
        for path, plan in prompt.media:
            if plan.family.name != self.family.name:
                raise UsageError(
                    f"{path}: planned for {plan.family.name}, but the model is {self.family.name}"
                )
            if isinstance(plan, ImagePlan):
                started = time.perf_counter()
                image = load_image(path, plan)
                decode_s += time.perf_counter() - started
                started = time.perf_counter()
                urls.append((plan, image_url(image, self.frame_format)))
                encode_s += time.perf_counter() - started
                continue
            pieces: list[str] = []
            chunks = iter_video_chunks(path, plan)
            while True:
                started = time.perf_counter()
                chunk = next(chunks, None)
                decode_s += time.perf_counter() - started
                if chunk is None:
                    break
                started = time.perf_counter()
                pieces.extend(encode_picture(frame, self.frame_format) for frame in chunk)
                encode_s += time.perf_counter() - started
                done += int(chunk.shape[0])
                if on_frames is not None:
                    on_frames(done, total)
            urls.append((plan, f"data:{VIDEO_MIME};base64," + ",".join(pieces)))
        started = time.perf_counter()
        body = chat_request(
            self.served,
            urls,
            prompt.text,
            system=prompt.system,
            max_tokens=prompt.max_new_tokens,
            temperature=prompt.temperature,
            stream=True,
        )
        tokens, counted_by = self.count_tokens(prompt)
        size = sum(len(url) for _, url in urls)
        return PreparedRequest(
            prompt=prompt,
            body=body,
            prompt_tokens=tokens,
            counted_by=counted_by,
            visual_tokens=sum(p.visual_tokens for p in prompt.plans),
            decode_s=decode_s,
            preprocess_s=encode_s + time.perf_counter() - started,
            request_bytes=size,
        )

    def generate(self, prepared: Any, on_text: TextSink | None = None) -> Answer:
        prompt: Prompt = prepared.prompt
        first: list[float] = []

        def sink(piece: str) -> None:
            if not first:
                first.append(time.perf_counter())
            if on_text is not None:
                on_text(piece)

        started = time.perf_counter()
        # the name the server gives the model (a local server is asked once it has started)
        completion = self.client.chat({**prepared.body, "model": self.served}, sink)
        generate_s = time.perf_counter() - started
        prefill_s = (first[0] - started) if first else generate_s
        axes, notes = self.axes(
            prompt, prepared.prompt_tokens, prepared.counted_by, completion.prompt_tokens
        )
        return Answer(
            text=completion.text,
            prompt_tokens=completion.prompt_tokens
            if completion.prompt_tokens is not None
            else prepared.prompt_tokens,
            generated_tokens=completion.completion_tokens or 0,
            visual_tokens=prepared.visual_tokens,
            timings=timings(prepared.decode_s, prepared.preprocess_s, prefill_s, generate_s),
            axes=axes,
            notes=notes,
        )

    def close(self) -> None:
        """Stop the server when this backend started it (``--engine vllm``)."""
        if self.owned is not None:
            self.owned.stop()

    # ------------------------------------------------------------ the rest

    def count_tokens(self, prompt: Prompt) -> tuple[int, str]:
        """The prompt's length as vlcli builds it, and what counted it.

        The model's own tokenizer and template when their files are here; otherwise the
        server's ``/tokenize`` over the same text, each run of pad tokens shortened to one;
        an estimate (which cannot vouch for the server's prompt) when neither works.
        """
        from vlcli.planning.prompt import (
            VISION_END,
            VISION_START,
            _pads_beyond_one_per_run,
            count_prompt_tokens,
            placeholder,
        )

        media = list(prompt.media)
        tokens, exact = count_prompt_tokens(
            self.spec.local_path, self.family, media, prompt.text, prompt.system
        )
        if exact:
            return tokens, "tokenizer"
        parts = [
            {
                "type": "text",
                "text": VISION_START + placeholder(plan, self.family, True) + VISION_END,
            }
            for _, plan in media
        ]
        self._connected.wait()  # a local server is started while the first input decodes
        if self._client is None:
            return tokens, "estimate"
        try:
            counted = self.client.count_tokens(
                chat_messages(parts, prompt.text, prompt.system), self.served
            )
        except ServerError:
            return tokens, "estimate"
        return counted + sum(_pads_beyond_one_per_run(p, self.family) for _, p in media), "server"

    def axes(
        self, prompt: Prompt, expected: int, counted_by: str, served_tokens: int | None
    ) -> tuple[tuple[TimeAxis | None, ...], tuple[str, ...]]:
        """Each video's time axis as vLLM placed it, when the server's prompt is vlcli's."""
        videos = [p for p in prompt.plans if isinstance(p, VideoPlan)]
        if not videos:
            return (), ()
        unchecked = (
            "so vlcli cannot check that the server saw the planned frames: the answer's times "
            "are left as the model stated them"
        )
        if counted_by == "estimate":
            return tuple(None for _ in videos), (
                "vlcli could not count this prompt exactly (no tokenizer files here and no "
                f"/tokenize on the server), {unchecked}",
            )
        if served_tokens is None:
            return tuple(None for _ in videos), (
                "the server's answer does not say how long its prompt was (no "
                f"usage.prompt_tokens), {unchecked}",
            )
        if served_tokens != expected:
            return tuple(None for _ in videos), (
                f"the server's prompt has {served_tokens} tokens where vlcli's has {expected}: it "
                "resized or cut the frames, or used another chat template, so the answer's times "
                "are left as the model stated them",
            )
        merge = self.family.spatial_merge_size
        axes: list[TimeAxis | None] = []
        for plan in videos:
            axis = plan.time_axis(engine="vllm")
            if not axis.encoding.states_source_seconds:
                text_after = _text_after(plan, axis.positions, merge)
                axis = dataclasses.replace(axis, text_after=text_after)
            axes.append(axis)
        return tuple(axes), ()
