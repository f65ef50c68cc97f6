"""Bytes in, bytes out: the unit of work shared by ``knockout cut``, the daemon and Dask workers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._kmeans import thread_pools
from ._matte_size import reduction_for
from .compose import compose
from .cutout import cut_out
from .imageio import Picture, decode, encode, output_suffix
from .matte import _matted
from .segment import segment
from .settings import Settings

__all__ = ["Processed", "process_bytes", "process_decoded", "process_file", "warm_up"]

log = logging.getLogger(__name__)


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
    return process_decoded(
        lambda: decode(data, settings=settings, reduce=reduction_for(settings)), settings=settings, started=t0
    )


def process_decoded(take: Callable[[], Picture], *, settings: Settings, started: float | None = None) -> Processed:
    """:func:`process_bytes` from the decoded picture on.

    ``take`` returns the picture (called once, here, so that this function holds the only
    reference to it: the image is freed as soon as it has been used, 36 MB at 12 MP);
    ``started`` is when the timing began (a ``time.perf_counter()``; by default now).
    """
    t0 = time.perf_counter() if started is None else started
    pic = take()
    h, w = pic.rgb.shape[:2]
    icc = pic.icc_profile
    meta = {} if settings.strip else {"exif": pic.exif, "dpi": pic.dpi}
    notes = pic.notes
    # One BLAS thread: the matte's vector operations on a headshot are too small to share, and
    # OpenBLAS's idle threads spin: 2.5x the CPU time and 2x the wall time at 600x800 on a busy
    # 2-core machine, no gain at 12 MP (bench/RESULTS.md); knockout's own thread pools still run
    with thread_pools().limit(limits=1, user_api="blas"):
        if settings.depth == 16:
            from ._deep import cut_out_16

            pixels, tolerance, judged = cut_out_16(pic, settings=settings)
            del pic
        else:
            rgb, source_alpha, reduced = pic.rgb, pic.alpha, pic.reduced
            del pic
            # cut_out's steps, each input dropped once used: at 12 MP the full-size mask (12 MB) is
            # gone before the output (48 MB) is built from the image, the matte before it is encoded
            seg = segment(rgb, settings=settings)
            rgb, alpha, edits = _matted(rgb, seg, settings=settings, reduced=reduced)
            del reduced
            tolerance, judged = seg.tolerance, seg.assessment
            del seg
            # the rgba output as rows, each strip built by the PNG writer's thread that deflates it
            pixels = compose(rgb, alpha, settings=settings, source_alpha=source_alpha, edits=edits, lazy=True)
            del rgb, alpha, edits, source_alpha
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


def warm_up(settings: Settings) -> None:
    """Cut out a tiny synthetic headshot with ``settings`` (never raises).

    Run by a pool's worker process when it starts, so the first real file does not pay for
    the core's lazy imports and first-call set-ups.
    """
    yy, xx = np.mgrid[0:48, 0:40]
    rgb = np.full((48, 40, 3), 210, np.uint8)
    rgb[(yy - 30) ** 2 + (xx - 20) ** 2 < 150] = (60, 50, 40)
    try:
        pixels = cut_out(rgb, settings=settings.replace(crop=False)).pixels
        encode(pixels, settings=settings)
    except Exception as exc:  # warming up must never stop a worker; the real file reports its own errors
        log.debug("warm-up failed: %s: %s", type(exc).__name__, exc)
