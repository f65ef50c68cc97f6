"""``knockout report``: the journal's review page, loaded from disk in a real headless chromium."""

from __future__ import annotations

import html
import json
import os
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
    rows: rows.map(r => r.dataset.event), reasons: Array.from(d.querySelectorAll('.reason')).map(e => e.textContent),
    links: Array.from(d.querySelectorAll('a')).map(a => a.href),
    days: Array.from(d.getElementById('day').options).map(o => o.value),
    colour: Array.from(d.querySelectorAll('img.on-colour')).map(i => getComputedStyle(i).backgroundColor)};
  var bg = d.getElementById('bg'); bg.value = '#ff0000'; bg.dispatchEvent(new Event('input'));
  out.switched = Array.from(d.querySelectorAll('img.on-colour')).map(i => getComputedStyle(i).backgroundColor);
  d.getElementById('job').value = 'JOB'; d.getElementById('job').dispatchEvent(new Event('change'));
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


def _probe(page, *, job: str) -> dict:
    """What chromium makes of ``page``: images, counts, rows, links, colours (before and after
    switching the colour control to red), and the processed count once filtered to ``job``."""
    probe = page.parent / "probe.html"
    probe.write_text(PROBE.replace("PAGE", page.name).replace("JOB", job))
    dom = _chromium("--virtual-time-budget=20000", "--dump-dom", probe.as_uri())
    return json.loads(html.unescape(re.search(r'<pre id="result">(.*?)</pre>', dom, re.S).group(1)))


def _screenshot(page, shot) -> None:
    _chromium("--window-size=1000,900", f"--screenshot={shot}", page.as_uri())
    with Image.open(shot) as im:
        assert im.size == (1000, 900) and len(im.convert("L").getcolors(1 << 16) or ()) > 10  # not blank


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

    got = _probe(page, job="other")
    assert got["images"] == 3 * n_done  # input, cut-out on the checkerboard and on the colour per processed file
    assert got["rendered"] == got["images"]
    assert (int(got["processed"]), int(got["failed"])) == (n_done, n_failed)
    assert got["rows"] == ["failed"] + ["processed"] * n_done
    assert len(got["reasons"]) == 1 and "not an image" in got["reasons"][0]
    assert got["filtered"] == "1"  # the job filter hides the rows of other jobs

    assert set(got["colour"]) == {"rgb(255, 255, 255)"} and set(got["switched"]) == {"rgb(255, 0, 0)"}
    _screenshot(page, tmp_path / "review.png")


@needs_chromium
def test_the_review_page_of_knockout_cut_batch_reports_in_a_browser(tmp_path):
    import csv

    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for i in range(3):
        (shoot / f"face{i}.jpg").write_bytes(image_bytes(i))
    (shoot / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    r = knockout("cut", "shoot", "-o", "cutouts", "--report", "shoot.csv", "-q", cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # broken.jpg failed
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "face9.jpg").write_bytes(image_bytes(9))
    r = knockout(
        "cut", str(tmp_path / "more"), "-o", str(tmp_path / "more-out"), "--report", str(tmp_path / "more.jsonl")
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "shoot.csv", encoding="utf-8")))
    n_done, n_failed = sum(not x["error"] for x in rows) + 1, sum(bool(x["error"]) for x in rows)
    assert (n_done, n_failed) == (4, 1)

    page = tmp_path / "pages" / "shoot.html"
    page.parent.mkdir()
    r = knockout("report", "shoot.csv", "more.jsonl", "-o", str(page), "--background", "#00b140", cwd=tmp_path)
    assert r.returncode == 0 and "4 processed, 1 failed" in r.stdout, r.stderr
    text = page.read_text()
    assert "http:" not in text and "https:" not in text  # self-contained: nothing fetched
    shown = [float(c) for c in re.findall(r"confidence (\d\.\d\d)", text)]
    assert shown == sorted(shown) and len(shown) == n_done  # lowest first, across both reports
    got = _probe(page, job="more")
    assert got["images"] == 3 * n_done and got["rendered"] == got["images"]
    assert (int(got["processed"]), int(got["failed"])) == (n_done, n_failed)
    assert got["rows"] == ["failed"] + ["processed"] * n_done
    assert len(got["reasons"]) == 1 and "broken.jpg" not in got["reasons"][0] and got["reasons"][0]
    # relative paths in the report (the batch ran in tmp_path) link the full-size files
    for out in [tmp_path / "cutouts" / f"face{i}.png" for i in range(3)] + [tmp_path / "more-out" / "face9.png"]:
        assert out.as_uri() in got["links"]
    assert (shoot / "broken.jpg").as_uri() in got["links"]
    assert set(got["colour"]) == {"rgb(0, 177, 64)"} and set(got["switched"]) == {"rgb(255, 0, 0)"}
    assert len(got["days"]) == 2 and got["days"][1][:4].isdigit()  # 'all' and the day the batch ran
    assert got["filtered"] == "1"  # the job filter: a batch without --job is filed under the report's name
    _screenshot(page, tmp_path / "batch.png")


