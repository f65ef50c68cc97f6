"""The daemon's executor: the local process pool behind the interface Dask plugs into."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_headshot
from knockout.daemon.config import parse_config
from knockout.daemon.executor import Executor, ExecutorConfig, LocalExecutor, make_executor, parse_executor
from PIL import Image

from knockout._cpus import usable_cpus
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


CONFIG_YAML = (Path(__file__).resolve().parents[1] / "config.yaml").read_text(encoding="utf-8")


def test_config_yaml_runs_locally_by_default_and_its_dask_example_parses(tmp_path):
    assert parse_config(CONFIG_YAML, base=tmp_path, name="config.yaml").executor == ExecutorConfig(usable_cpus())
    # the commented example in config.yaml, uncommented in place of `executor: local`
    (example,) = [line[1:].strip() for line in CONFIG_YAML.splitlines() if line.startswith("#   executor: {dask:")]
    text = CONFIG_YAML.replace("\nexecutor: local\n", f"\n{example}\n")
    assert text != CONFIG_YAML
    ex = parse_config(text, base=tmp_path, name="config.yaml").executor
    assert (ex.dask, ex.max_in_flight, ex.on_scheduler_loss) == ("tcp://scheduler:8786", 64, "local")
    # the short form: defaults for the rest
    text = CONFIG_YAML.replace("\nexecutor: local\n", '\nexecutor: {dask: "tcp://host:8786"}\n')
    ex = parse_config(text, base=tmp_path, name="config.yaml").executor
    assert (ex.dask, ex.max_in_flight, ex.on_scheduler_loss) == ("tcp://host:8786", None, "local")
    # --dask ADDRESS: replaces `local`, or only the address of a dask executor (its bound stays)
    assert parse_config(CONFIG_YAML, base=tmp_path, name="c", dask="tcp://a:1").executor.dask == "tcp://a:1"
    text = CONFIG_YAML.replace(
        "\nexecutor: local\n", "\nexecutor: {dask: tcp://b:2, max_in_flight: 7, on_scheduler_loss: wait}\n"
    )
    ex = parse_config(text, base=tmp_path, name="c", dask="tcp://a:1").executor
    assert (ex.dask, ex.max_in_flight, ex.on_scheduler_loss) == ("tcp://a:1", 7, "wait")


def test_dask_is_an_optional_extra():
    from importlib.metadata import metadata

    meta = metadata("knockout")
    assert "dask" in meta.get_all("Provides-Extra")
    needs = [r for r in meta.get_all("Requires-Dist") if r.startswith("dask")]
    assert needs and all('extra == "dask"' in r or 'extra == "test"' in r for r in needs), needs
    assert any(r.startswith("dask[distributed]") and 'extra == "dask"' in r for r in needs), needs


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
