"""The filing stage on real folders: outputs written, inputs moved, one-line failure records, retries."""

from __future__ import annotations

import io
import os
from pathlib import PurePath

import yaml
from knockout.daemon.claiming import Claimer
from knockout.daemon.executor import WorkLost
from knockout.daemon.filing import Filer
from knockout.daemon.records import Outcome
from knockout.daemon.seen import Seen
from knockout.daemon.status import Status
from PIL import Image
from stage_util import claimed, stage_config

from knockout.imageio import ImageError
from knockout.process import process_bytes


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 200, 200)).save(buf, "JPEG")
    return buf.getvalue()


def _filer(tmp_path, squeeze=None, **job):
    cfg = stage_config(tmp_path, **job)
    claimer, status, requeued = Claimer("me"), Status(), []
    filer = Filer(
        cfg,
        claimer=claimer,
        status=status,
        seen=Seen(cfg.state_dir),
        requeue=lambda path, job, seen, delay: requeued.append(path),
        squeeze=squeeze,
    )
    return cfg, claimer, status, filer, requeued


def test_a_result_is_written_and_its_input_moved(tmp_path):
    cfg, claimer, status, filer, _ = _filer(tmp_path)
    job = cfg.jobs[0]
    w = claimed(cfg, claimer, "sub/a.jpg", _jpeg())
    filer.handle(Outcome(w, result=process_bytes(_jpeg(), settings=job.settings)))
    with Image.open(job.outbox / "sub" / "a.png") as im:
        assert im.mode == "RGBA"
    assert (job.processed / "sub" / "a.jpg").read_bytes() == _jpeg()
    assert status.of(job).processed == 1 and len(filer) == 0


def test_a_long_running_daemon_keeps_no_record_of_outputs_it_does_not_need(tmp_path):
    """Every output written was remembered (path -> input) for the daemon's lifetime, whatever the
    collision policy, though only collision: overwrite reads it: memory grew with every file cut."""
    cfg, claimer, _status, filer, _ = _filer(tmp_path)  # collision: suffix, the default
    job = cfg.jobs[0]
    for name in ("a.jpg", "b.jpg", "sub/c.jpg"):
        filer.handle(
            Outcome(claimed(cfg, claimer, name, _jpeg()), result=process_bytes(_jpeg(), settings=job.settings))
        )
    assert len(list(job.outbox.rglob("*.png"))) == 3 and filer.made == {}


def test_an_internal_error_goes_to_failed_with_a_one_line_record(tmp_path):
    cfg, claimer, status, filer, _ = _filer(tmp_path)
    job = cfg.jobs[0]
    w = claimed(cfg, claimer, "b.jpg", b"data")
    long_reason = "x" * 300
    filer.handle(Outcome(w, error=RuntimeError(long_reason)))
    record = (job.failed / "b.jpg.error.txt").read_text()
    assert yaml.safe_load(record)["reason"] == f"internal error: RuntimeError: {long_reason}"
    (line,) = [line for line in record.splitlines() if line.startswith("reason: ")]
    assert yaml.safe_load(line)["reason"].endswith(long_reason)  # the whole value on its one line
    assert status.of(job).failed == 1


def test_a_bad_image_is_looked_at_again_and_failed_only_while_unchanged(tmp_path):
    cfg, claimer, status, filer, requeued = _filer(tmp_path)
    job = cfg.jobs[0]
    w = claimed(cfg, claimer, "c.jpg", b"not an image")
    filer.handle(Outcome(w, error=ImageError("not an image")))
    assert requeued == [job.inbox / "c.jpg"] and not (job.failed / "c.jpg").exists()  # its writer may be pausing
    w = claimed(cfg, claimer, "c.jpg", b"not an image, longer")  # it changed: counting starts again
    filer.handle(Outcome(w, error=ImageError("not an image")))
    w = claimed(cfg, claimer, "c.jpg", None)
    filer.handle(Outcome(w, error=ImageError("not an image")))
    assert len(requeued) == 3 and status.of(job).failed == 0
    w = claimed(cfg, claimer, "c.jpg", None)  # third look, unchanged: failed
    filer.handle(Outcome(w, error=ImageError("not an image")))
    assert (job.failed / "c.jpg").exists() and status.of(job).failed == 1 and len(requeued) == 3


def test_lost_work_goes_back_to_the_inbox_and_is_retried_then_failed(tmp_path):
    cfg, claimer, status, filer, requeued = _filer(tmp_path)
    job = cfg.jobs[0]
    for attempt in range(cfg.retries + 1):
        w = claimed(cfg, claimer, "d.jpg", b"d")
        filer.handle(Outcome(w, error=WorkLost("worker died")))
        if attempt < cfg.retries:
            assert requeued[-1] == job.inbox / "d.jpg" and (job.inbox / "d.jpg").exists()
    assert (job.failed / "d.jpg").exists() and "gave up after 3 attempts" in status.of(job).last_error


def test_a_link_inside_the_outbox_is_never_written_through(tmp_path):
    cfg, claimer, status, filer, requeued = _filer(tmp_path)
    job = cfg.jobs[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, job.outbox / "sub")
    w = claimed(cfg, claimer, "sub/e.jpg", _jpeg())
    filer.handle(Outcome(w, result=process_bytes(_jpeg(), settings=job.settings)))
    assert list(elsewhere.iterdir()) == [] and requeued == []
    assert (job.failed / "sub" / "e.jpg").exists() and "is a symbolic link" in status.of(job).last_error


