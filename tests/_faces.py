"""Synthetic headshots with a real face in them (for the face prior), and the failure modes of issue 11.

The face is the astronaut photo that scikit-image ships (``skimage.data.astronaut()``, public
domain, NASA): a real face is what a face detector needs; the rest is drawn.
"""

from __future__ import annotations

import numpy as np


def face_headshot(
    *,
    backdrop=(120, 124, 130),
    shirt=(30, 60, 140),
    center: float = 0.5,
    shoulders: float = 1.6,
    cap=None,
    spot=None,
    h: int = 400,
    w: int = 300,
    noise: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A head with a real face, a neck and shoulders on a backdrop: ((h, w, 3) uint8, (h, w) bool mask).

    ``center`` is the head's horizontal position (0-1), ``shoulders`` their half-width in face
    widths; ``cap`` an RGB colour for a cap that fills the frame's whole top edge above the head;
    ``spot`` an RGB colour for a pool of light on the backdrop behind the head, fading to
    ``backdrop`` towards the frame's edges (a spotlit studio backdrop).
    """
    from skimage.data import astronaut

    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    img[:] = backdrop
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = center * w, 0.36 * h
    if spot is not None:
        pool = np.exp(-(((xx - cx) / (0.45 * w)) ** 2 + ((yy - cy) / (0.45 * h)) ** 2))[..., None]
        img[:] = np.asarray(backdrop, np.float32) + pool * (np.asarray(spot, np.float32) - backdrop)
    face = astronaut()[40:200, 165:285].astype(np.float32)  # 160 x 120: forehead to chin
    fh, fw = face.shape[:2]
    y0, x0 = int(cy - fh / 2), int(cx - fw / 2)
    head = ((xx - cx) / (fw / 2)) ** 2 + ((yy - cy) / (fh / 2)) ** 2 <= 1
    neck = (np.abs(xx - cx) <= 0.18 * fw) & (yy >= cy) & (yy <= cy + 0.75 * fh)
    body = (yy >= cy + 0.7 * fh) & (np.abs(xx - cx) <= shoulders * fw)
    mask = head | neck | body
    img[neck] = (200, 150, 120)
    img[body] = shirt
    patch = np.zeros((h, w, 3), np.float32)
    ys, xs = slice(max(0, y0), min(h, y0 + fh)), slice(max(0, x0), min(w, x0 + fw))
    patch[ys, xs] = face[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    img[head] = patch[head]
    if cap is not None:
        crown = (yy <= cy - 0.3 * fh) & (np.abs(xx - cx) <= 0.8 * fw) | (yy <= 0.06 * h)
        img[crown] = cap
        mask |= crown
    img += rng.normal(0, noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), mask
