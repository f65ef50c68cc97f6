"""The systemd unit in daemon/: valid for systemd, hardened, and installed as the README says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "daemon" / "knockout.service"

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def _unit_here(tmp_path: Path) -> Path:
    """The unit with its ExecStart pointing at this venv's knockout (verify checks the program exists)."""
    exe = Path(sys.executable).with_name("knockout")
    text = UNIT.read_text(encoding="utf-8").replace("/opt/knockout/bin/knockout", str(exe))
    unit = tmp_path / "knockout.service"
    unit.write_text(text, encoding="utf-8")
    return unit


@needs_systemd
def test_unit_is_valid_for_systemd(tmp_path):
    r = subprocess.run(
        ["systemd-analyze", "verify", str(_unit_here(tmp_path))], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), r.stdout + r.stderr


@needs_systemd
def test_unit_is_hardened(tmp_path):
    """systemd's own exposure score (0 = locked down, 10 = unprotected) stays at "OK" (2.0) or better."""
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=20", str(_unit_here(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    score = float(re.search(r"Overall exposure level for knockout.service: ([\d.]+)", r.stdout).group(1))
    assert score <= 2.0, r.stdout[-3000:]


def test_readme_installs_the_unit_it_ships():
    """The README's commands put the program, the config and the unit where the unit expects them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Watch-folder daemon") :]
    unit = UNIT.read_text(encoding="utf-8")
    keys = dict(re.findall(r"^(\w+)=(.*)$", unit, flags=re.M))
    program, _watch, _c, config = keys["ExecStart"].split()
    venv = program.rsplit("/bin/", 1)[0]
    assert f"python3 -m venv {venv} && sudo {venv}/bin/pip install ." in section
    assert f"config.yaml {config}" in section
    assert "install -m 644 daemon/knockout.service /etc/systemd/system/" in section
    assert f"install -d -o {keys['User']} -g {keys['Group']} {keys['WorkingDirectory']}" in section
    assert keys["ReadWritePaths"] == keys["WorkingDirectory"] == str(Path(config).parent)
    assert "systemctl enable --now knockout" in section and keys["ExecReload"] == "/bin/kill -HUP $MAINPID"
