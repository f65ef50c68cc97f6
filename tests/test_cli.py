"""The ``knockout`` command line's own habits: ``python -m knockout``, the usage line, misspelt options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_headshot
from PIL import Image

from knockout import __version__


def _knockout(*args: str, module: bool = False) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("knockout")
    cmd = [sys.executable, "-m", "knockout"] if module or not exe.exists() else [str(exe)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, check=False)


def test_python_m_knockout_runs_the_command_line(tmp_path):
    r = _knockout("--version", module=True)
    assert r.returncode == 0 and r.stdout.strip() == f"knockout {__version__}"
    img, _ = synthetic_headshot(48, 36)
    Image.fromarray(img).save(tmp_path / "a.png")
    r = _knockout("cut", str(tmp_path / "a.png"), module=True)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "a-cutout.png").mode == "RGBA"


def test_usage_line_shows_the_choices():
    usage = _knockout("cut", "--help").stdout.split("\n\n")[0]
    for shown in ("--method {threshold,kmeans}", "--output {rgba,mask,solid}", "--format {png,webp,jpeg}"):
        assert shown in " ".join(usage.split()), usage
    assert "--depth {8,16}" in " ".join(usage.split())
    # sheet and eval take a comma-separated list of methods
    assert "--method METHOD[,METHOD...]" in " ".join(_knockout("sheet", "--help").stdout.split())


@pytest.mark.parametrize(
    ("args", "usage", "hint"),
    [
        (["cut", "a.jpg", "--feathr", "2"], "usage: knockout cut", "--feathr (did you mean --feather?)"),
        (["sheet", "a.jpg", "--colums", "3"], "usage: knockout sheet", "--colums (did you mean --columns?)"),
        (["cut", "a.jpg", "--no-decontaminte"], "usage: knockout cut", "did you mean --no-decontaminate?"),
        (["cut", "a.jpg", "--zzzz"], "usage: knockout cut", "unrecognized arguments: --zzzz"),
    ],
)
def test_a_misspelt_option_gets_the_sub_commands_usage_and_a_suggestion(args, usage, hint):
    r = _knockout(*args)
    assert r.returncode == 2
    assert r.stderr.startswith(usage) and hint in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("given", "rgb"), [("white", (255, 255, 255)), ("#fff", (255, 255, 255)), ("red", (255, 0, 0))]
)
def test_background_by_name_and_short_hex(tmp_path, given, rgb):
    img, _ = synthetic_headshot(48, 36)
    Image.fromarray(img).save(tmp_path / "a.png")
    r = _knockout("cut", str(tmp_path / "a.png"), "--output", "solid", "--background", given)
    assert r.returncode == 0, r.stderr
    out = np.asarray(Image.open(tmp_path / "a-solid.png"))
    assert tuple(int(v) for v in out[1, 1]) == rgb
    r = _knockout("cut", str(tmp_path / "a.png"), "--output", "solid", "--background", "whte", "--overwrite")
    assert r.returncode == 2 and "background: 'whte' is not a colour; use a name ('white'), '#rgb'" in r.stderr
