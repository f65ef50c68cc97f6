"""Draw examples/headshot.jpg: a synthetic studio headshot that knockout may ship.

The portraits knockout is evaluated on may not be redistributed, so the sample picture in
the README is drawn here from nothing but code: a head-and-shoulders figure with flyaway hair
on studio backdrops, rendered at 3x and reduced (so edges are
naturally soft), with sensor noise and JPEG compression. Deterministic.

Writes headshot.jpg (grey backdrop), headshot-white.jpg, headshot-blue.jpg and
headshot-warm.jpg (a warm gradient): the same person on four studio backdrops.

Usage: python examples/make_headshot.py [-o examples/]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 600, 800
SS = 3  # supersampling


def _layer() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("L", (W * SS, H * SS), 0)
    return im, ImageDraw.Draw(im)


STRAND_COLOR = (67, 44, 30)  # the flyaway strands' drawn colour (hair_col * 1.15, rounded)


def _paint(canvas: np.ndarray, coverage: Image.Image, color, shade: np.ndarray | None = None, clear=None) -> None:
    a = np.asarray(coverage, np.float32)[..., None] / 255
    if clear is not None:  # what of the backdrop still shows, for the true alpha
        clear *= 1 - a[..., 0]
    c = np.asarray(color, np.float32)
    col = c if shade is None else c * shade[..., None]
    canvas *= 1 - a
    canvas += a * col


def _s(*xy: float) -> list[float]:
    return [v * SS for v in xy]


BACKDROPS = ("grey", "white", "blue", "warm")


def _backdrop(kind: str, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    h, w = yy.shape
    r = np.hypot((yy - 0.38 * h) / h, (xx - 0.5 * w) / w)
    canvas = np.empty((h, w, 3), np.float32)
    if kind == "grey":  # mid grey, brighter behind the head, vignette to the corners
        canvas[:] = np.array([118, 122, 128], np.float32)
        canvas *= (1.18 - 0.75 * r**2)[..., None]
    elif kind == "white":  # ID-photo white with a slight falloff
        canvas[:] = np.array([246, 246, 244], np.float32)
        canvas *= (1.02 - 0.12 * r**2)[..., None]
    elif kind == "blue":  # saturated studio blue with a vignette
        canvas[:] = np.array([40, 95, 185], np.float32)
        canvas *= (1.1 - 0.5 * r**2)[..., None]
    elif kind == "warm":  # warm amber-to-brown gradient
        t = (yy / h)[..., None]
        canvas[:] = np.array([226, 168, 96], np.float32) * (1 - t) + np.array([112, 62, 34], np.float32) * t
    else:
        raise ValueError(f"unknown backdrop {kind!r}; use one of {', '.join(BACKDROPS)}")
    return canvas


def draw(seed: int = 7, backdrop: str = "grey", *, truth: bool = False):
    """The headshot, uint8 (H, W, 3); with ``truth``, also its true alpha (float32 (H, W), 0-1)
    and where only the flyaway strands cover the backdrop (bool (H, W): their colour is
    ``STRAND_COLOR`` there)."""
    rng = np.random.default_rng(seed)
    h, w = H * SS, W * SS
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    canvas = _backdrop(backdrop, yy, xx)
    clear = np.ones((h, w), np.float32)  # backdrop left visible by the figure

    # torso: dark suit with rounded shoulders
    suit, d = _layer()
    d.rounded_rectangle(_s(30, 545, 570, 900), radius=120 * SS, fill=255)
    d.polygon(_s(170, 525, 430, 525, 520, 595, 80, 595), fill=255)
    shade = 0.75 + 0.35 * np.exp(-(((xx - 0.45 * w) / (0.3 * w)) ** 2))
    _paint(canvas, suit, (38, 44, 62), shade, clear=clear)
    # shirt and collar
    shirt, d = _layer()
    d.polygon(_s(252, 555, 348, 555, 300, 700), fill=255)
    _paint(canvas, shirt, (236, 236, 232), clear=clear)
    tie, d = _layer()
    d.polygon(_s(291, 585, 309, 585, 316, 690, 300, 715, 284, 690), fill=255)
    _paint(canvas, tie, (120, 28, 36), clear=clear)
    # neck
    neck, d = _layer()
    d.rounded_rectangle(_s(262, 400, 338, 580), radius=30 * SS, fill=255)
    d.polygon(_s(256, 560, 344, 560, 300, 610), fill=255)
    nshade = 0.8 + 0.2 * np.exp(-(((xx - 0.5 * w) / (0.06 * w)) ** 2))
    _paint(canvas, neck, (196, 146, 118), nshade, clear=clear)
    # ears and head
    skin = np.array([222, 172, 142], np.float32)
    head, d = _layer()
    d.ellipse(_s(188, 290, 218, 355), fill=255)
    d.ellipse(_s(382, 290, 412, 355), fill=255)
    d.ellipse(_s(198, 170, 402, 455), fill=255)
    light = np.hypot((yy - 0.36 * h) / (0.2 * h), (xx - 0.45 * w) / (0.2 * w))
    _paint(canvas, head, skin, 1.08 - 0.18 * np.clip(light, 0, 1.6) ** 2, clear=clear)
    # face: brows, eyes, nose shadow, mouth
    face, d = _layer()
    d.ellipse(_s(245, 300, 283, 316), fill=255)
    d.ellipse(_s(317, 300, 355, 316), fill=255)
    _paint(canvas, face, (240, 238, 235), clear=clear)
    iris, d = _layer()
    d.ellipse(_s(256, 300, 272, 316), fill=255)
    d.ellipse(_s(328, 300, 344, 316), fill=255)
    _paint(canvas, iris, (70, 50, 35), clear=clear)
    brows, d = _layer()
    d.line(_s(240, 288, 262, 281, 288, 287), fill=255, width=6 * SS)
    d.line(_s(312, 287, 338, 281, 360, 288), fill=255, width=6 * SS)
    _paint(canvas, brows.filter(ImageFilter.GaussianBlur(SS)), (60, 40, 28), clear=clear)
    nose, d = _layer()
    d.line(_s(304, 318, 311, 368, 297, 375), fill=255, width=4 * SS)
    _paint(canvas, nose.filter(ImageFilter.GaussianBlur(3 * SS)), (170, 120, 98), clear=clear)
    mouth, d = _layer()
    d.chord(_s(270, 394, 330, 420), 0, 180, fill=255)
    _paint(canvas, mouth.filter(ImageFilter.GaussianBlur(SS)), (168, 84, 80), clear=clear)

    # hair: a cap, then many strands, some flying away over the backdrop
    hair_col = np.array([58, 38, 26], np.float32)
    cap, d = _layer()
    d.chord(_s(193, 150, 407, 380), 180, 360, fill=255)
    d.ellipse(_s(198, 150, 402, 280), fill=255)
    d.polygon(_s(196, 255, 208, 330, 232, 270), fill=255)
    d.polygon(_s(404, 255, 392, 330, 368, 270), fill=255)
    _paint(canvas, cap, hair_col, 0.9 + 0.25 * np.exp(-(((yy - 0.23 * h) / (0.05 * h)) ** 2)), clear=clear)
    strands, d = _layer()
    for _ in range(420):
        t = rng.uniform(np.pi * 1.02, np.pi * 1.98)
        cx, cy, rx, ry = 300, 240, 104, 88
        x0, y0 = cx + rx * np.cos(t), cy + ry * np.sin(t)
        out = rng.uniform(4, 22) if rng.random() < 0.85 else rng.uniform(25, 60)
        bend = rng.normal(0, 10)
        pts = []
        for k in np.linspace(0, 1, 12):
            rad = k * out
            x = x0 + np.cos(t) * rad + np.sin(t) * bend * k * k
            y = y0 + np.sin(t) * rad - np.cos(t) * bend * k * k
            pts += [x * SS, y * SS]
        d.line(pts, fill=int(rng.uniform(120, 255)), width=int(rng.integers(1, 3)))
    other = 1 - clear  # coverage of everything but the strands
    _paint(canvas, strands, hair_col * 1.15, clear=clear)

    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).resize((W, H), Image.Resampling.LANCZOS)
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, 2.0, (H, W, 3))
    out = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    if not truth:
        return out

    def small(cov: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(Image.fromarray(cov).resize((W, H), Image.Resampling.LANCZOS)), 0, 1)

    return out, small(1 - clear), small(other) < 0.002


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--outdir", type=Path, default=Path(__file__).parent)
    args = ap.parse_args(argv)
    for kind in BACKDROPS:
        out = args.outdir / ("headshot.jpg" if kind == "grey" else f"headshot-{kind}.jpg")
        Image.fromarray(draw(backdrop=kind)).save(out, quality=90)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
