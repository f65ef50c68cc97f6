"""Scores of a mask or matte against ground truth."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["alpha_error", "boundary_f", "iou"]


def _check(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape:
        raise ValueError(f"shapes differ: prediction {pred.shape}, ground truth {truth.shape}")


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks of the same shape (1.0 when both are empty)."""
    _check(pred, truth)
    pred, truth = pred.astype(bool), truth.astype(bool)
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def _edge(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask, border_value=1)


def boundary_f(pred: np.ndarray, truth: np.ndarray, *, tolerance: int = 2) -> float:
    """Boundary F-score: precision and recall of boundary pixels within ``tolerance`` pixels."""
    _check(pred, truth)
    pe, te = _edge(pred.astype(bool)), _edge(truth.astype(bool))
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

    Both arrays are uint8 (0-255) or float (0-1) mattes of the same shape.
    """
    _check(pred, truth)

    def unit(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)

    return float(np.abs(unit(pred) - unit(truth)).mean())
