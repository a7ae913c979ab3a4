"""The engine that answers ``ask``: its options, their checks, and the backend they make.

Every check here runs before torch is imported and before any input is probed: a mistyped
``--engine`` or ``--dtype``, or a model that cannot be found, fails in a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlcli.backends.registry import check_engine_name, engine_class
from vlcli.backends.vllm import DEFAULT_PATIENCE_S
from vlcli.errors import ExitStatus, UsageError
from vlcli.models.families import DEFAULT_MODEL
from vlcli.models.locate import locate_spec
from vlcli.planning.memory import canonical_attn, canonical_dtype
from vlcli.planning.plan import SamplingOptions, check_options
from vlcli.planning.thinking import check_think
from vlcli.run.ask import Outputs, RunOptions, run_ask
from vlcli.run.prompt import AskSettings
from vlcli.run.view import AskView

if TYPE_CHECKING:
    from vlcli.backends import Backend

Say = Callable[[str], None]


@dataclass(frozen=True)
class EngineOptions:
    """What runs the model and how. None of it decides the answer by itself: what does (the
    model, the server) reaches the record key through :meth:`~vlcli.backends.Backend.identity`,
    so that a run resumed with another ``--device`` or ``--concurrency`` keeps its records."""

    engine: str = "transformers"
    model: str | None = None  # None: DEFAULT_MODEL, or the model a --server lists
    server: str | None = None
    api_key: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    attn: str = "sdpa"
    vllm_python: str | None = None
    vllm_args: tuple[str, ...] = ()
    concurrency: int = 1
    frame_format: str = "png"
    force: bool = False  # run although the memory estimate says it does not fit
    server_patience: float = DEFAULT_PATIENCE_S  # how long a server that is away is waited for


def check_engine(engine: EngineOptions) -> None:
    """The options that cannot go together, and names that are wrong, said before torch loads."""
    check_engine_name(engine.engine)
    if engine.server is not None and engine.engine == "vllm":
        raise UsageError("--server and --engine vllm exclude each other: give one")
    if engine.concurrency > 1 and engine.server is None and engine.engine != "vllm":
        raise UsageError(
            "--concurrency needs --server or --engine vllm (one model in-process "
            "answers one prompt at a time)"
        )
    if engine.server is None and engine.engine == "transformers":
        if engine.dtype != "auto":
            try:
                canonical_dtype(engine.dtype)
            except UsageError:
                raise UsageError(
                    f"--dtype {engine.dtype!r}: use auto, bfloat16, float16 or float32"
                ) from None
        canonical_attn(engine.attn)


def open_backend(
    engine: EngineOptions, sampling: SamplingOptions, warn: Say, progress: Say
) -> Backend:
    """The backend of ``engine``, made cheaply: a server is asked what it serves, a model is
    located; the weights load (or a local vLLM starts) once the run has work for it."""
    if engine.server is not None:
        backend: Backend = engine_class("vllm")(
            engine.server,
            model=engine.model,
            api_key=engine.api_key,
            frame_format=engine.frame_format,
            warn=warn,
            concurrency=engine.concurrency,
            patience_s=engine.server_patience,
        )
        check_options(sampling, backend.spec.family)
        return backend

    located = locate_spec(engine.model or DEFAULT_MODEL, warn)
    check_options(sampling, located.spec.family)
    if engine.engine == "vllm":
        return engine_class("vllm").start_local(  # type: ignore[no-any-return]
            located.folder,
            located.spec,
            python=engine.vllm_python,
            extra_args=engine.vllm_args,
            frame_format=engine.frame_format,
            warn=warn,
            progress=progress,
            concurrency=engine.concurrency,
            patience_s=engine.server_patience,
        )
    return engine_class("transformers")(  # type: ignore[no-any-return]
        engine.model or DEFAULT_MODEL,
        device=engine.device,
        dtype=engine.dtype,
        attn=engine.attn,
        warn=warn,
        located=located,
        force=engine.force,
        load=False,  # loaded once the run knows there is work, while the first decodes
    )


def ask_with(
    engine: EngineOptions,
    paths: list[str],
    stems: list[str],
    asked: Sequence[AskSettings],
    run: RunOptions,
    view: AskView,
    outputs: Outputs,
    warn: Say,
    progress: Say,
) -> ExitStatus | None:
    """``vlcli ask`` once its options and outputs are checked: the engine next (a missing model
    or server fails in a second, before torch is imported and before any input is probed),
    then the run (:func:`vlcli.run.ask.run_ask`); the worst per-input status, or None."""
    check_engine(engine)
    backend = open_backend(engine, asked[0].sampling, warn, progress)
    try:
        check_think(backend.spec.local_path, asked[0].think)
        return run_ask(backend, paths, stems, asked, run, view, outputs)
    finally:
        backend.close()  # a server vlcli started stops here, also on Ctrl-C
