"""One row per input of a batch: what was made of it and how sure knockout is (``knockout cut --report``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Any

__all__ = ["COLUMNS", "BatchReport"]

COLUMNS = ("input", "output", "method", "tolerance", "confidence", "review", "reasons", "ms", "error")


class BatchReport:
    """A CSV (``.csv``) or JSON-lines (``.jsonl``) file written one row per input as results come in.

    Parameters
    ----------
    path : Path
        Where to write; its suffix chooses the format.

    Raises
    ------
    ValueError
        When the suffix is neither ``.csv`` nor ``.jsonl`` (the message says so).
    OSError
        When the file cannot be created.
    """

    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".jsonl"):
            raise ValueError(f"{path}: a report is CSV (name it .csv) or JSON lines (.jsonl), not '{path.suffix}'")
        self.path = path
        self._fh: IO[str] = open(path, "w", encoding="utf-8", newline="")  # closed by close()
        self._csv = csv.DictWriter(self._fh, fieldnames=COLUMNS) if suffix == ".csv" else None
        if self._csv is not None:
            self._csv.writeheader()

    def add(self, **row: Any) -> None:
        """Write one row; ``reasons`` (a sequence of words) is joined with spaces in CSV."""
        full = {k: row.get(k) for k in COLUMNS}
        if self._csv is not None:
            full["reasons"] = " ".join(full["reasons"] or ())
            self._csv.writerow({k: "" if v is None else v for k, v in full.items()})
        else:
            full["reasons"] = list(full["reasons"] or ())
            self._fh.write(json.dumps(full, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
