"""The article's two recipes, written out directly, give the same masks as the presets."""

import numpy as np
from conftest import synthetic_headshot
from PIL import Image
from sklearn.cluster import KMeans

from knockout import Settings, segment


def _pixels(im: Image.Image) -> list:
    """The article's ``getdata()`` (renamed ``get_flattened_data`` in Pillow 13, removed in 14)."""
    return list(im.get_flattened_data() if hasattr(im, "get_flattened_data") else im.getdata())


def _recipe_threshold(im: Image.Image) -> np.ndarray:
    data = _pixels(im)
    r0, g0, b0 = data[0]
    bg = [abs(r - r0) <= 20 and abs(g - g0) <= 20 and abs(b - b0) <= 20 for (r, g, b) in data]
    return ~np.array(bg).reshape(im.height, im.width)


def _recipe_kmeans(im: Image.Image) -> np.ndarray:
    data = np.array(_pixels(im))
    labels = KMeans(random_state=0).fit(data).predict(data)
    return ~(labels == labels[0]).reshape(im.height, im.width)


def test_classic_threshold_is_the_recipe():
    img, _ = synthetic_headshot(noise=8, gradient=30)
    expected = _recipe_threshold(Image.fromarray(img))
    got = segment(img, settings=Settings(preset="classic-threshold")).mask
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(got, expected)


def test_classic_kmeans_is_the_recipe():
    img, _ = synthetic_headshot(noise=8, gradient=30)
    expected = _recipe_kmeans(Image.fromarray(img))
    got = segment(img, settings=Settings(preset="classic-kmeans")).mask
    np.testing.assert_array_equal(got, expected)


def test_classic_kmeans_on_a_blank_frame_or_a_tiny_image_is_all_backdrop_without_a_warning():
    import warnings

    for img in (np.full((40, 30, 3), 100, np.uint8), np.full((2, 2, 3), 100, np.uint8)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # scikit-learn's ConvergenceWarning reached the user's terminal
            mask = segment(img, settings=Settings(preset="classic-kmeans")).mask
        assert mask.shape == img.shape[:2] and not mask.any()
