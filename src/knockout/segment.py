"""Find the backdrop of a headshot: the hard subject mask at full resolution."""

from __future__ import annotations

import functools
import logging
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from ._color import rgb_to_lab
from ._cpus import usable_cpus
from ._kmeans import KMeans, thread_pools
from .confidence import Assessment, assess
from .prior import Face, find_face
from .settings import Settings

__all__ = ["Segmentation", "segment"]

log = logging.getLogger(__name__)

WORK_SIDE = 400  # long side of the working image, in pixels
_TOLERANCES = np.geomspace(1.0, 80.0, 40).astype(np.float32)
_ITERATIONS = 3
_COARSE_MIN = 100  # a working image narrower than this (its short side) has every pass at full size
_BOX_SAMPLES = 3  # a reduction box-averages at least this many samples per side (see _downscale)
_EIGHT = np.ones((3, 3), bool)
_K = 2  # half-width of the window (in tolerance steps) over which area change is measured
_FLAT = 0.005  # area change (fraction of the image) still counted as flat
_CLEARED = 0.05  # a plateau that clears this much more of the frame beside the head is preferred
_NEAR = 0.05  # the backdrop's local colour is averaged over about this share of the working image's long side
_MARGIN = 3  # pixels next to the subject (mixed with it) left out of the backdrop's local colour
_FAR = 0.05  # where less of the neighbourhood than this is backdrop, the fitted surface stands in for it
_SMOOTH = 1.0  # texture (Lab deviation) above the smoothest backdrop candidate's still counted as backdrop


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
    assessment : Assessment or None
        How sure the segmentation is (:func:`knockout.confidence.assess`); None for the presets.
    face : Face or None
        The face found in the working image (its coordinates), if any.
    """

    mask: np.ndarray
    backdrop: np.ndarray
    tolerance: float
    work_mask: np.ndarray
    assessment: Assessment | None = None
    face: Face | None = None


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

    # KMeans on a few thousand points is fastest single-threaded, and the daemon and
    # `knockout cut -j` already run one image per core
    with thread_pools().limit(limits=1):  # found once per process, no scikit-learn
        return _segment(image, settings)


def _segment(image: np.ndarray, settings: Settings) -> Segmentation:
    small = _downscale(image, WORK_SIDE)
    lab = rgb_to_lab(small)
    h, w = lab.shape[:2]
    seeds = _border_seeds((h, w))
    texture = _texture(lab)
    face = find_face(small) if settings.face_prior else None
    seeds &= _backdrop_seeds(lab, seeds, texture, settings, above=None if face is None else face.above((h, w)))
    rng = np.random.default_rng(settings.seed)
    centers = None  # the kmeans clusters of the previous pass, the next pass's starting point
    # the passes before the last only find the backdrop the next one fits its colour on: on every
    # other pixel they cost a quarter (a tiny image is worked at full size throughout)
    coarse = min(h, w) >= _COARSE_MIN
    scale = 0.5 if coarse else 1.0
    grid = (slice(None, None, 2), slice(None, None, 2)) if coarse else (slice(None), slice(None))
    at = (lab[grid], seeds[grid], texture[grid])
    region = at[1]
    surface = _fit_surface(at[0], region, degree=1, rng=rng)
    for i in range(_ITERATIONS):
        if i == _ITERATIONS - 1 and coarse:  # the last pass, at the working size
            at, scale = (lab, seeds, texture), 1.0
            region = np.repeat(np.repeat(region, 2, axis=0), 2, axis=1)[:h, :w] | seeds
        if i:  # refit the smooth backdrop on the backdrop the previous pass found, then follow it locally
            surface = _local_backdrop(at[0], region, _fit_surface(at[0], region, degree=2, rng=rng))
        found = _one_pass(at, surface, face=face, scale=scale, settings=settings, rng=rng, centers=centers)
        barrier, tol, centers = found
        region = ndi.binary_erosion(barrier <= tol, iterations=2 if scale == 1 else 1) | at[1]
    work = _clean(barrier > tol, settings)
    mask = _upscale_mask(work, image.shape[:2])
    backdrop = _backdrop_colors(small, region, rng)
    clean = functools.partial(_clean, settings=settings)
    judged = assess(work, barrier, tol, face=face, lab=lab, method=settings.effective_method, clean=clean)
    log.debug("segment: tolerance %.1f, subject %.1f%%, confidence %.2f", tol, 100 * work.mean(), judged.confidence)
    return Segmentation(mask=mask, backdrop=backdrop, tolerance=tol, work_mask=work, assessment=judged, face=face)


def _one_pass(
    at: tuple[np.ndarray, np.ndarray, np.ndarray],
    surface: np.ndarray,
    *,
    face: Face | None,
    scale: float,
    settings: Settings,
    rng: np.random.Generator,
    centers: np.ndarray | None,
) -> tuple[np.ndarray, float, np.ndarray | None]:
    """One segmentation pass on ``at`` (Lab, seeds, texture): the barrier, the tolerance, kmeans' centres.

    ``scale`` is the size of ``at`` against the working image the face was found in.
    """
    lab, seeds, texture = at
    shape = seeds.shape
    residual = lab - surface
    if settings.effective_method == "kmeans":
        cost, centers = _kmeans_cost(residual, seeds, settings, rng, init=centers)
    else:
        cost = np.sqrt((residual**2).sum(axis=2))
    cost += texture
    barrier = _barrier(cost, seeds)
    if settings.tolerance != "auto":
        return barrier, float(settings.tolerance), centers
    if face is not None:  # the face and the body below it replace the bottom centre as the anchor
        face = Face(x=face.x * scale, y=face.y * scale, w=face.w * scale, h=face.h * scale)
        anchor, prior = face.body(shape), (face.sure_subject(shape), face.likely_backdrop(shape))
    else:
        anchor, prior = _anchor(shape), None
    # a colour distance is continuous, so its longest plateau is the subject's outline; the
    # kmeans cost is a few cluster levels, flat between them, so its first plateau is taken
    tol = _auto_tolerance(barrier, seeds, anchor, longest=settings.effective_method != "kmeans", prior=prior)
    return barrier, tol, centers


# -- input ----------------------------------------------------------------------------------
def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must have shape (H, W, 3) (RGB), got {image.shape}; convert grey or RGBA "
            "images with knockout.imageio.decode or Pillow's convert('RGB') first"
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
    step = int(1 / (f * _BOX_SAMPLES))
    if step > 1:  # a big photo: a box mean over every step-th pixel is as good, at 1/step^2 of the cost
        image = np.ascontiguousarray(image[::step, ::step])
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


# -- the article's recipes, exactly -----------------------------------------------------------
def _classic_threshold(image: np.ndarray) -> Segmentation:
    first = image[0, 0].astype(np.int16)
    diff = np.abs(image.astype(np.int16) - first).max(axis=2)
    bg = diff <= 20
    return Segmentation(mask=~bg, backdrop=image[:1, 0].copy(), tolerance=20.0, work_mask=~bg)


def _classic_kmeans(image: np.ndarray, settings: Settings) -> Segmentation:
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    pixels = image.reshape(-1, 3)
    with warnings.catch_warnings():  # a blank frame has fewer colours than clusters: its labels still hold
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=min(8, len(pixels)), random_state=settings.seed).fit_predict(pixels)
    bg = (labels == labels[0]).reshape(image.shape[:2])
    return Segmentation(mask=~bg, backdrop=image[:1, 0].copy(), tolerance=0.0, work_mask=~bg)


# -- backdrop model -------------------------------------------------------------------------
def _border_seeds(shape: tuple[int, int]) -> np.ndarray:
    """Top edge and the upper 60 % of the side edges, a thin strip."""
    h, w = shape
    b = max(1, round(0.015 * max(h, w)))
    seeds = np.zeros(shape, bool)
    seeds[:b, :] = True
    side = max(b, round(0.6 * h))
    seeds[:side, :b] = True
    seeds[:side, -b:] = True
    return seeds


def _backdrop_seeds(
    lab: np.ndarray, seeds: np.ndarray, texture: np.ndarray, settings: Settings, *, above: np.ndarray | None = None
) -> np.ndarray:
    """Reject seed pixels of a subject that touches the border.

    The border strip is clustered by colour; clusters seen in the top corners (where the
    subject almost never is) or covering a large share of the strip are backdrop, if they
    are smooth: among those, one whose median texture (``texture``, local Lab deviation) is
    well above the smoothest one's is hair, skin or cloth touching the border, not backdrop.
    ``above`` (the top edge right above a face whose head reaches it): a cluster that fills it
    but is not seen on the sides below the top edge is the head's (a cap, hair), not backdrop.
    """
    h, w = seeds.shape
    pts = lab[seeds]
    k = _distinct_rows(pts, cap=6)
    if k < 2:
        return seeds
    km = KMeans(n_clusters=k, n_init=1, random_state=settings.seed).fit(pts)
    lbl = np.full(seeds.shape, -1, np.int32)
    lbl[seeds] = km.labels_
    share = np.bincount(km.labels_, minlength=k) / len(pts)
    ch, cw = max(2, round(0.12 * h)), max(2, round(0.12 * w))
    corner = np.zeros(seeds.shape, bool)
    corner[:ch, :cw] = True
    corner[:ch, -cw:] = True
    corner &= seeds
    in_corner = np.bincount(lbl[corner], minlength=k) / max(1, corner.sum())
    good = (in_corner >= 0.05) | (share >= 0.3)
    if not good.any():
        good[np.argmax(share)] = True
    strip_tex = texture[seeds]  # in the order of pts, like km.labels_
    tex = np.array([np.median(strip_tex[km.labels_ == c]) if good[c] else np.inf for c in range(k)])
    good &= tex <= max(2.0 * tex.min(), tex.min() + _SMOOTH)
    if above is not None and (above & seeds).any():
        sides = seeds.copy()
        sides[: max(2, round(0.1 * h))] = False
        on_top = np.bincount(lbl[above & seeds], minlength=k) / max(1, (above & seeds).sum())
        on_sides = np.bincount(lbl[sides], minlength=k) / max(1, sides.sum())
        head = (on_top >= 0.25) & (on_sides < 0.05)
        if (good & ~head).any():
            good &= ~head
    return np.isin(lbl, np.flatnonzero(good))


def _distinct_rows(points: np.ndarray, *, cap: int | None = None) -> int:
    """Number of distinct colours among ``points`` (N, 3) rounded to integers.

    Each rounded row is packed into one integer, so counting is a 1-d unique (the same count as
    ``np.unique(np.round(points), axis=0)``, several times faster). With ``cap``, the count is
    ``min(count, cap)``, and a few hundred rows usually settle it.
    """
    if len(points) == 0:
        return 0
    if cap is not None:
        if len(points) > 64 * cap and _distinct_rows(points[: 64 * cap]) >= cap:
            return cap
        return min(cap, _distinct_rows(points))
    r = np.round(points).astype(np.int64)
    r -= r.min(axis=0)
    span = r.max(axis=0) + 1
    return len(np.unique((r[:, 0] * span[1] + r[:, 1]) * span[2] + r[:, 2]))


def _anchor(shape: tuple[int, int]) -> np.ndarray:
    """Bottom centre: nearly always the subject's body in a headshot."""
    h, w = shape
    anchor = np.zeros(shape, bool)
    anchor[int(0.92 * h) :, int(0.25 * w) : int(0.75 * w)] = True
    return anchor


