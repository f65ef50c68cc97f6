"""The daemon (a real ``knockout watch --once`` process) takes every extension Pillow reads for photos,
says when only the first frame of a file is used, and keeps or strips metadata as ``knockout cut`` does."""

from __future__ import annotations

import io

from conftest import synthetic_headshot
from daemon_util import check_image, image_bytes, knockout, visible, write_config
from PIL import Image, features


def test_daemon_takes_pillow_extensions_warns_on_frames_and_keeps_exif(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jfif").write_bytes(image_bytes(1))
    (inbox / "b.jp2").write_bytes(image_bytes(2, fmt="JPEG2000"))
    expected = ["a.png", "b.png", "d.png", "e.png"]
    if features.check("avif"):
        (inbox / "c.avif").write_bytes(image_bytes(3, fmt="AVIF"))
        expected.insert(2, "c.png")
    rgb, _ = synthetic_headshot(120, 90)
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    (inbox / "d.gif").write_bytes(buf.getvalue())
    exif = Image.Exif()
    exif[0x013B] = "Ann Artist"
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", exif=exif, dpi=(300, 300))
    (inbox / "e.jpg").write_bytes(buf.getvalue())
    cfg = write_config(tmp_path)
    r = knockout("watch", "-c", str(cfg), "--once", timeout=150)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "outbox"
    assert [p.name for p in visible(out)] == expected
    for p in visible(out):
        check_image(p)
    assert "main: d.gif: has 2 frames or pages; only the first is cut out" in r.stderr
    with Image.open(out / "e.png") as im:
        assert im.getexif()[0x013B] == "Ann Artist" and round(im.info["dpi"][0]) == 300
    # strip: true in a job's settings drops them
    (inbox / "e.jpg").write_bytes(buf.getvalue())
    cfg = write_config(tmp_path, jobs=[{"inbox": "inbox", "outbox": "stripped", "settings": {"strip": True}}])
    r = knockout("watch", "-c", str(cfg), "--once", timeout=150)
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "stripped" / "e.png") as im:
        assert not im.getexif() and "dpi" not in im.info
