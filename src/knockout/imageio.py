"""Decoding and encoding: the only place where knockout touches image bytes.

:func:`decode` turns file bytes into a :class:`Picture` (EXIF orientation applied, any mode
converted to 8-bit sRGB, existing alpha and ICC profile kept); :func:`encode` turns the
composed output array back into file bytes in the format the settings ask for.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from . import _png
from ._formats import EXTENSIONS, output_suffix
from .compose import Rows
from .settings import Settings

__all__ = ["ImageError", "Picture", "decode", "encode", "EXTENSIONS", "is_own_output", "output_suffix"]

log = logging.getLogger(__name__)

try:  # optional HEIC/HEIF support: pip install 'knockout[heif]'
    from pillow_heif import register_heif_opener

    register_heif_opener()
    _HEIF = True
except ImportError:  # pragma: no cover - depends on the extra
    _HEIF = False

#: The Pillow formats whose extensions :data:`EXTENSIONS` holds.
PHOTO_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF", "AVIF", "JPEG2000", "PPM", "TGA")
PHOTO_FORMATS += ("QOI", "PSD", "PCX", "SGI")

#: Written into PNG (a Software text), JPEG (a comment) and WebP (XMP CreatorTool) outputs, so a
#: later run knows its own outputs (:func:`is_own_output`).
SOFTWARE = "knockout"
_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="knockout"/></rdf:RDF></x:xmpmeta>'
)


def is_own_output(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` was written by knockout (its mark in PNG, JPEG or WebP); False if unreadable."""
    try:
        with Image.open(path) as im:
            info = im.info
            xmp = info.get("xmp") or b""
            return (
                info.get("Software") == SOFTWARE
                or info.get("comment") == SOFTWARE.encode()
                or b'xmp:CreatorTool="knockout"' in (xmp if isinstance(xmp, bytes) else xmp.encode())
            )
    except Exception:
        return False


_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_WEBP_MAX_SIDE = 16383


class ImageError(ValueError):
    """The bytes are not an image knockout can read (or write): empty, truncated, corrupt, too large.

    The message is one line that says why, without the file name (the caller adds it).
    """


