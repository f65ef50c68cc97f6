"""Where the daemon's image work runs: a local process pool or a Dask cluster.

The daemon process does all folder work itself (claims, reading the input, writing the
output atomically, moving the input to ``processed/`` or ``failed/``). It hands only bytes
and settings to an executor and gets encoded bytes back, so workers need no access to the
folders.

The executor interface (``Executor``), exactly
---------------------------------------------
``submit(data: bytes, settings: Settings) -> concurrent.futures.Future[Processed]``
    Run ``knockout.process.process_bytes(data, settings=settings)`` somewhere and return a
    standard ``concurrent.futures.Future`` (a Dask future must be wrapped). The daemon only
    calls ``.done()``, ``.result()`` / ``.exception()`` and ``.add_done_callback()`` on it,
    from its main thread; callbacks may come from any thread. ``submit`` must not block for
    long (at most until a connection attempt times out) and is only called while fewer than
    ``max_in_flight`` futures of this executor are unfinished.
``max_in_flight: int``
    The daemon never has more unfinished futures than this (back-pressure: a 50,000-file inbox
    is never read into memory at once). Read once per submit, so it may change over time.
``shutdown(wait: bool = True) -> None``
    Release workers / connections. With ``wait=True`` block until submitted work has finished.
    Called once; ``submit`` is not called afterwards.
``describe() -> str``
    One line for the log and ``knockout status`` (``'local pool, 2 workers'``).

What a future's outcome means to the daemon
    * a :class:`~knockout.process.Processed` result: the daemon writes ``result.data`` to the
      outbox (suffix ``result.suffix``) and moves the input to ``processed/``;
    * :class:`knockout.imageio.ImageError`: the input is bad (empty, corrupt, not an image, too
      many pixels); it goes to ``failed/`` with the message, never retried;
    * :class:`WorkLost` (defined here): the work did not run to completion for a reason that is
      not the file's fault (worker died repeatedly, scheduler gone and ``on_scheduler_loss:
      wait``, executor shut down). The input is released back to the inbox and retried later
      with back-off; nothing is lost and nothing is processed twice;
    * any other exception: a bug in the core for this image; the input goes to ``failed/``
      with the exception's type and message (logged with its traceback).

Executors must make retries invisible where they can: :class:`LocalExecutor` recreates a
broken process pool (a worker killed by the OOM killer or a segfault) and resubmits the
file, up to ``retries`` times, before the future fails with :class:`WorkLost`.

Dask (``knockout.distributed.DaskExecutor``, an optional extra) plugs in with the constructor
``DaskExecutor(address: str, max_in_flight: int | None, on_scheduler_loss: str,
fallback_factory: Callable[[], Executor])`` (``None``: two per worker thread of the cluster):
``on_scheduler_loss`` is ``'local'`` (call ``fallback_factory()`` once to get a
:class:`LocalExecutor` and send work there, with a warning) or ``'wait'`` (fail pending futures
with :class:`WorkLost`, report ``max_in_flight`` 0 so no new file is claimed, and keep trying to
reconnect).
:func:`make_executor` imports it lazily; when that import fails the daemon exits with status 2
and says to ``pip install 'knockout[dask]'``.

Configuration (``config.yaml``)::

    workers: auto                 # local pool size: auto = CPU count, or a number >= 1
    executor: local               # the default
    executor:                     # or a Dask scheduler
      dask: tcp://scheduler:8786
      max_in_flight: 64           # tasks in flight on the cluster (default 2 x the cluster's threads)
      on_scheduler_loss: local    # local (fall back to the local pool) or wait

``knockout watch --dask ADDRESS`` is a shortcut for the second form (it replaces ``local`` or the
address; a ``max_in_flight`` or ``on_scheduler_loss`` in the config still applies).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from knockout._cpus import limit_threads, usable_cpus
from knockout.settings import Settings, SettingsError, parse_choice, parse_number

if TYPE_CHECKING:  # the daemon process itself never needs the image core (scikit-learn...)
    from knockout.process import Processed

__all__ = ["Executor", "ExecutorConfig", "LocalExecutor", "TooSlow", "WorkLost", "make_executor", "parse_executor"]

log = logging.getLogger(__name__)

ON_SCHEDULER_LOSS = ("local", "wait")


class TooSlow(RuntimeError):
    """One file took longer than ``time_limit``: its worker was replaced; the file is failed, not retried."""


class WorkLost(RuntimeError):
    """The work did not complete for a reason that is not the input file's fault; retry later."""


@runtime_checkable
class Executor(Protocol):
    """Runs :func:`knockout.process.process_bytes` somewhere; see the module docstring."""

    max_in_flight: int

    def submit(self, data: bytes, settings: Settings) -> cf.Future[Processed]: ...

    def shutdown(self, wait: bool = True) -> None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class ExecutorConfig:
    """The resolved ``workers`` and ``executor`` settings of a config file."""

    workers: int
    dask: str | None = None
    max_in_flight: int | None = None
    on_scheduler_loss: str = "local"
    time_limit: float = 300.0  # seconds one file may run in a local worker (0: no limit)

    def to_dict(self) -> dict[str, Any]:
        ex: Any = "local"
        if self.dask:
            ex = {"dask": self.dask, "max_in_flight": self.max_in_flight, "on_scheduler_loss": self.on_scheduler_loss}
        return {"workers": self.workers, "executor": ex}


