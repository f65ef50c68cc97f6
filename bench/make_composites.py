"""Build the known-alpha benchmark set: real people composited onto synthetic studio backdrops.

Each portrait of ``../shared/data/portraits`` (image + hand-drawn mask) becomes one composite:
the mask edge is softened slightly (Gaussian, sigma ``--soften`` px) into a known alpha, the
person's colours are extended outward past the mask (so the soft edge mixes person and new
backdrop, not the old background), and the result is laid over a synthetic backdrop of the
kind headshot studios use, cycling through five kinds:

- ``grey``: mid grey with a vignette;
- ``white``: near white with a slight falloff;
- ``black``: near black;
- ``colour``: a saturated colour (blue, green, red, teal, purple...), with a slight vignette;
- ``warm``: a warm gradient (amber to brown).

then gets sensor noise and JPEG compression. Everything is drawn from a generator seeded by
``--seed`` and the portrait's index, so a rerun writes the same files.

Output (derived from the portraits, so it is NEVER committed; bench/out/ is gitignored)::

    OUT/images/NAME.jpg    the composite
    OUT/alpha/NAME.png     the known alpha (8-bit grey)
    OUT/fg/NAME.png        the true foreground colours (for decontamination error)
    OUT/manifest.csv       name, backdrop kind, backdrop colour, contrast colour

Usage: python bench/make_composites.py [--out bench/out/composites] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

HERE = Path(__file__).resolve().parent


def _find_portraits() -> Path:
    """$KNOCKOUT_PORTRAITS, else the nearest ../shared/data/portraits above the repo (worktrees too)."""
    if os.environ.get("KNOCKOUT_PORTRAITS"):
        return Path(os.environ["KNOCKOUT_PORTRAITS"])
    for parent in HERE.parents:
        if (parent / "shared" / "data" / "portraits" / "manifest.csv").exists():
            return parent / "shared" / "data" / "portraits"
    return HERE.parents[1] / "shared" / "data" / "portraits"


DATA = _find_portraits()
KINDS = ("grey", "white", "black", "colour", "warm")
SATURATED = [(25, 70, 190), (30, 160, 70), (190, 30, 40), (0, 140, 150), (110, 40, 150), (220, 120, 0)]
# composite targets for the decontamination check: the one farthest from the backdrop is used
CONTRASTS = [(0, 255, 0), (255, 0, 255), (0, 0, 255), (255, 255, 0), (255, 0, 0), (0, 255, 255)]


def backdrop(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic studio backdrop, float32 (h, w, 3) in 0-255."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h * rng.uniform(0.35, 0.5), w * rng.uniform(0.4, 0.6)
    r = np.sqrt(((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2) / 0.7  # ~0 centre, ~1 corners
    if kind == "grey":
        base = np.full(3, rng.uniform(105, 150), np.float32) + rng.uniform(-4, 4, 3).astype(np.float32)
        shade = 1 - rng.uniform(0.25, 0.45) * r**2
    elif kind == "white":
        base = np.full(3, rng.uniform(238, 252), np.float32) + rng.uniform(-3, 3, 3).astype(np.float32)
        shade = 1 - rng.uniform(0.02, 0.08) * r**2
    elif kind == "black":
        base = np.full(3, rng.uniform(8, 28), np.float32) + rng.uniform(-3, 3, 3).astype(np.float32)
        shade = 1 - rng.uniform(0.0, 0.3) * r**2
    elif kind == "colour":
        base = np.array(SATURATED[rng.integers(len(SATURATED))], np.float32) * rng.uniform(0.85, 1.1)
        shade = 1 - rng.uniform(0.1, 0.3) * r**2
    elif kind == "warm":
        top = np.array([235, 170, 90], np.float32) * rng.uniform(0.85, 1.05)
        bottom = np.array([120, 65, 30], np.float32) * rng.uniform(0.8, 1.1)
        t = (yy / h)[..., None] * rng.uniform(0.7, 1.0) + (xx / w)[..., None] * rng.uniform(-0.15, 0.15)
        img = top * (1 - t) + bottom * t
        return np.clip(img, 0, 255).astype(np.float32)
    else:
        raise ValueError(f"unknown backdrop kind {kind!r}; use one of {KINDS}")
    return np.clip(base * shade[..., None], 0, 255).astype(np.float32)


def make_one(image: np.ndarray, mask: np.ndarray, kind: str, rng: np.random.Generator, *, soften: float):
    """Return (composite JPEG bytes, alpha uint8, foreground uint8, backdrop mean colour)."""
    h, w = mask.shape
    alpha = ndi.gaussian_filter(mask.astype(np.float32), soften)
    alpha[alpha < 1 / 255] = 0
    # true foreground: the person's own colours, extended outward from the mask by nearest neighbour
    idx = ndi.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    fg = image[idx[0], idx[1]].astype(np.float32)
    bg = backdrop(kind, h, w, rng)
    a = alpha[..., None]
    comp = a * fg + (1 - a) * bg
    comp += rng.normal(0, rng.uniform(1.0, 3.0), comp.shape).astype(np.float32)
    comp8 = np.clip(np.round(comp), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(comp8).save(buf, "JPEG", quality=int(rng.integers(82, 96)))
    alpha8 = np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8)
    return buf.getvalue(), alpha8, np.clip(np.round(fg), 0, 255).astype(np.uint8), bg.reshape(-1, 3).mean(axis=0)


def parse_hex(s: str) -> tuple[int, int, int]:
    """A manifest colour, ``#rrggbb``, as RGB 0-255."""
    s = s.lstrip("#")
    return (int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16))


def contrast_for(color: np.ndarray) -> tuple[int, int, int]:
    """The contrast colour farthest (RGB) from a backdrop colour."""
    d = [np.linalg.norm(np.array(c, np.float32) - color) for c in CONTRASTS]
    return CONTRASTS[int(np.argmax(d))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="portrait folder (images/, masks/, manifest.csv)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "composites")
    ap.add_argument("--limit", type=int, default=0, help="only the first N portraits (0 = all)")
    ap.add_argument("--soften", type=float, default=0.8, help="Gaussian sigma of the edge, in pixels")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    if not (args.data / "manifest.csv").exists():
        print(f"no portraits at {args.data}; nothing to build", file=sys.stderr)
        return 0
    with open(args.data / "manifest.csv", newline="") as fh:
        names = sorted(r["name"] for r in csv.DictReader(fh))
    if args.limit:
        names = names[: args.limit]
    for sub in ("images", "alpha", "fg"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, name in enumerate(names):
        rng = np.random.default_rng([args.seed, i])
        kind = KINDS[i % len(KINDS)]
        image = np.asarray(Image.open(args.data / "images" / f"{name}.jpg").convert("RGB"))
        mask = np.asarray(Image.open(args.data / "masks" / f"{name}.png").convert("L")) >= 128
        comp, alpha, fg, bgc = make_one(image, mask, kind, rng, soften=args.soften)
        (args.out / "images" / f"{name}.jpg").write_bytes(comp)
        Image.fromarray(alpha).save(args.out / "alpha" / f"{name}.png")
        Image.fromarray(fg).save(args.out / "fg" / f"{name}.png")
        c = contrast_for(bgc)
        rows.append(
            [name, kind, "#{:02x}{:02x}{:02x}".format(*np.round(bgc).astype(int)), "#{:02x}{:02x}{:02x}".format(*c)]
        )
    with open(args.out / "manifest.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["name", "backdrop", "backdrop_color", "contrast_color"])
        wr.writerows(rows)
    print(f"{len(rows)} composites in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