def test_report_refuses_bad_batch_reports_with_one_line_naming_the_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    (tmp_path / "bad.jsonl").write_text('{"input": "a.jpg"}\n{not json\n')
    (tmp_path / "ok.csv").write_text("input,output,confidence\na.jpg,a.png,0.5\n")
    for args, says in [
        (["missing.csv"], "missing.csv: cannot read it"),
        (["notes.txt"], "notes.txt: not a batch report"),
        (["bad.csv"], "bad.csv: not a batch report (no 'input' column"),
        (["bad.jsonl"], "bad.jsonl: line 2 is not JSON"),
        (["ok.csv", "--background", "nocolour"], "--background: 'nocolour' is not a colour"),
        (["ok.csv", "-c", "config.yaml"], "not both"),
    ]:
        r = knockout("report", *args, "-o", "page.html", cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and says in lines[0], (args, r.stderr)
        assert lines[0].startswith("knockout: error: ") and not (tmp_path / "page.html").exists()
    r = knockout("report", "ok.csv", "-o", "page.html", cwd=tmp_path)
    assert r.returncode == 0 and "1 processed, 0 failed" in r.stdout, r.stderr
    # no batch and a daemon that never ran: say so, rather than write an empty page
    (tmp_path / "page.html").unlink()
    write_config(tmp_path)
    r = knockout("report", "-o", "page.html", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "journal.jsonl: no journal" in lines[0], r.stderr
    assert not (tmp_path / "page.html").exists()


def test_report_replaces_only_its_own_page_and_never_a_batch_report(tmp_path):
    (tmp_path / "shoot.csv").write_text("input,output,confidence\na.jpg,a.png,0.5\n")
    before = (tmp_path / "shoot.csv").read_bytes()
    (tmp_path / "notes.html").write_text("<p>my notes</p>")
    r = knockout("report", "shoot.csv", "-o", "shoot.csv", "--overwrite", cwd=tmp_path)
    assert r.returncode == 2 and "shoot.csv: is one of the batch reports; write the page to another -o name" in r.stderr
    assert (tmp_path / "shoot.csv").read_bytes() == before
    r = knockout("report", "shoot.csv", "-o", "notes.html", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "notes.html exists and is not a knockout review page; use --overwrite to replace it" in lines[0]
    assert (tmp_path / "notes.html").read_text() == "<p>my notes</p>"
    (tmp_path / "folder.html").mkdir()
    r = knockout("report", "shoot.csv", "-o", "folder.html", "--overwrite", cwd=tmp_path)
    assert r.returncode == 2 and "folder.html: is a folder" in r.stderr, r.stderr
    # its own page is replaced without asking (a daily review page), a user's file only with --overwrite
    for _ in range(2):
        r = knockout("report", "shoot.csv", "-o", "page.html", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    r = knockout("report", "shoot.csv", "-o", "notes.html", "--overwrite", cwd=tmp_path)
    assert r.returncode == 0 and "a.jpg" in (tmp_path / "notes.html").read_text(), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.html", "notes.html", "page.html", "shoot.csv"]


def test_a_fifo_or_a_link_put_where_a_kept_input_was_never_stops_the_report(tmp_path):
    """With after: leave the journal names inputs in the inbox: a FIFO put there made `knockout report`
    wait for a writer forever, and a link was followed to whatever it points at."""
    cfg = write_config(tmp_path, jobs=[{"name": "main", "inbox": "inbox", "outbox": "outbox", "after": "leave"}])
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jpg").write_bytes(image_bytes(1))
    (inbox / "b.jpg").write_bytes(image_bytes(2))
    assert knockout("watch", "-c", str(cfg), "--once").returncode == 0
    (tmp_path / "elsewhere.jpg").write_bytes(image_bytes(3))
    os.unlink(inbox / "a.jpg")
    os.mkfifo(inbox / "a.jpg")
    os.unlink(inbox / "b.jpg")
    os.symlink(tmp_path / "elsewhere.jpg", inbox / "b.jpg")
    page = tmp_path / "review.html"
    r = knockout("report", "-c", str(cfg), "-o", str(page), timeout=60)
    assert r.returncode == 0 and "2 processed, 0 failed" in r.stdout, r.stderr
    assert page.read_text().count("no input preview") == 2  # the cut-outs still shown
