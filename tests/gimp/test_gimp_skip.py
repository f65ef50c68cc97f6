"""Without a GIMP 3 root the GIMP tests are skipped with a message saying how to provision one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_without_gimp_the_tests_are_skipped_saying_how_to_provision(tmp_path) -> None:
    env = {**os.environ, "KNOCKOUT_GIMP_ROOT": str(tmp_path / "no-root")}
    tests = [str(HERE / "test_gimp_plugin.py"), str(HERE / "test_gimp_dialog.py")]
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE.parents[1], check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" not in done.stdout and " failed" not in done.stdout
    skipped = [ln for ln in done.stdout.splitlines() if ln.startswith("SKIPPED")]
    assert skipped and all("tests/gimp/provision.sh" in ln and str(tmp_path / "no-root") in ln for ln in skipped)