@functools.lru_cache(maxsize=8)
def _design(shape: tuple[int, int], degree: int) -> np.ndarray:
    """The polynomial terms at every pixel, (h, w, 3 or 6) float32; cached per shape, read-only."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y = 2 * y / max(1, h - 1) - 1
    x = 2 * x / max(1, w - 1) - 1
    cols = [np.ones_like(x), x, y]
    if degree >= 2:
        cols += [x * x, x * y, y * y]
    a = np.stack(cols, axis=-1)
    a.flags.writeable = False
    return a


def _fit_surface(lab: np.ndarray, region: np.ndarray, *, degree: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth backdrop (polynomial in x, y per Lab channel) fitted robustly on ``region``.

    Studio backdrops are smooth: light falloff and vignettes are low-order surfaces.
    """
    a = _design(region.shape, degree)
    idx = np.flatnonzero(region.ravel())
    if len(idx) > 6000:
        idx = rng.choice(idx, 6000, replace=False)
    ab = a.reshape(-1, a.shape[-1])[idx]
    yb = lab.reshape(-1, 3)[idx]
    coef, *_ = np.linalg.lstsq(ab, yb, rcond=None)
    r = np.linalg.norm(ab @ coef - yb, axis=1)
    ok = r <= max(3 * float(np.median(r)), 2.0)
    if ok.sum() >= a.shape[-1] * 4:
        coef, *_ = np.linalg.lstsq(ab[ok], yb[ok], rcond=None)
    return (a @ coef.astype(np.float32)).astype(np.float32)


