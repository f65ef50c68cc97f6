"""The daemon's main loop: events in, stable files claimed, work sent to the executor, results filed.

Threads: watchdog's observer threads only put paths on a queue (never touch images); the main
thread does every folder operation (stat, claim, read, write, move) and the executor's
processes or Dask workers do the image work. Nothing here blocks on an image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import signal
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any

import yaml
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserverVFS

from knockout.fsutil import atomic_write
from knockout.imageio import ImageError, output_suffix
from knockout.process import Processed
from knockout.settings import SettingsError

from . import files
from .config import Config, Job, load_config
from .executor import Executor, WorkLost, make_executor

__all__ = ["Daemon"]

log = logging.getLogger(__name__)

TICK = 0.05  # seconds: how often the loop looks at candidates when nothing happens
STATUS_EVERY = 1.0
CONFIRM_BAD = 2.0  # seconds an undecodable input waits, in case its writer is only pausing


@dataclass
class Candidate:
    """A path in an inbox that may become an input once it is stable."""

    job: Job
    path: Path
    rel: PurePath
    seen: float  # wall time of the first event (for latency figures)
    stat: tuple[int, int] | None = None
    since: float = 0.0  # monotonic time the stat last changed
    not_before: float = 0.0


@dataclass
class Work:
    """A claimed file on its way through the executor."""

    job: Job
    rel: PurePath
    claim: Path
    stat: os.stat_result
    seen: float
    executor: Executor
    future: Any = None
    result: Processed | None = None
    error: BaseException | None = None  # an ImageError waiting one settle time for confirmation
    output: Path | None = None  # the output, once written
    retry_at: float = 0.0
    started: float = field(default_factory=time.monotonic)


@dataclass
class JobStats:
    processed: int = 0
    failed: int = 0
    skipped: int = 0
    last_error: str | None = None


class _Handler(FileSystemEventHandler):
    """Only filters and enqueues: the event thread never opens a file."""

    def __init__(self, q: queue.SimpleQueue) -> None:
        self.q = q

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        self.q.put(("dir" if event.is_directory else "file", path))


class Daemon:
    """Watch the inboxes of a config; see ``knockout watch --help``.

    Parameters
    ----------
    config : Config
        The validated config.
    reload : callable, optional
        Returns a fresh :class:`Config` (raises :class:`~knockout.settings.SettingsError`); used on SIGHUP.
    once : bool
        Process what the inboxes hold now, then return.
    on_config : callable, optional
        Called with the new :class:`Config` after a successful reload (the CLI applies its logging keys).
    """

    def __init__(self, config: Config, *, reload=None, once: bool = False, on_config=None) -> None:
        self.cfg = config
        self._reload_fn = reload
        self._on_config = on_config
        self.once = once
        self.token = f"{files.HOST}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.wake = threading.Event()
        self.candidates: dict[Path, Candidate] = {}
        self.works: list[Work] = []
        self.attempts: dict[tuple[str, PurePath], int] = {}
        self.stats: dict[str, JobStats] = {}
        self.claims: dict[str, files.Claims] = {}
        self.observers: list[Any] = []
        self.executor: Executor | None = None
        self.retired: list[Executor] = []
        self.stopping = False
        self._stop_deadline = 0.0
        self._reload_requested = False
        self._db: sqlite3.Connection | None = None
        self.started = time.time()
        self._last_status = 0.0
        self._last_rescan = time.monotonic()
        self._last_heartbeat = 0.0
        self._last_recover = time.monotonic()
        self._status_dirty = True
        self._last_shape = (0, 0)
        self._unsafe_said: set[str] = set()

    # -- set-up ----------------------------------------------------------------------------
    def _prepare(self, cfg: Config) -> None:
        for job in cfg.jobs:
            for folder in (job.inbox, job.outbox, job.processed, job.failed):
                try:
                    files.make_folders(folder)
                except OSError as exc:
                    raise SettingsError(
                        f"{cfg.source}: job '{job.name}': cannot create {folder}: {exc.strerror or exc}"
                    ) from None
        for job in cfg.jobs:
            try:
                files.real_folder(job.inbox / files.CLAIMS)
            except FileNotFoundError:
                pass
            except OSError as exc:  # a link or a file named .knockout-claims: refuse, touch nothing
                raise SettingsError(f"{cfg.source}: job '{job.name}': {exc}") from None
        try:
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(f"{cfg.source}: state_dir: cannot create {cfg.state_dir}: {exc.strerror}") from None

    def _start_jobs(self) -> None:
        for job in self.cfg.jobs:
            self.stats.setdefault(job.name, JobStats())
            c = self.claims.get(str(job.inbox))
            try:
                if c is None:
                    c = files.Claims(job.inbox, self.token)
                    c.start()
                    self.claims[str(job.inbox)] = c
                self._recover(job, c)
            except files.UnsafeFolder as exc:
                raise SettingsError(f"{self.cfg.source}: job '{job.name}': {exc}") from None
        self._open_db()

    def _open_db(self) -> None:
        if any(j.after == "leave" for j in self.cfg.jobs) and self._db is None:
            self._db = sqlite3.connect(self.cfg.state_dir / "leave.sqlite")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen (job TEXT, rel TEXT, size INTEGER, mtime_ns INTEGER, "
                "PRIMARY KEY (job, rel))"
            )

    def _start_observers(self) -> None:
        handler = _Handler(self.q)
        kind = self.cfg.observer
        for job in self.cfg.jobs:
            obs = self._observer(kind)
            try:
                obs.schedule(handler, str(job.inbox), recursive=job.recursive)
                obs.start()
            except OSError as exc:
                if kind != "auto":
                    raise SettingsError(
                        f"{self.cfg.source}: observer: {kind} cannot watch {job.inbox}: {exc}; try observer: polling"
                    ) from None
                log.warning("cannot watch %s natively (%s); polling instead", job.inbox, exc)
                obs = self._observer("polling")
                obs.schedule(handler, str(job.inbox), recursive=job.recursive)
                obs.start()
            self.observers.append(obs)
            log.debug("watching %s with %s", job.inbox, type(obs).__name__)

    def _observer(self, kind: str):
        if kind == "polling":  # lstat: a link to a folder outside the inbox is never walked into
            return PollingObserverVFS(os.lstat, os.scandir, polling_interval=self.cfg.poll_interval)
        return Observer()

    def _stop_observers(self) -> None:
        for obs in self.observers:
            obs.stop()
        for obs in self.observers:
            obs.join(timeout=5)
        self.observers = []

    # -- recovery --------------------------------------------------------------------------
    def _recover_all(self) -> None:
        self._last_recover = time.monotonic()
        for job in self.cfg.jobs:
            c = self.claims.get(str(job.inbox))
            if c is not None:
                try:
                    self._recover(job, c)
                except files.UnsafeFolder as exc:
                    self._unsafe(job, exc)
                except OSError as exc:  # a share gone away, for example: try again later
                    log.warning("%s: cannot look for claims of stopped daemons: %s", job.name, exc)

    def _recover(self, job: Job, claims: files.Claims) -> None:
        """Take back the claims of dead daemons in this inbox (and their temporary outputs)."""
        claims.check()
        for owner in list(files.dead_owners(job.inbox, self.token, self.cfg.claim_timeout)):
            adopted = files.adopt(owner, claims)
            if adopted is None:
                continue
            n_back = n_done = 0
            stuck = 0
            for rel, path, mark in list(files.claimed_files(adopted)):
                try:
                    if files.output_done(mark) is not None:  # only the input's move was missing
                        self._after_success(job, rel, path)
                        n_done += 1
                    else:
                        self._offer(files.move_noreplace(path, job.inbox / rel), job)
                        n_back += 1
                except OSError as exc:  # stays adopted: recovered again at the next start
                    log.error("%s: cannot recover %s from %s: %s", job.name, rel, owner.name, exc)
                    stuck += 1
            tags = [adopted.name]
            if (adopted / "adopted").is_dir():
                tags += [p.name for p in (adopted / "adopted").iterdir()]
            for tag in tags:
                files.remove_temps(job.outbox, tag)
            if not stuck:
                files.remove_tree(adopted, claims)
            log.warning(
                "%s: recovered the claims of %s (stopped or dead): %d back in the inbox, %d finished",
                job.name,
                owner.name,
                n_back,
                n_done,
            )

    # -- signals ---------------------------------------------------------------------------
    def _install_signals(self) -> None:
        def stop(signum, _frame):
            if self.stopping:
                log.warning("second %s: giving claimed files back and exiting now", signal.Signals(signum).name)
                self._stop_deadline = 0.0
            else:
                log.info("%s: finishing the files in flight, taking no new ones", signal.Signals(signum).name)
                self.stopping = True
                self._stop_deadline = time.monotonic() + self.cfg.shutdown_timeout
            self.wake.set()

        def hup(_signum, _frame):
            self._reload_requested = True
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, hup)

    def _reload(self) -> None:
        self._reload_requested = False
        if self._reload_fn is None:
            return
        try:
            new = self._reload_fn()
            self._prepare(new)
        except SettingsError as exc:
            log.error("SIGHUP: the new config is invalid, keeping the old one: %s", exc)
            self._set_error(None, f"config reload failed: {exc}")
            return
        old = self.cfg
        self._stop_observers()
        self.cfg = new
        if self._on_config is not None:
            self._on_config(new)
        if new.executor != old.executor:
            if self.executor is not None:
                self.retired.append(self.executor)
            self.executor = make_executor(new.executor)
        names = {j.name for j in new.jobs}
        for path, c in list(self.candidates.items()):
            if c.job.name not in names:
                del self.candidates[path]
        self._start_jobs()
        try:
            self._start_observers()
        except SettingsError as exc:  # e.g. observer: native where it cannot work
            log.error("SIGHUP: %s; polling instead", exc)
            self.cfg = new = dataclasses.replace(new, observer="polling")
            self._stop_observers()
            self._start_observers()
        self._scan_all()
        log.info("SIGHUP: config reloaded from %s (%d jobs, %s)", new.source, len(new.jobs), self.executor.describe())
        self._status_dirty = True

    # -- finding inputs --------------------------------------------------------------------
    def _job_for(self, path: Path) -> Job | None:
        for job in self.cfg.jobs:
            if job.inbox == path or job.inbox in path.parents:
                return job
        return None

    def _offer(self, path: Path, job: Job | None = None) -> None:
        job = job or self._job_for(path)
        if job is None or path in self.candidates:
            return
        rel = PurePath(path.relative_to(job.inbox))
        if not job.recursive and len(rel.parts) > 1:
            return
        for i in range(1, len(rel.parts)):  # never through a linked folder (it goes to failed/ itself)
            if os.path.islink(job.inbox.joinpath(*rel.parts[:i])):
                return
        if not files.is_input_name(rel):
            if files.is_hidden(rel) or not files.is_folder_link(path):  # a link to a folder goes to failed/
                return
        self.candidates[path] = Candidate(job=job, path=path, rel=rel, seen=time.time())

    def _scan(self, job: Job, folder: Path | None = None) -> None:
        for p in files.walk_inputs(folder or job.inbox, recursive=job.recursive):
            self._offer(p, job)

    def _scan_all(self) -> None:
        for job in self.cfg.jobs:
            self._scan(job)
        self._last_rescan = time.monotonic()

    def _drain_events(self) -> None:
        while True:
            try:
                kind, raw = self.q.get_nowait()
            except queue.Empty:
                return
            path = Path(raw)
            job = self._job_for(path)
            if job is None:
                continue
            if kind == "dir":
                rel = path.relative_to(job.inbox)
                if files.is_hidden(PurePath(rel)):
                    continue  # a hidden folder, such as the claims
                if path != job.inbox and job.recursive:
                    self._scan(job, path)  # a folder moved in brings files without events
            else:
                self._offer(path, job)

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped (or, with ``once``, until the inboxes are empty); returns the exit code."""
        self.executor = make_executor(self.cfg.executor)  # first: a missing extra is a config error
        self._install_signals()
        try:
            self._prepare(self.cfg)
            self._start_jobs()
            if not self.once:
                self._start_observers()
            self._scan_all()
            log.info(
                "watching %s (%s)%s",
                ", ".join(f"{j.name}: {j.inbox} -> {j.outbox}" for j in self.cfg.jobs),
                self.executor.describe(),
                "; --once" if self.once else "",
            )
            self._loop()
        finally:
            self._stop_observers()
            self._give_back_all()
            for ex in [self.executor, *self.retired]:
                if ex is not None:
                    ex.shutdown(wait=False)
            for c in self.claims.values():
                c.close()
            self._write_status(running=False)
            if self._db is not None:
                self._db.close()
        failed = sum(s.failed for s in self.stats.values())
        log.info(
            "stopped: %d processed, %d failed, %d skipped",
            sum(s.processed for s in self.stats.values()),
            failed,
            sum(s.skipped for s in self.stats.values()),
        )
        return 1 if (self.once and failed) else 0

    def _loop(self) -> None:
        while True:
            if self._reload_requested:
                self._reload()
            self._drain_events()
            self._collect()
            now = time.monotonic()
            if self.stopping:
                if not self.works or now >= self._stop_deadline:
                    return
            else:
                self._examine(now)
                if not self.once and self.cfg.rescan and now - self._last_rescan >= self.cfg.rescan:
                    self._scan_all()
                if self.once and not self.candidates and not self.works:
                    return
            if now - self._last_heartbeat >= min(10.0, self.cfg.claim_timeout / 3):
                for c in self.claims.values():
                    c.heartbeat()
                self._last_heartbeat = now
            if not self.stopping and now - self._last_recover >= min(10.0, self.cfg.rescan or 10.0):
                self._recover_all()  # a daemon sharing an inbox died: its claims come back now
            shape = (len(self.candidates), len(self.works))
            if shape != self._last_shape:
                self._last_shape, self._status_dirty = shape, True
            if (self._status_dirty and now - self._last_status >= STATUS_EVERY) or now - self._last_status >= 10.0:
                self._write_status(running=True)
            self.wake.wait(TICK)
            self.wake.clear()

    def _examine(self, now: float) -> None:
        """Stat the candidates; claim and submit those stable for the settle time."""
        assert self.executor is not None
        busy = sum(1 for w in self.works if w.executor is self.executor and not w.future.done())
        room = self.executor.max_in_flight - busy
        # a bounded number of stats per tick, so a 50,000-file inbox does not spin the loop
        budget = max(256, 4 * self.executor.max_in_flight)
        for path, c in list(self.candidates.items()):
            if c.not_before > now:
                continue
            budget -= 1
            if budget < 0:
                break
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                del self.candidates[path]  # moved away, deleted, or claimed by another daemon
                continue
            except OSError as exc:
                log.warning("%s: cannot stat %s: %s", c.job.name, path, exc.strerror)
                c.not_before = now + self.cfg.retry_backoff
                continue
            key = (st.st_size, st.st_mtime_ns)
            if key != c.stat:
                if c.stat is None and c.job.after == "leave" and self._seen(c.job, c.rel, key):
                    del self.candidates[path]
                    continue
                if c.stat is not None:  # still growing: to the back of the queue
                    del self.candidates[path]
                    self.candidates[path] = c
                c.stat, c.since = key, now
                continue
            if now - c.since < self.cfg.settle:
                continue
            if room <= 0:
                break
            del self.candidates[path]
            try:
                if self._start(c, st):
                    room -= 1
            except Exception:  # one bad file never stops the loop
                log.exception("%s: %s: unexpected error; it will be looked at again", c.job.name, c.rel)
                c.not_before, c.stat = now + max(self.cfg.retry_backoff, 1.0) * 8, None
                self.candidates.setdefault(c.path, c)

    def _start(self, c: Candidate, st: os.stat_result) -> bool:
        """Claim, read and submit one stable file; True if work was submitted."""
        import stat as stat_mod

        job = c.job
        claims = self.claims[str(job.inbox)]
        if not stat_mod.S_ISREG(st.st_mode) and not stat_mod.S_ISLNK(st.st_mode):
            return False
        try:
            claim = claims.claim(c.path, c.rel)
        except files.UnsafeFolder as exc:  # nothing was moved: the file waits in the inbox
            self._unsafe(job, exc)
            c.not_before = time.monotonic() + max(self.cfg.rescan or 10.0, 2.0)
            self.candidates.setdefault(c.path, c)
            return False
        if claim is None:
            return False
        w = Work(job=job, rel=c.rel, claim=claim, stat=st, seen=c.seen, executor=self.executor)
        if stat_mod.S_ISLNK(st.st_mode):
            target = os.readlink(claim)
            resolved = Path(os.path.abspath(c.path.parent / target))
            where = "inside" if job.inbox in resolved.parents else "outside"
            what = "folder" if resolved.is_dir() else "file"
            reason = f"a symbolic link to {target} ({where} the inbox); links are not followed, copy the {what} in"
            self._fail(w, reason)
            return False
        try:
            fd = os.open(claim, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as fh:
                data = fh.read()
                w.stat = os.fstat(fh.fileno())
        except OSError as exc:
            self._transient(w, f"cannot read the input: {exc.strerror or exc}")
            return False
        dst = self._output_path(job, c.rel)
        if job.collision == "skip" and os.path.lexists(dst):
            self.stats[job.name].skipped += 1
            log.info("%s: %s: output %s exists, skipped (collision: skip)", job.name, c.rel, dst)
            self._after_success(job, c.rel, claim, record=w.stat)
            return False
        try:
            w.future = self.executor.submit(data, job.settings)
        except Exception as exc:  # a Dask client that cannot connect, for example
            self._transient(w, f"cannot submit the work: {exc}")
            return False
        w.future.add_done_callback(lambda _f: self.wake.set())
        self.works.append(w)
        return True

    def _output_path(self, job: Job, rel: PurePath) -> Path:
        return job.outbox / rel.parent / f"{rel.stem}{output_suffix(job.settings)}"

    def _collect(self) -> None:
        """File the results of finished work; retry pending writes whose time has come."""
        now = time.monotonic()
        for w in list(self.works):
            if w.error is not None:
                if w.retry_at <= now:
                    self.works.remove(w)
                    self._confirm_bad(w)
                continue
            if w.result is None:
                if not w.future.done():
                    continue
                exc = w.future.exception() if not w.future.cancelled() else WorkLost("cancelled")
                if isinstance(exc, ImageError):
                    # a writer may still hold the file open (a pause longer than settle): look
                    # again a little later; if it changed meanwhile it is not failed but retried
                    w.error, w.retry_at = exc, now + max(self.cfg.settle, CONFIRM_BAD)
                    continue
                if exc is not None:
                    self.works.remove(w)
                    self._on_error(w, exc)
                    continue
                w.result = w.future.result()
            elif w.retry_at > now:
                continue
            try:
                self._write(w)
            except Exception:  # one bad file never stops the loop; restart recovery finishes it
                log.exception("%s: %s: unexpected error while filing it; left claimed", w.job.name, w.rel)
                if w in self.works:
                    self.works.remove(w)
        for ex in list(self.retired):
            if not any(w.executor is ex for w in self.works):
                ex.shutdown(wait=False)
                self.retired.remove(ex)

    def _write(self, w: Work) -> None:
        job, res = w.job, w.result
        assert res is not None
        claims = self.claims[str(job.inbox)]
        dst = job.outbox / w.rel.parent / f"{w.rel.stem}{res.suffix}"
        try:
            if w.output is not None:  # written before; only moving the input failed
                out = w.output
            elif job.collision == "skip" and os.path.lexists(dst):
                self.stats[job.name].skipped += 1
                log.info("%s: %s: output %s appeared meanwhile, skipped (collision: skip)", job.name, w.rel, dst)
                out = dst
            else:
                claims.mark(w.rel, dst)
                out = files.write_noreplace(dst, res.data, tag=self.token, replace=job.collision == "overwrite")
        except OSError as exc:  # disk full, permission denied: the input goes back to its inbox meanwhile
            self.works.remove(w)
            claims.unmark(w.rel)
            self._transient(w, f"cannot write the output {dst}: {exc.strerror or exc}")
            return
        try:
            self._after_success(job, w.rel, w.claim, record=w.stat)
        except OSError as exc:  # the output is there; retry moving the input (the mark stays)
            w.output = out
            key = (job.name, w.rel)
            n = self.attempts[key] = self.attempts.get(key, 0) + 1
            w.retry_at = time.monotonic() + self.cfg.retry_backoff * 2 ** min(n - 1, 8)
            log.warning("%s: %s: output written, cannot move the input: %s; retrying", job.name, w.rel, exc)
            return
        self.works.remove(w)
        self.attempts.pop((job.name, w.rel), None)
        claims.unmark(w.rel)
        self.stats[job.name].processed += 1
        self._status_dirty = True
        latency = time.time() - w.seen
        log.info(
            "%s: %s -> %s (%s, %.0f ms)",
            job.name,
            w.rel,
            out,
            res.method,
            res.milliseconds,
            extra={
                "event": "processed",
                "job": job.name,
                "input": str(job.inbox / w.rel),
                "output": str(out),
                "method": res.method,
                "milliseconds": round(res.milliseconds, 1),
                "latency_ms": round(latency * 1000, 1),
            },
        )
        for note in res.notes:  # e.g. only the first frame of an animated GIF was cut out
            log.warning("%s: %s: %s", job.name, w.rel, note)

    def _after_success(self, job: Job, rel: PurePath, claim: Path, record: os.stat_result | None = None) -> None:
        """The input of a finished file: to processed/, deleted, or back in place with a record."""
        try:
            if job.after == "move":
                files.move_noreplace(claim, job.processed / rel)
            elif job.after == "delete":
                os.unlink(claim)
            else:
                st = record or os.lstat(claim)
                back = files.move_noreplace(claim, job.inbox / rel)
                self._remember(job, PurePath(back.relative_to(job.inbox)), (st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            pass

    def _seen(self, job: Job, rel: PurePath, key: tuple[int, int]) -> bool:
        if self._db is None:
            return False
        row = self._db.execute("SELECT size, mtime_ns FROM seen WHERE job=? AND rel=?", (job.name, str(rel))).fetchone()
        return row is not None and tuple(row) == key

    def _remember(self, job: Job, rel: PurePath, key: tuple[int, int]) -> None:
        self._open_db()
        assert self._db is not None
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?)", (job.name, str(rel), *key))

    def _confirm_bad(self, w: Work) -> None:
        """An input that did not decode: failed, unless it changed meanwhile (still being written)."""
        try:
            st = os.lstat(w.claim)
            changed = (st.st_size, st.st_mtime_ns) != (w.stat.st_size, w.stat.st_mtime_ns)
        except OSError:
            changed = False
        if changed:
            log.info("%s: %s changed while being processed; waiting for it to settle", w.job.name, w.rel)
            self._give_back(w, delay=self.cfg.settle)
        else:
            self._fail(w, str(w.error))

    def _on_error(self, w: Work, exc: BaseException) -> None:
        if isinstance(exc, (WorkLost, OSError)):
            self._transient(w, f"{type(exc).__name__}: {exc}")
        else:
            log.error("%s: %s: internal error", w.job.name, w.rel, exc_info=exc)
            self._fail(w, f"internal error: {type(exc).__name__}: {exc}")

    def _transient(self, w: Work, reason: str) -> None:
        key = (w.job.name, w.rel)
        n = self.attempts.get(key, 0) + 1
        self.attempts[key] = n
        if n > self.cfg.retries:
            self._fail(w, f"{reason} (gave up after {n} attempts)")
            return
        delay = self.cfg.retry_backoff * 2 ** (n - 1)
        log.warning(
            "%s: %s: %s; retry %d/%d in %.3g s (the input waits in the inbox)",
            w.job.name,
            w.rel,
            reason,
            n,
            self.cfg.retries,
            delay,
        )
        self._give_back(w, delay=delay)

    def _give_back(self, w: Work, *, delay: float = 0.0) -> None:
        try:
            back = self.claims[str(w.job.inbox)].release(w.rel)
        except OSError as exc:  # stays claimed: recovered at the next start
            log.error("%s: %s: cannot give it back to the inbox: %s", w.job.name, w.rel, exc)
            return
        if back is not None and not self.stopping:
            rel = PurePath(back.relative_to(w.job.inbox))
            self.candidates[back] = Candidate(
                job=w.job, path=back, rel=rel, seen=w.seen, not_before=time.monotonic() + delay
            )

    def _give_back_all(self) -> None:
        for w in self.works:
            if w.output is not None:  # given back, it would be done twice: the next start finishes the move
                log.warning(
                    "%s: %s: output %s written, the input stays claimed until its move to %s succeeds "
                    "(at the next start)",
                    w.job.name,
                    w.rel,
                    w.output,
                    w.job.processed if w.job.after == "move" else "its place",
                )
                continue
            if w.future is not None and w.error is None:
                w.future.cancel()
            self._give_back(w)
            log.warning("%s: %s not finished; given back to the inbox", w.job.name, w.rel)
        self.works = []

    def _fail(self, w: Work, reason: str) -> None:
        job = w.job
        self.attempts.pop((job.name, w.rel), None)
        stats = self.stats[job.name]
        try:
            dst = files.move_noreplace(w.claim, job.failed / w.rel)
            note = {
                "file": str(job.inbox / w.rel),
                "reason": reason,
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "host": files.HOST,
                "job": job.name,
                "settings": job.settings.to_dict(),
            }
            # one line per value, however long (a user greps these records)
            text = yaml.safe_dump(note, sort_keys=False, width=float("inf"))
            atomic_write(dst.with_name(dst.name + ".error.txt"), text.encode())
        except FileNotFoundError:
            return
        except OSError as exc:  # cannot even file it: leave it in the inbox and try again later
            log.error("%s: %s: cannot move it to %s: %s", job.name, w.rel, job.failed, exc.strerror or exc)
            self._give_back(w, delay=max(self.cfg.retry_backoff, 1.0) * 8)
            return
        stats.failed += 1
        stats.last_error = f"{w.rel}: {reason}"
        self._status_dirty = True
        log.error(
            "%s: %s failed: %s (moved to %s)",
            job.name,
            w.rel,
            reason,
            dst,
            extra={"event": "failed", "job": job.name, "input": str(job.inbox / w.rel), "reason": reason},
        )

    def _unsafe(self, job: Job, exc: OSError) -> None:
        """Log (once per message) that a job's claims folder is not the daemon's; its files wait."""
        msg = f"{job.name}: {exc}; its files wait in the inbox until this is fixed"
        if msg not in self._unsafe_said:
            self._unsafe_said.add(msg)
            log.error("%s", msg)
            self._set_error(job, str(exc))

    def _set_error(self, job: Job | None, msg: str) -> None:
        for name in [job.name] if job else list(self.stats):
            self.stats[name].last_error = msg
        self._status_dirty = True

    # -- status ----------------------------------------------------------------------------
    def _write_status(self, *, running: bool) -> None:
        self._last_status = time.monotonic()
        self._status_dirty = False
        jobs: dict[str, Any] = {}
        for job in self.cfg.jobs:
            s = self.stats.get(job.name, JobStats())
            jobs[job.name] = {
                "inbox": str(job.inbox),
                "outbox": str(job.outbox),
                "queued": sum(1 for c in self.candidates.values() if c.job.name == job.name),
                "in_flight": sum(1 for w in self.works if w.job.name == job.name),
                "processed": s.processed,
                "failed": s.failed,
                "skipped": s.skipped,
                "last_error": s.last_error,
            }
        status = {
            "running": running,
            "pid": os.getpid(),
            "host": files.HOST,
            "config": self.cfg.source,
            "started": self.started,
            "updated": time.time(),
            "executor": self.executor.describe() if self.executor else None,
            "jobs": jobs,
        }
        with contextlib.suppress(OSError):
            atomic_write(self.cfg.state_dir / "status.json", json.dumps(status, indent=1).encode())


def reloader(explicit, dask):
    """A function that re-reads the same config file (for SIGHUP)."""
    return lambda: load_config(explicit, dask=dask)
