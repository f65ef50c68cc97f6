"""Issue 14, item 1: nothing outside the daemon's own claims is ever deleted or renamed.

An attacker with write access to the inbox plants links and files where the daemon keeps its
claims; real `knockout watch` processes on real folders must refuse them and touch nothing.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import yaml
from daemon_util import DaemonProcess, image_bytes, knockout, visible, wait_for, write_config

pytestmark = pytest.mark.slow


def _old_photos(root: Path) -> list[Path]:
    """A studio folder whose sub-folders look like long-dead claims (older than claim_timeout)."""
    made = []
    for sub in ("outbox", "processed", "failed", "2024-shoot"):
        (root / sub).mkdir(parents=True)
        p = root / sub / "photo.jpg"
        p.write_bytes(image_bytes(1))
        made.append(p)
        old = time.time() - 10_000
        os.utime(root / sub, (old, old))
    return made


def test_link_named_claims_is_refused_and_the_target_untouched(tmp_path):
    studio = tmp_path / "studio"
    precious = _old_photos(studio)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / ".knockout-claims").symlink_to(studio, target_is_directory=True)
    (inbox / "a.jpg").write_bytes(image_bytes(2))
    cfg = write_config(tmp_path, claim_timeout=5)
    r = knockout("watch", "-c", str(cfg), "--once", timeout=60)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "symbolic link" in lines[0] and ".knockout-claims" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert all(p.exists() for p in precious)
    assert sorted(p.name for p in studio.iterdir()) == ["2024-shoot", "failed", "outbox", "processed"]
    assert (inbox / "a.jpg").exists()  # nothing was claimed through the link


def test_link_swapped_in_while_running_deletes_nothing(tmp_path):
    studio = tmp_path / "studio"
    precious = _old_photos(studio)
    inbox = tmp_path / "inbox"
    cfg = write_config(tmp_path, claim_timeout=2, rescan=0.5)
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        claims = inbox / ".knockout-claims"
        claims.rename(tmp_path / "moved-claims")  # the attacker moves the real one away...
        claims.symlink_to(studio, target_is_directory=True)  # ...and puts a link in its place
        (inbox / "b.jpg").write_bytes(image_bytes(3))
        wait_for(lambda: "symbolic link" in d.text(), 30, d, "the daemon to refuse the link")
        time.sleep(4)  # several recovery rounds (claim_timeout 2 s, rescan 0.5 s)
        assert all(p.exists() for p in precious), d.text()
        assert (inbox / "b.jpg").exists()  # it waits: never claimed through the link
        assert d.text().count("symbolic link") == 1  # said once, not every round
    finally:
        d.stop()
    assert all(p.exists() for p in precious)


def test_an_inbox_swapped_for_a_link_while_running_is_never_followed(tmp_path):
    """mv inbox inbox.old; ln -s elsewhere inbox: the daemon made claims there and took the files."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.jpg").write_bytes(image_bytes(4))
    inbox = tmp_path / "inbox"
    cfg = write_config(tmp_path, rescan=0.5)
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        inbox.rename(tmp_path / "inbox.old")
        inbox.symlink_to(elsewhere, target_is_directory=True)
        wait_for(lambda: "is a link now" in d.text(), 30, d, "the daemon to refuse the linked inbox")
        time.sleep(3)  # several rescans
        assert d.text().count("is a link now") == 1, d.text()  # said once
    finally:
        d.stop()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["private.jpg"]
    assert not (tmp_path / "processed").exists() or not visible(tmp_path / "processed")


def test_regular_file_named_claims_is_one_clear_line(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / ".knockout-claims").write_text("not a folder")
    cfg = write_config(tmp_path)
    r = knockout("watch", "-c", str(cfg), "--once", timeout=60)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not a folder" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert (inbox / ".knockout-claims").read_text() == "not a folder"


def test_links_planted_inside_the_claims_are_never_followed(tmp_path):
    studio = tmp_path / "studio"
    precious = _old_photos(studio)
    inbox = tmp_path / "inbox"
    claims = inbox / ".knockout-claims"
    claims.mkdir(parents=True)
    old = time.time() - 10_000
    # a link posing as a dead daemon's claim folder
    (claims / "gone-1-abc").symlink_to(studio, target_is_directory=True)
    # a real dead claim folder whose files/ is a link to the studio
    fake = claims / "gone-2-def"
    fake.mkdir()
    (fake / "files").symlink_to(studio / "outbox", target_is_directory=True)
    (fake / "owner.json").write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    os.utime(fake / "owner.json", (old, old))
    # a folder without a daemon's owner.json: not the daemon's, left alone
    stranger = claims / "not-a-claim"
    stranger.mkdir()
    (stranger / "keep.jpg").write_bytes(image_bytes(4))
    os.utime(stranger, (old, old))
    # a genuine dead claim beside them is still recovered
    real = claims / f"{socket.gethostname()}-999999999-aaaaaa"
    (real / "files").mkdir(parents=True)
    (real / "files" / "back.jpg").write_bytes(image_bytes(5))
    (real / "owner.json").write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    os.utime(real / "owner.json", (old, old))
    cfg = write_config(tmp_path, claim_timeout=5)
    r = knockout("watch", "-c", str(cfg), "--once", timeout=120)
    assert r.returncode == 0, r.stderr
    assert all(p.exists() for p in precious)
    assert sorted(p.name for p in studio.iterdir()) == ["2024-shoot", "failed", "outbox", "processed"]
    assert (claims / "gone-1-abc").is_symlink()
    assert (fake / "files").is_symlink()
    assert (stranger / "keep.jpg").exists()
    assert [p.name for p in visible(tmp_path / "outbox")] == ["back.png"]


