"""Answering many prompts in order while the next ones are prepared: the scheduling, and signals.

:func:`run_ordered` takes items from a lazy source and, for each, calls ``prepare`` on one worker
thread (decoding frames, building the model inputs), ``generate`` on up to ``concurrency``
generators (the calling thread itself when ``concurrency`` is 1, so that a model runs where it was
loaded), and ``finish`` on the calling thread, strictly in the source's order, failures
included. The source itself is consumed on the worker, so that probing and planning the next
input never holds the model up.

Memory stays bounded: an item takes one of ``concurrency + 1`` slots before it is prepared and
gives it back once it has been generated, so at most ``concurrency`` prepared items are being
answered and one more waits (with the transformers backend, two inputs' frames). Finished
results that wait for an earlier, slower item hold only their answer.

:class:`Interrupts` turns SIGINT, SIGTERM and SIGHUP into :class:`~vlcli.errors.Interrupted` on
the main thread (never inside an import: :mod:`vlcli.run.signals`), held back while a finished
item's outputs are written (:meth:`Interrupts.held`), so that an item is either recorded whole
or not at all.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vlcli.errors import Interrupted
from vlcli.run import signals

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Ready(Generic[T]):
    """A source item already settled: failed before it could be prepared (an input that cannot
    be probed), or answered before (a window found in the output file). It goes straight to
    ``finish``, in its place."""

    item: T
    result: Any = None
    error: BaseException | None = None


@dataclass
class Outcome(Generic[T, R]):
    """What became of one item: its result, or the exception that stopped it."""

    item: T
    result: R | None = None
    error: BaseException | None = None


@dataclass
class _Entry:
    item: Any
    prepared: Any = None
    prepare_done: bool = False
    generating: bool = False
    result: Any = None
    error: BaseException | None = None
    done: bool = False


STOP_WAIT_S = 5.0  # how long a stopped run waits for the worker's step in progress


def run_ordered(
    source: Iterable[T | Ready[T]],
    prepare: Callable[[T], P],
    generate: Callable[[P], R],
    finish: Callable[[Outcome[T, R]], None],
    *,
    concurrency: int = 1,
    warm_up: Callable[[], None] | None = None,
    ahead: bool = True,
    stopping: threading.Event | None = None,
) -> None:
    """Run every item of ``source`` through ``prepare`` and ``generate``; ``finish`` in order.

    Items are finished before the next is given to ``generate``, so that with one generator a
    record is written as soon as its answer is in. ``warm_up`` runs once on the calling thread
    as soon as the first item that will need ``generate`` is being prepared (loading a model
    while the first input decodes). With
    ``ahead=False`` nothing is prepared ahead (``concurrency`` slots, not one more): with one
    generator each item is prepared once the one before is answered, on the same threads, so
    that what preparing ahead gains can be measured alone. An exception from
    ``prepare`` or ``generate`` becomes that item's outcome; one from ``source`` or ``finish``
    (or an interrupt) stops the run: ``stopping`` is then set (a ``prepare`` in progress should
    check it and give up, e.g. between chunks of frames) and the worker is given
    :data:`STOP_WAIT_S` seconds to finish its step, so that no decoding is left running.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    run = _Ordered(prepare, generate, finish, concurrency, warm_up, ahead, stopping)
    thread = threading.Thread(
        target=run.prepare_all, args=(source,), name="vlcli-prepare", daemon=True
    )
    thread.start()
    try:
        run.finish_all()
    finally:
        run.stop.set()
        thread.join(STOP_WAIT_S)


