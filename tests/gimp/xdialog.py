"""Drive the plug-in like a user, in a real GIMP 3 under Xvfb.

One GIMP run. The dialog (the interactive run mode): the procedure is called with
``RunMode.INTERACTIVE`` on ``headshot.png`` in the work folder; a shell script waits for the
dialog, captures it (``dialog.png``), optionally sets Feather to 0 the way a user would (Alt+F,
type, Tab), and presses OK (Alt+O). Then the batch calls the procedure again with
``RunMode.WITH_LAST_VALS`` on a fresh copy of the image. Both results are exported to ``out/``.

With ``undo=True`` GIMP runs with its full user interface (``gimp-3.0``, not the console
build) and, for each output, the image is shown in a display, knocked out through the PDB, and
the script presses Ctrl+Z and then Ctrl+Y in GIMP's window: GIMP's own Edit > Undo and Redo,
which no PDB procedure offers. The batch records the layers (pixels, layer masks, alpha,
visibility) before the call, after it, after the one undo and after the redo.

Everything is written to ``dialog-results.json``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import harness

BATCH = """
import hashlib, json, os, time
from gi.repository import Gegl, Gimp, Gio

PROC = "python-fu-knockout-backdrop"

def load():
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path("/mnt/work/img/headshot.png"))

def call(image, mode, **args):
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    cfg = proc.create_config()
    cfg.set_property("run-mode", mode)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", image.get_selected_layers())
    for key, value in args.items():
        cfg.set_property(key, value)
    return proc.run(cfg)

def run(mode, name):
    image = load()
    res = call(image, mode)
    status = res.index(0).value_nick
    out = {"status": status, "has_mask": image.get_layers()[0].get_mask() is not None}
    if status == "success":
        out["core_path"] = res.index(1)
        Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(f"/mnt/work/out/{name}.png"), None)
    image.delete()
    return out

def digest(drawable):
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    raw = drawable.get_buffer().get(rect, 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.CLAMP)
    return hashlib.sha1(bytes(raw)).hexdigest()

def state(image):
    return [{"name": lay.get_name(), "pixels": digest(lay), "alpha": lay.has_alpha(), "visible": lay.get_visible(),
             "mask": digest(lay.get_mask()) if lay.get_mask() else None} for lay in image.get_layers()]

def after_key(image, step, old):
    # the script outside presses the key once ready/STEP exists; wait until GIMP has acted on it
    open(f"/mnt/work/ready/{step}", "w").close()
    t0 = time.time()
    while time.time() - t0 < 40:
        now = state(image)
        if now != old:
            open(f"/mnt/work/done/{step}", "w").close()
            return settled(image, now)
        time.sleep(0.1)
    return None

def settled(image, now):
    # state() makes many PDB calls; GIMP may undo between two of them, so read until two reads agree
    while True:
        time.sleep(0.3)
        again = state(image)
        if again == now:
            return now
        now = again

def undo_case(i, output, two):
    image = load()
    if two:  # two layers, both selected
        copy = image.get_layers()[0].copy()
        image.insert_layer(copy, None, 0)
        image.set_selected_layers(image.get_layers())
    display = Gimp.Display.new(image)
    Gimp.displays_flush()
    out = {"output": output, "layers": len(image.get_selected_layers()), "before": state(image)}
    res = call(image, Gimp.RunMode.NONINTERACTIVE, output=output)
    Gimp.displays_flush()
    out["status"] = res.index(0).value_nick
    out["after"] = state(image)
    out["undone"] = after_key(image, f"undo-{i}", out["after"])
    out["redone"] = after_key(image, f"redo-{i}", out["undone"])
    display.delete()
    image.delete()
    return out

results = {"interactive": run(Gimp.RunMode.INTERACTIVE, "interactive"),
           "last-vals": run(Gimp.RunMode.WITH_LAST_VALS, "last-vals")}
