"""The vLLM server backend: vlcli's prompts answered by an OpenAI-compatible vLLM server.

:class:`ServerBackend` implements the :class:`~vlcli.backends.Backend` protocol over HTTP
(:mod:`vlcli.backends.vllm.client` builds and reads the requests) and keeps the server's
lifetime: a running one (``--server``) is reached at once, a local one (``--engine vllm``,
:mod:`vlcli.backends.vllm.process`) is started by :meth:`ServerBackend.load` and stopped by
:meth:`ServerBackend.close`. The rest is done by one collaborator each:

* ``prepare`` (:mod:`vlcli.backends.vllm.request`) decodes the planned frames exactly as the
  transformers backend does, encodes them (PNG by default) into one request with the settings
  that make vLLM keep them as planned, and counts the prompt's tokens as vlcli built it
  (:mod:`vlcli.backends.vllm.tokens`): with the model's own tokenizer when its files are on this
  machine, otherwise with the server's ``/tokenize`` over the same text with each run of pad
  tokens shortened to one (added back after);
* ``generate`` streams the answer (:mod:`vlcli.backends.vllm.streaming`) and compares the
  server's ``usage.prompt_tokens`` with that count (:mod:`vlcli.backends.vllm.tokens`). Equal:
  each video's time axis is vLLM's. Different (the server resized or cut the frames, or used
  another template): the axes are ``None`` and a note says so, so that the answer's times are
  left as the model stated them rather than mapped through a guess. A server that is away
  (restarting, overloaded) is waited for up to ``patience_s`` (:mod:`vlcli.backends.vllm.patience`);
  a local one found dead meanwhile is started again, once (:meth:`ServerBackend.away`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlcli.backends import Answer, FrameProgress, Prompt, TextSink
from vlcli.backends.vllm import DEFAULT_PATIENCE_S
from vlcli.backends.vllm.client import FRAME_FORMATS, ServerBusy, ServerClient, ServerError
from vlcli.backends.vllm.patience import Patience
from vlcli.backends.vllm.process import EngineError, LocalVllmServer, find_vllm_python
from vlcli.backends.vllm.request import PreparedRequest, Spent, prepare_request, request_of
from vlcli.backends.vllm.streaming import answer_of, stream_chat
from vlcli.backends.vllm.tokens import count_tokens, served_axes
from vlcli.errors import MemoryBudgetError, ModelError, ServerGone, UsageError, warn_on_stderr
from vlcli.models.families import ModelSpec, hf_cache_snapshot, resolve_model
from vlcli.planning.context import context_problem
from vlcli.planning.plan import SamplingOptions


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
        warn: Callable[[str], None] = warn_on_stderr,
        timeout_s: float = 600.0,
        concurrency: int = 1,
        patience_s: float = DEFAULT_PATIENCE_S,
    ):
        self._setup(frame_format, warn, concurrency, patience_s)
        self.api_key, self.timeout_s = api_key, timeout_s
        self._connect(url, model)

    def _setup(
        self, frame_format: str, warn: Callable[[str], None], concurrency: int, patience_s: float
    ) -> None:
        if frame_format not in FRAME_FORMATS:
            raise UsageError(f"--frame-format must be one of {', '.join(FRAME_FORMATS)}")
        self.owned: Any = None  # a LocalVllmServer this backend starts and stops (--engine vllm)
        self.concurrency = max(1, int(concurrency))  # in flight at once; records in input order
        self.warn, self.frame_format = warn, frame_format
        self.patience = Patience(patience_s, warn)  # how long a server that is away is waited for
        self.max_model_len: Any = None
        self._client: ServerClient | None = None
        self._connected = threading.Event()  # set once the server answers (or failed to start)
        self._restarting = threading.Lock()  # one request restarts a dead local server
        self.restarted = False

    def _connect(self, url: str, model: str | None) -> None:
        """Ask the server at ``url`` what it serves; plan for ``model`` (default: the first)."""
        client = ServerClient(url, api_key=self.api_key, timeout_s=self.timeout_s)
        entries = self.patience.call(lambda: _first_contact(client), client.away)
        served = model or client.default_model(list(entries))
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
        warn: Callable[[str], None] = warn_on_stderr,
        progress: Callable[[str], None] | None = None,
        concurrency: int = 1,
        patience_s: float = DEFAULT_PATIENCE_S,
    ) -> ServerBackend:
        """``--engine vllm``: a vLLM server on ``model_folder`` (whose files are ``spec``),
        started by :meth:`load` (so not at all when no input is left to answer, and while the
        first input decodes), stopped by :meth:`close`. The vLLM Python is checked now."""
        backend = cls.__new__(cls)
        backend._setup(frame_format, warn, concurrency, patience_s)
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
        limit = self.max_model_len if isinstance(self.max_model_len, int) else None
        problem = context_problem(
            self.spec, prompt.plans, options, prompt_tokens, prompt.max_new_tokens, limit
        )
        if problem is not None:
            raise MemoryBudgetError(
                problem.replace("(its context length)", "(the server's context)")
            )

    def prepare(self, prompt: Prompt, on_frames: FrameProgress | None = None) -> PreparedRequest:
        """The prompt's request, its frames encoded as planned, and vlcli's count of its tokens."""
        return prepare_request(
            prompt, self.served, self.family, self.frame_format, self.count_tokens, on_frames
        )

    def reprompt(self, prepared: Any, prompt: Prompt) -> PreparedRequest:
        """Another question over ``prepared``'s media: the same encoded frames, nothing decoded."""
        return request_of(prompt, self.served, prepared.media_urls, Spent(), self.count_tokens)

    def generate(self, prepared: Any, on_text: TextSink | None = None) -> Answer:
        """Stream the answer; vouch for each video's axis only when the server's prompt had
        as many tokens as vlcli's."""
        # the name the server gives the model (a local server is asked once it has started)
        body = {**prepared.body, "model": self.served}
        streamed = stream_chat(self.client, body, on_text, self.patience, self.away)
        axes, notes = served_axes(
            prepared.prompt,
            self.family,
            prepared.prompt_tokens,
            prepared.counted_by,
            streamed.completion.prompt_tokens,
        )
        return answer_of(prepared, streamed, axes, notes)

    def close(self) -> None:
        """Stop the server when this backend started it (``--engine vllm``)."""
        if self.owned is not None:
            self.owned.stop()

    # ------------------------------------------------------------ the rest

    def away(self) -> ServerBusy | None:
        """Why the server is away (None: it is back). A local server (``--engine vllm``) found
        dead is started again once, after saying why it died; a second death stops the run."""
        if self.owned is None or self.owned.died() is None:
            return self.client.away()
        with self._restarting:
            status = self.owned.died()
            if status is None:  # another request has started it again meanwhile
                return None
            how = f"killed by signal {-status}" if status < 0 else f"status {status}"
            why = f"the local vLLM server died ({how}): {self.owned.last_line()}"
            if self.restarted:
                raise ServerGone(f"{why}, for the second time")
            self.restarted = True
            self.warn(f"{why}; starting it again with the same flags")
            self.owned.stop()  # what is left of its process group
            try:
                self.owned.start()
            except EngineError as exc:
                raise ServerGone(f"{why}; starting it again failed: {exc.message}") from None
        return None

    def count_tokens(self, prompt: Prompt) -> tuple[int, str]:
        """The prompt's length as vlcli builds it, and what counted it
        (:func:`vlcli.backends.vllm.tokens.count_tokens`)."""
        return count_tokens(
            self.spec, prompt, self._reached, lambda send: self.patience.call(send, self.away)
        )

    def _reached(self) -> tuple[ServerClient, str] | None:
        """The server and its name for the model; None when a local server failed to start."""
        self._connected.wait()  # a local server is started while the first input decodes
        if self._client is None:
            return None
        return self._client, self.served


def _first_contact(client: ServerClient) -> dict[str, dict[str, Any]]:
    """What the server serves. A server that answers "not now" with an HTTP status (a 503 from
    vLLM or the proxy in front of it while it restarts) is waited for as any request is; one
    that refuses the connection or stays silent is said at once: at a run's first request that
    is most often a mistyped address, not a restart."""
    try:
        return client.served()
    except ServerBusy as exc:
        if exc.http_status is None:
            raise ServerError(exc.message) from None
        raise
