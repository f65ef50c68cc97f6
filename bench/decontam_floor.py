"""How low the edge colour ratio of bench/edges.py can go, given the truth.

bench/edges.py scores decontamination as the edge-band colour error of the cut-out composited
onto a contrasting colour, with un-mixing over without it (same alpha). This script puts the
truth in place of knockout's estimates, to show what the ratio is at best:

- ``true alpha``: un-mixing ``F = (I - (1 - a) B) / a`` with the composite's true alpha and its
  true backdrop (regenerated from the seeded generator, pixel for pixel). What remains is the
  composite's own sensor noise and JPEG error, which no un-mixing can take out;
- ``projection``: the alpha estimated from each pixel's colour, projected between the true
  foreground colour and the true backdrop, ``a = ((I - B) . (F - B)) / |F - B|^2``: the best any
  per-pixel colour model can do, since both its colours are exact here.

Usage (after bench/make_composites.py, with the same ``--seed``)::

    python bench/decontam_floor.py [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import make_composites as mc  # bench/, next to this script: the generator itself, to rebuild each backdrop
import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from knockout.metrics import edge_color_error

HERE = Path(__file__).resolve().parent


def _unmixed(img8: np.ndarray, alpha8: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Exact un-mixing where the alpha is soft, the image elsewhere (uint8 (H, W, 3))."""
    a = alpha8.astype(np.float32)[..., None] / 255
    un = (img8.astype(np.float32) - (1 - a) * bg) / np.maximum(a, 1e-6)
    mix = (alpha8 > 0) & (alpha8 < 255)
    return np.where(mix[..., None], np.rint(np.clip(un, 0, 255)), img8).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE / "out" / "composites")
    ap.add_argument("--portraits", type=Path, default=mc.DATA)
    ap.add_argument("--seed", type=int, default=5, help="the seed bench/make_composites.py was run with")
    ap.add_argument("--limit", type=int, default=0, help="first N composites (0 = all)")
    args = ap.parse_args(argv)
    if not (args.data / "manifest.csv").exists() or not (args.portraits / "manifest.csv").exists():
        print(f"no composites at {args.data} (or no portraits); run bench/make_composites.py first", file=sys.stderr)
        return 0
    with open(args.data / "manifest.csv", newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    with open(args.portraits / "manifest.csv", newline="") as fh:
        names = sorted(r["name"] for r in csv.DictReader(fh))  # the generator's order
    res: dict[str, list[tuple[float, ...]]] = {}
    for i, name in enumerate(names[: args.limit or None]):
        r = rows[name]
        kind = mc.KINDS[i % len(mc.KINDS)]
        if kind != r["backdrop"]:
            print(
                f"{name}: backdrop {r['backdrop']} in the manifest, {kind} by the seed; wrong --seed?", file=sys.stderr
            )
            return 2
        img8 = np.asarray(Image.open(args.data / "images" / f"{name}.jpg").convert("RGB"))
        ta8 = np.asarray(Image.open(args.data / "alpha" / f"{name}.png"))
        fg8 = np.asarray(Image.open(args.data / "fg" / f"{name}.png").convert("RGB"))
        bg = mc.backdrop(kind, *ta8.shape, np.random.default_rng([args.seed, i]))  # its first draws
        c = mc.parse_hex(r["contrast_color"])
        fg, img = fg8.astype(np.float32), img8.astype(np.float32)
        diff = fg - bg
        proj = ((img - bg) * diff).sum(axis=2) / np.maximum((diff * diff).sum(axis=2), 1e-6)
        soft = (ta8 > 0) & (ta8 < 255)
        band = ndi.binary_dilation(soft, iterations=2)
        pa8 = np.where(band, np.rint(np.clip(proj, 0, 1) * 255), ta8).astype(np.uint8)
        row = []
        for a8 in (ta8, pa8):
            row += [
                edge_color_error(_unmixed(img8, a8, bg), a8, fg8, ta8, background=c),
                edge_color_error(img8, a8, fg8, ta8, background=c),
            ]
        row.append(float(np.abs(pa8[soft].astype(np.float32) - ta8[soft]).mean() / 255))
        res.setdefault(kind, []).append(tuple(row))
    res["all"] = [x for v in res.values() for x in v]
    print("backdrop   n    true alpha: un-mixed / raw = ratio    projection: un-mixed / raw = ratio  (its alpha error)")
    for kind, v in res.items():
        m = np.array(v).mean(axis=0)
        print(
            f"{kind:8s} {len(v):3d}    {m[0]:5.2f} / {m[1]:5.2f} = {m[0] / m[1]:.3f}"
            f"             {m[2]:5.2f} / {m[3]:5.2f} = {m[2] / m[3]:.3f}   ({m[4]:.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
