"""``knockout report``: a self-contained static HTML review page of the daemon's journal or of a batch.

One file, no server, no network: thumbnails embedded as ``data:`` URIs, each input beside its
cut-out on a checkerboard and on a chosen colour (switched on the page), failures with their
reasons first, cut-outs by confidence (lowest first), filters by job and day, names linking
the full-size files. A batch is the report ``knockout cut --report`` writes, read by
:func:`knockout.report.read_report` into the journal's records.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from knockout.fsutil import NotRegular, atomic_write, open_regular

__all__ = ["is_review_page", "write_page"]

#: In every page's head, so a later run knows the pages it may replace without --overwrite.
GENERATOR = "<meta name='generator' content='knockout report'>"

THUMB = 200  # px, the longer side

_STYLE = """
body{font:14px sans-serif;margin:1em;background:#fafafa}
.row{display:flex;gap:1em;align-items:center;background:#fff;margin:.4em 0;padding:.4em;border:1px solid #ddd}
.row img{max-width:200px;max-height:200px}
.cut{background:repeating-conic-gradient(#ccc 0 25%,#fff 0 50%) 0 0/16px 16px}
.on-colour{background:var(--bg)}
.failed{border-color:#c33}.review{border-color:#e90}.reason{color:#c33}
.meta{font-size:12px;color:#555}
"""

_SCRIPT = """
function filter(){
  var job=document.getElementById('job').value, day=document.getElementById('day').value, n={processed:0,failed:0};
  document.querySelectorAll('.row').forEach(function(r){
    var on=(!job||r.dataset.job===job)&&(!day||r.dataset.day===day);
    r.style.display=on?'':'none'; if(on) n[r.dataset.event]++;
  });
  document.getElementById('n-processed').textContent=n.processed;
  document.getElementById('n-failed').textContent=n.failed;
}
function colour(){document.body.style.setProperty('--bg',document.getElementById('bg').value);}
"""


def _thumb(path: str | None, fmt: str) -> str | None:
    """A thumbnail of the regular file at ``path`` as a data URI (None: no preview).

    The path may be an inbox's (``after: leave``), where anyone who writes there may have put a
    FIFO (opening it waited for a writer forever), a device or a link: never followed, never waited on.
    """
    if not path:
        return None
    try:
        fh, _ = open_regular(path)  # NotRegular (a ValueError) for a FIFO, a device...
        with fh, Image.open(fh) as src:
            src.thumbnail((THUMB, THUMB))
            small = src.convert("RGB") if fmt == "JPEG" else src
            buf = io.BytesIO()
            small.save(buf, fmt)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"


def _link(path: str | None) -> str:
    if not path:
        return ""
    name = html.escape(Path(path).name)
    return f'<a href="{html.escape(Path(path).as_uri())}">{name}</a>' if Path(path).is_absolute() else name


def _img(uri: str | None, cls: str, alt: str) -> str:
    if uri is None:
        return f'<span class="missing">no {html.escape(alt)} preview</span>'
    return f'<img class="{cls}" src="{uri}" alt="{html.escape(alt)}">'


def _meta(*values: Any) -> str:
    """The values given (job, time, method, ...), escaped, comma-separated; empty ones left out."""
    return ", ".join(html.escape(str(v)) for v in values if v not in (None, ""))


def _row(r: dict[str, Any]) -> str:
    """One input's row: its thumbnail and, for a cut-out, the cut-out on a checkerboard and on the colour."""
    event, job, day = r.get("event"), str(r.get("job", "")), str(r.get("time", ""))[:10]
    attrs = f'class="row {event}{" review" if r.get("review") else ""}" data-event="{event}" '
    attrs += f'data-job="{html.escape(job)}" data-day="{day}"'
    if event == "failed":
        src = r.get("failed") or r.get("input")
        reason = html.escape(str(r.get("reason")))
        body = (
            f"{_img(_thumb(src, 'JPEG'), 'input', 'input')}<div>{_link(src)} <span class='meta'>"
            f"{_meta(job, r.get('time'))}</span><div class='reason'>{reason}</div></div>"
        )
        return f"<div {attrs}>{body}</div>"
    src, out = r.get("kept") or r.get("input"), r.get("output")
    conf = r.get("confidence")
    what = f"confidence {conf:.2f} ({html.escape(' '.join(r.get('reasons', [])))})" if conf is not None else ""
    tolerance = None if r.get("tolerance") is None else f"tolerance {r['tolerance']}"
    ms = f"{r['ms']:.0f} ms" if isinstance(r.get("ms"), (int, float)) else None
    meta = _meta(job, r.get("time"), r.get("method"), tolerance, ms)
    cut = _thumb(out, "PNG")
    return (
        f"<div {attrs}>{_img(_thumb(src, 'JPEG'), 'input', 'input')}{_img(cut, 'cut', 'cut-out')}"
        f"{_img(cut, 'on-colour', 'cut-out on the colour')}"
        f"<div>{_link(src)} &rarr; {_link(out)}<div>{what}{' <b>to review</b>' if r.get('review') else ''}</div>"
        f"<div class='meta'>{meta}</div></div></div>"
    )


def write_page(
    records: Iterable[dict[str, Any]],
    path: Path,
    *,
    title: str = "knockout review",
    background: tuple[int, int, int] = (255, 255, 255),
) -> dict[str, int]:
    """Write the review page of ``records`` (journal records) to ``path``; returns the counts shown.

    Failures come first (newest first), then cut-outs by confidence, lowest first (none last);
    each cut-out is shown on a checkerboard and on ``background`` (an RGB colour, changed on the page).
    """
    rows = [r for r in records if r.get("event") in ("processed", "failed")]
    failed = sorted((r for r in rows if r["event"] == "failed"), key=lambda r: str(r.get("time")), reverse=True)
    done = sorted(
        (r for r in rows if r["event"] == "processed"),
        key=lambda r: (r.get("confidence") is None, r.get("confidence") or 0.0),
    )
    jobs = sorted({str(r.get("job", "")) for r in rows})
    days = sorted({str(r.get("time", ""))[:10] for r in rows} - {""}, reverse=True)
    bg = "#{:02x}{:02x}{:02x}".format(*background)

    def options(values: list[str]) -> str:
        return "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)

    counts = {"processed": len(done), "failed": len(failed)}
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'>{GENERATOR}<title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body style='--bg:{bg}'>"
        f"<h1>{html.escape(title)}</h1><p><span id='n-processed'>{counts['processed']}</span> processed, "
        f"<span id='n-failed'>{counts['failed']}</span> failed &middot; "
        f"job <select id='job' onchange='filter()'><option value=''>all</option>{options(jobs)}</select> "
        f"day <select id='day' onchange='filter()'><option value=''>all</option>{options(days)}</select> "
        f"colour <input type='color' id='bg' value='{bg}' oninput='colour()' onchange='colour()'></p>"
        + "".join(_row(r) for r in failed + done)
        + f"<script type='application/json' id='counts'>{json.dumps(counts)}</script></body></html>"
    )
    atomic_write(Path(path), page.encode("utf-8"), durable=False)  # never a half-written page
    return counts


def is_review_page(path: Path) -> bool:
    """Whether ``path`` holds a page :func:`write_page` wrote (its generator mark near the top)."""
    try:
        fh, _st = open_regular(path)  # a FIFO there is never waited on, a link never followed
    except (OSError, NotRegular):
        return False
    with fh:
        return GENERATOR.encode() in fh.read(512)
