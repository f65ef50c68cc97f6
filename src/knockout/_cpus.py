"""How many CPUs this process may use, and a cap on its threads for worker processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["limit_threads", "own_threads_limited", "usable_cpus"]

_cap: dict[str, int] = {}  # 'threads', set by limit_threads in a pool's worker process


def usable_cpus() -> int:
    """CPUs this process may run on, capped by :func:`limit_threads`.

    ``os.sched_getaffinity`` where available, else ``os.cpu_count()``. knockout's own thread
    pools (labelling, compositing, PNG encoding) size themselves with this.
    """
    if hasattr(os, "sched_getaffinity"):
        n = max(1, len(os.sched_getaffinity(0)))
    else:
        n = os.cpu_count() or 1
    return min(n, _cap.get("threads", n))


def limit_threads(threads: int) -> None:
    """Run this process on at most ``threads`` threads from now on (for a pool's worker processes).

    Caps :func:`usable_cpus` (knockout's own thread pools), sets ``OMP_NUM_THREADS`` and the BLAS
    variables for libraries loaded later, and limits the BLAS / OpenMP pools already loaded
    (threadpoolctl). N workers on N cores each running several threads only fight for the cores.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    _cap["threads"] = threads
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


@contextmanager
def own_threads_limited(threads: int) -> Iterator[None]:
    """Cap :func:`usable_cpus` (knockout's own thread pools) at ``threads`` within a ``with`` block.

    For the process that cuts files beside its pool's workers: the BLAS pool is held at one
    thread around each cut-out anyway (:func:`knockout.process.process_bytes`), and nothing else
    of the process is changed for after the block.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    before = _cap.get("threads")
    _cap["threads"] = min(threads, before or threads)
    try:
        yield
    finally:
        if before is None:
            _cap.pop("threads", None)
        else:
            _cap["threads"] = before
