"""The ``after: leave`` record: which inputs (by job, name, size and time stamp) were processed already.

One sqlite file in ``state_dir``, shared by daemons that share an inbox. A name that is valid
UTF-8 is stored as text; any other name as its raw bytes (a BLOB never equals a text value, so
two names never share a record).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path, PurePath

__all__ = ["Seen"]


def _key(rel: PurePath) -> str | bytes:
    raw = os.fsencode(rel)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


class Seen:
    """The record in ``state_dir / 'leave.sqlite'``, opened on first use."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "leave.sqlite"
        self._db: sqlite3.Connection | None = None

    def open(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen (job TEXT, rel TEXT, size INTEGER, mtime_ns INTEGER, "
                "PRIMARY KEY (job, rel))"
            )
        return self._db

    def __contains__(self, item: tuple[str, PurePath, tuple[int, int]]) -> bool:
        job, rel, key = item
        row = self.open().execute("SELECT size, mtime_ns FROM seen WHERE job=? AND rel=?", (job, _key(rel))).fetchone()
        return row is not None and tuple(row) == tuple(key)

    def add(self, job: str, rel: PurePath, key: tuple[int, int]) -> None:
        db = self.open()
        with db:
            db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?)", (job, _key(rel), *key))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
