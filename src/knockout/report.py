"""One row per input of a batch: what was made of it and how sure knockout is (``knockout cut --report``)."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

__all__ = ["COLUMNS", "BatchReport", "is_report", "read_report", "suffix_problem"]

#: a row's keys, in the CSV's column order; ``time`` (UTC, ISO 8601) is when the input was done and
#: ``job`` the config.yaml job whose settings were used (``--job``), if any
COLUMNS = ("input", "output", "method", "tolerance", "confidence", "review", "reasons", "ms", "error", "job", "time")


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
        why = suffix_problem(path)
        if why:
            raise ValueError(why)
        suffix = path.suffix.lower()
        self.path = path
        self._fh: IO[str] = open(path, "w", encoding="utf-8", newline="")  # closed by close()
        self._csv = csv.DictWriter(self._fh, fieldnames=COLUMNS) if suffix == ".csv" else None
        if self._csv is not None:
            self._csv.writeheader()

    def add(self, **row: Any) -> None:
        """Write one row; ``reasons`` (a sequence of words) is joined with spaces in CSV; ``time`` is now."""
        full = {k: row.get(k) for k in COLUMNS}
        full["time"] = full["time"] or datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        if self._csv is not None:
            full["reasons"] = " ".join(full["reasons"] or ())
            self._csv.writerow({k: "" if v is None else v for k, v in full.items()})
        else:
            full["reasons"] = list(full["reasons"] or ())
            self._fh.write(json.dumps(full, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def suffix_problem(path: Path) -> str | None:
    """Why ``path`` cannot name a report (its suffix is neither ``.csv`` nor ``.jsonl``), or None."""
    if path.suffix.lower() in (".csv", ".jsonl"):
        return None
    return f"{path}: a report is CSV (name it .csv) or JSON lines (.jsonl), not '{path.suffix}'"


def is_report(path: Path) -> bool:
    """Whether ``path`` is empty or starts as a report :class:`BatchReport` writes (so a rerun may replace it).

    A CSV's header is ``input`` and other :data:`COLUMNS` names; a JSON-lines file's first line an
    object with an ``input`` and only those keys. Anything else, or a file that cannot be read: False.
    """
    from .fsutil import NotRegular, open_regular

    try:
        fh, _st = open_regular(path)  # a FIFO there is never waited on, a link never followed
        with fh:
            first = fh.readline(4096).decode("utf-8").strip()
    except (OSError, NotRegular, UnicodeDecodeError):
        return False
    if not first:
        return True
    if path.suffix.lower() == ".csv":
        names = first.split(",")
        return names[0] == "input" and set(names) <= set(COLUMNS)
    try:
        row = json.loads(first)
    except ValueError:
        return False
    return isinstance(row, dict) and "input" in row and set(row) <= set(COLUMNS)


def read_report(path: Path) -> list[dict[str, Any]]:
    """The rows of a report :class:`BatchReport` wrote, as the daemon's journal records them.

    Parameters
    ----------
    path : Path
        A ``.csv`` or ``.jsonl`` batch report.

    Returns
    -------
    list of dict
        One record per row: ``event`` (``processed``, or ``failed`` with its ``reason``), ``input``,
        ``output``, ``method``, ``tolerance``, ``confidence`` (float or None), ``review`` (bool),
        ``reasons`` (list of str), ``ms``, ``job`` and ``time`` (absent in reports from before
        they were written). Relative paths are resolved against the current folder when they
        exist there, else against the report's folder.

    Raises
    ------
    ValueError
        When the file is not a batch report (the message names the file and says why).
    OSError
        When it cannot be read.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ValueError(f"{path}: not a batch report (knockout cut --report writes .csv or .jsonl)")
    with open(path, encoding="utf-8", newline="") as fh:
        if suffix == ".csv":
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "input" not in reader.fieldnames:
                raise ValueError(f"{path}: not a batch report (no 'input' column in its first line)")
            raw = [(i + 2, row) for i, row in enumerate(reader)]
        else:
            raw = []
            for i, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}: line {i} is not JSON ({exc.msg})") from None
                raw.append((i, row))
    records = []
    for line, row in raw:
        if not isinstance(row, dict) or not row.get("input"):
            raise ValueError(f"{path}: line {line} is not a batch report row (no input)")
        records.append(_record(row, path.parent, f"{path}: line {line}"))
    return records


def _record(row: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    def number(key: str) -> float | None:
        v = row.get(key)
        if v in (None, ""):
            return None
        try:
            return float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {key} {v!r} is not a number") from None

    reasons = row.get("reasons") or []
    rec: dict[str, Any] = {
        "event": "failed" if row.get("error") else "processed",
        "input": _resolved(str(row["input"]), base),
        "job": str(row.get("job") or ""),
        "method": row.get("method") or None,
        "tolerance": number("tolerance"),
        "confidence": number("confidence"),
        "review": row.get("review") in (True, "True", "true"),
        "reasons": reasons.split() if isinstance(reasons, str) else [str(r) for r in reasons],
        "ms": number("ms"),
    }
    if row.get("time"):
        try:
            datetime.fromisoformat(str(row["time"]))
        except ValueError:
            raise ValueError(f"{where}: time {row['time']!r} is not an ISO 8601 time") from None
        rec["time"] = str(row["time"])
    if row.get("error"):
        rec["reason"] = str(row["error"])
    elif row.get("output"):
        rec["output"] = _resolved(str(row["output"]), base)
    return rec


def _resolved(name: str, base: Path) -> str:
    p = Path(name)
    if p.is_absolute() or name == "-":
        return name
    here = Path.cwd() / p
    return str(here if here.exists() or not (base / p).exists() else (base / p).resolve())