@dataclass(frozen=True)
class Picture:
    """A decoded image.

    Attributes
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        sRGB pixels for segmentation (16-bit sources are scaled to 8 bits), upright
        (EXIF orientation applied).
    alpha : ndarray of uint8, shape (H, W), or None
        The source's own alpha channel, if it had one (including palette transparency).
    icc_profile : bytes or None
        The source's ICC profile when it describes RGB pixels, carried to the output.
    exif : bytes or None
        The source's EXIF (TIFF-structured, without the ``Exif\\0\\0`` header): artist,
        copyright, dates, camera, GPS...; its orientation removed (the pixels are upright) and
        the tags that describe the old pixel layout, the maker note and thumbnail dropped.
    dpi : tuple of 2 float or None
        The source's resolution in pixels per inch (PNG pHYs, JPEG JFIF density, TIFF, EXIF).
    frames : int
        Frames or pages in the source (animated GIF/WebP/PNG, multi-page TIFF); only the first
        is read.
    deep : ndarray of uint16, shape (H, W, 3) or (H, W, 4), or None
        With ``depth: 16``, a 16-bit source's colours at full precision, upright (16-bit grey
        through Pillow; 16-bit RGB/RGBA PNG and TIFF through imagecodecs, which Pillow reads at
        8 bits only), and its alpha channel at 16 bits as the fourth one when it has one. None
        for 8-bit sources and with ``depth: 8``.
    notes : tuple of str
        What the user should be told about this file (the first frame used, 16 bits not read).
    reduced : tuple of (int, ndarray of uint8), or None
        ``(f, small)``: ``rgb`` box-reduced by ``f`` with Pillow's ``reduce`` (what the matte works
        on for a big photo), when :func:`decode` was asked for it (``reduce=``).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    frames: int = 1
    deep: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    reduced: tuple[int, np.ndarray] | None = dataclasses.field(default=None, repr=False, compare=False)


def decode(
    data: bytes, *, settings: Settings | None = None, reduce: Callable[[int, int], int] | None = None
) -> Picture:
    """Decode image file bytes.

    Parameters
    ----------
    data : bytes
        The file's contents (JPEG, PNG, WebP, TIFF, BMP, GIF; HEIC/HEIF with the ``heif`` extra).
    settings : Settings, optional
        ``max_pixels`` is the decompression-bomb limit. Defaults to ``Settings()``.
    reduce : callable, optional
        ``reduce(height, width)`` gives a box-reduction factor ``f``; when it is above 1, the
        picture also holds the image reduced by ``f`` (:attr:`Picture.reduced`), made from
        Pillow's decoded image before it is freed (without the copy back into Pillow that
        reducing ``rgb`` takes).

    Returns
    -------
    Picture

    Raises
    ------
    ImageError
        With a one-line reason: empty, not an image, truncated or corrupt, too many pixels or scans.
    MemoryError
        When decoding runs out of memory (a resource limit, not the file's fault).
    """
    settings = settings or Settings()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode expects the file's bytes, got {type(data).__name__}")
    if not data:
        raise ImageError("empty file (0 bytes)")
    _arm_bomb_guard(settings.max_pixels)
    _check_scans(data)
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > settings.max_pixels:
                raise ImageError(
                    f"too many pixels: {w}x{h} = {w * h:,} is over max_pixels = {settings.max_pixels:,} "
                    "(raise max_pixels if the file is trusted)"
                )
            if w < 2 or h < 2:
                raise ImageError(f"too small: {w}x{h} pixels; knockout needs at least 2x2")
            if im.format in ("JPEG", "MPO") and len(data) <= _ONE_READ:
                # the whole file in one call of the decoder, which releases the GIL: in 64 KB pieces
                # it took the GIL back 17 times for a 12 MP photo, and waited for it each time that
                # another thread held it (knockout cut decodes while the core is imported)
                im.decodermaxblock = max(im.decodermaxblock, len(data))
            im.load()
            for warned in said:  # Pillow says "truncated" or "corrupt" in a warning and carries on: a failure
                if _DAMAGE.search(str(warned.message)):
                    raise ImageError(f"truncated or corrupt image: {_one_line(Exception(warned.message))}")
            _check_complete(im, data)
            icc = im.info.get("icc_profile") or None
            frames = max(1, int(getattr(im, "n_frames", 1) or 1))
            orientation = _orientation(im)
            _apply_orientation(im)
            exif, dpi = _metadata(im)
            deep, notes = _deep(data, im, orientation) if settings.depth == 16 else (None, ())
            if frames > 1:
                notes = (f"has {frames} frames or pages; only the first is cut out", *notes)
            pic = _to_picture(im, icc, reduce)
            if deep is not None and deep.shape[:2] != pic.rgb.shape[:2]:
                deep, notes = None, (*notes, "its 16-bit pixels do not match the image; read at 8 bits")
            return dataclasses.replace(pic, exif=exif, dpi=dpi, frames=frames, deep=deep, notes=notes)
    except ImageError:
        raise
    except UnidentifiedImageError:
        kind = _sniff(data)
        if kind == "HEIF" and not _HEIF:
            raise ImageError("a HEIC/HEIF image, which needs the heif extra: pip install 'knockout[heif]'") from None
        if kind:
            raise ImageError(f"truncated or corrupt image: starts like a {kind} file but cannot be read") from None
        raise ImageError("not an image Pillow can read (unknown or unsupported format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"too many pixels: over max_pixels = {settings.max_pixels:,} (raise max_pixels if the file is trusted)"
        ) from exc
    except MemoryError:  # not the file's fault: a resource limit (the daemon retries it later)
        raise MemoryError("not enough memory to decode this image (a resource limit, not a bad file)") from None
    except Exception as exc:  # Pillow's plugins raise many kinds on bad data; none may stop a batch
        raise ImageError(f"truncated or corrupt image: {_one_line(exc)}") from exc


_ONE_READ = 64 << 20  # a JPEG up to this size is given to the decoder in one piece

_DAMAGE = re.compile(r"truncat|corrupt|premature", re.IGNORECASE)
_MISSING = 128  # what libjpeg fills in for scan data that is not there: Y = Cb = Cr = 128, grey


def _check_complete(im: Image.Image, data: bytes) -> None:
    """Refuse a JPEG whose scan data ended early, which libjpeg decodes without an error.

    A JPEG cut short (with an end marker appended, or a header claiming more rows than the data
    holds) decodes with everything after the cut exactly grey 128 in every channel: a bottom-right
    8x8 block all 128 is taken for missing data (a photo never has that; a flat mid-grey
    drawing does). A progressive JPEG cut short decodes from the scans it has, without grey:
    its scan headers must bring every coefficient of every component to full precision
    (:func:`_progression_missing`). Not caught: a progressive JPEG cut inside its last scan (its
    blocks after the cut lack only the last refinement).
    """
    if im.format != "JPEG":
        return
    if im.info.get("progressive") or im.info.get("progression"):
        missing = _progression_missing(data)
        if missing:
            raise ImageError(
                f"truncated or corrupt image: the progressive JPEG's scans end before the image is complete ({missing})"
            )
    if im.mode not in ("RGB", "L") or im.height < 8 or im.width < 8:
        return
    tail = np.asarray(im.crop((im.width - 8, im.height - 8, im.width, im.height)))
    if (tail == _MISSING).all():
        raise ImageError(
            "truncated or corrupt image: the JPEG's scan data ends early (its last blocks are the grey of missing data)"
        )


def _progression_missing(data: bytes) -> str:
    """What a progressive JPEG's scans leave unfinished ('' when every coefficient reaches full precision).

    Reads only the marker segments (the frame's components, each scan's components, spectral
    band ``Ss..Se`` and successive-approximation bit ``Al``), skipping entropy-coded data.
    """
    data = bytes(data)
    comps: list[int] = []
    done: dict[int, int] = {}  # component id -> bit mask of the coefficients finished (Al == 0)
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return "a marker is missing"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        seg = data[pos + 4 : pos + 2 + length]
        if marker in (0xC2, 0xC6, 0xCA, 0xCE) and len(seg) >= 6:
            comps = [seg[6 + 3 * i] for i in range(seg[5]) if 6 + 3 * i < len(seg)]
        pos += 2 + length
        if marker != 0xDA:
            continue
        ns = seg[0] if seg else 0
        if len(seg) < 4 + 2 * ns:
            return "a scan header is cut short"
        ss, se, al = seg[1 + 2 * ns], seg[2 + 2 * ns], seg[3 + 2 * ns] & 0x0F
        if al == 0 and ss <= se <= 63:
            band = ((1 << (se + 1)) - 1) ^ ((1 << ss) - 1)
            for i in range(ns):
                done[seg[1 + 2 * i]] = done.get(seg[1 + 2 * i], 0) | band
        while True:  # the entropy-coded data: up to the next marker that is not a stuffed 0xFF or RSTn
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= n:
                return "its data ends inside a scan"
            nxt = data[pos + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                pos += 1 if nxt == 0xFF else 2
                continue
            break
    full = (1 << 64) - 1
    short = [c for c in comps if done.get(c, 0) != full]
    if not short:
        return ""
    left = sum(64 - bin(done.get(c, 0)).count("1") for c in short)
    return f"{left} of {64 * len(comps)} coefficients of its {len(comps)} components never reach full precision"


MAX_SCANS = 100  # a progressive JPEG has about 10; thousands (empty ones) take a minute to decode


def _check_scans(data: bytes) -> None:
    """Refuse a JPEG with more than ``MAX_SCANS`` scans before decoding it (0xFFDA never occurs inside scan data)."""
    if bytes(data[:2]) == b"\xff\xd8":
        n = bytes(data).count(b"\xff\xda")
        if n > MAX_SCANS:
            raise ImageError(f"too many scans: {n} in one JPEG (at most {MAX_SCANS}); refused before decoding")


def _arm_bomb_guard(limit: int) -> None:
    """Keep Pillow's own decompression-bomb guard on, never stricter than ``limit`` allows."""
    if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8", "JPEG"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def _sniff(data: bytes) -> str | None:
    """The format a file's first bytes announce, for a better message when it cannot be read."""
    head = bytes(data[:16])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return "HEIF"
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def _apply_orientation(im: Image.Image) -> None:
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception as exc:  # a broken EXIF block must not lose the image
        log.warning("ignoring unreadable EXIF orientation: %s", _one_line(exc))


# IFD0 tags carried to outputs (the rest describe the source's pixel layout); sub-IFD tags dropped
_IFD0_KEEP = frozenset(
    {0x010E, 0x010F, 0x0110, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B, 0x013C, 0x8298, 0x4746, 0x4749}
    | {0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F}  # Windows title, comment, author, keywords, subject
    | {0x8769, 0x8825}  # the Exif and GPS sub-IFDs
)
_EXIF_IFD_DROP = frozenset({0x927C, 0xA002, 0xA003, 0xA005})  # maker note, pixel size, interop pointer


def _metadata(im: Image.Image) -> tuple[bytes | None, tuple[float, float] | None]:
    """(EXIF to carry, DPI) of an opened, upright image; a broken EXIF block is dropped with a warning."""
    dpi = None
    raw = im.info.get("dpi")
    try:
        if raw and float(raw[0]) > 0 and float(raw[1]) > 0:
            dpi = (round(float(raw[0]), 2), round(float(raw[1]), 2))
    except (TypeError, ValueError, IndexError):
        dpi = None
    try:
        src = im.getexif()
        if not src:
            return None, dpi
        out = Image.Exif()
        for tag, value in src.items():
            if tag in _IFD0_KEEP and tag not in (0x8769, 0x8825):
                out[tag] = value
        for pointer in (0x8769, 0x8825):
            if pointer in src:
                sub = {k: v for k, v in src.get_ifd(pointer).items() if k not in _EXIF_IFD_DROP}
                if sub:
                    out.get_ifd(pointer).update(sub)
        if dpi is None and 0x011A in out and 0x011B in out and out.get(0x0128, 2) in (2, 3):
            per = 2.54 if out.get(0x0128, 2) == 3 else 1.0
            dpi = (round(float(out[0x011A]) * per, 2), round(float(out[0x011B]) * per, 2))
        if not out:
            return None, dpi
        data = out.tobytes()
        return (data[6:] if data.startswith(b"Exif\x00\x00") else data), dpi
    except Exception as exc:  # a broken EXIF block must not lose the image
        log.warning("dropping unreadable EXIF: %s", _one_line(exc))
        return None, dpi


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if value in range(1, 9) else 1
    except Exception:
        return 1


# EXIF orientation -> the numpy view that turns the stored pixels upright (as ImageOps.exif_transpose)
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 1)[:, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _deep(data: bytes, im: Image.Image, orientation: int) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """(the 16-bit colours of a 16-bit source, upright, or None; notes) for ``depth: 16``."""
    if im.mode in _WIDE_GREY_MODES:  # Pillow keeps 16-bit grey (already upright)
        grey = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return np.repeat(grey[..., None], 3, axis=2), ()
    sixteen = (im.format == "PNG" and len(data) > 24 and data[24] == 16) or (
        im.format == "TIFF" and 16 in tuple(getattr(im, "tag_v2", {}).get(258, ()) or ())
    )
    if not sixteen or im.mode not in ("RGB", "RGBA"):
        return None, ()
    try:
        import imagecodecs
    except ImportError:
        return None, ("is 16-bit but read at 8 bits: pip install imagecodecs (or 'knockout[deep]') for --depth 16",)
    try:
        arr = imagecodecs.png_decode(data) if im.format == "PNG" else imagecodecs.tiff_decode(data)
    except Exception as exc:  # Pillow read it: keep its 8 bits rather than lose the file
        return None, (f"its 16-bit pixels cannot be read ({_one_line(exc)}); read at 8 bits",)
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] < 3:
        return None, ()
    arr = arr[..., :4]  # RGB, and a 16-bit alpha channel if there is one
    return np.ascontiguousarray(_UPRIGHT.get(orientation, lambda a: a)(arr)), ()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _to_picture(im: Image.Image, icc: bytes | None, reduce: Callable[[int, int], int] | None = None) -> Picture:
    alpha = None
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in _ALPHA_MODES:
        alpha = np.asarray(im.getchannel("A"))
        im = im.convert("RGB")
    elif mode in _WIDE_GREY_MODES:
        a = np.asarray(im)
        # 16-bit grey to 8 bits, rounded: v * 255 / 65535
        a8 = ((np.clip(a, 0, 65535).astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        im = Image.fromarray(a8, "L").convert("RGB")
    elif mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if not np.isfinite(a).all():
            bad = int(np.count_nonzero(~np.isfinite(a)))
            raise ImageError(f"corrupt image: {bad} pixel(s) of this floating-point image are NaN or infinite")
        scale = 255.0 if a.max(initial=0) > 1.0 else 1.0
        im = Image.fromarray(np.clip(np.round(a / scale * 255), 0, 255).astype(np.uint8), "L").convert("RGB")
    elif mode == "CMYK":
        im, icc = _cmyk_to_rgb(im, icc)
    elif mode != "RGB":
        im = im.convert("RGB")
    if icc is not None and not _is_rgb_profile(icc):
        log.debug("dropping a %r ICC profile: it cannot describe RGB output", icc[16:20])
        icc = None
    reduced = None
    if reduce is not None and im.mode == "RGB":
        f = reduce(im.height, im.width)
        if f > 1:
            reduced = (f, np.asarray(im.reduce(f)))
    return Picture(rgb=_pixels(im), alpha=alpha, icc_profile=icc, reduced=reduced)


def _pixels(im: Image.Image) -> np.ndarray:
    """``np.asarray(im)`` (read-only), an 8-bit RGB image in one call of Pillow's raw encoder.

    ``np.asarray`` packs the pixels through ``tobytes``, 64 KB at a time from Python, then joins
    the pieces: a second copy of the whole image (at 12 MP 45 against 30 ms, in process).
    """
    if im.mode != "RGB":
        return np.asarray(im)
    w, h = im.size
    size = w * h * 3
    try:
        encoder = Image._getencoder("RGB", "raw", "RGB")
        encoder.setimage(im.im, (0, 0, w, h))
        _, done, data = encoder.encode(size)
    except Exception:  # pragma: no cover - Pillow's internals moved: the usual way
        return np.asarray(im)
    if done != 1 or len(data) != size:  # pragma: no cover - not all of it in one piece
        return np.asarray(im)
    return np.frombuffer(data, np.uint8).reshape(h, w, 3)


def _is_rgb_profile(icc: bytes) -> bool:
    # ICC header: bytes 16-19 are the colour space of the data, 'RGB ' for RGB profiles
    return len(icc) >= 20 and icc[16:20] == b"RGB "


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """CMYK to sRGB through the embedded profile when there is one (else Pillow's naive formula)."""
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            rgb = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            return rgb, ImageCms.ImageCmsProfile(dst).tobytes()
        except Exception as exc:  # a broken profile must not lose the image
            log.warning("cannot use the embedded CMYK profile (%s); converting without it", _one_line(exc))
    return im.convert("RGB"), None


def _with_resolution(exif: bytes | None, dpi: tuple[float, float] | None) -> bytes | None:
    """``exif`` with its X/YResolution set to ``dpi`` (made when there was no EXIF but a DPI)."""
    if not dpi:
        return exif
    out = Image.Exif()
    if exif:
        out.load(exif)
    from PIL.TiffImagePlugin import IFDRational

    out[0x011A], out[0x011B], out[0x0128] = IFDRational(dpi[0]), IFDRational(dpi[1]), 2  # 2: inches
    data = out.tobytes()
    return data[6:] if data.startswith(b"Exif\x00\x00") else data


def encode(
    pixels: np.ndarray,
    *,
    settings: Settings,
    icc_profile: bytes | None = None,
    text: Mapping[str, str] | None = None,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
) -> bytes:
    """Encode an output array to file bytes.

    Parameters
    ----------
    pixels : ndarray of uint8 (or uint16 with ``depth: 16``), shape (H, W), (H, W, 3) or (H, W, 4), or Rows
        A mask (grey), an RGB image or an RGBA cut-out; or the cut-out as
        :func:`knockout.compose.compose` gives it with ``lazy=True``.
    settings : Settings
        ``format`` (png, lossless webp, jpeg), ``png_compression`` and ``jpeg_quality``.
        PNG at ``png_compression`` 1-3 (the default is 1) goes through the fast writer in
        ``knockout._png`` (ISA-L deflate); 0 (stored) and 4-9 (zlib, 9 smallest) through Pillow,
        as does every level when python-isal is not installed.
    icc_profile : bytes, optional
        An RGB ICC profile, embedded in colour outputs (never in a grey mask).
    text : mapping of str to str, optional
        PNG text chunks (tEXt), such as ``{"knockout:confidence": "0.93"}``; other formats ignore it.
        PNG outputs also get ``Software: knockout`` (JPEG a comment), so a later run knows them.
    exif : bytes, optional
        EXIF to embed (as :attr:`Picture.exif`): PNG eXIf, WebP EXIF, JPEG APP1.
    dpi : tuple of 2 float, optional
        Resolution in pixels per inch: PNG pHYs, JPEG JFIF density, and in the EXIF (the only
        place WebP keeps it).

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        If ``pixels`` is not uint8 with 2, 3 or 4 channels, or is RGBA with ``format: jpeg``.
    ImageError
        If the format cannot hold an image this large (WebP: 16383 px per side).
    """
    if isinstance(pixels, np.ndarray) and pixels.dtype == np.uint16 and settings.depth == 16:
        # 16 bits: only PNG holds them, and Pillow cannot write 16-bit colour PNG: the own writer
        level = min(max(settings.png_compression, _png.LEVELS[0]), _png.LEVELS[-1])
        exif, text = _with_resolution(exif, dpi), {"Software": SOFTWARE, **(text or {})}
        return _png.encode_png(pixels, level=level, icc_profile=icc_profile, text=text, exif=exif, dpi=dpi)
    fast_png = settings.format == "png" and settings.png_compression in _png.LEVELS and _png.available()
    lazy = isinstance(pixels, Rows)  # built strip by strip by the fast PNG writer, else here at once
    if lazy and not fast_png:
        pixels, lazy = pixels.array(), False
    if not lazy:
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
            raise ValueError(f"encode expects a uint8 numpy array, got {getattr(pixels, 'dtype', type(pixels))}")
        if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
            raise ValueError(f"encode expects shape (H, W), (H, W, 3) or (H, W, 4), got {pixels.shape}")
    exif = _with_resolution(exif, dpi)
    text = {"Software": SOFTWARE, **(text or {})}
    if fast_png and (lazy or pixels.size):
        level = settings.png_compression
        return _png.encode_png(pixels, level=level, icc_profile=icc_profile, text=text, exif=exif, dpi=dpi)
    im = Image.fromarray(np.ascontiguousarray(pixels))
    buf = io.BytesIO()
    extra: dict[str, Any] = {"icc_profile": icc_profile} if icc_profile and im.mode != "L" else {}
    if exif:
        extra["exif"] = b"Exif\x00\x00" + exif if settings.format == "jpeg" else exif
    if dpi and settings.format != "webp":
        extra["dpi"] = dpi
    if settings.format == "png":
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        im.save(buf, "PNG", compress_level=settings.png_compression, pnginfo=info, **extra)
    elif settings.format == "webp":
        if max(im.size) > _WEBP_MAX_SIDE:
            raise ImageError(
                f"WebP holds at most {_WEBP_MAX_SIDE} pixels per side, this output is {im.width}x{im.height}; "
                "use format: png"
            )
        im.save(buf, "WEBP", lossless=True, quality=0, method=0, exact=True, xmp=_XMP, **extra)
    else:
        if im.mode == "RGBA":
            raise ValueError("format jpeg cannot hold an alpha channel; use png or webp, or output solid or mask")
        im.save(buf, "JPEG", quality=settings.jpeg_quality, comment=SOFTWARE.encode(), **extra)
    return buf.getvalue()
