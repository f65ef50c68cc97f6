"""How much of the composites' "true foreground" at the edge is backdrop-coloured (issue 12).

The composites (bench/make_composites.py) take the true foreground from the portrait inside its
hand-drawn mask, extended outward. Where the mask was drawn through the photo's own soft edge,
that colour is partly the old photo's background. Per true soft pixel (0.05 < alpha < 0.95) this
measures the share of its true foreground that lies along the line from the subject colour 3 px
further in to the local new backdrop, and compares the matte's alpha with the true alpha and with
the true alpha times (1 - that share), the alpha of the subject colour from further in. Usage:

    python bench/make_composites.py     # once
    python bench/edge_truth.py [--limit N] [--step K]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from knockout import Settings
from knockout.matte import matte
from knockout.segment import segment

HERE = Path(__file__).resolve().parent
_DEEP = 3  # px inside the true solid subject where the subject colour is taken
_B_WINDOW = 15  # px: the box over which the local new backdrop is averaged


def _shares(img: np.ndarray, ta: np.ndarray, fg: np.ndarray, alpha: np.ndarray) -> dict | None:
    t = ta / 255.0
    band = (t > 0.05) & (t < 0.95)
    deep = ndi.binary_erosion(t >= 0.999, iterations=_DEEP)
    if not deep.any() or not band.any():
        return None
    _, (iy, ix) = ndi.distance_transform_edt(~deep, return_indices=True)
    ys, xs = np.nonzero(band)
    f = fg[ys, xs].astype(float)
    fd = fg[iy[ys, xs], ix[ys, xs]].astype(float)
    clear = (t <= 0.001).astype(np.float32)
    den = np.maximum(ndi.uniform_filter(clear, _B_WINDOW), 1e-6)
    b = np.stack([ndi.uniform_filter(img[..., c] * clear, _B_WINDOW) / den for c in range(3)], axis=-1)[ys, xs]
    d = b - fd
    share = np.clip(((f - fd) * d).sum(1) / np.maximum((d * d).sum(1), 1e-6), 0, 1)
    tt, aa = t[ys, xs], alpha[ys, xs] / 255.0
    return {
        "w": tt.sum(),
        "share": (tt * share).sum(),
        "n": len(tt),
        "err_true": np.abs(aa - tt).sum(),
        "err_phys": np.abs(aa - tt * (1 - share)).sum(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE / "out" / "composites")
    ap.add_argument("--limit", type=int, default=0, help="first N composites (0 = all)")
    ap.add_argument("--step", type=int, default=1, help="every K-th composite")
    args = ap.parse_args(argv)
    if not (args.data / "manifest.csv").exists():
        print(f"no composites at {args.data}; run bench/make_composites.py first", file=sys.stderr)
        return 0
    with open(args.data / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:: args.step]
    if args.limit:
        rows = rows[: args.limit]
    settings = Settings()
    acc: dict[str, dict] = {}
    for r in rows:
        img = np.asarray(Image.open(args.data / "images" / f"{r['name']}.jpg").convert("RGB"))
        ta = np.asarray(Image.open(args.data / "alpha" / f"{r['name']}.png"))
        fg = np.asarray(Image.open(args.data / "fg" / f"{r['name']}.png").convert("RGB"))
        alpha, _ = matte(img, segment(img, settings=settings), settings=settings)
        got = _shares(img, ta, fg, alpha)
        if got is not None:
            k = acc.setdefault(r["backdrop"], dict.fromkeys(got, 0.0))
            for key, v in got.items():
                k[key] += v
    head = "share of the true F that is backdrop-coloured | our alpha vs true alpha | vs true alpha x (1 - share)"
    print(f"| backdrop | {head} |")
    print("|---|---:|---:|---:|")
    for kind, k in sorted(acc.items()):
        print(f"| {kind} | {k['share'] / k['w']:.3f} | {k['err_true'] / k['n']:.3f} | {k['err_phys'] / k['n']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
