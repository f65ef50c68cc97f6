"""Decoding and encoding: the only place where knockout touches image bytes.

:func:`decode` turns file bytes into a :class:`Picture` (EXIF orientation applied, any mode
converted, existing alpha and ICC profile kept); :func:`encode` turns the composed output
array back into file bytes in the format the settings ask for.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .settings import Settings

__all__ = ["ImageError", "Picture", "decode", "encode", "EXTENSIONS", "output_suffix"]

log = logging.getLogger(__name__)

try:  # optional HEIC/HEIF support: pip install 'knockout[heif]'
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - depends on the extra
    pass

#: File extensions knockout treats as images (lower case, with the dot).
EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif"})


class ImageError(ValueError):
    """The bytes are not an image knockout can read: empty, truncated, corrupt, too large."""


@dataclass(frozen=True)
class Picture:
    """A decoded image.

    Attributes
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        sRGB pixels for segmentation (16-bit sources are scaled to 8 bits).
    alpha : ndarray of uint8, shape (H, W), or None
        The source's own alpha channel, if it had one.
    icc_profile : bytes or None
        The source's ICC profile, carried to the output.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None


def decode(data: bytes, *, settings: Settings | None = None) -> Picture:
    """Decode image file bytes.

    Parameters
    ----------
    data : bytes
        The file's contents.
    settings : Settings, optional
        ``max_pixels`` is the decompression-bomb limit.

    Raises
    ------
    ImageError
        With a one-line reason: empty, not an image, truncated or corrupt, too many pixels.
    """
    settings = settings or Settings()
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > settings.max_pixels:
                raise ImageError(f"too many pixels: {w}x{h} = {w * h:,} is over max_pixels = {settings.max_pixels:,}")
            im.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read (unknown or unsupported format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"too many pixels (decompression-bomb guard): {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"truncated or corrupt image: {exc}") from None
    icc = im.info.get("icc_profile") or None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception as exc:  # a broken EXIF block must not lose the image
        log.warning("ignoring unreadable EXIF orientation: %s", exc)
    return _to_picture(im, icc)


def _to_picture(im: Image.Image, icc: bytes | None) -> Picture:
    alpha = None
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(im.getchannel("A"))
        im = im.convert("RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        a = np.asarray(im).astype(np.int64)
        a8 = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)  # 16-bit grey to 8 bits
        im = Image.fromarray(a8, "L").convert("RGB")
    elif mode == "F":
        a = np.asarray(im, dtype=np.float32)
        scale = 255.0 if a.max(initial=0) > 1.0 else 1.0
        im = Image.fromarray(np.clip(a / scale * 255, 0, 255).astype(np.uint8), "L").convert("RGB")
    elif mode == "CMYK":
        im = im.convert("RGB")
        icc = None  # a CMYK profile cannot describe RGB output
    elif mode != "RGB":
        im = im.convert("RGB")
    rgb = np.asarray(im)
    return Picture(rgb=rgb, alpha=alpha, icc_profile=icc)


def output_suffix(settings: Settings) -> str:
    """The file extension (with dot) of outputs made with ``settings``."""
    return {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}[settings.format]


def encode(pixels: np.ndarray, *, settings: Settings, icc_profile: bytes | None = None) -> bytes:
    """Encode an output array to file bytes.

    Parameters
    ----------
    pixels : ndarray of uint8, shape (H, W), (H, W, 3) or (H, W, 4)
        A mask, an RGB image or an RGBA cut-out.
    settings : Settings
        ``format``, ``png_compression`` and ``jpeg_quality`` are used.
    icc_profile : bytes, optional
        Embedded in the output when the format allows it.
    """
    if pixels.dtype != np.uint8:
        raise ValueError(f"encode expects uint8 pixels, got {pixels.dtype}")
    im = Image.fromarray(pixels)
    buf = io.BytesIO()
    extra = {"icc_profile": icc_profile} if icc_profile and im.mode != "L" else {}
    if settings.format == "png":
        im.save(buf, "PNG", compress_level=settings.png_compression, **extra)
    elif settings.format == "webp":
        im.save(buf, "WEBP", lossless=True, quality=0, method=0, exact=True, **extra)
    else:
        if im.mode == "RGBA":
            raise ValueError("jpeg cannot hold alpha")
        im.save(buf, "JPEG", quality=settings.jpeg_quality, **extra)
    return buf.getvalue()
