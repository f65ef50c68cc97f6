"""The GIMP plug-in on a 12 MP layer, in-process and through the subprocess, versus ``knockout cut``.

Everything runs in the trixie root (tests/gimp/provision.sh) with one environment: Debian's
Python 3.13, numpy and scikit-learn, and knockout pip-installed into a venv there, from which
``knockout gimp install`` installs the plug-in. Timed, on the same synthetic 12 MP headshot PNG:

- ``knockout cut IMG`` as a user runs it: process start, imports, decode, core, PNG encode, write
  (the baseline);
- ``cut_out`` alone on the decoded pixels (the core's share of both);
- the plug-in called through the PDB from a GIMP batch, output ``mask`` and ``alpha``, core
  reached in-process and (``KNOCKOUT_GIMP_BRIDGE=subprocess``) through ``python -m
  knockout.gimp_bridge``: the procedure call as the caller sees it (plug-in start, imports, reading
  and writing the layer's buffers, the core, undo), GIMP's own start and the export not included.

Usage: sudo .venv/bin/python bench/gimp.py [--size 4000x3000] [--repeat 2]
Prints a markdown table; copy it into bench/RESULTS.md with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "tests" / "gimp"))
sys.path.insert(0, str(_HERE.parent / "tests"))
import harness  # noqa: E402
from conftest import synthetic_headshot  # noqa: E402
from PIL import Image  # noqa: E402

BASELINE = """
import json, subprocess, sys, time
import numpy as np
from PIL import Image
from knockout.cutout import cut_out
from knockout.settings import Settings
repeat = int(sys.argv[1])
cli, core = [], []
for _ in range(repeat):
    t0 = time.perf_counter()
    subprocess.run(["/mnt/work/venv/bin/knockout", "cut", "/mnt/work/img/big.png", "-o", "/mnt/work/cli",
                    "--overwrite", "-q"], check=True)
    cli.append(time.perf_counter() - t0)
rgb = np.asarray(Image.open("/mnt/work/img/big.png").convert("RGB"))
for _ in range(repeat):
    t0 = time.perf_counter()
    cut_out(rgb, settings=Settings())
    core.append(time.perf_counter() - t0)
print(json.dumps({"cli": cli, "core": core}))
"""


def _cases(names: list[str], repeat: int) -> list[dict]:
    return [
        {"name": f"{name}-{i}", "src": "/mnt/work/img/big.png", "args": {"output": name.split("-")[0]}}
        for i in range(repeat)
        for name in names
    ]


def _gimp(work: Path, tag: str, cases: list[dict], env: dict[str, str]) -> tuple[float, list[dict]]:
    (work / f"{tag}.json").write_text(json.dumps(cases))
    env = {"KNOCKOUT_CASES": f"/mnt/work/{tag}.json", "KNOCKOUT_RESULTS": f"/mnt/work/{tag}-out.json", **env}
    t0 = time.perf_counter()
    done = harness.run_gimp(work, "/mnt/work/batch.py", env=env, timeout=3600)
    wall = time.perf_counter() - t0
    out = work / f"{tag}-out.json"
    if done.returncode or not out.exists():
        sys.exit(f"GIMP failed ({done.returncode}):\n{done.stderr[-3000:]}")
    results = [r for r in json.loads(out.read_text()) if r["name"] != "_registration"]
    bad = [r for r in results if r["status"] != "success"]
    if bad:
        sys.exit(f"plug-in failed: {bad}")
    return wall, results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4000x3000", help="WxH of the layer (default 4000x3000 = 12 MP)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    why = harness.unavailable()
    if why:
        print(f"bench/gimp.py: {why}", file=sys.stderr)
        return 2
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="knockout-bench-gimp-") as tmp:
        work = Path(tmp)
        (work / "img").mkdir()
        rgb, _ = synthetic_headshot(h, w, seed=7, noise=3.0, gradient=12.0)
        Image.fromarray(rgb).save(work / "img" / "big.png", compress_level=1)
        (work / "batch.py").write_bytes((harness.HERE / "batch.py").read_bytes())
        made = harness.make_core_venv(work)
        if made.returncode:
            sys.exit(made.stderr)
        base = harness.run_in_root(["/mnt/work/venv/bin/python", "-c", BASELINE, str(args.repeat)], work, timeout=3600)
        if base.returncode:
            sys.exit(base.stderr)
        times = json.loads(base.stdout.strip().splitlines()[-1])
        wall_in, res_in = _gimp(work, "in-process", _cases(["mask", "alpha"], args.repeat), {})
        wall_sub, res_sub = _gimp(
            work, "subprocess", _cases(["mask-sub"], args.repeat), {"KNOCKOUT_GIMP_BRIDGE": "subprocess"}
        )
    cli = statistics.median(times["cli"])
    rows = [
        ("`knockout cut` (baseline: process, decode, core, encode)", cli),
        ("core `cut_out` alone", statistics.median(times["core"])),
    ]
    for label, results, prefix in (
        ("plug-in, layer mask, in-process", res_in, "mask-"),
        ("plug-in, apply to alpha, in-process", res_in, "alpha-"),
        ("plug-in, layer mask, subprocess", res_sub, "mask-sub-"),
    ):
        rows.append((label, statistics.median(r["seconds"] for r in results if r["name"].startswith(prefix))))
    print(
        f"{w}x{h} ({w * h / 1e6:.0f} MP) synthetic headshot, default settings, median of {args.repeat}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
    )
    print("| what | seconds | / knockout cut |")
    print("|---|---:|---:|")
    for label, sec in rows:
        print(f"| {label} | {sec:.2f} | {sec / cli:.2f} |")
    print(
        f"\nGIMP batch wall time incl. GIMP start and loading the PNG: in-process {wall_in:.1f} s, "
        f"subprocess {wall_sub:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
