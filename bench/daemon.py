"""Throughput and latency of the watch-folder daemon, against ``knockout cut`` on the same files.

For each run a fresh folder gets a config with the default settings; ``knockout watch`` is
started as a real process and, once it is ready, the burst of N 600x800 JPEG headshots is
renamed into its inbox at once (from a staging folder on the same file system, so each file
arrives complete at a known time). Measured:

* throughput: N / (last output's appearance - arrival), with ``workers: 1`` and ``workers: 2``, and
  their ratio (issue 13: >= 1.8x on an otherwise idle 2-core machine);
* the baseline: ``knockout cut STAGING -o OUT`` (one process, ``-j 1``) on the same files, timed by
  its own report (start-up excluded as for the daemon), and the ratio daemon / cut; also with
  ``OMP_NUM_THREADS=1``, as the daemon's workers run (one OpenMP / BLAS thread each);
* latency from arrival (the rename into the inbox) to the output's appearance (its ctime: the
  moment it was renamed into the outbox): median and 95th percentile, in the burst (dominated by
  the queue) and for a trickle (one file every ``--gap`` seconds, what one photographer sees),
  with the default ``settle: 1.0``.

Images: the EG1800 portraits from ../shared/data/portraits (copied to a temporary folder, never
into the project) when present, else synthetic headshots. Runs are interleaved (cut, daemon 1,
daemon 2, the order reversed every other round) for ``--rounds`` rounds and the median of each is
reported, so the machine's load hits them alike; the load average is printed after each round.

Usage: python bench/daemon.py [-n 60] [--rounds 3] [--trickle 8] [--gap 2.0]
Prints a markdown table; copy it into bench/RESULTS.md with the machine's load.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

from knockout.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import PORTRAITS, synthetic_headshot  # noqa: E402


def _stage(folder: Path, n: int) -> str:
    """Put n 600x800 JPEGs in ``folder``; returns where they came from."""
    folder.mkdir(parents=True)
    src = sorted((PORTRAITS / "images").glob("*.jpg"))[:n] if (PORTRAITS / "images").is_dir() else []
    if len(src) >= n:
        for p in src:
            shutil.copyfile(p, folder / p.name)
        return f"EG1800 portraits ({PORTRAITS})"
    for i in range(n):
        rgb, _ = synthetic_headshot(800, 600, seed=i, gradient=12.0)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=90)
        (folder / f"synthetic{i:03d}.jpg").write_bytes(buf.getvalue())
    return "synthetic headshots"


def _cut(staging: Path, work: Path, *, one_thread: bool = False) -> float:
    """Seconds ``knockout cut`` reports for the staged files, one process."""
    out = work / "cut-out"
    env = dict(os.environ)
    if one_thread:  # as the daemon's workers run: one OpenMP / BLAS thread
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "knockout.cli", "cut", str(staging), "-o", str(out), "-j", "1"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    m = re.search(r"(\d+) cut out, (\d+) failed.* in ([\d.]+) s", r.stderr)
    assert m and m.group(2) == "0", r.stderr
    shutil.rmtree(out)
    return float(m.group(3))


class _Daemon:
    def __init__(self, work: Path, workers: str | int, settle: float = 1.0) -> None:
        self.work = work
        work.mkdir(parents=True)
        cfg = {"settle": settle, "rescan": 0, "workers": workers, "state_dir": ".state", "log_level": "warning"}
        # review: null keeps doubtful cut-outs in the outbox, where arrivals are timed (a review folder
        # would take about half of these real portraits and the run would wait for them forever)
        cfg["jobs"] = [{"inbox": "inbox", "outbox": "outbox", "review": None}]
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))
        self.log = open(work / "daemon.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "knockout.cli", "watch", "-c", str(work / "config.yaml"), "-v"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.inbox, self.outbox = work / "inbox", work / "outbox"
        end = time.monotonic() + 120
        while "watching " not in (work / "daemon.log").read_text():
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError((work / "daemon.log").read_text())
            time.sleep(0.05)
        time.sleep(3.0)  # let the workers finish their warm-up (the fork server preloads the core)

    def drop(self, files: list[Path]) -> dict[str, float]:
        """Rename files into the inbox; returns arrival times (time.time) by stem."""
        arrival = {}
        for f in files:
            arrival[f.stem] = time.time()
            os.rename(f, self.inbox / f.name)
        return arrival

    def wait_outputs(self, stems: set[str], timeout: float = 1800) -> dict[str, float]:
        """Appearance time (ctime of the output) of each stem's output."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done = {p.stem: p.stat().st_ctime for p in self.outbox.glob("*.png") if p.stem in stems}
            if len(done) == len(stems):
                return done
            if self.proc.poll() is not None:
                raise RuntimeError((self.work / "daemon.log").read_text())
            time.sleep(0.05)
        raise TimeoutError(f"{len(stems)} outputs not all there after {timeout} s")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()


