"""The journal: one JSON line per filed input in ``STATE_DIR/journal.jsonl``, rotated by size.

Every input the daemon files passes through :meth:`~knockout.daemon.filing.Filer._done` (a
cut-out), :meth:`~knockout.daemon.filing.Filer.fail` (a failure) or ``skip_existing`` (an
output already there); each calls :meth:`Journal.write` with one record: ``time`` (UTC, ISO
8601), ``event`` (``processed``, ``failed``, ``skipped``), ``job``, ``input``, ``output`` or
``reason``, and for a cut-out ``method``, ``tolerance``, ``confidence``, ``reasons``,
``review`` and ``ms``. When ``journal.jsonl`` passes ``max_bytes`` it becomes
``journal.jsonl.1`` (``.1`` becomes ``.2``...; ``keep`` old files are kept). ``knockout
status`` and ``knockout report`` read it back with :func:`read`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["Journal", "exists", "parse_since", "read"]

log = logging.getLogger(__name__)

NAME = "journal.jsonl"
MAX_BYTES = 8 * 1024 * 1024  # ~30 000 records a file
KEEP = 4  # rotated files kept beside the current one


class Journal:
    """Appends records to ``state_dir/journal.jsonl``; a write that fails is logged once and never raises.

    Parameters
    ----------
    state_dir : Path
        The daemon's state folder (created by the daemon before the first write).
    max_bytes : int
        Size after which the file is rotated.
    keep : int
        How many rotated files are kept (``journal.jsonl.1`` ... ``.keep``).
    """

    def __init__(self, state_dir: Path, *, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        if max_bytes < 1 or keep < 0:
            raise ValueError(f"max_bytes must be >= 1 and keep >= 0, got {max_bytes} and {keep}")
        self.path = Path(state_dir) / NAME
        self.max_bytes = max_bytes
        self.keep = keep
        self._fd: int | None = None
        self._size = 0
        self._said: set[str] = set()

    def write(self, event: str, **fields: Any) -> None:
        """Append one record (``time`` and ``event`` first, then ``fields`` without the None ones)."""
        rec = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event}
        rec.update((k, v) for k, v in fields.items() if v is not None)
        line = (json.dumps(rec, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")
        try:
            if self._fd is not None and self._size + len(line) > self.max_bytes and self._size > 0:
                self._rotate()
            if self._fd is None:
                self._open()
            assert self._fd is not None
            os.write(self._fd, line)  # one write per record, O_APPEND: lines never interleave
            self._size += len(line)
        except OSError as exc:
            msg = f"cannot write the journal {self.path}: {exc.strerror or exc}; records are lost until it can"
            if msg not in self._said:
                self._said.add(msg)
                log.error("%s", msg)
            self.close()

    def _open(self) -> None:
        # O_NOFOLLOW: a link planted in the state folder is never written through
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        self.close()
        if self.keep == 0:
            os.unlink(self.path)
            return
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{NAME}.{n}")
            if os.path.lexists(older):
                os.replace(older, self.path.with_name(f"{NAME}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{NAME}.1"))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _files(state_dir: Path) -> list[Path]:
    """The journal files, oldest first."""
    base = Path(state_dir) / NAME
    rotated = []
    for p in Path(state_dir).glob(f"{NAME}.*"):
        m = re.fullmatch(re.escape(NAME) + r"\.(\d+)", p.name)
        if m:
            rotated.append((int(m.group(1)), p))
    return [p for _, p in sorted(rotated, reverse=True)] + [base]


def exists(state_dir: Path) -> bool:
    """Whether ``state_dir`` holds a journal (its current file or a rotated one)."""
    return any(p.exists() for p in _files(state_dir))


def read(state_dir: Path, *, since: float | None = None) -> Iterator[dict[str, Any]]:
    """The records of ``state_dir``'s journal, oldest first; with ``since`` (a POSIX time) only those after it.

    A line that is not a JSON record (a torn last line after a crash) is skipped.
    """
    for path in _files(state_dir):
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            continue
        with fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                    when = datetime.fromisoformat(rec["time"]).timestamp()
                except (ValueError, KeyError, TypeError):
                    continue
                if since is None or when >= since:
                    yield rec


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> float:
    """``30m``, ``1h``, ``2d`` (also ``s``, ``w``) as seconds; ValueError with an example otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not m:
        raise ValueError(f"--since {text!r}: expected a number and a unit (s, m, h, d, w), e.g. 30m, 1h, 2d")
    return float(m.group(1)) * _UNITS[m.group(2)]
