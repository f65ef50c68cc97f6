"""knockout.confidence: the confidence of a segmentation and the reasons for a doubt."""

from __future__ import annotations

import numpy as np
import pytest
from _faces import face_headshot

from knockout import Settings, segment
from knockout.confidence import assess
from knockout.prior import Face


def _clear_case() -> tuple[np.ndarray, np.ndarray]:
    """A subject far from the backdrop in colour: its barrier is high, the backdrop's 0.

    With the face box of the tests (x 25, y 32, 30 x 30) the subject reaches 17 rows above it (the head's top).
    """
    mask = np.zeros((100, 80), bool)
    mask[15:, 20:60] = True
    barrier = np.where(mask, 60.0, 0.5).astype(np.float32)
    return mask, barrier


def test_a_clear_cut_is_confident_and_a_face_raises_it():
    mask, barrier = _clear_case()
    without = assess(mask, barrier, 10.0, face=None)
    assert without.reasons == ("no-face",) and 0.5 < without.confidence < 1
    face = Face(x=25, y=32, w=30, h=30)
    with_face = assess(mask, barrier, 10.0, face=face)
    assert with_face.confidence > max(0.95, without.confidence) and with_face.reasons == ()


def test_a_leak_through_the_face_is_named():
    mask, barrier = _clear_case()
    face = Face(x=25, y=32, w=30, h=30)
    leaked = mask & ~face.sure_subject(mask.shape)  # the backdrop took the face
    a = assess(leaked, barrier, 10.0, face=face)
    assert "leak" in a.reasons and a.confidence < 0.3


def test_an_unstable_plateau_lowers_it_and_disagreeing_answers_are_measured():
    mask, barrier = _clear_case()
    barrier = np.where(mask, 11.0, barrier).astype(np.float32)  # the subject joins just above the tolerance
    other = mask.copy()
    other[30:60] = False
    a = assess(mask, barrier, 10.0, face=None, alternatives=[other])
    assert a.reasons[0] == "unstable" and a.confidence < 0.1
    assert a.signals["unstable_px"] > 10  # the whole subject flips within tolerance x / 1.25
    assert a.signals["disagree_px"] > 5 and a.signals["agree"] < 0.7
    steady = assess(mask, _clear_case()[1], 10.0, face=None, alternatives=[mask])
    assert steady.signals["unstable_px"] == 0 and steady.signals["disagree_px"] == 0


def test_specks_and_holes_that_cleaning_removes_are_not_doubt():
    """Near-tolerance noise the segmentation's cleaning removes anyway (specks of grain in the backdrop,
    a shine inside the subject) does not move the cut-out's outline: with the segmentation's cleaning
    it is not counted as unstable (it was: the raw count said 'unstable' for a clean cut)."""
    from functools import partial

    from knockout.segment import _clean

    mask, barrier = _clear_case()
    rng = np.random.default_rng(1)
    noise = rng.random(mask.shape) < 0.1
    barrier = np.where(noise & ~mask, 10.0, barrier)  # grain in the backdrop, at the tolerance
    barrier = np.where(noise & mask, 10.0, barrier).astype(np.float32)  # and inside the subject
    face = Face(x=25, y=32, w=30, h=30)
    raw = assess(mask, barrier, 10.0, face=face)
    cleaned = assess(mask, barrier, 10.0, face=face, clean=partial(_clean, settings=Settings()))
    assert raw.signals["unstable_px"] > 2 and "unstable" in raw.reasons
    assert cleaned.signals["unstable_px"] < 0.5 and cleaned.reasons == () and cleaned.confidence > 0.9
    # a real instability still counts: the whole subject joins the backdrop just above the tolerance
    flips = np.where(mask, 11.0, barrier).astype(np.float32)
    assert assess(mask, flips, 10.0, face=None, clean=partial(_clean, settings=Settings())).signals["unstable_px"] > 10


def test_mixed_colours_are_low_contrast():
    rng = np.random.default_rng(0)
    lab = rng.normal(50, 1, (100, 80, 3)).astype(np.float32)  # subject and backdrop the same colours
    mask, barrier = _clear_case()
    a = assess(mask, barrier, 10.0, face=Face(x=25, y=32, w=30, h=30), lab=lab)
    assert a.signals["mixed"] > 0.8 and a.reasons == ("low-contrast",)
    lab[mask] += 40  # now they differ
    assert assess(mask, barrier, 10.0, face=None, lab=lab).signals["mixed"] < 0.05


def test_the_top_of_the_head_cut_away_is_named():
    mask, barrier = _clear_case()
    face = Face(x=25, y=32, w=30, h=30)
    shorn = mask.copy()
    shorn[:34] = False  # the hair above the face went with the backdrop (dark hair on a dark backdrop):
    hair = mask & ~shorn
    barrier = np.where(hair, 6.0, barrier).astype(np.float32)  # its colour near the backdrop's, not on it
    a = assess(shorn, barrier, 10.0, face=face)
    assert a.reasons == ("head-top",) and a.confidence < 0.3
    assert a.signals["crown_kept"] < 0.2
    assert assess(mask, barrier, 10.0, face=face).signals["crown_kept"] == 1.0


def test_clear_backdrop_above_a_face_box_is_not_a_lost_head_top():
    # a face box set low or false (the cascade on a drawn head): above it, the backdrop's own colour
    mask, barrier = _clear_case()
    shorn = mask.copy()
    shorn[:34] = False
    barrier = np.where(shorn | ~mask, barrier, 0.5).astype(np.float32)  # as clean as the rest of the backdrop
    a = assess(shorn, barrier, 10.0, face=Face(x=25, y=32, w=30, h=30))
    assert "head-top" not in a.reasons and a.signals["crown_kept"] == 1.0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        assess(np.zeros((4, 4), bool), np.zeros((4, 5), np.float32), 1.0, face=None)


def test_segment_flags_a_low_contrast_subject_and_not_a_clear_one():
    clear, _ = face_headshot()
    dark, _ = face_headshot(backdrop=(28, 28, 30), shirt=(36, 34, 40))
    s = Settings()
    good, doubtful = segment(clear, settings=s).assessment, segment(dark, settings=s).assessment
    assert good.confidence >= s.review_below > doubtful.confidence
    assert good.reasons == () and "unstable" in doubtful.reasons


def test_the_weights_are_the_methods_and_an_unknown_method_is_refused():
    mask, barrier = _clear_case()
    face = Face(x=25, y=32, w=30, h=30)
    threshold = assess(mask, barrier, 10.0, face=face)
    kmeans = assess(mask, barrier, 10.0, face=face, method="kmeans")
    assert kmeans.confidence < threshold.confidence  # a kmeans cut-out fails more often on the same evidence
    assert kmeans.reasons == threshold.reasons == ()
    with pytest.raises(ValueError, match="method must be one of"):
        assess(mask, barrier, 10.0, face=face, method="grabcut")
