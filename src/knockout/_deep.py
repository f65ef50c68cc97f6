"""16-bit outputs (``depth: 16``): the matte computed in float on the 16-bit source.

Segmentation works on the 8-bit sRGB copy (as for every input); its hard mask is all it
gives. The matte (soft alpha and decontaminated colours) is then computed on the source at
full precision, in float, and rounded once, to 16 bits: a pixel the matte leaves alone keeps
its 16-bit value, and a smooth edge's alpha and colours have 16-bit steps, not 8-bit ones
widened, so neither gradients (skin, a lit backdrop) nor soft edges band.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .compose import _crop
from .imageio import Picture
from .matte import matte
from .segment import segment
from .settings import Settings

__all__ = ["cut_out_16"]

_FULL = np.float32(65535)


def cut_out_16(pic: Picture, *, settings: Settings) -> tuple[np.ndarray, float, Any]:
    """The output of ``pic`` at 16 bits per channel, the tolerance used and the segmentation's assessment.

    Parameters
    ----------
    pic : Picture
        A decoded image; its ``deep`` (uint16, shape (H, W, 3), or (H, W, 4) with the source's
        own alpha) when the source had 16 bits, else its 8-bit ``rgb`` (and ``alpha``) widened.
    settings : Settings, keyword-only
        ``output``, ``background``, ``crop`` and ``margin`` as for 8-bit outputs.

    Returns
    -------
    pixels : ndarray of uint16
        (H', W', 4) for ``rgba``, (H', W') for ``mask``, (H', W', 3) for ``solid``.
    tolerance : float
    assessment : the segmentation's ``assessment`` (confidence), or None
    """
    seg = segment(pic.rgb, settings=settings)
    own = None if pic.alpha is None else pic.alpha.astype(np.float32) / np.float32(255)
    if pic.deep is not None:
        source = pic.deep[..., :3].astype(np.float32) / _FULL
        if pic.deep.shape[2] == 4:  # the input's alpha at 16 bits
            own = pic.deep[..., 3].astype(np.float32) / _FULL
    else:
        source = pic.rgb.astype(np.float32) / np.float32(255)
    alpha, colors = matte(source, seg, settings=settings)  # float32 in 0-1
    del source
    if own is not None:  # the input's own alpha, multiplied in; what it hid stays hidden
        alpha *= own
        if settings.output == "rgba":
            colors[own == 0] = 0
    if settings.crop:
        colors, alpha = _crop(colors, alpha, settings.margin)
    if settings.output == "mask":
        return _wide(alpha), seg.tolerance, seg.assessment
    if settings.output == "solid":
        bg = np.asarray(settings.background, np.float32) / np.float32(255)
        colors -= bg  # colors * a + bg * (1 - a), in place
        colors *= alpha[..., None]
        colors += bg
        return _wide(colors), seg.tolerance, seg.assessment
    out = np.empty((*alpha.shape, 4), np.uint16)
    out[..., :3] = _wide(colors)
    out[..., 3] = _wide(alpha)
    return out, seg.tolerance, seg.assessment


def _wide(a: np.ndarray) -> np.ndarray:
    """Float values in 0-1 rounded to uint16 (0-65535); ``a`` is used up (scaled in place)."""
    np.clip(a, 0, 1, out=a)
    a *= _FULL
    np.rint(a, out=a)
    return a.astype(np.uint16)
