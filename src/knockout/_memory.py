"""Let the C allocator keep freed memory for the next image instead of returning it to the system."""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks below it come from the heap and are reused
_TRIM_THRESHOLD = 128 << 20  # free memory at the heap's top kept for the next allocations
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX")


def reuse_freed_memory() -> bool:
    """Keep and reuse freed blocks below 32 MB (glibc only); True when set.

    glibc's malloc maps every large block afresh (and returns freed heap memory at once) until
    its adaptive threshold catches up, and a cut-out's temporary arrays of a few hundred KB to
    tens of MB come and go: each fresh mapping is page-faulted in again. For 24 600x800 portraits
    that was about 400,000 page faults and 2-10 s of system time (1.9-2.5 s on a lightly loaded
    machine) against 33,000 and 0.3-0.4 s with the heap reused, at the same peak memory
    (bench/RESULTS.md). All threads share one arena (the main heap), so that what a thread frees
    is reused by the others: a 12 MP JPEG decoded on a thread (while the core is imported) left
    about 60 MB in that thread's arena, above the peak of the cut-out. Nothing is changed when
    the user tunes malloc through its environment variables, or on other C libraries and systems.
    """
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _ENV):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has a mallopt that does nothing)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(
        mallopt(param, value)
        for param, value in (
            (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
            (_M_ARENA_MAX, 1),
        )
    )
