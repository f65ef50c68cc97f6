"""Soft alpha along the subject's edge, and backdrop-colour decontamination.

The hard mask from :func:`knockout.segment` is right away from the edge; near it, each pixel
is a mix of subject and backdrop colour, ``I = a F + (1 - a) B``. In a narrow band around the
mask's boundary this module estimates, from the image itself:

- ``B``, the local backdrop colour: a Gaussian-weighted mean of the sure-backdrop pixels
  nearby (normalized convolution), so vignettes and gradients are followed;
- ``F``, the local subject colour: the same over the sure-subject pixels nearby, or the mean
  colour of the subject deeper in (past the hair reach) where its line to ``B`` passes nearer
  the pixel (a thin dark strand leaving a lighter, lit edge is a mix of the hair and ``B``);
- the alpha: outside the hard mask by projecting the pixel onto the line from ``B`` to ``F``,
  ``a = ((I - B) . (F - B)) / |F - B|^2``; inside it by ``|I - B| / |F - B|`` (less the noise
  level), which also keeps subject pixels of another hue than the local mean. Where ``F`` and
  ``B`` are too alike for either to be trusted, the alpha falls back to a Gaussian feather of
  the hard mask;
- then (on photos matted at full size) the alphas of the whole band are solved together by
  closed-form matting (Levin, Lischinski and Weiss, 2008): in every 3 x 3 window the alpha is
  taken to be an affine function of the colour, the pixels outside the band hold the hard
  mask's 0 and 1, and the projection above is a prior, weak inside the hard mask and strong
  outside it. Inside, each pixel's alpha so follows its own neighbours' colours rather than one
  local mean subject colour, which is what a subject's edge pixel rarely is;
- the decontaminated colour, un-mixing the backdrop: ``F' = (I - (1 - a) B) / a``.

The band reaches further out than in, so strands of hair that the segmentation's spatial
clean-up cut off are given back wherever the image says they are subject.

Big photos are matted on a box-reduced copy of at most ``_MATTE_PIXELS`` pixels (the local
colours are smooth, and the hard mask is no finer than the segmentation's work size anyway),
then refined at full size only where that matte is soft: each full-size pixel there gets its
alpha from its own colour, projected between the local subject and backdrop colours of its
reduced pixel. A 12-megapixel photo's matte then costs about what a 0.5-megapixel one does. (The
closed-form solve is left out there: at full size it would take seconds, and the full-size alphas
come from each pixel's own colour anyway.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from ._matte_size import MATTE_PIXELS, reduction
from .compose import Edits, cleared
from .segment import Segmentation
from .settings import Settings

__all__ = ["matte"]

_MATTE_PIXELS = MATTE_PIXELS  # bigger images are matted on a reduced copy, then refined along the edge
_CONF_LO, _CONF_HI = 8.0, 30.0  # RGB distance |F - B| below which the projection is not trusted / fully trusted
_NOISE = 4.0  # RGB distance taken as sensor noise when measuring how far a pixel is from the backdrop
_GAP_HI = 0.3  # alpha below which a pixel inside the hard mask is backdrop showing through
_HAIR_LO = 0.2  # alpha a strand beyond the band needs to be kept (and connected to the edge)
_SNAP = 0.05  # alphas within this of 0 or 1 are snapped (sensor noise and JPEG ringing)
_EPS = 1e-4  # closed-form matting's regularisation of each window's colour covariance (colours 0-1)
# weight of the projected alphas in the closed-form solve: slight inside the hard mask (the
# colour-line model decides there), strong outside it (where the projection is what tells a
# shadow or a tint on the backdrop from subject)
_PRIOR_IN, _PRIOR_OUT = 0.01, 3.0
_CHUNK = 20_000  # windows built at a time
# the solve's relative residual and iteration cap (1e-4 and 1e-5 took more iterations for the same
# figures to three decimals on 59 composites)
_CG_TOL, _CG_ITER = 1e-3, 1000
# the foreground field (see _foreground): smoothness, its floor where the alpha is flat, the pull
# to the local subject colour, and (on big photos) the pull to the reduced image's field
_F_SMOOTH, _F_EPS, _F_PRIOR, _F_PULL = 1.0, 0.05, 0.01, 0.3
_F_REACH = 3.0  # sigma (px) of the mean that carries the field out under alpha 0
_F_STRIP = 1 << 16  # full-size edge pixels un-mixed at a time


def _sparse():
    """``(scipy.sparse, scipy.sparse.linalg)``, imported when a solve first needs them: 0.07-0.1 s
    of a one-off cut's start-up, which ``knockout cut`` spends on a thread while it segments."""
    from scipy import sparse
    from scipy.sparse import linalg

    return sparse, linalg


