"""Why ``isal`` is a dependency: knockout's PNG writer against Pillow's, on a 12-megapixel RGBA cut-out.

``python bench/png_writer.py [--repeat 5]``: a synthetic photo-like 3000x4000 RGBA array (gradients
with grain, a transparent band), encoded alternately by ``knockout._png.encode_png(level=1)`` and
Pillow's ``compress_level=1``, in one process; prints the medians, sizes and their ratio.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image

from knockout import _png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    h, w = 4000, 3000
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([yy * 255 // h, xx * 255 // w, (yy + xx) * 255 // (h + w)], -1).astype(np.float32)
    rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    alpha = np.full((h, w), 255, np.uint8)
    alpha[:, :800] = 0
    px = np.dstack([rgb, alpha])
    ours, pillow = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        a = _png.encode_png(px, level=1)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        buf = io.BytesIO()
        Image.fromarray(px).save(buf, "PNG", compress_level=1)
        pillow.append(time.perf_counter() - t)
    mo, mp = statistics.median(ours), statistics.median(pillow)
    load = open("/proc/loadavg").read().split()[:3]
    print(f"knockout._png level 1: median {mo:.2f} s, {len(a) / 1e6:.1f} MB")
    print(f"Pillow compress_level=1: median {mp:.2f} s, {len(buf.getvalue()) / 1e6:.1f} MB")
    print(f"ratio {mp / mo:.1f}x ({args.repeat} alternated runs each; load average {' '.join(load)})")


if __name__ == "__main__":
    main()
