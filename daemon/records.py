"""The small frozen records the daemon's stages hand each other.

``Candidate`` (finding -> claiming): an inbox file that has been stable for ``settle`` seconds.
``Work`` (claiming -> running -> filing): a claimed file, its bytes read.
``Outcome`` (running -> filing): what the executor made of a piece of work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from .config import Job

if TYPE_CHECKING:
    from knockout.process import Processed

__all__ = ["Candidate", "Outcome", "Work"]


@dataclass(frozen=True)
class Candidate:
    """A stable inbox file."""

    job: Job
    path: Path  # job.inbox / rel
    rel: PurePath
    seen: float  # wall time of its first event (for latency figures)


@dataclass(frozen=True)
class Work:
    """A claimed file."""

    job: Job
    rel: PurePath
    claim: Path  # where it lies in the claims folder
    stat: os.stat_result  # its fstat when read (lstat before)
    seen: float
    digest: bytes | None = None  # of the bytes read (None before they are)


@dataclass(frozen=True)
class Outcome:
    """The executor's answer for ``work``: a ``result``, or the ``error`` it raised."""

    work: Work
    result: Processed | None = None
    error: BaseException | None = None
