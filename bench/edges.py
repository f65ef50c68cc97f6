"""Edge-quality benchmark on the known-alpha composites (bench/make_composites.py).

For each method and preset, prints mean and 10th-percentile IoU, mean absolute alpha error
(whole image), boundary F-score (2 px), and the edge-band colour error of the cut-out
composited onto a contrasting colour with and without decontamination (same alpha), with a
per-backdrop breakdown. Usage:

    python bench/make_composites.py            # once: writes bench/out/composites (gitignored)
    python bench/edges.py [--limit N] [--configs kmeans,threshold,classic-threshold]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from make_composites import parse_hex  # bench/, next to this script
from PIL import Image

from knockout import Settings
from knockout.matte import matte
from knockout.metrics import alpha_error, boundary_f, edge_color_error, iou
from knockout.segment import segment

HERE = Path(__file__).resolve().parent


def settings_for(name: str, **extra) -> Settings:
    return Settings(preset=name, **extra) if name.startswith("classic") else Settings(method=name, **extra)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE / "out" / "composites")
    ap.add_argument("--configs", default="kmeans,threshold,classic-threshold,classic-kmeans")
    ap.add_argument("--limit", type=int, default=0, help="first N composites (0 = all)")
    ap.add_argument("--preset-limit", type=int, default=60, help="composites for the slow presets (0 = all)")
    ap.add_argument("--feather", type=float, default=None, help="override the feather setting")
    ap.add_argument("--worst", type=int, default=5)
    ap.add_argument("--csv", type=Path, help="write per-image figures here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for every config")
    args = ap.parse_args(argv)
    if not (args.data / "manifest.csv").exists():
        print(f"no composites at {args.data}; run bench/make_composites.py first", file=sys.stderr)
        return 0
    with open(args.data / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if args.limit:
        rows = rows[: args.limit]
    out_rows = []
    for name in args.configs.split(","):
        extra = {} if args.feather is None else {"feather": args.feather}
        extra.update(kv.split("=", 1) for kv in args.set)
        s_on = settings_for(name, **extra)
        s_off = s_on.replace(decontaminate=False)
        todo = rows
        if name.startswith("classic") and args.preset_limit:
            todo = rows[: args.preset_limit]
        res = []
        for r in todo:
            img = np.asarray(Image.open(args.data / "images" / f"{r['name']}.jpg").convert("RGB"))
            ta = np.asarray(Image.open(args.data / "alpha" / f"{r['name']}.png"))
            fg = np.asarray(Image.open(args.data / "fg" / f"{r['name']}.png").convert("RGB"))
            t0 = time.perf_counter()
            seg = segment(img, settings=s_on)
            alpha, colors = matte(img, seg, settings=s_on)
            dt = time.perf_counter() - t0
            _, raw = matte(img, seg, settings=s_off)
            c = parse_hex(r["contrast_color"])
            res.append(
                {
                    "config": name,
                    "name": r["name"],
                    "backdrop": r["backdrop"],
                    "iou": iou(alpha, ta),
                    "iou_hard": iou(seg.mask, ta),
                    "mae": alpha_error(alpha, ta),
                    "bf": boundary_f(alpha, ta),
                    "col_on": edge_color_error(colors, alpha, fg, ta, background=c),
                    "col_off": edge_color_error(raw, alpha, fg, ta, background=c),
                    "ms": dt * 1000,
                }
            )
        out_rows += res
        _report(name, res, args.worst)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(out_rows[0]))
            wr.writeheader()
            wr.writerows(out_rows)
    return 0


def _line(label: str, res: list[dict]) -> str:
    a = {k: np.array([r[k] for r in res]) for k in ("iou", "iou_hard", "mae", "bf", "col_on", "col_off", "ms")}
    return (
        f"{label:26s} n={len(res):3d} IoU mean {a['iou'].mean():.4f} p10 {np.percentile(a['iou'], 10):.4f} "
        f"(hard mask {a['iou_hard'].mean():.4f})  alpha MAE {100 * a['mae'].mean():.2f}%  BF {a['bf'].mean():.3f}  "
        f"edge colour err {a['col_on'].mean():.1f} vs {a['col_off'].mean():.1f} undecontaminated "
        f"(ratio {a['col_on'].mean() / max(1e-9, a['col_off'].mean()):.2f})  {a['ms'].mean():.0f} ms/img"
    )


def _report(name: str, res: list[dict], worst: int) -> None:
    print(_line(name, res), flush=True)
    for kind in sorted({r["backdrop"] for r in res}):
        print(_line(f"  {kind}", [r for r in res if r["backdrop"] == kind]), flush=True)
    if worst:
        bad = sorted(res, key=lambda r: r["iou"])[:worst]
        print("   worst:", ", ".join(f"{r['name']}({r['backdrop']})={r['iou']:.3f}" for r in bad), flush=True)


if __name__ == "__main__":
    sys.exit(main())
