"""knockout.metrics on tiny synthetic masks and mattes."""

from __future__ import annotations

import numpy as np
import pytest

from knockout.metrics import alpha_error, boundary_f, edge_color_error, iou


def square(h=20, w=20, top=5, left=5, size=10):
    m = np.zeros((h, w), bool)
    m[top : top + size, left : left + size] = True
    return m


def test_iou_identical_disjoint_and_partial():
    a = square()
    assert iou(a, a) == 1.0
    assert iou(a, ~a) == 0.0
    b = square(left=10)  # half overlaps: 50 / 150
    assert iou(a, b) == pytest.approx(50 / 150)
    assert iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0


def test_iou_thresholds_mattes_at_one_half():
    truth = square()
    matte = truth.astype(np.uint8) * 200
    matte[0, 0] = 100  # below one half: not subject
    assert iou(matte, truth) == 1.0
    assert iou(truth.astype(np.float32) * 0.6, truth) == 1.0
    assert iou(truth.astype(np.float32) * 0.4, truth) == 0.0


def test_boundary_f_tolerance():
    a = square()
    assert boundary_f(a, a) == 1.0
    shifted = square(left=7)  # left edge 2 px off, right edge 2 px off
    assert boundary_f(shifted, a, tolerance=2) == 1.0
    assert boundary_f(shifted, a, tolerance=1) < 0.8
    assert boundary_f(np.zeros_like(a), a) == 0.0


def test_alpha_error_scales():
    t = np.zeros((10, 10), np.uint8)
    p = t.copy()
    p[:5] = 255  # half the image fully wrong
    assert alpha_error(p, t) == pytest.approx(0.5)
    assert alpha_error(p.astype(np.float32) / 255, t) == pytest.approx(0.5)
    p[:5] = 51
    assert alpha_error(p, t) == pytest.approx(0.1)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="shapes differ"):
        iou(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def test_edge_color_error_sees_a_halo():
    h, w = 12, 12
    ta = np.zeros((h, w), np.float32)
    ta[:, :5] = 1.0
    ta[:, 5] = 0.5  # a soft column
    fg = np.full((h, w, 3), (200, 50, 50), np.uint8)
    old_bg = np.array([128, 128, 128], np.float32)
    image = (ta[..., None] * fg + (1 - ta[..., None]) * old_bg).round().astype(np.uint8)
    green = (0, 255, 0)
    # perfect un-mixing: no error
    assert edge_color_error(fg, ta, fg, ta, background=green) == pytest.approx(0.0)
    # keeping the mixed pixel (grey halo) costs something, only in the band
    err = edge_color_error(image, ta, fg, ta, background=green)
    assert err > 5
    assert edge_color_error(image, ta, fg, ta, background=green, width=0) > err  # narrower band, same total
