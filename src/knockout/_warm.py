"""A warm-up for a process that will cut files: the core's imports and first-call work, done once.

The core imports scikit-learn and SciPy lazily on the first image (0.5-1 s on a slow machine,
several seconds on a busy one); a worker that runs :func:`warm` when it starts pays it there, not
on its first real file (nor against that file's ``time_limit``).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from .process import process_bytes
from .settings import Settings

__all__ = ["warm"]


def warm() -> None:
    """Process a tiny synthetic image with each method (in a worker, never in a fork server)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    rgb = np.full((32, 32, 3), 200.0)
    rgb[(yy - 14) ** 2 + (xx - 16) ** 2 < 60] = (40, 60, 140)
    rgb += rng.normal(0, 8, rgb.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(buf, "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("threshold", "kmeans"):
            process_bytes(buf.getvalue(), settings=Settings(method=method))
