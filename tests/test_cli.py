"""The ``knockout`` command line's own habits: ``python -m knockout``, the usage line, misspelt options."""

from __future__ import annotations

import io
import os
import resource
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


_EXIT_PROBE = r"""
import atexit, os, sys, threading
import knockout.cli

class Module:  # freed by Python's shutdown (its module teardown), which a quick exit skips
    def __del__(self, write=os.write):
        write(1, b"torn down\n")

kept = Module()
atexit.register(lambda: print("exit handler ran", flush=True))
if sys.argv[1] == "thread":  # something else still running (for ever): the usual exit
    threading.Thread(target=threading.Event().wait, daemon=True).start()
sys.argv = ["knockout", *sys.argv[2:]]
print("cutting", flush=True)
knockout.cli.run()
"""


@pytest.mark.parametrize("busy", ["idle", "thread"])
def test_the_script_ends_without_tearing_down_its_modules_when_nothing_else_runs(busy, tmp_path):
    img, _ = synthetic_headshot(48, 36)
    Image.fromarray(img).save(tmp_path / "a.png")
    for args, code in (([str(tmp_path / "a.png"), "-q"], 0), ([str(tmp_path / "missing.png")], 1)):
        r = subprocess.run(
            [sys.executable, "-c", _EXIT_PROBE, busy, "cut", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert r.returncode == code, r.stderr
        said = r.stdout.splitlines()
        assert said[:2] == ["cutting", "exit handler ran"], r.stdout  # the exit handlers still run
        assert ("torn down" in said) == (busy == "thread"), r.stdout
    assert Image.open(tmp_path / "a-cutout.png").mode == "RGBA"
    assert "missing.png" in r.stderr  # the error line was written before the end


def test_the_script_writes_the_whole_output_to_a_pipe(tmp_path):
    img, _ = synthetic_headshot(300, 240)
    Image.fromarray(img).save(tmp_path / "a.png")
    exe = Path(sys.executable).with_name("knockout")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "knockout"]
    r = subprocess.run(
        [*cmd, "cut", str(tmp_path / "a.png"), "-o", "-", "-q"], capture_output=True, timeout=300, check=False
    )
    assert r.returncode == 0, r.stderr
    out = Image.open(io.BytesIO(r.stdout))
    out.load()  # every byte of the PNG arrived
    assert out.size == (240, 300) and out.mode == "RGBA"


def test_the_script_reports_an_output_it_could_not_write_at_its_end(tmp_path):
    """run() flushes stdout before its quick exit; when that fails (a full disk, here the file-size
    limit) the usual exit reports it: the quick exit would have ended silently, the line lost."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("jobs:\n  - inbox: in\n    outbox: out\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as by default

    def ten_bytes() -> None:  # Python ignores SIGXFSZ: a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (10, 10))

    with open(tmp_path / "out.txt", "wb") as out:
        r = subprocess.run(
            [sys.executable, "-m", "knockout", "status", "-c", str(cfg)],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=ten_bytes,
            timeout=300,
            check=False,
        )
    assert "File too large" in r.stderr, r.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["status"], ["watch", "--check"]])
@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_full_disk_under_stdout_is_one_line_not_a_traceback(tmp_path, command, unbuffered):
    """`knockout status > file` on a full disk (here /dev/full): the write fails as the command prints
    (unbuffered) or at its end (buffered); either way one line says so, exit code 1."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("jobs:\n  - inbox: in\n    outbox: out\n")
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "knockout", *command, "-c", str(cfg)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    assert r.stderr == "knockout: error: cannot write to standard output: No space left on device\n", r.stderr
    assert r.returncode == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["--help"], ["--version"], ["cut", "--help"]])
def test_help_on_a_full_disk_is_one_line_and_exit_1(command):
    """`knockout --help > file` on a full disk: argparse prints and exits on its own (SystemExit, not
    through the command), and what it printed could not be written; that is said too, exit code 1."""
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "knockout", *command],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert r.stderr == "knockout: error: cannot write to standard output: No space left on device\n", r.stderr
    assert r.returncode == 1


def test_a_stdout_the_command_closed_is_no_write_error(tmp_path):
    """A command that closed stdout (nothing more can be written to it) ends with its own exit code
    and says nothing: the end-of-run flush check must not take the closed stream for a full disk."""
    code = "import sys, knockout.cli as c\nc.main = lambda: (sys.stdout.close(), 0)[1]\nc.run()\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
