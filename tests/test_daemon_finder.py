"""The finding stage on real folders: names filtered, the stability wait, links never walked through."""

from __future__ import annotations

import os
from pathlib import PurePath

from knockout.daemon.finder import Finder
from stage_util import stage_config


def _stable(finder, now):
    return [c.rel for c, _st in finder.stable(now, budget=100, room=lambda: True)]


def test_a_file_is_handed_out_once_it_held_still_for_settle(tmp_path):
    cfg = stage_config(tmp_path)
    inbox = cfg.jobs[0].inbox
    (inbox / "a.jpg").write_bytes(b"1")
    finder = Finder(cfg, already_done=lambda *a: False)
    finder.scan_all()
    assert len(finder) == 1
    assert _stable(finder, 100.0) == []  # first look: its stat is taken
    assert _stable(finder, 100.2) == []  # not settled yet (settle 0.5)
    with open(inbox / "a.jpg", "ab") as fh:  # it grows: the wait starts again
        fh.write(b"more")
    assert _stable(finder, 100.6) == []
    assert _stable(finder, 100.9) == []
    assert _stable(finder, 101.2) == [PurePath("a.jpg")]
    assert len(finder) == 0  # handed out once


def test_names_that_are_not_inputs_are_never_watched(tmp_path):
    cfg = stage_config(tmp_path)
    inbox = cfg.jobs[0].inbox
    for name in (".hidden.jpg", "~lock.jpg", "x.jpg.part", "notes.txt", "ok.png"):
        (inbox / name).write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "inside.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", inbox / "linked")  # a link to a folder: a candidate, never walked
    finder = Finder(cfg, already_done=lambda *a: False)
    finder.scan_all()
    finder.offer(inbox / "linked" / "inside.jpg")  # an event from behind the link
    assert sorted(str(w.rel) for w in finder.watched.values()) == ["linked", "ok.png"]


def test_after_leave_an_input_done_already_is_dropped(tmp_path):
    cfg = stage_config(tmp_path, after="leave")
    inbox = cfg.jobs[0].inbox
    (inbox / "done.jpg").write_bytes(b"1")
    (inbox / "new.jpg").write_bytes(b"22")
    done = os.lstat(inbox / "done.jpg")
    finder = Finder(cfg, already_done=lambda job, rel, key: key == (done.st_size, done.st_mtime_ns))
    finder.scan_all()
    _stable(finder, 10.0)
    assert _stable(finder, 11.0) == [PurePath("new.jpg")]


def test_no_candidate_is_handed_out_without_room_and_later_brings_it_back(tmp_path):
    cfg = stage_config(tmp_path)
    (cfg.jobs[0].inbox / "a.jpg").write_bytes(b"1")
    finder = Finder(cfg, already_done=lambda *a: False)
    finder.scan_all()
    _stable(finder, 10.0)
    assert [c for c, _ in finder.stable(11.0, budget=100, room=lambda: False)] == []
    ((c, _st),) = list(finder.stable(11.0, budget=100, room=lambda: True))
    finder.later(c, 0.0)
    assert len(finder) == 1 and finder.count(cfg.jobs[0]) == 1


def test_an_inbox_moved_away_is_no_longer_watched(tmp_path):
    """The inbox renamed away: the watch on it (which follows the folder) is ended, so what is then
    written in the moved folder is not reported under the inbox's name."""
    import time

    cfg = stage_config(tmp_path)
    inbox = cfg.jobs[0].inbox
    finder = Finder(cfg, already_done=lambda *a: False)
    finder.start_observers()
    try:
        (inbox / "a.jpg").write_bytes(b"1")
        deadline = time.monotonic() + 10
        while not finder.watched and time.monotonic() < deadline:
            time.sleep(0.05)
            finder.drain_events()
        assert list(finder.watched) == [inbox / "a.jpg"]  # the watch works
        finder.watched.clear()
        inbox.rename(tmp_path / "moved")
        finder.keep_watching()
        (tmp_path / "moved" / "b.jpg").write_bytes(b"2")
        time.sleep(1.0)  # an event would have come by now (the one above came within 10 s; inotify: at once)
        finder.drain_events()
        assert finder.watched == {}
        assert "main" not in finder.observers
    finally:
        finder.stop_observers()


def test_files_that_cannot_be_looked_at_are_said_once_and_looked_at_less_often(tmp_path, monkeypatch, caplog):
    """100 files in a folder made unreadable: a warning for each, every retry_backoff, for ever."""
    import errno

    cfg = stage_config(tmp_path)
    inbox = cfg.jobs[0].inbox
    for i in range(5):
        (inbox / f"img{i}.jpg").write_bytes(b"x")
    finder = Finder(cfg, already_done=lambda *a: False)
    finder.scan_all()
    real = os.lstat

    def lstat(path, *a, **k):
        if str(path).startswith(str(inbox / "img")):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "lstat", lstat)
    with caplog.at_level("WARNING"):
        t = 100.0
        for _ in range(200):  # 100 s in steps of 0.5 s (retry_backoff 0.1 here)
            _stable(finder, t)
            t += 0.5
    said = [r.getMessage() for r in caplog.records if "img" in r.getMessage()]
    assert len(said) == 5 and all("cannot look at" in m for m in said), said[:3]
    monkeypatch.setattr(os, "lstat", real)  # readable again: handed out as usual
    got = set()
    for _ in range(200):
        got.update(_stable(finder, t))
        t += 0.5
    assert got == {PurePath(f"img{i}.jpg") for i in range(5)}
