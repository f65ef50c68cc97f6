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


def _image_and_edits(h=41, w=53, seed=1):
    """An image, a soft alpha with zeros, and colour edits some of which are under alpha 0."""
    from knockout.compose import Edits

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    alpha[8:30, 10:40] = rng.integers(1, 256, (22, 30), dtype=np.uint8)
    ys, xs = np.nonzero(rng.random((h, w)) < 0.2)
    edits = Edits(ys, xs, rng.integers(0, 256, (len(ys), 3), dtype=np.uint8))
    return image, alpha, edits


def _colors(image, alpha, edits):
    """What matte() returns as its colours: the image cleared under alpha 0, then the edits."""
    colors = np.where((alpha == 0)[..., None], np.uint8(0), image)
    colors[edits.ys, edits.xs] = edits.rgb
    return colors


@pytest.mark.parametrize(
    "settings",
    [Settings(), Settings(crop=True, margin=3), Settings(output="solid"), Settings(output="mask")],
    ids=["rgba", "crop", "solid", "mask"],
)
def test_edits_give_the_output_of_the_colours_they_make(settings, monkeypatch):
    import knockout.compose as compose_module

    image, alpha, edits = _image_and_edits()
    expected = compose(_colors(image, alpha, edits), alpha, settings=settings)
    got = compose(image, alpha, settings=settings, edits=edits)
    assert np.array_equal(got, expected)
    monkeypatch.setattr(compose_module, "_PART_BYTES", 1000)  # several threads, uneven row blocks
    monkeypatch.setattr(compose_module, "_STRIP_PIXELS", 70)  # strips of one row and of two
    assert np.array_equal(compose(image, alpha, settings=settings, edits=edits), expected)
    monkeypatch.setattr(compose_module, "_STRIP_PIXELS", 1)
    assert np.array_equal(compose(image, alpha, settings=settings, edits=edits), expected)


def test_edits_where_the_input_was_transparent_stay_hidden():
    image, alpha, edits = _image_and_edits()
    src = np.full(alpha.shape, 255, np.uint8)
    src[:, :20] = 0
    src[:, 20:25] = 90
    expected = compose(_colors(image, alpha, edits), alpha, settings=Settings(), source_alpha=src)
    got = compose(image, alpha, settings=Settings(), source_alpha=src, edits=edits)
    assert np.array_equal(got, expected)
    assert (got[:, :20] == 0).all()  # colour and alpha


def test_edits_are_checked():
    from knockout.compose import Edits

    image, alpha, edits = _image_and_edits()
    with pytest.raises(ValueError, match="edits"):
        compose(image, alpha, settings=Settings(), edits=Edits(edits.ys, edits.xs, edits.rgb.astype(np.float32)))


@pytest.mark.parametrize("settings", [Settings(), Settings(crop=True, margin=3)], ids=["rgba", "crop"])
@pytest.mark.parametrize("source", [False, True], ids=["opaque", "source-alpha"])
def test_lazy_rows_are_the_rows_of_the_output(settings, source, monkeypatch):
    import knockout.compose as compose_module

    image, alpha, edits = _image_and_edits()
    src = None
    if source:
        src = np.full(alpha.shape, 255, np.uint8)
        src[:, :20] = 0
        src[:, 20:25] = 90
    expected = compose(image, alpha, settings=settings, source_alpha=src, edits=edits)
    monkeypatch.setattr(compose_module, "_BLOCK_ROWS", 4)  # edits sorted into blocks that strips cut across
    lazy = compose(image, alpha, settings=settings, source_alpha=src, edits=edits, lazy=True)
    assert lazy.shape == expected.shape and lazy.dtype == np.uint8
    h = expected.shape[0]
    for top, bottom in [(0, h), (0, 1), (3, 11), (5, 6), (h - 1, h), (h - 7, h + 5)]:
        assert np.array_equal(lazy.rows(top, bottom), expected[top:bottom]), (top, bottom)
    assert lazy.rows(h, h + 3).shape == (0, expected.shape[1], 4)
    assert np.array_equal(lazy.array(), expected)


def test_lazy_rows_of_a_hard_matte_without_edits():
    colors, alpha = _inputs()
    lazy = compose(colors, alpha, settings=Settings(), lazy=True)
    assert np.array_equal(lazy.rows(2, 8), compose(colors, alpha, settings=Settings())[2:8])


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 5), (37, 23), (1, 300)])
@pytest.mark.parametrize("hide", [None, "alpha", "other"])
@pytest.mark.parametrize("view", [False, True], ids=["contiguous", "cropped"])
@pytest.mark.parametrize("strip", [1, 70, 1 << 15])
def test_interleaved_words_are_the_pixels_channel_by_channel(shape, hide, view, strip, monkeypatch):
    import knockout.compose as compose_module

    h, w = shape
    rng = np.random.default_rng(h * w)
    colors = rng.integers(0, 256, (h + 2, w + 3, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (h + 2, w + 3), dtype=np.uint8)
    alpha[rng.random(alpha.shape) < 0.3] = 0
    if view:  # rows that are not contiguous with one another
        colors, alpha = colors[1 : h + 1, 2 : w + 2], alpha[1 : h + 1, 2 : w + 2]
    else:
        colors, alpha = np.ascontiguousarray(colors[:h, :w]), np.ascontiguousarray(alpha[:h, :w])
    colors.flags.writeable = False  # as decoded
    cover = {None: None, "alpha": alpha, "other": (rng.random((h, w)) < 0.5).astype(np.uint8)}[hide]
    monkeypatch.setattr(compose_module, "_STRIP_PIXELS", strip)
    words = np.empty((h, w), "<u4")
    compose_module._interleave_span(words, colors, alpha, cover)
    c = colors.astype("<u4")
    expected = c[..., 0] | c[..., 1] << 8 | c[..., 2] << 16 | alpha.astype("<u4") << 24
    if cover is not None:
        expected *= cover > 0
    assert np.array_equal(words, expected)


@pytest.mark.parametrize("bad", ["rgb has 4 channels", "rgb one row short", "xs one short"])
def test_edits_of_mismatched_shapes_are_checked(bad):
    from knockout.compose import Edits

    image, alpha, e = _image_and_edits()
    edits = {
        "rgb has 4 channels": Edits(e.ys, e.xs, np.zeros((len(e.ys), 4), np.uint8)),
        "rgb one row short": Edits(e.ys, e.xs, e.rgb[1:]),
        "xs one short": Edits(e.ys, e.xs[1:], e.rgb),
    }[bad]
    with pytest.raises(ValueError, match="edits must hold"):
        compose(image, alpha, settings=Settings(), edits=edits)
