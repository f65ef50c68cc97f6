"""How far the matte box-reduces a big photo before matting it (no SciPy here: the decoder uses it too).

:func:`knockout.imageio.decode` can reduce the image for the matte while Pillow still holds it
(``reduce=``), on ``knockout cut``'s decode thread, before :mod:`knockout.matte` is imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings

__all__ = ["MATTE_PIXELS", "reduction", "reduction_for"]

#: bigger images are matted on a box-reduced copy, then refined along the edge at full size
MATTE_PIXELS = 600_000


def reduction(h: int, w: int, pixels: int = MATTE_PIXELS) -> int:
    """Box-reduction factor that brings an ``h`` x ``w`` image under ``pixels`` (1: matte it as it is)."""
    return max(1, math.ceil(math.sqrt(h * w / pixels)))


def reduction_for(settings: Settings) -> Callable[[int, int], int] | None:
    """:func:`reduction` when a cut-out with ``settings`` is matted from the 8-bit image, else None."""
    return reduction if not settings.hard_edged and settings.depth == 8 else None
