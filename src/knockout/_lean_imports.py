"""SciPy without the import-time work that a cut-out never uses.

Two things SciPy (1.15+) does on import, about 0.2 s of a one-off ``knockout cut`` together:

- ``scipy.ndimage`` imports ``scipy._lib.array_api_compat.numpy``, which copies numpy's namespace
  with ``from numpy import *`` and ``getattr`` on every name of ``dir(numpy)``: that imports each of
  numpy's lazily loaded submodules, ``numpy.f2py``, ``numpy.testing`` (and with it ``unittest``),
  ``numpy.ma``, ``numpy.polynomial`` and more, about 100 modules, 0.05-0.1 s and 7 MB of memory,
  none of which knockout or SciPy's code uses. While that one module runs, the submodules not
  imported yet are left out of numpy's ``__all__`` and ``dir()`` (both restored right after);
  everything stays importable as usual.
- ``scipy._lib._array_api.xp_capabilities`` decorates about 250 functions of ``scipy.ndimage``,
  ``scipy.special`` and ``scipy.linalg`` as they are imported, and ``scipy._lib._util``'s
  batching and ``rng`` decorators about 80 more; each decoration parses the function's whole
  docstring with SciPy's numpydoc parser (``FunctionDoc``) to add a note to it (array-API support,
  batching): 0.1-0.15 s of CPU. In those two modules the parser is replaced by one that keeps the
  docstring as it is, without the note (the capabilities table the decorator also fills, which
  SciPy's own tests read, is filled as before).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["install"]

_COPY = "scipy._lib.array_api_compat.numpy"
#: the modules whose decorators rewrite docstrings with numpydoc's parser as SciPy is imported
_DOC_DECORATORS = ("scipy._lib._array_api", "scipy._lib._util")


def install() -> None:
    """Add the finder (once, and only for the modules not imported yet)."""
    todo = {_COPY: _hide_numpy_submodules} | dict.fromkeys(_DOC_DECORATORS, _plain_docstrings)
    todo = {name: hook for name, hook in todo.items() if name not in sys.modules}
    if todo and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(todo))


class _Finder:
    """Finds the modules of ``todo`` with the other finders and wraps their loaders; removes itself
    when it has found them all."""

    def __init__(self, todo: dict[str, Any]) -> None:
        self._todo = dict(todo)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        hook = self._todo.pop(fullname, None)
        if hook is None:
            return None
        if not self._todo:
            sys.meta_path.remove(self)
        from importlib.util import find_spec

        # find_spec from inside a finder: this finder must not answer again for the same name
        spec = find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _WrappedLoader(spec.loader, hook)
        return spec


class _WrappedLoader:
    def __init__(self, loader: Any, hook: Any) -> None:
        self._loader = loader
        self._hook = hook

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, ... of the real loader
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._hook(self._loader, module)


def _hide_numpy_submodules(loader: Any, module: Any) -> None:
    import numpy as np

    lazy = getattr(np, "__numpy_submodules__", ())
    hidden = {n for n in lazy if f"numpy.{n}" not in sys.modules} - {"typing"}  # it imports numpy.typing
    saved_all, saved_dir = np.__all__, np.__dict__.get("__dir__")
    np.__all__ = [n for n in saved_all if n not in hidden]
    if saved_dir is not None:
        np.__dir__ = lambda: [n for n in saved_dir() if n not in hidden]
    try:
        loader.exec_module(module)
    finally:
        np.__all__ = saved_all
        if saved_dir is not None:
            np.__dir__ = saved_dir


def _plain_docstrings(loader: Any, module: Any) -> None:
    loader.exec_module(module)
    if isinstance(getattr(module, "FunctionDoc", None), type):  # the decorator looks it up when it runs
        module.FunctionDoc = _PlainDoc


class _PlainDoc:
    """What ``xp_capabilities`` needs of numpydoc's ``FunctionDoc``: its sections to append a note
    to (dropped here), and ``str()`` as a signature line and the docstring (kept as it is)."""

    def __init__(self, func: Any, *args: Any, **kwargs: Any) -> None:
        self._doc = getattr(func, "__doc__", None) or ""

    def __getitem__(self, section: str) -> list[str]:
        return []

    def __str__(self) -> str:
        return "\n" + self._doc
