"""Build the output array a user asked for from an image and its alpha matte."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from ._cpus import usable_cpus
from .settings import Settings

__all__ = ["compose"]


def compose(
    colors: np.ndarray, alpha: np.ndarray, *, settings: Settings, source_alpha: np.ndarray | None = None
) -> np.ndarray:
    """Combine colours and alpha into the requested output.

    Parameters
    ----------
    colors : ndarray of uint8, shape (H, W, 3)
        The (decontaminated) subject colours, as :func:`knockout.matte.matte` gives them:
        nothing of the old backdrop where ``alpha`` is 0. They are written as they are, but
        where ``source_alpha`` is 0 the ``rgba`` output holds (0, 0, 0).
    alpha : ndarray of uint8, shape (H, W)
        The matte, 255 on the subject.
    settings : Settings
        ``output`` (``rgba``, ``mask`` or ``solid`` on ``background``), ``crop`` and ``margin``.
    source_alpha : ndarray of uint8, shape (H, W), optional
        The input's own alpha channel, multiplied into the new one (a pixel transparent in
        the input stays transparent).

    Returns
    -------
    ndarray of uint8
        (H', W', 4) for ``rgba``, (H', W') for ``mask``, (H', W', 3) for ``solid``; H' x W'
        is the subject's bounding box plus ``margin`` (clipped to the image) when ``crop`` is
        on and the subject is not empty, else H x W.

    Raises
    ------
    ValueError
        If the arrays are not uint8 or their shapes do not match.
    """
    _check(colors, alpha, source_alpha)
    if source_alpha is not None:
        alpha = ((alpha.astype(np.uint16) * source_alpha + 127) // 255).astype(np.uint8)
        if settings.output == "rgba" and not source_alpha.all():  # what the input hid stays hidden
            colors = np.where((source_alpha == 0)[..., None], np.uint8(0), colors)
    if settings.crop:
        colors, alpha = _crop(colors, alpha, settings.margin)
    if settings.output == "mask":
        return np.ascontiguousarray(alpha)
    if settings.output == "solid":
        # Pillow blends in C, without full-frame float temporaries
        h, w = alpha.shape
        canvas = Image.new("RGB", (w, h), tuple(settings.background))
        subject = Image.fromarray(np.ascontiguousarray(colors))
        canvas.paste(subject, (0, 0), Image.fromarray(np.ascontiguousarray(alpha)))
        return np.asarray(canvas)
    out = np.empty((*alpha.shape, 4), np.uint8)
    _interleave(out, colors, alpha)
    return out


_PART_BYTES = 8 << 20  # interleaving less than this per thread is not worth a thread


def _interleave(out: np.ndarray, colors: np.ndarray, alpha: np.ndarray) -> None:
    """``out[..., :3] = colors; out[..., 3] = alpha``, in row blocks on several threads for big images.

    Strided byte copies are memory-bound and numpy releases the GIL for them, so two cores do
    a 12-megapixel cut-out in about half the time.
    """
    cpus = usable_cpus()
    parts = max(1, min(cpus, 4, out.nbytes // _PART_BYTES))
    h = out.shape[0]

    def part(i: int) -> None:
        rows = slice(i * h // parts, (i + 1) * h // parts)
        out[rows, :, :3] = colors[rows]
        out[rows, :, 3] = alpha[rows]

    if parts == 1:
        part(0)
        return
    with ThreadPoolExecutor(parts) as pool:
        list(pool.map(part, range(parts)))


def _check(colors: np.ndarray, alpha: np.ndarray, source_alpha: np.ndarray | None) -> None:
    if colors.dtype != np.uint8 or colors.ndim != 3 or colors.shape[2] != 3:
        raise ValueError(f"colors must be uint8 of shape (H, W, 3), got {colors.dtype} {colors.shape}")
    if alpha.dtype != np.uint8 or alpha.shape != colors.shape[:2]:
        raise ValueError(
            f"alpha must be uint8 of shape {colors.shape[:2]} (the height and width of colors), "
            f"got {alpha.dtype} {alpha.shape}"
        )
    if source_alpha is not None and (source_alpha.dtype != np.uint8 or source_alpha.shape != alpha.shape):
        raise ValueError(
            f"source_alpha must be uint8 of shape {alpha.shape}, got {source_alpha.dtype} {source_alpha.shape}"
        )


def _crop(colors: np.ndarray, alpha: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(alpha.any(axis=1))
    if not len(rows):  # nothing kept: keep the frame rather than write an empty image
        return colors, alpha
    cols = np.flatnonzero(alpha.any(axis=0))
    h, w = alpha.shape
    sl = (
        slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)),
        slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)),
    )
    return colors[sl], alpha[sl]
