"""The work behind ``probe`` and ``budget``: probe the inputs, plan them, estimate each prompt.

Inputs are handled independently (one failure never stops the others) and concurrently on a
few threads, since probing spends much of its time waiting on reading files; results come back
in input order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from vlcli.backends.registry import check_engine_name, engine_class
from vlcli.errors import ExitStatus, InputError, VlcliError, first_line
from vlcli.media.probe import MediaInfo, probe
from vlcli.models.families import DEFAULT_MODEL, ModelSpec, resolve_model
from vlcli.planning.context import context_problem
from vlcli.planning.memory import MemoryEstimate, canonical_attn, canonical_dtype, estimate_memory
from vlcli.planning.plan import (
    Media,
    Plan,
    SamplingOptions,
    VideoPlan,
    check_options,
    plan_image,
    plan_video,
)
from vlcli.planning.prompt import count_prompt_tokens
from vlcli.planning.tasks import GROUND_TEMPLATE, build_prompt, check_task
from vlcli.planning.thinking import check_think
from vlcli.planning.windows import plan_windows, sparse_note

if TYPE_CHECKING:
    from vlcli.planning.windows import Window

WORKERS = 4


@dataclass(frozen=True)
class Planned:
    """One input after probing and planning: either ``plan`` or ``error`` is set."""

    path: str
    info: MediaInfo | None = None
    plan: Plan | None = None
    error: VlcliError | None = None


def plan_for(info: MediaInfo, options: SamplingOptions, spec: ModelSpec) -> Plan:
    """The plan of one probed input; a video sampled sparsely by the frame cap gets a note that
    names ``--window`` (:func:`vlcli.planning.windows.sparse_note`)."""
    if info.kind == "image":
        return plan_image(info.width, info.height, options, spec.family)
    plan = plan_video(info.video_facts(), options, spec.family)
    note = sparse_note(plan, options)
    return dataclasses.replace(plan, notes=plan.notes + (note,)) if note else plan


def plan_one(path: str, options: SamplingOptions, spec: ModelSpec | None) -> Planned:
    """Probe (and, given a model spec, plan) one path; its failure is returned, not raised."""
    try:
        info = probe(path)
        if spec is None:
            return Planned(path, info)
        return Planned(path, info, plan_for(info, options, spec))
    except InputError as exc:
        exc.path = exc.path or path
        return Planned(path, error=exc)
    except Exception as exc:  # a bug met on one input: report it there, let the others run
        if os.environ.get("VLCLI_DEBUG"):
            raise
        return Planned(
            path,
            error=VlcliError(
                f"unexpected error ({type(exc).__name__}: {first_line(exc)}): a bug, please report it",
                ExitStatus.ERROR,
                path,
            ),
        )


def plan_inputs(
    paths: Iterable[str], options: SamplingOptions, spec: ModelSpec | None, workers: int = WORKERS
) -> Iterator[Planned]:
    """Probe (and, given a model spec, plan) every path, yielding results in input order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(lambda p: plan_one(p, options, spec), paths)


@dataclass(frozen=True)
class BudgetSettings:
    """What ``budget`` estimates for: the prompt ``ask`` would build with the same options, the
    model and engine that would run it, and the dtype and kernel of the memory estimate."""

    model: str = DEFAULT_MODEL
    max_new_tokens: int = 512
    dtype: str = "bfloat16"
    attn: str = "sdpa"
    question: str = ""  # empty: the question's own tokens are not counted
    task: str = "qa"
    system: str | None = None
    together: bool = False
    window: tuple[float, float] | None = None  # --window and --overlap, in seconds
    server: str | None = None
    api_key: str | None = None
    engine: str = "transformers"
    think: bool | None = None  # --think / --no-think: the template's enable_thinking
    questions: int = 1  # asked of each input (ask -q, --questions): their kept prefill counted


@dataclass(frozen=True)
class Estimate:
    """One input's estimate (with ``--together``: its share of the one prompt's)."""

    path: str
    plan: Plan
    tokens: int
    memory: MemoryEstimate | None
    exact: bool  # the tokens counted with the model's own chat template and tokenizer


@dataclass(frozen=True)
class InWindows:
    """A video longer than one ``--window``: each window is its own prompt, with its plan,
    prompt tokens and memory estimate."""

    path: str
    windows: list[WindowEstimate]


class WindowEstimate(NamedTuple):
    """One window of ``budget --window`` (a row of its table)."""

    window: Window
    plan: VideoPlan
    tokens: int
    memory: MemoryEstimate | None


@dataclass(frozen=True)
class TogetherTotal:
    """``--together``: how many inputs share the one prompt, and its tokens."""

    inputs: int
    tokens: int