def _local_backdrop(lab: np.ndarray, region: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """The backdrop's colour near each pixel: the mean of the backdrop found around it, (h, w, 3) float32.

    A spotlit or vignetted backdrop changes colour across the frame in ways a low-order surface
    does not follow (a bright pool behind the head, dark corners); the colour of the backdrop
    already found nearby does. The mean is a normalised box filter applied twice (close to a
    Gaussian of ``_NEAR`` times the long side); where little of the neighbourhood is backdrop
    (inside the subject), ``surface`` takes over smoothly.
    """
    size = max(3, round(_NEAR * max(region.shape) * 6**0.5))
    region = ndi.binary_erosion(region, iterations=_MARGIN)  # not the mixed pixels along the outline
    weight = region.astype(np.float32)
    weight = ndi.uniform_filter(ndi.uniform_filter(weight, size), size)
    out = np.empty_like(surface)
    for c in range(3):
        known = np.where(region, lab[..., c], 0).astype(np.float32)
        known = ndi.uniform_filter(ndi.uniform_filter(known, size), size)
        out[..., c] = (known + _FAR * surface[..., c]) / (weight + _FAR)
    return out


def _texture(lab: np.ndarray, radius: int = 2) -> np.ndarray:
    """Local colour standard deviation (Lab units): backdrops are smooth, hair and cloth are not."""
    size = 2 * radius + 1
    var = np.zeros(lab.shape[:2], np.float32)
    for c in range(3):
        ch = lab[..., c]
        m = ndi.uniform_filter(ch, size)
        var += np.maximum(ndi.uniform_filter(ch * ch, size) - m * m, 0)
    # a step edge raises the deviation within `radius` on both sides; the grey erosion narrows
    # that band back to the edge itself, while uniformly textured areas (hair) stay high
    return ndi.grey_erosion(np.sqrt(var), size=size)


def _kmeans_cost(
    residual: np.ndarray,
    seeds: np.ndarray,
    settings: Settings,
    rng: np.random.Generator,
    *,
    init: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cluster the flattened colours; each pixel costs its cluster's distance to the backdrop clusters.

    The backdrop clusters are those that make up the border sample (>= 5 % of it each). ``init``
    (the previous pass's cluster centres) starts the clustering when the number of clusters is
    the same. Returns the cost (H, W) and the cluster centres (None when there is one colour).
    """
    pts = residual.reshape(-1, 3)
    sample = pts[rng.choice(len(pts), size=min(len(pts), 20_000), replace=False)]
    k = _distinct_rows(sample, cap=settings.clusters)
    if k < 2:
        return np.zeros(residual.shape[:2], np.float32), None
    start = init if init is not None and len(init) == k else "k-means++"
    km = KMeans(n_clusters=k, n_init=1, init=start, random_state=settings.seed).fit(sample)
    labels = km.predict(pts).reshape(residual.shape[:2])
    share = np.bincount(labels[seeds], minlength=k) / max(1, seeds.sum())
    centers = km.cluster_centers_.astype(np.float32)
    backdrop = centers[share >= 0.05] if (share >= 0.05).any() else centers[[np.argmax(share)]]
    cdist = np.sqrt(((centers[:, None, :] - backdrop[None]) ** 2).sum(axis=2)).min(axis=1)
    return cdist[labels], centers


def _backdrop_colors(small: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few representative sRGB colours of the backdrop region, shape (K, 3) uint8."""
    px = small[region]
    if len(px) == 0:
        return small[:1, 0].copy()
    if len(px) > 4000:
        px = px[rng.choice(len(px), 4000, replace=False)]
    q = np.quantile(px.astype(np.float32), [0.1, 0.3, 0.5, 0.7, 0.9], axis=0)
    return np.unique(np.round(q).astype(np.uint8), axis=0)


# -- spatial reasoning ------------------------------------------------------------------------
def _barrier(cost: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Smallest tolerance at which each pixel joins the backdrop grown from the seeds.

    A minimax path cost: the backdrop grows from the border through pixels whose cost is
    within the tolerance, so it never jumps over the subject's outline. At each tolerance the
    pixels within it are labelled and the seed-touching components are reached; only pixels
    within the tolerance and not reached yet (``pending``) are looked up.
    """
    n = len(_TOLERANCES)
    level = np.searchsorted(_TOLERANCES, cost.ravel(), side="left").astype(np.uint8)  # first tolerance >= cost
    order = np.argsort(level, kind="stable")  # a radix sort on uint8
    enter = np.concatenate([[0], np.cumsum(np.bincount(level, minlength=n + 1))])
    level = level.reshape(cost.shape)
    seed_idx = np.flatnonzero(seeds.ravel())
    out = np.full(cost.size, np.inf, np.float32)
    pending = order[:0]
    # a level no pixel enters at reaches no pixel; below the lowest cost nothing is within reach
    levels = [i for i in range(n) if enter[i + 1] > enter[i]]
    for i, count, lbl in _labellings(level, levels):
        pending = np.concatenate([pending, order[enter[i] : enter[i + 1]]])
        if pending.size == 0:
            continue
        flat = lbl.ravel()
        touched = np.zeros(count + 1, bool)  # which components hold a seed (a lookup, no sorting)
        touched[flat[seed_idx]] = True
        touched[0] = False
        hit = touched[flat[pending]]
        out[pending[hit]] = _TOLERANCES[i]
        pending = pending[~hit]
    return out.reshape(cost.shape)


def _labellings(level: np.ndarray, levels: list[int]) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(i, count, labels)`` of the pixels ``level <= i`` for each ``i`` of ``levels``, in order.

    The labels array is reused once the caller asks for the next one. The labellings are
    independent and release the GIL: with several CPUs a few run ahead on threads, each into one of
    a few recycled buffers (a fresh array per level costs more in page faults than a labelling).
    """
    threads = min(usable_cpus(), 4)
    if threads == 1:
        lbl = np.empty(level.shape, np.int32)
        for i in levels:
            yield i, ndi.label(level <= i, output=lbl), lbl
        return

    def label(i: int, lbl: np.ndarray) -> int:
        return ndi.label(level <= i, output=lbl)

    todo = iter(levels)
    with ThreadPoolExecutor(threads) as pool:
        running = deque()
        for i in islice(todo, threads + 1):
            lbl = np.empty(level.shape, np.int32)
            running.append((i, lbl, pool.submit(label, i, lbl)))
        while running:
            i, lbl, count = running.popleft()
            yield i, count.result(), lbl
            nxt = next(todo, None)
            if nxt is not None:
                running.append((nxt, lbl, pool.submit(label, nxt, lbl)))


def _auto_tolerance(
    barrier: np.ndarray,
    seeds: np.ndarray,
    anchor: np.ndarray,
    *,
    longest: bool = False,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Pick the tolerance per image: the first stable subject area before any leak.

    The subject's area as a function of the tolerance falls while the backdrop fills, then
    holds on a plateau while the subject's outline stops the growth, and falls again where
    the backdrop leaks into the subject (and may hold again on a smaller part of it). A leak
    into the body also shows as the backdrop reaching the bottom centre (30 % of it, less what joins within
    the backdrop's own noise: a subject off centre leaves backdrop there). The tolerance is the
    middle of the first plateau below the leak, above the backdrop's own noise level (the
    tolerance at which most of the border sample has joined). With ``longest``, the longest
    plateau below the leak is taken instead (the first on a tie): on a backdrop that changes
    colour across the frame (a gradient, a strong vignette) the growth stalls briefly at low
    tolerances before it reaches the far side of the backdrop, and that short stall is not the
    outline.
    """
    n = len(_TOLERANCES)
    fg = np.array([(barrier > t).mean() for t in _TOLERANCES])
    s = barrier[seeds]
    noise = float(np.quantile(np.where(np.isinf(s), 1e9, s), 0.9)) if s.size else 0.0
    lo = int(np.searchsorted(_TOLERANCES, noise))
    # where the body zone is partly backdrop (a subject off centre, no face found), that part is reached
    # within the backdrop's own noise: it is not a leak, so it is left out of the zone (unless it is most
    # of it: then the noise level, not the zone, is in doubt)
    body = anchor & (barrier > noise)
    leak = _leak(barrier, body if 2 * np.count_nonzero(body) >= np.count_nonzero(anchor) else anchor)
    if prior is not None:  # a leak reaches the face or the neck before the body, often
        leak = min(leak, _leak(barrier, prior[0]))
    hi = min(n - 1, max(2, int(np.searchsorted(_TOLERANCES, leak / 1.2)) - 1))
    idx = np.arange(n)
    change = fg[np.maximum(idx - _K, 0)] - fg[np.minimum(idx + _K, n - 1)]
    ok = (fg >= 0.03) & (fg <= 0.97) & (idx <= hi) & (idx >= max(_K, lo))
    if not ok.any():
        return float(_TOLERANCES[min(hi, n // 2)])
    flat = ok & (change <= change[ok].min() + _FLAT)
    runs = _runs(flat)
    first, last = max(runs, key=lambda r: r[1] - r[0]) if longest else runs[0]
    if prior is not None and prior[1].any():
        # of the plateaus, the one that clears most of the frame beside and above the head
        cleared = 1 - _kept(barrier, prior[1])
        mid = [(f + la + 1) // 2 for f, la in runs]
        best = max(cleared[m] for m in mid)
        if cleared[(first + last + 1) // 2] < best - _CLEARED:
            near_best = [r for r, m in zip(runs, mid, strict=True) if cleared[m] >= best - _CLEARED]
            first, last = max(near_best, key=lambda r: r[1] - r[0])
    return float(_TOLERANCES[(first + last + 1) // 2])


def _leak(barrier: np.ndarray, zone: np.ndarray) -> float:
    """The tolerance at which the backdrop has reached 30 % of ``zone`` (infinite if never)."""
    if not zone.any():
        return np.inf
    a = barrier[zone]
    return float(np.quantile(np.where(np.isinf(a), 1e9, a), 0.3))


def _kept(barrier: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """For each tolerance, the share of ``zone`` left as subject (its barrier above the tolerance)."""
    b = np.sort(barrier[zone])
    if b.size == 0:
        return np.ones(len(_TOLERANCES))
    return 1 - np.searchsorted(b, _TOLERANCES, side="right") / b.size


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """The (first, last) indices of each run of True in a 1-d boolean array, in order."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def _clean(fg: np.ndarray, settings: Settings) -> np.ndarray:
    """Drop specks far from the subject and fill its holes.

    Foreground pieces are 8-connected, so diagonal strands stay attached to the subject;
    other pieces smaller than ``min_island`` are removed.
    """
    n = fg.size
    lbl, count = ndi.label(fg, structure=_EIGHT)
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
    """The bool mask ``work`` resized to ``shape`` (h, w) by Pillow's bilinear filter, thresholded at 128.

    Pillow resizes in two passes, along the rows and then down the columns. Here the first pass
    is Pillow's, and of the second only the pixels whose rows above and below differ are computed
    (with Pillow's own fixed-point coefficients, so the mask is the same bit for bit); the rest,
    most of a 12 MP mask, repeat their nearest row of the first pass: 5-8 against 25-30 ms.
    """
    h, w = work.shape
    out_h, out_w = shape
    if (h, w) == (out_h, out_w):
        return work
    im = Image.fromarray(work.astype(np.uint8) * 255)
    if out_h < h:  # a reduction (never the case for a working mask)
        return np.asarray(im.resize((out_w, out_h), Image.Resampling.BILINEAR)) >= 128
    rows = np.asarray(im.resize((out_w, h), Image.Resampling.BILINEAR)) if out_w != w else np.asarray(im)
    if out_h == h:
        return rows >= 128
    first, count, coef = _bilinear_coefficients(h, out_h)
    out = (rows >= 128)[first]  # where the rows a pixel mixes agree, it is theirs
    # the windows of rows mixed (consecutive output rows share one), and where their rows differ
    starts = np.flatnonzero(np.r_[True, (first[1:] != first[:-1]) | (count[1:] != count[:-1])])
    wf, wc = first[starts], count[starts]
    step = rows[1:] != rows[:-1]  # (h - 1, out_w): a row and the next differ
    differ = np.zeros((len(starts), out_w), bool)
    for j in range(coef.shape[1] - 1):
        more = np.flatnonzero(wc > j + 1)
        differ[more] |= step[wf[more] + j]
    win, xs = np.nonzero(differ)
    if len(win):
        size = np.diff(np.r_[starts, out_h])[win]
        ys = np.repeat(starts[win], size) + (np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size))
        xs = np.repeat(xs, size)
        acc = np.full(len(ys), 1 << 21, np.int64)  # Pillow's rounding term, then its sum over the window
        for j in range(coef.shape[1]):
            use = count[ys] > j
            acc[use] += rows[first[ys[use]] + j, xs[use]].astype(np.int64) * coef[ys[use], j]
        out[ys, xs] = acc >= 128 << 22  # Pillow's 8-bit result (acc >> 22, clipped) is >= 128
    return out


def _bilinear_coefficients(size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pillow's bilinear resampling of ``size`` rows to ``out_size`` (``precompute_coeffs`` and
    ``normalize_coeffs_8bpc`` of its Resample.c, in the same double-precision steps): each output
    row's first input row (out_size,), how many it mixes (out_size,), and their 22-bit
    fixed-point weights (out_size, k) int64."""
    scale = size / out_size
    support = max(scale, 1.0)  # the bilinear filter's support (1) times the filter scale
    k = int(np.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    first = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C's (int): toward zero
    count = np.minimum((center + support + 0.5).astype(np.int64), size) - first
    x = np.arange(k)
    d = np.abs((x[None, :] + first[:, None] - center[:, None] + 0.5) * (1.0 / support))
    weight = np.where((x[None, :] < count[:, None]) & (d < 1.0), 1.0 - d, 0.0)
    total = np.zeros(out_size)
    for j in range(k):  # summed in order, as the C loop does
        total = total + weight[:, j]
    weight = np.where(total[:, None] != 0.0, weight / np.where(total == 0.0, 1.0, total)[:, None], weight)
    fixed = weight * (1 << 22)
    coef = np.where(weight < 0, np.trunc(-0.5 + fixed), np.trunc(0.5 + fixed)).astype(np.int64)
    return first, count, coef
