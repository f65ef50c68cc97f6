"""``knockout watch`` and ``knockout status``: the daemon behind the command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from knockout._text import printable

__all__ = ["register"]

log = logging.getLogger(__name__)

WATCH_EPILOG = """\
which config file:
  -c FILE if given; else ./config.yaml if the current folder has one; else the packaged
  default (inbox/, outbox/, processed/, failed/ in the current folder). Relative paths in a
  config file resolve against the folder of that file.

signals:
  SIGTERM, SIGINT  finish the files in flight (up to shutdown_timeout), then exit 0
  SIGHUP           reload the config; an invalid new config is reported and the old one kept

examples:
  knockout watch                       run on ./config.yaml (or the default)
  knockout watch -c studio.yaml --check
  knockout watch --once                process what is there now, exit 1 if any failed
  knockout watch --dask tcp://scheduler:8786
"""


def register(sub: argparse._SubParsersAction) -> None:
    from knockout.cli import common_options

    p = sub.add_parser(
        "watch",
        parents=[common_options()],
        help="run the watch-folder daemon (inbox -> outbox)",
        description="Watch inbox folders and write cut-outs to outbox folders, unattended: files are "
        "processed once they are complete, outputs appear atomically, inputs move to processed/ or "
        "failed/ (with NAME.error.txt).",
        epilog=WATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", metavar="FILE", help="config file (default: ./config.yaml or the packaged one)")
    p.add_argument("--check", action="store_true", help="validate the config, print it resolved, exit")
    p.add_argument("--once", action="store_true", help="process what the inboxes hold now, then exit")
    p.add_argument("--dask", metavar="ADDRESS", help="send the image work to a Dask scheduler (tcp://host:8786)")
    p.set_defaults(func=run_watch)

    s = sub.add_parser(
        "status",
        parents=[common_options()],
        help="is the daemon running; queue, processed and failed counts per job",
        description="Read the status file the daemon keeps in its state_dir. Exit 0 if it is running, 1 if not.",
    )
    s.add_argument("-c", "--config", metavar="FILE", help="config file (same rule as knockout watch)")
    s.add_argument("--json", action="store_true", help="print the status file as JSON (the journal's under 'journal')")
    s.add_argument(
        "--since",
        metavar="AGE",
        help="limit the journal's figures and failures to the last AGE (30m, 1h, 2d); default: all time",
    )
    s.add_argument("--failures", type=int, default=5, metavar="N", help="how many of the last failures (default 5)")
    s.set_defaults(func=run_status)

    r = sub.add_parser(
        "report",
        parents=[common_options()],
        help="write a static HTML review page of the daemon's journal or of knockout cut --report files",
        description="One self-contained HTML file (thumbnails embedded, no server, no network): each input\n"
        "beside its cut-out on a checkerboard and on a colour, failures with their reasons, cut-outs by\n"
        "confidence (lowest first), filters by job and day. Without BATCH: the daemon's journal.",
        epilog="examples:\n  knockout report -c config.yaml -o review.html --since 2d\n"
        "  knockout cut shoot/ -o cutouts/ --report shoot.csv && knockout report shoot.csv -o shoot.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "batch", nargs="*", metavar="BATCH", help="batch reports (.csv or .jsonl) written by knockout cut --report"
    )
    r.add_argument("-c", "--config", metavar="FILE", help="config file (same rule as knockout watch)")
    r.add_argument("-o", "--output", metavar="FILE", default="knockout-review.html", help="the page to write")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the -o file even if it is not a review page this command wrote (those it replaces anyway)",
    )
    r.add_argument("--since", metavar="AGE", help="only the last AGE (30m, 1h, 2d)")
    r.add_argument(
        "--background",
        metavar="COLOUR",
        default="white",
        help="the colour each cut-out is also shown on: a name (white), '#fff' or '#rrggbb' (default white; "
        "the page has a control to change it)",
    )
    r.set_defaults(func=run_report)


class _JsonFormatter(logging.Formatter):
    KEYS = ("event", "job", "input", "output", "method", "milliseconds", "latency_ms", "confidence", "review", "reason")

    def format(self, record: logging.LogRecord) -> str:
        d: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        for k in self.KEYS:
            if hasattr(record, k):
                d[k] = getattr(record, k)
        if record.exc_info:
            d["traceback"] = self.formatException(record.exc_info)
        return printable(json.dumps(d, ensure_ascii=False), escape_controls=False)


class _TextFormatter(logging.Formatter):
    """The CLI's text format, with the message escaped: a file name cannot forge a log line."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "msg": printable(record.getMessage()), "args": None})
        return printable(self.inner.format(record), escape_controls=False)


