"""Forked decoding workers: the pieces of one video decoded in parallel, frames handed over in
plan order through shared memory.

Workers are forked, since starting Python afresh would cost seconds of imports. Each

* runs torch on one thread: the parent may have used OpenMP threads, which do not survive a fork
  (one thread never starts them), and several workers share the CPUs anyway;
* opens the file itself and decodes its round-robin share of the pieces
  (:func:`vlcli.media.pieces.decode_segments`), in order;
* writes each finished frame (turned and resized) into one of its own slots of one shared
  anonymous mapping and tells the parent which, through a pipe; it takes a slot again only when
  the parent has handed it back, so memory is bounded by the slots whatever the video's length;
* ends with ``os._exit``, so that none of the parent's clean-up (atexit handlers, buffered
  output, finalizers) runs in it, also after an error, which it reports through the pipe.

The parent takes the frames in plan order: each worker makes its frames in that order too, so
the parent only ever waits for the worker that owns the next frame, and no worker waits on
another. While the workers run, the parent's torch keeps to the CPUs they leave (at least one).
The parent's objects are frozen for the garbage collector while it forks, so that the workers'
collector does not touch (and so copy) their pages. The workers are ended and reaped when the
frames are all taken, or when the caller stops early or fails.
"""

from __future__ import annotations

import gc
import mmap
import os
import struct
import sys
from collections.abc import Iterator

import torch

from vlcli.media.pieces import Job, Reader, SegmentError, cpus, decode_segments
from vlcli.media.resample import kernel_for
from vlcli.media.segments import assign

# Bytes of frame slots per worker (at least MIN_SLOTS slots): enough for the planned frames of a
# few seconds of video at the default plan, so that workers rarely wait for the consumer.
SLOT_BYTES_PER_WORKER = 24 << 20
MIN_SLOTS = 4


class Pool:
    """Forked workers, each decoding its round-robin share of the pieces into its own slots of
    one shared mapping; the parent takes the frames in plan order."""

    def __init__(self, job: Job, workers: int, threads: int):
        self.job = job
        self.workers = workers
        self.threads = threads
        self.shares = assign(job.segments, workers)
        height, width = job.output.size
        self.frame_bytes = 3 * height * width
        most = max(sum(len(job.segments[i].frames) for i in share) for share in self.shares)
        self.slots = max(MIN_SLOTS, min(most, SLOT_BYTES_PER_WORKER // self.frame_bytes))
        self.owner: dict[int, int] = {
            pts: k
            for k, share in enumerate(self.shares)
            for i in share
            for pts in job.segments[i].frames
        }

    def frames(self) -> Iterator[torch.Tensor]:
        size = self.workers * self.slots * self.frame_bytes
        memory = mmap.mmap(-1, max(size, 1))
        slots = torch.frombuffer(memory, dtype=torch.uint8).view(
            self.workers * self.slots, 3, *self.job.output.size
        )
        children: list[tuple[int, int, int]] = []  # pid, read fd, write fd
        # A tokenizer that has used its threads warns in every forked child unless this is set.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        threads = torch.get_num_threads()
        # The resize kernel is set up once, here, and inherited by every worker (vlcli.media.resample).
        kernel_for(self.job.output.source, self.job.output.size)
        gc.freeze()  # the workers' garbage collector then leaves the parent's objects alone (so
        try:  # their pages are not copied)
            for k in range(self.workers):
                children.append(self._start(k, slots))
            gc.unfreeze()
            # While the workers decode, this process keeps to the CPUs they leave: torch's idle
            # threads spin between operations and take CPU from the workers (measured: half of
            # this process's CPU time on 2 CPUs, two workers, two torch threads).
            torch.set_num_threads(max(1, min(threads, cpus() - self.workers * self.threads)))
            unsent = [0] * self.workers  # frames each worker has yet to hand over
            for pts in self.job.order:
                unsent[self.owner[pts]] += 1
            held = [self.slots] * self.workers  # slots each worker may still write
            for pts in self.job.order:
                k = self.owner[pts]
                pid, results, returns = children[k]
                got_pts, slot, message = _receive(results)
                if message:
                    raise SegmentError(message)
                if got_pts != pts:
                    raise SegmentError(f"worker {k} sent pts {got_pts}, {pts} was due")
                yield slots[slot]  # the caller copies it before asking for the next one
                unsent[k] -= 1
                if held[k] - 1 >= unsent[k]:
                    # The worker keeps a slot for every frame it has left without this one: its
                    # pages go back now, not at the end (the last frames are the run's peak).
                    held[k] -= 1
                    _release(memory, slot * self.frame_bytes, self.frame_bytes)
                    continue
                try:
                    os.write(returns, struct.pack("<i", slot))
                except BrokenPipeError:
                    pass  # the worker has sent all its frames and left
        finally:
            torch.set_num_threads(threads)
            gc.unfreeze()
            for pid, results, returns in children:
                for fd in (results, returns):
                    os.close(fd)
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
                os.waitpid(pid, 0)
            del slots
            try:
                memory.close()  # the slots' pages go back now, not when the mapping is collected
            except BufferError:
                pass  # a view is still alive somewhere: the collector will close it

    def _start(self, k: int, slots: torch.Tensor) -> tuple[int, int, int]:
        to_parent_r, to_parent_w = os.pipe()
        to_child_r, to_child_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            status = 0
            try:
                os.close(to_parent_r)
                os.close(to_child_w)
                self._work(k, slots, to_parent_w, to_child_r)
            except BaseException:  # noqa: BLE001 - reported through the pipe where possible
                status = 1
            finally:
                os._exit(status)
        os.close(to_parent_w)
        os.close(to_child_r)
        return pid, to_parent_r, to_child_w

    def _work(self, k: int, slots: torch.Tensor, results: int, returns: int) -> None:
        torch.set_num_threads(1)
        first = k * self.slots
        free = list(range(first, first + self.slots))
        reader = None
        try:
            reader = Reader(self.job.path, self.job.table, self.threads)
            segments = [self.job.segments[i] for i in self.shares[k]]
            for pts, frame in decode_segments(reader, segments, self.job.output):
                if not free:
                    free.append(struct.unpack("<i", _read_exactly(returns, 4))[0])
                slot = free.pop()
                slots[slot].copy_(frame)
                _send(results, pts, slot, "")
        except Exception as exc:  # noqa: BLE001 - the parent decides what it means
            _send(results, 0, -1, f"{type(exc).__name__}: {exc}"[:500] or "error")
        finally:
            if reader is not None:
                reader.close()


def _release(memory: mmap.mmap, start: int, length: int) -> None:
    """Give the whole pages of ``memory[start:start + length]`` back to the system (a shared
    anonymous mapping: they read as zeros afterwards)."""
    page = mmap.PAGESIZE
    first = -(-start // page) * page
    end = (start + length) // page * page
    if end > first and hasattr(mmap, "MADV_REMOVE"):
        try:
            memory.madvise(mmap.MADV_REMOVE, first, end - first)
        except OSError:
            pass  # kept until the mapping is closed, as before


def _send(fd: int, pts: int, slot: int, message: str) -> None:
    text = message.encode("utf-8", "replace")
    os.write(fd, struct.pack("<qiI", pts, slot, len(text)) + text)


def _receive(fd: int) -> tuple[int, int, str]:
    pts, slot, length = struct.unpack("<qiI", _read_exactly(fd, 16))
    text = _read_exactly(fd, length).decode("utf-8", "replace") if length else ""
    if slot < 0 and not text:
        text = "a decoding worker failed"
    return pts, slot, text


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise SegmentError("a decoding worker ended early")
        data += chunk
    return data