def parse_executor(workers: Any, executor: Any, *, where: str) -> ExecutorConfig:
    """Validate the ``workers`` and ``executor`` values of a config file.

    Raises
    ------
    SettingsError
        Naming ``where`` (the file), the key and what is allowed.
    """
    if workers is None or (isinstance(workers, str) and workers.lower() == "auto"):
        n = usable_cpus()
    else:
        try:
            n = parse_number("workers", workers, 1, 1024, integer=True, terse=True)
        except SettingsError:
            raise SettingsError(
                f"{where}: workers: {workers!r} is not allowed; use auto or an integer from 1 to 1024"
            ) from None
    if executor is None or (isinstance(executor, str) and executor.lower() == "local"):
        return ExecutorConfig(workers=n)
    if not isinstance(executor, Mapping):
        raise SettingsError(
            f"{where}: executor: {executor!r} is not allowed; use local or a mapping "
            "{dask: 'tcp://host:8786', max_in_flight: N, on_scheduler_loss: local|wait}"
        )
    known = ("dask", "max_in_flight", "on_scheduler_loss")
    problems = [
        f"{where}: executor: unknown key '{key}'; known keys: {', '.join(known)}"
        for key in executor
        if key not in known
    ]
    address = executor.get("dask")
    if "dask" not in executor:
        problems.append(
            f"{where}: executor.dask: missing; a mapping executor is a Dask scheduler: add dask: 'tcp://host:8786' "
            "(or use executor: local, with workers: N for the local pool)"
        )
    elif not isinstance(address, str) or not address.strip():
        problems.append(
            f"{where}: executor.dask: {address!r} is not allowed; use a scheduler address such as 'tcp://host:8786'"
        )
    mif = executor.get("max_in_flight")
    loss = executor.get("on_scheduler_loss", "local")
    try:
        if mif is not None:
            mif = parse_number("executor.max_in_flight", mif, 1, 100_000, integer=True, terse=True)
    except SettingsError as exc:
        problems.append(f"{where}: {exc}")
    try:
        loss = parse_choice("executor.on_scheduler_loss", loss, ON_SCHEDULER_LOSS)
    except SettingsError as exc:
        problems.append(f"{where}: {exc}")
    if problems:
        raise SettingsError("\n".join(problems))
    assert isinstance(address, str)
    return ExecutorConfig(workers=n, dask=address.strip(), max_in_flight=mif, on_scheduler_loss=loss)


def _init_worker(parent: int, threads: int) -> None:
    # Ctrl-C in a terminal and a closing terminal signal the whole process group; the daemon
    # decides what happens to work in flight, not the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # N workers x all-cores OpenMP/BLAS pools (and knockout's own labelling, compositing and PNG
    # threads) would oversubscribe the CPUs
    limit_threads(threads)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose daemon was killed (SIGKILL, OOM) must not live on as an orphan."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass


def _process(data: bytes, settings: Settings) -> Processed:
    from knockout.process import process_bytes

    return process_bytes(data, settings=settings)


def _warm_up() -> None:
    from ._preload import warm

    try:
        warm()
    except Exception as exc:  # pragma: no cover - warming up must never stop a worker
        log.debug("worker warm-up failed: %s", exc)


