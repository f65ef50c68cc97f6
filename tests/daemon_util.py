"""Helpers for the daemon tests: configs on tmp folders, real `knockout watch` processes, images."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from conftest import synthetic_headshot
from PIL import Image

FAST = {
    "settle": 0.3,
    "rescan": 2.0,
    "workers": 2,
    "retry_backoff": 0.3,
    "shutdown_timeout": 60,
    "settings": {"method": "threshold"},  # the fast method: these tests are about the daemon
}


def image_bytes(seed: int = 0, *, size: tuple[int, int] = (120, 90), fmt: str = "JPEG") -> bytes:
    rgb, _ = synthetic_headshot(*size, seed=seed)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt)
    return buf.getvalue()


def write_config(root: Path, name: str = "config.yaml", jobs: list[dict] | None = None, **top: Any) -> Path:
    cfg = {**FAST, "state_dir": f".state-{Path(name).stem}", **top}
    cfg["jobs"] = [{"name": "main", "inbox": "inbox", "outbox": "outbox"}] if jobs is None else jobs
    path = root / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def knockout(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "knockout.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class DaemonProcess:
    """`knockout watch -c CONFIG` in a subprocess, its log in a file."""

    def __init__(self, config: Path, *args: str, umask: int = -1, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = config.with_suffix(f".{time.monotonic_ns()}.log")
        self._fh = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "knockout.cli", "watch", "-c", str(config), *args],
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
            umask=umask,
            env=None if env is None else {**os.environ, **env},
        )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: "watching " in self.text(), timeout, self, "the daemon to start")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 90) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._fh.close()


def wait_for(pred: Callable[[], bool], timeout: float, daemon: DaemonProcess | None = None, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if daemon is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited ({daemon.proc.returncode}) waiting for {what}:\n{daemon.text()}")
        time.sleep(0.1)
    log = daemon.text()[-4000:] if daemon else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log}")


def visible(folder: Path) -> list[Path]:
    """Files in ``folder`` (recursively) that a consumer would see: not hidden."""
    out = []
    for dirpath, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out += [Path(dirpath) / n for n in names if not n.startswith(".")]
    return sorted(out)


def hidden_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*") if p.is_file())


def check_image(path: Path, mode: str = "RGBA", size: tuple[int, int] = (90, 120)) -> None:
    """A complete, decodable output of the expected mode and size."""
    with Image.open(path) as im:
        im.load()
        assert (im.mode, im.size) == (mode, size), f"{path}: {im.mode} {im.size}"


def done_count(log: str) -> int:
    """How many "INPUT -> OUTPUT (method, N ms)" lines a daemon log holds (flagged for review or not)."""
    return len(re.findall(r" -> .*\(\w[\w-]*, \d+ ms\)(?:; to review: .*)?$", log, flags=re.M))