_TEXT_FORMATTERS: dict[int, logging.Formatter | None] = {}


def _configure_logging(args: argparse.Namespace, level: str, fmt: str) -> None:
    """The config's log level (unless -v / -q / --debug was given) and format; again on SIGHUP."""
    root = logging.getLogger()
    if not (args.verbose or args.quiet or args.debug):
        root.setLevel(getattr(logging, level.upper()))
    if not args.debug:  # watchdog logs every inotify event at debug level
        logging.getLogger("watchdog").setLevel(logging.INFO)
    logging.captureWarnings(True)  # a library's warning: one escaped log line, not two raw ones on stderr
    for h in root.handlers:
        text = _TEXT_FORMATTERS.setdefault(id(h), h.formatter)
        h.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter(text))


def run_watch(args: argparse.Namespace) -> int:
    import yaml

    from .config import load_config
    from .service import Daemon, reloader

    cfg = load_config(args.config, dask=args.dask)
    if args.check:
        print(f"# {cfg.source}: valid")
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True), end="")
        return 0
    _configure_logging(args, cfg.log_level, cfg.log_format)
    return Daemon(
        cfg,
        reload=reloader(args.config, args.dask),
        once=args.once,
        on_config=lambda new: _configure_logging(args, new.log_level, new.log_format),
    ).run()


def _state_dir(explicit: str | None) -> Path:
    """The config's state_dir, read even from a config that is otherwise invalid."""
    import yaml

    from .config import ConfigError, find_config, load_config, resolve_path

    try:
        return load_config(explicit).state_dir
    except ConfigError as exc:  # e.g. edited, then rejected by SIGHUP: the daemon still runs on the old one
        try:
            text, base, name = find_config(explicit)
        except ConfigError:  # gone or unreadable: the default state_dir beside where it was
            base, name, text = Path(str(explicit)).expanduser().resolve().parent, str(explicit), ""
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError:  # not YAML any more: its top-level state_dir line, if it has a readable one
            line = re.search(r"^state_dir:.*$", text, flags=re.M)
            try:
                raw = yaml.safe_load(line.group(0)) if line else None
            except yaml.YAMLError:
                raw = None
        state_dir = raw.get("state_dir", ".knockout") if isinstance(raw, dict) else ".knockout"
        try:
            folder = resolve_path(state_dir, base, name, "state_dir")
        except ConfigError:
            raise exc from None
        print(f"knockout: warning: {exc}; reading the status in {folder}", file=sys.stderr)
        return folder


def _unwritable(state_dir: Path) -> str | None:
    """Why a daemon could not write its status in ``state_dir`` (None: it can, or it does not exist yet)."""
    import errno
    import tempfile

    try:
        st = os.lstat(state_dir)
    except FileNotFoundError:
        parent = next((p for p in state_dir.parents if os.path.lexists(p)), None)
        if parent is not None and not parent.is_dir():
            return f"state_dir {state_dir} cannot be made: {parent} is not a folder"
        return None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            return f"state_dir {state_dir} cannot be made: a part of its path is not a folder"
        return f"state_dir {state_dir} cannot be looked at: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return f"state_dir {state_dir} is not a folder"
    try:  # a real attempt: as root, permission bits say nothing, a read-only mount does
        fd, probe = tempfile.mkstemp(prefix=".knockout-status-probe-", dir=state_dir)
    except OSError as exc:
        return f"state_dir {state_dir} is not writable ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return None


