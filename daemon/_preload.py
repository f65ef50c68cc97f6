"""Warm-up for the worker pool: load the image core before the first file.

The fork server imports this module once (imports only: no computation, because OpenMP thread
pools must not exist in a process that forks); each worker then runs :func:`warm` on a tiny
image when it starts, so the first real file is not slow.
"""

from __future__ import annotations

from knockout._lean_imports import install

install()  # before SciPy is imported: as the command line does (0.1-0.15 s of CPU less per pool)

from knockout._warm import warm  # noqa: E402

__all__ = ["warm"]
