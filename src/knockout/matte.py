"""Soft alpha along the subject's edge, and backdrop-colour decontamination.

The hard mask from :func:`knockout.segment` is right away from the edge; near it, each pixel
is a mix of subject and backdrop colour, ``I = a F + (1 - a) B``. In a narrow band around the
mask's boundary this module estimates, from the image itself:

- ``B``, the local backdrop colour: a Gaussian-weighted mean of the sure-backdrop pixels
  nearby (normalized convolution), so vignettes and gradients are followed;
- ``F``, the local subject colour: the same over the sure-subject pixels nearby;
- the alpha: outside the hard mask by projecting the pixel onto the line from ``B`` to ``F``,
  ``a = ((I - B) . (F - B)) / |F - B|^2``; inside it by ``|I - B| / |F - B|`` (less the noise
  level), which also keeps subject pixels of another hue than the local mean. Where ``F`` and
  ``B`` are too alike for either to be trusted, the alpha falls back to a Gaussian feather of
  the hard mask;
- the decontaminated colour, un-mixing the backdrop: ``F' = (I - (1 - a) B) / a``.

The band reaches further out than in, so strands of hair that the segmentation's spatial
clean-up cut off are given back wherever the image says they are subject. Work is done tile
by tile on the tiles the band touches, in float32, so a 12-megapixel photo needs only a few
megabytes on top of the image.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from scipy import ndimage as ndi

from .segment import Segmentation
from .settings import Settings

__all__ = ["matte"]

_TILE = 256  # core tile side, pixels
_CONF_LO, _CONF_HI = 8.0, 30.0  # RGB distance |F - B| below which the projection is not trusted / fully trusted
_NOISE = 4.0  # RGB distance taken as sensor noise when measuring how far a pixel is from the backdrop
_SNAP = 0.05  # alphas within this of 0 or 1 are snapped (sensor noise and JPEG ringing)


def matte(image: np.ndarray, seg: Segmentation, *, settings: Settings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Turn a hard segmentation into an alpha matte and decontaminated colours.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The sRGB image that was segmented.
    seg : Segmentation
        The result of :func:`knockout.segment` on ``image``.
    settings : Settings, optional
        ``feather`` (width in pixels of the soft band; 0 keeps the hard 0/255 edge) and
        ``decontaminate`` (un-mix the backdrop colour from edge pixels). The presets keep
        the article's hard edge.

    Returns
    -------
    alpha : ndarray of uint8, shape (H, W)
        0 on the backdrop, 255 on the subject, soft in between.
    colors : ndarray of uint8, shape (H, W, 3)
        The subject's colours with the backdrop un-mixed from edge pixels (``image``
        itself when nothing is un-mixed).

    Raises
    ------
    ValueError
        If ``image`` is not (H, W, 3) uint8 or ``seg.mask`` does not match its size.
    """
    settings = settings or Settings()
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be a uint8 array of shape (H, W, 3), got {got}")
    mask = np.asarray(seg.mask, bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"segmentation mask {mask.shape} does not match the image {image.shape[:2]}; segment it first")
    hard = mask.astype(np.uint8) * np.uint8(255)
    if settings.feather <= 0 or settings.preset:
        return hard, image
    h = mask.shape[0]
    scale = max(1.0, h / max(1, seg.work_mask.shape[0]))  # how coarse the hard mask's edge is
    p = _Params(settings.feather, scale)
    backdrop = np.asarray(seg.backdrop, np.float32).reshape(-1, 3)
    alpha = hard
    colors = image.copy() if settings.decontaminate else image
    for core, pad in _edge_tiles(mask, p):
        a, f = _tile(image[pad], mask[pad], backdrop, p, settings.decontaminate)
        inner = (slice(core[0].start - pad[0].start, core[0].stop - pad[0].start),
                 slice(core[1].start - pad[1].start, core[1].stop - pad[1].start))  # fmt: skip
        alpha[core] = a[inner]
        if f is not None:
            colors[core] = f[inner]
    return alpha, colors


class _Params:
    """Band geometry, in pixels, from the ``feather`` setting and the hard mask's coarseness."""

    def __init__(self, feather: float, scale: float) -> None:
        self.feather = feather
        self.r_in = feather + 0.5 * scale + 1.0  # how far inside the hard edge the soft band reaches
        self.r_out = feather + 1.0 * scale + 2.0  # and outside (cut-off hair, upscaling error)
        # half-width of the windows of the local colours (2 sigma): across the whole band and a bit
        self.sigma_f = self.sigma_b = (self.r_in + self.r_out) / 2 + 1.0
        self.margin = math.ceil(self.r_out + 2 * max(self.sigma_f, self.sigma_b)) + 2


