"""knockout.fsutil.atomic_write: whole files or nothing, no temp files left behind."""

from __future__ import annotations

import os
import stat

import pytest

from knockout import fsutil
from knockout.fsutil import atomic_write


def test_writes_and_replaces(tmp_path):
    p = tmp_path / "out.png"
    atomic_write(p, b"one")
    assert p.read_bytes() == b"one"
    atomic_write(p, b"two")
    assert p.read_bytes() == b"two"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert [x.name for x in tmp_path.iterdir()] == ["out.png"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "out.png"
    p.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        atomic_write(p, b"new")
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["out.png"]


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(OSError):
        atomic_write(tmp_path / "nope" / "out.png", b"x")
    assert not (tmp_path / "nope").exists()


def test_temp_file_is_hidden_in_the_same_folder(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        assert os.path.dirname(src) == str(tmp_path)
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", spy)
    atomic_write(tmp_path / "a.png", b"x")
    assert seen and seen[0].startswith(".a.png.")


def test_durable_writes_are_fsynced_and_others_not(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    atomic_write(tmp_path / "a.png", b"x")
    assert len(synced) == 2  # the file and its folder
    synced.clear()
    atomic_write(tmp_path / "b.png", b"y", durable=False)
    assert synced == [] and (tmp_path / "b.png").read_bytes() == b"y"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_cut_outputs_are_not_fsynced(tmp_path, monkeypatch):
    # knockout cut keeps its inputs: a crash loses only outputs a second run makes again
    from conftest import synthetic_headshot
    from PIL import Image

    from knockout.cli import main

    img, _ = synthetic_headshot(72, 54)
    Image.fromarray(img).save(tmp_path / "a.png")
    synced = []
    monkeypatch.setattr(os, "fsync", synced.append)
    assert main(["cut", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out" / "a.png").is_file() and synced == []
