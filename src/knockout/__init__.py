"""knockout: take the plain or studio backdrop off headshots.

The public surface is small: :class:`Settings` (one frozen settings object for every front
end), :func:`segment` (the hard subject mask), :func:`cut_out` (the mask, the soft-alpha matte
and decontamination of :func:`knockout.matte.matte`, and the requested output) and
:func:`process_bytes` (file bytes in, encoded output out).
"""

from .cutout import CutOut, cut_out
from .imageio import ImageError
from .process import process_bytes
from .segment import Segmentation, segment
from .settings import PRESETS, Settings, SettingsError

__version__ = "0.1.0"
__all__ = [
    "PRESETS",
    "CutOut",
    "ImageError",
    "Segmentation",
    "Settings",
    "SettingsError",
    "__version__",
    "cut_out",
    "process_bytes",
    "segment",
]
