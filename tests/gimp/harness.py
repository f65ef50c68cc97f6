"""Run commands and headless GIMP 3 inside the trixie root that ``provision.sh`` builds.

Used by the GIMP tests, ``bench/gimp.py`` and ``screenshot.py``. Each command runs as
``unshare --mount --pid`` + ``chroot``: proc, sysfs (read-only), a tmpfs on /dev/shm and the
work folder (at ``/mnt/work``) are mounted in a private namespace that disappears with the
command, so nothing is left mounted or running when it ends, times out or is killed. /tmp is a fresh tmpfs too, so
runs at the same time (other test sessions on the machine) never share X server locks or
temporary files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
ROOT = Path(os.environ.get("KNOCKOUT_GIMP_ROOT", "/var/cache/knockout/gimp-root"))
STAMP = ROOT / ".knockout-gimp-root"
PROVISION = HERE / "provision.sh"
HOW_TO_PROVISION = (
    f"no GIMP 3 root at {ROOT}: run `sudo tests/gimp/provision.sh` once (Debian trixie with GIMP 3.0 "
    "in a debootstrap root, about 2 minutes and 1 GB; .ci/run does it), or set KNOCKOUT_GIMP_ROOT"
)
SYS_PLUGINS = "/usr/lib/x86_64-linux-gnu/gimp/3.0/plug-ins"
# GIMP noise that is benign and documented in ../shared/notes/gimp3-headless.md
BENIGN = ("gimp_flush(): error: Broken pipe", "list of contexts not empty upon exit", "stale context:")

_MOUNT = r"""
set -e
root=$1; work=$2; shift 2
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount -t tmpfs tmpfs "$root/dev/shm"
mount -t tmpfs tmpfs "$root/tmp"
mount --bind "$work" "$root/mnt/work"
exec chroot "$root" "$@"
"""


def unavailable() -> str:
    """Why GIMP tests cannot run here, or '' when they can."""
    if not STAMP.is_file():
        return HOW_TO_PROVISION
    if os.geteuid() != 0:
        return f"the GIMP 3 root at {ROOT} needs root privileges (chroot); run the tests as root"
    return ""


def run_in_root(
    argv: list[str], work: Path, *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``argv`` inside the root with ``work`` at /mnt/work and a clean environment."""
    base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/mnt/work/home"}
    base.update(env or {})
    # a PID namespace too: when the command times out and unshare is killed, --kill-child takes
    # everything started inside (GIMP, its plug-ins, Xvfb) with it; nothing is left running
    cmd = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--"]
    cmd += ["bash", "-c", _MOUNT, "mount-and-chroot"]
    cmd += [str(ROOT), str(work), "env", "-i", *(f"{k}={v}" for k, v in base.items()), *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def make_gimp_dir(work: Path, *, script_fu: bool = False) -> Path:
    """A throw-away GIMP user folder ``work/cfg`` that only loads our plug-in, PNG and python-eval
    (and Script-Fu with its scripts when asked: about 3 s more)."""
    cfg = work / "cfg"
    (cfg / "plug-ins").mkdir(parents=True, exist_ok=True)
    sys_plugins = cfg / "sys-plug-ins"
    sys_plugins.mkdir(exist_ok=True)
    for name in ("file-png", "python-eval", *(["script-fu"] if script_fu else [])):
        link = sys_plugins / name
        if not link.is_symlink():
            link.symlink_to(f"{SYS_PLUGINS}/{name}")
    (cfg / "gimprc").write_text(
        '(config-version "3.0.4")\n(show-welcome-dialog no)\n(check-updates no)\n'
        '(plug-in-path "${gimp_dir}/plug-ins:${gimp_dir}/sys-plug-ins")\n'
    )
    (cfg / "tags.xml").write_text("<tags></tags>\n")
    for d in ("home", "cache", "data"):
        (work / d).mkdir(exist_ok=True)
    return cfg


def gimp_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "GIMP3_DIRECTORY": "/mnt/work/cfg",
        "XDG_CACHE_HOME": "/mnt/work/cache",
        "XDG_DATA_HOME": "/mnt/work/data",
        # joblib/loky warns without a CPU count below the real one
        "LOKY_MAX_CPU_COUNT": "1",
    }
    env.update(extra or {})
    return env


def gimp_argv(batch: str) -> list[str]:
    """``gimp-console-3.0`` headless on the python-fu batch file ``batch`` (a path inside the root), then quit."""
    quit_cmd = (
        'p = Gimp.get_pdb().lookup_procedure("gimp-quit"); c = p.create_config(); '
        'c.set_property("force", True); p.run(c)'
    )
    return [
        "gimp-console-3.0",
        "-i",
        "--stack-trace-mode=never",
        "--batch-interpreter=python-fu-eval",
        "-b",
        f"exec(open({batch!r}).read())",
        "-b",
        quit_cmd,
        "--quit",
    ]


def run_gimp(
    work: Path, batch: str, *, env: dict[str, str] | None = None, timeout: float = 300, script_fu: bool = False
) -> subprocess.CompletedProcess:
    """Run GIMP headless on ``batch`` with ``work`` as its throw-away user folder."""
    make_gimp_dir(work, script_fu=script_fu)
    return run_in_root(gimp_argv(batch), work, env=gimp_env(env), timeout=timeout)


def noise_free(stderr: str) -> list[str]:
    """stderr lines that are not GIMP's known benign noise."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not any(b in ln for b in BENIGN)]


def stage_project(work: Path) -> Path:
    """Copy what a pip install of knockout needs into ``work/project`` (the checkout stays untouched)."""
    dest = work / "project"
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv", "root")
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, dest / name)
    for name in ("src", "daemon", "gimp_plugin"):
        shutil.copytree(PROJECT / name, dest / name, ignore=ignore)
    return dest


def make_core_venv(work: Path) -> subprocess.CompletedProcess:
    """Inside the root: a venv using Debian's numpy/scikit-learn, knockout pip-installed into it
    (a regular, non-editable install from the staged copy, offline), and ``knockout gimp install``
    run from it into the throw-away GIMP folder."""
    stage_project(work)
    make_gimp_dir(work)
    script = (
        "set -e; python3 -m venv --system-site-packages /mnt/work/venv; "
        "/mnt/work/venv/bin/pip install -q --no-deps --no-index --no-build-isolation /mnt/work/project "
        "2>&1 | grep -v 'WARNING: Location' || true; "
        "/mnt/work/venv/bin/knockout gimp install --gimp-dir /mnt/work/cfg"
    )
    return run_in_root(["bash", "-c", script], work, env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"})
