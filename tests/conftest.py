"""Shared fixtures: tiny synthetic headshots and the optional portrait data set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def _find_portraits() -> Path:
    """$KNOCKOUT_PORTRAITS, else the nearest shared/data/portraits above the checkout (worktrees too)."""
    if os.environ.get("KNOCKOUT_PORTRAITS"):
        return Path(os.environ["KNOCKOUT_PORTRAITS"])
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "data" / "portraits" / "manifest.csv").exists():
            return parent / "shared" / "data" / "portraits"
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "portraits"


PORTRAITS = _find_portraits()


def synthetic_headshot(
    h: int = 120, w: int = 90, *, backdrop=(128, 130, 135), seed: int = 0, noise: float = 2.0, gradient: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """A head (ellipse) and shoulders on a backdrop. Returns (rgb uint8 (h, w, 3), mask bool (h, w))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    head = ((xx - w / 2) / (0.22 * w)) ** 2 + ((yy - 0.42 * h) / (0.2 * h)) ** 2 <= 1
    shoulders = (yy >= 0.68 * h) & (np.abs(xx - w / 2) <= 0.42 * w)
    neck = (yy >= 0.55 * h) & (np.abs(xx - w / 2) <= 0.08 * w)
    mask = head | shoulders | neck
    img = np.empty((h, w, 3), np.float32)
    img[:] = backdrop
    img += gradient * (yy / h)[..., None]
    skin = np.array([205, 160, 130], np.float32)
    shirt = np.array([30, 60, 140], np.float32)
    img[head | neck] = skin
    img[shoulders] = shirt
    img += rng.normal(0, noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), mask


@pytest.fixture
def headshot() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_headshot()


@pytest.fixture(scope="session")
def portraits() -> Path:
    if not (PORTRAITS / "manifest.csv").exists():
        pytest.skip(f"portrait data not found at {PORTRAITS} (set KNOCKOUT_PORTRAITS to its folder)")
    return PORTRAITS
