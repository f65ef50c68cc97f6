"""Would knockout._kmeans hold the quality of scikit-learn's KMeans in the segmentation? (issue 13)

Runs ``segment`` on ../shared/data/portraits with each method twice per image, once as it is
(scikit-learn's ``KMeans``) and once with ``sklearn.cluster.KMeans`` swapped for
``knockout._kmeans.KMeans`` (segment.py imports the class when it clusters, so the swap reaches
``_backdrop_seeds`` and ``_kmeans_cost``), in alternating order, and prints mean / p10 IoU and
the median time per image of each. Usage: python bench/kmeans_swap.py [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import sklearn.cluster
from PIL import Image

from knockout import Settings
from knockout._kmeans import KMeans as NumpyKMeans
from knockout.metrics import iou
from knockout.segment import segment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_composites import _find_portraits

SKLEARN_KMEANS = sklearn.cluster.KMeans


@contextlib.contextmanager
def _kmeans(which: str) -> Iterator[None]:
    sklearn.cluster.KMeans = NumpyKMeans if which == "numpy" else SKLEARN_KMEANS
    try:
        yield
    finally:
        sklearn.cluster.KMeans = SKLEARN_KMEANS


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=_find_portraits())
    ap.add_argument("--methods", default="threshold,kmeans")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    if not (args.data / "manifest.csv").exists():
        print(f"no portraits at {args.data}; nothing to measure", file=sys.stderr)
        return 0
    with open(args.data / "manifest.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["background_kind"] in ("plain", "studio", "gradient")]
    rows = rows[: args.limit or None]
    variants = ("sklearn", "numpy")
    # (method, variant, group) -> [(iou, seconds)]
    out: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    identical = dict.fromkeys(args.methods.split(","), 0)
    for n, r in enumerate(rows):
        img = np.asarray(Image.open(args.data / "images" / f"{r['name']}.jpg").convert("RGB"))
        gt = np.asarray(Image.open(args.data / "masks" / f"{r['name']}.png")) >= 128
        group = "gradient" if r["background_kind"] == "gradient" else "plain+studio"
        for method in identical:
            s = Settings(method=method)
            masks = {}
            for v in variants if n % 2 == 0 else variants[::-1]:
                with _kmeans(v):
                    t0 = time.perf_counter()
                    masks[v] = segment(img, settings=s).mask
                    dt = time.perf_counter() - t0
                out.setdefault((method, v, group), []).append((iou(masks[v], gt), dt))
            identical[method] += bool(np.array_equal(masks["sklearn"], masks["numpy"]))
    print(f"{len(rows)} portraits; masks identical with both KMeans: {identical}")
    for (method, v, group), vals in sorted(out.items()):
        a = np.array(vals)
        print(
            f"{method:10s} {v:8s} {group:13s} n={len(a):3d} IoU mean {a[:, 0].mean():.4f} "
            f"p10 {np.percentile(a[:, 0], 10):.4f}  median {1000 * np.median(a[:, 1]):.0f} ms/img"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