def _journal_summary(state_dir: Path, since: float | None, last: int) -> dict[str, Any]:
    """Counts per job and event from the journal (after ``since``), and the last ``last`` failures."""
    from collections import Counter, deque

    from . import journal

    counts: dict[str, Counter] = {}
    failures: deque = deque(maxlen=max(last, 0))
    for rec in journal.read(state_dir, since=since):
        c = counts.setdefault(str(rec.get("job")), Counter())
        c[rec.get("event", "?")] += 1
        c["review"] += bool(rec.get("review"))
        if rec.get("event") == "failed":
            failures.append({k: rec.get(k) for k in ("time", "job", "input", "reason")})
    return {"since": since, "jobs": {k: dict(v) for k, v in counts.items()}, "failures": list(failures)}


def _figures(c: dict[str, int]) -> str:
    return (
        f"{c.get('processed', 0)} processed, {c.get('failed', 0)} failed, "
        f"{c.get('review', 0)} to review, {c.get('skipped', 0)} skipped"
    )


def _since(text: str | None) -> float | None:
    """``--since AGE`` as a POSIX time (None without it); a bad AGE is a usage error (exit 2)."""
    from knockout.settings import SettingsError

    from . import journal

    if text is None:
        return None
    try:
        return time.time() - journal.parse_since(text)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def run_status(args: argparse.Namespace) -> int:
    from .files import HOST, pid_alive

    since = _since(args.since)
    state_dir = _state_dir(args.config)
    path = state_dir / "status.json"
    problem = _unwritable(state_dir)
    if problem:  # a daemon using it runs blind: "not running" alone would be a guess
        print(f"knockout: warning: {problem}; a daemon using it cannot update {path}", file=sys.stderr)
    summary = _journal_summary(state_dir, since, args.failures)
    try:
        st = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        if problem:
            print(f"unknown: no status file at {path}, and {problem} (a daemon may be running: see its log)")
        else:
            print(f"not running: no status file at {path} (the daemon has not run with this config)")
        if summary["jobs"]:
            _print_journal(summary, args.since, state_dir)
        return 1
    except (OSError, ValueError) as exc:
        print(f"knockout: error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    why = _not_a_status(st)
    if why:
        print(f"knockout: error: {path}: not a knockout status file ({why})", file=sys.stderr)
        return 2
    age = time.time() - st.get("updated", 0)
    alive = st.get("running") and age < 30 and (st.get("host") != HOST or pid_alive(int(st.get("pid", 0))))
    if args.json:
        print(json.dumps({**st, "running": bool(alive), "journal": summary}, indent=1))
        return 0 if alive else 1
    if alive:
        print(f"running: pid {st['pid']} on {st['host']}, {st.get('executor')}, config {st.get('config')}")
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.get("updated", 0)))
        head = f"unknown: {problem}; " if problem else "not running "
        print(f"{head}(last seen {when}, pid {st.get('pid')} on {st.get('host')})")
    for name, j in st.get("jobs", {}).items():
        print(
            f"  {name}: {j['queued']} queued, {j['in_flight']} in flight, {j['processed']} processed, "
            f"{j['failed']} failed, {j.get('review', 0)} to review, {j.get('skipped', 0)} skipped, "
            f"{j.get('ignored', 0)} ignored  "
            f"({j['inbox']} -> {j['outbox']})"
        )
        if j.get("last_error"):
            print(printable(f"    last error: {j['last_error']}"))  # it names a file: no terminal control codes
    jobs = st.get("jobs", {}).values()
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.get("started", 0)))
    print(f"since start ({started}): {_figures({k: sum(j.get(k, 0) for j in jobs) for k in _KEYS})}")
    _print_journal(summary, args.since, state_dir)
    return 0 if alive else 1


_KEYS = ("processed", "failed", "review", "skipped")
_JOB_COUNTS = ("queued", "in_flight", "processed", "failed")


