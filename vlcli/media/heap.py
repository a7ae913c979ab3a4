"""Giving freed heap memory back to the system, at the few moments where that lowers the peak.

glibc keeps the memory a process frees for its next allocations (the larger blocks too, once it
has raised its mmap threshold past them), so a burst of temporaries early on, such as
tokenizing a long prompt or checking a fast path against the reference on the first chunk,
stays resident for the rest of the run, under the prompt's pixel tensor, which is the peak.
``malloc_trim`` hands the free pages back; the pages the next steps need are faulted in again,
a few milliseconds. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

_libc: list[Any] = []


def give_back() -> None:
    """Return the free pages of the C heap to the system (glibc's ``malloc_trim(0)``)."""
    if not _libc:
        try:
            _libc.append(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"))
        except OSError:
            _libc.append(None)
    libc = _libc[0]
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None:
        trim(0)
