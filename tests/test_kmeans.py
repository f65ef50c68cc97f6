"""knockout._kmeans: the numpy k-means of the segmentation's border and colour samples."""

from __future__ import annotations

import numpy as np
import pytest

from knockout._kmeans import KMeans, assign, kmeans, thread_pools


def _blobs(seed: int = 0, n: int = 300, spread: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated Lab-like blobs of different sizes, and the true blob of each point."""
    rng = np.random.default_rng(seed)
    centres = np.array([[20.0, 0, 0], [80, 10, -5], [50, 60, 40], [50, -40, 50]])
    sizes = [n, n // 2, n // 3, n // 5]
    truth = np.repeat(np.arange(4), sizes)
    pts = centres[truth] + rng.normal(0, spread, (len(truth), 3))
    order = rng.permutation(len(truth))
    return pts[order], truth[order]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to a renaming of the clusters."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_finds_well_separated_clusters():
    pts, truth = _blobs()
    res = kmeans(pts, 4, seed=0)
    assert res.labels.shape == (len(pts),) and res.centers.shape == (4, 3)
    assert _same_partition(res.labels, truth)
    for c in range(4):
        assert np.allclose(res.centers[c], pts[res.labels == c].mean(axis=0))


def test_agrees_with_scikit_learn():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    for seed in range(5):
        pts, _ = _blobs(seed)
        ours = kmeans(pts, 4, seed=seed)
        theirs = sklearn_cluster.KMeans(n_clusters=4, n_init=1, random_state=seed).fit(pts)
        assert _same_partition(ours.labels, theirs.labels_)
        order = [int(np.argmin(((theirs.cluster_centers_ - c) ** 2).sum(axis=1))) for c in ours.centers]
        assert np.allclose(ours.centers, theirs.cluster_centers_[order])
        probe = pts[:50] + 0.5
        assert np.array_equal(np.array(order)[assign(probe, ours.centers)], theirs.predict(probe))


def test_deterministic_per_seed():
    pts, _ = _blobs(spread=12.0)  # overlapping blobs: the seeding matters
    a, b = kmeans(pts, 6, seed=3), kmeans(pts, 6, seed=3)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.centers, b.centers)
    others = [kmeans(pts, 6, seed=s).centers for s in range(4, 10)]
    assert any(not np.allclose(np.sort(a.centers, axis=0), np.sort(o, axis=0)) for o in others)


def test_init_centres_are_the_start():
    pts, truth = _blobs()
    start = np.array([pts[truth == c].mean(axis=0) for c in range(4)])
    res = kmeans(pts, 4, init=start)
    assert np.array_equal(res.labels, truth)  # already converged: cluster c stays cluster c
    assert res.iterations == 1


def test_assign_is_the_nearest_centre():
    centres = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0]])
    pts = np.array([[1.0, 1, 0], [9, -1, 0], [0, 7, 1], [4.9, 0, 0], [5.1, 0, 0]])
    assert assign(pts, centres).tolist() == [0, 1, 2, 0, 1]


def test_no_empty_cluster_when_points_repeat():
    pts = np.array([[0.0, 0, 0]] * 50 + [[10.0, 0, 0]] * 3 + [[0.0, 10, 0]])
    res = kmeans(pts, 3, seed=1)
    assert sorted(np.bincount(res.labels, minlength=3).tolist()) == [1, 3, 50]


def test_one_cluster_is_the_mean():
    pts, _ = _blobs()
    res = kmeans(pts, 1)
    assert (res.labels == 0).all() and np.allclose(res.centers[0], pts.mean(axis=0))


@pytest.mark.parametrize(
    ("points", "k", "match"),
    [
        (np.zeros((0, 3)), 2, "non-empty"),
        (np.zeros(5), 2, "non-empty"),
        (np.zeros((3, 3)), 4, "n_clusters"),
        (np.zeros((3, 3)), 0, "n_clusters"),
        (np.array([[0.0, np.nan, 0]] * 3), 2, "finite"),
    ],
)
def test_bad_input_says_how_to_fix(points, k, match):
    with pytest.raises(ValueError, match=match):
        kmeans(points, k)


def test_bad_init_shape():
    with pytest.raises(ValueError, match="init must have shape"):
        kmeans(np.zeros((5, 3)), 2, init=np.zeros((3, 3)))


def test_thread_pools_limit_blas():
    pools = thread_pools()
    with pools.limit(limits=1, user_api="blas"):
        assert all(p["num_threads"] == 1 for p in thread_pools().info() if p["user_api"] == "blas")
    assert thread_pools() is pools  # cached while no module is imported


def test_scikit_learn_call_shape():
    pts, truth = _blobs()
    km = KMeans(n_clusters=4, n_init=1, random_state=2).fit(pts)
    assert _same_partition(km.labels_, truth) and km.cluster_centers_.shape == (4, 3)
    assert np.array_equal(km.predict(pts), km.labels_)
    again = KMeans(n_clusters=4, n_init=1, init=km.cluster_centers_, random_state=5).fit(pts)
    assert np.array_equal(again.labels_, km.labels_) and again.n_iter_ == 1
    assert np.array_equal(KMeans(4, random_state=2).fit_predict(pts), km.labels_)
    with pytest.raises(ValueError, match="n_init"):
        KMeans(4, n_init=10)
    with pytest.raises(ValueError, match="init must be"):
        KMeans(4, init="random")
