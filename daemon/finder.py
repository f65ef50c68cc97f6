"""Finding candidates: inbox events and scans, then the stability wait (``settle``).

watchdog's threads only put ``(kind, path)`` on a queue (:class:`_Handler`); the main thread
drains it, filters names (hidden, temporary, non-image, beyond a linked folder) and keeps each
path until its size and time stamp have not changed for ``settle`` seconds. Then it hands out
a frozen :class:`~.records.Candidate`.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserverVFS

from knockout.imageio import EXTENSIONS
from knockout.settings import SettingsError

from . import files
from .config import Config, Job
from .records import Candidate

__all__ = ["Finder"]

log = logging.getLogger(__name__)


def _identity(folder: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the folder ``folder`` names (a configured link followed), None if it is none."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


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


@dataclass
class _Watched:
    """The finder's own bookkeeping for one path (never leaves this module)."""

    job: Job
    path: Path
    rel: PurePath
    seen: float
    stat: tuple[int, int] | None = None
    since: float = 0.0  # monotonic time the stat last changed
    not_before: float = 0.0


class Finder:
    """The paths that may become inputs, and the stability wait.

    Parameters
    ----------
    config : Config
        Its jobs, ``settle``, ``observer`` and ``poll_interval`` are read (replace with :meth:`reconfigure`).
    already_done : callable, optional
        ``(job, rel, (size, mtime_ns)) -> bool``: True for an input ``after: leave`` processed already.
    """

    def __init__(
        self,
        config: Config,
        *,
        already_done: Callable[[Job, PurePath, tuple[int, int]], bool],
        ignored: Callable[[Job, PurePath, str], None] | None = None,
    ) -> None:
        self.cfg = config
        self.already_done = already_done
        self.ignored = ignored or (lambda job, rel, reason: None)
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.watched: dict[Path, _Watched] = {}
        self.observers: dict[str, tuple[Any, tuple[int, int] | None]] = {}  # job name -> (observer, inbox id)
        self.missing: set[str] = set()  # jobs whose inbox is gone, said once
        self.unseeable: set[Path] = set()  # files whose lstat failed (a folder made unreadable), said once
        self.last_rescan = time.monotonic()

    def __len__(self) -> int:
        return len(self.watched)

    def count(self, job: Job) -> int:
        return sum(1 for w in self.watched.values() if w.job.name == job.name)

    def reconfigure(self, config: Config) -> None:
        self.cfg = config
        names = {j.name for j in config.jobs}
        for path, w in list(self.watched.items()):
            if w.job.name not in names:
                del self.watched[path]

    # -- events and scans --------------------------------------------------------------------
    def start_observers(self) -> None:
        for job in self.cfg.jobs:
            self._watch(job, self.cfg.observer)

    def _watch(self, job: Job, kind: str) -> None:
        """Start watching ``job``'s inbox with an observer of ``kind`` (``auto`` falls back to polling)."""
        handler = _Handler(self.q)
        ident = _identity(job.inbox)
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
        self.observers[job.name] = (obs, ident)
        log.debug("watching %s with %s", job.inbox, type(obs).__name__)

    def _observer(self, kind: str):
        if kind == "polling":  # lstat: a link to a folder outside the inbox is never walked into
            return PollingObserverVFS(os.lstat, os.scandir, polling_interval=self.cfg.poll_interval)
        return Observer()

    def stop_observers(self) -> None:
        for obs, _ in self.observers.values():
            obs.stop()
        for obs, _ in self.observers.values():
            obs.join(timeout=5)
        self.observers = {}

    def keep_watching(self) -> None:
        """Watch again every inbox whose watch has ended, and scan it for what came in meanwhile.

        A watch ends when its inbox is removed (watchdog's inotify and polling emitters stop) or
        replaced by another folder of the same name (the watch follows the old one): without this,
        no event would ever come from that inbox again, and with ``rescan: 0`` nothing would be found.
        """
        for job in self.cfg.jobs:
            obs, ident = self.observers.get(job.name, (None, None))
            now = _identity(job.inbox)
            if obs is not None and ident == now and obs.is_alive() and all(e.is_alive() for e in obs.emitters):
                continue
            if obs is not None:  # a watch follows its folder: one moved away would report under the inbox's name
                obs.stop()
                obs.join(timeout=5)
                del self.observers[job.name]
            if now is None:
                if job.name not in self.missing:
                    log.warning("%s: the inbox %s is gone; watching it again once it is back", job.name, job.inbox)
                    self.missing.add(job.name)
                continue
            log.warning("%s: the inbox %s was removed or replaced; watching it again", job.name, job.inbox)
            self.missing.discard(job.name)
            try:
                self._watch(job, self.cfg.observer)
            except (OSError, SettingsError) as exc:  # it went again in between: tried at the next look
                log.warning("%s: cannot watch %s yet: %s", job.name, job.inbox, exc)
                continue
            self.scan(job)

    def _job_for(self, path: Path) -> Job | None:
        for job in self.cfg.jobs:
            if job.inbox == path or job.inbox in path.parents:
                return job
        return None

    def offer(self, path: Path, job: Job | None = None, *, seen: float | None = None, delay: float = 0.0) -> None:
        """Watch ``path`` if it names an input of a job (``delay``: not looked at before then)."""
        job = job or self._job_for(path)
        if job is None or path in self.watched:
            return
        rel = PurePath(path.relative_to(job.inbox))
        if not job.recursive and len(rel.parts) > 1:
            return
        if files.too_deep(rel, is_folder=os.path.isdir(path) and not os.path.islink(path)):
            top = PurePath(*rel.parts[: files.MAX_DEPTH])  # said once for the whole nesting below it
            self.ignored(job, top, f"{files.MAX_DEPTH} folders deep in the inbox; what it holds is not looked at")
            return
        for i in range(1, len(rel.parts)):  # never through a linked folder (it goes to failed/ itself)
            if os.path.islink(job.inbox.joinpath(*rel.parts[:i])):
                return
        if not files.is_input_name(rel):
            if files.is_hidden(rel) or files.is_temporary(rel):
                return
            if not files.is_folder_link(path):  # a link to a folder goes to failed/; other names stay
                if not os.path.isdir(path):
                    self.ignored(job, rel, f"not an image name (knockout reads {', '.join(sorted(EXTENSIONS))})")
                return
        self.watched[path] = _Watched(
            job=job,
            path=path,
            rel=rel,
            seen=time.time() if seen is None else seen,
            not_before=time.monotonic() + delay if delay else 0.0,
        )

    def scan(self, job: Job, folder: Path | None = None) -> None:
        for p in files.walk_inputs(folder or job.inbox, recursive=job.recursive, others=True):
            self.offer(p, job)

    def scan_all(self) -> None:
        for job in self.cfg.jobs:
            self.scan(job)
        self.last_rescan = time.monotonic()

    def drain_events(self) -> None:
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
                if path == job.inbox or not job.recursive:
                    continue
                if files.too_deep(PurePath(rel), is_folder=True):
                    self.offer(path, job)  # said once, not walked into
                else:
                    self.scan(job, path)  # a folder moved in brings files without events
            else:
                self.offer(path, job)

    # -- the stability wait ------------------------------------------------------------------
    def stable(
        self, now: float, *, budget: int, room: Callable[[], bool]
    ) -> Iterator[tuple[Candidate, os.stat_result]]:
        """Candidates whose size and time stamp held still for ``settle`` seconds, with their ``lstat``.

        At most ``budget`` paths are looked at (so a 50,000-file inbox does not spin the loop),
        and none is handed out while ``room()`` is false; a candidate handed out is no longer
        watched (:meth:`later` watches it again).
        """
        for path, w in list(self.watched.items()):
            if w.not_before > now:
                continue
            budget -= 1
            if budget < 0:
                return
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                del self.watched[path]  # moved away, deleted, or claimed by another daemon
                self.unseeable.discard(path)
                continue
            except OSError as exc:  # said once a file; looked at again every rescan (at most a minute)
                if path not in self.unseeable:
                    self.unseeable.add(path)
                    log.warning(
                        "%s: cannot look at %s (%s); it is looked at again now and then",
                        w.job.name,
                        path,
                        exc.strerror or exc,
                    )
                w.not_before = now + max(self.cfg.retry_backoff, min(self.cfg.rescan or 60.0, 60.0))
                continue
            self.unseeable.discard(path)
            key = (st.st_size, st.st_mtime_ns)
            if key != w.stat:
                if w.stat is None and w.job.after == "leave" and self.already_done(w.job, w.rel, key):
                    del self.watched[path]
                    continue
                if w.stat is not None:  # still growing: to the back of the queue
                    del self.watched[path]
                    self.watched[path] = w
                w.stat, w.since = key, now
                continue
            if now - w.since < self.cfg.settle:
                continue
            if not room():
                return
            del self.watched[path]
            yield Candidate(job=w.job, path=path, rel=w.rel, seen=w.seen), st

    def later(self, c: Candidate, delay: float) -> None:
        """Watch a candidate again, not before ``delay`` seconds from now (its stat is taken afresh)."""
        self.watched.pop(c.path, None)
        self.offer(c.path, c.job, seen=c.seen, delay=delay)
