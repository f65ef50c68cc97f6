"""Find the backdrop of a headshot: the hard subject mask at full resolution."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from ._color import rgb_to_lab
from .settings import Settings

__all__ = ["Segmentation", "segment"]

log = logging.getLogger(__name__)

WORK_SIDE = 400  # long side of the working image, in pixels
_TOLERANCES = np.geomspace(1.5, 60.0, 32).astype(np.float32)


@dataclass(frozen=True)
class Segmentation:
    """The result of :func:`segment`.

    Attributes
    ----------
    mask : ndarray of bool, shape (H, W)
        True on the subject, at the image's full resolution.
    backdrop : ndarray of uint8, shape (K, 3)
        The backdrop colours (sRGB) the model found, K >= 1.
    tolerance : float
        The colour distance (CIE delta E, or the recipe's RGB distance for presets) used.
    work_mask : ndarray of bool, shape (h, w)
        The mask at the working resolution (equal to ``mask`` when no downscaling).
    """

    mask: np.ndarray
    backdrop: np.ndarray
    tolerance: float
    work_mask: np.ndarray


def segment(image: np.ndarray, *, settings: Settings | None = None) -> Segmentation:
    """Separate the subject of a headshot from its plain or studio backdrop.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        sRGB pixels.
    settings : Settings, optional
        ``method``, ``preset``, ``clusters``, ``tolerance``, ``fill_holes``,
        ``min_island`` and ``seed`` are used. Defaults to ``Settings()``.

    Returns
    -------
    Segmentation
        The full-resolution boolean subject mask and the backdrop model.

    Raises
    ------
    ValueError
        If ``image`` is not an (H, W, 3) uint8 array of at least 2x2 pixels.
    """
    settings = settings or Settings()
    _check_image(image)
    if settings.preset == "classic-threshold":
        return _classic_threshold(image)
    if settings.preset == "classic-kmeans":
        return _classic_kmeans(image, settings)

    small = _downscale(image, WORK_SIDE)
    lab = rgb_to_lab(small)
    seeds = _border_seeds(lab.shape[:2])
    centers, keep = _backdrop_model(lab, seeds, settings)
    seeds &= keep
    if settings.effective_method == "kmeans":
        dist = _kmeans_distance(lab, centers, settings)
    else:
        dist = _color_distance(lab, centers)
    barrier = _barrier(dist, seeds)
    tol = _auto_tolerance(barrier) if settings.tolerance == "auto" else float(settings.tolerance)
    work = barrier > tol
    work = _clean(work, settings)
    mask = _upscale_mask(work, image.shape[:2])
    backdrop = _lab_centers_to_rgb(centers)
    log.debug("segment: %d backdrop colours, tolerance %.1f", len(centers), tol)
    return Segmentation(mask=mask, backdrop=backdrop, tolerance=tol, work_mask=work)


# -- input ----------------------------------------------------------------------------------
def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must have shape (H, W, 3) (RGB), got {image.shape}; convert grey or RGBA "
            "images with knockout.imageio.read_image or Pillow's convert('RGB') first"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}; scale 16-bit images to 8 bits first")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {image.shape[1]}x{image.shape[0]}")


def _downscale(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    f = side / max(h, w)
    if f >= 1:
        return image
    size = (max(2, round(w * f)), max(2, round(h * f)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


# -- the article's recipes, exactly -----------------------------------------------------------
def _classic_threshold(image: np.ndarray) -> Segmentation:
    first = image[0, 0].astype(np.int16)
    diff = np.abs(image.astype(np.int16) - first).max(axis=2)
    bg = diff <= 20
    return Segmentation(mask=~bg, backdrop=image[:1, 0].copy(), tolerance=20.0, work_mask=~bg)


def _classic_kmeans(image: np.ndarray, settings: Settings) -> Segmentation:
    from sklearn.cluster import KMeans

    pixels = image.reshape(-1, 3)
    labels = KMeans(random_state=settings.seed).fit_predict(pixels)
    bg = (labels == labels[0]).reshape(image.shape[:2])
    return Segmentation(mask=~bg, backdrop=image[:1, 0].copy(), tolerance=0.0, work_mask=~bg)


# -- backdrop model -------------------------------------------------------------------------
def _border_seeds(shape: tuple[int, int]) -> np.ndarray:
    """Top edge and upper 60 % of the side edges, a thin strip."""
    h, w = shape
    b = max(1, round(0.015 * max(h, w)))
    seeds = np.zeros(shape, bool)
    seeds[:b, :] = True
    side = max(b, round(0.6 * h))
    seeds[:side, :b] = True
    seeds[:side, -b:] = True
    return seeds


def _backdrop_model(lab: np.ndarray, seeds: np.ndarray, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Backdrop colours (Lab, shape (K, 3)) and which seed pixels belong to the backdrop."""
    from sklearn.cluster import KMeans

    h, w = seeds.shape
    pts = lab[seeds]
    k = min(6, len(pts))
    km = KMeans(n_clusters=k, n_init=1, random_state=settings.seed).fit(pts)
    lbl = np.full(seeds.shape, -1, np.int32)
    lbl[seeds] = km.labels_
    share = np.bincount(km.labels_, minlength=k) / len(pts)
    # corners: where the subject almost never is
    c = max(2, round(0.12 * w))
    corner = np.zeros(seeds.shape, bool)
    corner[: max(2, round(0.12 * h)), :c] = True
    corner[: max(2, round(0.12 * h)), -c:] = True
    corner &= seeds
    in_corner = np.bincount(lbl[corner], minlength=k) / max(1, corner.sum())
    good = (in_corner >= 0.05) | (share >= 0.3)
    if not good.any():
        good[np.argmax(share)] = True
    keep = np.isin(lbl, np.flatnonzero(good))
    return km.cluster_centers_[good].astype(np.float32), keep


def _color_distance(lab: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d = np.full(lab.shape[:2], np.inf, np.float32)
    for c in centers:
        np.minimum(d, np.sqrt(((lab - c) ** 2).sum(axis=2)), out=d)
    return d


def _kmeans_distance(lab: np.ndarray, backdrop: np.ndarray, settings: Settings) -> np.ndarray:
    """Each pixel gets its KMeans cluster centre's distance to the backdrop colours."""
    from sklearn.cluster import KMeans

    pts = lab.reshape(-1, 3)
    rng = np.random.default_rng(settings.seed)
    sample = pts[rng.choice(len(pts), size=min(len(pts), 20_000), replace=False)]
    km = KMeans(n_clusters=settings.clusters, n_init=1, random_state=settings.seed).fit(sample)
    labels = km.predict(pts)
    cdist = _color_distance(km.cluster_centers_[:, None, :].astype(np.float32), backdrop)[:, 0]
    return cdist[labels].reshape(lab.shape[:2])


# -- spatial reasoning ------------------------------------------------------------------------
def _barrier(dist: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Smallest tolerance at which each pixel joins the backdrop grown from the seeds."""
    out = np.full(dist.shape, np.inf, np.float32)
    for t in _TOLERANCES:
        lbl, _ = ndi.label(dist <= t)
        ids = np.unique(lbl[seeds & (lbl > 0)])
        reached = np.isin(lbl, ids) & (lbl > 0)
        out[reached & np.isinf(out)] = t
    return out


def _auto_tolerance(barrier: np.ndarray) -> float:
    """The most stable tolerance: where the subject's area changes least."""
    n = barrier.size
    fg = np.array([(barrier > t).sum() / n for t in _TOLERANCES])
    best, best_t = np.inf, float(_TOLERANCES[len(_TOLERANCES) // 2])
    for i in range(2, len(_TOLERANCES) - 2):
        if not (0.03 <= fg[i] <= 0.97):
            continue
        change = (fg[i - 2] - fg[i + 2]) / fg[i]
        if change <= best:
            best, best_t = change, float(_TOLERANCES[i])
    return best_t


def _clean(fg: np.ndarray, settings: Settings) -> np.ndarray:
    n = fg.size
    lbl, count = ndi.label(fg)
    if count:
        sizes = np.bincount(lbl.ravel())[1:]
        keep = sizes >= max(1, settings.min_island * n)
        keep[np.argmax(sizes)] = True
        fg = np.isin(lbl, np.flatnonzero(keep) + 1)
    if settings.fill_holes:
        fg = ndi.binary_fill_holes(fg)
    else:
        bg_lbl, bg_count = ndi.label(~fg)
        if bg_count:
            sizes = np.bincount(bg_lbl.ravel())[1:]
            small = np.flatnonzero(sizes < settings.min_island * n) + 1
            fg = fg | np.isin(bg_lbl, small)
    return fg


def _upscale_mask(work: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if work.shape == tuple(shape):
        return work
    im = Image.fromarray(work.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(im) >= 128


def _lab_centers_to_rgb(centers: np.ndarray) -> np.ndarray:
    from ._color import lab_to_rgb

    return lab_to_rgb(centers)
