"""Quality benchmark on ../shared/data/portraits (real portraits, hand-drawn masks).

For each method and preset, per group of background kinds (plain+studio, gradient), prints the
mean / 10th-percentile / minimum IoU of the output's alpha at 0.5, the boundary F-score (2 px),
how well the confidence finds the failures (AUROC against IoU < 0.90; at ``review_below``, the
shares of failed and of good, IoU >= 0.95, cut-outs flagged; over all the groups too) and the
time per image (segmentation and matte, in this process). Usage:

    python bench/quality.py [--limit N] [--configs threshold,kmeans] [--set face_prior=false] [--worst 10]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from knockout import Settings, cut_out
from knockout.metrics import boundary_f, iou

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_composites import _find_portraits

DATA = _find_portraits()
SIGNALS = ("unstable_px", "mixed", "border", "face_kept", "crown_kept")  # the confidence's, in --csv
GROUPS = {"plain+studio": ("plain", "studio"), "gradient": ("gradient",)}


def _auroc(bad: np.ndarray, conf: np.ndarray) -> float:
    if bad.all() or not bad.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(bad, -conf))


def _confidence_figures(v: list[tuple], review_below: float) -> str:
    a = np.array([(x[0], x[3]) for x in v if x[3] is not None])
    if not len(a):
        return ""
    bad, good, flagged = a[:, 0] < 0.90, a[:, 0] >= 0.95, a[:, 1] < review_below
    share = lambda m: 100 * flagged[m].mean() if m.any() else float("nan")  # noqa: E731
    return (
        f"  confidence AUROC {_auroc(bad, a[:, 1]):.3f}; at {review_below:g}: "
        f"{share(bad):.0f} % of {bad.sum()} failed flagged, {share(good):.0f} % of {good.sum()} good flagged"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--kinds", default="plain,studio,gradient")
    ap.add_argument("--configs", default="threshold,kmeans,classic-threshold,classic-kmeans")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--worst", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for every config")
    ap.add_argument("--csv", type=Path, help="write per-image figures here")
    args = ap.parse_args()
    if not (args.data / "manifest.csv").exists():
        print(f"no portraits at {args.data}; nothing to measure", file=sys.stderr)
        return 0
    rows = [
        r for r in csv.DictReader(open(args.data / "manifest.csv")) if r["background_kind"] in args.kinds.split(",")
    ]
    if args.limit:
        rows = rows[: args.limit]
    extra = dict(kv.split("=", 1) for kv in args.set)
    per_image = []
    for name in args.configs.split(","):
        s = Settings.from_mapping({"preset": name} if name.startswith("classic") else {"method": name, **extra})
        res: dict[str, list[tuple]] = {}
        for r in rows:
            img = np.asarray(Image.open(args.data / "images" / f"{r['name']}.jpg").convert("RGB"))
            gt = np.asarray(Image.open(args.data / "masks" / f"{r['name']}.png")) >= 128
            t0 = time.perf_counter()
            c = cut_out(img, settings=s)
            dt = time.perf_counter() - t0
            a = c.alpha >= 128
            judged = c.segmentation.assessment
            conf = None if judged is None else judged.confidence
            res.setdefault(r["background_kind"], []).append((iou(a, gt), boundary_f(a, gt), dt, conf, r["name"]))
            reasons = " ".join(judged.reasons) if judged else ""
            sig = judged.signals if judged else {}
            per_image.append(
                {"config": name, "image": r["name"], "kind": r["background_kind"], "iou": iou(a, gt),
                 "confidence": conf, "reasons": reasons, "ms": 1000 * dt,
                 "face": c.segmentation.face is not None, **{k: sig.get(k, "") for k in SIGNALS}}
            )  # fmt: skip
        groups = {g: [x for k in kinds for x in res.get(k, [])] for g, kinds in GROUPS.items()}
        groups["all"] = groups["plain+studio"] + groups["gradient"]
        for g, v in groups.items():
            if not v:
                continue
            a = np.array([x[:3] for x in v])
            print(
                f"{name:18s} {g:13s} n={len(v):3d} IoU mean {a[:, 0].mean():.3f} p10 {np.percentile(a[:, 0], 10):.3f} "
                f"min {a[:, 0].min():.3f}  BF {a[:, 1].mean():.3f}  {1000 * np.median(a[:, 2]):.0f} ms/img (median)"
                + _confidence_figures(v, s.review_below),
                flush=True,
            )
            if args.worst and g != "all":
                print("   worst:", ", ".join(f"{x[4]}={x[0]:.2f}" for x in sorted(v)[: args.worst]))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(per_image[0]))
            wr.writeheader()
            wr.writerows(per_image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