def matte(image: np.ndarray, seg: Segmentation, *, settings: Settings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Turn a hard segmentation into an alpha matte and decontaminated colours.

    Parameters
    ----------
    image : ndarray of uint8, or of float in [0, 1], shape (H, W, 3)
        The sRGB image that was segmented, or the same image at a higher precision (a 16-bit
        source divided by 65535, for ``depth: 16``): then the matte is computed and returned
        in float, without rounding to 8 bits, so a smooth edge does not band.
    seg : Segmentation
        The result of :func:`knockout.segment` on ``image`` (or on its 8-bit copy).
    settings : Settings, optional
        ``feather`` (width in pixels of the soft band; 0 keeps the hard 0/255 edge) and
        ``decontaminate`` (un-mix the backdrop colour from edge pixels). The presets keep
        the article's hard edge.

    Returns
    -------
    alpha : ndarray of uint8 (float32 in [0, 1] for a float ``image``), shape (H, W)
        0 on the backdrop, 255 (1.0) on the subject, soft in between.
    colors : ndarray of uint8 (float32 in [0, 1] for a float ``image``), shape (H, W, 3)
        The subject's colours: ``image`` where the alpha is 255; on the soft edge, with
        ``decontaminate``, the subject colour estimated as one smooth field (the backdrop
        un-mixed, see :func:`_foreground`), else the image's; where the alpha is 0, nothing of
        the image: with ``decontaminate`` the subject's edge colour extended a few pixels
        outward over the band, (0, 0, 0) beyond it.

    Raises
    ------
    ValueError
        If ``image`` is not (H, W, 3) uint8 or float, or ``seg.mask`` does not match its size.
    """
    image, alpha, edits = _matted(image, seg, settings=settings)
    colors = cleared(image, alpha)
    edits.write(colors)
    if image.dtype == np.uint8:
        return alpha, colors
    colors /= np.float32(255)
    return alpha, colors


def _matted(
    image: np.ndarray,
    seg: Segmentation,
    *,
    settings: Settings | None = None,
    reduced: tuple[int, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, Edits]:
    """:func:`matte` without its colours: (the working image, the alpha, the colour edits).

    The colours are the working image (``image`` itself when it is uint8; for a float one, a
    float32 copy in levels 0-255) with (0, 0, 0) wherever the alpha is 0, then the edits written
    over it; :func:`knockout.compose.compose` builds them into its output
    (``edits=``) without the full-size copy that :func:`matte` makes. ``reduced`` is ``(f, small)``,
    the uint8 ``image`` already box-reduced by ``f`` (:attr:`knockout.imageio.Picture.reduced`),
    used when the matte reduces by ``f``.
    """
    settings = settings or Settings()
    if (
        not isinstance(image, np.ndarray)
        or image.ndim != 3
        or image.shape[2] != 3
        or not (image.dtype == np.uint8 or np.issubdtype(image.dtype, np.floating))
    ):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be a uint8 (or float, 0-1) array of shape (H, W, 3), got {got}")
    mask = np.asarray(seg.mask, bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"segmentation mask {mask.shape} does not match the image {image.shape[:2]}; segment it first")
    wide = image.dtype != np.uint8
    if wide:  # the working copy in 8-bit levels (0-255), unrounded
        image = image.astype(np.float32)  # (a copy: the caller's array is left alone)
        image *= np.float32(255)
        np.clip(image, 0, 255, out=image)
    hard = mask.astype(np.uint8) * np.uint8(255)
    if settings.hard_edged:
        return _hard(image, hard, wide=wide)
    backdrop = np.asarray(seg.backdrop, np.float32).reshape(-1, 3)
    work_h = max(1, seg.work_mask.shape[0])
    f = _reduction(*mask.shape)
    if f == 1:
        p = _Params(settings.feather, max(1.0, mask.shape[0] / work_h))
        edge = _edge(image, mask, backdrop, p, solve=True)
        alpha = hard
    else:
        given = reduced is not None and reduced[0] == f and not wide
        small = reduced[1] if given else _reduce_image(image, f)
        small_mask = np.asarray(Image.fromarray(hard).reduce(f)) >= 128
        p = _Params(settings.feather / f, max(1.0, small.shape[0] / work_h))
        small_edge = _edge(small, small_mask, backdrop, p, solve=False)
        if small_edge is None:
            return _hard(image, hard, wide=wide)
        edge, alpha = _refine(image, small_edge, small_mask, f)
    if edge is None:
        return _hard(image, alpha, wide=wide)
    if wide:
        alpha = alpha.astype(np.float32) / np.float32(255)
        alpha[edge.ys, edge.xs] = edge.a
    else:
        alpha[edge.ys, edge.xs] = np.round(edge.a * 255).astype(np.uint8)
    if not settings.decontaminate:
        return image, alpha, _no_edits(image)
    if f == 1:
        ys, xs, fg = _foreground(image, alpha, edge)
    else:  # the field solved on the reduced image, each full-size pixel's own colour weighed in
        sy, sx, sfg = _foreground(small, _small_alpha(small_mask, small_edge), small_edge)
        sfg = sfg if wide else np.rint(sfg)
        ys, xs, fg = _foreground_full(image, edge, small, (sy, sx, sfg), f)
    return image, alpha, Edits(ys, xs, fg if wide else np.rint(fg).astype(np.uint8))


def _hard(image: np.ndarray, alpha: np.ndarray, *, wide: bool) -> tuple[np.ndarray, np.ndarray, Edits]:
    """A hard matte's ``(image, alpha, edits)``: the alpha uint8, or float32 in 0-1 for a ``wide`` image."""
    return image, (alpha.astype(np.float32) / np.float32(255) if wide else alpha), _no_edits(image)


def _no_edits(image: np.ndarray) -> Edits:
    empty = np.zeros(0, np.intp)
    return Edits(empty, empty, np.zeros((0, 3), image.dtype))


def _reduce_image(image: np.ndarray, f: int) -> np.ndarray:
    """``image`` box-reduced by ``f`` (Pillow's ``reduce``; its partial blocks at the edges are
    the mean of what they hold), in its own dtype (uint8, or float levels)."""
    if image.dtype == np.uint8:
        return np.asarray(Image.fromarray(image).reduce(f))
    return np.stack([_reduce(image[..., c], f) for c in range(3)], axis=2)


def _reduction(h: int, w: int) -> int:
    """Box-reduction factor that brings an image under ``_MATTE_PIXELS`` (1: matte it as it is)."""
    return reduction(h, w, _MATTE_PIXELS)


@dataclass
class _Edge:
    """The pixels whose alpha is estimated: coordinates (N,), alpha (N,) float32 in 0-1, local
    subject and backdrop colours (N, 3) float32, and whether no subject colour was known (N,)."""

    ys: np.ndarray
    xs: np.ndarray
    a: np.ndarray
    fl: np.ndarray
    bl: np.ndarray
    no_f: np.ndarray


class _Params:
    """Band geometry, in pixels, from the ``feather`` setting and the hard mask's coarseness."""

    def __init__(self, feather: float, scale: float) -> None:
        self.feather = feather
        # how far inside the hard edge the soft band reaches, and outside: the hard mask is upscaled
        # from the working size, so its outline may be a working pixel (``scale``) off either way;
        # outside, more for hair the clean-up cut off
        self.r_in = feather + 1.0 * scale + 1.0
        self.r_out = feather + 1.0 * scale + 2.0
        # half-width of the windows of the local colours (2 sigma): across the whole band and a bit
        self.sigma_f = self.sigma_b = (self.r_in + self.r_out) / 2 + 1.0
        # beyond the band, up to this far out, strands that the image says are subject are kept
        self.hair = self.r_out + 4.0 * scale + 4.0


def _reduce(a: np.ndarray, k: int) -> np.ndarray:
    """Means over k x k blocks of a float32 (H, W) array (Pillow's box reduction, in C; the last
    blocks of a side that k does not divide are the means of what there is)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(a, np.float32), "F").reduce(k))


class _LocalMean:
    """Mean colour of the pixels where ``weight`` is set, in a window of about 2 sigma around any pixel.

    The weighted colours are box-reduced by k (about sigma / 2.5, at least 2) and box-filtered
    there, so the cost is a fraction of the image's size whatever the window; the means are
    looked up only at the pixels asked for.
    """

    def __init__(self, img: np.ndarray, weight: np.ndarray, sigma: float) -> None:
        k, small = self._geometry(sigma)
        weight = np.asarray(weight, np.float32)
        self.den = ndi.uniform_filter(_reduce(weight, k), small)
        self.num = np.empty((3, *self.den.shape), np.float32)
        for c in range(3):
            ndi.uniform_filter(_reduce(img[..., c] * weight, k), small, output=self.num[c])

    def _geometry(self, sigma: float) -> tuple[int, int]:
        """The block side k (also kept as ``self.k``) and the box filter's size in blocks."""
        k = self.k = max(2, round(sigma / 2.5))
        return k, max(1, round((2 * round(2 * sigma) + 1) / k)) | 1

    @classmethod
    def of_points(cls, shape, ys, xs, colors, *, weights, sigma: float) -> _LocalMean:
        """The same for an image of ``shape`` (H, W) that is zero but at the pixels ``(ys, xs)``
        (N,), which hold ``colors`` (N, 3) with ``weights`` (N,): the block sums are taken from the
        points themselves (``bincount``), without full-size images."""
        self = cls.__new__(cls)
        k, small = self._geometry(sigma)
        bh, bw = -(-shape[0] // k), -(-shape[1] // k)
        block = (ys // k) * bw + xs // k
        weights = np.asarray(weights, np.float64)

        def mean(v):
            return (np.bincount(block, weights=v, minlength=bh * bw).reshape(bh, bw) / (k * k)).astype(np.float32)

        self.den = ndi.uniform_filter(mean(weights), small)
        self.num = np.empty((3, bh, bw), np.float32)
        for c in range(3):
            ndi.uniform_filter(mean(weights * colors[:, c]), small, output=self.num[c])
        return self

    def at(self, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean colour (N, 3) float32, weight density (N,)) at pixels ``(ys, xs)``."""
        by, bx = ys // self.k, xs // self.k
        den = self.den[by, bx]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.num[:, by, bx].T / den[:, None]
        return mean.astype(np.float32), den


def _edge(image: np.ndarray, mask: np.ndarray, backdrop: np.ndarray, p: _Params, *, solve: bool) -> _Edge | None:
    """Alpha and local colours of the band around ``mask``'s edge (and of the strands and gaps
    found beyond it), or None when the mask has no edge. With ``solve``, the alphas are then
    solved together by closed-form matting (:func:`_solve`); without, they are the projection's."""
    # chamfer distances (exact enough for a band, and several times faster than the Euclidean ones)
    big = np.iinfo(np.int32).max
    d_in = ndi.distance_transform_cdt(mask, metric="taxicab") if not mask.all() else np.full(mask.shape, big)
    d_out = ndi.distance_transform_cdt(~mask, metric="taxicab") if mask.any() else np.full(mask.shape, big)
    band = np.where(mask, d_in <= p.r_in, d_out <= p.r_out)
    if not band.any():
        return None
    img = image.astype(np.float32)
    f_loc = _LocalMean(img, mask & ~band, p.sigma_f)
    b_loc = _LocalMean(img, ~mask & ~band, p.sigma_b)

    by, bx = np.nonzero(band)
    px = img[by, bx]  # (N, 3), raster order like img[band]
    fl, f_den = f_loc.at(by, bx)
    bl = _backdrop_at(*b_loc.at(by, bx), px, backdrop)
    no_f = ~(f_den > 1e-3)
    # the subject's colour from deeper in (the hair's own colour, past the hair reach): where its
    # line to the backdrop passes nearer the pixel than the local mean's, it is the subject colour
    # mixed there (a thin dark strand is not a mix of the backdrop with the lighter edge mean)
    deep = _LocalMean(img, mask & (d_in > p.hair), p.hair + 1)
    fd, d_den = deep.at(by, bx)
    fl = _nearer_line(px, fl, fd, bl, ok=(d_den > 1e-3) & ~no_f)
    fl[no_f] = px[no_f]  # (and no trust in the projection there: see _alpha)
    sigma = max(0.5, p.feather / 2)
    soft = ndi.gaussian_filter(mask.astype(np.float32), sigma)[band]
    a = _alpha(px, fl, bl, inside=mask[band], fallback=soft, unknown=no_f)
    zones = []
    hair = _hair(img, mask, band, a, d_out=d_out, band_f=(by[~no_f], bx[~no_f], fl[~no_f]), b_loc=b_loc,
                 deep=deep, backdrop=backdrop, p=p)  # fmt: skip
    if hair is not None:
        zones.append(hair)
    gaps = _gaps(img, mask, band, a, d_in=d_in, b_loc=b_loc, deep=deep, backdrop=backdrop, p=p)
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
        by, bx = np.nonzero(sel)
        a, fl, bl, no_f = full_a[sel], full_f[sel], full_b[sel], full_nf[sel]
    if solve:
        a = _solve(img, mask, by, bx, a)
    return _Edge(by, bx, a, fl, bl, no_f)


def _solve(img: np.ndarray, mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Closed-form matting of the edge pixels ``(ys, xs)`` (raster order), the rest held at ``mask``.

    Minimizes ``a' L a + sum(w (a - prior)^2)`` where ``L`` is the matting Laplacian of the 3 x 3
    windows that touch the unknown pixels and ``w`` is ``_PRIOR_IN`` inside the hard mask,
    ``_PRIOR_OUT`` outside it. The unknowns are the edge pixels inside the mask or soft, and
    their neighbours; edge pixels out on the backdrop with a 0 prior and no such neighbour keep
    it. Returns the alphas (N,) float32 in 0-1, snapped near 0 and 1 like the projection's.
    """
    h, w = mask.shape
    if len(ys) == 0 or h < 3 or w < 3:
        return prior
    inside = mask[ys, xs]
    free = np.zeros((h, w), bool)
    free[ys, xs] = inside | (prior > 0)
    pick = np.zeros(len(ys), bool)  # those and their 8 neighbours
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            pick |= free[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)]
    out = prior.copy()
    if pick.any():
        out[pick] = _closed_form(img, mask, ys[pick], xs[pick], prior=prior[pick], inside=inside[pick])
    return out


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    """``m`` dilated by a (2r + 1)-square: a maximum filter on its bytes, the same pixels as
    ``binary_dilation`` with a 3 x 3 structure ``r`` times, in a fraction of the time."""
    return ndi.maximum_filter(m.view(np.uint8), size=2 * r + 1).view(bool)


def _closed_form(img, mask, ys, xs, *, prior, inside) -> np.ndarray:
    """The solve of :func:`_solve` over the unknown pixels ``(ys, xs)`` (raster order).

    The matting Laplacian is assembled as 25 diagonals (two pixels that share a 3 x 3 window
    are at most 2 pixels apart in each direction): each unknown's 25 coefficients are gathered
    from the 9 windows that contain it (``_window_terms``), then read as a CSR matrix with 25
    entries a row; the terms of neighbours held at the hard mask move to the right-hand side.
    """
    h, w = mask.shape
    n = len(ys)
    pw = w + 4  # a frame padded by 2, so that all 25 neighbours of any pixel exist
    flat = (ys + 2) * pw + (xs + 2)
    index = np.full((h + 4) * pw, -1, np.int32)
    index[flat] = np.arange(n, dtype=np.int32)
    centres = np.zeros((h, w), bool)  # the windows that hold an unknown
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            centres[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)] = True
    centres[[0, -1], :] = False
    centres[:, [0, -1]] = False
    cy, cx = np.nonzero(centres)
    vals = _window_terms(img, cy, cx)  # (K + 1, 9, 9), the last all zero
    window = np.full((h + 4) * pw, len(cy), np.int32)  # the window centred on each pixel (K: none)
    window[(cy + 2) * pw + (cx + 2)] = np.arange(len(cy), dtype=np.int32)
    oy, ox = np.divmod(np.arange(9), 3)
    off = (oy[None, :] - oy[:, None] + 2) * 5 + (ox[None, :] - ox[:, None] + 2)  # (9, 9): diagonal of (p, q)
    coef = np.zeros((25, n), np.float32)
    for p in range(9):  # the unknown is pixel p of the window centred 1 - (oy, ox) away
        k = window[flat + (1 - oy[p]) * pw + (1 - ox[p])]
        coef[off[p]] += vals[k, p, :].T
    weight = np.where(inside, np.float32(_PRIOR_IN), np.float32(_PRIOR_OUT))
    coef[12] += weight
    dy, dx = np.divmod(np.arange(25), 5)
    nb = flat[None, :] + ((dy - 2) * pw + (dx - 2))[:, None]  # (25, N) neighbours in the padded frame
    cols = index[nb]
    unk = cols >= 0
    known = np.zeros((h + 4, pw), np.float32)
    known[2:-2, 2:-2] = mask
    rhs = weight * prior - np.where(unk, 0, coef * known.ravel()[nb]).sum(axis=0)
    data = np.where(unk, coef, 0).T.astype(np.float64).ravel()
    cols = np.where(unk, cols, np.arange(n, dtype=np.int32)).T.ravel()
    sparse, splinalg = _sparse()
    lap = sparse.csr_matrix((data, cols, np.arange(0, 25 * n + 1, 25)), shape=(n, n))
    # conjugate gradients (the system is symmetric positive definite) from the projection, with a
    # Jacobi preconditioner: tens of milliseconds where a sparse LU took up to seconds on hair
    x, _ = splinalg.cg(lap, rhs.astype(np.float64), x0=prior.astype(np.float64), rtol=_CG_TOL, maxiter=_CG_ITER,
                       M=sparse.diags(1.0 / coef[12].astype(np.float64)))  # fmt: skip
    return _snap(np.clip(x, 0.0, 1.0).astype(np.float32))


def _window_terms(img: np.ndarray, cy: np.ndarray, cx: np.ndarray) -> np.ndarray:
    """The matting Laplacian's terms of the 3 x 3 windows centred on ``(cy, cx)`` (K,).

    ``delta_pq - (1 + (I_p - mu)' inv(cov + eps / 9) (I_q - mu)) / 9`` for the window's pixels
    p, q (raster order in the window), as (K + 1, 9, 9) float32 with a last window all zero
    (for pixels that are no window's centre). Colours 0-1; products channel by channel, which
    is several times faster than batched matrix products on so many tiny matrices.
    """
    w = img.shape[1]
    oy, ox = np.divmod(np.arange(9), 3)
    lin = (cy[:, None] + (oy - 1)) * w + (cx[:, None] + (ox - 1))  # (K, 9) window pixels
    chan = img.reshape(-1, 3)
    dev = []
    for c in range(3):
        v = chan[:, c][lin] * np.float32(1 / 255)
        dev.append(v - v.mean(axis=1, keepdims=True))
    # covariances and their inverses (adjugates) in float64: flat black or white windows are near singular
    a, b, c, d, e, f = (
        _dot(dev[i], dev[j]).astype(np.float64) / 9 + (_EPS / 9 if i == j else 0.0)
        for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    )
    adj = np.stack([d * f - e * e, c * e - b * f, b * e - c * d, a * f - c * c, b * c - a * e, a * d - b * b])
    adj /= a * adj[0] + b * adj[1] + c * adj[2]
    inv = adj.astype(np.float32)[[0, 1, 2, 1, 3, 4, 2, 4, 5]].reshape(3, 3, -1, 1)
    t = np.empty((len(cy), 9, 3), np.float32)  # inv(cov) (I_p - mu), pixel by pixel
    for i in range(3):
        t[:, :, i] = inv[i][0] * dev[0] + inv[i][1] * dev[1] + inv[i][2] * dev[2]
    out = np.empty((len(cy) + 1, 9, 9), np.float32)
    out[-1] = 0
    g = np.matmul(t, np.stack(dev, axis=1), out=out[:-1])  # (K, 9, 9)
    g += 1
    g *= np.float32(-1 / 9)
    g += np.eye(9, dtype=np.float32)
    return out


def _refine(image: np.ndarray, small: _Edge, small_mask: np.ndarray, f: int) -> tuple[_Edge | None, np.ndarray]:
    """Carry a matte made on the image box-reduced by ``f`` to full size.

    Returns the full-size edge (the pixels under the reduced matte's soft pixels and under the
    pixels on either side of its hard edge, each with its alpha from its own colour; None when
    there are none) and the full-size hard alpha (uint8) that holds everywhere else.
    """
    h, w = image.shape[:2]
    sh, sw = small_mask.shape
    a_s = small_mask.astype(np.float32)
    a_s[small.ys, small.xs] = small.a
    on = a_s >= 0.5
    hard = _upsample(on, f, h, w)
    known = np.zeros((sh, sw), bool)
    known[small.ys, small.xs] = True
    soft = (a_s > 0) & (a_s < 1)
    cut = ndi.binary_dilation(on) & ~ndi.binary_erosion(on, border_value=1)  # the hard edge, both sides
    todo = soft | (cut & known)
    if not todo.any():
        return None, hard
    # the reduced matte's local colours, per reduced pixel
    idx = np.full((sh, sw), -1, np.int64)
    idx[small.ys, small.xs] = np.arange(len(small.ys))
    py, px = np.nonzero(todo)
    parent = idx[py, px]
    dy, dx = np.divmod(np.arange(f * f), f)
    ys = (py[:, None] * f + dy).ravel()
    xs = (px[:, None] * f + dx).ravel()
    # each reduced pixel's colours repeated for the f x f pixels of its block (a repeat, not a gather)
    fl, bl, no_f = (np.repeat(np.take(v, parent, axis=0), f * f, axis=0) for v in (small.fl, small.bl, small.no_f))
    if (py[-1] + 1) * f > h or (px.max() + 1) * f > w:  # blocks cut off by the image's bottom or right side
        inside = (ys < h) & (xs < w)
        ys, xs, fl, bl, no_f = ys[inside], xs[inside], fl[inside], bl[inside], no_f[inside]
    # the reduced alpha, bilinear at the full-size pixel centres: the fallback and the side of the edge
    coarse = ndi.map_coordinates(a_s, [(ys + 0.5) / f - 0.5, (xs + 0.5) / f - 0.5], order=1, mode="nearest")
    px_full = _pixels_at(image, ys, xs).astype(np.float32)
    a = _alpha(px_full, fl, bl, inside=coarse >= 0.5, fallback=coarse.astype(np.float32), unknown=no_f)
    return _Edge(ys, xs, a, fl, bl, no_f), hard


def _pixels_at(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``image[ys, xs]`` ((N,) or (N, C)): for a contiguous image a ``take`` of whole pixels from
    its flat rows, several times faster than the two-index gather (8 against 1.5 ms a million pixels)."""
    if not image.flags.c_contiguous:
        return image[ys, xs]
    return np.take(image.reshape(-1, *image.shape[2:]), ys * image.shape[1] + xs, axis=0)


def _upsample(mask: np.ndarray, f: int, h: int, w: int) -> np.ndarray:
    """A reduced boolean mask back to (h, w) as 0/255 uint8, each pixel repeated f x f."""
    m8 = mask.astype(np.uint8) * np.uint8(255)
    return np.ascontiguousarray(np.repeat(np.repeat(m8, f, axis=0)[:h], f, axis=1)[:, :w])


def _small_alpha(mask: np.ndarray, e: _Edge) -> np.ndarray:
    """The uint8 matte of a reduced image: its hard mask with the edge's alphas."""
    a = mask.astype(np.uint8) * np.uint8(255)
    a[e.ys, e.xs] = np.round(e.a * 255).astype(np.uint8)
    return a


def _foreground(image: np.ndarray, alpha: np.ndarray, e: _Edge) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The subject's colour ``F`` of the edge's mixed pixels, solved as one smooth field.

    Minimizes, per channel, ``sum_i d_i (a_i F_i - (I_i - (1 - a_i) B_i))^2 + sum_ij w_ij (F_i - F_j)^2
    + sum_i m_i (F_i - Fl_i)^2`` over the pixels with ``0 < a < 1``: the compositing equation
    with the local backdrop ``B``, weighted by ``a^2`` (a faint pixel says little about its
    subject colour) and ``d = 0`` where the channel is clipped (a white or black backdrop's
    255 or 0 says nothing); 4-neighbour smoothness ``w = _F_SMOOTH * (_F_EPS + |a_i - a_j|)`` (as in
    Germer et al. 2020's multi-level foreground estimation: strongest across the alpha's
    steps, so a thin strand takes its colour from the confident subject it leaves), the
    neighbours with alpha 1 held at their own colour; and a slight pull ``m`` to the local
    subject colour ``Fl``. Solved by conjugate gradients. The edge's pixels with alpha 0 then
    get the field's local mean (weighted by ``a^2``): the subject's edge colour extended outward. Returns coordinates
    (two (M,)) and colours ((M, 3) float, 0-255, unrounded).
    """
    mix = (e.a > 0) & (e.a < 1)
    ys, xs = e.ys[mix], e.xs[mix]
    n = len(ys)
    if not n:
        return ys, xs, np.zeros((0, 3))
    h, w = alpha.shape
    a = e.a[mix].astype(np.float64)
    scale = 255 if alpha.dtype == np.uint8 else 1  # (a float matte for depth 16)
    af = alpha.reshape(-1)
    index = np.full(h * w, -1, np.int32)
    index[ys * w + xs] = np.arange(n, dtype=np.int32)
    img = image.reshape(-1, 3)
    diag = np.zeros(n)
    extra = np.zeros((n, 3))
    rows, cols, vals = [], [], []
    me = np.arange(n)
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        j = ny[ok] * w + nx[ok]
        i = me[ok]
        aj = af[j]
        wij = _F_SMOOTH * (_F_EPS + np.abs(a[i] - aj / scale))
        ji = index[j]
        unk = ji >= 0
        sure = ~unk & (aj >= scale)  # neighbours on the backdrop (alpha 0) say nothing of F
        np.add.at(diag, i[unk | sure], wij[unk | sure])
        rows.append(i[unk])
        cols.append(ji[unk])
        vals.append(-wij[unk])
        np.add.at(extra, i[sure], wij[sure, None] * img[j[sure]])
    sparse, splinalg = _sparse()
    off = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    px = img[ys * w + xs].astype(np.float64)
    bl = e.bl[mix].astype(np.float64)
    fl = e.fl[mix].astype(np.float64)
    prior = np.where(e.no_f[mix], 1e-4, _F_PRIOR)  # (only a regulariser where no subject colour is known:
    fl[e.no_f[mix]] = 0.0  # the pixel's own colour is the old backdrop's)
    target = px - (1 - a[:, None]) * bl  # a F, by the compositing equation
    data = ((px > 1) & (px < 254)).astype(np.float64)
    fg = np.empty((n, 3))
    for c in range(3):
        dg = diag + data[:, c] * a * a + prior
        lap = splinalg.LinearOperator((n, n), matvec=lambda x, dg=dg: off @ x + dg * x, dtype=np.float64)
        rhs = data[:, c] * a * target[:, c] + prior * fl[:, c] + extra[:, c]
        x0 = np.clip(np.where(a > 0.3, target[:, c] / np.maximum(a, 0.3), fl[:, c]), 0, 255)
        fg[:, c], _ = splinalg.cg(lap, rhs, x0=x0, rtol=1e-3, maxiter=300, M=sparse.diags(1.0 / dg))
    np.clip(fg, 0, 255, out=fg)
    clear = e.a == 0  # the edge's pixels out on the backdrop: the field's local mean, confident pixels first
    if clear.any():
        cy, cx = e.ys[clear], e.xs[clear]
        ext, den = _LocalMean.of_points((h, w), ys, xs, fg, weights=a * a, sigma=_F_REACH).at(cy, cx)
        ext[~(den > 1e-6)] = 0.0
        ys, xs = np.concatenate([ys, cy]), np.concatenate([xs, cx])
        fg = np.concatenate([fg, ext])
    return ys, xs, fg


def _foreground_full(image, edge, small, small_fg, f):
    """The full-size colours of a matte refined from a reduced one (see :func:`_refine`).

    Each mixed full-size pixel weighs its own un-mixed colour (by ``a^2``, as in
    :func:`_foreground`) against the field solved on the reduced image at its reduced pixel.
    """
    mix = np.flatnonzero(edge.a < 1)
    ys, xs = edge.ys[mix], edge.xs[mix]
    field = small.copy()
    sy, sx, sfg = small_fg
    field[sy, sx] = sfg
    out = np.empty((len(mix), 3), np.float32)
    for c in range(0, len(mix), _F_STRIP):  # in strips of pixels, to bound the temporaries at 12 MP
        i, y, x = mix[c : c + _F_STRIP], ys[c : c + _F_STRIP], xs[c : c + _F_STRIP]
        py, px = np.minimum(y // f, field.shape[0] - 1), np.minimum(x // f, field.shape[1] - 1)
        par = _pixels_at(field, py, px).astype(np.float32)
        a = np.take(edge.a, i)[:, None]
        px = _pixels_at(image, y, x).astype(np.float32)
        target = px - (1 - a) * np.take(edge.bl, i, axis=0)
        data = ((px > 1) & (px < 254)).astype(np.float32)
        fg = (data * a * target + _F_PULL * par) / (data * a * a + _F_PULL)
        out[c : c + _F_STRIP] = np.clip(fg, 0, 255)
    return ys, xs, out


def _backdrop_at(bl, b_den, px, backdrop) -> np.ndarray:
    """Local backdrop colours ``bl``; the model's nearest colour where no sure backdrop is near."""
    no_b = ~(b_den > 1e-3)
    if no_b.any():
        q = px[no_b]
        bl[no_b] = backdrop[np.argmin(((q[:, None, :] - backdrop[None]) ** 2).sum(axis=2), axis=1)]
    return bl


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise dot products of (N, 3) arrays (several times faster than ``(u * v).sum(axis=1)``)."""
    return np.einsum("ij,ij->i", u, v)


def _alpha(px, fl, bl, *, inside, fallback, unknown) -> np.ndarray:
    """Alpha of pixels ``px`` (N, 3) between local subject ``fl`` and backdrop ``bl`` colours."""
    diff = fl - bl
    rel = px - bl
    n2 = _dot(diff, diff)
    norm = np.sqrt(n2)
    # outside the hard mask: projection onto the line B -> F (a shadow or a tint on the backdrop
    # is not subject); inside: distance from B over |F - B| (a subject pixel of another hue than
    # the local mean, e.g. a strand lighter than the hair, is still subject)
    proj = _dot(rel, diff) / np.maximum(n2, 1e-6)
    if inside.any():
        dist = np.sqrt(_dot(rel, rel))
        ratio = np.maximum(dist - _NOISE, 0) / np.maximum(norm - _NOISE, 1e-3)
        proj = np.where(inside, ratio, proj)
    conf = np.clip((norm - _CONF_LO) / (_CONF_HI - _CONF_LO), 0.0, 1.0)
    conf[unknown] = 0.0
    return _snap(np.clip(conf * proj + (1 - conf) * fallback, 0.0, 1.0).astype(np.float32))


def _nearer_line(px, fl, fd, bl, *, ok) -> np.ndarray:
    """Of two subject colours (N, 3), per pixel the one whose segment to the backdrop ``bl``
    passes nearer the pixel ``px`` (``fd`` only where ``ok``); a new array."""
    res = []
    for f in (fl, fd):
        diff = f - bl
        t = np.clip(_dot(px - bl, diff) / np.maximum(_dot(diff, diff), 1e-6), 0.0, 1.0)
        r = px - bl - t[:, None] * diff
        res.append(_dot(r, r))
    use = (ok & (res[1] < res[0]))[:, None]
    return np.where(use, fd, fl)


def _snap(a: np.ndarray) -> np.ndarray:
    """Alphas within ``_SNAP`` of 0 or 1 set to it (in place; returned)."""
    a[a < _SNAP] = 0.0
    a[a > 1 - _SNAP] = 1.0
    return a


def _hair(img, mask, band, a, *, d_out, band_f, b_loc, deep, backdrop, p):
    """Strands beyond the band that the image says are subject, connected to the band's soft edge.

    Their subject colour is the band's local one, or the deep subject's (``deep``, a
    :class:`_LocalMean`) where that explains the pixel better (:func:`_nearer_line`).

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
    zy, zx = np.nonzero(zone)
    zp = img[zy, zx]
    zf, zden = _LocalMean.of_points(mask.shape, ky, kx, kf, weights=np.ones(len(ky)), sigma=p.hair / 2 + 1).at(zy, zx)
    unknown = ~(zden > 1e-4)
    zf[unknown] = zp[unknown]  # no subject colour known nearby: no strand (see _alpha)
    zb = _backdrop_at(*b_loc.at(zy, zx), zp, backdrop)
    fd, d_den = deep.at(zy, zx)
    zf = _nearer_line(zp, zf, fd, zb, ok=(d_den > 1e-3) & ~unknown)
    az = _alpha(zp, zf, zb, inside=np.zeros(len(zp), bool), fallback=np.zeros(len(zp), np.float32), unknown=unknown)
    cand = np.zeros(mask.shape, bool)
    cand[zone] = az >= _HAIR_LO
    keep = _touching(cand, seeds)
    if not keep.any():
        return None
    kz = keep[zone]
    return keep, az[kz], zf[kz], zb[kz]


def _gaps(img, mask, band, a, *, d_in, b_loc, deep, backdrop, p):
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
    ifl, iden = deep.at(iy, ix)
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
    keep = _touching(low, seeds)
    if not keep.any():
        return None
    keep = _dilate(keep, 2) & inner
    k = keep[iy, ix]
    return keep, ai[k], ifl[k], ibl[k]


def _touching(cand: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The pixels of ``cand`` 8-connected to ``seeds`` through ``cand`` (both (H, W) bool)."""
    lbl, n = ndi.label(cand | seeds, structure=np.ones((3, 3), bool))
    hit = np.zeros(n + 1, bool)  # a lookup table of the labels the seeds touch
    hit[lbl[seeds]] = True
    hit[0] = False
    return hit[lbl] & cand
