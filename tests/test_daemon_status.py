"""The status stage and the after: leave record, on real folders."""

from __future__ import annotations

import json
import os
from pathlib import PurePath

from knockout.daemon.seen import Seen
from knockout.daemon.status import Status
from stage_util import stage_config


def test_status_json_holds_each_jobs_counts(tmp_path):
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    status = Status()
    status.processed(job)
    status.failed(job, "a.jpg: not an image")
    status.write(cfg, running=True, executor="test", queued=lambda j: 3, in_flight=lambda j: 1)
    got = json.loads((cfg.state_dir / "status.json").read_text())
    assert got["running"] and got["executor"] == "test"
    assert got["jobs"]["main"] == {
        "inbox": str(job.inbox),
        "outbox": str(job.outbox),
        "queued": 3,
        "in_flight": 1,
        "processed": 1,
        "failed": 1,
        "skipped": 0,
        "review": 0,
        "ignored": 0,
        "last_error": "a.jpg: not an image",
    }


def test_the_leave_record_keeps_any_name_apart(tmp_path):
    seen = Seen(tmp_path)
    odd = PurePath(os.fsdecode(b"caf\xe9.jpg"))  # not UTF-8
    seen.add("main", odd, (1, 2))
    seen.add("main", PurePath("café.jpg"), (3, 4))
    assert ("main", odd, (1, 2)) in seen and ("main", PurePath("café.jpg"), (3, 4)) in seen
    assert ("main", odd, (3, 4)) not in seen and ("other", odd, (1, 2)) not in seen
    seen.close()
    assert ("main", odd, (1, 2)) in Seen(tmp_path)  # on disk, for the next start
