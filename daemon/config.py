"""The daemon's configuration: ``config.yaml`` read, validated and resolved before anything starts.

Every problem raises :class:`ConfigError` (a :class:`~knockout.settings.SettingsError`, so the
command line exits with status 2) whose message names the file, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from knockout.fsutil import file_in_the_way
from knockout.settings import Settings, SettingsError, parse_bool, parse_choice, parse_number

from .executor import ExecutorConfig, parse_executor

__all__ = ["Config", "ConfigError", "Job", "find_config", "load_config", "resolve_path"]

OBSERVERS = ("auto", "native", "polling")
AFTER = ("move", "delete", "leave")
COLLISION = ("suffix", "overwrite", "skip")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
TOP_KEYS = (
    "settle",
    "rescan",
    "observer",
    "poll_interval",
    "workers",
    "executor",
    "retries",
    "retry_backoff",
    "claim_timeout",
    "shutdown_timeout",
    "time_limit",
    "log_level",
    "log_format",
    "state_dir",
    "settings",
    "jobs",
)
JOB_KEYS = (
    "name",
    "inbox",
    "outbox",
    "processed",
    "failed",
    "review",
    "after",
    "collision",
    "recursive",
    "settings",
)
DEFAULT_CONFIG = "default-config.yaml"  # packaged copy of the repository's config.yaml


class ConfigError(SettingsError):
    """The config file is unreadable or invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Job:
    """One watched inbox and what happens to its files."""

    name: str
    inbox: Path
    outbox: Path
    processed: Path
    failed: Path
    after: str = "move"
    collision: str = "suffix"
    recursive: bool = True
    settings: Settings = field(default_factory=Settings)
    review: Path | None = None  # flagged cut-outs (confidence below settings.review_below); None: the outbox

    def folders(self) -> tuple[Path, ...]:
        """The folders the daemon writes or moves into: outbox, processed, failed and review (if any)."""
        return (self.outbox, self.processed, self.failed, *((self.review,) if self.review else ()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inbox": str(self.inbox),
            "outbox": str(self.outbox),
            "processed": str(self.processed),
            "failed": str(self.failed),
            "review": None if self.review is None else str(self.review),
            "after": self.after,
            "collision": self.collision,
            "recursive": self.recursive,
            "settings": self.settings.to_dict(),
        }


@dataclass(frozen=True)
class Config:
    """A validated config with absolute paths."""

    source: str
    jobs: tuple[Job, ...]
    settle: float = 1.0
    rescan: float = 30.0
    observer: str = "auto"
    poll_interval: float = 2.0
    executor: ExecutorConfig = field(default_factory=lambda: ExecutorConfig(workers=1))
    retries: int = 5
    retry_backoff: float = 2.0
    claim_timeout: float = 300.0
    shutdown_timeout: float = 30.0
    log_level: str = "info"
    log_format: str = "text"
    state_dir: Path = Path(".knockout")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"config": self.source}
        for key in TOP_KEYS:
            if key in ("workers", "executor"):
                d.update(self.executor.to_dict())
            elif key == "time_limit":
                d[key] = self.executor.time_limit
            elif key == "state_dir":
                d[key] = str(self.state_dir)
            elif key == "jobs":
                d[key] = [j.to_dict() for j in self.jobs]
            elif key != "settings":
                d[key] = getattr(self, key)
        return d


def find_config(explicit: str | os.PathLike | None) -> tuple[str, Path, Path]:
    """Which config file to use: ``(text, base folder, name for messages)``.

    ``explicit`` (``-c``) if given; else ``./config.yaml`` if the current folder has one; else
    the packaged default, whose relative paths then resolve against the current folder.
    """
    if explicit is not None:
        p = Path(explicit).expanduser()
        return _read_config(p), p.resolve().parent, p
    here = Path("config.yaml")
    if here.is_file():
        return _read_config(here), Path.cwd(), here
    text = resources.files(__package__).joinpath(DEFAULT_CONFIG).read_text(encoding="utf-8")
    return text, Path.cwd(), Path("<default config.yaml>")


