#!/usr/bin/env python3
"""Knock Out Backdrop: a GIMP 3 plug-in around the knockout core.

Layer > Transparency > Knock Out Backdrop... (PDB: ``python-fu-knockout-backdrop``).

A thin adapter: it reads the selected layers' pixels (within the selection's bounds), hands
them to ``knockout.gimp_bridge.knock_out`` and writes what comes back through shadow buffers,
all in one undo group. Nothing of the algorithm is here.

The core is reached in-process when GIMP's Python can import it (directly, or through the
paths that ``knockout gimp install`` recorded in ``core.json`` beside this file, when that
environment's Python is compatible); otherwise the recorded interpreter runs
``python -m knockout.gimp_bridge`` on a temporary file. ``KNOCKOUT_GIMP_BRIDGE`` =
``in-process`` or ``subprocess`` forces one way (default ``auto``).

This file needs only the standard library and GObject introspection, never numpy.
"""

import json
import os
import platform
import site
import subprocess
import sys
import sysconfig
import tempfile
import traceback
from typing import NamedTuple

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

PROCEDURE = "python-fu-knockout-backdrop"
BINARY = "knockout-backdrop"
HERE = os.path.dirname(os.path.abspath(__file__))
RECORD = os.path.join(HERE, "core.json")
FIX = "run `knockout gimp install` in the environment where knockout is installed, then restart GIMP"
RW = GObject.ParamFlags.READWRITE

# The procedure's arguments. Choices, ranges and defaults are the core's (knockout.settings.Settings);
# tests/test_gimp_install.py checks that they agree. (kind, name, label, help, default, extra)
ARGUMENTS = [
    (
        "choice",
        "output",
        "Outp_ut",
        "Where the result goes",
        "mask",
        [("mask", "Layer mask"), ("alpha", "Apply to alpha channel"), ("layer", "New layer")],
    ),
    (
        "choice",
        "method",
        "_Method",
        "Colour distance to the backdrop or colour clusters (KMeans)",
        "threshold",
        [("kmeans", "KMeans colour clusters"), ("threshold", "Colour-distance threshold")],
    ),
    (
        "choice",
        "preset",
        "_Preset",
        "A classic recipe that overrides the method",
        "none",
        [("none", "None"), ("classic-threshold", "Classic threshold"), ("classic-kmeans", "Classic KMeans")],
    ),
    ("int", "clusters", "Clust_ers", "Number of KMeans colour clusters", 8, (2, 32)),
    ("bool", "auto-tolerance", "_Automatic tolerance", "Pick the colour tolerance per image", True, None),
    ("double", "tolerance", "_Tolerance", "Colour distance (CIE delta E) that counts as backdrop", 10.0, (0.5, 100.0)),
    ("double", "feather", "_Feather", "Soft edge width in pixels (0 = hard edge)", 1.5, (0.0, 20.0)),
    ("bool", "decontaminate", "_Decontaminate edges", "Remove backdrop colour spill from edge pixels", True, None),
    ("bool", "fill-holes", "Fill _holes", "Fill holes inside the subject", True, None),
    (
        "double",
        "min-island",
        "Smallest _island (%)",
        "Islands smaller than this fraction of the area are removed",
        0.002,
        (0.0, 0.5),
    ),
]


class UserError(Exception):
    """A problem the user can fix; its message is shown as is."""


class Unavailable(Exception):
    """One way of reaching the core does not work here."""


# -- reaching the core -----------------------------------------------------------------------
def read_record():
    try:
        with open(RECORD, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(f"{RECORD} is unreadable ({exc}); {FIX}") from None


def incompatible(record):
    """Why the recorded environment's packages cannot be imported into this Python, or ''."""
    here = {
        "python_version": "{}.{}".format(*sys.version_info[:2]),
        "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX") or "",  # ABI of compiled modules (numpy...)
        "machine": platform.machine(),
    }
    for key, value in here.items():
        if record.get(key) != value:
            return f"knockout was installed for {key} {record.get(key)!r}, GIMP's Python has {value!r}"
    return ""


