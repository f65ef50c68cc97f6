"""``knockout report``: the journal's review page, loaded from disk in a real headless chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest
from daemon_util import image_bytes, knockout, write_config
from knockout.daemon import journal
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")

# loads the page in a frame (same folder, file access allowed), then reports what the browser made of it
PROBE = """<!doctype html><html><body><iframe id="f" src="PAGE" width="1000" height="800"></iframe><script>
document.getElementById('f').onload = function () {
  var d = this.contentDocument, imgs = Array.from(d.images), rows = Array.from(d.querySelectorAll('.row'));
  var out = {images: imgs.length, rendered: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    processed: d.getElementById('n-processed').textContent, failed: d.getElementById('n-failed').textContent,
    rows: rows.map(r => r.dataset.event), reasons: Array.from(d.querySelectorAll('.reason')).map(e => e.textContent)};
  d.getElementById('job').value = 'other'; d.getElementById('job').dispatchEvent(new Event('change'));
  out.filtered = d.getElementById('n-processed').textContent;
  document.body.innerHTML = '<pre id="result">' + JSON.stringify(out) + '</pre>';
};
</script></body></html>"""


def _chromium(*args: str) -> str:
    r = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@needs_chromium
def test_the_review_page_renders_the_journal_in_a_browser(tmp_path):
    jobs = [
        {"name": "main", "inbox": "inbox", "outbox": "outbox", "review": None},
        {"name": "other", "inbox": "inbox2", "outbox": "outbox2", "review": None},
    ]
    cfg = write_config(tmp_path, jobs=jobs)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(2):
        (inbox / f"face{i}.jpg").write_bytes(image_bytes(i))
    (tmp_path / "inbox2").mkdir()
    (tmp_path / "inbox2" / "face2.jpg").write_bytes(image_bytes(2))
    (inbox / "broken.jpg").write_bytes(b"not an image")
    r = knockout("watch", "-c", str(cfg), "--once")
    assert r.returncode == 1, r.stderr  # one failed
    recs = list(journal.read(tmp_path / ".state-config"))
    n_done = sum(x["event"] == "processed" for x in recs)
    n_failed = sum(x["event"] == "failed" for x in recs)
    assert (n_done, n_failed) == (3, 1)

    page = tmp_path / "review.html"
    r = knockout("report", "-c", str(cfg), "-o", str(page))
    assert r.returncode == 0 and "3 processed, 1 failed" in r.stdout, r.stderr
    text = page.read_text()
    assert "http:" not in text and "https:" not in text  # self-contained: nothing fetched
    shown = [float(c) for c in re.findall(r"confidence (\d\.\d\d)", text)]
    assert shown == sorted(shown) and len(shown) == 3  # lowest first
    assert html.escape((tmp_path / "outbox" / "face0.png").as_uri()) in text  # names link the full-size files

    (tmp_path / "probe.html").write_text(PROBE.replace("PAGE", page.name))
    dom = _chromium("--virtual-time-budget=20000", "--dump-dom", (tmp_path / "probe.html").as_uri())
    got = json.loads(html.unescape(re.search(r'<pre id="result">(.*?)</pre>', dom, re.S).group(1)))
    assert got["images"] == 2 * n_done  # input and cut-out per processed file (the broken input has none)
    assert got["rendered"] == got["images"]
    assert (int(got["processed"]), int(got["failed"])) == (n_done, n_failed)
    assert got["rows"] == ["failed"] + ["processed"] * n_done
    assert len(got["reasons"]) == 1 and "not an image" in got["reasons"][0]
    assert got["filtered"] == "1"  # the job filter hides the rows of other jobs

    shot = tmp_path / "review.png"
    _chromium("--window-size=1000,900", f"--screenshot={shot}", page.as_uri())
    with Image.open(shot) as im:
        assert im.size == (1000, 900) and len(im.convert("L").getcolors(1 << 16) or ()) > 10  # not blank
