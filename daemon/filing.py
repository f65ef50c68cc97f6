"""Filing: an outcome's output written, its input moved on; failure records; retries with back-off.

Where things go is decided in one place, :meth:`Filer.handle`: a result to the outbox (then
the input to ``processed/``, deleted, or back in place), a bad input to ``failed/`` with
``NAME.error.txt``, a transient error back to the inbox for a retry. A new destination (a
review folder) is one more branch there; a journal writer hooks :meth:`Filer._done` and
:meth:`Filer.fail`, through which every filed input passes.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePath

import yaml

from knockout import fsutil
from knockout.fsutil import atomic_write
from knockout.imageio import ImageError, output_suffix
from knockout.process import Processed

from . import files
from .claiming import Claimer, digest
from .config import Config, Job
from .executor import Crashed, TooSlow, WorkLost
from .journal import Journal
from .records import Outcome, Work
from .seen import Seen
from .status import Status

__all__ = ["Filer"]

log = logging.getLogger(__name__)

CONFIRM_BAD = 2.0  # seconds before an undecodable input is looked at again (then 4, ...)
BAD_LOOKS = 3  # looks at an unchanged, undecodable input before it is failed


@dataclass(frozen=True)
class _Pending:
    """An outcome whose output was written, waiting to retry its input's move."""

    outcome: Outcome
    at: float
    output: Path


Requeue = Callable[[Path, Job, float, float], None]  # (path, job, seen, delay)


