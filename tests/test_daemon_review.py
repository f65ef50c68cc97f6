"""Issue 11: a real daemon sends doubtful cut-outs to the review folder, with a sidecar, and counts them."""

from __future__ import annotations

import pytest
import yaml
from _faces import face_headshot
from daemon_util import DaemonProcess, knockout, visible, wait_for, write_config
from PIL import Image

from knockout import Settings

pytestmark = pytest.mark.slow


def _drop(inbox, name, **kw) -> None:
    rgb, _ = face_headshot(**kw)
    tmp = inbox / f".{name}.part"
    Image.fromarray(rgb).save(tmp, "PNG")
    tmp.rename(inbox / name)


def test_doubtful_cut_outs_land_in_review_with_a_sidecar_and_are_counted(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "team").mkdir(parents=True)
    cfg = write_config(tmp_path)
    d = DaemonProcess(cfg)
    try:
        d.wait_ready()
        _drop(inbox, "clear.png")
        _drop(inbox / "team", "dark.png", backdrop=(28, 28, 30), shirt=(36, 34, 40))  # a shirt ~8 delta E off
        wait_for(lambda: len(visible(tmp_path / "processed")) == 2, 90, d, "both inputs filed")
        wait_for(
            lambda: "1 to review" in knockout("status", "-c", str(cfg)).stdout, 20, d, "the review count in status"
        )
    finally:
        d.stop()
    assert visible(tmp_path / "outbox") == [tmp_path / "outbox" / "clear.png"]
    review = tmp_path / "review" / "team"  # sub-folders mirrored as in the outbox
    assert sorted(p.name for p in review.iterdir()) == ["dark.png", "dark.review.txt"]
    note = yaml.safe_load((review / "dark.review.txt").read_text())
    assert note["confidence"] < note["review_below"] == Settings().review_below
    assert "unstable" in note["reasons"].split()
    assert note["file"].endswith("team/dark.png")
    with Image.open(review / "dark.png") as im:
        assert im.mode == "RGBA" and float(im.text["knockout:confidence"]) == pytest.approx(
            note["confidence"], abs=1e-3
        )
    assert "to review: confidence" in d.text()


def test_review_null_keeps_them_in_the_outbox(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cfg = write_config(tmp_path, jobs=[{"name": "main", "inbox": "inbox", "outbox": "outbox", "review": None}])
    _drop(inbox, "dark.png", backdrop=(28, 28, 30), shirt=(36, 34, 40))
    r = knockout("watch", "-c", str(cfg), "--once")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in visible(tmp_path / "outbox")] == ["dark.png"]  # no sidecar there: the PNG says it
    assert not (tmp_path / "review").exists()