class LocalExecutor:
    """A pool of worker processes on this machine.

    Parameters
    ----------
    workers : int
        Number of worker processes.
    max_in_flight : int, optional
        Bound on unfinished futures (default ``2 * workers``: each worker has one file queued).
    retries : int
        How many times a file is resubmitted after the pool broke under it (a worker died).
    time_limit : float
        Seconds one file may run (0: no limit). A file over it fails with :class:`TooSlow`: the
        pool's workers are replaced and the other files in flight resubmitted (not counted as
        attempts: they did nothing wrong).
    """

    def __init__(
        self, workers: int, *, max_in_flight: int | None = None, retries: int = 2, time_limit: float = 0.0
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        # one OpenMP / BLAS thread per worker: on a loaded machine KMeans with several OpenMP
        # threads per process ran 3-4x slower (threads spinning at barriers); see bench/RESULTS.md
        self.threads = 1
        self.max_in_flight = max_in_flight or 2 * workers
        self.retries = retries
        self.time_limit = time_limit
        self._running: dict[cf.Future, list] = {}  # inner future -> [outer, started or None, pool]
        self._too_slow: set[int] = set()  # ids of outer futures whose worker was stopped for time
        self._stopped: set[int] = set()  # ids of pools this executor broke itself
        self._lock = threading.Lock()
        self._closed = False
        methods = multiprocessing.get_all_start_methods()
        # never fork a process that runs observer threads; the fork server imports the core once
        if "forkserver" in methods:
            self._ctx = multiprocessing.get_context("forkserver")
            self._ctx.set_forkserver_preload(["knockout.daemon._preload"])
        else:  # pragma: no cover - Windows, macOS without forkserver
            self._ctx = multiprocessing.get_context("spawn")
        self._pool = self._new_pool()
        for _ in range(workers):  # start the workers now, not when the first file arrives
            self._pool.submit(_warm_up)
        if time_limit:
            threading.Thread(target=self._watch_time, daemon=True).start()

    def _watch_time(self) -> None:
        """Stop the workers when a file has run longer than ``time_limit`` (they are replaced)."""
        while not self._closed:
            time.sleep(min(0.5, self.time_limit / 4))
            now = time.monotonic()
            with self._lock:
                for inner, entry in list(self._running.items()):
                    outer, started, pool = entry
                    if inner.done() or not inner.running():
                        continue
                    if started is None:
                        entry[1] = now
                    elif now - started > self.time_limit and pool is self._pool:
                        log.warning("a file ran over time_limit = %g s; replacing the workers", self.time_limit)
                        self._too_slow.add(id(outer))
                        self._stopped.add(id(pool))
                        for proc in list((getattr(pool, "_processes", None) or {}).values()):
                            proc.terminate()
                        break

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._ctx,
            initializer=_init_worker,
            initargs=(os.getpid(), self.threads),
        )

    def describe(self) -> str:
        return f"local pool, {self.workers} worker{'s' if self.workers != 1 else ''}"

    def submit(self, data: bytes, settings: Settings) -> cf.Future[Processed]:
        outer: cf.Future[Processed] = cf.Future()
        outer.set_running_or_notify_cancel()
        self._submit(outer, data, settings, attempt=0)
        return outer

    def _submit(self, outer: cf.Future, data: bytes, settings: Settings, attempt: int) -> None:
        with self._lock:
            if self._closed:
                outer.set_exception(WorkLost("executor shut down"))
                return
            pool = self._pool
            try:
                inner = pool.submit(_process, data, settings)
            except (BrokenProcessPool, RuntimeError):
                self._replace(pool)
                inner = self._pool.submit(_process, data, settings)
            self._running[inner] = [outer, None, pool]
        inner.add_done_callback(lambda f: self._done(f, outer, (data, settings, attempt), pool))

    def _replace(self, broken: cf.ProcessPoolExecutor) -> None:
        # called with the lock held; only the first caller for a given broken pool replaces it
        if self._pool is broken and not self._closed:
            if id(broken) not in self._stopped:
                log.warning("a worker process died; starting a new process pool")
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def _done(self, inner: cf.Future, outer: cf.Future, job: tuple[bytes, Settings, int], pool) -> None:
        data, settings, attempt = job
        with self._lock:
            self._running.pop(inner, None)
            too_slow = id(outer) in self._too_slow
            self._too_slow.discard(id(outer))
            stopped_by_us = id(pool) in self._stopped
        if too_slow:
            with self._lock:
                self._replace(pool)
            outer.set_exception(
                TooSlow(
                    f"took longer than time_limit = {self.time_limit:g} s; stopped (raise time_limit if it is expected)"
                )
            )
            return
        if inner.cancelled():
            exc: BaseException | None = BrokenProcessPool("cancelled")
        else:
            exc = inner.exception()
        if exc is None:
            outer.set_result(inner.result())
            return
        if not isinstance(exc, BrokenProcessPool):
            outer.set_exception(exc)
            return
        with self._lock:
            self._replace(pool)
        if stopped_by_us:  # another file ran over time: this one is only resubmitted, not counted
            attempt -= 1
        if attempt >= self.retries:
            outer.set_exception(WorkLost(f"worker process died {attempt + 1} times on this file"))
            return
        # resubmit from a helper thread: this callback may run on the pool's management thread
        threading.Thread(target=self._submit, args=(outer, data, settings, attempt + 1), daemon=True).start()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        procs = [] if wait else list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=wait, cancel_futures=not wait)
        for p in procs:  # without wait, work still running is abandoned (the daemon gave it back)
            if p.is_alive():
                p.terminate()


def make_executor(config: ExecutorConfig) -> Executor:
    """Build the executor a config asks for.

    Raises
    ------
    SettingsError
        When Dask is asked for but ``knockout[dask]`` is not installed.
    """

    def local() -> LocalExecutor:
        return LocalExecutor(config.workers, time_limit=config.time_limit)

    if not config.dask:
        return local()
    try:
        from knockout.distributed import DaskExecutor
    except ImportError as exc:
        raise SettingsError(
            f"executor.dask needs Dask, which is not available ({exc}); install it with: pip install 'knockout[dask]'"
        ) from None
    # max_in_flight None: two per worker thread of the cluster, which may be far more than local cores
    return DaskExecutor(config.dask, config.max_in_flight, config.on_scheduler_loss, local)


ExecutorFactory = Callable[[ExecutorConfig], Executor]
