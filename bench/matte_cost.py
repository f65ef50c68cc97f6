"""Cost of the matte (with its foreground colours) against another revision's, in one run.

Loads ``src/knockout/matte.py`` as it is at ``--base`` (default ``main``) beside the working
tree's, then times both on the same images and segmentations, alternating (base, new, base,
new...) so load changes on this shared machine hit both alike; prints the median per image of
each, their ratio, and the per-image ratios' median. The images are the shipped examples
(600x800), and the known-alpha composites when bench/make_composites.py has been run.

Usage: python bench/matte_cost.py [--base main] [--repeat 5] [--limit 20]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from knockout import Settings
from knockout import matte as new_matte
from knockout.segment import segment

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def load_base(rev: str):
    """``knockout.matte`` as it is at git revision ``rev``, imported as ``knockout._matte_base``."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/knockout/matte.py"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "_matte_base.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("knockout._matte_base", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="main", help="git revision whose matte is the baseline")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--limit", type=int, default=16, help="composites to time (0 = none)")
    args = ap.parse_args(argv)
    base = load_base(args.base)
    paths = sorted((ROOT / "examples").glob("headshot*.jpg"))
    comp = HERE / "out" / "composites"
    if args.limit and (comp / "manifest.csv").exists():
        with open(comp / "manifest.csv", newline="") as fh:
            paths += [comp / "images" / f"{r['name']}.jpg" for r in list(csv.DictReader(fh))[: args.limit]]
    s = Settings()
    cases = []
    for p in paths:
        img = np.asarray(Image.open(p).convert("RGB"))
        cases.append((img, segment(img, settings=s)))
    t_base, t_new = [], []
    for _ in range(args.repeat):
        for img, seg in cases:
            for fn, out in ((base.matte, t_base), (new_matte.matte, t_new)):
                t0 = time.perf_counter()
                fn(img, seg, settings=s)
                out.append(time.perf_counter() - t0)
    b, n = np.array(t_base).reshape(args.repeat, -1), np.array(t_new).reshape(args.repeat, -1)
    mb, mn = np.median(b, axis=0), np.median(n, axis=0)
    print(
        f"{len(cases)} images (600x800 and the like), {args.repeat} alternating rounds: matte at {args.base} "
        f"{1000 * mb.mean():.0f} ms/img, now (matte + foreground) {1000 * mn.mean():.0f} ms/img; "
        f"ratio of means {mn.mean() / mb.mean():.3f}, median per-image ratio {np.median(mn / mb):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
