"""knockout.compose: RGBA, mask, solid colour, crop with margin, the source's own alpha."""

from __future__ import annotations

import numpy as np
import pytest

from knockout.compose import compose
from knockout.settings import Settings


def _inputs():
    colors = np.zeros((10, 12, 3), np.uint8)
    colors[...] = (200, 100, 50)
    alpha = np.zeros((10, 12), np.uint8)
    alpha[3:7, 4:9] = 255
    alpha[3, 4] = 128
    return colors, alpha


def test_rgba():
    colors, alpha = _inputs()
    out = compose(colors, alpha, settings=Settings())
    assert out.shape == (10, 12, 4) and out.dtype == np.uint8
    assert np.array_equal(out[..., :3], colors) and np.array_equal(out[..., 3], alpha)


def test_rgba_of_a_big_image_is_interleaved_in_row_blocks_exactly(monkeypatch):
    import knockout.compose as compose_module

    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (101, 37, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (101, 37), dtype=np.uint8)
    monkeypatch.setattr(compose_module, "_PART_BYTES", 1000)  # several threads, uneven row blocks
    out = compose(colors, alpha, settings=Settings())
    assert np.array_equal(out[..., :3], colors) and np.array_equal(out[..., 3], alpha)


def test_mask():
    colors, alpha = _inputs()
    out = compose(colors, alpha, settings=Settings(output="mask"))
    assert out.shape == (10, 12) and np.array_equal(out, alpha)


def test_solid_blends_on_background():
    colors, alpha = _inputs()
    out = compose(colors, alpha, settings=Settings(output="solid", background="#0000ff"))
    assert out.shape == (10, 12, 3)
    assert tuple(out[0, 0]) == (0, 0, 255)  # backdrop: the background colour
    assert tuple(out[5, 5]) == (200, 100, 50)  # subject: its colours
    mid = np.array([200 * 128 / 255, 100 * 128 / 255, 50 * 128 / 255 + 255 * 127 / 255])
    assert np.abs(out[3, 4].astype(float) - mid).max() <= 1.5


def test_crop_to_subject_with_margin():
    colors, alpha = _inputs()
    out = compose(colors, alpha, settings=Settings(crop=True, margin=1))
    assert out.shape == (6, 7, 4)  # rows 2..7, cols 3..9
    assert out[0, :, 3].max() == 0 and out[1, 1, 3] == 128


def test_crop_margin_is_clipped_to_the_image():
    colors, alpha = _inputs()
    out = compose(colors, alpha, settings=Settings(crop=True, margin=100, output="mask"))
    assert out.shape == (10, 12)


def test_crop_of_nothing_keeps_the_frame():
    colors, _ = _inputs()
    out = compose(colors, np.zeros((10, 12), np.uint8), settings=Settings(crop=True))
    assert out.shape == (10, 12, 4)


def test_source_alpha_is_combined():
    colors, alpha = _inputs()
    src = np.full((10, 12), 255, np.uint8)
    src[:, 6:] = 0  # right half transparent in the input
    src[:, 5] = 128
    out = compose(colors, alpha, settings=Settings(), source_alpha=src)
    assert out[5, 4, 3] == 255 and out[5, 5, 3] == 128 and out[5, 7, 3] == 0
    assert out[0, 0, 3] == 0  # the new matte still removes the backdrop


@pytest.mark.parametrize(
    ("colors", "alpha", "match"),
    [
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), "colors"),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), "alpha"),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), "alpha"),
    ],
)
def test_checks_input(colors, alpha, match):
    with pytest.raises(ValueError, match=match):
        compose(colors, alpha, settings=Settings())
