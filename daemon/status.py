"""Status: per-job counts and last errors, written to ``STATE_DIR/status.json`` for ``knockout status``.

(The place for a journal writer too: every event that changes a count passes through here.)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from knockout.fsutil import atomic_write

from . import files
from .config import Config, Job

__all__ = ["JobStats", "Status"]

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0


@dataclass
class JobStats:
    processed: int = 0
    failed: int = 0
    skipped: int = 0
    review: int = 0  # of the processed, how many were flagged for review (confidence below review_below)
    ignored: int = 0  # files that stay in the inbox: not image names, FIFOs, files that cannot be claimed
    last_error: str | None = None


class Status:
    """The counts of every job, and ``status.json``, rewritten at most every second while something changes."""

    def __init__(self) -> None:
        self.started = time.time()
        self.stats: dict[str, JobStats] = {}
        self.dirty = True
        self._last = 0.0
        self._said: set[str] = set()

    def of(self, job: Job) -> JobStats:
        return self.stats.setdefault(job.name, JobStats())

    def processed(self, job: Job, *, review: bool = False) -> None:
        s = self.of(job)
        s.processed += 1
        s.review += review
        self.dirty = True

    def skipped(self, job: Job) -> None:
        self.of(job).skipped += 1

    def failed(self, job: Job, what: str) -> None:
        s = self.of(job)
        s.failed += 1
        s.last_error = what
        self.dirty = True

    def ignored(self, job: Job, rel: object, reason: str) -> None:
        """A file left in the inbox for ``reason``: logged and counted once (per file and reason)."""
        key = f"{job.name}\0{rel}\0{reason}"
        if key in self._said:
            return
        self._said.add(key)
        self.of(job).ignored += 1
        self.dirty = True
        log.warning("%s: %s: %s; ignored, it stays in the inbox", job.name, rel, reason)

    def error(self, job: Job | None, msg: str) -> None:
        """``msg`` as the last error of ``job`` (of every job if None)."""
        for name in [job.name] if job else list(self.stats):
            self.stats[name].last_error = msg
        self.dirty = True

    def unsafe(self, job: Job, exc: OSError) -> None:
        """Log (once per message) that a job's claims folder is not the daemon's; its files wait."""
        msg = f"{job.name}: {exc}; its files wait in the inbox until this is fixed"
        if msg not in self._said:
            self._said.add(msg)
            log.error("%s", msg)
            self.error(job, str(exc))

    def totals(self) -> tuple[int, int, int]:
        s = self.stats.values()
        return sum(x.processed for x in s), sum(x.failed for x in s), sum(x.skipped for x in s)

    def due(self, now: float) -> bool:
        return (self.dirty and now - self._last >= STATUS_EVERY) or now - self._last >= 10.0

    def write(
        self,
        cfg: Config,
        *,
        running: bool,
        executor: str | None,
        queued: Callable[[Job], int],
        in_flight: Callable[[Job], int],
    ) -> None:
        self._last = time.monotonic()
        self.dirty = False
        jobs: dict[str, Any] = {}
        for job in cfg.jobs:
            s = self.stats.get(job.name, JobStats())
            jobs[job.name] = {
                "inbox": str(job.inbox),
                "outbox": str(job.outbox),
                "queued": queued(job),
                "in_flight": in_flight(job),
                "processed": s.processed,
                "failed": s.failed,
                "skipped": s.skipped,
                "review": s.review,
                "ignored": s.ignored,
                "last_error": s.last_error,
            }
        status = {
            "running": running,
            "pid": os.getpid(),
            "host": files.HOST,
            "config": cfg.source,
            "started": self.started,
            "updated": time.time(),
            "executor": executor,
            "jobs": jobs,
        }
        try:
            atomic_write(cfg.state_dir / "status.json", json.dumps(status, indent=1).encode())
        except OSError as exc:  # knockout status would say "not running": say why, once
            where = cfg.state_dir / "status.json"
            msg = f"cannot write {where}: {exc.strerror or exc}; knockout status cannot see this daemon"
            if msg not in self._said:
                self._said.add(msg)
                log.error("%s", msg)
