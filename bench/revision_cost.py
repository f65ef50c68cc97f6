"""Whole-process cost of ``knockout cut`` now against another revision, alternating, in one run.

    git worktree add /tmp/old REV
    python bench/revision_cost.py --old /tmp/old [--files 12] [--rounds 5] [--size 600x800]

Both run ``python -m knockout.cli cut FILES -o OUT -j 1 -q`` in fresh processes on the same real
portraits (../shared/data/portraits, plain and studio, the first --files of them); the old one
with its package copied as installed (``knockout.daemon`` inside it) ahead on ``PYTHONPATH``.
Prints the median wall time of each, the ratio now/old, and the load average, so a reader can
judge the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_composites import _find_portraits

DATA = _find_portraits()


def _run(files: list[str], out: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "knockout.cli", "cut", *files, "-o", str(out), "-j", "1", "-q", "--overwrite"]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="a checkout of the other revision")
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not (DATA / "manifest.csv").exists():
        print(f"no portraits at {DATA}; nothing to measure", file=sys.stderr)
        return 0
    rows = [r for r in csv.DictReader(open(DATA / "manifest.csv")) if r["background_kind"] in ("plain", "studio")]
    files = [str(DATA / "images" / f"{r['name']}.jpg") for r in rows[: args.files]]
    now_env = dict(os.environ)
    times: dict[str, list[float]] = {"now": [], "old": []}
    with tempfile.TemporaryDirectory() as tmp:
        # the old package laid out as installed (knockout.daemon inside it), ahead of this checkout's
        pkg = Path(tmp) / "old-site"
        shutil.copytree(args.old / "src" / "knockout", pkg / "knockout")
        shutil.copytree(args.old / "daemon", pkg / "knockout" / "daemon")
        old_env = {**os.environ, "PYTHONPATH": str(pkg)}
        for i in range(args.rounds):
            order = [("now", now_env), ("old", old_env)]
            for name, env in order if i % 2 == 0 else reversed(order):
                times[name].append(_run(files, Path(tmp) / name, env))
            last = f"now {times['now'][-1]:.2f} s, old {times['old'][-1]:.2f} s"
            print(f"round {i + 1}: {last}, load {os.getloadavg()[0]:.1f}", flush=True)
    now, old = statistics.median(times["now"]), statistics.median(times["old"])
    print(
        f"{len(files)} portraits, -j 1, median of {args.rounds}: now {now:.2f} s, old {old:.2f} s, "
        f"now/old {now / old:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
