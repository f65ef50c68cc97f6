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


def test_a_second_file_of_the_same_name_never_replaces_the_one_in_flight(tmp_path):
    """A photographer uploads a.jpg again while the first a.jpg is being cut: the first was lost."""
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    c = Claimer("one")
    first = claimed(cfg, c, "a.jpg", b"first")
    (job.inbox / "a.jpg").write_bytes(b"second")
    cand = Candidate(job, job.inbox / "a.jpg", PurePath("a.jpg"), 0.0)
    with pytest.raises(files.ClaimBusy, match=r"a\.jpg: a file of that name is being processed"):
        c.claim(cand, os.lstat(job.inbox / "a.jpg"))
    assert first.claim.read_bytes() == b"first" and (job.inbox / "a.jpg").read_bytes() == b"second"
    files.move_noreplace(first.claim, job.processed / "a.jpg", root=job.processed)  # the first one is done
    second = c.claim(cand, os.lstat(job.inbox / "a.jpg"))
    assert second is not None and second.claim.read_bytes() == b"second"


@pytest.mark.parametrize("sub", ["files", "out"])
def test_the_claims_own_folders_swapped_for_links_are_never_written_through(tmp_path, sub):
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("a.jpg", "a.jpg.json"):
        (victim / name).write_bytes(b"precious")
    c = Claimer("one")
    claims = c.start(job)
    own = claims.root / sub
    os.rmdir(own)
    os.symlink(victim, own)
    (job.inbox / "a.jpg").write_bytes(b"attacker")
    cand = Candidate(job, job.inbox / "a.jpg", PurePath("a.jpg"), 0.0)
    with pytest.raises(files.UnsafeFolder):
        if sub == "files":
            c.claim(cand, os.lstat(job.inbox / "a.jpg"))
        else:
            claims.mark(PurePath("a.jpg"), job.outbox / "a.png")
    claims.unmark(PurePath("a.jpg"))  # nothing to do through a link: said, nothing deleted
    assert sorted(p.name for p in victim.iterdir()) == ["a.jpg", "a.jpg.json"]
    assert all(p.read_bytes() == b"precious" for p in victim.iterdir())


def test_an_owner_file_with_an_impossible_pid_is_not_an_owner(tmp_path):
    """A planted owner.json whose pid overflows a C long killed the daemon at every start."""
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    evil = job.inbox / files.CLAIMS / "evil"
    (evil / "files").mkdir(parents=True)
    (evil / "files" / "b.jpg").write_bytes(b"b")
    for i, pid in enumerate((99999999999999999999, -1, 0, True)):
        (evil / "owner.json").write_text(json.dumps({"host": files.HOST, "pid": pid}))
        me = Claimer(f"me{i}")
        me.start(job)
        me.recover(cfg, job, finished=lambda *a: None, back=lambda *a: None)
        assert (evil / "files" / "b.jpg").read_bytes() == b"b"  # not an owner: left alone


def test_an_inbox_replaced_by_a_link_is_never_followed(tmp_path):
    """mv inbox inbox.old; ln -s elsewhere inbox: the daemon made its claims there and took the files."""
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.jpg").write_bytes(b"private")
    c = Claimer("one")
    c.start(job)
    job.inbox.rename(tmp_path / "inbox.old")
    job.inbox.symlink_to(elsewhere, target_is_directory=True)
    cand = Candidate(job, job.inbox / "private.jpg", PurePath("private.jpg"), 0.0)
    with pytest.raises(files.UnsafeFolder, match="is a link now"):
        c.claim(cand, os.lstat(job.inbox / "private.jpg"))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["private.jpg"]
    # a new real folder in its place (a sync tool's replace) is still an inbox
    job.inbox.unlink()
    job.inbox.mkdir()
    (job.inbox / "b.jpg").write_bytes(b"b")
    assert c.claim(Candidate(job, job.inbox / "b.jpg", PurePath("b.jpg"), 0.0), os.lstat(job.inbox / "b.jpg"))


def test_a_forged_dead_claim_whose_marks_name_outputs_elsewhere_is_not_finished(tmp_path):
    """A planted dead claim with marks naming /etc/hostname: its entries were filed to processed/ as done."""
    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"not ours")
    evil = job.inbox / files.CLAIMS / "vm-1-evil"
    (evil / "files").mkdir(parents=True)
    (evil / "out").mkdir()
    (evil / "owner.json").write_text(json.dumps({"host": files.HOST, "pid": 2**22 + 12345}))
    (evil / "files" / "x.jpg").write_bytes(b"x")
    (evil / "out" / "x.jpg.json").write_text(json.dumps({"output": str(outside), "existed": False}))
    (evil / "files" / "y.jpg").write_bytes(b"y")  # its mark names a link in the outbox: not a written output
    (job.outbox / "y.png").symlink_to(outside)
    (evil / "out" / "y.jpg.json").write_text(json.dumps({"output": str(job.outbox / "y.png"), "existed": False}))
    (evil / "files" / "z.jpg").write_bytes(b"z")  # a real output in the outbox: finished, as before
    (job.outbox / "z.png").write_bytes(b"cut-out")
    (evil / "out" / "z.jpg.json").write_text(json.dumps({"output": str(job.outbox / "z.png"), "existed": False}))
    done, back = [], []
    me = Claimer("me")
    me.start(job)
    me.recover(cfg, job, finished=lambda j, rel, path: done.append(str(rel)), back=lambda p, j: back.append(p.name))
    assert done == ["z.jpg"] and sorted(back) == ["x.jpg", "y.jpg"]
    assert outside.read_bytes() == b"not ours"


def test_a_planted_huge_owner_file_or_mark_is_never_read_whole(tmp_path):
    """owner.json and marks were read whole: a sparse file of many GB took the daemon's memory."""
    import tracemalloc

    cfg = stage_config(tmp_path)
    job = cfg.jobs[0]
    evil = job.inbox / files.CLAIMS / "evil"
    (evil / "files").mkdir(parents=True)
    (evil / "out").mkdir()
    (evil / "files" / "b.jpg").write_bytes(b"b")
    for big in (evil / "owner.json", evil / "out" / "b.jpg.json"):
        with open(big, "wb") as fh:
            fh.truncate(64 << 20)  # 64 MiB of nothing, taking no disk
    me = Claimer("me")
    me.start(job)
    tracemalloc.start()
    try:
        assert list(files.dead_owners(job.inbox, "me", claim_timeout=300)) == []  # no owner: nobody's
        assert [m for _r, _p, m in files.claimed_files(evil)] == [None]  # no mark
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak / 2**20:.0f} MiB allocated"
