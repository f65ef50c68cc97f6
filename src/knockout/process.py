"""Bytes in, bytes out: the unit of work shared by ``knockout cut``, the daemon and Dask workers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .cutout import cut_out
from .imageio import decode, encode, output_suffix
from .settings import Settings

__all__ = ["Processed", "process_bytes", "process_file"]


@dataclass(frozen=True)
class Processed:
    """An encoded output and a short record of how it was made."""

    data: bytes
    suffix: str
    width: int
    height: int
    method: str
    tolerance: float
    milliseconds: float
    confidence: float | None = None
    reasons: tuple[str, ...] = ()
    review: bool = False
    #: things the user should know about this file, one line each (the first frame of an animation)
    notes: tuple[str, ...] = ()


def process_bytes(data: bytes, *, settings: Settings) -> Processed:
    """Decode ``data``, cut out the subject, encode the output.

    Raises
    ------
    knockout.imageio.ImageError
        When ``data`` is not a readable image (the message says why).
    """
    t0 = time.perf_counter()
    pic = decode(data, settings=settings)
    h, w = pic.rgb.shape[:2]
    icc = pic.icc_profile
    meta = {} if settings.strip else {"exif": pic.exif, "dpi": pic.dpi}
    notes = pic.notes
    if settings.depth == 16:
        from ._deep import cut_out_16

        pixels, tolerance, judged = cut_out_16(pic, settings=settings)
    else:
        res = cut_out(pic.rgb, settings=settings, source_alpha=pic.alpha)
        pixels, tolerance, judged = res.pixels, res.segmentation.tolerance, res.segmentation.assessment
        del res
    del pic  # the input, matte and masks are not needed to encode: keep the peak memory low
    text = None
    if judged is not None:
        text = {"knockout:confidence": f"{judged.confidence:.3f}", "knockout:reasons": " ".join(judged.reasons)}
    out = encode(pixels, settings=settings, icc_profile=icc, text=text, **meta)
    return Processed(
        data=out,
        suffix=output_suffix(settings),
        width=w,
        height=h,
        method=settings.preset or settings.method,
        tolerance=tolerance,
        milliseconds=(time.perf_counter() - t0) * 1000,
        confidence=None if judged is None else judged.confidence,
        reasons=() if judged is None else judged.reasons,
        review=judged is not None and judged.confidence < settings.review_below,
        notes=notes,
    )


def process_file(path: Path, *, settings: Settings) -> Processed:
    """Read ``path`` and run :func:`process_bytes` on its contents."""
    return process_bytes(Path(path).read_bytes(), settings=settings)
