"""The plug-in in a real GIMP 3 with its user interface, under Xvfb: a user edits a value in the
dialog, presses OK, and the next run with last values remembers it (interactive and
with-last-values run modes); each output is one step of GIMP's own Edit > Undo (Ctrl+Z) and
Edit > Redo (Ctrl+Y)."""

from __future__ import annotations

import harness
import numpy as np
import pytest
from conftest import synthetic_headshot
from PIL import Image
from xdialog import UNDO_CASES, run_dialog

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(harness.unavailable()), reason=harness.unavailable())]


@pytest.fixture(scope="module")
def dialog(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("gimp-dialog")
    (work / "img").mkdir()
    rgb, _ = synthetic_headshot(200, 160, seed=5)
    Image.fromarray(rgb).save(work / "img" / "headshot.png")
    made = harness.make_core_venv(work)
    assert made.returncode == 0, made.stderr
    driver = (
        "from knockout.cli import main\n"
        "assert main(['cut', '/mnt/work/img/headshot.png', '-o', '/mnt/work/expected/hard', '--feather', '0']) == 0\n"
        "assert main(['cut', '/mnt/work/img/headshot.png', '-o', '/mnt/work/expected/default']) == 0\n"
    )
    cut = harness.run_in_root(["/mnt/work/venv/bin/python", "-c", driver], work)
    assert cut.returncode == 0, cut.stderr
    done, results = run_dialog(work, feather="0", undo=True)  # the user sets Feather to 0, presses OK
    assert done.returncode == 0 and results, done.stderr[-3000:]
    return {"work": work, "results": results}


def _alpha(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))[..., 3]


def test_dialog_is_shown_and_ok_runs_with_the_edited_value(dialog: dict) -> None:
    work = dialog["work"]
    shot = Image.open(work / "dialog.png")
    assert shot.width > 250 and shot.height > 300  # the whole dialog was mapped and captured
    r = dialog["results"]["interactive"]
    assert r["status"] == "success" and r["has_mask"] and r["core_path"] == "in-process"
    hard = _alpha(work / "expected" / "hard" / "headshot.png")
    assert set(np.unique(hard)) == {0, 255}
    assert len(np.unique(_alpha(work / "expected" / "default" / "headshot.png"))) > 2  # default feather is soft
    np.testing.assert_array_equal(_alpha(work / "out" / "interactive.png"), hard)


def test_with_last_values_remembers_the_dialog(dialog: dict) -> None:
    work = dialog["work"]
    assert dialog["results"]["last-vals"]["status"] == "success"
    np.testing.assert_array_equal(
        _alpha(work / "out" / "last-vals.png"), _alpha(work / "expected" / "hard" / "headshot.png")
    )


def test_each_output_is_one_undo_step(dialog: dict) -> None:
    cases = dialog["results"]["undo"]
    assert [(c["output"], c["layers"] == 2) for c in cases] == [tuple(u) for u in UNDO_CASES]
    for c in cases:
        name = f"{c['output']} on {c['layers']} layer(s)"
        assert c["status"] == "success", name
        assert c["after"] != c["before"], name
        assert c["undone"] == c["before"], f"{name}: one Ctrl+Z did not restore the image"
        assert c["redone"] == c["after"], f"{name}: one Ctrl+Y did not bring the result back"
    mask, alpha, layer, two = (c["after"] for c in cases)
    before = cases[0]["before"][0]
    assert mask[0]["mask"] and mask[0]["pixels"] == before["pixels"] and not mask[0]["alpha"]
    assert alpha[0]["alpha"] and alpha[0]["pixels"] != before["pixels"] and not alpha[0]["mask"]
    assert len(layer) == 2 and layer[0]["alpha"] and [lay["visible"] for lay in layer] == [True, False]
    assert layer[1] == {**before, "visible": False}
    assert all(lay["mask"] for lay in two)