class Filer:
    """Files the outcomes of one daemon.

    Parameters
    ----------
    config : Config
        ``settle``, ``retries`` and ``retry_backoff`` are read (replace ``filer.cfg`` on reload).
    claimer, status, seen
        The daemon's other stages: claims to release and mark, counts, the ``after: leave`` record.
    requeue : callable
        ``(path, job, seen, delay)``: a file given back to the inbox, to look at again after ``delay`` s.
    squeeze : callable, optional
        Called when a worker ran out of memory: the runner takes one file at a time for a while.
    journal : Journal, optional
        Gets one record per filed input (replace ``filer.journal`` when ``state_dir`` changes).
    """

    def __init__(
        self,
        config: Config,
        *,
        claimer: Claimer,
        status: Status,
        seen: Seen,
        requeue: Requeue,
        squeeze: Callable[[], None] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.cfg = config
        self.journal = journal
        self.squeeze = squeeze or (lambda: None)
        self.claimer = claimer
        self.status = status
        self.seen = seen
        self.requeue = requeue
        self.accepting = True  # False while stopping: files given back are not looked at again
        self.pending: list[_Pending] = []
        self.attempts: dict[tuple[str, PurePath], int] = {}
        self.bad: dict[tuple[str, PurePath], tuple[tuple[int, int], int]] = {}  # (size, mtime), looks
        self.made: dict[Path, tuple[str, PurePath]] = {}  # collision: overwrite: outputs of this run, by input

    def __len__(self) -> int:
        return len(self.pending)

    def count(self, job: Job) -> int:
        return sum(1 for p in self.pending if p.outcome.work.job.name == job.name)

    # -- the one place where an outcome's destination is decided ----------------------------
    def handle(self, o: Outcome) -> None:
        """File one outcome of the executor (see the module docstring)."""
        w = o.work
        if isinstance(o.error, ImageError):
            self._undecodable(w, o.error)
        elif isinstance(o.error, (TooSlow, Crashed)):
            self.fail(w, str(o.error))
        elif isinstance(o.error, (WorkLost, OSError)):
            self.transient(w, f"{type(o.error).__name__}: {o.error}")
        elif isinstance(o.error, MemoryError):  # a resource limit, not a bad file: later, fewer at once
            self.squeeze()
            self.transient(w, f"a resource limit: {o.error or 'out of memory'}; one file in flight for a while")
        elif o.error is not None:
            log.error("%s: %s: internal error", w.job.name, w.rel, exc_info=o.error)
            self.fail(w, f"internal error: {type(o.error).__name__}: {o.error}")
        else:
            self._guarded(o, None)

    def tick(self) -> None:
        """Retry the input moves whose time has come."""
        now = time.monotonic()
        for p in list(self.pending):
            if p.at <= now:
                self.pending.remove(p)
                self._guarded(p.outcome, p.output)

    def _guarded(self, o: Outcome, output: Path | None) -> None:
        try:
            self._write(o, output)
        except Exception:  # one bad file never stops the loop; restart recovery finishes it
            log.exception("%s: %s: unexpected error while filing it; left claimed", o.work.job.name, o.work.rel)

    # -- success -------------------------------------------------------------------------
    def output_path(self, job: Job, rel: PurePath) -> Path:
        return job.outbox / rel.parent / f"{rel.stem}{output_suffix(job.settings)}"

    def skip_existing(self, w: Work) -> bool:
        """``collision: skip`` with the output there already: the input is filed as done, True."""
        dst = self.output_path(w.job, w.rel)
        if w.job.collision != "skip" or not os.path.lexists(dst):
            return False
        self.status.skipped(w.job)
        log.info("%s: %s: output %s exists, skipped (collision: skip)", w.job.name, w.rel, dst)
        self.after_success(w.job, w.rel, w.claim, record=w.stat)
        if self.journal is not None:
            self.journal.write("skipped", job=w.job.name, input=str(w.job.inbox / w.rel), output=str(dst))
        return True

    def _write(self, o: Outcome, output: Path | None) -> None:
        w, res = o.work, o.result
        job = w.job
        assert res is not None
        claims = self.claimer.of(job)
        to_review = res.review and job.review is not None
        root = job.review if to_review else job.outbox
        dst = root / w.rel.parent / f"{w.rel.stem}{res.suffix}"
        if output is None and self._changed(w):
            log.info("%s: %s changed after it was read; processing it again", job.name, w.rel)
            self.give_back(w, delay=self.cfg.settle)
            return
        try:
            if output is not None:  # written before; only moving the input failed
                out = output
            elif job.collision == "skip" and os.path.lexists(dst):
                self.status.skipped(job)
                log.info("%s: %s: output %s appeared meanwhile, skipped (collision: skip)", job.name, w.rel, dst)
                out = dst
            else:
                replace = job.collision == "overwrite" and self.made.get(dst, (job.name, w.rel)) == (job.name, w.rel)
                if job.collision == "overwrite" and not replace:
                    log.warning(
                        "%s: %s: %s was made from %s in this run; not overwritten, a free name is used",
                        job.name,
                        w.rel,
                        dst,
                        self.made[dst][1],
                    )
                claims.mark(w.rel, dst)
                beside = review_path if to_review else None  # a free name has a free note name too
                out = files.write_noreplace(
                    dst, res.data, tag=self.claimer.token, replace=replace, root=root, beside=beside
                )
                if job.collision == "overwrite":  # only these need it; kept for every output, it grew for ever
                    self.made[out] = (job.name, w.rel)
                if to_review:
                    self._note(out, _review_note(job, w.rel, res))
        except files.UnsafeFolder as exc:  # a link in the outbox: never written through
            claims.unmark(w.rel)
            self.fail(w, f"cannot write the output {dst}: {exc}")
            return
        except OSError as exc:  # disk full, permission denied: the input goes back to its inbox meanwhile
            claims.unmark(w.rel)
            if exc.errno == errno.ENAMETOOLONG:
                self.fail(w, f"cannot write the output {dst}: its name is longer than the file system allows")
            else:
                self.transient(w, f"cannot write the output {dst}: {exc.strerror or exc}")
            return
        try:
            kept = self.after_success(job, w.rel, w.claim, record=w.stat)
        except files.UnsafeFolder as exc:  # a link in processed/: the input goes to failed/ instead
            claims.unmark(w.rel)
            self.fail(w, f"output written to {out}, but the input cannot be moved: {exc}")
            return
        except OSError as exc:  # the output is there; retry moving the input (the mark stays)
            key = (job.name, w.rel)
            n = self.attempts[key] = self.attempts.get(key, 0) + 1
            at = time.monotonic() + self.cfg.retry_backoff * 2 ** min(n - 1, 8)
            self.pending.append(_Pending(o, at, out))
            log.warning("%s: %s: output written, cannot move the input: %s; retrying", job.name, w.rel, exc)
            return
        self.attempts.pop((job.name, w.rel), None)
        claims.unmark(w.rel)
        self._done(o, out, kept)

    @staticmethod
    def _note(out: Path, text: str) -> None:
        """The review note beside a flagged cut-out; one that cannot be written is said, the cut-out stays."""
        try:
            atomic_write(review_path(out), text.encode())
        except OSError as exc:  # a folder by that name, mirrored from the inbox, in overwrite mode
            log.warning("%s: cut-out written, its review note %s cannot be: %s", out, review_path(out), exc.strerror)

    def _done(self, o: Outcome, out: Path, kept: Path | None = None) -> None:
        w, res, job = o.work, o.result, o.work.job
        assert res is not None
        self.status.processed(job, review=res.review)
        latency = time.time() - w.seen
        doubt = f"; to review: confidence {res.confidence:.2f} ({' '.join(res.reasons)})" if res.review else ""
        log.info(
            "%s: %s -> %s (%s, %.0f ms)%s",
            job.name,
            w.rel,
            out,
            res.method,
            res.milliseconds,
            doubt,
            extra={
                "event": "processed",
                "job": job.name,
                "input": str(job.inbox / w.rel),
                "output": str(out),
                "method": res.method,
                "milliseconds": round(res.milliseconds, 1),
                "latency_ms": round(latency * 1000, 1),
                "confidence": res.confidence,
                "review": res.review,
            },
        )
        if self.journal is not None:
            self.journal.write(
                "processed",
                job=job.name,
                input=str(job.inbox / w.rel),
                output=str(out),
                kept=None if kept is None else str(kept),
                method=res.method,
                tolerance=round(res.tolerance, 2),
                confidence=None if res.confidence is None else round(res.confidence, 3),
                reasons=list(res.reasons),
                review=res.review,
                ms=round(res.milliseconds, 1),
                latency_ms=round(latency * 1000, 1),
            )
        for note in res.notes:  # e.g. only the first frame of an animated GIF was cut out
            log.warning("%s: %s: %s", job.name, w.rel, note)

    def after_success(self, job: Job, rel: PurePath, claim: Path, record: os.stat_result | None = None) -> Path | None:
        """The input of a finished file: to processed/, deleted, or back in place with a record; where it is now."""
        self.claimer.of(job).check()  # the claims' folders are still the daemon's: nothing moved through a link
        try:
            if job.after == "move":
                return files.move_noreplace(claim, job.processed / rel, root=job.processed)
            elif job.after == "delete":
                os.unlink(claim)
            else:
                st = record or os.lstat(claim)
                key = (st.st_size, st.st_mtime_ns)
                # recorded before it is back: a daemon sharing the inbox must never see it unrecorded
                self.seen.add(job.name, rel, key)
                back = files.move_noreplace(claim, job.inbox / rel, root=job.inbox)  # never through a linked folder
                if back != job.inbox / rel:
                    self.seen.add(job.name, PurePath(back.relative_to(job.inbox)), key)
                return back
        except FileNotFoundError:
            pass
        return None

    # -- failures and retries ----------------------------------------------------------------
    def _undecodable(self, w: Work, error: ImageError) -> None:
        """An input that did not decode: failed only once it stayed the same over ``BAD_LOOKS`` looks.

        Its writer may only be pausing (longer than ``settle``) or have been claimed mid-write:
        it goes back to the inbox and is looked at again after 2, 4... s; a file that changed
        meanwhile starts again.
        """
        k, key = (w.job.name, w.rel), (w.stat.st_size, w.stat.st_mtime_ns)
        prev = self.bad.get(k)
        looks = prev[1] + 1 if prev is not None and prev[0] == key else 1
        if looks >= BAD_LOOKS:
            self.bad.pop(k, None)
            self.fail(w, str(error))
            return
        self.bad[k] = (key, looks)
        delay = max(self.cfg.settle, CONFIRM_BAD) * 2 ** (looks - 1)
        log.info(
            "%s: %s: %s; looking again in %.3g s in case it is still being written", w.job.name, w.rel, error, delay
        )
        self.give_back(w, delay=delay)

    def _changed(self, w: Work) -> bool:
        """Whether the claimed input is no longer what was read (rewritten through an open descriptor).

        Size, time stamp and inode tell at once. A change time alone (a rewrite that put the time
        stamp back, but also a hard link to the same file renamed or linked elsewhere) is judged by
        the content: two hard links in the inbox made each other "changed" and were cut again and again.
        """
        try:
            st = os.lstat(w.claim)
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (w.stat.st_size, w.stat.st_mtime_ns, w.stat.st_ino):
            return True
        if st.st_ctime_ns == w.stat.st_ctime_ns:
            return False
        if w.digest is None:
            return True
        try:
            again, _ = self.claimer.read(w)  # read() takes the digest of what it read
        except (OSError, ValueError):
            return True
        return again.digest != w.digest

    def transient(self, w: Work, reason: str) -> None:
        """A failure that is not the file's: back to the inbox and retried with back-off, then failed."""
        key = (w.job.name, w.rel)
        n = self.attempts.get(key, 0) + 1
        self.attempts[key] = n
        if n > self.cfg.retries:
            self.fail(w, f"{reason} (gave up after {n} attempts)")
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
        self.give_back(w, delay=delay)

    def give_back(self, w: Work, *, delay: float = 0.0) -> None:
        try:
            back = self.claimer.release(w)
        except OSError as exc:  # stays claimed: recovered at the next start
            log.error("%s: %s: cannot give it back to the inbox: %s", w.job.name, w.rel, exc)
            return
        if back is not None and self.accepting:
            self.requeue(back, w.job, w.seen, delay)

    def give_back_all(self, running: list[Work]) -> None:
        """At exit: the work still running goes back to the inbox; inputs whose output was written stay claimed."""
        for p in self.pending:  # given back, these would be done twice: the next start finishes the move
            w = p.outcome.work
            log.warning(
                "%s: %s: output %s written, the input stays claimed until its move to %s succeeds (at the next start)",
                w.job.name,
                w.rel,
                p.output,
                w.job.processed if w.job.after == "move" else "its place",
            )
        self.pending = []
        for w in running:
            self.give_back(w)
            log.warning("%s: %s not finished; given back to the inbox", w.job.name, w.rel)

    def fail(self, w: Work, reason: str) -> None:
        """To ``failed/`` with ``NAME.error.txt`` (one line per value); left in the inbox if even that fails."""
        job = w.job
        self.attempts.pop((job.name, w.rel), None)
        self.bad.pop((job.name, w.rel), None)
        try:
            self.claimer.of(job).check()
            dst = files.move_noreplace(w.claim, job.failed / w.rel, root=job.failed, beside=record_path)
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
            atomic_write(record_path(dst), text.encode(), replace=False)  # never another input's record
        except FileNotFoundError:
            return
        except OSError as exc:  # cannot even file it: leave it in the inbox and try again later
            log.error("%s: %s: cannot move it to %s: %s", job.name, w.rel, job.failed, exc.strerror or exc)
            self.give_back(w, delay=max(self.cfg.retry_backoff, 1.0) * 8)
            return
        self.status.failed(job, f"{w.rel}: {reason}")
        if self.journal is not None:
            self.journal.write("failed", job=job.name, input=str(job.inbox / w.rel), failed=str(dst), reason=reason)
        log.error(
            "%s: %s failed: %s (moved to %s)",
            job.name,
            w.rel,
            reason,
            dst,
            extra={"event": "failed", "job": job.name, "input": str(job.inbox / w.rel), "reason": reason},
        )


def _review_note(job: Job, rel: PurePath, res: Processed) -> str:
    note = {
        "file": str(job.inbox / rel),
        "confidence": res.confidence,
        "reasons": " ".join(res.reasons),
        "review_below": job.settings.review_below,
        "method": res.method,
        "tolerance": round(res.tolerance, 2),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "job": job.name,
    }
    return yaml.safe_dump(note, sort_keys=False, width=float("inf"))


def review_path(output: Path) -> Path:
    """``NAME.review.txt`` beside a flagged cut-out (NAME without the output's extension; see :func:`_beside`)."""
    return _beside(output, output.stem, ".review.txt")


def record_path(failed: Path) -> Path:
    """``NAME.error.txt`` beside a failed input (see :func:`_beside`)."""
    return _beside(failed, failed.name, ".error.txt")


def _beside(path: Path, name: str, end: str) -> Path:
    """``name + end`` in ``path``'s folder; a whole too long for the file system has ``name`` shortened
    (in bytes) and ended by a digest of it, so that two long names sharing a beginning never share one file."""
    raw, tail = os.fsencode(name), os.fsencode(end)
    if len(raw) + len(tail) > fsutil.NAME_MAX:
        mark = b"-" + digest(raw).hex()[:12].encode()
        raw = raw[: fsutil.NAME_MAX - len(tail) - len(mark)] + mark
    return path.with_name(os.fsdecode(raw + tail))
