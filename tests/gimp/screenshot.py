"""Screenshot of the plug-in's dialog, from a real GIMP 3 under Xvfb in the trixie root.

    sudo .venv/bin/python tests/gimp/screenshot.py [OUT.png]     (default: gimp_plugin/dialog.png)

Installs the plug-in with ``knockout gimp install`` from a venv inside the root, starts
Xvfb, runs the procedure in interactive mode on a synthetic headshot, captures the dialog
window with ImageMagick's ``import``, presses OK, and checks that the run then succeeded.
Needs the root from ``provision.sh``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import harness
from PIL import Image
from xdialog import run_dialog

sys.path.insert(0, str(harness.PROJECT / "tests"))
from conftest import synthetic_headshot


def main(out: Path) -> int:
    why = harness.unavailable()
    if why:
        print(f"screenshot: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="knockout-shot-") as tmp:
        work = Path(tmp)
        (work / "img").mkdir()
        rgb, _ = synthetic_headshot(400, 300, seed=1)
        Image.fromarray(rgb).save(work / "img" / "headshot.png")
        made = harness.make_core_venv(work)
        if made.returncode:
            print(made.stderr, file=sys.stderr)
            return 1
        done, results = run_dialog(work)
        if done.returncode or not results or not (work / "dialog.png").exists():
            print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
            return 1
        print(f"screenshot: after OK: {results}")
        if results["interactive"]["status"] != "success":
            return 1
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(work / "dialog.png").convert("RGB").save(out, optimize=True)
        print(f"screenshot: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else harness.PROJECT / "gimp_plugin" / "dialog.png"))
