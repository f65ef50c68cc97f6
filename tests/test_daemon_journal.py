"""The journal: one JSON line per filed input, rotated; read back by ``knockout status`` (real folders, real daemon)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from datetime import datetime, timedelta, timezone

import pytest
from daemon_util import DaemonProcess, image_bytes, knockout, wait_for, write_config
from knockout.daemon import journal
from knockout.daemon.claiming import Claimer
from knockout.daemon.filing import Filer
from knockout.daemon.journal import Journal, parse_since
from knockout.daemon.records import Outcome
from knockout.daemon.seen import Seen
from knockout.daemon.status import Status
from PIL import Image
from stage_util import claimed, stage_config

from knockout.process import process_bytes


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_records_are_json_lines_read_back_in_order(tmp_path):
    j = Journal(tmp_path)
    j.write("processed", job="main", input="in/a.jpg", output="out/a.png", confidence=None, ms=12.5)
    j.write("failed", job="main", input="in/b.jpg", reason="not an image")
    j.close()
    recs = _lines(tmp_path / "journal.jsonl")
    assert [r["event"] for r in recs] == ["processed", "failed"]
    assert "confidence" not in recs[0] and recs[0]["ms"] == 12.5 and recs[1]["reason"] == "not an image"
    assert datetime.fromisoformat(recs[0]["time"]).tzinfo is not None
    assert list(journal.read(tmp_path)) == recs


def test_rotation_keeps_a_few_files_and_reads_oldest_first(tmp_path):
    j = Journal(tmp_path, max_bytes=300, keep=2)
    for i in range(40):
        j.write("processed", job="main", input=f"in/{i:02}.jpg")
    j.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["journal.jsonl", "journal.jsonl.1", "journal.jsonl.2"]
    assert all(p.stat().st_size <= 300 for p in tmp_path.iterdir())
    got = [int(r["input"][3:5]) for r in journal.read(tmp_path)]
    assert got == list(range(40 - len(got), 40)) and 3 < len(got) < 40  # the newest kept, the oldest dropped


def test_a_link_planted_as_the_journal_is_not_written_through(tmp_path, caplog):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    state = tmp_path / "state"
    state.mkdir()
    (state / "journal.jsonl").symlink_to(target)
    j = Journal(state)
    with caplog.at_level(logging.ERROR):
        j.write("processed", job="main", input="a.jpg")
        j.write("processed", job="main", input="b.jpg")
    assert target.read_text() == "keep me"
    assert sum("cannot write the journal" in r.getMessage() for r in caplog.records) == 1  # said once


def test_a_torn_line_is_skipped_and_since_limits(tmp_path):
    old = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()
    new = datetime.now(timezone.utc).isoformat()
    (tmp_path / "journal.jsonl.1").write_text(json.dumps({"time": old, "event": "failed", "job": "a"}) + "\n")
    (tmp_path / "journal.jsonl").write_text(json.dumps({"time": new, "event": "processed", "job": "a"}) + '\n{"ti')
    assert [r["event"] for r in journal.read(tmp_path)] == ["failed", "processed"]
    since = datetime.now(timezone.utc).timestamp() - parse_since("1d")
    assert [r["event"] for r in journal.read(tmp_path, since=since)] == ["processed"]


def test_parse_since():
    assert [parse_since(x) for x in ("30m", "1h", "2d", "45s", "1.5h")] == [1800, 3600, 172800, 45, 5400]
    with pytest.raises(ValueError, match=r"e\.g\. 30m, 1h, 2d"):
        parse_since("yesterday")


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 200, 200)).save(buf, "JPEG")
    return buf.getvalue()


def test_the_filer_journals_every_filed_input(tmp_path):
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    claimer = Claimer("me")
    filer = Filer(
        cfg,
        claimer=claimer,
        status=Status(),
        seen=Seen(cfg.state_dir),
        requeue=lambda *a: None,
        journal=Journal(cfg.state_dir),
    )
    good = claimed(cfg, claimer, "sub/a.jpg", _jpeg())
    filer.handle(Outcome(good, result=process_bytes(_jpeg(), settings=job.settings)))
    bad = claimed(cfg, claimer, "b.jpg", b"data")
    filer.handle(Outcome(bad, error=RuntimeError("boom")))
    filer.journal.close()
    done, failed = journal.read(cfg.state_dir)
    assert done["event"] == "processed" and done["job"] == "main"
    assert done["input"] == str(job.inbox / "sub" / "a.jpg") and done["output"] == str(job.outbox / "sub" / "a.png")
    assert done["kept"] == str(job.processed / "sub" / "a.jpg")
    assert done["method"] == "threshold" and isinstance(done["tolerance"], float) and done["ms"] > 0
    assert failed["event"] == "failed" and failed["input"] == str(job.inbox / "b.jpg")
    assert failed["reason"] == "internal error: RuntimeError: boom" and failed["failed"] == str(job.failed / "b.jpg")


def _status(cfg, *args):
    r = knockout("status", "-c", str(cfg), *args)
    assert r.returncode in (0, 1), r.stderr
    return r.stdout


def test_status_shows_since_start_all_time_and_last_failures(tmp_path):
    cfg = write_config(tmp_path, jobs=[{"name": "main", "inbox": "inbox", "outbox": "outbox", "review": None}])
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jpg").write_bytes(image_bytes(1))
    (inbox / "b.jpg").write_bytes(image_bytes(2))
    (inbox / "broken.jpg").write_bytes(b"not an image at all")
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        wait_for((tmp_path / "failed" / "broken.jpg").exists, 90, d, "the bad file to fail")
        wait_for(lambda: len(list((tmp_path / "outbox").glob("*.png"))) == 2, 90, d, "two outputs")
    finally:
        d.stop()
    state = tmp_path / ".state-config"
    recs = list(journal.read(state))
    assert sorted((r["event"], os.path.basename(r["input"])) for r in recs) == [
        ("failed", "broken.jpg"),
        ("processed", "a.jpg"),
        ("processed", "b.jpg"),
    ]
    flagged = sum(bool(r.get("review")) for r in recs)
    out = _status(cfg)
    assert re.search(rf"^since start .*: 2 processed, 1 failed, {flagged} to review", out, re.M), out
    assert re.search(rf"^all time .*: 2 processed, 1 failed, {flagged} to review", out, re.M), out
    assert re.search(r"^last failures:\n  \S+ main: .*broken\.jpg: .*", out, re.M), out

    # a second run: since start counts it alone, all time both; an old record is outside --since 1d
    old = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat()
    forged = {"time": old, "event": "failed", "job": "main", "input": "old.jpg", "reason": "long ago"}
    (state / "journal.jsonl.1").write_text(json.dumps(forged) + "\n")
    (inbox / "c.jpg").write_bytes(image_bytes(3))
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        wait_for((tmp_path / "outbox" / "c.png").exists, 90, d, "the third output")
        wait_for(lambda: "1 processed" in _status(cfg), 30, d, "the status file to count it")
        out = _status(cfg)
        assert re.search(r"^since start .*: 1 processed, 0 failed", out, re.M), out
        assert re.search(r"^all time .*: 3 processed, 2 failed", out, re.M), out
        assert "old.jpg: long ago" in out
        out = _status(cfg, "--since", "1d")
        assert re.search(r"^last 1d .*: 3 processed, 1 failed", out, re.M), out
        assert "old.jpg" not in out
        got = json.loads(_status(cfg, "--json", "--since", "2h"))
        assert got["journal"]["jobs"]["main"]["processed"] == 3
    finally:
        d.stop()
    r = knockout("status", "-c", str(cfg), "--since", "soon")
    assert r.returncode == 2 and "e.g. 30m, 1h, 2d" in r.stderr