if os.environ.get("UNDO_CASES"):
    cases = json.loads(os.environ["UNDO_CASES"])
    results["undo"] = [undo_case(i, output, two) for i, (output, two) in enumerate(cases)]
with open("/mnt/work/dialog-results.json", "w") as f:
    json.dump(results, f)
"""

# Xvfb, GIMP in the background, wait for the dialog, capture it, edit it, press OK; then, with
# UNDO_CASES, press Ctrl+Z and Ctrl+Y in GIMP's window when the batch asks for it; wait for GIMP.
# The dialog is driven by its mnemonics (Alt+F: Feather, Alt+O: OK), whatever its layout and theme.
# Ctrl+Z and Ctrl+Y go to GIMP's main window, which has the keyboard focus once the dialog is gone.
SCRIPT = r"""
set -e
# -displayfd: the first free display number (another session's Xvfb may hold one)
Xvfb -displayfd 3 -screen 0 1280x900x24 -nolisten tcp 3>/tmp/display >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb' EXIT
for i in $(seq 100); do [ -s /tmp/display ] && break; sleep 0.1; done
export DISPLAY=:$(cat /tmp/display)
"$@" &
gimp=$!
win=$(timeout 120 xdotool search --sync --name '^Knock Out Backdrop$' | head -n1)
sleep 3  # let GTK finish drawing (the machine may be busy)
import -window "$win" /mnt/work/dialog.png
xdotool windowfocus "$win"  # the keyboard goes to the dialog (GIMP's main window may hold the focus)
sleep 0.3
if [ -n "$FEATHER" ]; then
    xdotool key --delay 100 alt+f ctrl+a  # the "_Feather" mnemonic focuses its field; select the text
    xdotool type --delay 50 "$FEATHER"
    xdotool key Tab
    sleep 0.5
    import -window "$win" /mnt/work/dialog-edited.png
fi
xdotool key alt+o  # "_OK"
for i in $(seq 0 $((${UNDO_COUNT:-0} - 1))); do
    for step in undo redo; do
        for t in $(seq 1200); do [ -e /mnt/work/ready/$step-$i ] && break; sleep 0.1; done
        key=ctrl+z; [ $step = undo ] || key=ctrl+y
        for try in 1 2 3; do  # a key press GIMP never saw (it was busy mapping the display) is repeated
            xdotool key $key
            for t in $(seq 100); do [ -e /mnt/work/done/$step-$i ] && break 2; sleep 0.1; done
            import -window root /mnt/work/missed-$step-$i-$try.png  # what the screen showed instead
        done
    done
done
wait $gimp
"""

#: (output, two selected layers) for each undo case
UNDO_CASES = [("mask", False), ("alpha", False), ("layer", False), ("mask", True)]


def run_dialog(work: Path, *, feather: str = "", undo: bool = False) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run the dialog once (``work/img/headshot.png`` must exist, the plug-in installed in ``work/cfg``)."""
    (work / "out").mkdir(exist_ok=True)
    (work / "ready").mkdir(exist_ok=True)
    (work / "done").mkdir(exist_ok=True)
    (work / "run").mkdir(mode=0o700, exist_ok=True)
    (work / "dialog-batch.py").write_text(BATCH)
    harness.make_gimp_dir(work)
    extra = {"XDG_RUNTIME_DIR": "/mnt/work/run", "NO_AT_BRIDGE": "1", "FEATHER": feather}
    gimp = harness.gimp_argv("/mnt/work/dialog-batch.py")
    if undo:
        extra.update({"UNDO_CASES": json.dumps(UNDO_CASES), "UNDO_COUNT": str(len(UNDO_CASES))})
        gimp = ["gimp-3.0", "--no-splash", *[a for a in gimp[1:] if a != "-i"]]
    argv = ["bash", "-c", SCRIPT, "dialog", *gimp]
    done = harness.run_in_root(argv, work, env=harness.gimp_env(extra), timeout=180)
    results = work / "dialog-results.json"
    return done, json.loads(results.read_text()) if results.exists() else None
