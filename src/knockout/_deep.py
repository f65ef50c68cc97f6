"""16-bit outputs (``depth: 16``): the cut-out of the 8-bit working copy, applied to the 16-bit source.

Segmentation and the matte work on 8-bit sRGB (as for every input). The output then takes its
colours from the source at full precision: a pixel the matte left alone keeps its 16-bit value,
and an edge pixel whose colour decontamination changed gets the same change, so smooth gradients
(skin, a lit backdrop) do not band. The alpha is the matte's, widened to 16 bits (x 257).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .compose import _crop
from .cutout import cut_out
from .imageio import Picture
from .settings import Settings

__all__ = ["cut_out_16"]


def cut_out_16(pic: Picture, *, settings: Settings) -> tuple[np.ndarray, float, Any]:
    """The output of ``pic`` at 16 bits per channel, the tolerance used and the segmentation's assessment.

    Parameters
    ----------
    pic : Picture
        A decoded image; its ``deep`` (uint16, shape (H, W, 3)) when the source had 16 bits,
        else its 8-bit ``rgb`` is widened.
    settings : Settings, keyword-only
        ``output``, ``background``, ``crop`` and ``margin`` as for 8-bit outputs.

    Returns
    -------
    pixels : ndarray of uint16
        (H', W', 4) for ``rgba``, (H', W') for ``mask``, (H', W', 3) for ``solid``.
    tolerance : float
    assessment : the segmentation's ``assessment`` (confidence), or None
    """
    deep = pic.deep if pic.deep is not None else pic.rgb.astype(np.uint16) * np.uint16(257)
    res = cut_out(pic.rgb, settings=settings.replace(output="rgba", crop=False), source_alpha=pic.alpha)
    delta = res.pixels[..., :3].astype(np.int32) - pic.rgb  # what decontamination changed, per channel
    colors = np.clip(deep + delta * 257, 0, 65535).astype(np.uint16)
    alpha = res.pixels[..., 3].astype(np.uint16) * np.uint16(257)
    del delta
    if settings.crop:
        colors, alpha = _crop(colors, alpha, settings.margin)
    if settings.output == "mask":
        return np.ascontiguousarray(alpha), res.segmentation.tolerance, res.segmentation.assessment
    if settings.output == "solid":
        a = alpha[..., None].astype(np.float32) / np.float32(65535)
        bg = np.asarray(settings.background, np.float32) * np.float32(257)
        out = np.rint(colors * a + bg * (1 - a)).astype(np.uint16)
        return out, res.segmentation.tolerance, res.segmentation.assessment
    return np.dstack([colors, alpha]), res.segmentation.tolerance, res.segmentation.assessment