def test_after_leave_the_input_is_recorded_before_it_is_back(tmp_path):
    cfg, claimer, _status, filer, _ = _filer(tmp_path, after="leave")
    job = cfg.jobs[0]
    w = claimed(cfg, claimer, "f.jpg", _jpeg())
    st = os.lstat(w.claim)
    filer.handle(Outcome(w, result=process_bytes(_jpeg(), settings=job.settings)))
    assert (job.inbox / "f.jpg").exists()
    assert ("main", PurePath("f.jpg"), (st.st_size, st.st_mtime_ns)) in filer.seen


def test_running_out_of_memory_is_retried_with_fewer_in_flight_not_failed(tmp_path):
    squeezed = []
    cfg, claimer, status, filer, requeued = _filer(tmp_path, squeeze=lambda: squeezed.append(1))
    job = cfg.jobs[0]
    w = claimed(cfg, claimer, "big.jpg", b"pretend 60 MP")
    filer.handle(Outcome(w, error=MemoryError("not enough memory to decode this image")))
    assert requeued == [job.inbox / "big.jpg"] and squeezed == [1] and status.of(job).failed == 0


def test_a_failed_input_takes_a_name_whose_record_name_is_free_too(tmp_path):
    """failed/e.jpg.error.txt/ a folder (mirrored from the inbox): e.jpg went to failed/e.jpg and its
    record elsewhere; the input now takes the first name whose record lies beside it."""
    from knockout.daemon.filing import record_path

    cfg, claimer, status, filer, _ = _filer(tmp_path)
    job = cfg.jobs[0]
    (job.failed / "e.jpg.error.txt").mkdir(parents=True)
    w = claimed(cfg, claimer, "e.jpg", b"data")
    filer.handle(Outcome(w, error=RuntimeError("boom")))
    (moved,) = [p for p in job.failed.iterdir() if p.suffix == ".jpg"]
    assert moved.read_bytes() == b"data"
    assert yaml.safe_load(record_path(moved).read_text())["file"] == str(job.inbox / "e.jpg")
    assert status.of(job).failed == 1


def test_a_failure_record_never_replaces_a_file_that_appeared_in_its_place(tmp_path, monkeypatch):
    """Between the input's move and its record's write another file takes the record's name: it is
    left alone, the record goes to a free name."""
    from knockout.daemon import files
    from knockout.daemon.filing import record_path

    cfg, claimer, status, filer, _ = _filer(tmp_path)
    job = cfg.jobs[0]
    real_move = files.move_noreplace

    def move_then_race(src, dst, **kwargs):
        out = real_move(src, dst, **kwargs)
        record_path(out).write_text("another input's record\n")
        return out

    monkeypatch.setattr(files, "move_noreplace", move_then_race)
    w = claimed(cfg, claimer, "b.jpg", b"data")
    filer.handle(Outcome(w, error=RuntimeError("boom")))
    assert (job.failed / "b.jpg.error.txt").read_text() == "another input's record\n"
    records = [p for p in job.failed.iterdir() if p.name != "b.jpg.error.txt" and p.suffix == ".txt"]
    assert (
        len(records) == 1 and yaml.safe_load(records[0].read_text())["reason"] == "internal error: RuntimeError: boom"
    )
    assert status.of(job).failed == 1


def test_a_review_note_that_cannot_be_written_keeps_the_cut_out_and_is_no_retry(tmp_path, caplog):
    """collision: overwrite with review/a.review.txt/ a folder (mirrored from the inbox): the note of
    a flagged a.png cannot be written. The cut-out stays and the input is processed, said once;
    before, the OSError sent the input back to the inbox to be cut again."""
    settings = {"method": "threshold", "review_below": 1.0}  # every cut-out flagged
    cfg, claimer, status, filer, requeued = _filer(tmp_path, collision="overwrite", settings=settings)
    job = cfg.jobs[0]
    (job.review / "a.review.txt").mkdir(parents=True)
    w = claimed(cfg, claimer, "a.jpg", _jpeg())
    res = process_bytes(_jpeg(), settings=job.settings)
    assert res.review  # flagged: written to review/ with a note
    filer.handle(Outcome(w, result=res))
    assert (job.review / "a.png").is_file() and (job.processed / "a.jpg").is_file()
    assert status.of(job).processed == 1 and requeued == [] and len(filer) == 0
    assert "its review note" in caplog.text


def test_a_claim_whose_folder_was_swapped_for_a_link_is_never_moved_through_it(tmp_path):
    """files/ in the claims replaced by a link after the claim: filing moved the link's target to processed/."""
    cfg, claimer, _status, filer, requeued = _filer(tmp_path)
    job = cfg.jobs[0]
    w = claimed(cfg, claimer, "a.jpg", _jpeg())
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "a.jpg").write_bytes(b"precious")
    own = claimer.of(job).files
    own.rename(tmp_path / "moved-files")
    own.symlink_to(victim, target_is_directory=True)
    filer.handle(Outcome(w, result=process_bytes(_jpeg(), settings=job.settings)))
    assert sorted(p.name for p in victim.iterdir()) == ["a.jpg"] and (victim / "a.jpg").read_bytes() == b"precious"
    assert not list(job.processed.iterdir()) and not list(job.failed.iterdir()) and requeued == []
    assert (tmp_path / "moved-files" / "a.jpg").read_bytes() == _jpeg()  # still claimed: recovered at the next start
