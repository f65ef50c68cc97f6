"""The code base stays ruff-clean (lint rules and formatting from pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return [exe]


def test_ruff_check():
    r = subprocess.run([*_ruff(), "check", "--no-cache", str(ROOT)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format():
    r = subprocess.run(
        [*_ruff(), "format", "--check", "--no-cache", str(ROOT)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr
