"""The work behind ``probe`` and ``budget``: expand inputs, probe them, plan them.

Inputs are handled independently (one failure never stops the others) and concurrently on a
few threads, since probing spends much of its time waiting on reading files; results come back
in input order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from vlcli.errors import ExitStatus, InputError, VlcliError
from vlcli.media.probe import MediaInfo, probe
from vlcli.models.families import ModelSpec
from vlcli.planning.plan import (
    ImagePlan,
    SamplingOptions,
    VideoPlan,
    plan_image,
    plan_video,
)

WORKERS = 4


@dataclass(frozen=True)
class Planned:
    """One input after probing and planning: either ``plan`` or ``error`` is set."""

    path: str
    info: MediaInfo | None = None
    plan: VideoPlan | ImagePlan | None = None
    error: VlcliError | None = None


def plan_for(info: MediaInfo, options: SamplingOptions, spec: ModelSpec) -> VideoPlan | ImagePlan:
    """The plan of one probed input; a video sampled sparsely by the frame cap gets a note that
    names ``--window`` (:func:`vlcli.planning.windows.sparse_note`)."""
    from vlcli.planning.windows import sparse_note

    if info.kind == "image":
        return plan_image(info.width, info.height, options, spec.family)
    plan = plan_video(info.video_facts(), options, spec.family)
    note = sparse_note(plan, options)
    return dataclasses.replace(plan, notes=plan.notes + (note,)) if note else plan


def plan_one(path: str, options: SamplingOptions, spec: ModelSpec | None) -> Planned:
    """Probe (and, given a model spec, plan) one path; its failure is returned, not raised."""
    return _one(path, options, spec)


def _one(path: str, options: SamplingOptions, spec: ModelSpec | None) -> Planned:
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
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return Planned(
            path,
            error=VlcliError(
                f"unexpected error ({type(exc).__name__}: {line}): a bug, please report it",
                ExitStatus.ERROR,
                path,
            ),
        )


def plan_inputs(
    paths: Iterable[str], options: SamplingOptions, spec: ModelSpec | None, workers: int = WORKERS
) -> Iterator[Planned]:
    """Probe (and, given a model spec, plan) every path, yielding results in input order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(lambda p: _one(p, options, spec), paths)


def window_budget(
    item: Planned,
    options: SamplingOptions,
    spec: ModelSpec,
    windowing: tuple[float, float],
    count: Callable[[list[tuple[str, Any]]], tuple[int, bool]],
    max_new_tokens: int,
    dtype: str,
    attn: str = "sdpa",
) -> list[tuple[Any, VideoPlan, int, Any]]:
    """``budget --window``: each window of a probed video with its plan, prompt tokens (``count``,
    as ``budget`` counts a prompt) and memory estimate: the windows ``ask --window`` answers,
    planned the same way."""
    from vlcli.planning.memory import estimate_memory
    from vlcli.planning.windows import plan_windows

    assert item.info is not None
    rows = []
    for window, plan in plan_windows(item.info.video_facts(), options, spec.family, *windowing):
        tokens, _exact = count([(item.path, plan)])
        rows.append(
            (
                window,
                plan,
                tokens,
                estimate_memory(spec, [plan], tokens, max_new_tokens, dtype, attn),
            )
        )
    return rows
