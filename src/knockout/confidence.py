"""How sure a segmentation is: a confidence in [0, 1] and the short reasons behind a doubt.

Each signal is one the segmentation already has, so the check costs a few milliseconds:

- ``unstable``: a little more or less tolerance would move the subject's outline a lot (no
  clear plateau: the backdrop leaks on, or stops short, nearby), measured on the masks as the
  segmentation cleans them, so grain that cleaning removes anyway is no doubt;
- ``low-contrast``: the subject's and the backdrop's colours overlap;
- ``border``: much of the top and upper side edges, where a headshot's backdrop is, stayed subject;
- ``leak``: the backdrop reached into the face or neck found by the face detector;
- ``head-top``: the top of the head right above the face (hair, a bald crown, a hat) was cut as
  backdrop although its colour is not clearly the backdrop's, which is what dark hair on a dark
  backdrop, or fair hair on a light one, looks like;
- ``no-face``: no frontal face was found, so nothing checks the result against a person.

The disagreement with other plausible answers (``alternatives``, for tuning) is measured in
``signals`` when they are given but is not a factor (it raised false alarms on small pictures).

How they combine: each signal's evidence is weighed into the log-odds that the cut-out failed (a
logistic model). The outline's stability, the colour overlap and a missing face are evidence of
degree, their weights fitted once by ``bench/fit_confidence.py`` on real portraits and
cross-validated there. A leak through the face and a lost head top are near-certain failures when
they are clear: their evidence is ``-log`` of a ramp (0 when clean, 2.3 when clear) with a fixed
weight of 2, so a clear one alone raises the odds a hundredfold, while a slight one (a face box a
little off on a drawn head) costs little. The confidence is one minus the failure's probability:
about the chance that the cut-out is right. The reasons named are the signals that look worst on
their own (each one's ramp, below), worst first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .prior import Face

__all__ = ["Assessment", "assess"]

_FACE_INTACT = 0.95  # head-top is judged only above a face kept this well (else the box is false, or it is a leak)
_CLEAR_BACKDROP = 0.25  # a pixel within this share of the tolerance is backdrop beyond doubt
# the log-odds that a cut-out failed (IoU < 0.90 on real portraits), per method (their costs differ:
# kmeans' is flat between cluster levels, so its outline moves less for the same doubt): a constant,
# and per signal its weight times its evidence: log(1 + unstable_px), the colour overlap, 1 without a
# face (these fitted by bench/fit_confidence.py), -log of the leak and head-top ramps (fixed). kmeans'
# fitted constant (-1.5) would put nearly every kmeans cut-out below the shared review_below (its
# signals tell its failures apart less well: AUROC 0.75); -2.0 flags about a fifth of its good ones
_BIAS = {"threshold": -3.4, "kmeans": -2.0}
_FITTED = {
    "threshold": {"unstable": 2.3, "low-contrast": 1.25, "no-face": 0.2},
    "kmeans": {"unstable": 1.6, "low-contrast": 2.1, "no-face": 0.6},
}
_FIXED = {"leak": 2.0, "head-top": 2.0}


@dataclass(frozen=True)
class Assessment:
    """The result of :func:`assess`.

    Attributes
    ----------
    confidence : float
        In [0, 1]; low means the cut-out probably needs a look.
    reasons : tuple of str
        The signals that lowered it most (short words, see the module's docstring), worst first.
    signals : dict of str to float
        The raw measurements, for reports and for tuning.
    """

    confidence: float
    reasons: tuple[str, ...]
    signals: dict[str, float]


def assess(
    mask: np.ndarray,
    barrier: np.ndarray,
    tolerance: float,
    *,
    face: Face | None,
    alternatives: Sequence[np.ndarray] = (),
    lab: np.ndarray | None = None,
    method: str = "threshold",
    clean: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Assessment:
    """Judge a working-resolution segmentation from the signals that produced it.

    Parameters
    ----------
    mask : ndarray of bool, shape (h, w)
        The subject at working resolution, after cleaning.
    barrier : ndarray of float32, shape (h, w)
        The tolerance at which each pixel joins the backdrop (inf: never).
    tolerance : float
        The tolerance used.
    face : Face or None
        The face found in the working image, if any.
    alternatives : sequence of ndarray of bool, shape (h, w)
        Other plausible answers, for tuning: their agreement with the mask is measured in
        ``signals`` (``agree``, ``disagree_px``) but is not a factor. :func:`~knockout.segment`
        passes none.
    lab : ndarray of float32, shape (h, w, 3), optional
        The working image in CIE Lab, for the colour overlap (``low-contrast``).
    method : {"threshold", "kmeans"}
        The segmentation's method: the weights of the evidence are fitted per method.
    clean : callable, optional
        How the segmentation cleans a raw subject mask (``barrier > tolerance``) into ``mask``
        (specks dropped, holes filled): the outline's stability (``unstable``) is measured between
        the cleaned masks at the neighbouring tolerances, so near-tolerance noise that cleaning
        removes anyway (specks in the backdrop, holes inside the subject) is not counted as doubt.
        Without it the raw masks are compared.

    Returns
    -------
    Assessment
    """
    h, w = mask.shape
    if method not in _BIAS:
        raise ValueError(f"method must be one of {sorted(_BIAS)}, got {method!r}")
    if mask.shape != barrier.shape:
        raise ValueError(f"mask {mask.shape} and barrier {barrier.shape} must have the same shape")
    sig: dict[str, float] = {}
    edge = mask & ~ndi.binary_erosion(mask, iterations=1, border_value=1)  # the subject's outline
    # the border strip where a headshot's backdrop is: top edge, upper 60 % of the sides
    bw = max(1, round(0.02 * max(h, w)))
    strip = np.zeros((h, w), bool)
    strip[:bw] = True
    strip[: round(0.6 * h), :bw] = True
    strip[: round(0.6 * h), -bw:] = True
    sig["border"] = float(mask[strip].mean())
    if lab is not None:
        sig["mixed"] = _mixed_colours(lab, mask)
    # the same two signals as outline displacements in pixels: area changes over the outline's length,
    # so a small picture, whose outline is a large share of its area, is not judged harsher
    perimeter = max(float(edge.sum()), 1.0)
    clean = clean or (lambda m: m)
    near = np.count_nonzero(clean(barrier > tolerance / 1.25) ^ clean(barrier > tolerance * 1.25))
    sig["unstable_px"] = near / perimeter
    if alternatives:
        sig["agree"] = min(_iou(mask, alt) for alt in alternatives)
        sig["disagree_px"] = max(float((mask ^ alt).sum()) / perimeter for alt in alternatives)
    if face is not None:
        sure = face.sure_subject((h, w))
        sig["face_kept"] = float(mask[sure].mean()) if sure.any() else 1.0
        # the strip above the face left as subject, or so clearly backdrop (within a quarter of the
        # tolerance) that the face box must sit low or be false: what is lost there is ambiguous colour
        crown = face.crown((h, w))
        ok = mask[crown] | (barrier[crown] <= _CLEAR_BACKDROP * tolerance)
        sig["crown_kept"] = float(ok.mean()) if crown.any() else 1.0
    confidence, reasons = _judge(sig, has_face=face is not None, method=method)
    return Assessment(confidence=round(confidence, 4), reasons=reasons, signals=sig)


def _judge(sig: dict[str, float], *, has_face: bool, method: str = "threshold") -> tuple[float, tuple[str, ...]]:
    """The confidence and the reasons from the signals (``crown_kept``, ``face_kept`` with a face)."""
    looks, evidence = _weigh(sig, has_face=has_face)
    weights = {**_FITTED[method], **_FIXED}
    odds = _BIAS[method] + sum(weights[k] * v for k, v in evidence.items())
    confidence = 1.0 / (1.0 + float(np.exp(odds)))
    reasons = tuple(k for k, v in sorted(looks.items(), key=lambda kv: kv[1]) if v < 0.85)
    return confidence, reasons


def _weigh(sig: dict[str, float], *, has_face: bool) -> tuple[dict[str, float], dict[str, float]]:
    """Each signal's ramp (how it looks on its own) and its evidence in the log-odds (before its weight)."""
    # each ramp: 1 where half or more of the good cut-outs are, 0.1 where most failures are
    looks = {
        "unstable": _ramp(-sig["unstable_px"], bad=-4.0, good=-1.2),
        "low-contrast": _ramp(-sig.get("mixed", 0.0), bad=-0.3, good=-0.05),
        "border": _ramp(-sig["border"], bad=-0.5, good=-0.15),
    }
    evidence = {
        "unstable": float(np.log1p(sig["unstable_px"])),
        "low-contrast": sig.get("mixed", 0.0),
        "no-face": 0.0 if has_face else 1.0,
    }
    if not has_face:
        looks["no-face"] = 0.8
    else:
        looks["leak"] = _ramp(sig["face_kept"], bad=0.7, good=0.97)
        evidence["leak"] = -float(np.log(looks["leak"]))
        if sig["face_kept"] >= _FACE_INTACT:  # the face kept, the head above it not: hair lost, not a leak
            looks["head-top"] = _ramp(sig["crown_kept"], bad=0.5, good=0.9)
            evidence["head-top"] = -float(np.log(looks["head-top"]))
    return looks, evidence


def _mixed_colours(lab: np.ndarray, mask: np.ndarray) -> float:
    """How much the subject's and the backdrop's colours overlap: 0 separable, 1 the same.

    A coarse colour histogram (8 bins a Lab channel) of each side; each pixel's bin says how
    likely its colour is subject; the mean of ``2 min(p, 1 - p)`` over all pixels.
    """
    scaled = (lab + np.array([0.0, 128.0, 128.0], np.float32)) / np.array([100.0, 256.0, 256.0], np.float32)
    q = (np.clip(scaled, 0, 0.999) * 8).astype(np.int32)
    code = (q[..., 0] * 8 + q[..., 1]) * 8 + q[..., 2]
    fg = np.bincount(code[mask], minlength=512).astype(np.float64)
    bg = np.bincount(code[~mask], minlength=512).astype(np.float64)
    fg /= max(fg.sum(), 1)
    bg /= max(bg.sum(), 1)
    p = fg / np.maximum(fg + bg, 1e-12)
    pp = p[code]
    return float(np.mean(2 * np.minimum(pp, 1 - pp)))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def _ramp(x: float, *, bad: float, good: float) -> float:
    """1 at and above ``good``, 0.1 at and below ``bad``, linear between."""
    t = (x - bad) / (good - bad)
    return float(0.1 + 0.9 * min(1.0, max(0.0, t)))