class _Ordered(Generic[T, P, R]):
    """One :func:`run_ordered`: the preparing worker and the calling thread share only a queue
    of events (what was begun, prepared, generated), the slots that bound memory, and ``stop``;
    the items in flight, by their place in the source, belong to the calling thread."""

    def __init__(
        self,
        prepare: Callable[[T], P],
        generate: Callable[[P], R],
        finish: Callable[[Outcome[T, R]], None],
        concurrency: int,
        warm_up: Callable[[], None] | None,
        ahead: bool,
        stopping: threading.Event | None,
    ) -> None:
        self.prepare, self.generate, self.finish = prepare, generate, finish
        self.concurrency = concurrency
        self.warm_up = warm_up  # None once it has run
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.slots = threading.Semaphore(concurrency + 1 if ahead else concurrency)
        self.stop = stopping if stopping is not None else threading.Event()
        self.entries: dict[int, _Entry] = {}
        self.total: int | None = None  # known once the source is exhausted
        self.head = 0  # the next place to finish
        self.running = 0

    # ------------------------------------------------ on the preparing worker

    def prepare_all(self, source: Iterable[T | Ready[T]]) -> None:
        """Consume the source and prepare each item, in order, each once it has a slot."""
        seq = 0
        try:
            for item in source:
                if self.stop.is_set():
                    return
                if isinstance(item, Ready):
                    self.events.put(("ready", seq, item.item, item.result, item.error))
                    seq += 1
                    continue
                if not self._take_slot():
                    return
                self.events.put(("begin", seq, item))
                try:
                    prepared = self.prepare(item)
                except Exception as exc:
                    self.events.put(("prepared", seq, None, exc))
                else:
                    self.events.put(("prepared", seq, prepared, None))
                    del prepared
                seq += 1
            self.events.put(("end", seq))
        except BaseException as exc:  # the source broke: stop the run with its error
            self.events.put(("crash", exc))

    def _take_slot(self) -> bool:
        while not self.stop.is_set():
            if self.slots.acquire(timeout=0.1):
                return True
        return False

    # ------------------------------------------------ on the calling thread (and generators)

    def finish_all(self) -> None:
        """Take the events until every item is finished: finish in order, generate in order."""
        while self.total is None or self.head < self.total:
            self._take(self.events.get())
            while self.head in self.entries and self.entries[self.head].done:
                entry = self.entries.pop(self.head)
                self.finish(Outcome(entry.item, entry.result, entry.error))
                self.head += 1
            self._start_generating()

    def _take(self, event: tuple[Any, ...]) -> None:
        """Note what one event says of its item (``crash``: raise the source's error)."""
        kind, *rest = event
        if kind == "crash":
            raise rest[0]
        if kind == "end":
            self.total = rest[0]
        elif kind == "ready":
            seq, item, result, exc = rest
            self.entries[seq] = _Entry(item, prepare_done=True, done=True, result=result, error=exc)
        elif kind == "begin":
            seq, item = rest
            self.entries[seq] = _Entry(item)
            if self.warm_up is not None:
                warm_up, self.warm_up = self.warm_up, None
                warm_up()
        elif kind == "prepared":
            seq, prepared, exc = rest
            entry = self.entries[seq]
            entry.prepare_done = True
            if exc is not None:
                entry.error, entry.done = exc, True
                self.slots.release()
            else:
                entry.prepared = prepared
        elif kind == "generated":
            seq, result, exc = rest
            entry = self.entries[seq]
            entry.result, entry.error, entry.done = result, exc, True
            entry.prepared = None
            self.running -= 1
            self.slots.release()

    def _start_generating(self) -> None:
        """Start generating prepared items, in order, while there is room."""
        seq = self.head
        while seq in self.entries and self.running < self.concurrency:
            entry = self.entries[seq]
            if entry.prepare_done and not entry.done and not entry.generating:
                entry.generating = True
                self.running += 1
                if self.concurrency == 1:
                    self._generate_one(entry, seq)  # here, on the calling thread
                else:
                    threading.Thread(
                        target=self._generate_one,
                        args=(entry, seq),
                        name="vlcli-generate",
                        daemon=True,
                    ).start()
            elif not entry.prepare_done:
                break
            seq += 1

    def _generate_one(self, entry: _Entry, seq: int) -> None:
        """Generate one prepared item; its result (or error) is reported as an event."""
        try:
            result = self.generate(entry.prepared)
        except Exception as exc:
            self.events.put(("generated", seq, None, exc))
        else:
            self.events.put(("generated", seq, result, None))


# ---------------------------------------------------------------- signals


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP as :class:`Interrupted` on the main thread, while installed.

    Inside :meth:`held` a signal is remembered and raised when the block ends, so that what the
    block writes is written whole. A signal that arrived before (and that a library swallowed)
    stops the run before it starts.
    """

    SIGNALS = signals.SIGNALS

    def __init__(self) -> None:
        self._holding = 0
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: Any) -> None:
        if self._holding:
            self._pending = self._pending or signum
            return
        raise Interrupted(signum)

    def __enter__(self) -> Interrupts:
        signals.raise_if_received()
        if threading.current_thread() is threading.main_thread():
            handler = signals.after_imports(self._handler)
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
            if not self._holding and self._pending is not None:
                signum, self._pending = self._pending, None
                raise Interrupted(signum)
