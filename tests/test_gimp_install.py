"""``knockout gimp install|uninstall`` and the plug-in's declared arguments (no GIMP needed)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from knockout.cli import main
from knockout.gimp import PLUGIN_NAME, default_gimp_dir
from knockout.settings import PRESETS, Settings, SettingsError

PROJECT = Path(__file__).resolve().parents[1]
PLUGIN = PROJECT / "gimp_plugin" / "plug-ins" / PLUGIN_NAME / f"{PLUGIN_NAME}.py"


def test_install_copies_the_plugin_and_records_this_environment(tmp_path, capsys) -> None:
    assert main(["gimp", "install", "--gimp-dir", str(tmp_path)]) == 0
    dest = tmp_path / "plug-ins" / PLUGIN_NAME
    script = dest / f"{PLUGIN_NAME}.py"
    assert script.read_bytes() == PLUGIN.read_bytes()
    assert os.access(script, os.X_OK)
    rec = json.loads((dest / "core.json").read_text())
    assert rec["python"] == sys.executable
    assert rec["python_version"] == "{}.{}".format(*sys.version_info[:2])
    import knockout

    assert str(Path(knockout.__file__).resolve().parent.parent) in rec["paths"]
    out = capsys.readouterr().out
    assert str(dest) in out and sys.executable in out
    assert main(["gimp", "uninstall", "--gimp-dir", str(tmp_path)]) == 0
    assert not dest.exists()
    assert f"removed {dest}" in capsys.readouterr().out
    assert main(["gimp", "uninstall", "--gimp-dir", str(tmp_path)]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_the_plugins_folder_itself_is_accepted(tmp_path, capsys) -> None:
    assert main(["gimp", "install", "--gimp-dir", str(tmp_path / "plug-ins")]) == 0
    assert (tmp_path / "plug-ins" / PLUGIN_NAME / f"{PLUGIN_NAME}.py").is_file()
    assert not (tmp_path / "plug-ins" / "plug-ins").exists()
    assert main(["gimp", "uninstall", "--gimp-dir", str(tmp_path)]) == 0
    assert not (tmp_path / "plug-ins" / PLUGIN_NAME).exists()


def test_default_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "g"))
    assert default_gimp_dir() == tmp_path / "g"
    monkeypatch.delenv("GIMP3_DIRECTORY")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    if sys.platform.startswith("linux"):
        assert default_gimp_dir() == tmp_path / "cfg" / "GIMP" / "3.0"
        flatpak = tmp_path / ".var/app/org.gimp.GIMP/config/GIMP/3.0"
        flatpak.mkdir(parents=True)
        assert default_gimp_dir() == flatpak


def test_a_regular_install_ships_the_plugin(tmp_path) -> None:
    src = tmp_path / "project"  # a copy: pip builds in place and would write build/ into the checkout
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("src", "daemon", "gimp_plugin"):
        shutil.copytree(PROJECT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, src / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("knockout-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert f"knockout/gimp_plugin/plug-ins/{PLUGIN_NAME}/{PLUGIN_NAME}.py" in names
    assert "knockout/gimp_bridge.py" in names


def _arguments() -> dict:
    tree = ast.parse(PLUGIN.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENTS":
            return {a[1]: a for a in ast.literal_eval(node.value)}
    raise AssertionError("no ARGUMENTS table in the plug-in")


def test_plugin_arguments_agree_with_the_core_settings() -> None:
    args = _arguments()
    d = Settings()
    assert args["method"][4] == d.method
    assert {nick for nick, _ in args["method"][5]} == {"kmeans", "threshold"}
    assert {nick for nick, _ in args["preset"][5]} == {"none", *PRESETS}
    assert args["auto-tolerance"][4] is (d.tolerance == "auto")
    for name in ("clusters", "feather", "decontaminate", "fill-holes", "min-island"):
        assert args[name][4] == getattr(d, name.replace("-", "_")), name
    for name in ("clusters", "tolerance", "feather", "min-island"):
        lo, hi = args[name][5]
        key = name.replace("-", "_")
        Settings.from_mapping({key: lo})
        Settings.from_mapping({key: hi})  # the dialog's range is the core's
        step = 1 if isinstance(lo, int) else 1e-6
        for bad in (lo - step, hi + step):
            with pytest.raises(SettingsError):
                Settings.from_mapping({key: bad})


@pytest.mark.parametrize(
    ("platform", "folder"),
    [("win32", "Roaming/GIMP/3.0"), ("darwin", "Library/Application Support/GIMP/3.0"), ("linux", "xdg/GIMP/3.0")],
)
def test_install_goes_to_the_platforms_gimp_folder(monkeypatch, tmp_path, capsys, platform, folder) -> None:
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(sys, "platform", platform)
    assert main(["gimp", "install"]) == 0  # no --gimp-dir: the platform's own folder
    dest = tmp_path / folder / "plug-ins" / PLUGIN_NAME
    assert (dest / f"{PLUGIN_NAME}.py").is_file() and (dest / "core.json").is_file()
    assert f"installed the GIMP 3 plug-in in {dest}" in capsys.readouterr().out
    assert main(["gimp", "uninstall"]) == 0
    assert not dest.exists() and f"removed {dest}" in capsys.readouterr().out
