"""Warm-up for the worker pool: load the image core before the first file.

The core imports scikit-learn and SciPy lazily on the first image (several seconds on a busy
machine). The fork server imports this module once (imports only: no computation, because
OpenMP thread pools must not exist in a process that forks); each worker then runs
:func:`warm` on a tiny image when it starts, so the first real file is not slow.
"""

from __future__ import annotations

import io
import warnings

from knockout._lean_imports import install

install()  # before SciPy is imported: as the command line does (0.1-0.15 s of CPU less per pool)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from knockout.process import process_bytes  # noqa: E402
from knockout.settings import Settings  # noqa: E402


def warm() -> None:
    """Process a tiny synthetic image with each method (in a worker, never in the fork server)."""
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
