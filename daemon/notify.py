"""systemd's notify protocol by hand: ``READY=1``, ``STATUS=...``, ``WATCHDOG=1`` over ``$NOTIFY_SOCKET``.

With ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket) and, with ``WatchdogSec=``, ``WATCHDOG_USEC``; the daemon sends one datagram per
message. Without ``NOTIFY_SOCKET`` every call does nothing (a terminal, a container, cron).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to systemd; never raises (a lost message is logged once).

    Parameters
    ----------
    environ : mapping, optional
        Where ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` are read (default ``os.environ``).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        where = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if where.startswith("@"):  # abstract namespace: a leading NUL byte instead of the @
            self.address = b"\0" + os.fsencode(where[1:])
        elif where:
            self.address = where
        self.interval: float | None = None  # seconds between watchdog pings: half of WatchdogSec
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if self.address is not None and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.interval = int(usec) / 2e6
        self._sock: socket.socket | None = None
        self._last_ping = float("-inf")
        self._status: str | None = None
        self._said = False

    def send(self, *lines: str) -> None:
        """Send ``lines`` (``KEY=value``) as one datagram."""
        if self.address is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._said:
                self._said = True
                log.warning("cannot notify systemd at %s: %s", os.environ.get("NOTIFY_SOCKET"), exc.strerror or exc)

    def ready(self, status: str) -> None:
        self._status = status
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        """``STATUS=text``, sent only when it changed."""
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    def ping(self, now: float | None = None) -> None:
        """``WATCHDOG=1`` if the watchdog is on and half its interval has passed (call it from the main loop)."""
        if self.interval is None:
            return
        now = time.monotonic() if now is None else now
        if now - self._last_ping >= self.interval:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
