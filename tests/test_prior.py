"""knockout.prior: the face detector's box and the zones that follow from it."""

from __future__ import annotations

import numpy as np
from _faces import face_headshot
from conftest import synthetic_headshot

from knockout.prior import Face, find_face


def test_finds_the_real_face_where_it_is():
    rgb, _ = face_headshot(center=0.3)
    face = find_face(rgb)
    assert face is not None
    cx, cy = face.center
    assert abs(cx - 0.3 * 300) < 20 and abs(cy - 0.36 * 400) < 25, face
    assert 60 <= face.w <= 160


def test_no_face_on_flat_or_featureless_pictures():
    flat = np.full((400, 300, 3), 128, np.uint8)
    assert find_face(flat) is None
    grad = np.repeat(np.linspace(90, 200, 400, dtype=np.float32)[:, None], 300, axis=1)
    noisy = grad[..., None] + np.random.default_rng(1).normal(0, 2, (400, 300, 3))
    assert find_face(np.clip(noisy, 0, 255).astype(np.uint8)) is None
    cartoon, _ = synthetic_headshot(400, 300)  # an ellipse has no eyes or mouth
    assert find_face(cartoon) is None


def test_zones_are_where_a_person_is():
    face = Face(x=100, y=80, w=100, h=100)
    shape = (400, 300)
    sure = face.sure_subject(shape)
    assert sure[130, 150] and sure[200, 150]  # the face's middle, the neck
    assert not sure[130, 110] and not sure[20, 150]  # the cheek's edge, above the head
    body = face.body(shape)
    assert body[399, 150] and not body[399, 10] and not body[300, 150]
    outside = face.likely_backdrop(shape)
    assert outside[5, 5] and outside[100, 295] and not outside[130, 150] and not outside[390, 150]
    assert Face(x=100, y=150, w=100, h=100).above(shape) is None  # the head stops well below the top edge
    tall = Face(x=100, y=15, w=100, h=100)
    top = tall.above(shape)
    assert top is not None and top[0, 150] and not top[0, 20] and not top[100, 150]
