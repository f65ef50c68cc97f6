"""Claiming: a stable candidate moved into this daemon's claims folder (one ``rename(2)``), then read.

The folder mechanics (a real folder of this user's, checked before every claim, never a link
followed) are :class:`.files.Claims`; this stage keeps one per inbox, beats the heartbeat and
takes back the claims of daemons that died (their files back to the inbox, or finished when
only the input's move was missing).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path, PurePath

from knockout.fsutil import NOT_REGULAR, NotRegular, open_regular

from . import files
from .config import Config, Job
from .records import Candidate, Work

__all__ = ["Claimer", "NotRegular", "TooLarge", "digest", "max_input_bytes"]

log = logging.getLogger(__name__)


class TooLarge(ValueError):
    """An input larger than any image the settings allow (the message is one line)."""


def max_input_bytes(max_pixels: int) -> int:
    """The most bytes an input may hold: twice ``max_pixels`` pixels stored uncompressed at 16-bit RGBA
    (8 bytes a pixel), and 64 MiB for metadata (1.5 GB with the default max_pixels)."""
    return 16 * max_pixels + (64 << 20)


def _read_upto(fh, size: int, limit: int) -> bytes:
    """The file's bytes: ``size`` of them at once (``read(n)`` takes n bytes of memory before reading),
    the rest of a file grown since its fstat in pieces, never more than ``limit + 1``."""
    parts = [fh.read(size + 1)]
    n = len(parts[0])
    while n > size and n <= limit:
        more = fh.read(min(1 << 20, limit + 1 - n))
        if not more:
            break
        parts.append(more)
        n += len(more)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def digest(data: bytes) -> bytes:
    """What tells two contents apart: SHA-256 (hardware-accelerated here: 25 ms for 10 MB on the
    loaded machine, where BLAKE2b took 58 ms and copying the bytes 58 ms)."""
    return hashlib.sha256(data).digest()


class Claimer:
    """This daemon's claims in every inbox of a config.

    Parameters
    ----------
    token : str, optional
        The name of this daemon's claim folders (default ``HOST-PID-random``).
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token or f"{files.HOST}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.claims: dict[str, files.Claims] = {}

    def of(self, job: Job) -> files.Claims:
        return self.claims[str(job.inbox)]

    def start(self, job: Job) -> files.Claims:
        """Make (or check) this daemon's claims folder in the job's inbox (:class:`files.UnsafeFolder` if unsafe)."""
        c = self.claims.get(str(job.inbox))
        if c is None:
            c = files.Claims(job.inbox, self.token)
            c.start()
            self.claims[str(job.inbox)] = c
        return c

    def heartbeat(self) -> None:
        for c in self.claims.values():
            c.heartbeat()

    def close(self) -> None:
        for c in self.claims.values():
            c.close()

    def claim(self, c: Candidate, st: os.stat_result) -> Work | None:
        """Move a candidate into the claims; None when it is not a file or link, or another daemon took it.

        Raises
        ------
        files.UnsafeFolder
            When the claims folder is not the one this daemon made (nothing was moved).
        OSError
            When the claims folder cannot be made or the file cannot be moved (a read-only inbox).
        """
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            return None
        # started here when the inbox was not writable at start (OSError again if it still is not)
        claim = self.start(c.job).claim(c.path, c.rel)
        if claim is None:
            return None
        return Work(job=c.job, rel=c.rel, claim=claim, stat=st, seen=c.seen)

    @staticmethod
    def read(w: Work) -> tuple[Work, bytes]:
        """The claimed file's bytes (never through a link), and the work with the ``fstat`` of what was read.

        Raises
        ------
        NotRegular
            When what was claimed is no longer a regular file (swapped after its ``lstat``).
        TooLarge
            When the file holds more bytes than any image of ``max_pixels`` pixels needs
            (:func:`max_input_bytes`): it is never read whole (a sparse file of 200 GB took all memory).
        """
        limit = max_input_bytes(w.job.settings.max_pixels)
        # in this daemon's own folder now, where nobody else can swap it: a device is never even opened
        if not stat.S_ISREG(os.lstat(w.claim).st_mode):
            raise NotRegular(NOT_REGULAR)
        # should a FIFO be there after all, it is opened without waiting for a writer (NotRegular)
        fh, st = open_regular(w.claim)
        with fh:
            size = st.st_size
            data = _read_upto(fh, size, limit) if size <= limit else b""
            st = os.fstat(fh.fileno())
        if size > limit or len(data) > limit:
            raise TooLarge(
                f"too large: {max(size, len(data)):,} bytes, more than any image of max_pixels = "
                f"{w.job.settings.max_pixels:,} pixels needs ({limit:,}); raise max_pixels if the file is trusted"
            )
        return Work(job=w.job, rel=w.rel, claim=w.claim, stat=st, seen=w.seen, digest=digest(data)), data

    def release(self, w: Work) -> Path | None:
        """Give a claimed file back to its inbox (under a free name); where it went, None if it was gone."""
        return self.of(w.job).release(w.rel)

    # -- recovery ------------------------------------------------------------------------
    def recover(
        self,
        cfg: Config,
        job: Job,
        *,
        finished: Callable[[Job, PurePath, Path], None],
        back: Callable[[Path, Job], None],
    ) -> None:
        """Take back the claims of dead daemons in this inbox (and their temporary outputs).

        ``finished(job, rel, path)`` files an input whose output was written (only its move was
        missing); ``back(path, job)`` is told of each file put back in the inbox.
        """
        claims = self.of(job)
        claims.check()
        for owner in list(files.dead_owners(job.inbox, self.token, cfg.claim_timeout)):
            adopted = files.adopt(owner, claims)
            if adopted is None:
                continue
            n_back = n_done = 0
            stuck = 0
            for rel, path, mark in list(files.claimed_files(adopted)):
                try:
                    outputs = (job.outbox, *((job.review,) if job.review else ()))
                    if files.output_done(mark, outputs) is not None:  # only the input's move was missing
                        finished(job, rel, path)
                        n_done += 1
                    else:
                        back(files.move_noreplace(path, job.inbox / rel, root=job.inbox), job)
                        n_back += 1
                except OSError as exc:  # stays adopted: recovered again at the next start
                    log.error("%s: cannot recover %s from %s: %s", job.name, rel, owner.name, exc)
                    stuck += 1
            tags = [adopted.name]
            if (adopted / "adopted").is_dir():
                tags += [p.name for p in (adopted / "adopted").iterdir()]
            for tag in tags:  # cut-outs are written to the outbox and to the review folder
                for folder in (job.outbox, *((job.review,) if job.review else ())):
                    files.remove_temps(folder, tag)
            if not stuck:
                files.remove_tree(adopted, claims)
            log.warning(
                "%s: recovered the claims of %s (stopped or dead): %d back in the inbox, %d finished",
                job.name,
                owner.name,
                n_back,
                n_done,
            )
