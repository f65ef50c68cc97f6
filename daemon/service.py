"""The daemon's main loop: it wires the stages and owns the signals and the config.

finder (events, scans, the stability wait) -> claimer (claims, recovery) -> runner (the
executor) -> filer (outputs, inputs moved, failure records, retries), with the counts in
status. Stages hand each other frozen records (:mod:`.records`). Threads: watchdog's observer
threads only put paths on a queue; the main thread does every folder operation; the
executor's processes or Dask workers do the image work. Nothing here blocks on an image.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import stat
import sys
import threading
import time
from pathlib import Path

from knockout.settings import SettingsError

from . import files
from .claiming import Claimer, NotRegular, TooLarge
from .config import Config, Job, load_config
from .filing import Filer
from .finder import Finder, _Handler  # noqa: F401 - _Handler: the event handler's tests
from .journal import Journal
from .notify import Notifier
from .records import Candidate
from .running import Runner
from .seen import Seen
from .status import Status

__all__ = ["Daemon"]

log = logging.getLogger(__name__)

TICK = 0.05  # seconds: how often the loop looks at candidates when nothing happens
WATCH_CHECK = 1.0  # seconds between checks that every inbox is still watched (one stat each)
SQUEEZE = 60.0  # seconds of one file in flight after a worker ran out of memory
# why a FIFO, socket or device stays in the inbox: one wording, so that status.ignored says and counts it
# once per file whether the lstat found it or the read of a claim it was swapped into (then given back)
SPECIAL = "not a regular file (a FIFO, a socket or a device)"
RECURSION_LIMIT = 10_000  # a 2,048-level os.walk in a thread of 8 MB of stack needs ~2,100


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
        self.wake = threading.Event()
        self.seen = Seen(config.state_dir)
        self.status = Status()
        self.claimer = Claimer()
        self.finder = Finder(
            config,
            already_done=lambda job, rel, key: (job.name, rel, key) in self.seen,
            ignored=self.status.ignored,
        )
        self.filer = Filer(
            config,
            claimer=self.claimer,
            status=self.status,
            seen=self.seen,
            requeue=lambda path, job, seen, delay: self.finder.offer(path, job, seen=seen, delay=delay),
            squeeze=lambda: self.runner.squeeze(SQUEEZE) if self.runner else None,
            journal=Journal(config.state_dir),
        )
        self.runner: Runner | None = None
        self.notify = Notifier()
        self.stopping = False
        self._stop_deadline = 0.0
        self._reload_requested = False
        now = time.monotonic()
        self._last_heartbeat, self._last_recover, self._last_watch_check = 0.0, now, now
        self._last_shape = (0, 0)

    # -- set-up ----------------------------------------------------------------------------
    @staticmethod
    def _prepare(cfg: Config) -> None:
        for job in cfg.jobs:
            for folder in (job.inbox, *job.folders()):
                try:
                    files.make_folders(folder)
                except OSError as exc:
                    raise SettingsError(
                        f"{cfg.source}: job '{job.name}': cannot create {folder}: {exc.strerror or exc}"
                    ) from None
        files.remember_roots([folder for job in cfg.jobs for folder in (job.inbox, *job.folders())])
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
            self.status.of(job)
            try:
                self.claimer.start(job)
                self._recover(job)
            except files.UnsafeFolder as exc:
                raise SettingsError(f"{self.cfg.source}: job '{job.name}': {exc}") from None
            except OSError as exc:  # a read-only inbox: said once; its files are tried again later
                self.status.unsafe(job, OSError(f"cannot make its claims folder: {exc.strerror or exc}"))

    def _recover(self, job: Job) -> None:
        self.claimer.recover(
            self.cfg,
            job,
            finished=self.filer.after_success,
            back=self.finder.offer,
        )

    def _recover_all(self) -> None:
        self._last_recover = time.monotonic()
        for job in self.cfg.jobs:
            if str(job.inbox) not in self.claimer.claims:
                continue
            try:
                self._recover(job)
            except files.UnsafeFolder as exc:
                self.status.unsafe(job, exc)
            except OSError as exc:  # a share gone away, for example: try again later
                log.warning("%s: cannot look for claims of stopped daemons: %s", job.name, exc)

    # -- signals ---------------------------------------------------------------------------
    def _install_signals(self) -> None:
        def stop(signum, _frame):
            # the state first, then the log line: a second signal can run this handler again inside the
            # first one's logging (Ctrl-C pressed twice, or `timeout` passing on a signal also sent to us)
            if self.stopping:
                self._stop_deadline = 0.0
                log.warning("second %s: giving claimed files back and exiting now", signal.Signals(signum).name)
            else:
                self.stopping = True
                self.filer.accepting = False
                self._stop_deadline = time.monotonic() + self.cfg.shutdown_timeout
                log.info("%s: finishing the files in flight, taking no new ones", signal.Signals(signum).name)
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
            self.status.error(None, f"config reload failed: {exc}")
            return
        assert self.runner is not None
        self.finder.stop_observers()
        self._configure(new)
        if self._on_config is not None:
            self._on_config(new)
        self.runner.reconfigure(new.executor)
        self._start_jobs()
        try:
            self.finder.start_observers()
        except SettingsError as exc:  # e.g. observer: native where it cannot work
            log.error("SIGHUP: %s; polling instead", exc)
            self._configure(dataclasses.replace(new, observer="polling"))
            self.finder.stop_observers()
            self.finder.start_observers()
        self.finder.scan_all()
        log.info("SIGHUP: config reloaded from %s (%d jobs, %s)", new.source, len(new.jobs), self.runner.describe())
        self.status.dirty = True

    def _configure(self, cfg: Config) -> None:
        if self.filer.journal is not None and cfg.state_dir != self.cfg.state_dir:
            self.filer.journal.close()
            self.filer.journal = Journal(cfg.state_dir)
        self.cfg = self.filer.cfg = cfg
        self.finder.reconfigure(cfg)

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped (or, with ``once``, until the inboxes are empty); returns the exit code."""
        self.runner = Runner(self.cfg.executor, self.wake)  # first: a missing extra is a config error
        # watchdog walks a folder moved into an inbox with os.walk, by recursion: folders nested 1,000
        # deep killed its thread (no more events). Paths are at most 4,096 bytes: at most ~2,048 levels.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
        self._install_signals()
        try:
            self._prepare(self.cfg)
            self._start_jobs()
            if not self.once:
                self.finder.start_observers()
            self.finder.scan_all()
            log.info(
                "watching %s (%s)%s",
                ", ".join(f"{j.name}: {j.inbox} -> {j.outbox}" for j in self.cfg.jobs),
                self.runner.describe(),
                "; --once" if self.once else "",
            )
            self.notify.ready(self._status_line())
            self._loop()
        finally:
            self.finder.stop_observers()
            self.filer.accepting = False
            self.filer.give_back_all(self.runner.cancel_all())
            self.notify.send("STOPPING=1")
            self.runner.shutdown()
            self.claimer.close()
            if self.cfg.state_dir.is_dir():  # not when the daemon refused to start before making it
                self._write_status(running=False)
            self.seen.close()
            if self.filer.journal is not None:
                self.filer.journal.close()
        processed, failed, skipped = self.status.totals()
        log.info("stopped: %d processed, %d failed, %d skipped", processed, failed, skipped)
        return 1 if (self.once and failed) else 0

    def _busy(self) -> bool:
        assert self.runner is not None
        return bool(len(self.runner) or len(self.filer))

    def _loop(self) -> None:
        assert self.runner is not None
        while True:
            if self._reload_requested:
                self._reload()
            self.finder.drain_events()
            for outcome in self.runner.finished():
                self.filer.handle(outcome)
            self.filer.tick()
            now = time.monotonic()
            if self.stopping:
                if not self._busy() or now >= self._stop_deadline:
                    return
            else:
                self._examine(now)
                if not self.once and self.cfg.rescan and now - self.finder.last_rescan >= self.cfg.rescan:
                    self.finder.scan_all()
                if not self.once and now - self._last_watch_check >= WATCH_CHECK:
                    self.finder.keep_watching()  # an inbox removed or replaced: its watch has ended
                    self._last_watch_check = now
                if self.once and not len(self.finder) and not self._busy():
                    return
            if now - self._last_heartbeat >= min(10.0, self.cfg.claim_timeout / 3):
                self.claimer.heartbeat()
                self._last_heartbeat = now
            if not self.stopping and now - self._last_recover >= min(10.0, self.cfg.rescan or 10.0):
                self._recover_all()  # a daemon sharing an inbox died: its claims come back now
            shape = (len(self.finder), len(self.runner) + len(self.filer))
            if shape != self._last_shape:
                self._last_shape, self.status.dirty = shape, True
            if self.status.due(now):
                self._write_status(running=True)
            self.notify.status(self._status_line())
            self.notify.ping(now)  # from the loop itself: a hung loop stops the pings and systemd restarts it
            self.wake.wait(TICK)
            self.wake.clear()

    def _examine(self, now: float) -> None:
        """Claim and submit the candidates stable for the settle time, while the executor has room."""
        assert self.runner is not None
        room = [self.runner.room()]
        budget = max(256, 4 * self.runner.executor.max_in_flight)
        for c, st in self.finder.stable(now, budget=budget, room=lambda: room[0] > 0):
            try:
                if self._start(c, st):
                    room[0] -= 1
            except Exception:  # one bad file never stops the loop
                log.exception("%s: %s: unexpected error; it will be looked at again", c.job.name, c.rel)
                self.finder.later(c, max(self.cfg.retry_backoff, 1.0) * 8)

    def _start(self, c: Candidate, st: os.stat_result) -> bool:
        """Claim, read and submit one stable file; True if work was submitted."""
        assert self.runner is not None
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            self.status.ignored(c.job, c.rel, SPECIAL)
            return False
        try:
            w = self.claimer.claim(c, st)
        except files.ClaimBusy as exc:  # the same name uploaded again while the first is in flight: it waits
            log.debug("%s: %s", c.job.name, exc)
            self.finder.later(c, max(self.cfg.settle, 1.0))
            return False
        except files.LinkOnPath as exc:  # swapped for a link since it was seen: nothing moved, forgotten
            self.status.ignored(c.job, c.rel, str(exc))
            return False
        except files.UnsafeFolder as exc:  # nothing was moved: the file waits in the inbox
            self.status.unsafe(c.job, exc)
            self.finder.later(c, max(self.cfg.rescan or 10.0, 2.0))
            return False
        except OSError as exc:  # a path too long for the claims folder, a read-only inbox: said once
            self.status.ignored(c.job, c.rel, f"cannot be claimed ({exc.strerror or exc}); it is tried again later")
            if not self.once:
                self.finder.later(c, max(self.cfg.rescan or 30.0, 10.0))
            return False
        if w is None:
            return False
        if c.job.after == "leave" and (c.job.name, c.rel, (st.st_size, st.st_mtime_ns)) in self.seen:
            self.claimer.release(w)  # a daemon sharing the inbox cut it and put it back meanwhile
            return False
        if stat.S_ISLNK(st.st_mode):
            self.filer.fail(w, _link_reason(c, w.claim))
            return False
        try:
            w, data = self.claimer.read(w)
        except NotRegular:  # swapped since its lstat: never read, back where it was
            self.status.ignored(c.job, c.rel, SPECIAL)
            self.filer.give_back(w)
            return False
        except TooLarge as exc:  # never read whole: it is not an image the settings allow
            self.filer.fail(w, str(exc))
            return False
        except OSError as exc:
            self.filer.transient(w, f"cannot read the input: {exc.strerror or exc}")
            return False
        except MemoryError:  # a resource limit, not the file's fault: later
            self.filer.transient(w, "cannot read the input: out of memory")
            return False
        if self.filer.skip_existing(w):
            return False
        try:
            self.runner.submit(w, data)
        except Exception as exc:  # a Dask client that cannot connect, for example
            self.filer.transient(w, f"cannot submit the work: {exc}")
            return False
        return True

    def _status_line(self) -> str:
        """systemd's STATUS=: queued, in flight, done, failed (since start, all jobs)."""
        done, failed, _skipped = self.status.totals()
        review = sum(s.review for s in self.status.stats.values())
        in_flight = (len(self.runner) if self.runner else 0) + len(self.filer)
        head = "stopping: " if self.stopping else ""
        return (
            f"{head}{len(self.finder)} queued, {in_flight} in flight, {done} done ({review} to review), {failed} failed"
        )

    def _write_status(self, *, running: bool) -> None:
        self.status.write(
            self.cfg,
            running=running,
            executor=self.runner.describe() if self.runner else None,
            queued=self.finder.count,
            in_flight=lambda job: (self.runner.count(job) if self.runner else 0) + self.filer.count(job),
        )


def _link_reason(c: Candidate, claim: Path) -> str:
    target = os.readlink(claim)
    resolved = Path(os.path.abspath(c.path.parent / target))
    where = "inside" if c.job.inbox in resolved.parents else "outside"
    what = "folder" if resolved.is_dir() else "file"
    return f"a symbolic link to {target} ({where} the inbox); links are not followed, copy the {what} in"


def reloader(explicit, dask):
    """A function that re-reads the same config file (for SIGHUP)."""
    return lambda: load_config(explicit, dask=dask)
