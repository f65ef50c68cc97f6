"""The systemd unit in daemon/: valid for systemd, hardened, and installed as the README says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    assert f"install -D -m 644 daemon/knockout.yaml {config}" in section
    assert "install -m 644 daemon/knockout.service /etc/systemd/system/" in section
    assert Path(config).parent == Path("/etc") / keys["ConfigurationDirectory"]
    assert keys["WorkingDirectory"] == f"/var/lib/{keys['StateDirectory']}"
    assert "systemctl enable --now knockout" in section and keys["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert keys["Type"] == "notify" and int(keys["WatchdogSec"]) > 0


def test_the_units_config_keeps_every_folder_in_its_state_directory():
    """daemon/knockout.yaml is valid and writes only under StateDirectory (ProtectSystem=strict allows no more)."""
    unit = UNIT.read_text(encoding="utf-8")
    state = Path("/var/lib") / dict(re.findall(r"^(\w+)=(.*)$", unit, flags=re.M))["StateDirectory"]
    r = subprocess.run(
        [sys.executable, "-m", "knockout.cli", "watch", "--check", "-c", str(ROOT / "daemon" / "knockout.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    resolved = yaml.safe_load(r.stdout)
    folders = [Path(resolved["state_dir"])]
    for job in resolved["jobs"]:
        folders += [Path(job[k]) for k in ("inbox", "outbox", "processed", "failed", "review") if job.get(k)]
    assert len(folders) == 6 and all(state in f.parents for f in folders), folders
