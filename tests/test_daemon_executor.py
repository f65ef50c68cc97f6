"""The daemon's executor: the local process pool behind the interface Dask plugs into."""

from __future__ import annotations

import io
import os
import signal
import time

import numpy as np
import pytest
from conftest import synthetic_headshot
from knockout.daemon.executor import Executor, LocalExecutor, make_executor, parse_executor
from PIL import Image

from knockout.imageio import ImageError
from knockout.process import Processed
from knockout.settings import Settings, SettingsError


def _jpeg(seed: int = 0, size: tuple[int, int] = (120, 90)) -> bytes:
    rgb, _ = synthetic_headshot(*size, seed=seed)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_parse_executor_forms():
    assert parse_executor("auto", "local", where="c.yaml").workers >= 1
    cfg = parse_executor(3, {"dask": "tcp://h:8786", "max_in_flight": 9, "on_scheduler_loss": "wait"}, where="c.yaml")
    assert (cfg.workers, cfg.dask, cfg.max_in_flight, cfg.on_scheduler_loss) == (3, "tcp://h:8786", 9, "wait")


@pytest.mark.parametrize(
    ("workers", "executor", "needle"),
    [
        (0, "local", "workers: 0"),
        ("many", "local", "workers: 'many'"),
        (1, "threads", "executor: 'threads'"),
        (1, {"dask": "tcp://h:1", "bogus": 1}, "unknown key 'bogus'"),
        (1, {"dask": 5}, "executor.dask"),
        (1, {"dask": "tcp://h:1", "on_scheduler_loss": "panic"}, "on_scheduler_loss: 'panic'"),
        (1, {"dask": "tcp://h:1", "max_in_flight": 0}, "max_in_flight: 0"),
    ],
)
def test_parse_executor_errors_name_file_and_key(workers, executor, needle):
    with pytest.raises(SettingsError) as err:
        parse_executor(workers, executor, where="studio.yaml")
    assert "studio.yaml" in str(err.value) and needle in str(err.value)


def test_local_executor_processes_and_reports_bad_input():
    ex = make_executor(parse_executor(1, "local", where="x"))
    assert isinstance(ex, Executor) and isinstance(ex, LocalExecutor)
    try:
        good = ex.submit(_jpeg(), Settings())
        bad = ex.submit(b"not an image at all", Settings())
        res = good.result(timeout=120)
        assert isinstance(res, Processed) and res.suffix == ".png" and (res.width, res.height) == (90, 120)
        out = np.asarray(Image.open(io.BytesIO(res.data)))
        assert out.shape == (120, 90, 4)
        with pytest.raises(ImageError, match="not an image"):
            bad.result(timeout=60)
    finally:
        ex.shutdown()


def test_local_executor_recovers_from_a_killed_worker():
    ex = LocalExecutor(1)
    try:
        assert ex.submit(_jpeg(), Settings()).result(timeout=120)  # the pool is up
        big = _jpeg(1, (900, 700))
        futs = [ex.submit(big, Settings().replace(clusters=16)) for _ in range(2)]
        time.sleep(0.3)
        for pid in list(ex._pool._processes):  # kill the worker while it works
            os.kill(pid, signal.SIGKILL)
        for f in futs:
            assert isinstance(f.result(timeout=180), Processed)
    finally:
        ex.shutdown()
