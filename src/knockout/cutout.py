"""The whole pure pipeline: pixels in, output pixels out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compose import compose
from .matte import _matted
from .segment import Segmentation, segment
from .settings import Settings

__all__ = ["CutOut", "cut_out"]


@dataclass(frozen=True)
class CutOut:
    """The result of :func:`cut_out`.

    Attributes
    ----------
    pixels : ndarray of uint8
        The output as :func:`knockout.compose.compose` builds it for ``settings.output``.
    alpha : ndarray of uint8, shape (H, W)
        The full-frame matte (before cropping).
    segmentation : Segmentation
        The hard mask and backdrop model.
    """

    pixels: np.ndarray
    alpha: np.ndarray
    segmentation: Segmentation


def cut_out(image: np.ndarray, *, settings: Settings | None = None, source_alpha: np.ndarray | None = None) -> CutOut:
    """Remove the backdrop of a headshot.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        sRGB pixels.
    settings : Settings, optional
        Defaults to ``Settings()``.
    source_alpha : ndarray of uint8, shape (H, W), optional
        The input's own alpha, combined with the new one.

    Returns
    -------
    CutOut
    """
    settings = settings or Settings()
    seg = segment(image, settings=settings)
    image, alpha, edits = _matted(image, seg, settings=settings)  # the colours built by compose
    if source_alpha is not None and source_alpha.shape != alpha.shape:
        raise ValueError(f"source_alpha has shape {source_alpha.shape}, expected {alpha.shape}")
    pixels = compose(image, alpha, settings=settings, source_alpha=source_alpha, edits=edits)
    return CutOut(pixels=pixels, alpha=alpha, segmentation=seg)