def _read_config(path: Path) -> str:
    """The config file's text; a :class:`ConfigError` naming it when it cannot be read or is not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start]
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{bad:02x} at offset {exc.start}); save the file as UTF-8"
        ) from None


def load_config(explicit: str | os.PathLike | None = None, *, dask: str | None = None) -> Config:
    """Find, read and validate the config (see :func:`find_config`).

    Parameters
    ----------
    explicit : path, optional
        The ``-c`` option.
    dask : str, optional
        ``--dask ADDRESS``: the scheduler to use, overriding ``executor: local`` or the config's
        ``executor.dask`` (its ``max_in_flight`` and ``on_scheduler_loss`` still apply).

    Raises
    ------
    ConfigError
        Naming the file, the key and what is allowed.
    """
    text, base, name = find_config(explicit)
    return parse_config(text, base=base, name=str(name), dask=dask)


def parse_config(text: str, *, base: Path, name: str, dask: str | None = None) -> Config:
    """Validate config text; relative paths resolve against ``base``.

    Every problem is found before any is reported: the :class:`ConfigError` has one line per
    problem, each naming the file, the key and (when the file has it) its line.
    """
    try:
        raw = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {' '.join(str(exc).split())}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: the top level must be a mapping of keys ({', '.join(TOP_KEYS)})")
    errs = _Problems(name, lines)
    errs.unknown(raw, TOP_KEYS, ())
    executor_raw = raw.get("executor")
    if dask:  # --dask ADDRESS: the config's other executor keys (max_in_flight, ...) still apply
        executor_raw = {**executor_raw, "dask": dask} if isinstance(executor_raw, Mapping) else {"dask": dask}
    executor = errs.check(("executor",), parse_executor, raw.get("workers", "auto"), executor_raw, where=name)
    top: dict[str, Any] = {}
    for key, (default, lo, hi, integer) in NUMBERS.items():
        top[key] = errs.check((key,), parse_number, key, raw.get(key, default), lo, hi, integer=integer, terse=True)
    for key, (default, allowed) in CHOICES.items():
        top[key] = errs.check((key,), parse_choice, key, raw.get(key, default), allowed)
    state_dir = errs.check(("state_dir",), resolve_path, raw.get("state_dir", ".knockout"), base, name, "state_dir")
    shared = raw.get("settings") or {}
    if not isinstance(shared, Mapping):
        errs.add(("settings",), "settings: must be a mapping of setting names to values")
        shared = {}
    base_settings = errs.settings(("settings",), shared, f"{name}: settings")
    jobs_raw = raw.get("jobs")
    if not isinstance(jobs_raw, list) or not jobs_raw:
        errs.add(
            ("jobs",),
            "jobs: a list of one or more jobs is required, each a mapping with inbox and outbox "
            "(for example: jobs: [{inbox: inbox, outbox: outbox}])",
        )
        jobs_raw = []
    jobs = tuple(_job(j, i, base, base_settings or Settings(), errs) for i, j in enumerate(jobs_raw))
    errs.raise_any()
    errs.check((), _check_folders, jobs, name, state_dir)
    errs.raise_any()
    executor = dataclasses.replace(executor, time_limit=top.pop("time_limit"))
    return Config(source=name, jobs=jobs, executor=executor, state_dir=state_dir, **top)


NUMBERS = {  # key: (default, lowest, highest, integer)
    "settle": (1.0, 0.0, 3600.0, False),
    "rescan": (30.0, 0.0, 86400.0, False),
    "poll_interval": (2.0, 0.05, 3600.0, False),
    "retries": (5, 0, 100, True),
    "retry_backoff": (2.0, 0.0, 3600.0, False),
    "claim_timeout": (300.0, 1.0, 86400.0 * 7, False),
    "shutdown_timeout": (30.0, 0.0, 86400.0, False),
    "time_limit": (300.0, 0.0, 86400.0, False),
}
CHOICES = {"observer": ("auto", OBSERVERS), "log_level": ("info", LOG_LEVELS), "log_format": ("text", LOG_FORMATS)}


def _key_lines(node: Any, path: tuple = (), out: dict | None = None, seen: set | None = None) -> dict[tuple, int]:
    """The 1-based line of every key (``('jobs', 0, 'settings', 'feather')``) in a composed YAML document.

    A node reached again through an alias is walked once: an alias inside its own anchor
    (``jobs: &j [{settings: *j}]``) and nested aliases (a "billion laughs") cost no more than the text.
    """
    out = {} if out is None else out
    seen = set() if seen is None else seen
    if id(node) in seen:
        return out
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = (*path, k.value)
            out[key] = k.start_mark.line + 1
            _key_lines(v, key, out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[(*path, i)] = v.start_mark.line + 1
            _key_lines(v, (*path, i), out, seen)
    return out


class _Problems:
    """Every problem of one config file, each with its key's line; raised together."""

    def __init__(self, name: str, lines: dict[tuple, int]) -> None:
        self.name = name
        self.lines = lines
        self.found: list[str] = []

    def add(self, path: tuple, message: str) -> None:
        for n in range(len(path), 0, -1):  # the key's own line, else its nearest parent's
            if path[:n] in self.lines:
                message = f"{message} (line {self.lines[path[:n]]})"
                break
        prefix = f"{self.name}: "
        self.found.append(message if message.startswith(prefix) else prefix + message)

    def check(self, path: tuple, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SettingsError as exc:
            for line in str(exc).splitlines():
                self.add(path, line)
            return None

    def settings(self, path: tuple, values: Mapping, where: str) -> Settings | None:
        try:
            return Settings.from_mapping(values, where=where)
        except SettingsError as exc:
            prefix = f"{where}: "
            for key, msg in exc.problems:
                self.add((*path, key) if key else path, prefix + msg)
            return None

    def unknown(self, d: Mapping, known: tuple[str, ...], path: tuple, where: str = "") -> None:
        for key in d:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                also = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.add((*path, key), f"{where}unknown key '{key}'{also}; known keys: {', '.join(known)}")

    def raise_any(self) -> None:
        if self.found:
            raise ConfigError("\n".join(self.found))


def resolve_path(v: Any, base: Path, name: str, key: str) -> Path:
    """A folder value of the config file (``~`` and ``$VARS`` expanded) made absolute against ``base``."""
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{name}: {key}: {v!r} is not a folder path; use a path such as 'inbox' or '/srv/inbox'")
    p = Path(os.path.expandvars(v)).expanduser()
    return Path(os.path.abspath(base / p))


def _job(raw: Any, i: int, base: Path, shared: Settings, errs: _Problems) -> Job | None:
    where, path, name = f"jobs[{i}].", ("jobs", i), errs.name
    if not isinstance(raw, Mapping):
        errs.add(path, f"jobs[{i}]: must be a mapping with at least inbox and outbox")
        return None
    errs.unknown(raw, JOB_KEYS, path, f"jobs[{i}]: ")
    for key in ("inbox", "outbox"):
        if key not in raw:
            errs.add(path, f"{where}{key}: missing; every job needs an inbox and an outbox folder")
    paths = {
        k: errs.check((*path, k), resolve_path, raw.get(k, k), base, name, where + k)
        for k in ("inbox", "outbox", "processed", "failed")
    }
    review_raw = raw.get("review", "review")
    review = (
        None
        if review_raw is None
        else errs.check((*path, "review"), resolve_path, review_raw, base, name, where + "review")
    )
    job_name = raw.get("name", Path(str(raw.get("inbox", ""))).name or f"job{i}")
    if not isinstance(job_name, str) or not job_name.strip():
        errs.add((*path, "name"), f"{where}name: {job_name!r} is not allowed; use a short text")
        job_name = f"job{i}"
    recursive = errs.check((*path, "recursive"), parse_bool, f"{where}recursive", raw.get("recursive", True))
    after = errs.check((*path, "after"), parse_choice, f"{where}after", raw.get("after", "move"), AFTER)
    collision = errs.check(
        (*path, "collision"), parse_choice, f"{where}collision", raw.get("collision", "suffix"), COLLISION
    )
    own = raw.get("settings") or {}
    if not isinstance(own, Mapping):
        errs.add((*path, "settings"), f"{where}settings: must be a mapping of setting names to values")
        own = {}
    values = shared.to_dict()
    values.update(own)
    settings = errs.settings((*path, "settings"), values, f"{name}: {where}settings (job '{job_name}')")
    if errs.found:
        return None
    return Job(
        name=job_name.strip(),
        after=after,
        collision=collision,
        recursive=recursive,
        settings=settings,
        review=review,
        **paths,
    )


def _inside(a: Path, b: Path) -> bool:
    """``a`` is ``b`` or inside it (through symbolic links too: the same folder under two names)."""
    a, b = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    return a == b or b in a.parents


def _check_folders(jobs: tuple[Job, ...], name: str, state_dir: Path) -> None:
    names: set[str] = set()
    folders = [("state_dir", state_dir)]
    for i, job in enumerate(jobs):
        folders += [
            (f"jobs[{i}].{key}", getattr(job, key)) for key in ("inbox", "outbox", "processed", "failed", "review")
        ]
    for key, folder in folders:
        in_the_way = folder is not None and file_in_the_way(folder)
        if in_the_way:
            raise ConfigError(f"{name}: {key}: {in_the_way[0]} is {in_the_way[1]}, not a folder; name a folder there")
    for i, job in enumerate(jobs):
        # whoever writes to the inbox could put a link in its place: by name too, a link there already
        # (both are absolute already: resolve_path)
        if _inside(state_dir, job.inbox) or job.inbox in (state_dir, *state_dir.parents):
            raise ConfigError(
                f"{name}: state_dir: {state_dir} is inside jobs[{i}].inbox {job.inbox}; "
                "the daemon's records must be outside every inbox"
            )
        if job.name in names:
            raise ConfigError(f"{name}: jobs[{i}].name: '{job.name}' is used by two jobs; give each job its own name")
        names.add(job.name)
        for key in ("outbox", "processed", "failed", "review"):
            other = getattr(job, key)
            if other is None:
                continue
            if _inside(other, job.inbox) or _inside(job.inbox, other):
                raise ConfigError(
                    f"{name}: jobs[{i}].{key}: {other} overlaps the job's inbox {job.inbox}; "
                    f"the {key} folder must be outside the inbox (and the inbox outside it)"
                )
        for j, other_job in enumerate(jobs[:i]):
            if _inside(job.inbox, other_job.inbox) or _inside(other_job.inbox, job.inbox):
                raise ConfigError(
                    f"{name}: jobs[{i}].inbox: {job.inbox} is shared with jobs[{j}].inbox {other_job.inbox}; "
                    "two jobs cannot watch the same folder (or one inside the other)"
                )
        for j, other_job in enumerate(jobs):
            if j == i:
                continue
            for key in ("outbox", "processed", "failed", "review"):
                if getattr(other_job, key) is not None and _inside(getattr(other_job, key), job.inbox):
                    raise ConfigError(
                        f"{name}: jobs[{j}].{key}: {getattr(other_job, key)} is inside jobs[{i}].inbox "
                        f"{job.inbox}; its files would be processed again"
                    )
