"""File names of images: which extensions are read, which suffix an output gets.

Kept apart from :mod:`knockout.imageio` (which imports numpy and Pillow) so that listing
and naming files costs no imports; ``knockout.imageio`` re-exports both names.
"""

from __future__ import annotations

from .settings import Settings

__all__ = ["EXTENSIONS", "output_suffix"]

#: File extensions knockout treats as images (lower case, with the dot).
EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif"})


def output_suffix(settings: Settings) -> str:
    """The file extension (with dot) of outputs made with ``settings``."""
    return {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}[settings.format]
