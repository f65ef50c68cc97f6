"""Quality benchmark on ../shared/data/portraits (real portraits, hand-drawn masks).

Prints mean / 10th-percentile IoU, boundary F-score (2 px) and time per image, per
background kind, for each method and preset. Usage: python bench/quality.py [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from knockout import Settings
from knockout.metrics import boundary_f, iou
from knockout.segment import segment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_composites import _find_portraits

DATA = _find_portraits()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--kinds", default="plain,studio,gradient")
    ap.add_argument("--configs", default="kmeans,threshold,classic-threshold,classic-kmeans")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--worst", type=int, default=0)
    args = ap.parse_args()
    if not (args.data / "manifest.csv").exists():
        print(f"no portraits at {args.data}; nothing to measure", file=sys.stderr)
        return 0
    rows = [
        r for r in csv.DictReader(open(args.data / "manifest.csv")) if r["background_kind"] in args.kinds.split(",")
    ]
    if args.limit:
        rows = rows[: args.limit]
    for name in args.configs.split(","):
        s = Settings(preset=name) if name.startswith("classic") else Settings(method=name)
        res: dict[str, list[tuple[float, float, float, str]]] = {}
        for r in rows:
            img = np.asarray(Image.open(args.data / "images" / f"{r['name']}.jpg").convert("RGB"))
            gt = np.asarray(Image.open(args.data / "masks" / f"{r['name']}.png")) >= 128
            t0 = time.perf_counter()
            m = segment(img, settings=s).mask
            dt = time.perf_counter() - t0
            res.setdefault(r["background_kind"], []).append((iou(m, gt), boundary_f(m, gt), dt, r["name"]))
        groups = {"plain+studio": res.get("plain", []) + res.get("studio", []), "gradient": res.get("gradient", [])}
        for g, v in groups.items():
            if not v:
                continue
            a = np.array([x[:3] for x in v])
            print(
                f"{name:18s} {g:13s} n={len(v):3d} IoU mean {a[:, 0].mean():.3f} p10 {np.percentile(a[:, 0], 10):.3f}  "
                f"BF {a[:, 1].mean():.3f}  {1000 * a[:, 2].mean():.0f} ms/img",
                flush=True,
            )
            if args.worst:
                print("   worst:", ", ".join(f"{x[3]}={x[0]:.2f}" for x in sorted(v)[: args.worst]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
