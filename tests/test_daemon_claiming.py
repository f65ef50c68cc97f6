"""The claiming stage on real folders: one claim wins, reads never follow links, dead daemons' claims come back."""

from __future__ import annotations

import json
import os
import stat
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


def test_a_fifo_in_the_claims_is_never_even_opened(tmp_path, monkeypatch):
    """The claim is lstat-ed first (in the daemon's own folder, where nobody swaps it): something
    that is not a regular file, such as a device (opening some acts: a tape rewinds), is never opened."""
    from knockout.daemon.claiming import NotRegular

    cfg = stage_config(tmp_path)
    c = Claimer("one")
    w = claimed(cfg, c, "a.jpg", b"photo")
    os.unlink(w.claim)
    os.mkfifo(w.claim)
    opened: list[str] = []
    real_open = os.open

    def recording_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    with pytest.raises(NotRegular):
        c.read(w)
    assert os.fspath(w.claim) not in opened


def test_a_fifo_swapped_in_between_the_claims_lstat_and_its_open_is_not_read(tmp_path, monkeypatch):
    """Should the lstat see the regular file and the open a FIFO after all, the fstat of what was
    opened refuses it (NotRegular), rather than reading it as an empty input."""
    from knockout.daemon.claiming import NotRegular

    cfg = stage_config(tmp_path)
    c = Claimer("one")
    w = claimed(cfg, c, "a.jpg", b"photo")
    real_lstat = os.lstat

    def swapping_lstat(path, *args, **kwargs):
        st = real_lstat(path, *args, **kwargs)
        if os.fspath(path) == os.fspath(w.claim) and stat.S_ISREG(st.st_mode):
            os.unlink(w.claim)  # the swap, right after the check
            os.mkfifo(w.claim)
        return st

    monkeypatch.setattr(os, "lstat", swapping_lstat)
    with pytest.raises(NotRegular):
        c.read(w)
    assert stat.S_ISFIFO(real_lstat(w.claim).st_mode)  # the swap was made


def test_an_input_grown_past_the_limit_after_its_fstat_is_too_large(tmp_path, monkeypatch):
    """The size is taken from the fstat; a file that grows after it is read only up to the limit
    (and one byte), then refused as too large, never read whole."""
    from knockout.daemon import claiming

    cfg = stage_config(tmp_path)
    c = Claimer("one")
    w = claimed(cfg, c, "a.jpg", b"photo")
    monkeypatch.setattr(claiming, "max_input_bytes", lambda max_pixels: 1000)
    real_open_regular = claiming.open_regular

    def growing(path):
        fh, st = real_open_regular(path)
        with open(path, "ab") as more:  # the writer goes on after the fstat
            more.write(b"x" * 5000)
        return fh, st

    monkeypatch.setattr(claiming, "open_regular", growing)
    with pytest.raises(claiming.TooLarge, match="too large: 1,001 bytes"):
        c.read(w)


def test_a_daemon_gives_back_a_claim_swapped_for_a_fifo_and_says_it_once(tmp_path, monkeypatch, caplog):
    """The daemon's side of NotRegular: a FIFO that won the race into the claims goes back to the inbox,
    said once as ignored; nothing is failed and the loop goes on to the photo beside it."""
    from daemon_util import image_bytes, write_config

    from knockout.cli import main

    cfg = write_config(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jpg").write_bytes(image_bytes(1))
    (inbox / "b.jpg").write_bytes(image_bytes(2))
    real_claim = Claimer.claim

    def swapping_claim(self, c, st):
        w = real_claim(self, c, st)
        if w is not None and w.rel.name == "a.jpg":  # the rename moved a FIFO swapped in after the lstat
            os.unlink(w.claim)
            os.mkfifo(w.claim)
        return w

    monkeypatch.setattr(Claimer, "claim", swapping_claim)
    assert main(["watch", "-c", str(cfg), "--once"]) == 0
    assert stat.S_ISFIFO(os.lstat(inbox / "a.jpg").st_mode)  # given back where it was
    assert (tmp_path / "outbox" / "b.png").exists()
    assert not (tmp_path / "failed").exists() or not any((tmp_path / "failed").iterdir())
    said = [r.getMessage() for r in caplog.records if "not a regular file" in r.getMessage()]
    assert len(said) == 1 and "a.jpg" in said[0], said