def _not_a_status(st: Any) -> str | None:
    """What in a parsed status.json is not as :class:`~knockout.daemon.status.Status` writes it, or None."""

    def time_ok(x: Any) -> bool:  # a number localtime() can take
        return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 2**33

    if not isinstance(st, dict):
        return "not a JSON object"
    for key, ok in (
        ("running", lambda x: isinstance(x, bool)),
        ("pid", lambda x: isinstance(x, int) and not isinstance(x, bool)),
        ("host", lambda x: isinstance(x, str)),
        ("updated", time_ok),
        ("started", time_ok),
        ("jobs", lambda x: isinstance(x, dict)),
    ):
        if key not in st or not ok(st[key]):
            return f"'{key}' missing or of the wrong type"
    for name, job in st["jobs"].items():
        if not isinstance(job, dict) or not all(isinstance(job.get(k), str) for k in ("inbox", "outbox")):
            return f"job '{name}' has no inbox and outbox"
        if not all(isinstance(job.get(k), int) for k in _JOB_COUNTS) or not all(
            isinstance(job.get(k, 0), int) for k in ("skipped", "review", "ignored")
        ):
            return f"job '{name}' has no counts"
    return None


def _print_journal(summary: dict[str, Any], since: str | None, state_dir: Path) -> None:
    per_job = summary["jobs"]
    total = {k: sum(c.get(k, 0) for c in per_job.values()) for k in _KEYS}
    where = f"last {since}" if since else "all time"
    print(f"{where} (journal in {state_dir}): {_figures(total)}")
    if len(per_job) > 1:
        for name, c in sorted(per_job.items()):
            print(f"  {name}: {_figures(c)}")
    if summary["failures"]:
        print("last failures:")
        for f in summary["failures"]:
            print(printable(f"  {f['time']} {f['job']}: {f['input']}: {f['reason']}"))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_page_name(page: Path, batch: list[Path], *, overwrite: bool, ours: Callable[[Path], bool]) -> None:
    """Refuse a page name that is a batch report, a folder, or (without --overwrite) a file not ours."""
    from knockout.settings import SettingsError

    if not os.path.lexists(page):
        return
    if any(_same_file(b, page) for b in batch):
        raise SettingsError(f"{page}: is one of the batch reports; write the page to another -o name")
    if page.is_dir():
        raise SettingsError(f"{page}: is a folder; give the page a file name (for example review.html)")
    if not overwrite and not ours(page):
        raise SettingsError(
            f"{page} exists and is not a knockout review page; use --overwrite to replace it, or another -o name"
        )


def run_report(args: argparse.Namespace) -> int:
    from datetime import datetime

    from knockout.report import read_report
    from knockout.settings import SettingsError, _parse_color

    from . import journal
    from .review_page import is_review_page, write_page

    since = _since(args.since)
    background = _parse_color("--background", args.background)
    if args.batch and args.config:
        raise SettingsError("give batch reports or -c CONFIG (the daemon's journal), not both")
    _check_page_name(Path(args.output), [Path(b) for b in args.batch], overwrite=args.overwrite, ours=is_review_page)
    if not args.batch:
        state_dir = _state_dir(args.config)
        if not journal.exists(state_dir):
            print(
                f"knockout: error: {state_dir / journal.NAME}: no journal (the daemon has not run with this "
                "config); give -c CONFIG, or batch reports of knockout cut --report",
                file=sys.stderr,
            )
            return 1
        records = list(journal.read(state_dir, since=since))
        title = "knockout review"
    else:
        records = []
        for name in args.batch:
            try:
                rows = read_report(Path(name))
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(f"{name}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
            for rec in rows:  # a batch without a --job is filed under the report's name
                rec["job"] = rec["job"] or Path(name).stem
            records += rows
        if since is not None:
            records = [x for x in records if "time" in x and datetime.fromisoformat(x["time"]).timestamp() >= since]
        title = "knockout review: " + ", ".join(Path(n).name for n in args.batch)
    try:
        counts = write_page(records, Path(args.output), title=title, background=background)
    except OSError as exc:
        raise SettingsError(f"{args.output}: cannot write the page ({exc.strerror or exc})") from None
    print(f"{args.output}: {counts['processed']} processed, {counts['failed']} failed")
    return 0
