"""Drive the plug-in's dialog in a real GIMP 3 under Xvfb (the interactive run mode).

One GIMP run: the procedure is called with ``RunMode.INTERACTIVE`` on ``headshot.png`` in the
work folder; a shell script waits for the dialog, captures it (``dialog.png``), optionally
sets Feather to 0 the way a user would (click into the field, type, Tab), and presses OK.
Then the batch calls the procedure again with ``RunMode.WITH_LAST_VALS`` on a fresh copy of
the image. Both results are exported to ``out/`` and their statuses written to
``dialog-results.json``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import harness

BATCH = """
import json
from gi.repository import Gimp, Gio

def run(mode, name):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path("/mnt/work/img/headshot.png"))
    proc = Gimp.get_pdb().lookup_procedure("python-fu-knockout-backdrop")
    cfg = proc.create_config()
    cfg.set_property("run-mode", mode)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", image.get_layers())
    res = proc.run(cfg)
    status = res.index(0).value_nick
    out = {"status": status, "has_mask": image.get_layers()[0].get_mask() is not None}
    if status == "success":
        out["core_path"] = res.index(1)
        Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(f"/mnt/work/out/{name}.png"), None)
    image.delete()
    return out

results = {"interactive": run(Gimp.RunMode.INTERACTIVE, "interactive"),
           "last-vals": run(Gimp.RunMode.WITH_LAST_VALS, "last-vals")}
with open("/mnt/work/dialog-results.json", "w") as f:
    json.dump(results, f)
"""

# Xvfb, GIMP in the background, wait for the dialog, capture it, edit it, press OK, wait for GIMP.
# Positions are the dialog's own layout (GIMP 3.0.4, its default theme, no window manager).
SCRIPT = r"""
set -e
Xvfb :42 -screen 0 1280x900x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb' EXIT
export DISPLAY=:42
for i in $(seq 100); do [ -S /tmp/.X11-unix/X42 ] && break; sleep 0.1; done
"$@" &
gimp=$!
win=$(timeout 120 xdotool search --sync --name '^Knock Out Backdrop$' | head -n1)
sleep 3  # let GTK finish drawing (the machine may be busy)
import -window "$win" /mnt/work/dialog.png
if [ -n "$FEATHER" ]; then
    xdotool mousemove --window "$win" 112 237 click --repeat 3 --delay 80 1
    xdotool type --delay 50 "$FEATHER"
    xdotool key Tab
    sleep 0.5
    import -window "$win" /mnt/work/dialog-edited.png
fi
xdotool mousemove --window "$win" 328 402 click 1
wait $gimp
"""


def run_dialog(work: Path, *, feather: str = "") -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run the dialog once (``work/img/headshot.png`` must exist, the plug-in installed in ``work/cfg``)."""
    (work / "out").mkdir(exist_ok=True)
    (work / "run").mkdir(mode=0o700, exist_ok=True)
    (work / "dialog-batch.py").write_text(BATCH)
    harness.make_gimp_dir(work)
    env = harness.gimp_env({"XDG_RUNTIME_DIR": "/mnt/work/run", "NO_AT_BRIDGE": "1", "FEATHER": feather})
    argv = ["bash", "-c", SCRIPT, "dialog", *harness.gimp_argv("/mnt/work/dialog-batch.py")]
    done = harness.run_in_root(argv, work, env=env, timeout=300)
    results = work / "dialog-results.json"
    return done, json.loads(results.read_text()) if results.exists() else None
