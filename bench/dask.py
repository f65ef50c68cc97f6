"""Throughput on a Dask cluster versus the local pool, and the per-file cost of going through Dask.

Runs the same burst of synthetic 600x800 JPEG headshots through: ``process_bytes`` in this process
(the baseline), the daemon's local pool with 1 and 2 processes, and a ``distributed.LocalCluster`` of
1 and 2 single-threaded process workers driven by :class:`knockout.distributed.DaskExecutor` (the
daemon's code path, same ``max_in_flight`` bound). Every executor is warmed up first (imports, first
KMeans); then all run in interleaved rounds and the best time of each is kept, so a change in the
machine's load hits them alike. The per-file overhead of Dask is measured twice: with real images,
``(t_dask1 - t_pool1) / n``, and as the round trip of a task that does nothing (``process_bytes``
never runs), which isolates scheduling and transfer.

OpenMP / BLAS threads are set to 1 in every process (Dask's nanny does so for its workers).

Usage: python bench/dask.py [-n 24] [--size 800x600] [--rounds 2]
Prints a markdown table; copy it into bench/RESULTS.md with the machine's load.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import io
import logging
import os
import statistics
import sys
import time
from pathlib import Path

# one thread per process everywhere, as Dask's nanny sets for its workers: the comparison is of
# processes, not of how many threads OpenMP and BLAS happen to start
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from PIL import Image  # noqa: E402

# this file is named dask.py: keep its folder off sys.path so `import dask` finds the library
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "tests"))
from conftest import synthetic_headshot  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from knockout.daemon.executor import LocalExecutor  # noqa: E402

from knockout.distributed import DaskExecutor  # noqa: E402
from knockout.process import process_bytes  # noqa: E402
from knockout.settings import Settings  # noqa: E402


def _images(n: int, h: int, w: int) -> list[bytes]:
    out = []
    for i in range(n):
        rgb, _ = synthetic_headshot(h, w, seed=i, gradient=12.0)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _burst(ex, images: list[bytes], settings: Settings) -> float:
    """Seconds to push ``images`` through ``ex``, keeping at most ``ex.max_in_flight`` in flight."""
    t0 = time.perf_counter()
    pending: set[cf.Future] = set()
    todo = iter(images)
    more = True
    while more or pending:
        while more and len(pending) < ex.max_in_flight:
            data = next(todo, None)
            if data is None:
                more = False
                break
            pending.add(ex.submit(data, settings))
        if pending:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for f in done:
                f.result()
    return time.perf_counter() - t0


def _noop(x: bytes) -> int:
    return len(x)


def _round_trip(address: str, data: bytes, n: int = 50) -> float:
    """Median milliseconds of one submit -> result round trip of a task that does nothing."""
    with Client(address, set_as_default=False) as client:
        client.submit(_noop, data, pure=False).result()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.submit(_noop, data, pure=False).result()
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


MMAP_THRESHOLD = 32 * 1024 * 1024


class _InProcess:
    """The baseline: ``process_bytes`` in this process, one file at a time."""

    max_in_flight = 1

    def submit(self, data: bytes, settings: Settings) -> cf.Future:
        fut: cf.Future = cf.Future()
        fut.set_result(process_bytes(data, settings=settings))
        return fut

    def shutdown(self, wait: bool = True) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=24, help="images per run")
    ap.add_argument("--size", default="800x600", help="HxW of the synthetic images")
    ap.add_argument("--rounds", type=int, default=2, help="rounds over all configurations; the best time is kept")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    h, w = (int(x) for x in args.size.split("x"))
    settings = Settings()
    images = _images(args.n, h, w)

    def cluster(n: int, env: dict[str, str] | None = None) -> LocalCluster:
        return LocalCluster(
            processes=True, n_workers=n, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1", env=env
        )

    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap
    # threshold at 128 KiB: every image-sized array is mmapped and unmapped again. The README's
    # worker command adds MALLOC_MMAP_THRESHOLD_ (32 MiB); both are measured.
    tuned = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    clusters = [cluster(1), cluster(2), cluster(1, tuned), cluster(2, tuned)]
    configs = {
        "in-process, sequential (baseline)": _InProcess(),
        "local pool, 1 process": LocalExecutor(1),
        "local pool, 2 processes": LocalExecutor(2),
        "Dask LocalCluster, 1 worker": DaskExecutor(clusters[0].scheduler_address, 2, "wait", None),
        "Dask LocalCluster, 2 workers": DaskExecutor(clusters[1].scheduler_address, 4, "wait", None),
        "Dask, 1 worker, MALLOC_MMAP_THRESHOLD_ 32 MiB": DaskExecutor(clusters[2].scheduler_address, 2, "wait", None),
        "Dask, 2 workers, MALLOC_MMAP_THRESHOLD_ 32 MiB": DaskExecutor(clusters[3].scheduler_address, 4, "wait", None),
    }
    best: dict[str, float] = {}
    try:
        for ex in configs.values():  # warm up: imports and the first KMeans in every process
            _burst(ex, images[:4], settings)
        # rounds over all configurations, so a change in the machine's load hits them all alike
        for _ in range(args.rounds):
            for name, ex in configs.items():
                secs = _burst(ex, images, settings)
                best[name] = min(secs, best.get(name, secs))
        trips = {
            "empty": _round_trip(clusters[0].scheduler_address, b""),
            "image": _round_trip(clusters[0].scheduler_address, images[0]),
        }
    finally:
        for ex in configs.values():
            ex.shutdown()
        for c in clusters:
            c.close()

    base = best["in-process, sequential (baseline)"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    kib = len(images[0]) // 1024
    print(f"{args.n} images of {h}x{w} (JPEG, {kib} KiB each), best of {args.rounds} rounds; ", end="")
    print(f"load average {load:.1f} on {os.cpu_count()} cores\n")
    print("| configuration | files/s | ratio to baseline |")
    print("|---|---:|---:|")
    for name, secs in best.items():
        print(f"| {name} | {args.n / secs:.2f} | {base / secs:.2f} |")
    per_file = (best["Dask LocalCluster, 1 worker"] - best["local pool, 1 process"]) / args.n * 1000
    tuned = (best["Dask, 1 worker, MALLOC_MMAP_THRESHOLD_ 32 MiB"] - best["local pool, 1 process"]) / args.n * 1000
    print(f"\nDask overhead per file, real images (1 worker vs 1-process pool): {per_file:+.0f} ms")
    print(f"the same with MALLOC_MMAP_THRESHOLD_ 32 MiB on the worker: {tuned:+.0f} ms")
    print(f"Dask round trip of an empty task: {trips['empty']:.1f} ms; with one image's bytes: {trips['image']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
