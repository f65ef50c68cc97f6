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
_GAP_HI = 0.3  # alpha below which a pixel inside the hard mask is backdrop showing through
_HAIR_LO = 0.2  # alpha a strand beyond the band needs to be kept (and connected to the edge)
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
        a, f = _tile(image[pad], mask[pad], backdrop, p, settings.decontaminate, origin=(pad[0].start, pad[1].start))
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
        # beyond the band, up to this far out, strands that the image says are subject are kept
        self.hair = self.r_out + 4.0 * scale + 4.0
        self.margin = math.ceil(self.hair + 2 * max(self.sigma_f, self.sigma_b)) + 2


def _edge_tiles(mask: np.ndarray, p: _Params) -> Iterator[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """(core, padded) slices of the tiles that hold part of the band."""
    h, w = mask.shape
    reach = math.ceil(max(p.r_in, p.r_out, p.hair)) + 1
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


def _pool(a: np.ndarray, k: int) -> np.ndarray:
    """Sums over k x k blocks (the first two axes are multiples of k): k strided adds per axis."""
    rows = a[0::k].copy()
    for i in range(1, k):
        rows += a[i::k]
    out = rows[:, 0::k].copy()
    for j in range(1, k):
        out += rows[:, j::k]
    return out


class _LocalMean:
    """Mean colour of the pixels where ``weight`` is set, in a window of about 2 sigma around any pixel.

    Box filters (running sums, cost independent of the window) keep this cheap; for wide windows
    (big photos) the sums are taken on k x k blocks aligned to the image's origin (so that tiles
    agree) and looked up only at the pixels asked for.
    """

    def __init__(self, img: np.ndarray, weight: np.ndarray, sigma: float, origin: tuple[int, int]) -> None:
        size = 2 * round(2 * sigma) + 1
        k = self.k = max(1, int(sigma // 3))
        h, w = weight.shape
        oy, ox = self.oy, self.ox = origin[0] % k, origin[1] % k  # blocks start at multiples of k
        hh, ww = -(-(h + oy) // k) * k, -(-(w + ox) // k) * k
        pw = np.zeros((hh, ww), np.float32)
        pw[oy : oy + h, ox : ox + w] = weight
        pc = np.zeros((hh, ww, 3), np.float32)
        pc[oy : oy + h, ox : ox + w] = img
        pc *= pw[..., None]
        if k > 1:
            pw, pc = _pool(pw, k), _pool(pc, k)
        small = max(1, round(size / k)) | 1
        self.den = ndi.uniform_filter(pw, small) / (k * k)
        self.num = np.empty_like(pc)
        for c in range(3):
            ndi.uniform_filter(pc[..., c], small, output=self.num[..., c])
        self.num /= k * k

    def at(self, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean colour (N, 3) float32, weight density (N,)) at tile pixels ``(ys, xs)``."""
        by, bx = (ys + self.oy) // self.k, (xs + self.ox) // self.k
        den = self.den[by, bx]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.num[by, bx] / den[:, None]
        return mean.astype(np.float32), den


def _tile(
    image: np.ndarray,
    mask: np.ndarray,
    backdrop: np.ndarray,
    p: _Params,
    decontaminate: bool,
    *,
    origin: tuple[int, int] = (0, 0),
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
    f_loc = _LocalMean(img, sure_f, p.sigma_f, origin)
    b_loc = _LocalMean(img, sure_b, p.sigma_b, origin)

    by, bx = np.nonzero(band)
    px = img[by, bx]  # (N, 3), raster order like img[band]
    fl, f_den = f_loc.at(by, bx)
    bl = _backdrop_at(*b_loc.at(by, bx), px, backdrop)
    no_f = ~(f_den > 1e-3)
    fl[no_f] = px[no_f]  # (and no trust in the projection there: see _alpha)
    sigma = max(0.5, p.feather / 2)
    soft = ndi.gaussian_filter(mask.astype(np.float32), sigma)[band]
    a = _alpha(px, fl, bl, inside=mask[band], fallback=soft, unknown=no_f)
    sel = band
    zones = []
    hair = _hair(img, mask, band, a, d_out=d_out, band_f=(by[~no_f], bx[~no_f], fl[~no_f]), b_loc=b_loc,
                 backdrop=backdrop, p=p, origin=origin)  # fmt: skip
    if hair is not None:
        zones.append(hair)
    gaps = _gaps(img, mask, band, a, d_in=d_in, b_loc=b_loc, backdrop=backdrop, p=p, origin=origin)
    if gaps is not None:
        zones.append(gaps)
    if zones:  # merge the extra pixels into the band's, in raster order
        full_a = np.zeros(mask.shape, np.float32)
        full_f = np.zeros(img.shape, np.float32)
        full_b = np.zeros(img.shape, np.float32)
        full_nf = np.zeros(mask.shape, bool)
        full_a[band], full_f[band], full_b[band], full_nf[band] = a, fl, bl, no_f
        sel = band.copy()
        for zone, az, zf, zb in zones:
            full_a[zone], full_f[zone], full_b[zone] = az, zf, zb
            sel |= zone
        a, px, fl, bl, no_f = full_a[sel], img[sel], full_f[sel], full_b[sel], full_nf[sel]
    alpha8[sel] = np.round(a * 255).astype(np.uint8)
    if not decontaminate:
        return alpha8, None
    colors = image.copy()
    out = colors[sel]
    mix = (a > 0) & (a < 1)
    am = a[mix][:, None]
    un = (px[mix] - (1 - am) * bl[mix]) / am
    # a faint pixel's un-mixed colour is mostly noise: lean on the local subject colour instead
    w = np.clip(am / 0.3, 0.0, 1.0)
    fg = w * un + (1 - w) * np.where(no_f[mix][:, None], un, fl[mix])
    out[mix] = np.clip(np.round(fg), 0, 255).astype(np.uint8)
    colors[sel] = out
    return alpha8, colors


def _backdrop_at(bl, b_den, px, backdrop) -> np.ndarray:
    """Local backdrop colours ``bl``; the model's nearest colour where no sure backdrop is near."""
    no_b = ~(b_den > 1e-3)
    if no_b.any():
        q = px[no_b]
        bl[no_b] = backdrop[np.argmin(((q[:, None, :] - backdrop[None]) ** 2).sum(axis=2), axis=1)]
    return bl


def _alpha(px, fl, bl, *, inside, fallback, unknown) -> np.ndarray:
    """Alpha of pixels ``px`` (N, 3) between local subject ``fl`` and backdrop ``bl`` colours."""
    diff = fl - bl
    n2 = (diff * diff).sum(axis=1)
    norm = np.sqrt(n2)
    # outside the hard mask: projection onto the line B -> F (a shadow or a tint on the backdrop
    # is not subject); inside: distance from B over |F - B| (a subject pixel of another hue than
    # the local mean, e.g. a strand lighter than the hair, is still subject)
    proj = ((px - bl) * diff).sum(axis=1) / np.maximum(n2, 1e-6)
    if inside.any():
        dist = np.sqrt(((px - bl) ** 2).sum(axis=1))
        ratio = np.maximum(dist - _NOISE, 0) / np.maximum(norm - _NOISE, 1e-3)
        proj = np.where(inside, ratio, proj)
    conf = np.clip((norm - _CONF_LO) / (_CONF_HI - _CONF_LO), 0.0, 1.0)
    conf[unknown] = 0.0
    a = np.clip(conf * proj + (1 - conf) * fallback, 0.0, 1.0).astype(np.float32)
    a[a < _SNAP] = 0.0
    a[a > 1 - _SNAP] = 1.0
    return a


def _hair(img, mask, band, a, *, d_out, band_f, b_loc, backdrop, p, origin):
    """Strands beyond the band that the image says are subject, connected to the band's soft edge.

    Returns (kept pixels' mask, their alpha, subject colours, backdrop colours), or None.
    """
    zone = ~mask & (d_out > p.r_out) & (d_out <= p.hair)
    seeds = np.zeros(mask.shape, bool)
    seeds[band] = (a >= _HAIR_LO) & ~mask[band]
    if not zone.any() or not seeds.any():
        return None
    ky, kx, kf = band_f
    if not len(ky):
        return None
    # the subject colour out there: the mean subject colour of the band pixels around
    known = np.zeros(mask.shape, np.float32)
    known[ky, kx] = 1.0
    fcol = np.zeros(img.shape, np.float32)
    fcol[ky, kx] = kf
    zy, zx = np.nonzero(zone)
    zp = img[zy, zx]
    zf, zden = _LocalMean(fcol, known, p.hair / 2 + 1, origin).at(zy, zx)
    unknown = ~(zden > 1e-4)
    zf[unknown] = zp[unknown]  # no subject colour known nearby: no strand (see _alpha)
    zb = _backdrop_at(*b_loc.at(zy, zx), zp, backdrop)
    az = _alpha(zp, zf, zb, inside=np.zeros(len(zp), bool), fallback=np.zeros(len(zp), np.float32), unknown=unknown)
    cand = np.zeros(mask.shape, bool)
    cand[zone] = az >= _HAIR_LO
    lbl, _ = ndi.label(cand | seeds, structure=np.ones((3, 3), bool))
    ids = np.unique(lbl[seeds])
    keep = np.isin(lbl, ids[ids > 0]) & cand
    if not keep.any():
        return None
    kz = keep[zone]
    return keep, az[kz], zf[kz], zb[kz]


def _gaps(img, mask, band, a, *, d_in, b_loc, backdrop, p, origin):
    """Backdrop showing between strands inside the hard mask (a hair cloud the segmentation kept whole).

    Pixels inside the mask, beyond the band but within the hair reach, whose alpha says backdrop
    and that connect to the backdrop through such pixels, get their alpha from the image (with
    their neighbours, the strands' own edges). Returns (mask, alpha, subject, backdrop colours) or None.
    """
    inner = mask & (d_in > p.r_in) & (d_in <= p.hair)
    if not inner.any():
        return None
    iy, ix = np.nonzero(inner)
    ip = img[iy, ix]
    # the subject colour: from deeper inside than the hair reaches (the strands' own colour)
    deep = mask & (d_in > p.hair)
    ifl, iden = _LocalMean(img, deep, p.hair + 1, origin).at(iy, ix)
    ibl = _backdrop_at(*b_loc.at(iy, ix), ip, backdrop)
    unknown = ~(iden > 1e-3)
    ifl[unknown] = ip[unknown]
    ai = _alpha(ip, ifl, ibl, inside=np.ones(len(ip), bool), fallback=np.ones(len(ip), np.float32), unknown=unknown)
    low = np.zeros(mask.shape, bool)
    low[iy, ix] = ai < _GAP_HI
    if not low.any():
        return None
    seeds = np.zeros(mask.shape, bool)
    seeds[band] = a < _GAP_HI
    lbl, _ = ndi.label(low | seeds, structure=np.ones((3, 3), bool))
    ids = np.unique(lbl[seeds])
    keep = np.isin(lbl, ids[ids > 0]) & low
    if not keep.any():
        return None
    keep = ndi.binary_dilation(keep, structure=np.ones((3, 3), bool), iterations=2) & inner
    k = keep[iy, ix]
    return keep, ai[k], ifl[k], ibl[k]
