"""Helpers for the daemon's stage tests: a validated config on a temporary folder, a claimed work."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import yaml
from knockout.daemon.claiming import Claimer
from knockout.daemon.config import Config, parse_config
from knockout.daemon.records import Work


def stage_config(root: Path, **job: object) -> Config:
    text = yaml.safe_dump(
        {
            "settle": 0.5,
            "retries": 2,
            "retry_backoff": 0.1,
            "state_dir": ".state",
            "settings": {"method": "threshold"},
            "jobs": [{"name": "main", "inbox": "inbox", "outbox": "outbox", **job}],
        }
    )
    cfg = parse_config(text, base=root, name="stage.yaml")
    for j in cfg.jobs:
        for folder in (j.inbox, j.outbox, j.processed, j.failed):
            folder.mkdir(parents=True, exist_ok=True)
    cfg.state_dir.mkdir(exist_ok=True)
    return cfg


def claimed(cfg: Config, claimer: Claimer, name: str, data: bytes | None) -> Work:
    """``data`` written to the inbox as ``name`` (None: the file there), then claimed and read by ``claimer``."""
    job = cfg.jobs[0]
    path = job.inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        path.write_bytes(data)
    else:
        data = path.read_bytes()
    claimer.start(job)
    work = claimer.claim(_candidate(job, path), os.lstat(path))
    assert work is not None
    work, read = claimer.read(work)
    assert read == data
    return work


def _candidate(job, path):
    from knockout.daemon.records import Candidate

    return Candidate(job=job, path=path, rel=PurePath(path.relative_to(job.inbox)), seen=0.0)