def _burst(staging: Path, work: Path, workers: str | int) -> tuple[float, list[float]]:
    """(files per second, latencies) of one burst through a fresh daemon."""
    files = sorted(staging.glob("*.jpg"))
    mine = work / "files"
    mine.mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, mine / f.name)
    d = _Daemon(work / "d", workers)
    try:
        arrival = d.drop(sorted(mine.glob("*.jpg")))
        out = d.wait_outputs(set(arrival))
    finally:
        d.stop()
    span = max(out.values()) - min(arrival.values())
    return len(files) / span, [out[k] - arrival[k] for k in arrival]


def _trickle(staging: Path, work: Path, n: int, gap: float) -> list[float]:
    files = sorted(staging.glob("*.jpg"))[:n]
    mine = work / "files"
    mine.mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, mine / f.name)
    d = _Daemon(work / "d", "auto")
    lat = []
    try:
        for f in sorted(mine.glob("*.jpg")):
            arrival = d.drop([f])
            out = d.wait_outputs({f.stem})
            lat.append(out[f.stem] - arrival[f.stem])
            time.sleep(gap)
    finally:
        d.stop()
    return lat


def _p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=60, help="files in the burst")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trickle", type=int, default=8, help="files in the trickle latency run")
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between trickle files")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="knockout-bench-daemon-"))
    try:
        staging = tmp / "staging"
        source = _stage(staging, args.n)
        cut_s: list[float] = []
        cut1_s: list[float] = []
        runs: dict[str, list[tuple[float, list[float]]]] = {"1": [], "2": []}
        loads = [os.getloadavg()[0]]
        for r in range(args.rounds):
            order = ("cut", "cut1", "1", "2") if r % 2 == 0 else ("2", "1", "cut1", "cut")
            for what in order:
                if what == "cut":
                    cut_s.append(_cut(staging, tmp))
                elif what == "cut1":
                    cut1_s.append(_cut(staging, tmp, one_thread=True))
                else:
                    runs[what].append(_burst(staging, tmp / f"r{r}-w{what}", int(what)))
            loads.append(os.getloadavg()[0])
            print(
                f"round {r + 1}: cut {args.n / cut_s[-1]:.2f} files/s, "
                f"daemon w1 {runs['1'][-1][0]:.2f}, w2 {runs['2'][-1][0]:.2f}, load {loads[-1]:.1f}",
                file=sys.stderr,
            )
        trickle = _trickle(staging, tmp / "trickle", args.trickle, args.gap)
        cut_fps = args.n / statistics.median(cut_s)
        cores = len(os.sched_getaffinity(0))
        print(
            f"\n{args.n} files, {source}, 600x800 JPEG, default settings ({Settings().method}), settle 1.0 s; "
            f"{cores} cores, load average (1 min) {', '.join(f'{x:.1f}' for x in loads)} (start, after each "
            f"round); medians of {args.rounds} rounds\n"
        )
        print("| run | files/s | vs `knockout cut` (1 process) | latency median | latency p95 |")
        print("|---|---:|---:|---:|---:|")
        print(f"| `knockout cut -j 1` | {cut_fps:.2f} | 1.00 | | |")
        cut1_fps = args.n / statistics.median(cut1_s)
        print(f"| `OMP_NUM_THREADS=1 knockout cut -j 1` | {cut1_fps:.2f} | {cut1_fps / cut_fps:.2f} | | |")
        rate = {}
        for w in ("1", "2"):
            fps = statistics.median(x[0] for x in runs[w])
            lat = [t for x in runs[w] for t in x[1]]
            rate[w] = fps
            label = f"daemon, workers: {w}"
            print(
                f"| {label}, burst | {fps:.2f} | {fps / cut_fps:.2f} | {statistics.median(lat):.1f} s "
                f"| {_p95(lat):.1f} s |"
            )
        print(
            f"| daemon, workers: auto, trickle (1 file / {args.gap:g} s) | | | "
            f"{statistics.median(trickle):.2f} s | {_p95(trickle):.2f} s |"
        )
        print(
            f"\nworkers: 2 / workers: 1 throughput: {rate['2'] / rate['1']:.2f}x (target >= 1.8x on an otherwise "
            f"idle 2-core machine); each round: "
            + ", ".join(f"{b[0] / a[0]:.2f}x" for a, b in zip(runs["1"], runs["2"], strict=True))
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
