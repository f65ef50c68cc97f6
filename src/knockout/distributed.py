"""Run the image work on a Dask cluster: the daemon's :class:`DaskExecutor` and ``knockout cut --dask``.

Only bytes and settings travel: the process that owns the folders (the daemon, or ``knockout cut``)
reads each input, sends its bytes with the :class:`~knockout.settings.Settings` to the cluster, where a
worker runs :func:`knockout.process.process_bytes`, and gets the encoded output and a short record
(:class:`~knockout.process.Processed`) back. Workers need ``knockout[dask]`` installed (the same
version), never access to the folders.

Failures
    * A worker that dies mid-task: the scheduler moves its tasks to other workers by itself; a task
      that killed more than ``distributed.scheduler.allowed-failures`` workers (3 by default) fails with
      :class:`~knockout.daemon.executor.WorkLost` so the daemon retries it later.
    * The scheduler goes away (or cannot be reached at start): with ``on_scheduler_loss="local"`` the
      work in flight and all new work go to the local pool made by ``fallback_factory`` (with a
      warning); with ``"wait"`` the work in flight fails with ``WorkLost`` (the daemon gives the
      inputs back to the inbox) and ``max_in_flight`` is 0 until the scheduler is back, so no new
      work is taken. Either way a thread keeps reconnecting, and new work goes back to the cluster
      once it answers. Each submitted file completes its future exactly once, so a file resubmitted
      after a loss never yields two outputs.
    * A file over ``time_limit`` (seconds it has been executing on a worker, looked at twice a
      second): its future is cancelled and it fails with :class:`~knockout.daemon.executor.TooSlow`;
      the worker is restarted through its nanny so it does not stay busy with it (a worker
      without a nanny cannot be restarted: it stays busy until the file finishes, with a warning).
    * A worker that cannot import knockout (or runs another version) is named in a warning and gets
      no tasks: Dask never finishes a task that a worker fails to unpickle.
    * Every worker loads the core and cuts a tiny image when it starts (a worker plugin, also on
      the workers that join or are restarted later), so its first file is not slowed by imports
      (0.5-1 s, more on a busy machine) and ``time_limit`` counts the file's own work only.

Dask is an optional extra: without it, :class:`DaskExecutor` and :func:`run_batch` raise
:class:`~knockout.settings.SettingsError` saying ``pip install 'knockout[dask]'``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .daemon.executor import TooSlow, WorkLost
from .fsutil import atomic_write
from .imageio import ImageError
from .process import Processed, process_bytes
from .settings import Settings, SettingsError

try:
    import distributed as _dd
except ImportError:  # the optional extra is not installed
    _dd = None

__all__ = ["DaskExecutor", "run_batch"]

log = logging.getLogger(__name__)

_LOSS_MODES = ("local", "wait")
_LOOK_EVERY = 10.0  # seconds between looks at the cluster: its size, and workers that cannot run knockout
_WARM_UP = "knockout-warm-up"  # the name of the worker plugin (one per cluster, whoever registered it)


def _require_dask() -> None:
    if _dd is None:
        raise SettingsError(
            "running on a Dask cluster needs dask.distributed, which is not installed; "
            "install it with: pip install 'knockout[dask]'"
        )


def _connect(address: str, timeout: float) -> Any:
    """A synchronous ``distributed.Client`` for ``address``; ``OSError`` when it does not answer."""
    try:
        return _dd.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise OSError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def _cluster_capacity(client: Any) -> int:
    """Two tasks per worker thread: one running and one queued, so no worker waits for data."""
    try:
        threads = sum(client.nthreads().values())
    except Exception:  # a scheduler that answers nothing useful; start small
        threads = 1
    return max(2, 2 * threads)


def _process_on_worker(data: bytes, settings: Settings) -> Processed | ImageError:
    """The task a Dask worker runs. A bad input is an expected outcome, not a failed task, so its
    ``ImageError`` comes back as the result (no error log and traceback on the worker)."""
    try:
        return process_bytes(data, settings=settings)
    except ImageError as exc:
        return exc


_INSTALL_ON_WORKERS = "install the same knockout version, with its [dask] extra, on every worker"


if _dd is not None:

    class _WarmUp(_dd.WorkerPlugin):
        """Loads the core on each worker as it starts, before it takes a task (see the module's notes)."""

        def setup(self, worker: Any) -> None:
            from ._warm import warm

            try:
                warm()
            except Exception as exc:  # pragma: no cover - a warm-up must never stop a worker
                log.debug("Dask worker warm-up failed: %s", exc)


def _warm_workers(client: Any) -> None:
    """Register :class:`_WarmUp` on the cluster (its present workers run it now, later ones as they
    start). A worker that cannot import knockout fails it; that worker is found and named by
    :func:`_check_workers`, so the failure is only logged here."""
    try:
        client.register_plugin(_WarmUp(), name=_WARM_UP)
    except Exception as exc:
        log.debug("the warm-up plugin failed on a Dask worker: %s", exc)


def _executing(dask_worker: Any) -> list[str]:
    """The keys a Dask worker is executing right now (run on the worker by ``client.run``)."""
    return [str(ts.key) for ts in dask_worker.state.executing]


def _knockout_version() -> str:
    from . import __version__

    return __version__


def _check_workers(client: Any, known: dict[str, Any]) -> dict[str, Any]:
    """The knockout version of each worker (or why it has none), asking only workers not in ``known``.

    Warns about new workers that cannot import knockout or run another version of it: a worker
    that cannot unpickle a task never finishes it, so such workers get no tasks.
    """
    from . import __version__

    try:
        workers = set(client.nthreads())
        new = sorted(workers - set(known))
        found = client.run(_knockout_version, workers=new, on_error="return") if new else {}
    except Exception as exc:  # a scheduler that answers nothing useful; look again later
        log.debug("cannot ask the Dask workers for their knockout version: %s", exc)
        return known
    odd = {w: v for w, v in found.items() if v != __version__}
    if odd:
        shown = ", ".join(f"{w}: {v!r}" for w, v in sorted(odd.items(), key=str)[:5])
        n = len(odd)
        log.warning("%d Dask worker(s) do not run knockout %s (%s); %s", n, __version__, shown, _INSTALL_ON_WORKERS)
    return {w: v for w, v in {**known, **found}.items() if w in workers}


class _Task:
    """One submitted file: its bytes and settings, and the future the caller holds."""

    __slots__ = ("data", "future", "settings")

    def __init__(self, data: bytes, settings: Settings) -> None:
        self.data = data
        self.settings = settings
        self.future: cf.Future[Processed] = cf.Future()
        self.future.set_running_or_notify_cancel()

    def resolve(self, result: Processed | None = None, exc: BaseException | None = None) -> None:
        """Complete the caller's future once; later completions (a resubmitted copy) are dropped."""
        if self.future.done():
            return
        try:
            if exc is None:
                self.future.set_result(result)
            else:
                self.future.set_exception(exc)
        except cf.InvalidStateError:  # a concurrent completion won the race
            pass


class DaskExecutor:
    """Send :func:`~knockout.process.process_bytes` work to a Dask scheduler.

    Implements the daemon's executor interface (``knockout.daemon.executor``): ``submit``,
    ``max_in_flight``, ``shutdown``, ``describe``.

    Parameters
    ----------
    address : str
        The scheduler, e.g. ``"tcp://scheduler:8786"``.
    max_in_flight : int, optional
        Bound on unfinished futures, which the caller respects. Default: two per worker thread of
        the cluster (at least 2), looked up again every 10 s as workers come and go.
    on_scheduler_loss : {"local", "wait"}
        What happens when the scheduler goes away or cannot be reached: ``"local"`` sends work to
        ``fallback_factory()`` (called once), ``"wait"`` fails it with ``WorkLost``.
    fallback_factory : callable, optional
        Makes the local executor (same interface); required with ``on_scheduler_loss="local"``.
    connect_timeout : float
        Seconds one connection attempt may take.
    time_limit : float
        Seconds one file may execute on a worker (0: no limit); see the module docstring.

    Raises
    ------
    SettingsError
        When ``knockout[dask]`` is not installed.
    ValueError
        When ``on_scheduler_loss`` is not one of the above, or ``"local"`` comes without a factory.
    """

    def __init__(
        self,
        address: str,
        max_in_flight: int | None = None,
        on_scheduler_loss: str = "local",
        fallback_factory: Callable[[], Any] | None = None,
        *,
        connect_timeout: float = 10.0,
        time_limit: float = 0.0,
        _client: Any = None,
    ) -> None:
        _require_dask()
        if on_scheduler_loss not in _LOSS_MODES:
            raise ValueError(f"on_scheduler_loss={on_scheduler_loss!r}; use 'local' or 'wait'")
        if on_scheduler_loss == "local" and fallback_factory is None:
            raise ValueError("on_scheduler_loss='local' needs a fallback_factory that makes the local pool")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.address = address
        self.on_scheduler_loss = on_scheduler_loss
        self.connect_timeout = connect_timeout
        self._fallback_factory = fallback_factory
        self._fallback: Any = None
        self._bound = max_in_flight
        self._capacity = 2
        self._versions: dict[str, Any] = {}  # worker address -> knockout version, or the error
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._pending: dict[str, tuple[_Task, Any]] = {}
        self._client: Any = None
        self._reconnector: threading.Thread | None = None
        if _client is not None:
            self._adopt(_client)
        else:
            try:
                self._adopt(_connect(address, connect_timeout))
            except OSError as exc:
                self._lost(None, str(exc))
        self._monitor = threading.Thread(target=self._look, name="knockout-dask-monitor", daemon=True)
        self._monitor.start()
        self.time_limit = time_limit
        self._started: dict[str, float] = {}  # key -> when it was first seen executing
        if time_limit:
            threading.Thread(target=self._watch_time, name="knockout-dask-time-limit", daemon=True).start()

    # -- the executor interface ------------------------------------------------------------
    @property
    def max_in_flight(self) -> int:
        """The bound the caller keeps to: the fallback's own while work goes there, and 0 while
        waiting for a lost scheduler (``"wait"``), so the daemon leaves new files in the inbox."""
        with self._lock:
            if self._client is None:
                if self._fallback is not None:
                    return int(self._fallback.max_in_flight)
                if self.on_scheduler_loss == "wait":
                    return 0
            return self._bound or self._capacity

    def describe(self) -> str:
        with self._lock:
            if self._client is not None:
                return f"Dask scheduler {self.address}, {self.max_in_flight} tasks in flight at most"
            if self._fallback is not None:
                return f"Dask scheduler {self.address} unreachable; using {self._fallback.describe()}"
            if self.on_scheduler_loss == "local":  # the local pool starts with the first file
                return f"Dask scheduler {self.address} unreachable; falling back to the local pool"
            return f"Dask scheduler {self.address} unreachable; waiting for it"

    def submit(self, data: bytes, settings: Settings) -> cf.Future[Processed]:
        """Run ``process_bytes(data, settings=settings)`` on the cluster (or the fallback)."""
        task = _Task(data, settings)
        self._dispatch(task)
        return task.future

    def shutdown(self, wait: bool = True) -> None:
        """Stop reconnecting, finish (``wait=True``) or abandon the work in flight, close the client."""
        with self._lock:
            self._closed.set()
            pending = list(self._pending.values())
            client, self._client = self._client, None
            fallback = self._fallback
        if wait:
            cf.wait([task.future for task, _ in pending])
        else:
            for task, _ in pending:
                task.resolve(exc=WorkLost("executor shut down"))
        if client is not None:
            client.close(timeout=self.connect_timeout)
        if fallback is not None:
            fallback.shutdown(wait=wait)
        for thread in (self._reconnector, self._monitor):  # they stop at their next wake-up
            if thread is not None:
                thread.join(timeout=0.5)

    # -- internals ---------------------------------------------------------------------------
    def _adopt(self, client: Any) -> None:
        _warm_workers(client)
        capacity = _cluster_capacity(client)
        versions = _check_workers(client, {})
        with self._lock:
            if self._closed.is_set():
                client.close()
                return
            self._client = client
            self._capacity = capacity
            self._versions = versions
        log.info("using the Dask scheduler at %s (%d worker threads)", self.address, capacity // 2)

    def _look(self) -> None:
        """Every few seconds: follow the cluster's size and check workers that joined it."""
        while not self._closed.wait(_LOOK_EVERY):
            with self._lock:
                client, known = self._client, self._versions
            if client is None or client.status != "running":
                continue
            capacity = _cluster_capacity(client)
            versions = _check_workers(client, known)
            with self._lock:
                if self._client is client:
                    if capacity != self._capacity:
                        log.info("the Dask cluster now has %d worker threads", capacity // 2)
                    self._capacity, self._versions = capacity, versions

    def _watch_time(self) -> None:
        """Fail the files executing longer than ``time_limit`` and restart their workers."""
        while not self._closed.wait(min(0.5, self.time_limit / 4)):
            with self._lock:
                client, keys = self._client, set(self._pending)
            if client is None or not keys or client.status != "running":
                continue
            try:
                executing = client.run(_executing, on_error="ignore")
            except Exception as exc:  # the scheduler is going away: its loss is handled elsewhere
                log.debug("cannot ask the Dask workers what they execute: %s", exc)
                continue
            now = time.monotonic()
            for worker, running in executing.items():
                for key in set(running) & keys:
                    started = self._started.setdefault(key, now)
                    if now - started > self.time_limit:
                        self._too_slow(client, key, worker)
            self._started = {k: t for k, t in self._started.items() if k in keys}

    def _too_slow(self, client: Any, key: str, worker: str) -> None:
        with self._lock:
            task, fut = self._pending.pop(key, (None, None))
        if task is None:
            return
        # resolved first: the cancelled future's callback then only releases it (no resubmission)
        task.resolve(
            exc=TooSlow(
                f"took longer than time_limit = {self.time_limit:g} s on the Dask worker {worker}; stopped, "
                "the worker is restarted (raise time_limit if it is expected)"
            )
        )
        fut.cancel()  # forgotten by the scheduler: the restart does not reschedule it elsewhere
        try:
            client.restart_workers([worker], timeout=60)
        except Exception as exc:  # no nanny, or it did not come back in time
            log.warning(
                "cannot restart the Dask worker %s (%s): it stays busy with a file over time_limit until it ends",
                worker,
                exc,
            )
        else:
            log.warning("a file ran over time_limit = %g s on the Dask worker %s; restarted", self.time_limit, worker)

    def _usable_workers(self) -> list[str] | None:
        """Workers that can run knockout, or None when all known ones can (no restriction)."""
        from . import __version__

        good = [w for w, v in self._versions.items() if v == __version__]
        return None if len(good) == len(self._versions) else good

    def _dispatch(self, task: _Task) -> None:
        with self._lock:
            if self._closed.is_set():
                task.resolve(exc=WorkLost("executor shut down"))
                return
            client = self._client
            if client is not None and client.status != "running":  # lost, and its callbacks not run yet
                self._lost(client, f"the Dask client is {client.status}")
                client = None
            if client is None:
                self._to_fallback(task)
                return
            key = f"knockout-process-{uuid.uuid4().hex}"
            workers = self._usable_workers()  # None: any worker
            if workers == []:
                why = f"no Dask worker at {self.address} can run knockout; {_INSTALL_ON_WORKERS}"
                log.warning("%s", why)
                self._to_fallback(task, why)
                return
            try:
                fut = client.submit(_process_on_worker, task.data, task.settings, key=key, pure=False, workers=workers)
            except Exception as exc:  # the client closed under us
                self._lost(client, f"{type(exc).__name__}: {exc}")
                self._to_fallback(task)
                return
            self._pending[key] = (task, fut)
        fut.add_done_callback(lambda f: self._on_done(task, f, client))

    def _to_fallback(self, task: _Task, why: str = "") -> None:
        # called with the lock held, while the cluster cannot take work
        if self.on_scheduler_loss == "wait":
            why = why or f"the Dask scheduler at {self.address} is unreachable; waiting for it"
            task.resolve(exc=WorkLost(why))
            return
        if self._fallback is None:
            self._fallback = self._fallback_factory()
        inner = self._fallback.submit(task.data, task.settings)
        inner.add_done_callback(lambda f: self._copy(f, task))

    @staticmethod
    def _copy(inner: cf.Future, task: _Task) -> None:
        if inner.cancelled():
            task.resolve(exc=WorkLost("the local pool cancelled the work"))
        else:
            task.resolve(inner.result() if inner.exception() is None else None, inner.exception())

    def _on_done(self, task: _Task, fut: Any, client: Any) -> None:
        # runs on Dask's callback thread
        status = fut.status
        try:
            if status == "finished":
                result = fut.result(timeout=self.connect_timeout * 3)
                if isinstance(result, ImageError):
                    task.resolve(exc=result)
                else:
                    task.resolve(result)
            elif status == "error":
                exc = fut.exception()
                if isinstance(exc, _dd.KilledWorker):
                    exc = WorkLost(f"the task killed several Dask workers: {exc}")
                elif isinstance(exc, ImportError):  # the cluster's fault, not the file's
                    exc = WorkLost(f"a Dask worker cannot run knockout ({exc}); {_INSTALL_ON_WORKERS}")
                task.resolve(exc=exc)
        except Exception as exc:  # the result could not be fetched: treat as lost
            status = "lost"
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "the connection was closed"
        with self._lock:
            self._pending.pop(fut.key, None)
        if task.future.done():
            fut.release()
            return
        # cancelled (the client lost the scheduler) or the result could not be fetched
        if self._closed.is_set():
            task.resolve(exc=WorkLost("executor shut down"))
            return
        self._lost(client, reason)
        self._dispatch(task)

    def _lost(self, client: Any, reason: str) -> None:
        """Forget ``client`` (once) and start reconnecting in the background."""
        with self._lock:
            if client is not None and self._client is not client:
                return  # already handled
            self._client = None
            start = self._reconnector is None or not self._reconnector.is_alive()
            if start and not self._closed.is_set():
                self._reconnector = threading.Thread(
                    target=self._reconnect, args=(client,), name="knockout-dask-reconnect", daemon=True
                )
                self._reconnector.start()
        then = "falling back to the local pool" if self.on_scheduler_loss == "local" else "waiting for it"
        log.warning("lost the Dask scheduler at %s (%s); %s", self.address, reason, then)

    def _reconnect(self, old: Any) -> None:
        if old is not None and self._outlive(old):
            return
        delay = 1.0
        while not self._closed.wait(delay):
            try:
                client = _connect(self.address, self.connect_timeout)
            except OSError as exc:
                log.debug("%s", exc)
                delay = min(delay * 2, 5.0)  # a refused connection costs nothing; come back soon
                continue
            self._adopt(client)
            log.warning("reconnected to the Dask scheduler at %s; sending work there again", self.address)
            return

    def _outlive(self, old: Any) -> bool:
        """Let ``old`` try to reconnect by itself for its ``timeout``; True when it did and is adopted.

        Closing a client in the middle of its own reconnection logs a traceback, so wait for it to
        come back or to give up (it then closes itself) before making new clients.
        """
        deadline = time.monotonic() + 2 * self.connect_timeout + 5
        left_running = False
        while not self._closed.wait(0.2) and time.monotonic() < deadline:
            status = getattr(old, "status", "closed")
            if status == "running" and left_running:
                self._adopt(old)
                log.warning("reconnected to the Dask scheduler at %s; sending work there again", self.address)
                return True
            if status != "running":
                left_running = True
            if status in ("closed", "closing"):
                break
        try:
            old.close(timeout=self.connect_timeout)
        except Exception as exc:  # already closing itself
            log.debug("closing the old Dask client: %s", exc)
        return False


class _LocalPool:
    """The fallback of :func:`run_batch`: a process pool with the executor interface."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.max_in_flight = 2 * workers
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        self._pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)

    def describe(self) -> str:
        return f"local pool, {self.workers} workers"

    def submit(self, data: bytes, settings: Settings) -> cf.Future[Processed]:
        return self._pool.submit(process_bytes, data, settings=settings)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def _outcome(fut: cf.Future, src: Path, dst: Path) -> tuple[Path, Path, Processed | None, str | None]:
    exc = fut.exception()
    if isinstance(exc, (ImageError, WorkLost)):
        return src, dst, None, str(exc)
    if exc is not None:
        return src, dst, None, f"{type(exc).__name__}: {exc}"
    res = fut.result()
    try:
        atomic_write(dst, res.data)
    except OSError as exc:
        return src, dst, None, f"cannot write {dst}: {exc.strerror or exc}"
    return src, dst, res, None


def run_batch(
    jobs: list[tuple[Path, Path]],
    settings: Settings,
    *,
    address: str,
    max_in_flight: int | None = None,
    connect_timeout: float = 5.0,
) -> Iterator[tuple[Path, Path, Processed | None, str | None]]:
    """Cut out ``jobs`` (input, output) on the Dask scheduler at ``address``; ``knockout cut --dask``.

    Inputs are read here only when a slot is free (at most ``max_in_flight`` in memory), outputs are
    written here atomically as results come back, in completion order. If the scheduler goes away
    mid-batch the rest runs on a local process pool, with a warning.

    Yields
    ------
    (src, dst, processed, error)
        One per job: ``processed`` is ``None`` and ``error`` says why when the job failed.

    Raises
    ------
    SettingsError
        At the first ``next()``: Dask is not installed, or the scheduler does not answer.
    """
    _require_dask()
    try:
        client = _connect(address, connect_timeout)
    except OSError as exc:
        raise SettingsError(
            f"{exc}; start one with `dask scheduler` and workers with `dask worker {address}`"
        ) from None
    workers = os.cpu_count() or 1
    ex = DaskExecutor(
        address,
        max_in_flight=max_in_flight,
        on_scheduler_loss="local",
        fallback_factory=lambda: _LocalPool(workers),
        connect_timeout=connect_timeout,
        _client=client,
    )
    pending: dict[cf.Future, tuple[Path, Path]] = {}
    todo = iter(jobs)
    more = True
    try:
        while True:
            while more and len(pending) < ex.max_in_flight:
                job = next(todo, None)
                if job is None:
                    more = False
                    break
                src, dst = job
                try:
                    data = Path(src).read_bytes()
                except OSError as exc:
                    yield src, dst, None, f"cannot read: {exc.strerror or exc}"
                    continue
                pending[ex.submit(data, settings)] = (src, dst)
            if not pending:
                return
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                src, dst = pending.pop(fut)
                yield _outcome(fut, src, dst)
    finally:
        ex.shutdown(wait=False)
