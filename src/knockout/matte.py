"""Soft alpha along the subject's edge, and backdrop-colour decontamination."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .segment import Segmentation
from .settings import Settings

__all__ = ["matte"]


def matte(image: np.ndarray, seg: Segmentation, *, settings: Settings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Turn a hard segmentation into an alpha matte and decontaminated colours.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The sRGB image that was segmented.
    seg : Segmentation
        The result of :func:`knockout.segment` on ``image``.
    settings : Settings, optional
        ``feather`` (band width in pixels, 0 = hard edge) and ``decontaminate``.

    Returns
    -------
    alpha : ndarray of uint8, shape (H, W)
        0 on the backdrop, 255 on the subject, soft in between.
    colors : ndarray of uint8, shape (H, W, 3)
        The subject's colours with the backdrop un-mixed from edge pixels (``image``
        itself when there is nothing to un-mix).
    """
    settings = settings or Settings()
    mask = seg.mask
    if settings.feather <= 0 or settings.preset:
        return (mask.astype(np.uint8) * 255), image
    sigma = settings.feather / 2
    r = int(np.ceil(3 * sigma)) + 1
    edge = mask ^ ndi.binary_erosion(mask, iterations=1, border_value=1)
    band = ndi.binary_dilation(edge, iterations=r)
    ys, xs = np.nonzero(band)
    if len(ys) == 0:
        return (mask.astype(np.uint8) * 255), image
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    soft = ndi.gaussian_filter(mask[y0:y1, x0:x1].astype(np.float32), sigma)
    alpha = mask.astype(np.float32)
    sub = alpha[y0:y1, x0:x1]
    b = band[y0:y1, x0:x1]
    sub[b] = soft[b]
    alpha8 = np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8)
    if not settings.decontaminate:
        return alpha8, image
    colors = image.copy()
    fix = band & (alpha8 > 0) & (alpha8 < 255)
    if fix.any():
        px = image[fix].astype(np.float32)
        a = alpha[fix][:, None]
        bk = seg.backdrop.astype(np.float32)
        nearest = bk[np.argmin(((px[:, None, :] - bk[None]) ** 2).sum(axis=2), axis=1)]
        fg = (px - (1 - a) * nearest) / np.maximum(a, 0.05)
        colors[fix] = np.clip(np.round(fg), 0, 255).astype(np.uint8)
    return alpha8, colors
