"""Running: claimed work handed to the executor (``executor.py``), finished work handed on as outcomes.

The runner owns the executor and the futures in flight; it never touches a folder. A reload
that changes the executor retires the old one once its last future is collected.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from .config import Job
from .executor import Executor, ExecutorConfig, WorkLost, make_executor
from .records import Outcome, Work

__all__ = ["Runner"]


@dataclass(frozen=True)
class _Flight:
    work: Work
    executor: Executor
    future: Future


class Runner:
    """The executor and the work in flight on it; ``wake`` is set whenever a future finishes."""

    def __init__(self, config: ExecutorConfig, wake: threading.Event) -> None:
        self.executor: Executor = make_executor(config)  # first: a missing extra is a config error
        self.config = config
        self.wake = wake
        self.flights: list[_Flight] = []
        self.retired: list[Executor] = []
        self.narrow_until = 0.0

    def __len__(self) -> int:
        return len(self.flights)

    def count(self, job: Job) -> int:
        return sum(1 for f in self.flights if f.work.job.name == job.name)

    def room(self) -> int:
        """How many more files the current executor may take now (its ``max_in_flight`` less those running)."""
        busy = sum(1 for f in self.flights if f.executor is self.executor and not f.future.done())
        limit = 1 if time.monotonic() < self.narrow_until else self.executor.max_in_flight
        return limit - busy

    def squeeze(self, seconds: float) -> None:
        """One file in flight at a time for ``seconds`` (after a worker ran out of memory)."""
        self.narrow_until = time.monotonic() + seconds

    def reconfigure(self, config: ExecutorConfig) -> None:
        if config != self.config:
            self.retired.append(self.executor)
            self.executor = make_executor(config)
            self.config = config

    def submit(self, w: Work, data: bytes) -> None:
        """Send the bytes of a claimed file to the executor (raises what the executor's ``submit`` raises)."""
        future = self.executor.submit(data, w.job.settings)
        future.add_done_callback(lambda _f: self.wake.set())
        self.flights.append(_Flight(w, self.executor, future))

    def finished(self) -> list[Outcome]:
        """The outcomes of the futures that are done (each handed out once); idle retired executors shut down."""
        out = []
        for f in list(self.flights):
            if not f.future.done():
                continue
            self.flights.remove(f)
            exc = f.future.exception() if not f.future.cancelled() else WorkLost("cancelled")
            out.append(Outcome(f.work, error=exc) if exc is not None else Outcome(f.work, result=f.future.result()))
        for ex in list(self.retired):
            if not any(f.executor is ex for f in self.flights):
                ex.shutdown(wait=False)
                self.retired.remove(ex)
        return out

    def cancel_all(self) -> list[Work]:
        """Stop waiting for everything in flight; the works, for the caller to give back."""
        works = []
        for f in self.flights:
            f.future.cancel()
            works.append(f.work)
        self.flights = []
        return works

    def shutdown(self) -> None:
        for ex in [self.executor, *self.retired]:
            ex.shutdown(wait=False)
        self.retired = []

    def describe(self) -> str:
        return self.executor.describe()
