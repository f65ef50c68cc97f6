"""The running stage with a real local pool: outcomes for results and for errors, room as promised."""

from __future__ import annotations

import io
import threading
import time

from knockout.daemon.executor import ExecutorConfig
from knockout.daemon.running import Runner
from PIL import Image
from stage_util import stage_config

from knockout.imageio import ImageError


def test_outcomes_carry_results_and_errors(tmp_path):
    from knockout.daemon.claiming import Claimer
    from stage_util import claimed

    cfg = stage_config(tmp_path)
    claimer = Claimer("me")
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (90, 90, 90)).save(buf, "PNG")
    good, bad = claimed(cfg, claimer, "good.png", buf.getvalue()), claimed(cfg, claimer, "bad.jpg", b"nope")
    wake = threading.Event()
    runner = Runner(ExecutorConfig(workers=1), wake)
    try:
        assert runner.room() == 2
        runner.squeeze(60)  # a worker ran out of memory: one file at a time for a while
        assert runner.room() == 1
        runner.narrow_until = 0.0
        runner.submit(good, buf.getvalue())
        runner.submit(bad, b"nope")
        assert runner.room() <= 0 or runner.room() == 2 - sum(1 for f in runner.flights if not f.future.done())
        outcomes = []
        end = time.monotonic() + 120
        while len(outcomes) < 2 and time.monotonic() < end:
            wake.wait(1.0)
            wake.clear()
            outcomes += runner.finished()
        by_name = {o.work.rel.name: o for o in outcomes}
        assert by_name["good.png"].result is not None and by_name["good.png"].result.suffix == ".png"
        assert isinstance(by_name["bad.jpg"].error, ImageError)
        assert len(runner) == 0 and runner.room() == 2
    finally:
        runner.shutdown()
