"""The GIMP 3 plug-in in a real, headless GIMP 3.0 (Debian trixie root, see provision.sh).

Two GIMP runs batch all cases: one with the core reached in-process (``auto``), one with
``KNOCKOUT_GIMP_BRIDGE=subprocess``. Each case loads a PNG, calls
``python-fu-knockout-backdrop`` through the PDB non-interactively and exports; the checks
below compare the exported files with ``knockout cut`` on the same images with the same
settings, run from the same environment that ``knockout gimp install`` recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import harness
import numpy as np
import pytest
from conftest import PORTRAITS, synthetic_headshot
from PIL import Image

from knockout.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(harness.unavailable()), reason=harness.unavailable())]

W, H = 160, 200
SELECT = (20, 30, 100, 120)  # x, y, w, h
THRESHOLD_ARGS = {"method": "threshold", "auto-tolerance": False, "tolerance": 12.0, "feather": 0.0,
                  "decontaminate": False, "output": "alpha"}  # fmt: skip
THRESHOLD_CLI = ["--method", "threshold", "--tolerance", "12", "--feather", "0", "--no-decontaminate"]
IMG = "/mnt/work/img"
OUT = "/mnt/work/out"

# (name, source image, prep, procedure arguments, run mode)
IN_PROCESS_CASES = [
    ("mask", "rgb", {}, {}, None),
    ("alpha", "rgb", {}, {"output": "alpha"}, None),
    ("layer", "rgb", {}, {"output": "layer"}, None),
    ("threshold", "rgb", {}, THRESHOLD_ARGS, None),
    ("grey", "grey", {}, {"output": "alpha"}, None),
    ("rgba", "rgba", {}, {"output": "alpha"}, None),
    ("u16-alpha", "rgb", {"u16": True}, {"output": "alpha"}, None),
    ("float-alpha", "rgb", {"float": True}, {"output": "alpha"}, None),
    ("grey-alpha", "greya", {}, {"output": "alpha"}, None),
    # low bits set in the layer's own format: they must survive where the core changed nothing
    ("fine-u16-linear", "rgb", {"precision": "u16-linear", "alpha": True, "fine": True}, {"output": "alpha"}, None),
    ("fine-u8-linear", "rgb", {"precision": "u8-linear", "alpha": True, "fine": True}, {"output": "alpha"}, None),
    ("selection", "rgb", {"select": list(SELECT)}, {"output": "mask"}, None),
    ("two-layers", "rgb", {"two_layers": True}, {}, None),
    ("error-second-layer", "rgb", {"dot_layer": True}, {}, None),
    ("error-tiny", "rgb", {"select": [3, 3, 1, 1]}, {}, None),
    ("error-no-layer", "rgb", {"no_layer": True}, {}, None),
    ("error-indexed", "rgb", {"indexed": True}, {}, None),
    ("error-no-core", "rgb", {"record": "/mnt/work/host-core.json"}, {}, None),
    # auto: the recorded environment cannot be imported into GIMP's Python, but its interpreter runs
    ("auto-subprocess", "rgb", {"record": "/mnt/work/other-python-core.json"}, {"output": "alpha"}, None),
]
SUBPROCESS_CASES = [
    ("sub-alpha", "rgb", {}, {"output": "alpha"}, None),
    ("sub-u16-mask", "rgb", {"u16": True}, {"output": "mask"}, None),
    ("sub-selection", "rgb", {"select": list(SELECT)}, {"output": "mask"}, None),
    ("sub-threshold", "rgb", {}, THRESHOLD_ARGS, None),
    ("sub-error-tiny", "rgb", {"select": [3, 3, 1, 1]}, {}, None),
    ("script-clusters-99", "rgb", {}, {}, None),
    ("script-output-paint", "rgb", {}, {}, None),
]
# a script calling the procedure through the PDB (Script-Fu, named arguments), in the subprocess run
_CALL = "(python-fu-knockout-backdrop #:run-mode RUN-NONINTERACTIVE #:image IMAGE #:drawables (vector LAYER) "
SCRIPTS = {
    "script-clusters-99": _CALL + "#:clusters 99)",
    "script-output-paint": _CALL + '#:output "paint")',
}
# expected outputs: `knockout cut` in the recorded environment (inside the root)
EXPECTED = {
    "default": ("rgb", []),
    "threshold": ("rgb", THRESHOLD_CLI),
    "grey": ("grey", []),
    "greya": ("greya", []),
    "rgba": ("rgba", []),
    "crop": ("crop", []),
}


def _portrait() -> Path | None:
    """One plain-backdrop portrait of ../shared, when that data set is there (never required)."""
    manifest = PORTRAITS / "manifest.csv"
    if not manifest.exists():
        return None
    import csv

    with manifest.open() as f:
        for row in csv.DictReader(f):
            if row["background_kind"] == "plain":
                found = sorted((PORTRAITS / "images").glob(row["name"] + ".*"))
                return found[0] if found else None
    return None


def _images(work: Path) -> None:
    img = work / "img"
    img.mkdir()
    portrait = _portrait()
    if portrait:  # decoded as knockout cut decodes it, to a PNG in the throw-away work folder only
        from knockout.imageio import decode

        Image.fromarray(decode(portrait.read_bytes()).rgb).save(img / "portrait.png")
    rgb, _ = synthetic_headshot(H, W, seed=3)
    Image.fromarray(rgb).save(img / "rgb.png")
    Image.fromarray(rgb).convert("L").save(img / "grey.png")
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:, -24:] = 128  # a half-transparent strip: the layer's own alpha is kept and multiplied
    Image.fromarray(np.dstack([rgb, alpha])).save(img / "rgba.png")
    Image.fromarray(np.dstack([rgb, alpha])).convert("LA").save(img / "greya.png")
    x, y, w, h = SELECT
    Image.fromarray(rgb[y : y + h, x : x + w]).save(img / "crop.png")


BAD_ARGS = {"clusters": 99, "method": "bogus", "feather": -3.0, "output": "paint"}


def _cases(spec: list) -> list[dict]:
    return [
        {
            "name": name,
            "src": f"{IMG}/{src}.png",
            "prep": prep,
            "args": args,
            "bad_args": BAD_ARGS if name == "mask" else {},  # refused: the defaults run
            "run_mode": mode,
            "script": SCRIPTS.get(name),
            "export": f"{OUT}/{name}.png",
        }
        for name, src, prep, args, mode in spec
    ]


def _gimp(
    work: Path, tag: str, spec: list, env: dict[str, str], *, script_fu: bool = False
) -> tuple[subprocess.CompletedProcess, dict]:
    (work / f"{tag}.json").write_text(json.dumps(_cases(spec)))
    env = {"KNOCKOUT_CASES": f"/mnt/work/{tag}.json", "KNOCKOUT_RESULTS": f"/mnt/work/{tag}-results.json", **env}
    proc = harness.run_gimp(work, "/mnt/work/batch.py", env=env, script_fu=script_fu)
    results_file = work / f"{tag}-results.json"
    assert results_file.exists(), f"GIMP wrote no results (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc, {r["name"]: r for r in json.loads(results_file.read_text())}


def _with_portrait(spec: list, expected: dict) -> list:
    if _portrait() is None:
        return spec
    expected["portrait"] = ("portrait", [])
    return [*spec, ("portrait", "portrait", {}, {"output": "alpha"}, None)]


@pytest.fixture(scope="module")
def gimp(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("gimp")
    _images(work)
    (work / "out").mkdir()
    (work / "batch.py").write_bytes((harness.HERE / "batch.py").read_bytes())
    made = harness.make_core_venv(work)
    assert made.returncode == 0, made.stderr
    # the real record of an install from the host's environment: a Python GIMP's cannot use
    host = subprocess.run(
        [sys.executable, "-m", "knockout.cli", "gimp", "install", "--gimp-dir", str(work / "host-gimp")],
        capture_output=True,
        text=True,
        check=True,
    )
    (work / "host-core.json").write_bytes((work / "host-gimp/plug-ins/knockout-backdrop/core.json").read_bytes())
    record = json.loads((work / "cfg/plug-ins/knockout-backdrop/core.json").read_text())
    (work / "other-python-core.json").write_text(json.dumps({**record, "python_version": "3.99"}))
    expected = dict(EXPECTED)
    cases = _with_portrait(IN_PROCESS_CASES, expected)
    driver = "from knockout.cli import main\n" + "".join(
        f"assert main(['cut', '{IMG}/{src}.png', '-o', '/mnt/work/expected/{name}', '-q', *{args!r}]) == 0\n"
        for name, (src, args) in expected.items()
    )
    cut = harness.run_in_root(["/mnt/work/venv/bin/python", "-c", driver], work)
    assert cut.returncode == 0, cut.stderr
    in_process = _gimp(work, "in-process", cases, {})
    sub = _gimp(work, "subprocess", SUBPROCESS_CASES, {"KNOCKOUT_GIMP_BRIDGE": "subprocess"}, script_fu=True)
    return {"work": work, "runs": [in_process, sub], "host_install": host.stdout,
            "results": {**in_process[1], **sub[1]}}  # fmt: skip


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def _out(gimp: dict, name: str) -> np.ndarray:
    return _load(gimp["work"] / "out" / f"{name}.png")


def _expected(gimp: dict, name: str, src: str | None = None) -> np.ndarray:
    return _load(gimp["work"] / "expected" / name / f"{src or EXPECTED[name][0]}.png")


def _ok(gimp: dict, name: str) -> dict:
    r = gimp["results"][name]
    assert r["status"] == "success", r
    return r


def _same_cutout(got: np.ndarray, want: np.ndarray) -> None:
    """Identical alpha, identical colours wherever a pixel is not fully transparent."""
    np.testing.assert_array_equal(got[..., 3], want[..., 3])
    seen = want[..., 3] > 0
    np.testing.assert_array_equal(got[..., :3][seen], want[..., :3][seen])


def test_gimp_runs_exit_cleanly(gimp: dict) -> None:
    for proc, _ in gimp["runs"]:
        assert proc.returncode == 0, proc.stderr
        noise = [ln for ln in harness.noise_free(proc.stderr) if '""paint""' not in ln]  # the script's, on purpose
        assert not [ln for ln in noise if "Traceback" in ln or "CRITICAL" in ln], "\n".join(noise)
        assert "batch command executed successfully" in proc.stderr


def test_registered_in_the_layer_transparency_menu(gimp: dict) -> None:
    r = gimp["results"]["_registration"]
    assert r["menu_paths"] == ["<Image>/Layer/Transparency"]
    assert r["menu_label"] == "Knock Out _Backdrop..."
    assert r["image_types"] == "*"  # indexed images get a message instead of a greyed-out menu entry
    assert r["arguments"][:3] == ["run-mode", "image", "drawables"]
    assert {"output", "method", "preset", "clusters", "auto-tolerance", "tolerance", "feather"} <= set(r["arguments"])


def test_layer_mask_equals_knockout_cut(gimp: dict) -> None:
    r = _ok(gimp, "mask")
    assert r["core_path"] == "in-process"
    assert r["has_mask"] and not r["has_alpha"] and r["layers"] == 1  # non-destructive: the pixels stay
    got, want = _out(gimp, "mask"), _expected(gimp, "default")
    np.testing.assert_array_equal(got[..., 3], want[..., 3])
    original = np.asarray(Image.open(gimp["work"] / "img" / "rgb.png"))
    np.testing.assert_array_equal(got[..., :3][got[..., 3] > 0], original[got[..., 3] > 0])
    assert 0.2 < (want[..., 3] > 127).mean() < 0.8  # a real cut-out, not all or nothing


def test_alpha_output_equals_knockout_cut(gimp: dict) -> None:
    r = _ok(gimp, "alpha")
    assert r["has_alpha"] and not r["has_mask"]
    _same_cutout(_out(gimp, "alpha"), _expected(gimp, "default"))


def test_new_layer_output_holds_the_cutout_and_hides_the_original(gimp: dict) -> None:
    r = _ok(gimp, "layer")
    assert r["layers"] == 2 and r["visible"] == [True, False]
    _same_cutout(_out(gimp, "layer"), _expected(gimp, "default"))


def test_settings_reach_the_core(gimp: dict) -> None:
    r = _ok(gimp, "threshold")
    assert r["tolerance"] == pytest.approx(12.0)
    want = _expected(gimp, "threshold")
    _same_cutout(_out(gimp, "threshold"), want)
    assert not np.array_equal(want[..., 3], _expected(gimp, "default")[..., 3])


def test_grey_image(gimp: dict) -> None:
    _ok(gimp, "grey")
    got = np.asarray(Image.open(gimp["work"] / "out" / "grey.png"))
    assert got.ndim == 3 and got.shape[2] == 2  # exported as grey + alpha: the image stayed grey
    want = _expected(gimp, "grey")
    np.testing.assert_array_equal(got[..., 1], want[..., 3])


def test_layer_with_its_own_alpha(gimp: dict) -> None:
    _ok(gimp, "rgba")
    want = _expected(gimp, "rgba")
    assert (want[:, -24:, 3] <= 128).all()  # the layer's alpha multiplied in
    _same_cutout(_out(gimp, "rgba"), want)


def test_16_bit_image_keeps_its_precision(gimp: dict) -> None:
    for name in ("u16-alpha", "sub-u16-mask"):
        assert _ok(gimp, name)["precision"] == "u16-non-linear"
        path = gimp["work"] / "out" / f"{name}.png"
        assert path.read_bytes()[24] == 16  # PNG bit depth: exported at 16 bits per sample
        want = _expected(gimp, "default")
        np.testing.assert_array_equal(_out(gimp, name)[..., 3], want[..., 3])
    _same_cutout(_out(gimp, "u16-alpha"), _expected(gimp, "default"))


def test_32_bit_float_linear_image(gimp: dict) -> None:
    assert _ok(gimp, "float-alpha")["precision"] == "float-linear"
    np.testing.assert_array_equal(_out(gimp, "float-alpha")[..., 3], _expected(gimp, "default")[..., 3])


def test_selection_bounds_only(gimp: dict) -> None:
    x, y, w, h = SELECT
    want = _expected(gimp, "crop")[..., 3]
    for name in ("selection", "sub-selection"):
        _ok(gimp, name)
        alpha = _out(gimp, name)[..., 3]
        np.testing.assert_array_equal(alpha[y : y + h, x : x + w], want)
        outside = np.ones(alpha.shape, bool)
        outside[y : y + h, x : x + w] = False
        assert (alpha[outside] == 255).all()
        assert (want == 0).any()


def test_auto_falls_back_to_the_recorded_interpreter(gimp: dict) -> None:
    assert _ok(gimp, "auto-subprocess")["core_path"] == "subprocess"
    _same_cutout(_out(gimp, "auto-subprocess"), _expected(gimp, "default"))


def test_subprocess_path_gives_the_same_result(gimp: dict) -> None:
    for name, expected in (("sub-alpha", "default"), ("sub-threshold", "threshold")):
        assert _ok(gimp, name)["core_path"] == "subprocess"
        _same_cutout(_out(gimp, name), _expected(gimp, expected))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 127, b > 127
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_same_as_knockout_cut_from_the_users_own_environment(gimp: dict, tmp_path: Path) -> None:
    # the host's knockout (its own Python, numpy and scikit-learn versions), as a user runs it
    src = gimp["work"] / "img" / "rgb.png"
    cmd = [sys.executable, "-m", "knockout.cli", "cut", str(src), "-o", str(tmp_path), "-q"]
    subprocess.run(cmd, check=True, capture_output=True)
    host = _load(tmp_path / "rgb.png")[..., 3]
    assert _iou(_out(gimp, "alpha")[..., 3], host) >= 0.999


def test_real_portrait_if_available(gimp: dict) -> None:
    if "portrait" not in gimp["results"]:
        pytest.skip(f"portrait data not found at {PORTRAITS} (optional; set KNOCKOUT_PORTRAITS)")
    _ok(gimp, "portrait")
    got, want = _out(gimp, "portrait"), _expected(gimp, "portrait", "portrait")
    assert _iou(got[..., 3], want[..., 3]) >= 0.999
    _same_cutout(got, want)


def test_core_errors_come_back_as_pdb_errors(gimp: dict) -> None:
    for name in ("error-tiny", "sub-error-tiny"):
        r = gimp["results"][name]
        assert r["status"] == "execution-error"
        assert "image must be at least 2x2 pixels, got 1x1" in r["error"]
        assert not (gimp["work"] / "out" / f"{name}.png").exists()


def test_every_selected_layer_is_processed(gimp: dict) -> None:
    r = _ok(gimp, "two-layers")
    assert r["masks"] == [True, True]
    want = _expected(gimp, "default")[..., 3]
    hard = (want == 0) | (want == 255)  # the export stacks both masked layers: soft edges add up
    np.testing.assert_array_equal(_out(gimp, "two-layers")[..., 3][hard], want[hard])


def test_out_of_range_arguments_never_reach_the_plugin(gimp: dict) -> None:
    # typed, ranged PDB arguments: GIMP refuses each bad value, the declared default stays
    r = _ok(gimp, "mask")
    d = Settings()
    assert r["after_bad_args"] == {"clusters": d.clusters, "method": d.method, "feather": d.feather, "output": "mask"}
    proc = gimp["runs"][0][0]
    for key in BAD_ARGS:
        assert f"is invalid or out of range for property '{key}'" in proc.stderr
    assert r["has_mask"]


def test_no_layer_is_an_error_with_advice(gimp: dict) -> None:
    r = gimp["results"]["error-no-layer"]
    assert r["status"] == "execution-error"
    assert "no layer is selected" in r["error"]


def test_indexed_image_says_how_to_convert(gimp: dict) -> None:
    r = gimp["results"]["error-indexed"]
    assert r["status"] == "execution-error"
    assert "indexed" in r["error"] and "Image > Mode > RGB" in r["error"]


def test_unreachable_core_says_which_command_to_run(gimp: dict) -> None:
    r = gimp["results"]["error-no-core"]
    assert r["status"] == "execution-error"
    msg = r["error"]
    assert "cannot reach the knockout core" in msg
    assert "'{}.{}'".format(*sys.version_info[:2]) in msg  # installed from another Python: not importable here
    assert "does not exist here" in msg  # and that interpreter is not reachable from GIMP either
    assert "knockout gimp install" in msg


def test_grey_image_with_alpha(gimp: dict) -> None:
    _ok(gimp, "grey-alpha")
    got = np.asarray(Image.open(gimp["work"] / "out" / "grey-alpha.png"))
    assert got.ndim == 3 and got.shape[2] == 2
    want = _expected(gimp, "greya")
    assert (want[:, -24:, 3] <= 128).all()  # the layer's own alpha multiplied in
    np.testing.assert_array_equal(got[..., 1], want[..., 3])
    seen = want[..., 3] > 0
    np.testing.assert_array_equal(got[..., 0][seen], want[..., 0][seen])


def _raw(gimp: dict, name: str, when: str) -> np.ndarray:
    r = gimp["results"][name]
    dtype = {"u8": np.uint8, "u16": np.uint16}[r["format"].split()[-1]]
    return np.fromfile(gimp["work"] / "out" / f"{name}.png.{when}.raw", dtype).reshape(r["shape"])


def test_linear_and_grey_layers_keep_every_bit_the_core_did_not_change(gimp: dict) -> None:
    # written back in the layer's own precision: no 8-bit or sRGB round trip of untouched samples
    formats = {"fine-u16-linear": "RGBA u16", "fine-u8-linear": "RGBA u8"}
    for name, fmt in formats.items():
        assert _ok(gimp, name)["format"] == fmt
        before, after = _raw(gimp, name, "before"), _raw(gimp, name, "after")
        top = np.iinfo(after.dtype).max
        assert (before[..., -1] == top).all()
        kept = after[..., -1] == top
        assert 0.2 < kept.mean() < 0.8 and (after[..., -1] == 0).any(), name  # a real cut-out
        np.testing.assert_array_equal(after[kept], before[kept], err_msg=name)
        clear = after[..., -1] == 0  # applied to the alpha, like every RGBA output: nothing of the backdrop
        assert (after[..., :-1][clear] == 0).all(axis=-1).mean() > 0.5, name


def test_an_error_on_one_layer_leaves_every_layer_as_it_was(gimp: dict) -> None:
    r = gimp["results"]["error-second-layer"]
    assert r["status"] == "execution-error"
    assert "image must be at least 2x2 pixels, got 1x1" in r["error"]
    assert r["masks"] == [False, False]  # the first, computable layer got no mask either


def test_scripts_out_of_range_arguments_are_refused_by_the_pdb(gimp: dict) -> None:
    r = gimp["results"]["script-clusters-99"]
    assert r["status"] != "success", r
    assert "has value 99 out of range: 2 to 32" in r["error"]
    assert r["masks"] == [False]  # the plug-in never ran
    # an unknown choice is refused too, but GIMP 3.0.4's Script-Fu then calls with the default
    # ("mask") instead of failing: the plug-in only ever sees a declared value (and the same call
    # form with values in range works)
    r = _ok(gimp, "script-output-paint")
    assert r["masks"] == [True] and not r["alphas"][0]
    assert "value \"\"paint\"\" of type 'gchararray' is invalid or out of range for property 'output'" in (
        gimp["runs"][1][0].stderr
    )


def test_errors_are_also_shown_to_the_user_with_gimp_message(gimp: dict) -> None:
    stderr = gimp["runs"][0][0].stderr  # console GIMP prints Gimp.message on stderr
    for text in ("image must be at least 2x2 pixels, got 1x1", "no layer is selected", "Image > Mode > RGB"):
        assert [ln for ln in stderr.splitlines() if "Knock Out Backdrop: " in ln and text in ln], text
