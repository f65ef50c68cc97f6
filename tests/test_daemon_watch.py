"""Real `knockout watch` processes on real folders: what users do to an inbox."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from daemon_util import (
    DaemonProcess,
    check_image,
    done_count,
    hidden_files,
    image_bytes,
    knockout,
    visible,
    wait_for,
    write_config,
)
from PIL import Image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_once_processes_what_is_there_and_files_failures(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "sub dir").mkdir(parents=True)
    (inbox / "ok.jpg").write_bytes(image_bytes(1))
    (inbox / "sub dir" / "-leading dash ü.png").write_bytes(image_bytes(2, fmt="PNG"))
    (inbox / "empty.jpg").write_bytes(b"")
    (inbox / "notes.txt").write_text("not an image, ignored")
    (inbox / "big.png").write_bytes(image_bytes(3, size=(200, 200), fmt="PNG"))
    # claims left by other daemons: a dead process on this host, a silent host, a live host
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claims = inbox / ".knockout-claims"
    for token, owner, age, name in [
        ("here-dead", {"host": socket.gethostname(), "pid": dead.pid}, 0, "sub dir/dead.jpg"),
        ("gone-host", {"host": "elsewhere", "pid": 1}, 1000, "old.jpg"),
        ("busy-host", {"host": "elsewhere", "pid": 1}, 0, "busy.jpg"),
    ]:
        (claims / token / "files" / name).parent.mkdir(parents=True)
        (claims / token / "files" / name).write_bytes(image_bytes(4))
        (claims / token / "owner.json").write_text(json.dumps(owner))
        os.utime(claims / token / "owner.json", (time.time() - age, time.time() - age))
    # a second job whose inputs are deleted after success
    (tmp_path / "inbox2").mkdir()
    (tmp_path / "inbox2" / "gone.jpg").write_bytes(image_bytes(5))
    # a third with its own settings (masks), inputs left in place, and existing outputs kept
    (tmp_path / "inbox3").mkdir()
    (tmp_path / "outbox3").mkdir()
    (tmp_path / "inbox3" / "k.jpg").write_bytes(image_bytes(6))
    (tmp_path / "inbox3" / "s.jpg").write_bytes(image_bytes(7))
    (tmp_path / "outbox3" / "s.png").write_bytes(b"an older output")
    jobs = [
        {"name": "main", "inbox": "inbox", "outbox": "outbox"},
        {"name": "drop", "inbox": "inbox2", "outbox": "outbox2", "after": "delete"},
        {
            "name": "keep",
            "inbox": "inbox3",
            "outbox": "outbox3",
            "after": "leave",
            "collision": "skip",
            "settings": {"output": "mask"},
        },
    ]
    # an output that can never be written (a file where its folder should be): retried, then failed
    (inbox / "stuck").mkdir()
    (inbox / "stuck" / "s.jpg").write_bytes(image_bytes(8))
    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / "stuck").write_text("not a folder")
    settings = {"max_pixels": 20_000, "method": "threshold"}
    cfg = write_config(tmp_path, jobs=jobs, settings=settings, retries=1)
    r = knockout("watch", "-c", str(cfg), "--once", "-q", timeout=150)
    assert r.returncode == 1, r.stderr  # some failed
    assert r.stderr.count("recovered the claims") == 2, r.stderr  # warnings and errors stay with -q
    assert done_count(r.stderr) == 0 and "failed: empty file" in r.stderr, r.stderr  # the per-file lines go
    out = tmp_path / "outbox"
    (out / "stuck").unlink()
    assert visible(out) == [
        out / "ok.png",
        out / "old.png",
        out / "sub dir" / "-leading dash ü.png",
        out / "sub dir" / "dead.png",
    ]
    for p in visible(out):
        check_image(p)
    assert [p.name for p in visible(tmp_path / "processed")] == ["ok.jpg", "old.jpg", "-leading dash ü.png", "dead.jpg"]
    assert (claims / "busy-host" / "files" / "busy.jpg").exists()  # its owner is alive: not touched
    check_image(tmp_path / "outbox2" / "gone.png")
    assert not visible(tmp_path / "inbox2")
    failed = tmp_path / "failed"
    assert "empty file (0 bytes)" in (failed / "empty.jpg.error.txt").read_text()
    note = yaml.safe_load((failed / "big.png.error.txt").read_text())
    assert "too many pixels" in note["reason"] and note["settings"]["max_pixels"] == 20_000
    assert note["time"] and note["file"] == str(inbox / "big.png")
    assert "(gave up after 2 attempts)" in (failed / "stuck" / "s.jpg.error.txt").read_text()
    assert "cannot write the output" in r.stderr and "retry 1/1" in r.stderr
    assert (inbox / "notes.txt").exists()
    assert visible(inbox) == [inbox / "notes.txt"]
    check_image(tmp_path / "outbox3" / "k.png", "L")  # the job's own settings
    assert (tmp_path / "outbox3" / "s.png").read_bytes() == b"an older output"  # collision: skip
    assert [p.name for p in visible(tmp_path / "inbox3")] == ["k.jpg", "s.jpg"]  # after: leave
    assert visible(tmp_path / "outbox3") == [tmp_path / "outbox3" / "k.png", tmp_path / "outbox3" / "s.png"]
    # the same again with nothing to do (the left inputs are on record): exit 0, nothing processed
    r = knockout("watch", "-c", str(cfg), "--once")
    assert r.returncode == 0 and done_count(r.stderr) == 0 and "0 processed, 0 failed" in r.stderr, r.stderr
    assert [p.name for p in visible(tmp_path / "inbox3")] == ["k.jpg", "s.jpg"]
    assert len(visible(tmp_path / "outbox3")) == 2


def test_live_inbox(tmp_path):
    """Slow writers, renames into place, moves from elsewhere, bad files, symlinks, collisions,
    an output folder that cannot be written for a while."""
    inbox, out = tmp_path / "inbox", tmp_path / "outbox"
    (out).mkdir()
    (out / "taken.png").write_bytes(b"an older output")
    (out / "blocked").write_text("a file where an output folder should be: writing fails")
    cfg = write_config(tmp_path, settle=0.6, rescan=0, log_format="json", retries=8)  # events only
    d = DaemonProcess(cfg, umask=0o077)
    try:
        d.wait_ready()
        (inbox / "blocked").mkdir()
        (inbox / "blocked" / "x.jpg").write_bytes(image_bytes(4))
        # a slow writer: one file written in chunks over ~3 s (pauses shorter than settle)
        data = image_bytes(5, fmt="PNG")
        with open(inbox / "slow.png", "wb") as fh:
            step = len(data) // 8 + 1
            for i in range(0, len(data), step):
                fh.write(data[i : i + step])
                fh.flush()
                time.sleep(0.4)
        # a writer that pauses longer than settle: claimed and undecodable mid-way, yet not failed
        data = image_bytes(6, fmt="PNG")
        with open(inbox / "paused.png", "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(1.6)
            fh.write(data[len(data) // 2 :])
        # browser-style download: .crdownload then renamed
        (inbox / "dl.jpg.crdownload").write_bytes(image_bytes(6))
        (inbox / ".hidden.jpg").write_bytes(image_bytes(7))
        (inbox / "camera.part").write_bytes(image_bytes(8))
        time.sleep(1.5)
        assert not (out / "dl.png").exists() and not (out / "camera.png").exists()
        # the transient write error is retried with back-off; the input waits in the inbox meanwhile
        wait_for(lambda: "retry 2/8" in d.text(), 30, d, "retries of the blocked output")
        wait_for((inbox / "blocked" / "x.jpg").exists, 10, d, "the blocked input back in the inbox between retries")
        assert not (tmp_path / "failed" / "blocked").exists() and not (tmp_path / "processed" / "blocked").exists()
        (out / "blocked").unlink()
        os.rename(inbox / "dl.jpg.crdownload", inbox / "dl.jpg")
        os.rename(inbox / "camera.part", inbox / "camera.jpg")
        # mv from elsewhere, a whole folder moved in, a name collision
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "moved.jpg").write_bytes(image_bytes(9))
        os.rename(tmp_path / "elsewhere" / "moved.jpg", inbox / "moved.jpg")
        (tmp_path / "shoot" / "day 2").mkdir(parents=True)
        for i in range(3):
            (tmp_path / "shoot" / "day 2" / f"p{i}.jpg").write_bytes(image_bytes(10 + i))
        os.rename(tmp_path / "shoot", inbox / "shoot")
        (inbox / "taken.jpg").write_bytes(image_bytes(13))
        # bad inputs
        (inbox / "corrupt.jpg").write_bytes(image_bytes(14)[:300])
        (inbox / "text.png").write_text("hello")
        (tmp_path / "secret.jpg").write_bytes(image_bytes(15))
        os.symlink(tmp_path / "secret.jpg", inbox / "link.jpg")
        (tmp_path / "private").mkdir()
        (tmp_path / "private" / "p.jpg").write_bytes(image_bytes(16))
        os.symlink(tmp_path / "private", inbox / "linked folder")
        expected = [
            "blocked/x.png",
            "camera.png",
            "dl.png",
            "moved.png",
            "paused.png",
            "shoot/day 2/p0.png",
            "shoot/day 2/p1.png",
            "shoot/day 2/p2.png",
            "slow.png",
            "taken-1.png",
            "taken.png",
        ]
        bad = ["corrupt.jpg", "link.jpg", "text.png", "linked folder"]
        wait_for(
            lambda: (
                sorted(str(p.relative_to(out)) for p in visible(out)) == expected
                and all((tmp_path / "failed" / b).exists() or (tmp_path / "failed" / b).is_symlink() for b in bad)
            ),
            90,
            d,
            "all outputs and failures",
        )
        # the status file lags the folders by up to a second
        wait_for(lambda: "10 processed, 4 failed" in knockout("status", "-c", str(cfg)).stdout, 20, d, "the status")
        r = knockout("status", "-c", str(cfg))
        assert r.returncode == 0 and "running: pid" in r.stdout, r.stdout + r.stderr
        assert "10 processed, 4 failed" in r.stdout, r.stdout
        assert "last error:" in r.stdout
    finally:
        d.stop()
    assert d.proc.returncode == 0
    assert (out / "taken.png").read_bytes() == b"an older output"
    for name in expected:
        if name != "taken.png":
            check_image(out / name)
            assert (out / name).stat().st_mode & 0o777 == 0o644
    assert visible(inbox) == [inbox / ".hidden.jpg"] or visible(inbox) == []
    assert (inbox / ".hidden.jpg").exists()
    failed = tmp_path / "failed"
    assert "truncated or corrupt" in (failed / "corrupt.jpg.error.txt").read_text()
    assert "not an image" in (failed / "text.png.error.txt").read_text()
    assert "symbolic link" in (failed / "link.jpg.error.txt").read_text()
    assert (failed / "link.jpg").is_symlink() and (tmp_path / "secret.jpg").exists()
    assert (
        "outside the inbox); links are not followed, copy the folder in"
        in (failed / "linked folder.error.txt").read_text()
    )
    assert (failed / "linked folder").is_symlink() and visible(tmp_path / "private") == [tmp_path / "private" / "p.jpg"]
    assert not hidden_files(out)
    # folders the daemon makes in the outbox are readable like its outputs, whatever its umask
    for folder in (out / "shoot", out / "shoot" / "day 2", out / "blocked"):
        assert folder.stat().st_mode & 0o777 == 0o755, folder
    # one log line per file, as JSON lines: input, output, method, milliseconds
    lines = [yaml.safe_load(x) for x in d.text().splitlines() if x.startswith("{")]
    done = [x for x in lines if x.get("event") == "processed"]
    assert len(done) == 10 and all({"input", "output", "method", "milliseconds"} <= x.keys() for x in done)
    assert sum(1 for x in done if x["input"].endswith("slow.png")) == 1
    assert sum(1 for x in done if x["input"].endswith("paused.png")) == 1
    r = knockout("status", "-c", str(cfg))
    assert r.returncode == 1 and "not running" in r.stdout


def _claimed(inbox, name: str) -> bool:
    """Whether a daemon has claimed ``name`` (moved it into the inbox's claims folder)."""
    return any(p.name == name for p in (inbox / ".knockout-claims").rglob(name))


def _huge_jpeg() -> bytes:
    """24 MP (a 6 MP headshot upscaled, with sensor noise): about 0.5 s to cut on a fast machine (2026-12),
    while a small file takes 40 ms."""
    big = Image.open(io.BytesIO(image_bytes(99, size=(3000, 2000)))).resize((4000, 6000), Image.Resampling.BILINEAR)
    noisy = np.asarray(big) + np.random.default_rng(0).normal(0, 6, (6000, 4000, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_burst_of_200_files(tmp_path):
    """200 small files at once, behind one huge file that must not hold them up."""
    cfg = write_config(tmp_path, settle=0.05)  # the small files are ready while the huge one is cut
    d = DaemonProcess(cfg)
    inbox, out = tmp_path / "inbox", tmp_path / "outbox"
    huge = _huge_jpeg()
    blobs = [image_bytes(i % 7) for i in range(7)]
    try:
        d.wait_ready()
        (inbox / "huge.jpg").write_bytes(huge)
        wait_for(lambda: _claimed(inbox, "huge.jpg"), 30, d, "huge.jpg claimed first")
        for i in range(200):
            (inbox / f"img{i:03d}.jpg").write_bytes(blobs[i % 7])
        wait_for(lambda: len(visible(tmp_path / "processed")) == 201, 150, d, "201 processed")
    finally:
        d.stop()
    names = sorted(p.name for p in visible(out))
    assert names == ["huge.png", *(f"img{i:03d}.png" for i in range(200))]
    check_image(out / "huge.png", size=(4000, 6000))
    before = sum(1 for p in visible(out) if p.stat().st_ctime < (out / "huge.png").stat().st_ctime)
    assert before >= 5, f"only {before} small files were done while the huge one was processed"
    for p in visible(out)[1::20]:
        check_image(p)
    assert not (tmp_path / "failed").exists() or not visible(tmp_path / "failed")
    assert not visible(inbox) and not hidden_files(out)


def _drop(inbox, n, prefix="f"):
    blobs = [image_bytes(i % 5) for i in range(5)]
    for i in range(n):
        (inbox / f"{prefix}{i:03d}.jpg").write_bytes(blobs[i % 5])


def test_the_same_name_uploaded_again_while_the_first_is_in_flight_keeps_both(tmp_path):
    """The second a.jpg replaced the first in the claims folder: the first photo was lost."""
    cfg = write_config(tmp_path, settle=0.2)
    inbox, out, done = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "processed"
    first, second = _huge_jpeg(), image_bytes(5)
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        (inbox / "a.jpg").write_bytes(first)
        wait_for(lambda: _claimed(inbox, "a.jpg"), 30, d, "the first a.jpg claimed")
        (inbox / "a.jpg").write_bytes(second)
        wait_for(lambda: len(visible(done)) == 2, 120, d, "both processed")
    finally:
        d.stop()
    assert sorted(p.read_bytes() for p in visible(done)) == sorted([first, second])
    assert sorted(p.name for p in visible(out)) == ["a-1.png", "a.png"]
    check_image(out / "a.png", size=(4000, 6000))  # the first one's cut-out, under its own name
    assert "changed after it was read" not in d.text()


def test_sigkill_mid_burst_then_restart_loses_nothing(tmp_path):
    inbox, out, done = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "processed"
    inbox.mkdir()
    _drop(inbox, 40)
    (inbox / "bad.jpg").write_bytes(b"junk")
    cfg = write_config(tmp_path, settle=0.1, log_level="warning")
    d = DaemonProcess(cfg)
    wait_for(lambda: len(visible(out)) >= 8 if out.exists() else False, 90, d, "the first outputs")
    d.signal(signal.SIGKILL)
    d.wait()
    assert done_count(d.text()) == 0 and "INFO" not in d.text()  # log_level: warning in the config
    # right after the kill: every visible output is complete; nothing vanished
    for p in visible(out):
        check_image(p)
    claims = inbox / ".knockout-claims"
    in_claims = [p for p in claims.rglob("*.jpg") if p.is_file()]
    everywhere = [*visible(inbox), *in_claims, *visible(done), *visible(tmp_path / "failed")]
    names = sorted(p.name for p in everywhere if not p.name.endswith(".error.txt"))
    assert names == sorted(["bad.jpg", *(f"f{i:03d}.jpg" for i in range(40))])  # each input once, somewhere
    # restart: recovery, then everything finishes
    bad_done = (tmp_path / "failed" / "bad.jpg").exists()
    r = knockout("watch", "-c", str(cfg), "--once", timeout=150)
    assert r.returncode == (0 if bad_done else 1), r.stderr
    assert "recovered the claims" in r.stderr
    outputs = sorted(p.name for p in visible(out))
    assert outputs == [f"f{i:03d}.png" for i in range(40)], outputs  # no duplicates, none missing
    assert sorted(p.name for p in visible(done)) == [f"f{i:03d}.jpg" for i in range(40)]
    assert [p.name for p in visible(tmp_path / "failed")] == ["bad.jpg", "bad.jpg.error.txt"]
    for p in visible(out):
        check_image(p)
    assert not hidden_files(out), hidden_files(out)
    assert not visible(inbox) and not [p for p in claims.rglob("*") if p.is_file()]


def test_sigterm_finishes_in_flight_and_exits_0(tmp_path):
    inbox, out, done = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "processed"
    inbox.mkdir()
    _drop(inbox, 30)
    cfg = write_config(tmp_path, settle=0.1, log_level="warning")
    d = DaemonProcess(cfg, "-v")  # -v wins over the config's log_level
    wait_for(lambda: out.exists() and len(visible(out)) >= 3, 90, d, "the first outputs")
    d.signal(signal.SIGTERM)
    assert d.wait(90) == 0
    left = sorted(p.name for p in visible(inbox))
    finished = sorted(p.name for p in visible(done))
    assert left and finished, "stopped mid-burst"
    assert sorted(left + finished) == [f"f{i:03d}.jpg" for i in range(30)]
    assert sorted(p.stem for p in visible(out)) == sorted(p[:-4] for p in finished)
    assert done_count(d.text()) == len(finished) and "SIGTERM: finishing the files in flight" in d.text()
    for p in visible(out):
        check_image(p)
    assert not hidden_files(out)
    assert not [p for p in (inbox / ".knockout-claims").rglob("*") if p.is_file()]


def test_sigterm_timeout_gives_unfinished_files_back(tmp_path):
    """A file still being cut goes back to the inbox; one whose output is written but whose input cannot
    be moved (processed/ is broken) stays claimed, and the next start finishes it without a second output."""
    inbox, out, done = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "processed"
    cfg = write_config(tmp_path, settle=0.1, workers=1, shutdown_timeout=0.2)  # a 24 MP cut takes longer
    d = DaemonProcess(cfg)
    huge = _huge_jpeg()
    try:
        d.wait_ready()
        # a file where the processed folder should be, made while the folder still exists so that it
        # never takes the folder's inode number (a file system may reuse it; then it looked the same)
        (tmp_path / "not-a-folder").write_text("a file where the processed folder should be")
        done.rmdir()
        (tmp_path / "not-a-folder").rename(done)
        (inbox / "a.jpg").write_bytes(image_bytes(1))
        wait_for(lambda: "output written, cannot move the input" in d.text(), 30, d, "a.jpg's move to fail")
        (inbox / "huge.jpg").write_bytes(huge)
        wait_for(lambda: _claimed(inbox, "huge.jpg"), 30, d, "the huge file to be claimed")
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.wait(60) == 0
        assert time.monotonic() - t0 < 20
    finally:
        d.stop()
    assert "huge.jpg not finished; given back to the inbox" in d.text()
    assert visible(inbox) == [inbox / "huge.jpg"] and _claimed(inbox, "a.jpg")
    assert visible(out) == [out / "a.png"] and not hidden_files(out)
    (inbox / "huge.jpg").unlink()
    done.unlink()
    r = knockout("watch", "-c", str(cfg), "--once")
    assert r.returncode == 0 and "0 back in the inbox, 1 finished" in r.stderr, r.stderr
    assert visible(out) == [out / "a.png"] and visible(done) == [done / "a.jpg"]
    assert not visible(inbox) and not _claimed(inbox, "a.jpg")


def test_two_daemons_on_one_inbox_process_each_file_once(tmp_path):
    """Then the one that claimed a file is killed (SIGKILL): the other, still running, takes the claim back."""
    inbox, out = tmp_path / "inbox", tmp_path / "outbox"
    a = DaemonProcess(write_config(tmp_path, "a.yaml", settle=0.2, workers=1))
    b = DaemonProcess(write_config(tmp_path, "b.yaml", settle=0.2, workers=1))
    huge = _huge_jpeg()
    try:
        a.wait_ready()
        b.wait_ready()
        _drop(inbox, 40)
        wait_for(lambda: len(visible(tmp_path / "processed")) == 40, 150, a, "40 processed")
        time.sleep(1.0)
        count_a, count_b = (done_count(x.text()) for x in (a, b))
        (inbox / "huge.jpg").write_bytes(huge)
        wait_for(lambda: _claimed(inbox, "huge.jpg"), 30, a, "huge.jpg claimed")
        (claim,) = (inbox / ".knockout-claims").rglob("huge.jpg")
        pid = int(claim.relative_to(inbox / ".knockout-claims").parts[0].rsplit("-", 2)[1])
        killed, survivor = (a, b) if pid == a.proc.pid else (b, a)
        assert pid == killed.proc.pid
        killed.signal(signal.SIGKILL)
        killed.wait()
        wait_for((tmp_path / "processed" / "huge.jpg").exists, 90, survivor, "the survivor to finish huge.jpg")
        assert "recovered the claims" in survivor.text()
    finally:
        a.stop()
        b.stop()
    # collision: suffix would have made NAME-1.png for a file processed twice
    assert sorted(p.name for p in visible(out)) == sorted(["huge.png", *(f"f{i:03d}.png" for i in range(40))])
    assert count_a + count_b == 40, (count_a, count_b)
    assert count_a > 0 and count_b > 0, (count_a, count_b)
    check_image(out / "huge.png", size=(4000, 6000))
    assert not visible(inbox) and not hidden_files(out)
    assert not [p for p in (inbox / ".knockout-claims").rglob("*") if p.is_file()]


def test_sighup_reloads_and_keeps_old_config_when_invalid(tmp_path):
    """Also: the reload restarts the observers (here as polling) and applies the log format; SIGINT stops."""
    inbox, out = tmp_path / "inbox", tmp_path / "outbox"
    cfg = write_config(tmp_path)
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        (inbox / "a.jpg").write_bytes(image_bytes(1))
        wait_for((out / "a.png").exists, 60, d, "a.png")
        check_image(out / "a.png", "RGBA")
        # the new config: masks, JSON log lines, and a polling observer with no rescans (so polling must
        # see b.jpg, and must not walk into a linked folder)
        write_config(
            tmp_path, settings={"output": "mask"}, observer="polling", poll_interval=0.3, rescan=0, log_format="json"
        )
        d.signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in d.text(), 30, d, "the reload")
        (inbox / "b.jpg").write_bytes(image_bytes(2))
        (tmp_path / "private").mkdir()
        (tmp_path / "private" / "p.jpg").write_bytes(image_bytes(4))
        os.symlink(tmp_path / "private", inbox / "elsewhere")
        wait_for((out / "b.png").exists, 60, d, "b.png")
        check_image(out / "b.png", "L")
        wait_for((tmp_path / "failed" / "elsewhere.error.txt").exists, 30, d, "the linked folder failed")
        cfg.write_text(cfg.read_text().replace("settle:", "setle:"))
        d.signal(signal.SIGHUP)
        wait_for(lambda: "keeping the old one" in d.text(), 30, d, "the rejected reload")
        assert "unknown key 'setle'" in d.text()
        r = knockout("status", "-c", str(cfg))  # still answers, from the running daemon's status file
        assert r.returncode == 0 and "running: pid" in r.stdout and "unknown key 'setle'" in r.stderr, r
        cfg.write_bytes(cfg.read_bytes().replace(b"setle:", b"settle:") + b"# Entr\xe9e\n")
        d.signal(signal.SIGHUP)  # saved in Latin-1: refused like any invalid config, the daemon goes on
        wait_for(lambda: "not UTF-8 text" in d.text(), 30, d, "the rejected Latin-1 reload")
        assert d.proc.poll() is None and d.text().count("keeping the old one") == 2
        (inbox / "c.jpg").write_bytes(image_bytes(3))
        wait_for((out / "c.png").exists, 60, d, "c.png")
        check_image(out / "c.png", "L")
        d.signal(signal.SIGINT)
        assert d.wait(60) == 0
    finally:
        d.stop()
    lines = [json.loads(x) for x in d.text().splitlines() if x.startswith("{")]
    assert [x["input"] for x in lines if x.get("event") == "processed"] == [str(inbox / "b.jpg"), str(inbox / "c.jpg")]
    assert any("SIGINT: finishing the files in flight" in x["message"] for x in lines)
    assert sorted(p.name for p in visible(out)) == ["a.png", "b.png", "c.png"]
    assert visible(tmp_path / "private") == [tmp_path / "private" / "p.jpg"]


def test_rescan_finds_missed_files_and_leave_keeps_inputs(tmp_path):
    """An observer that misses everything (polling once an hour): the periodic rescan finds the files.
    With after: leave the input stays, a record stops a repeat, a changed file is processed again."""
    inbox, out = tmp_path / "inbox", tmp_path / "outbox"
    jobs = [{"name": "keep", "inbox": "inbox", "outbox": "outbox", "after": "leave", "collision": "overwrite"}]
    cfg = write_config(tmp_path, jobs=jobs, observer="polling", poll_interval=3600, rescan=0.5)
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        (inbox / "a.jpg").write_bytes(image_bytes(1))
        wait_for(lambda: done_count(d.text()) == 1, 60, d, "a.png")
        time.sleep(2.5)  # several rescans: the record stops a repeat
        assert done_count(d.text()) == 1
        assert (inbox / "a.jpg").exists(), d.text()
        (inbox / "a.jpg").write_bytes(image_bytes(2, fmt="JPEG"))  # changed: processed again
        wait_for(lambda: done_count(d.text()) == 2, 60, d, "a.png again")
    finally:
        d.stop()
    assert visible(out) == [out / "a.png"]
    check_image(out / "a.png")


def test_readme_first_command_runs_the_default_config(tmp_path):
    """`knockout watch` with no options in a folder holding the repository's config.yaml (a fresh clone)."""
    shutil.copyfile(ROOT / "config.yaml", tmp_path / "config.yaml")
    exe = Path(sys.executable).with_name("knockout")  # the console script pip installed
    log = tmp_path / "watch.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(exe), "watch"], cwd=tmp_path, stdout=fh, stderr=subprocess.STDOUT)
    d = DaemonProcess.__new__(DaemonProcess)  # the helpers of DaemonProcess on this process
    d.proc, d.log, d._fh = proc, log, open(os.devnull, "w")
    try:
        d.wait_ready()
        for name in ("inbox", "outbox", "processed", "failed", ".knockout"):
            assert (tmp_path / name).is_dir(), name
        (tmp_path / "elsewhere.jpg").write_bytes(image_bytes(3))
        os.rename(tmp_path / "elsewhere.jpg", tmp_path / "inbox" / "portrait.jpg")
        wait_for((tmp_path / "processed" / "portrait.jpg").exists, 60, d, "portrait.jpg processed")
        line = "default: 0 queued, 0 in flight, 1 processed, 0 failed"  # the status file lags up to 1 s
        wait_for(lambda: line in knockout("status", cwd=tmp_path).stdout, 20, d, "knockout status to show it")
        assert knockout("status", cwd=tmp_path).returncode == 0
        d.signal(signal.SIGTERM)
        assert d.wait(60) == 0
    finally:
        d.stop()
    check_image(tmp_path / "outbox" / "portrait.png")
    assert "threshold" in d.text() and "portrait.jpg -> " in d.text()


def test_the_event_handler_only_enqueues_paths(tmp_path):
    """watchdog's thread never opens, stats or decodes: it puts (kind, path) on the queue, nothing more."""
    import queue

    from knockout.daemon.service import _Handler
    from watchdog.events import (
        DirCreatedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
        FileOpenedEvent,
    )

    q: queue.SimpleQueue = queue.SimpleQueue()
    h = _Handler(q)
    missing = tmp_path / "never-written.jpg"  # the handler must not need the file to exist
    for event in [
        FileCreatedEvent(str(missing)),
        FileOpenedEvent(str(missing)),
        FileModifiedEvent(str(missing)),
        FileClosedEvent(str(missing)),
        FileDeletedEvent(str(missing)),
        FileMovedEvent(str(tmp_path / "x.jpg.part"), str(tmp_path / "x.jpg")),
        DirCreatedEvent(str(tmp_path / "shoot")),
    ]:
        h.dispatch(event)
    got = []
    while not q.empty():
        got.append(q.get_nowait())
    assert got == [
        ("file", str(missing)),
        ("file", str(missing)),
        ("file", str(missing)),
        ("file", str(tmp_path / "x.jpg")),
        ("dir", str(tmp_path / "shoot")),
    ]


@pytest.mark.parametrize("how", ["removed", "renamed"])
def test_an_inbox_removed_or_replaced_is_watched_again(tmp_path, how):
    """The inbox removed and made again (or moved away and a new one made), with rescans off: the
    watch on the old folder has ended, so the daemon watches the new one and finds what is in it;
    what is in the moved-away folder is no longer its inbox and is left alone."""
    inbox, out = tmp_path / "inbox", tmp_path / "outbox"
    d = DaemonProcess(write_config(tmp_path, rescan=0))
    try:
        d.wait_ready()
        (inbox / "a.jpg").write_bytes(image_bytes(1))
        wait_for(lambda: done_count(d.text()) == 1, 60, d, "a.png")
        if how == "removed":
            shutil.rmtree(inbox)
        else:
            inbox.rename(tmp_path / "old inbox")
        time.sleep(1.5)  # the daemon looks every second (without this pause it sees only the new folder)
        inbox.mkdir()
        (inbox / "early.jpg").write_bytes(image_bytes(2))  # most likely before the new watch: found by its scan
        time.sleep(1.5)
        (inbox / "late.jpg").write_bytes(image_bytes(3))  # most likely after it: found by an event
        if how == "renamed":
            (tmp_path / "old inbox" / "elsewhere.jpg").write_bytes(image_bytes(4))
        wait_for(lambda: done_count(d.text()) == 3, 60, d, "early.png and late.png")
        time.sleep(1.5)
    finally:
        d.stop()
    assert visible(out) == [out / "a.png", out / "early.png", out / "late.png"], d.text()
    assert not visible(inbox), d.text()
    assert "was removed or replaced; watching it again" in d.text()
    if how == "renamed":
        assert visible(tmp_path / "old inbox") == [tmp_path / "old inbox" / "elsewhere.jpg"]
