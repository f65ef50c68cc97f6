"""The daemon's configuration: ``config.yaml`` read, validated and resolved before anything starts.

Every problem raises :class:`ConfigError` (a :class:`~knockout.settings.SettingsError`, so the
command line exits with status 2) whose message names the file, the key and what is allowed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from knockout.settings import Settings, SettingsError

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
    "log_level",
    "log_format",
    "state_dir",
    "settings",
    "jobs",
)
JOB_KEYS = ("name", "inbox", "outbox", "processed", "failed", "after", "collision", "recursive", "settings")
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inbox": str(self.inbox),
            "outbox": str(self.outbox),
            "processed": str(self.processed),
            "failed": str(self.failed),
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
        try:
            return p.read_text(encoding="utf-8"), p.resolve().parent, p
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the config file: {exc.strerror or exc}") from None
    here = Path("config.yaml")
    if here.is_file():
        return here.read_text(encoding="utf-8"), Path.cwd(), here
    text = resources.files(__package__).joinpath(DEFAULT_CONFIG).read_text(encoding="utf-8")
    return text, Path.cwd(), Path("<default config.yaml>")


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
    """Validate config text; relative paths resolve against ``base``."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {' '.join(str(exc).split())}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: the top level must be a mapping of keys ({', '.join(TOP_KEYS)})")
    _unknown(raw, TOP_KEYS, name, "")
    executor_raw = raw.get("executor")
    if dask:  # --dask ADDRESS: the config's other executor keys (max_in_flight, ...) still apply
        executor_raw = {**executor_raw, "dask": dask} if isinstance(executor_raw, Mapping) else {"dask": dask}
    executor = parse_executor(raw.get("workers", "auto"), executor_raw, where=name)
    top = {
        "settle": _num(raw, "settle", 1.0, 0.0, 3600.0, name=name),
        "rescan": _num(raw, "rescan", 30.0, 0.0, 86400.0, name=name),
        "observer": _choice(raw, "observer", "auto", OBSERVERS, name=name),
        "poll_interval": _num(raw, "poll_interval", 2.0, 0.05, 3600.0, name=name),
        "retries": int(_num(raw, "retries", 5, 0, 100, name=name, integer=True)),
        "retry_backoff": _num(raw, "retry_backoff", 2.0, 0.0, 3600.0, name=name),
        "claim_timeout": _num(raw, "claim_timeout", 300.0, 1.0, 86400.0 * 7, name=name),
        "shutdown_timeout": _num(raw, "shutdown_timeout", 30.0, 0.0, 86400.0, name=name),
        "log_level": _choice(raw, "log_level", "info", LOG_LEVELS, name=name),
        "log_format": _choice(raw, "log_format", "text", LOG_FORMATS, name=name),
    }
    state_dir = resolve_path(raw.get("state_dir", ".knockout"), base, name, "state_dir")
    shared = raw.get("settings") or {}
    if not isinstance(shared, Mapping):
        raise ConfigError(f"{name}: settings: must be a mapping of setting names to values")
    base_settings = Settings.from_mapping(shared, where=f"{name}: settings")
    jobs_raw = raw.get("jobs")
    if not isinstance(jobs_raw, list) or not jobs_raw:
        raise ConfigError(
            f"{name}: jobs: a list of one or more jobs is required, each a mapping with inbox and outbox "
            "(for example: jobs: [{inbox: inbox, outbox: outbox}])"
        )
    jobs = tuple(_job(j, i, base, base_settings, name) for i, j in enumerate(jobs_raw))
    _check_folders(jobs, name)
    return Config(source=name, jobs=jobs, executor=executor, state_dir=state_dir, **top)


def _unknown(d: Mapping, known: tuple[str, ...], name: str, where: str) -> None:
    for key in d:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            also = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"{name}: {where}unknown key '{key}'{also}; known keys: {', '.join(known)}")


def _num(d: Mapping, key: str, default: float, lo: float, hi: float, *, name: str, integer: bool = False) -> float:
    v = d.get(key, default)
    kind = "an integer" if integer else "a number"
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) or not lo <= v <= hi:
        raise ConfigError(f"{name}: {key}: {v!r} is not allowed; use {kind} from {lo:g} to {hi:g}")
    return v if integer else float(v)


def _choice(d: Mapping, key: str, default: str, allowed: tuple[str, ...], *, name: str, where: str = "") -> str:
    v = d.get(key, default)
    if not isinstance(v, str) or v.lower() not in allowed:
        raise ConfigError(f"{name}: {where}{key}: {v!r} is not allowed; use one of: {', '.join(allowed)}")
    return v.lower()


def resolve_path(v: Any, base: Path, name: str, key: str) -> Path:
    """A folder value of the config file (``~`` and ``$VARS`` expanded) made absolute against ``base``."""
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{name}: {key}: {v!r} is not a folder path; use a path such as 'inbox' or '/srv/inbox'")
    p = Path(os.path.expandvars(v)).expanduser()
    return Path(os.path.abspath(base / p))


def _job(raw: Any, i: int, base: Path, shared: Settings, name: str) -> Job:
    where = f"jobs[{i}]."
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: jobs[{i}]: must be a mapping with at least inbox and outbox")
    _unknown(raw, JOB_KEYS, name, where)
    for key in ("inbox", "outbox"):
        if key not in raw:
            raise ConfigError(f"{name}: {where}{key}: missing; every job needs an inbox and an outbox folder")
    paths = {k: resolve_path(raw.get(k, k), base, name, where + k) for k in ("inbox", "outbox", "processed", "failed")}
    job_name = raw.get("name", Path(str(raw["inbox"])).name or f"job{i}")
    if not isinstance(job_name, str) or not job_name.strip():
        raise ConfigError(f"{name}: {where}name: {job_name!r} is not allowed; use a short text")
    recursive = raw.get("recursive", True)
    if not isinstance(recursive, bool):
        raise ConfigError(f"{name}: {where}recursive: {recursive!r} is not allowed; use true or false")
    own = raw.get("settings") or {}
    if not isinstance(own, Mapping):
        raise ConfigError(f"{name}: {where}settings: must be a mapping of setting names to values")
    values = shared.to_dict()
    values.update(own)
    settings = Settings.from_mapping(values, where=f"{name}: {where}settings (job '{job_name}')")
    return Job(
        name=job_name.strip(),
        after=_choice(raw, "after", "move", AFTER, name=name, where=where),
        collision=_choice(raw, "collision", "suffix", COLLISION, name=name, where=where),
        recursive=recursive,
        settings=settings,
        **paths,
    )


def _inside(a: Path, b: Path) -> bool:
    """``a`` is ``b`` or inside it (through symbolic links too: the same folder under two names)."""
    a, b = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    return a == b or b in a.parents


def _check_folders(jobs: tuple[Job, ...], name: str) -> None:
    names: set[str] = set()
    for i, job in enumerate(jobs):
        if job.name in names:
            raise ConfigError(f"{name}: jobs[{i}].name: '{job.name}' is used by two jobs; give each job its own name")
        names.add(job.name)
        for key in ("outbox", "processed", "failed"):
            other = getattr(job, key)
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
            for key in ("outbox", "processed", "failed"):
                if _inside(getattr(other_job, key), job.inbox):
                    raise ConfigError(
                        f"{name}: jobs[{j}].{key}: {getattr(other_job, key)} is inside jobs[{i}].inbox "
                        f"{job.inbox}; its files would be processed again"
                    )
