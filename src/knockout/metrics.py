"""Scores of a mask or matte against ground truth.

Masks may be boolean, or mattes (uint8 0-255, or float 0-1): a matte counts as subject where
alpha >= 0.5. All functions take the prediction first and the truth second, of the same shape.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["alpha_error", "boundary_f", "edge_color_error", "foreground_error", "iou"]


def _check(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape:
        raise ValueError(f"shapes differ: prediction {pred.shape}, ground truth {truth.shape}; score same-size images")


def _binary(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        return a
    if a.dtype == np.uint8:
        return a >= 128
    if np.issubdtype(a.dtype, np.floating):
        return a >= 0.5
    return a.astype(bool)


def _unit(a: np.ndarray) -> np.ndarray:
    """A matte as float32 in 0-1 (bool -> 0/1, uint8 / 255, float as is)."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    return a.astype(np.float32)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two masks of the same shape (1.0 when both are empty).

    Parameters
    ----------
    pred, truth : ndarray, shape (H, W)
        Boolean masks, or mattes (uint8 0-255 / float 0-1) thresholded at one half.
    """
    _check(pred, truth)
    pred, truth = _binary(pred), _binary(truth)
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def _edge(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask, border_value=1)


def boundary_f(pred: np.ndarray, truth: np.ndarray, *, tolerance: int = 2) -> float:
    """Boundary F-score: precision and recall of boundary pixels within ``tolerance`` pixels.

    Parameters
    ----------
    pred, truth : ndarray, shape (H, W)
        Boolean masks, or mattes thresholded at one half.
    tolerance : int, optional
        Largest distance (pixels) at which a boundary pixel counts as matched.
    """
    _check(pred, truth)
    pe, te = _edge(_binary(pred)), _edge(_binary(truth))
    if not pe.any() and not te.any():
        return 1.0
    if not pe.any() or not te.any():
        return 0.0
    dt_t = ndi.distance_transform_edt(~te)
    dt_p = ndi.distance_transform_edt(~pe)
    precision = float((dt_t[pe] <= tolerance).mean())
    recall = float((dt_p[te] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def alpha_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute alpha error over the whole image, as a fraction of full scale (0-1).

    Parameters
    ----------
    pred, truth : ndarray, shape (H, W)
        Mattes, uint8 (0-255), float (0-1) or bool.
    """
    _check(pred, truth)
    return float(np.abs(_unit(pred) - _unit(truth)).mean())


def edge_color_error(
    colors: np.ndarray,
    alpha: np.ndarray,
    true_colors: np.ndarray,
    true_alpha: np.ndarray,
    *,
    background: tuple[int, int, int],
    width: int = 2,
) -> float:
    """Mean colour error in the edge band after compositing onto a new background.

    Both cut-outs (``colors`` with ``alpha``, and the truth) are composited over the solid
    ``background``; the result is the mean Euclidean RGB distance (0-255 scale) over the edge
    band: pixels whose true alpha is strictly between 0 and 1, widened by ``width`` pixels.
    A halo of the old backdrop colour shows up as a large error.

    Parameters
    ----------
    colors, true_colors : ndarray of uint8, shape (H, W, 3)
        Predicted and true foreground colours.
    alpha, true_alpha : ndarray, shape (H, W)
        Predicted and true mattes (uint8 0-255 or float 0-1).
    background : tuple of 3 int
        The new background colour, RGB 0-255.
    width : int, optional
        Pixels added on each side of the soft band.

    Returns
    -------
    float
        Mean colour distance; 0.0 when the truth has no edge.
    """
    if colors.shape != true_colors.shape or colors.shape[:2] != alpha.shape:
        raise ValueError(
            f"shapes differ: colors {colors.shape}, alpha {alpha.shape}, true colors {true_colors.shape}; "
            "pass (H, W, 3) colours and (H, W) mattes of one image"
        )
    _check(alpha, true_alpha)
    ta = _unit(true_alpha)
    band = (ta > 0) & (ta < 1)
    if not band.any():
        band = _edge(ta >= 0.5)
    if width > 0:
        band = ndi.binary_dilation(band, iterations=width)
    if not band.any():
        return 0.0
    bg = np.asarray(background, np.float32)
    a = _unit(alpha)[band][:, None]
    t = ta[band][:, None]
    pred = a * colors[band].astype(np.float32) + (1 - a) * bg
    true = t * true_colors[band].astype(np.float32) + (1 - t) * bg
    return float(np.sqrt(((pred - true) ** 2).sum(axis=1)).mean())


def foreground_error(
    colors: np.ndarray, true_colors: np.ndarray, true_alpha: np.ndarray, *, lo: float = 0.05, hi: float = 0.95
) -> float:
    """Error of the foreground colour itself in the true soft band, weighted by the true alpha.

    Unlike :func:`edge_color_error`, no alpha is composited in: this measures only the colours
    a cut-out carries where the subject is partly transparent (a halo of the old backdrop shows
    up in them on any new background), whatever its own alpha.

    Parameters
    ----------
    colors, true_colors : ndarray of uint8, shape (H, W, 3)
        The cut-out's colours and the true foreground colours.
    true_alpha : ndarray, shape (H, W)
        The true matte (uint8 0-255 or float 0-1).
    lo, hi : float, optional
        The soft band: pixels whose true alpha is strictly between them.

    Returns
    -------
    float
        ``sum(a |colors - true_colors|) / sum(a)`` over the band (Euclidean RGB, 0-255 scale);
        0.0 when the truth has no soft pixel.
    """
    if colors.shape != true_colors.shape or colors.shape[:2] != np.shape(true_alpha):
        raise ValueError(
            f"shapes differ: colors {colors.shape}, true colors {true_colors.shape}, true alpha "
            f"{np.shape(true_alpha)}; pass (H, W, 3) colours and an (H, W) matte of one image"
        )
    ta = _unit(true_alpha)
    band = (ta > lo) & (ta < hi)
    if not band.any():
        return 0.0
    d = np.sqrt(((colors[band].astype(np.float32) - true_colors[band].astype(np.float32)) ** 2).sum(axis=1))
    w = ta[band]
    return float((w * d).sum() / w.sum())
