"""Build the output array a user asked for from an image and its alpha matte."""

from __future__ import annotations

import numpy as np

from .settings import Settings

__all__ = ["compose"]


def compose(
    colors: np.ndarray, alpha: np.ndarray, *, settings: Settings, source_alpha: np.ndarray | None = None
) -> np.ndarray:
    """Combine colours and alpha into the requested output.

    Parameters
    ----------
    colors : ndarray of uint8, shape (H, W, 3)
        The (decontaminated) subject colours.
    alpha : ndarray of uint8, shape (H, W)
        The matte, 255 on the subject.
    settings : Settings
        ``output`` (``rgba``, ``mask`` or ``solid`` on ``background``), ``crop`` and ``margin``.
    source_alpha : ndarray of uint8, shape (H, W), optional
        The input's own alpha channel, multiplied into the new one.

    Returns
    -------
    ndarray of uint8
        (H', W', 4) for ``rgba``, (H', W') for ``mask``, (H', W', 3) for ``solid``.
    """
    if colors.shape[:2] != alpha.shape:
        raise ValueError(f"colors {colors.shape[:2]} and alpha {alpha.shape} must have the same height and width")
    if source_alpha is not None:
        alpha = ((alpha.astype(np.uint16) * source_alpha.astype(np.uint16) + 127) // 255).astype(np.uint8)
    if settings.crop:
        ys, xs = np.nonzero(alpha)
        if len(ys):
            m = settings.margin
            h, w = alpha.shape
            sl = (
                slice(max(0, ys.min() - m), min(h, ys.max() + 1 + m)),
                slice(max(0, xs.min() - m), min(w, xs.max() + 1 + m)),
            )
            colors, alpha = colors[sl], alpha[sl]
    if settings.output == "mask":
        return np.ascontiguousarray(alpha)
    if settings.output == "solid":
        bg = np.array(settings.background, np.float32)
        a = alpha[..., None].astype(np.float32) / 255
        return np.clip(np.round(colors * a + bg * (1 - a)), 0, 255).astype(np.uint8)
    out = np.empty((*alpha.shape, 4), np.uint8)
    out[..., :3] = colors
    out[..., 3] = alpha
    return out
