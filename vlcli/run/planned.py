"""The prompts of a run, planned as they are needed: one per input, one per window of a long
video, or one for all inputs together.

The pipeline consumes this source on its preparing worker (:mod:`vlcli.run.pipeline`), so that
the first answer never waits for a 2,000-file folder to be probed. An input that cannot be
probed or planned is not a prompt: it comes out settled (:class:`~vlcli.run.pipeline.Ready`,
with its error), in its place, and is recorded as failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vlcli.errors import InputError, VlcliError
from vlcli.models.families import ModelSpec
from vlcli.outputs.ledger import Ledger
from vlcli.planning.plan import SamplingOptions, VideoPlan
from vlcli.planning.windows import plan_windows
from vlcli.run.inputs import Job, KeyOf, Task, task_for
from vlcli.run.pipeline import Ready
from vlcli.run.windowed import window_jobs

Source = Iterator[Job | Ready[Job]]


class Planned:
    """Plans each pending task for one model and sampling, as the pipeline asks for it."""

    def __init__(
        self,
        options: SamplingOptions,
        spec: ModelSpec,
        window: tuple[float, float] | None,
        ledger: Ledger | None,
        key_of: KeyOf,
    ) -> None:
        self.options, self.spec, self.window = options, spec, window
        self.ledger = ledger  # where windows answered by an earlier run are found
        self.key_of = key_of

    def each(self, pending: list[Task]) -> Source:
        """One prompt per input (and question), or one per window of a video with ``--window``;
        the questions of one input follow each other and share its probe and plan."""
        # Probing needs the media layer (PyAV): imported once a run has inputs to plan.
        from vlcli.run.budget import plan_one

        last: tuple[str, Any] | None = None  # an input's questions are planned once for all
        for task in pending:
            path = task.paths[0]
            if last is None or last[0] != path:
                last = path, plan_one(path, self.options, self.spec)
            planned = last[1]
            if planned.error is not None or planned.plan is None or planned.info is None:
                error = planned.error or InputError("unreadable", path)
                yield Ready(Job(task, [], task.key), error=error)
                continue
            plan = planned.plan
            if self.window and isinstance(plan, VideoPlan):
                try:
                    windows = plan_windows(
                        planned.info.video_facts(), self.options, self.spec.family, *self.window
                    )
                except VlcliError as exc:
                    exc.path = exc.path or path
                    yield Ready(Job(task, [], task.key), error=exc)
                    continue
                if len(windows) > 1:
                    yield from window_jobs(task, windows, self.ledger)
                    continue
            notes = plan.notes if isinstance(plan, VideoPlan) else ()
            yield Job(task, [plan], task.key, None, notes)

    def together(self, task: Task) -> Source:
        """``--together``: every input planned first; a bad one is reported on its own."""
        from vlcli.run.budget import plan_inputs  # as in each(): the media layer, when needed

        plans, good = [], []
        for item in plan_inputs(task.paths, self.options, self.spec):
            if item.error is not None or item.plan is None:
                alone = task_for([item.path], task.stem, self.key_of, counted=False)
                error = item.error or InputError("unreadable", item.path)
                yield Ready(Job(alone, [], alone.key), error=error)
                continue
            plans.append(item.plan)
            good.append(item.path)
        if good:
            task.paths, task.plans = good, plans
            notes = tuple(n for p in plans if isinstance(p, VideoPlan) for n in p.notes)
            yield Job(task, plans, task.key, None, notes)