def _edge_tiles(mask: np.ndarray, p: _Params) -> Iterator[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """(core, padded) slices of the tiles that hold part of the band."""
    h, w = mask.shape
    reach = math.ceil(max(p.r_in, p.r_out)) + 1
    for y0 in range(0, h, _TILE):
        for x0 in range(0, w, _TILE):
            y1, x1 = min(h, y0 + _TILE), min(w, x0 + _TILE)
            near = mask[max(0, y0 - reach) : y1 + reach, max(0, x0 - reach) : x1 + reach]
            if near.all() or not near.any():
                continue
            m = p.margin
            core = (slice(y0, y1), slice(x0, x1))
            pad = (slice(max(0, y0 - m), min(h, y1 + m)), slice(max(0, x0 - m), min(w, x1 + m)))
            yield core, pad


def _local_mean(img: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour of the pixels where ``weight`` is set in a window of about 2 sigma, and their density.

    Box filters (running sums, cost independent of the window) keep this cheap on big photos.
    """
    size = 2 * round(2 * sigma) + 1
    wf = weight.astype(np.float32)
    den = ndi.uniform_filter(wf, size)
    num = np.empty_like(img)
    for c in range(3):
        ndi.uniform_filter(img[..., c] * wf, size, output=num[..., c])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = num / den[..., None]
    return mean, den


def _tile(
    image: np.ndarray, mask: np.ndarray, backdrop: np.ndarray, p: _Params, decontaminate: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Alpha (uint8) and, when asked, decontaminated colours (uint8) of one padded tile."""
    # chamfer distances (exact enough for a band, and several times faster than the Euclidean ones)
    big = np.iinfo(np.int32).max
    d_in = ndi.distance_transform_cdt(mask, metric="taxicab") if not mask.all() else np.full(mask.shape, big)
    d_out = ndi.distance_transform_cdt(~mask, metric="taxicab") if mask.any() else np.full(mask.shape, big)
    band = np.where(mask, d_in <= p.r_in, d_out <= p.r_out)
    alpha8 = mask.astype(np.uint8) * np.uint8(255)
    if not band.any():
        return alpha8, None
    img = image.astype(np.float32)
    sure_f = mask & ~band
    sure_b = ~mask & ~band
    f_mean, f_den = _local_mean(img, sure_f, p.sigma_f)
    b_mean, b_den = _local_mean(img, sure_b, p.sigma_b)

    px = img[band]  # (N, 3)
    fl = f_mean[band]
    bl = b_mean[band]
    # where no sure pixel is near: the nearest backdrop colour of the model, the pixel itself for the subject
    no_b = ~(b_den[band] > 1e-3)
    if no_b.any():
        q = px[no_b]
        bl[no_b] = backdrop[np.argmin(((q[:, None, :] - backdrop[None]) ** 2).sum(axis=2), axis=1)]
    no_f = ~(f_den[band] > 1e-3)
    fl[no_f] = px[no_f]  # (and no trust in the projection there: see conf)

    diff = fl - bl
    n2 = (diff * diff).sum(axis=1)
    norm = np.sqrt(n2)
    # outside the hard mask: projection onto the line B -> F (a shadow or a tint on the backdrop
    # is not subject); inside: distance from B over |F - B| (a subject pixel of another hue than
    # the local mean, e.g. a strand lighter than the hair, is still subject)
    proj = ((px - bl) * diff).sum(axis=1) / np.maximum(n2, 1e-6)
    dist = np.sqrt(((px - bl) ** 2).sum(axis=1))
    ratio = np.maximum(dist - _NOISE, 0) / np.maximum(norm - _NOISE, 1e-3)
    proj = np.where(mask[band], ratio, proj)
    conf = np.clip((norm - _CONF_LO) / (_CONF_HI - _CONF_LO), 0.0, 1.0)
    conf[no_f] = 0.0
    sigma = max(0.5, p.feather / 2)
    soft = ndi.gaussian_filter(mask.astype(np.float32), sigma)[band]
    a = np.clip(conf * proj + (1 - conf) * soft, 0.0, 1.0)
    a[a < _SNAP] = 0.0
    a[a > 1 - _SNAP] = 1.0
    alpha8[band] = np.round(a * 255).astype(np.uint8)
    if not decontaminate:
        return alpha8, None
    colors = image.copy()
    mix = (a > 0) & (a < 1)
    am = a[mix][:, None]
    un = (px[mix] - (1 - am) * bl[mix]) / am
    # a faint pixel's un-mixed colour is mostly noise: lean on the local subject colour instead
    w = np.clip(am / 0.3, 0.0, 1.0)
    fg = w * un + (1 - w) * np.where(no_f[mix][:, None], un, fl[mix])
    out = colors[band]
    out[mix] = np.clip(np.round(fg), 0, 255).astype(np.uint8)
    colors[band] = out
    return alpha8, colors
