"""The service's signal handling, in process (the loop itself is tested with real daemons elsewhere)."""

from __future__ import annotations

import logging
import os
import signal
import time

from knockout.daemon.service import Daemon
from stage_util import stage_config

_LOG = "knockout.daemon.service"


class _SignalAgain(logging.Handler):
    """Sends SIGINT once more while the first stop message is being logged: the second signal's handler
    then runs inside the first one's, as when Ctrl-C is pressed twice or `timeout` passes a signal on."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.sent and "finishing the files in flight" in record.getMessage():
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, at the next instruction of this (the main) thread


def test_a_second_signal_inside_the_first_ones_handler_counts_as_the_second(tmp_path, caplog):
    service = Daemon(stage_config(tmp_path))
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    again = _SignalAgain()
    logging.getLogger(_LOG).addHandler(again)
    caplog.set_level(logging.INFO, logger=_LOG)
    try:
        service._install_signals()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        logging.getLogger(_LOG).removeHandler(again)
        service.seen.close()
        service.filer.journal.close()
    said = [r.getMessage() for r in caplog.records if r.name == _LOG]
    assert again.sent
    assert sum("finishing the files in flight" in m for m in said) == 1, said
    assert sum(m.startswith("second SIGINT") for m in said) == 1, said
    assert service.stopping and service._stop_deadline == 0.0  # the second one: exit now
