"""``knockout gimp install|uninstall``: put the GIMP 3 plug-in where GIMP finds it.

``install`` copies ``plug-ins/knockout-backdrop`` (shipped as package data of
``knockout.gimp_plugin``) into the GIMP 3 user plug-ins folder and writes ``core.json``
beside it: the interpreter, version and paths of the Python environment running this
command, so the plug-in can import the core in-process or run that interpreter as a
subprocess (see ``knockout.gimp_bridge``). ``uninstall`` removes the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import site
import sys
import sysconfig
import time
from pathlib import Path

from . import __version__

__all__ = ["PLUGIN_NAME", "default_gimp_dir", "install", "register", "uninstall"]

PLUGIN_NAME = "knockout-backdrop"
RECORD = "core.json"


def default_gimp_dir() -> Path:
    """GIMP 3's user folder on this platform (``$GIMP3_DIRECTORY`` when set).

    Linux: ``~/.config/GIMP/3.0``, or the Flatpak's
    ``~/.var/app/org.gimp.GIMP/config/GIMP/3.0`` when only that one exists; Windows:
    ``%APPDATA%\\GIMP\\3.0``; macOS: ``~/Library/Application Support/GIMP/3.0``.
    """
    if os.environ.get("GIMP3_DIRECTORY"):
        return Path(os.environ["GIMP3_DIRECTORY"])
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", home / "AppData" / "Roaming")) / "GIMP" / "3.0"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "GIMP" / "3.0"
    native = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "GIMP" / "3.0"
    flatpak = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.0"
    if not os.path.exists(native) and os.path.exists(flatpak):  # False, not an error, for a home it cannot read
        return flatpak
    return native


def _plugin_source() -> Path:
    from . import gimp_plugin  # type: ignore[attr-defined]  # package data, mapped from gimp_plugin/

    src = Path(gimp_plugin.__file__).parent / "plug-ins" / PLUGIN_NAME
    if not (src / f"{PLUGIN_NAME}.py").is_file():
        raise FileNotFoundError(f"the plug-in files are missing from this install ({src}); reinstall knockout")
    return src


def _record() -> dict:
    """How the plug-in reaches the core: this environment's interpreter and import paths."""
    import knockout

    site_dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        site_dirs.append(site.getusersitepackages())
    return {
        "knockout_version": __version__,
        "python": sys.executable,
        "python_version": "{}.{}".format(*sys.version_info[:2]),
        "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX") or "",
        "machine": platform.machine(),
        "paths": [str(Path(knockout.__file__).resolve().parent.parent)],
        "site_dirs": site_dirs,
        "installed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _plugins_dir(gimp_dir: Path | None) -> Path:
    gimp_dir = Path(gimp_dir).expanduser() if gimp_dir else default_gimp_dir()
    return gimp_dir if gimp_dir.name == "plug-ins" else gimp_dir / "plug-ins"  # either folder is accepted


def install(gimp_dir: Path | None = None) -> Path:
    """Copy the plug-in into ``gimp_dir/plug-ins`` and record this environment beside it.

    Parameters
    ----------
    gimp_dir : Path, optional
        GIMP 3's user folder (or its ``plug-ins`` folder); defaults to :func:`default_gimp_dir`.

    Returns
    -------
    Path
        The installed plug-in folder.
    """
    dest = _plugins_dir(gimp_dir) / PLUGIN_NAME
    src = _plugin_source()
    dest.mkdir(parents=True, exist_ok=True)
    script = dest / f"{PLUGIN_NAME}.py"
    tmp = dest / f".{PLUGIN_NAME}.py.tmp"
    shutil.copyfile(src / f"{PLUGIN_NAME}.py", tmp)
    tmp.chmod(0o755)  # GIMP runs only executable plug-ins
    os.replace(tmp, script)
    (dest / RECORD).write_text(json.dumps(_record(), indent=2) + "\n", encoding="utf-8")
    return dest


def uninstall(gimp_dir: Path | None = None) -> Path | None:
    """Remove the plug-in folder; returns it, or None when it was not installed."""
    dest = _plugins_dir(gimp_dir) / PLUGIN_NAME
    if not dest.exists():
        return None
    shutil.rmtree(dest)
    return dest


def _run(args: argparse.Namespace) -> int:
    if args.action == "install":
        try:
            dest = install(args.gimp_dir)
        except OSError as exc:
            print(f"knockout: error: cannot install the GIMP plug-in: {exc}", file=sys.stderr)
            return 1
        rec = json.loads((dest / RECORD).read_text(encoding="utf-8"))
        print(f"installed the GIMP 3 plug-in in {dest}")
        print(f"recorded the core's Python: {rec['python']} (Python {rec['python_version']})")
        if "org.gimp.GIMP" in str(dest):
            print(
                "note: Flatpak GIMP runs in a sandbox with its own Python; if it cannot import numpy and "
                "scikit-learn or run the Python above, the plug-in says so when it runs"
            )
        print("restart GIMP, open a headshot, then Layer > Transparency > Knock Out Backdrop...")
        return 0
    try:
        gone = uninstall(args.gimp_dir)
    except OSError as exc:
        print(f"knockout: error: cannot remove the GIMP plug-in: {exc}", file=sys.stderr)
        return 1
    print(f"removed {gone}" if gone else f"nothing to remove: no {PLUGIN_NAME} in {_plugins_dir(args.gimp_dir)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from .cli import common_options

    p = sub.add_parser(
        "gimp",
        parents=[common_options()],
        help="install or remove the GIMP 3 plug-in",
        description="Install the GIMP 3 plug-in (Layer > Transparency > Knock Out Backdrop...) into GIMP's "
        "user plug-ins folder, recording this Python environment so the plug-in can reach the core.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  knockout gimp install\n  knockout gimp install --gimp-dir ~/.config/GIMP/3.0\n"
        "  knockout gimp uninstall",
    )
    p.add_argument("action", choices=("install", "uninstall"))
    p.add_argument(
        "--gimp-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"GIMP 3's user folder or its plug-ins folder (default here: {default_gimp_dir()})",
    )
    p.set_defaults(func=_run)
