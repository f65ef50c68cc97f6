"""File names of images: which extensions are read, which suffix an output gets.

Kept apart from :mod:`knockout.imageio` (which imports numpy and Pillow) so that listing
and naming files costs no imports; ``knockout.imageio`` re-exports both names.
"""

from __future__ import annotations

from .settings import Settings

__all__ = ["EXTENSIONS", "output_suffix"]

#: File extensions knockout treats as images (lower case, with the dot): every extension Pillow
#: reads for the photo formats of imageio.PHOTO_FORMATS (tests/test_imageio.py checks the list against Pillow's own),
#: and HEIC/HEIF (with pillow-heif). Written out rather than asked of Pillow, which imports all of
#: its plug-ins to answer (0.1 s on every start).
EXTENSIONS = frozenset(
    {
        *(".jpg", ".jpeg", ".jpe", ".jfif", ".mpo"),  # JPEG (MPO: a camera's multi-picture JPEG)
        *(".png", ".apng", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"),
        *(".avif", ".avifs", ".heic", ".heif", ".hif"),  # AVIF (Pillow >= 11.2), HEIF (pillow-heif)
        *(".jp2", ".j2k", ".jpx", ".jpf", ".j2c", ".jpc"),  # JPEG 2000
        *(".ppm", ".pgm", ".pbm", ".pnm", ".pfm", ".qoi", ".psd", ".pcx"),
        *(".tga", ".icb", ".vda", ".vst", ".sgi", ".rgb", ".rgba", ".bw"),  # Targa, SGI
    }
)


def output_suffix(settings: Settings) -> str:
    """The file extension (with dot) of outputs made with ``settings``."""
    return {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}[settings.format]
