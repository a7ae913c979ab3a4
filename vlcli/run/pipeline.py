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
    events: queue.Queue[tuple[Any, ...]] = queue.Queue()
    slots = threading.Semaphore(concurrency + 1 if ahead else concurrency)
    stop = stopping if stopping is not None else threading.Event()

    def take_slot() -> bool:
        while not stop.is_set():
            if slots.acquire(timeout=0.1):
                return True
        return False

    def worker() -> None:
        seq = 0
        try:
            for item in source:
                if stop.is_set():
                    return
                if isinstance(item, Ready):
                    events.put(("ready", seq, item.item, item.result, item.error))
                    seq += 1
                    continue
                if not take_slot():
                    return
                events.put(("begin", seq, item))
                try:
                    prepared = prepare(item)
                except Exception as exc:
                    events.put(("prepared", seq, None, exc))
                else:
                    events.put(("prepared", seq, prepared, None))
                    del prepared
                seq += 1
            events.put(("end", seq))
        except BaseException as exc:  # the source broke: stop the run with its error
            events.put(("crash", exc))

    def generator(entry: _Entry, seq: int) -> None:
        try:
            result = generate(entry.prepared)
        except Exception as exc:
            events.put(("generated", seq, None, exc))
        else:
            events.put(("generated", seq, result, None))

    entries: dict[int, _Entry] = {}
    total: int | None = None
    head = 0
    running = 0
    warmed = warm_up is None
    thread = threading.Thread(target=worker, name="vlcli-prepare", daemon=True)
    thread.start()
    try:
        while total is None or head < total:
            kind, *rest = events.get()
            if kind == "crash":
                raise rest[0]
            if kind == "end":
                total = rest[0]
            elif kind == "ready":
                seq, item, result, exc = rest
                entries[seq] = _Entry(item, prepare_done=True, done=True, result=result, error=exc)
            elif kind == "begin":
                seq, item = rest
                entries[seq] = _Entry(item)
                if not warmed:
                    warmed = True
                    assert warm_up is not None
                    warm_up()
            elif kind == "prepared":
                seq, prepared, exc = rest
                entry = entries[seq]
                entry.prepare_done = True
                if exc is not None:
                    entry.error, entry.done = exc, True
                    slots.release()
                else:
                    entry.prepared = prepared
            elif kind == "generated":
                seq, result, exc = rest
                entry = entries[seq]
                entry.result, entry.error, entry.done = result, exc, True
                entry.prepared = None
                running -= 1
                slots.release()
            # Finish in order.
            while head in entries and entries[head].done:
                entry = entries.pop(head)
                finish(Outcome(entry.item, entry.result, entry.error))
                head += 1
            # Start generating prepared items, in order, while there is room.
            seq = head
            while seq in entries and running < concurrency:
                entry = entries[seq]
                if entry.prepare_done and not entry.done and not entry.generating:
                    entry.generating = True
                    running += 1
                    if concurrency == 1:
                        generator(entry, seq)  # here, on the calling thread; reported as an event
                    else:
                        threading.Thread(
                            target=generator, args=(entry, seq), name="vlcli-generate", daemon=True
                        ).start()
                elif not entry.prepare_done:
                    break
                seq += 1
    finally:
        stop.set()
        thread.join(STOP_WAIT_S)


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
