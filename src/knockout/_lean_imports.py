"""SciPy without the numpy submodules that only its copy of numpy's namespace would import.

``scipy.ndimage`` (SciPy 1.15+) imports ``scipy._lib.array_api_compat.numpy``, which copies numpy's
namespace with ``from numpy import *`` and ``getattr`` on every name of ``dir(numpy)``: that imports
each of numpy's lazily loaded submodules, ``numpy.f2py``, ``numpy.testing`` (and with it
``unittest``), ``numpy.ma``, ``numpy.polynomial`` and more, about 100 modules, 0.05-0.1 s and 7 MB
of memory in every ``knockout cut``, none of which knockout or SciPy's code uses. While that one
module runs, the submodules not imported yet are left out of numpy's ``__all__`` and ``dir()``
(both restored right after); everything stays importable as usual.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["install"]

_COPY = "scipy._lib.array_api_compat.numpy"


def install() -> None:
    """Add the finder (once, and only while SciPy's copy of numpy has not been made yet)."""
    if _COPY not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


class _Finder:
    """Finds ``_COPY`` with the other finders and wraps its loader; removes itself when it has."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != _COPY:
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _HidingLoader(spec.loader)
        return spec


class _HidingLoader:
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, ... of the real loader
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        import numpy as np

        lazy = getattr(np, "__numpy_submodules__", ())
        hidden = {n for n in lazy if f"numpy.{n}" not in sys.modules} - {"typing"}  # it imports numpy.typing
        saved_all, saved_dir = np.__all__, np.__dict__.get("__dir__")
        np.__all__ = [n for n in saved_all if n not in hidden]
        if saved_dir is not None:
            np.__dir__ = lambda: [n for n in saved_dir() if n not in hidden]
        try:
            self._loader.exec_module(module)
        finally:
            np.__all__ = saved_all
            if saved_dir is not None:
                np.__dir__ = saved_dir