@dataclass(frozen=True)
class Warned:
    """Something the user should know about an input or the prompt (a note, a context limit)."""

    message: str


Event = Planned | Estimate | InWindows | TogetherTotal | Warned


class Budget:
    """One ``budget`` run: the options checked and the model resolved (or asked of the server)
    on creation, before any input is probed; then :meth:`estimates`, in input order."""

    def __init__(self, settings: BudgetSettings, sampling: SamplingOptions):
        self.settings = dataclasses.replace(
            settings, dtype=canonical_dtype(settings.dtype), attn=canonical_attn(settings.attn)
        )
        self.sampling = sampling
        # the prompt with images only, and with a video (detect and point ask a video for times)
        self.prompts = {v: _prompt_text(settings.task, settings.question, v) for v in (False, True)}
        check_engine_name(settings.engine)
        self.context: int | None = None  # the model's own context length, unless a server says less
        self.model, engine = settings.model, settings.engine
        if settings.server is not None:
            served = engine_class("vllm")(
                settings.server,
                model=None if settings.model == DEFAULT_MODEL else settings.model,
                api_key=settings.api_key,
            )
            self.spec, self.model, engine = served.spec, served.served, "vllm"
            self.context = served.max_model_len if isinstance(served.max_model_len, int) else None
        else:
            self.spec = resolve_model(settings.model)
        self.positions = "vllm" if engine == "vllm" else "reference"  # whose arithmetic
        check_options(sampling, self.spec.family)
        check_think(self.spec.local_path, settings.think)

    def estimates(self, paths: Iterable[str]) -> Iterator[Event]:
        """Each input's estimate, or its failure (a :class:`Planned` with its ``error``), or its
        windows; with ``--together`` the one prompt's, shared by every input, then its total."""
        together: list[Planned] = []
        for item in plan_inputs(paths, self.sampling, self.spec):
            if item.error is not None or item.plan is None:
                yield item
                continue
            if self.settings.window and isinstance(item.plan, VideoPlan):
                rows = self.windows(item)
                if len(rows) > 1:  # a video longer than one window: each window its own prompt
                    yield InWindows(item.path, rows)
                    continue
            if isinstance(item.plan, VideoPlan):
                for note in item.plan.notes:
                    yield Warned(f"{item.path}: {note}")
            if self.settings.together:
                together.append(item)
            else:
                yield from self._prompt([item], item.path)
        if together:
            events = list(self._prompt(together, "together"))
            yield from events
            last = events[-1]
            assert isinstance(last, Estimate)
            yield TogetherTotal(len(together), last.tokens)

    def _prompt(self, items: list[Planned], label: str) -> Iterator[Event]:
        """The estimate of one prompt over ``items``: its context problem first, if any."""
        s = self.settings
        media = [(i.path, i.plan) for i in items if i.plan is not None]
        plans = [plan for _, plan in media]
        tokens, exact = self._count(media)
        memory = estimate_memory(
            self.spec, plans, tokens, s.max_new_tokens, s.dtype, s.attn, s.questions
        )
        problem = context_problem(
            self.spec, plans, self.sampling, tokens, s.max_new_tokens, self.context
        )
        if problem is not None:
            yield Warned(f"{label}: {problem}")
        for path, plan in media:
            yield Estimate(path, plan, tokens, memory, exact)

    def _count(self, media: Media) -> tuple[int, bool]:
        """The prompt's tokens, counted as ``ask`` would build it; exact or estimated."""
        prompt = self.prompts[any(isinstance(plan, VideoPlan) for _, plan in media)]
        s = self.settings
        return count_prompt_tokens(
            self.spec.local_path, self.spec.family, media, prompt, s.system, s.think
        )

    def windows(self, item: Planned) -> list[WindowEstimate]:
        """``budget --window``: each window of a probed video, planned as ``ask --window``
        plans it, with its prompt tokens and memory estimate."""
        s, rows = self.settings, []
        assert item.info is not None and s.window is not None
        facts = item.info.video_facts()
        for window, plan in plan_windows(facts, self.sampling, self.spec.family, *s.window):
            tokens, _exact = self._count([(item.path, plan)])
            memory = estimate_memory(
                self.spec, [plan], tokens, s.max_new_tokens, s.dtype, s.attn, s.questions
            )
            rows.append(WindowEstimate(window, plan, tokens, memory))
        return rows


def _prompt_text(task: str, question: str, video: bool) -> str:
    """The prompt ``ask`` would build. Without ``--question`` the question's own tokens are not
    counted (a ground prompt is then the template around an empty query)."""
    check_task(task)
    if task == "ground" and not question.strip():
        return GROUND_TEMPLATE.format(query="")
    return build_prompt(task, question, video) if question.strip() or task == "caption" else ""