class InProcess:
    name = "in-process"

    def __init__(self, bridge, settings_cls):
        self.bridge, self.settings_cls = bridge, settings_cls

    def run(self, pixels, job):
        """``job``: width, height, sample, output and settings, as in a bridge request."""
        s = self.settings_cls.from_mapping(job["settings"], where="GIMP plug-in settings")
        kw = {k: job[k] for k in ("width", "height", "sample", "output")}
        res = self.bridge.knock_out(pixels, settings=s, **kw)
        return res.data, res.tolerance


class Subprocess:
    name = "subprocess"

    def __init__(self, python):
        self.python = python

    def run(self, pixels, job):
        with tempfile.TemporaryDirectory(prefix="knockout-gimp-") as tmp:
            request = {**job, "input": os.path.join(tmp, "layer.raw"), "result": os.path.join(tmp, "result.raw")}
            with open(request["input"], "wb") as f:
                f.write(pixels)
            path = os.path.join(tmp, "request.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(request, f)
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            try:
                done = subprocess.run(
                    [self.python, "-m", "knockout.gimp_bridge", path],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=False,
                )
            except OSError as exc:
                raise UserError(f"cannot run {self.python}: {exc}; {FIX}") from None
            if done.returncode != 0:
                lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
                reason = lines[-1] if lines else f"exit status {done.returncode}"
                if "No module named" in reason:
                    raise UserError(f"{self.python} cannot import knockout ({reason}); {FIX}")
                raise UserError(reason.removeprefix("knockout: error: "))
            try:
                info = json.loads(done.stdout.strip().splitlines()[-1])
                with open(request["result"], "rb") as f:
                    return f.read(), float(info["tolerance"])
            except (IndexError, KeyError, ValueError, OSError) as exc:
                raise UserError(f"{self.python} -m knockout.gimp_bridge gave no result ({exc}); {FIX}") from None


def import_core(record):
    """The core imported into GIMP's Python, directly or through the recorded paths."""
    try:
        from knockout import gimp_bridge
        from knockout.settings import Settings

        return InProcess(gimp_bridge, Settings)
    except Exception as exc:  # ImportError, or a broken install failing as it imports
        direct = exc
    if record is None:
        raise Unavailable(f"GIMP's Python cannot import knockout ({direct}) and no core.json was recorded")
    why = incompatible(record)
    if why:
        raise Unavailable(why)
    before = list(sys.path)
    for d in record.get("site_dirs", []):
        if os.path.isdir(d):
            site.addsitedir(d)  # also runs the .pth files of editable installs
    added = [p for p in record.get("paths", []) if os.path.isdir(p)]
    added += [p for p in sys.path if p not in before and p not in added]
    sys.path[:] = added + [p for p in before if p not in added]
    for name in [m for m in sys.modules if m == "knockout" or m.startswith("knockout.")]:
        del sys.modules[name]
    try:
        from knockout import gimp_bridge
        from knockout.settings import Settings
    except Exception as exc:
        sys.path[:] = before
        raise Unavailable(f"importing knockout from the recorded paths failed: {type(exc).__name__}: {exc}") from None
    return InProcess(gimp_bridge, Settings)


def find_core():
    """The first way of reaching the core that works, in the order in-process, subprocess."""
    wanted = os.environ.get("KNOCKOUT_GIMP_BRIDGE", "auto")
    if wanted not in ("auto", "in-process", "subprocess"):
        raise UserError(f"KNOCKOUT_GIMP_BRIDGE={wanted!r} is not allowed; use auto, in-process or subprocess")
    record = read_record()
    problems = []
    if wanted in ("auto", "in-process"):
        try:
            return import_core(record)
        except Unavailable as exc:
            problems.append(f"in-process: {exc}")
    if wanted in ("auto", "subprocess"):
        python = (record or {}).get("python")
        if not python:
            problems.append("subprocess: no interpreter recorded (core.json is missing)")
        elif not (os.path.isfile(python) and os.access(python, os.X_OK)):
            problems.append(f"subprocess: the recorded interpreter {python} does not exist here")
        else:
            return Subprocess(python)
    raise UserError("cannot reach the knockout core: " + "; ".join(problems) + f". To fix it, {FIX}.")


# -- GIMP side -------------------------------------------------------------------------------
def settings_of(config):
    """The core's settings (a plain mapping; the core validates it) and the output mode."""
    auto = config.get_property("auto-tolerance")
    preset = config.get_property("preset")
    settings = {
        "method": config.get_property("method"),
        "preset": None if preset == "none" else preset,
        "clusters": config.get_property("clusters"),
        "tolerance": "auto" if auto else config.get_property("tolerance"),
        "feather": config.get_property("feather"),
        "decontaminate": config.get_property("decontaminate"),
        "fill_holes": config.get_property("fill-holes"),
        "min_island": config.get_property("min-island"),
    }
    return settings, config.get_property("output")


def target_layers(image, drawables):
    if image.get_base_type() == Gimp.ImageBaseType.INDEXED:
        raise UserError(
            "indexed images are not supported; convert the image with Image > Mode > RGB (or Grayscale) "
            "and run Knock Out Backdrop again"
        )
    if not drawables:
        raise UserError("no layer is selected; select the layer to knock out in the Layers dialog")
    layers = []
    for d in drawables:
        if isinstance(d, Gimp.LayerMask) or not isinstance(d, Gimp.Layer):
            raise UserError(f"'{d.get_name()}' is not a layer; select the layer itself (not its mask or a channel)")
        if d.is_group():
            raise UserError(f"'{d.get_name()}' is a layer group; select a layer inside it, or merge the group")
        layers.append(d)
    return layers


def formats(image):
    """(sample, RGBA format, mask format) that read and write the layers without loss.

    The core sees sRGB-encoded 8-bit colours whatever the image's precision. Perceptual 8- and
    16-bit RGB layers are read in their own format (``R'G'B'A u8`` / ``u16``); every other layer
    (linear, greyscale, 32-bit) is read as ``R'G'B'A float``, which converts back to an 8- or
    16-bit format exactly (and to a 32-bit one within float rounding), where a perceptual integer
    format would round linear highlights and greys.
    """
    bits, _, trc = image.get_precision().value_nick.partition("-")  # "u16", "non-linear"
    sample = "float"
    if image.get_base_type() == Gimp.ImageBaseType.RGB and trc != "linear" and bits in ("u8", "u16"):
        sample = bits
    return sample, f"R'G'B'A {sample}", f"Y {sample}"


def write(drawable, rect, fmt, data):
    shadow = drawable.get_shadow_buffer()
    shadow.set(rect, fmt, data)
    shadow.flush()
    drawable.merge_shadow(True)  # through the selection, as every GIMP filter
    drawable.update(rect.x, rect.y, rect.width, rect.height)


class LayerResult(NamedTuple):
    """What the core made of one layer, to be written by :func:`apply`."""

    rect: Gegl.Rectangle  # the part of the layer that was read
    fmt: str  # the Babl format of ``data``
    data: bytes
    tolerance: float


def knock_out_layer(image, layer, settings, output, core):
    """Run the core on one layer (within the selection's bounds); returns a LayerResult, nothing written."""
    ok, x, y, w, h = layer.mask_intersect()
    if not ok:
        raise UserError(f"the selection does not overlap layer '{layer.get_name()}'; select part of it or nothing")
    sample, rgba_fmt, mask_fmt = formats(image)
    rect = Gegl.Rectangle.new(x, y, w, h)
    pixels = bytes(layer.get_buffer().get(rect, 1.0, rgba_fmt, Gegl.AbyssPolicy.CLAMP))
    job = {"width": w, "height": h, "sample": sample, "settings": settings}
    data, tolerance = core.run(pixels, {**job, "output": "mask" if output == "mask" else "alpha"})
    return LayerResult(rect, mask_fmt if output == "mask" else rgba_fmt, data, tolerance)


def apply(image, layer, output, result):
    """Write one layer's LayerResult: into its layer mask, its pixels, or a copy above it."""
    if output == "mask":
        mask = layer.get_mask()
        if mask is None:
            mask = layer.create_mask(Gimp.AddMaskType.WHITE)
            layer.add_mask(mask)
        write(mask, result.rect, result.fmt, result.data)
        return
    if output == "layer":
        copy = layer.copy()
        copy.set_name(f"{layer.get_name()} (knocked out)")
        image.insert_layer(copy, layer.get_parent(), image.get_item_position(layer))
        layer.set_visible(False)
        layer = copy
    if not layer.has_alpha():
        layer.add_alpha()
    write(layer, result.rect, result.fmt, result.data)


def failure(procedure, message):
    Gimp.message(f"Knock Out Backdrop: {message}")
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


def dialog(procedure, config):
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi

    GimpUi.init(BINARY)
    dlg = GimpUi.ProcedureDialog.new(procedure, config, "Knock Out Backdrop")
    dlg.set_sensitive("tolerance", True, config, "auto-tolerance", True)
    dlg.get_spin_scale("min-island", 100.0)  # shown in per cent of the area, with increments that fit 0-0.5
    dlg.fill(None)
    ok = dlg.run()
    dlg.destroy()
    return ok


def run(procedure, run_mode, image, drawables, config, _data):
    try:
        if run_mode == Gimp.RunMode.INTERACTIVE and not dialog(procedure, config):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        settings, output = settings_of(config)
        layers = target_layers(image, drawables)
        core = find_core()
        Gimp.progress_init("Knocking out the backdrop")
        results = []  # every layer is computed before any is changed: an error leaves the image as it was
        for i, layer in enumerate(layers):
            results.append(knock_out_layer(image, layer, settings, output, core))
            Gimp.progress_update((i + 1) / len(layers))
        image.undo_group_start()  # one undo step for the whole action
        try:
            for layer, result in zip(layers, results, strict=True):
                apply(image, layer, output, result)
        finally:
            image.undo_group_end()
        Gimp.displays_flush()
    except (UserError, ValueError) as exc:  # ValueError: the core rejects the input, with the reason
        return failure(procedure, str(exc))
    except Exception as exc:  # the core failing: a message, never a bare traceback for the user
        traceback.print_exc(file=sys.stderr)
        return failure(procedure, f"{type(exc).__name__}: {exc}")
    ret = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    ret.remove(1)
    ret.insert(1, GObject.Value(GObject.TYPE_STRING, core.name))
    ret.remove(2)
    ret.insert(2, GObject.Value(GObject.TYPE_DOUBLE, results[-1].tolerance))
    return ret


class KnockOutBackdrop(Gimp.PlugIn):
    def do_set_i18n(self, _name):
        return False

    def do_query_procedures(self):
        return [PROCEDURE]

    def do_create_procedure(self, name):
        p = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        p.set_image_types("*")
        p.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE | Gimp.ProcedureSensitivityMask.DRAWABLES)
        p.set_menu_label("Knock Out _Backdrop...")
        p.add_menu_path("<Image>/Layer/Transparency")
        p.set_documentation(
            "Remove the plain or studio backdrop of a headshot",
            "Computes the subject's alpha with the knockout core (KMeans colour clusters or a colour-distance "
            "threshold) and puts it in a layer mask, the alpha channel or a new layer. Only the selection's "
            "bounds are processed when there is a selection.",
            name,
        )
        p.set_attribution("knockout developers", "knockout developers", "2026")
        for kind, arg, label, blurb, default, extra in ARGUMENTS:
            if kind == "choice":
                choice = Gimp.Choice.new()
                for i, (nick, text) in enumerate(extra):
                    choice.add(nick, i, text, "")
                p.add_choice_argument(arg, label, blurb, choice, default, RW)
            elif kind == "int":
                p.add_int_argument(arg, label, blurb, extra[0], extra[1], default, RW)
            elif kind == "double":
                p.add_double_argument(arg, label, blurb, extra[0], extra[1], default, RW)
            else:
                p.add_boolean_argument(arg, label, blurb, default, RW)
        p.add_string_return_value("core-path", "Core path", "in-process or subprocess", "", RW)
        p.add_double_return_value("tolerance", "Tolerance", "The colour tolerance used", 0.0, 1000.0, 0.0, RW)
        return p


if __name__ == "__main__":
    Gimp.main(KnockOutBackdrop.__gtype__, sys.argv)
