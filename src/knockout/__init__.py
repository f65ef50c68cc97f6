"""knockout: take the plain or studio backdrop off headshots.

The public surface is small: :class:`Settings` (one frozen settings object for every front
end), :func:`segment` (the hard subject mask), :func:`cut_out` (the mask, the soft-alpha matte
and decontamination of :func:`knockout.matte.matte`, and the requested output) and
:func:`process_bytes` (file bytes in, encoded output out).

The names are imported on first use (``knockout.cut_out`` loads numpy, SciPy and the core
then), so ``import knockout`` and the command line's start-up stay cheap.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "PRESETS": "settings",
    "Settings": "settings",
    "SettingsError": "settings",
    "CutOut": "cutout",
    "cut_out": "cutout",
    "ImageError": "imageio",
    "process_bytes": "process",
    "Segmentation": "segment",
    "segment": "segment",
}

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

if TYPE_CHECKING:  # pragma: no cover
    from .cutout import CutOut, cut_out
    from .imageio import ImageError
    from .process import process_bytes
    from .segment import Segmentation, segment
    from .settings import PRESETS, Settings, SettingsError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'knockout' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Keeps ``knockout.segment`` the function when the import system binds the submodule of that name."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return  # the submodule stays reachable as sys.modules["knockout.segment"]
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
