"""What the fork server of ``knockout cut -j N``'s pool imports once for all its workers.

The core, with SciPy's import-time work that a cut-out never uses left out (:mod:`knockout._lean_imports`,
as the command line itself does): 0.1-0.15 s of CPU less in every pool. Imports only: no computation
(OpenMP thread pools must not exist in a process that forks).
"""

from __future__ import annotations

from ._lean_imports import install

install()

from . import process  # noqa: E402, F401  (imported for the workers)
