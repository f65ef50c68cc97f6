"""The plug-in's dialog in a real GIMP 3 under Xvfb: a user edits a value, presses OK, and the
next run with last values remembers it (interactive and with-last-values run modes)."""

from __future__ import annotations

import harness
import numpy as np
import pytest
from conftest import synthetic_headshot
from PIL import Image
from xdialog import run_dialog

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
    done, results = run_dialog(work, feather="0")  # the user sets Feather to 0 and presses OK
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
