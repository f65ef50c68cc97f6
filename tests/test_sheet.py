"""``knockout sheet`` and :func:`knockout.commands.sheet.make_sheet`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_headshot
from PIL import Image

from knockout.cli import main
from knockout.commands.sheet import _CAPTION, _PAD, make_sheet

KNOCKOUT = Path(sys.executable).with_name("knockout")


def _write_headshots(folder: Path, n: int = 3) -> list[Path]:
    paths = []
    for i in range(n):
        img, _ = synthetic_headshot(seed=i, backdrop=(128, 130, 135))
        p = folder / f"person{i}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def test_make_sheet_layout_and_canvas():
    img, mask = synthetic_headshot()
    cut = np.dstack([img, mask.astype(np.uint8) * 255])
    thumb = 60
    sheet = make_sheet([img] * 3, [("kmeans", [cut] * 3)], ["a", "b", "c"], columns=2, thumb=thumb, canvas=(0, 255, 0))
    cell_h = thumb + _CAPTION + _PAD
    # two columns, two bands (3 pictures) of two rows (original + one method)
    assert sheet.shape == (_PAD + 2 * 2 * cell_h + _PAD, _PAD + 2 * (thumb + _PAD), 3)
    # the backdrop of the cut-out (top-left of the picture) shows the canvas colour, the original its backdrop
    fit_w = round(thumb * img.shape[1] / img.shape[0])
    x = _PAD + (thumb - fit_w) // 2 + 2
    assert tuple(sheet[_PAD + cell_h + 2, x]) == (0, 255, 0)
    assert abs(int(sheet[_PAD + 2, x, 0]) - 128) < 12


def test_make_sheet_checks_its_inputs():
    img, _ = synthetic_headshot()
    with pytest.raises(ValueError, match="captions"):
        make_sheet([img, img], [], ["only one"])
    with pytest.raises(ValueError, match="at least one"):
        make_sheet([], [], [])


def test_sheet_command_as_a_user_runs_it(tmp_path):
    paths = _write_headshots(tmp_path)
    out = tmp_path / "sheet.png"
    r = subprocess.run(
        [str(KNOCKOUT), "sheet", *map(str, paths), "-o", str(out), "--columns", "3", "--thumb", "80",
         "--method", "kmeans,threshold,classic-threshold"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    sheet = np.asarray(Image.open(out))
    cell_h = 80 + _CAPTION + _PAD
    assert sheet.shape[:2] == (_PAD + 4 * cell_h, _PAD + 3 * (80 + _PAD))  # originals + 3 method rows
    # checkerboard under the cut-out: both checker greys appear in the kmeans row's backdrop area
    row = sheet[_PAD + cell_h + 2 : _PAD + cell_h + 18, _PAD + 20 : _PAD + 40, 0]
    assert {153, 204} <= set(np.unique(row).tolist())


def test_sheet_reports_bad_files_and_keeps_going(tmp_path, capsys):
    paths = _write_headshots(tmp_path, n=2)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    out = tmp_path / "s.png"
    code = main(["sheet", str(paths[0]), str(bad), str(tmp_path / "missing.png"), str(paths[1]), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.jpg" in err and "missing.png" in err
    assert Image.open(out).size[0] == _PAD + 2 * (240 + _PAD)  # the two good images are on the sheet


def test_sheet_usage_errors(tmp_path, capsys):
    paths = _write_headshots(tmp_path, n=1)
    assert main(["sheet", str(paths[0]), "-o", str(tmp_path / "s.png"), "--method", "magic"]) == 2
    assert "magic" in capsys.readouterr().err
    assert main(["sheet", str(paths[0]), "-o", str(tmp_path / "s.png"), "--canvas", "plaid"]) == 2
    assert "canvas" in capsys.readouterr().err
    (tmp_path / "notes.jpg").write_text("mine")
    assert main(["sheet", str(paths[0]), "-o", str(tmp_path / "notes.jpg" / "s.png")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'notes.jpg'} is a file, not a folder" in err and err.count("\n") == 1, err
    assert not (tmp_path / "s.png").exists()


def _sheet_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [str(KNOCKOUT), "sheet", *args], capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )


def test_sheet_keeps_an_existing_file_unless_overwrite_and_writes_the_format_its_name_says(tmp_path):
    paths = [str(p) for p in _write_headshots(tmp_path, 2)]
    mine = tmp_path / "sheet.png"
    mine.write_bytes(b"my own file")
    r = _sheet_cli(*paths, "-o", str(mine))
    assert r.returncode == 2 and f"{mine} exists; use --overwrite" in r.stderr and mine.read_bytes() == b"my own file"
    assert _sheet_cli(*paths, "-o", str(mine), "--overwrite").returncode == 0
    assert Image.open(mine).format == "PNG"
    for name, fmt in (("s.webp", "WEBP"), ("s.jpg", "JPEG")):
        r = _sheet_cli(*paths, "-o", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        assert Image.open(tmp_path / name).format == fmt
    r = _sheet_cli(*paths, "-o", str(tmp_path / "s.gif"))
    assert r.returncode == 2 and "a sheet is .png, .webp or .jpg" in r.stderr


def test_sheet_shows_progress_and_q_is_quiet(tmp_path):
    paths = [str(p) for p in _write_headshots(tmp_path, 3)]
    r = _sheet_cli(*paths, "-o", str(tmp_path / "a.png"), env={"KNOCKOUT_PROGRESS_EVERY": "0"})
    assert r.returncode == 0, r.stderr
    assert "knockout: 1/3 done" in r.stderr and "knockout: 2/3 done" in r.stderr
    assert "knockout: sheet of 3 images x 1 method -> " in r.stderr
    assert "cut out with" not in r.stderr  # no log line per file between the progress lines (cut has none)
    r = _sheet_cli(*paths, "-o", str(tmp_path / "c.png"), "-v", env={"KNOCKOUT_PROGRESS_EVERY": "0"})
    assert r.returncode == 0 and r.stderr.count(": cut out with threshold") == 3, r.stderr  # -v: one a file
    r = _sheet_cli(*paths, "-o", str(tmp_path / "b.png"), "-q", env={"KNOCKOUT_PROGRESS_EVERY": "0"})
    assert r.returncode == 0 and r.stderr == "" and Image.open(tmp_path / "b.png").format == "PNG"
