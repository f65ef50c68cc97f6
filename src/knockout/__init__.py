"""knockout: take the plain or studio backdrop off headshots."""

from .segment import Segmentation, segment
from .settings import PRESETS, Settings, SettingsError

__version__ = "0.1.0"
__all__ = ["PRESETS", "Segmentation", "Settings", "SettingsError", "__version__", "segment"]
