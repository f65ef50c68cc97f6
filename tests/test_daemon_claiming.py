"""The claiming stage on real folders: one claim wins, reads never follow links, dead daemons' claims come back."""

from __future__ import annotations

import json
import os
from pathlib import PurePath

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
