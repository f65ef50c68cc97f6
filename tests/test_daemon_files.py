"""The daemon's folder work: input names, claims, moves and writes that never replace or tear."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path, PurePath

import pytest
from knockout.daemon import files


@pytest.mark.parametrize(
    ("rel", "ok"),
    [
        ("a.jpg", True),
        ("sub/B.JPEG", True),
        ("-dash é.png", True),
        ("x.tif", True),
        ("notes.txt", False),
        (".hidden.jpg", False),
        ("~lock.jpg", False),
        ("a.jpg.part", False),
        ("a.jpg.crdownload", False),
        ("a.tmp", False),
        ("a.jpg.swp", False),
        (".knockout-claims/t/files/a.jpg", False),
        ("sub/.git/a.jpg", False),
    ],
)
def test_input_names(rel, ok):
    assert files.is_input_name(PurePath(rel)) is ok


def test_move_noreplace_never_overwrites(tmp_path):
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "a.jpg").write_bytes(b"old")
    (tmp_path / "dst" / "a-1.jpg").write_bytes(b"older")
    (tmp_path / "a.jpg").write_bytes(b"new")
    went = files.move_noreplace(tmp_path / "a.jpg", tmp_path / "dst" / "a.jpg")
    assert went == tmp_path / "dst" / "a-2.jpg" and went.read_bytes() == b"new"
    assert (tmp_path / "dst" / "a.jpg").read_bytes() == b"old" and not (tmp_path / "a.jpg").exists()
    (tmp_path / "e.jpg").write_bytes(b"x")
    went = files.move_noreplace(tmp_path / "e.jpg", tmp_path / "deep" / "er" / "e.jpg")  # folders made
    assert went.read_bytes() == b"x"


def test_a_folder_swapped_for_a_link_after_its_check_is_never_moved_through(tmp_path, monkeypatch):
    """The race of a file given back to inbox/sub: sub was checked (lstat: a real folder), then
    replaced by a link to another folder before the move, which went through the link by its path."""
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    (inbox / "sub").mkdir(parents=True)
    outside.mkdir()
    src = tmp_path / "claimed.jpg"
    src.write_bytes(b"photo")
    checked = files.make_folders

    def check_then_swap(path, mode=files.FOLDER_MODE, *, root=None):  # the attacker wins the race here
        checked(path, mode, root=root)
        os.rename(inbox / "sub", tmp_path / "moved-away")
        os.symlink(outside, inbox / "sub")

    monkeypatch.setattr(files, "make_folders", check_then_swap)
    with pytest.raises(files.UnsafeFolder, match="sub on its path is a link"):
        files.move_noreplace(src, inbox / "sub" / "a.jpg", root=inbox)
    assert list(outside.iterdir()) == [] and src.read_bytes() == b"photo"


def test_write_noreplace_modes_and_no_temporaries(tmp_path):
    old = os.umask(0o077)
    try:
        a = files.write_noreplace(tmp_path / "o" / "a.png", b"1", tag="T", replace=False)
        b = files.write_noreplace(tmp_path / "o" / "a.png", b"2", tag="T", replace=False)
        c = files.write_noreplace(tmp_path / "o" / "a.png", b"3", tag="T", replace=True)
    finally:
        os.umask(old)
    assert (a.name, b.name, c.name) == ("a.png", "a-1.png", "a.png")
    assert a.read_bytes() == b"3" and b.read_bytes() == b"2"
    assert a.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a-1.png", "a.png"]


def test_claims_race_and_release(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "sub" / "a.jpg").write_bytes(b"img")
    one, two = files.Claims(inbox, "one"), files.Claims(inbox, "two")
    one.start()
    two.start()
    got = one.claim(inbox / "sub" / "a.jpg", PurePath("sub/a.jpg"))
    assert got is not None and got.read_bytes() == b"img"
    assert two.claim(inbox / "sub" / "a.jpg", PurePath("sub/a.jpg")) is None  # the loser gets nothing
    assert one.release(PurePath("sub/a.jpg")) == inbox / "sub" / "a.jpg"
    one.close()
    assert not (inbox / files.CLAIMS / "one").exists()


def _owner(inbox: Path, token: str, host: str, pid: int, age: float) -> Path:
    root = inbox / files.CLAIMS / token
    (root / "files").mkdir(parents=True)
    (root / "owner.json").write_text(json.dumps({"host": host, "pid": pid}))
    t = time.time() - age
    os.utime(root / "owner.json", (t, t))
    return root


def test_dead_owners(tmp_path):
    inbox = tmp_path / "inbox"
    _owner(inbox, "me-alive", files.HOST, os.getppid(), 0)
    _owner(inbox, "me-dead", files.HOST, 2**22 + 12345, 0)  # above the default pid_max: never alive
    _owner(inbox, "me-silent", files.HOST, os.getppid(), 1000)  # pid reused by someone else
    _owner(inbox, "far-alive", "elsewhere", 1, 10)
    _owner(inbox, "far-gone", "elsewhere", 1, 1000)
    dead = sorted(p.name for p in files.dead_owners(inbox, "mine", claim_timeout=300))
    assert dead == ["far-gone", "me-dead", "me-silent"]


def test_output_done_tells_written_from_not_written(tmp_path):
    out = tmp_path / "a.png"
    assert files.output_done(None) is None
    mark = {"output": str(out), "existed": False}
    assert files.output_done(mark) is None  # crashed before the write
    out.write_bytes(b"new")
    assert files.output_done(mark) == out
    st = out.stat()  # overwrite policy: the old file is still there, so our write did not happen
    mark = {"output": str(out), "existed": True, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns}
    assert files.output_done(mark) is None
    files.write_noreplace(out, b"newer", tag="T", replace=True)
    assert files.output_done(mark) == out