def test_a_subfolder_swapped_for_a_link_between_scan_and_claim_moves_nothing_outside(tmp_path):
    """Issue 14, abuse again: inbox/sub/a.jpg seen, then `sub` replaced by a link to another folder
    holding an a.jpg of the same size and time: the claim's rename went through the link."""
    cfg = write_config(
        tmp_path,
        settle=3.0,
        jobs=[{"name": "main", "inbox": "inbox", "outbox": "outbox", "recursive": True}],
    )
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    (inbox / "sub").mkdir(parents=True)
    outside.mkdir()
    data = image_bytes(3)
    (inbox / "sub" / "a.jpg").write_bytes(data)
    (outside / "a.jpg").write_bytes(data)
    st = os.stat(inbox / "sub" / "a.jpg")
    os.utime(outside / "a.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        os.rename(inbox / "sub", tmp_path / "moved-away")  # within the settle time: the scan saw sub/a.jpg
        os.symlink(outside, inbox / "sub")
        wait_for(lambda: "sub/a.jpg" in d.text(), 60, d, "sub/a.jpg to be looked at")
        time.sleep(2)
    finally:
        d.stop()
    assert (outside / "a.jpg").read_bytes() == data, d.text()  # never moved, never touched
    assert sorted(p.name for p in outside.iterdir()) == ["a.jpg"]
    assert not (tmp_path / "outbox" / "sub").exists(), d.text()
    assert (tmp_path / "moved-away" / "a.jpg").exists()
    assert "sub/a.jpg: sub on its path is a link or not a folder now; not followed" in d.text(), d.text()


def test_outbox_and_processed_replaced_by_links_while_running_are_never_written_through(tmp_path):
    """Issue 14, abuse again: the outbox, then processed/, renamed away and replaced by a link
    (or another folder) while the daemon runs: the outputs and inputs went where the links point."""
    cfg = write_config(tmp_path)
    inbox, outbox, done, elsewhere = (tmp_path / n for n in ("inbox", "outbox", "processed", "elsewhere"))
    elsewhere.mkdir()
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        os.rename(outbox, tmp_path / "outbox-old")
        os.symlink(elsewhere, outbox)
        (inbox / "a.jpg").write_bytes(image_bytes(1))
        wait_for((tmp_path / "failed" / "a.jpg.error.txt").exists, 60, d, "a.jpg to fail")
        os.unlink(outbox)
        (tmp_path / "other").mkdir()
        os.rename(tmp_path / "other", outbox)  # another real folder: not the one it was either
        (inbox / "b.jpg").write_bytes(image_bytes(2))
        wait_for((tmp_path / "failed" / "b.jpg.error.txt").exists, 60, d, "b.jpg to fail")
        os.rmdir(outbox)
        os.rename(tmp_path / "outbox-old", outbox)  # back: work goes on
        os.rename(done, tmp_path / "processed-old")
        os.symlink(elsewhere, done)
        (inbox / "c.jpg").write_bytes(image_bytes(3))
        wait_for((tmp_path / "failed" / "c.jpg.error.txt").exists, 60, d, "c.jpg to fail")
    finally:
        d.stop()
    assert list(elsewhere.iterdir()) == [], d.text()
    for name in ("a", "b"):
        reason = yaml.safe_load((tmp_path / "failed" / f"{name}.jpg.error.txt").read_text())["reason"]
        assert "is not the folder it was when the daemon started" in reason, reason
    reason = yaml.safe_load((tmp_path / "failed" / "c.jpg.error.txt").read_text())["reason"]
    assert "but the input cannot be moved" in reason and "is not the folder it was" in reason, reason
    assert [p.name for p in visible(outbox)] == ["c.png"]


def test_recovered_claims_are_never_put_back_through_a_linked_inbox_folder(tmp_path):
    """A dead daemon's claims of sub/a.jpg (not cut yet) and sub/b.jpg (cut; after: leave puts it
    back) were moved back into inbox/sub while sub was a link to another folder: both landed there."""
    inbox, outside, outbox = tmp_path / "inbox", tmp_path / "outside", tmp_path / "outbox"
    outside.mkdir()
    inbox.mkdir()
    (outbox / "sub").mkdir(parents=True)
    os.symlink(outside, inbox / "sub")
    dead = inbox / ".knockout-claims" / f"{socket.gethostname()}-999999999-aaaaaa"
    (dead / "files" / "sub").mkdir(parents=True)
    (dead / "out" / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (dead / "files" / "sub" / name).write_bytes(image_bytes(1))
    (outbox / "sub" / "b.png").write_bytes(b"the cut-out of b")  # b's output was written: only its move is missing
    (dead / "out" / "sub" / "b.jpg.json").write_text(json.dumps({"output": str(outbox / "sub" / "b.png")}))
    (dead / "owner.json").write_text(json.dumps({"host": socket.gethostname(), "pid": 999999999}))
    cfg = write_config(tmp_path, jobs=[{"name": "main", "inbox": "inbox", "outbox": "outbox", "after": "leave"}])
    r = knockout("watch", "-c", str(cfg), "--once", timeout=120)
    assert list(outside.iterdir()) == [], r.stderr  # nothing moved through the link
    for name in ("a.jpg", "b.jpg"):
        assert f"cannot recover sub/{name}" in r.stderr and "symbolic link" in r.stderr, r.stderr
    assert (tmp_path / "failed" / "sub").is_symlink()  # the link itself is filed as failed, as before
    r = knockout("watch", "-c", str(cfg), "--once", timeout=120)  # the link gone: the next start loses nothing
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (inbox / "sub").iterdir()) == ["a.jpg", "b.jpg"], r.stderr
    assert sorted(p.name for p in visible(outbox)) == ["a.png", "b.png"], r.stderr
    assert list(outside.iterdir()) == []


def test_a_state_dir_inside_an_inbox_is_refused_so_no_link_there_is_written_through(tmp_path):
    """state_dir: inbox/.state was accepted: a link put there by whoever writes to the inbox made the
    daemon append its journal to another folder's journal.jsonl and write status.json beside it."""
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    inbox.mkdir()
    outside.mkdir()
    (outside / "journal.jsonl").write_text("someone else's file\n")
    os.symlink(outside, inbox / ".state")
    (inbox / "a.jpg").write_bytes(image_bytes(1))
    cfg = write_config(tmp_path, state_dir="inbox/.state")
    r = knockout("watch", "-c", str(cfg), "--once", timeout=60)
    assert r.returncode == 2, r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "state_dir" in line and "inside jobs[0].inbox" in line, r.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["journal.jsonl"]
    assert (outside / "journal.jsonl").read_text() == "someone else's file\n"
    assert (inbox / "a.jpg").exists()  # nothing done: the config is fixed first


def test_a_dead_daemons_half_written_cut_outs_are_removed_from_the_review_folder_too(tmp_path):
    """A daemon killed while writing a flagged cut-out left .NAME.knockout-TOKEN.tmp in review/:
    recovery removed a dead daemon's temporary files from the outbox only, so these stayed for ever."""
    inbox, outbox, review = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "review"
    token = f"{socket.gethostname()}-999999999-bbbbbb"
    dead = inbox / ".knockout-claims" / token
    (dead / "files").mkdir(parents=True)
    (dead / "owner.json").write_text(json.dumps({"host": socket.gethostname(), "pid": 999999999}))
    (outbox / "sub").mkdir(parents=True)
    (review / "sub").mkdir(parents=True)
    left = [outbox / "sub" / f".a.png.knockout-{token}.tmp", review / "sub" / f".b.png.knockout-{token}.tmp"]
    for p in left:
        p.write_bytes(b"half a cut-out")
    mine = review / "sub" / ".c.png.knockout-someone-else.tmp"  # not the dead daemon's: left alone
    mine.write_bytes(b"x")
    r = knockout("watch", "-c", str(write_config(tmp_path)), "--once", timeout=120)
    assert r.returncode == 0, r.stderr
    assert [p for p in left if p.exists()] == [], r.stderr
    assert mine.exists()


def test_configured_folders_that_are_links_their_owner_made_are_used(tmp_path):
    """inbox: inbox where inbox is a link its owner made (/srv/inbox -> /mnt/share/inbox): every
    claim failed ("cannot be claimed (Not a directory)"), the inbox's own folder being opened with
    O_NOFOLLOW like the folders below it. The configured folders are followed; what is below never."""
    for name in ("inbox", "outbox", "processed"):
        (tmp_path / f"real-{name}").mkdir()
        os.symlink(tmp_path / f"real-{name}", tmp_path / name)
    (tmp_path / "inbox" / "sub").mkdir()
    (tmp_path / "inbox" / "a.jpg").write_bytes(image_bytes(1))
    (tmp_path / "inbox" / "sub" / "b.jpg").write_bytes(image_bytes(2))
    r = knockout("watch", "-c", str(write_config(tmp_path)), "--once", timeout=120)
    assert r.returncode == 0 and "cannot be claimed" not in r.stderr, r.stderr
    assert sorted(p.name for p in visible(tmp_path / "real-outbox")) == ["a.png", "b.png"], r.stderr
    assert sorted(p.name for p in visible(tmp_path / "real-processed")) == ["a.jpg", "b.jpg"], r.stderr
