"""Packaging: ``daemon/`` installs as ``knockout.daemon`` (never a top-level ``daemon``), in both kinds of install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import knockout

ROOT = Path(__file__).resolve().parents[1]


def test_editable_install_maps_daemon_folder_to_knockout_daemon(tmp_path):
    # from another folder, so that the checkout itself is not on sys.path
    code = (
        "import importlib.util, knockout, knockout.daemon; "
        "print(knockout.__file__); print(knockout.daemon.__file__); print(importlib.util.find_spec('daemon'))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    pkg, daemon, top = r.stdout.splitlines()
    assert Path(pkg).resolve().parent == ROOT / "src" / "knockout"
    assert Path(daemon).resolve().parent == ROOT / "daemon"
    assert top == "None"  # no top-level `daemon` package (python-daemon owns that name)


def test_wheel_holds_knockout_daemon_and_no_top_level_daemon(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("knockout-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"knockout", f"knockout-{knockout.__version__}.dist-info"}, tops
    assert "knockout/daemon/__init__.py" in names and "knockout/daemon/default-config.yaml" in names
    assert "knockout/commands/cut.py" in names and "knockout/py.typed" in names
    meta = zipfile.ZipFile(wheel).read(f"knockout-{knockout.__version__}.dist-info/METADATA").decode()
    assert "Requires-Python: >=3.10" in meta
    assert "License-Expression: MIT" in meta and "License-File: LICENSE" in meta
    licence = zipfile.ZipFile(wheel).read(f"knockout-{knockout.__version__}.dist-info/licenses/LICENSE").decode()
    assert licence.startswith("MIT License")
    for dep in ("numpy", "pillow", "scikit-learn", "pyyaml", "watchdog", "tqdm"):
        assert f"Requires-Dist: {dep}" in meta
    assert "Provides-Extra: heif" in meta
    entry = zipfile.ZipFile(wheel).read(f"knockout-{knockout.__version__}.dist-info/entry_points.txt").decode()
    assert "knockout = knockout.cli:run" in entry


def test_metadata_has_classifiers_and_extras():
    from importlib.metadata import metadata

    meta = metadata("knockout")
    classifiers = meta.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.10" in classifiers and "Typing :: Typed" in classifiers
    assert "Topic :: Multimedia :: Graphics" in classifiers
    assert {"heif", "dask", "deep", "test"} <= set(meta.get_all("Provides-Extra") or [])
    # isal stays a dependency because the README says why
    assert any(r.startswith("isal") for r in meta.get_all("Requires-Dist") or [])
    assert "## Why isal" in (ROOT / "README.md").read_text()


def test_the_build_requires_a_setuptools_that_reads_the_license_expression():
    """``license = "MIT"`` (an SPDX expression, PEP 639) is read by setuptools 77 and later; older
    ones reject the whole pyproject.toml ("project.license must be valid exactly by one definition"),
    so a build environment that picks 68-76 (what ``setuptools>=68`` allowed) could not build knockout."""
    import re

    import pytest

    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(conf["project"]["license"], str)
    (req,) = [r for r in conf["build-system"]["requires"] if r.startswith("setuptools")]
    floor = tuple(int(x) for x in re.fullmatch(r"setuptools>=([\d.]+)", req).group(1).split("."))
    assert floor >= (77,), req
