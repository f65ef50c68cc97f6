"""Runs inside GIMP (python-fu-eval batch): load, call the plug-in through the PDB, export.

Reads the cases from ``$KNOCKOUT_CASES`` (JSON list) and writes what happened to
``$KNOCKOUT_RESULTS``; every check is made afterwards, from outside GIMP, on the exported
files and these results. Each case is a dict:

    name, src (PNG to load), export (PNG to write, optional),
    prep: {grey, u16, float, alpha, indexed, select: [x, y, w, h], record: path to swap in as core.json,
           no_layer: call with no drawables, two_layers: a copy of the layer above it, both selected,
           dot_layer: a 1x1 layer above it, both selected,
           precision: a Gimp.Precision nick to convert to, fine: low bits changed in the layer's own
           format (then its samples before and after the call are dumped to NAME.before/after.raw)},
    args: the procedure's arguments, bad_args: out-of-range ones (refused, recorded),
    run_mode: "noninteractive" (default) or "last-vals",
    script: Script-Fu calling the procedure (IMAGE and LAYER replaced by their ids), run through
            plug-in-script-fu-eval instead of the Python call
"""

import json
import os
import shutil
import time

import numpy as np
from gi.repository import Babl, Gegl, Gimp, Gio

PROC = "python-fu-knockout-backdrop"
RECORD = os.path.join(os.environ["GIMP3_DIRECTORY"], "plug-ins", "knockout-backdrop", "core.json")


def prepare(image, prep):
    if prep.get("grey"):
        image.convert_grayscale()
    if prep.get("u16"):
        image.convert_precision(Gimp.Precision.U16_NON_LINEAR)
    if prep.get("float"):
        image.convert_precision(Gimp.Precision.FLOAT_LINEAR)
    if prep.get("precision"):
        nick = prep["precision"].upper().replace("-", "_")
        image.convert_precision(getattr(Gimp.Precision, nick))
    if prep.get("indexed"):
        image.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE, 16, False, False, "")
    layer = image.get_layers()[0]
    if prep.get("alpha"):
        layer.add_alpha()
    if prep.get("select"):
        x, y, w, h = prep["select"]
        image.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
    if prep.get("no_layer"):
        return []
    if prep.get("fine"):
        fmt, raw = own_samples(layer)
        raw = raw.copy()
        raw[..., :-1] ^= (np.arange(raw[..., :-1].size, dtype=raw.dtype) % 7).reshape(raw[..., :-1].shape)
        buf = layer.get_buffer()
        buf.set(Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height()), fmt, raw.tobytes())
        buf.flush()
    if prep.get("two_layers"):
        copy = layer.copy()
        image.insert_layer(copy, None, 0)
        return [copy, layer]
    if prep.get("dot_layer"):
        dot = Gimp.Layer.new(image, "dot", 1, 1, Gimp.ImageType.RGBA_IMAGE, 100, Gimp.LayerMode.NORMAL)
        image.insert_layer(dot, None, 0)
        return [layer, dot]
    return [layer]


DTYPES = {"u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "half": np.float16, "float": np.float32}


def own_samples(layer):
    """(format name, samples (h, w, channels)) of the layer in its own format, e.g. "YA u16"."""
    fmt = Babl.get_name(layer.get_format())
    rect = Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height())
    raw = bytes(layer.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP))
    samples = np.frombuffer(raw, DTYPES[fmt.split()[-1]])
    return fmt, samples.reshape(layer.get_height(), layer.get_width(), -1)


def run_script(image, layer, script):
    proc = Gimp.get_pdb().lookup_procedure("plug-in-script-fu-eval")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("script", script.replace("IMAGE", str(image.get_id())).replace("LAYER", str(layer.get_id())))
    return proc.run(cfg)


def export(image, path):
    """PNG at the image's own precision; no thumbnail (GdkPixbuf cannot make one of a 16-bit image)."""
    proc = Gimp.get_pdb().lookup_procedure("file-png-export")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_property("file", Gio.File.new_for_path(path))
    cfg.set_property("compression", 1)
    cfg.set_property("include-thumbnail", False)
    res = proc.run(cfg)
    if res.index(0) != Gimp.PDBStatusType.SUCCESS:
        raise RuntimeError(f"export to {path} failed: {Gimp.get_pdb().get_last_error()}")


def run_case(case):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["src"]))
    prep = case.get("prep", {})
    drawables = prepare(image, prep)
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    cfg = proc.create_config()
    last = case.get("run_mode") == "last-vals"
    cfg.set_property("run-mode", Gimp.RunMode.WITH_LAST_VALS if last else Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", drawables)
    for key, value in case.get("args", {}).items():
        cfg.set_property(key, value)
    refused = {}
    for key, value in case.get("bad_args", {}).items():
        cfg.set_property(key, value)  # GObject refuses it with a warning; the value stays
        refused[key] = cfg.get_property(key)
    saved = None
    if prep.get("record"):
        saved = RECORD + ".saved"
        shutil.copyfile(RECORD, saved)
        shutil.copyfile(prep["record"], RECORD)
    before = own_samples(drawables[0])[1].copy() if prep.get("fine") else None
    t0 = time.perf_counter()
    try:
        res = run_script(image, drawables[0], case["script"]) if case.get("script") else proc.run(cfg)
    finally:
        if saved:
            os.replace(saved, RECORD)
    seconds = time.perf_counter() - t0
    status = res.index(0)
    error = Gimp.get_pdb().get_last_error()  # before any other call: every libgimp call resets it
    out = {
        "name": case["name"],
        "status": status.value_nick,
        "seconds": seconds,
        "layers": len(image.get_layers()),
        "precision": image.get_precision().value_nick,
        "after_bad_args": refused,
        "masks": [lay.get_mask() is not None for lay in image.get_layers()],
        "alphas": [lay.has_alpha() for lay in image.get_layers()],
    }
    if before is not None:
        fmt, after = own_samples(drawables[0])
        out["format"], out["shape"] = fmt, list(after.shape)
        before.tofile(case["export"] + ".before.raw")
        after.tofile(case["export"] + ".after.raw")
    if status == Gimp.PDBStatusType.SUCCESS:
        if not case.get("script"):
            out["core_path"] = res.index(1)
            out["tolerance"] = res.index(2)
        top = image.get_layers()[0]
        out["has_mask"] = top.get_mask() is not None
        out["has_alpha"] = top.has_alpha()
        out["visible"] = [lay.get_visible() for lay in image.get_layers()]
        if case.get("export"):
            export(image, case["export"])
    else:
        out["error"] = error
    image.delete()
    return out


def main():
    with open(os.environ["KNOCKOUT_CASES"]) as f:
        cases = json.load(f)
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    meta = {
        "name": "_registration",
        "menu_label": proc.get_menu_label(),
        "menu_paths": list(proc.get_menu_paths()),
        "image_types": proc.get_image_types(),
        "arguments": [spec.name for spec in proc.get_arguments()],
    }
    results = [meta] + [run_case(c) for c in cases]
    with open(os.environ["KNOCKOUT_RESULTS"], "w") as f:
        json.dump(results, f, indent=1)


main()
