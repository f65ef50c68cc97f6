"""Helpers that make small image files of every kind for the I/O and CLI tests."""

from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageCms


def to_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB): grey (H, W) or RGB (H, W, 3) uint16."""
    h, w = arr.shape[:2]
    color_type = 0 if arr.ndim == 2 else {3: 2, 4: 6}[arr.shape[2]]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels but holds almost no data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@functools.cache
def srgb_profile() -> bytes:
    # one profile per run: its header holds a creation time
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def striped_jpeg(h: int, w: int, *, rows: bool = False) -> bytes:
    """A large JPEG of stripes (columns in red, and rows in green with ``rows``): big, cheap to make."""
    big = np.zeros((h, w, 3), np.uint8)
    big[:, :, 0] = np.arange(w, dtype=np.uint32)[None, :] % 251
    if rows:
        big[:, :, 1] = np.arange(h, dtype=np.uint32)[:, None] % 241
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "JPEG", quality=80)
    return buf.getvalue()
