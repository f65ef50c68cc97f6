"""The claiming stage on real folders: one claim wins, reads never follow links, dead daemons' claims come back."""

from __future__ import annotations

import json
import os
import threading
from pathlib import PurePath

import pytest
from knockout.daemon import files
from knockout.daemon.claiming import Claimer
from knockout.daemon.records import Candidate
from stage_util import claimed, stage_config


def test_of_two_daemons_one_claims_a_file_and_reads_it(tmp_path):
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    one, two = Claimer("one"), Claimer("two")
    two.start(job)
    w = claimed(cfg, one, "a.jpg", b"photo")
    assert not (job.inbox / "a.jpg").exists() and w.claim.read_bytes() == b"photo"
    st = os.lstat(w.claim)
    assert two.claim(Candidate(job, job.inbox / "a.jpg", PurePath("a.jpg"), 0.0), st) is None
    w2, data = one.read(w)
    assert data == b"photo" and w2.stat.st_size == 5 and w2.rel == w.rel
    assert one.release(w) == job.inbox / "a.jpg"
    assert (job.inbox / "a.jpg").read_bytes() == b"photo"


def test_a_folder_is_never_claimed(tmp_path):
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    (job.inbox / "shoot.jpg").mkdir()
    c = Claimer("one")
    c.start(job)
    path = job.inbox / "shoot.jpg"
    assert c.claim(Candidate(job, path, PurePath("shoot.jpg"), 0.0), os.lstat(path)) is None
    assert path.is_dir()


def test_a_dead_daemons_claims_go_back_to_the_inbox(tmp_path):
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    dead = job.inbox / files.CLAIMS / "dead"
    (dead / "files" / "sub").mkdir(parents=True)
    (dead / "out").mkdir()
    (dead / "files" / "sub" / "b.jpg").write_bytes(b"b")
    (dead / "owner.json").write_text(json.dumps({"host": files.HOST, "pid": 2**22 + 12345}))
    back, done = [], []
    me = Claimer("me")
    me.start(job)
    me.recover(cfg, job, finished=lambda *a: done.append(a), back=lambda path, job: back.append(path))
    assert back == [job.inbox / "sub" / "b.jpg"] and done == []
    assert (job.inbox / "sub" / "b.jpg").read_bytes() == b"b"
    assert not dead.exists()


def test_a_fifo_swapped_in_after_the_claim_is_never_waited_on(tmp_path):
    """A FIFO renamed over a.jpg between the daemon's lstat and its claim was opened to be read:
    open() waited for a writer forever, and the daemon's only loop with it."""
    cfg = stage_config(tmp_path)
    c = Claimer("one")
    w = claimed(cfg, c, "a.jpg", b"photo")
    os.unlink(w.claim)
    os.mkfifo(w.claim)  # what the claim's rename moved, when the swap won the race
    outcome: list = []

    def read() -> None:
        try:
            c.read(w)
        except Exception as exc:
            outcome.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(30)  # a hang detector, not a measurement: the read returns at once or never
    if t.is_alive():  # unblock it: a writer end opened
        os.close(os.open(w.claim, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO waited for a writer")
    from knockout.daemon.claiming import NotRegular

    assert len(outcome) == 1 and isinstance(outcome[0], NotRegular) and "not a regular file" in str(outcome[0])
