"""systemd's notify protocol: READY, STATUS and WATCHDOG reach a real datagram socket from a real daemon."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from daemon_util import DaemonProcess, image_bytes, wait_for, write_config
from knockout.daemon.notify import Notifier


def _abstract_socket() -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"knockout-test-{uuid.uuid4().hex}"
    sock.bind(b"\0" + name.encode())
    sock.setblocking(False)
    return sock, "@" + name


def _drain(sock: socket.socket, into: list[str]) -> list[str]:
    while True:
        try:
            into.append(sock.recv(4096).decode())
        except BlockingIOError:
            return into


def test_without_notify_socket_nothing_is_sent():
    n = Notifier({})
    assert n.address is None and n.interval is None
    n.ready("x")
    n.ping()  # no socket, no error


def test_a_path_socket_and_the_watchdog_interval(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative name: AF_UNIX paths are limited to 108 bytes
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("notify.sock")
    sock.setblocking(False)
    n = Notifier({"NOTIFY_SOCKET": "notify.sock", "WATCHDOG_USEC": "4000000"})
    assert n.interval == 2.0
    n.ready("starting")
    n.status("starting")  # unchanged: not sent again
    n.status("1 queued")
    n.ping(100.0)
    n.ping(101.0)  # within half the interval: not sent
    n.ping(102.0)
    got = _drain(sock, [])
    assert got == [f"READY=1\nSTATUS=starting\nMAINPID={os.getpid()}", "STATUS=1 queued", "WATCHDOG=1", "WATCHDOG=1"]
    assert Notifier({"NOTIFY_SOCKET": "notify.sock", "WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}).interval is None


def test_a_gone_socket_is_said_once_and_never_raises(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    n = Notifier({"NOTIFY_SOCKET": "nobody-here.sock"})
    n.send("READY=1")
    n.send("STATUS=x")
    assert sum("cannot notify systemd" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")
def test_a_daemon_reports_ready_status_and_watchdog(tmp_path):
    sock, name = _abstract_socket()
    cfg = write_config(tmp_path)
    (tmp_path / "inbox").mkdir()
    got: list[str] = []
    d = DaemonProcess(cfg, env={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000"})
    try:
        d.wait_ready()
        wait_for(lambda: any(m.startswith("READY=1") for m in _drain(sock, got)), 30, d, "READY=1")
        ready = next(m for m in got if m.startswith("READY=1"))
        assert f"MAINPID={d.proc.pid}" in ready and "STATUS=0 queued, 0 in flight, 0 done" in ready
        (tmp_path / "inbox" / "a.jpg").write_bytes(image_bytes(1))
        (tmp_path / "inbox" / "b.jpg").write_bytes(image_bytes(2))
        wait_for(lambda: any("2 done" in m for m in _drain(sock, got)), 90, d, "STATUS=... 2 done")
        statuses = [m for m in got if m.startswith("STATUS=")]
        assert any(" in flight" in m and not m.startswith("STATUS=0 queued, 0 in flight") for m in statuses), statuses
        assert statuses[-1].startswith("STATUS=0 queued, 0 in flight, 2 done") and statuses[-1].endswith("0 failed")
        pings = sum(m == "WATCHDOG=1" for m in got)
        wait_for(lambda: sum(m == "WATCHDOG=1" for m in _drain(sock, got)) >= pings + 3, 30, d, "more pings")
    finally:
        d.stop()
    _drain(sock, got)
    assert "STOPPING=1" in got
    sock.close()
