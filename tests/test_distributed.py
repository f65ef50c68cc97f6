"""knockout.distributed against real Dask clusters: ``knockout cut --dask``, worker and scheduler loss."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import daemon_util as du
import numpy as np
import pytest
from conftest import synthetic_headshot
from knockout.daemon.executor import WorkLost
from PIL import Image

from knockout.process import Processed, process_bytes
from knockout.settings import Settings

distributed = pytest.importorskip("distributed")

import knockout.distributed  # noqa: E402
from knockout.distributed import DaskExecutor, run_batch  # noqa: E402

pytestmark = pytest.mark.slow

KNOCKOUT = [sys.executable, "-c", "import sys; from knockout.cli import main; sys.exit(main())"]


def _jpeg(seed: int, size: tuple[int, int] = (120, 90)) -> bytes:
    rgb, _ = synthetic_headshot(*size, seed=seed)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _shoot(folder: Path, n: int, *, size: tuple[int, int] = (120, 90)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"head {i:03d}.jpg"
        p.write_bytes(_jpeg(i, size))
        paths.append(p)
    return paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster():
    """A fresh two-worker cluster per test: a test that kills a worker leaves nothing behind for the next."""
    with distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1"
    ) as c:
        with distributed.Client(c.scheduler_address, set_as_default=False) as client:
            _two_workers(client)
            yield c, client


def _two_workers(client) -> None:
    """Wait until both workers answer."""
    deadline = time.monotonic() + 90
    while True:
        pids = client.run(os.getpid, on_error="ignore")
        if len(pids) == 2 and sum(client.nthreads().values()) == 2:
            return
        assert time.monotonic() < deadline, f"the cluster did not come back to 2 workers: {pids}"
        time.sleep(0.2)


def _kill_a_busy_worker(client) -> int:
    """SIGKILL a worker process that is running a task right now; its pid."""
    deadline = time.monotonic() + 20
    while True:
        pids = client.run(os.getpid)
        busy = [w for w, keys in client.processing().items() if keys and w in pids]
        if busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            return pids[busy[0]]
        assert time.monotonic() < deadline, "no task in flight when a worker was to be killed"
        time.sleep(0.05)


def _outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def test_cut_dask_survives_a_killed_worker_and_writes_each_output_once(cluster, tmp_path):
    c, client = cluster
    _two_workers(client)
    inputs = _shoot(tmp_path / "shoot", 10, size=(180, 135))
    (tmp_path / "shoot" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*KNOCKOUT, "cut", str(tmp_path / "shoot"), "-o", str(out), "--dask", c.scheduler_address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_outputs(out)) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "knockout cut made no outputs"
            time.sleep(0.05)
        assert len(_outputs(out)) < 10, "the batch finished before a worker could be killed"
        _kill_a_busy_worker(client)
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr  # broken.jpg
    assert "broken.jpg" in stderr and "10 cut out, 1 failed" in stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in inputs)  # once each, no temps
    for src in inputs[:2]:
        local = process_bytes(src.read_bytes(), settings=Settings())
        remote = np.asarray(Image.open(out / f"{src.stem}.png"))
        assert remote.shape == (180, 135, 4)
        np.testing.assert_array_equal(remote, np.asarray(Image.open(io.BytesIO(local.data))))


class _Scheduler:
    """A ``dask scheduler`` and one ``dask worker`` as processes, so the scheduler can be SIGKILLed."""

    def __init__(self, tmp: Path, port: int, *, worker_env: dict[str, str] | None = None) -> None:
        self.dask = dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or "dask"
        self.address = f"tcp://127.0.0.1:{port}"
        sf = tmp / f"scheduler-{port}.json"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", "--scheduler-file", sf],
            **quiet,
        )
        deadline = time.monotonic() + 60
        while not sf.exists() or not json.loads(sf.read_text() or "{}").get("address"):
            assert time.monotonic() < deadline and self.scheduler.poll() is None, "dask scheduler did not start"
            time.sleep(0.2)
        self.worker = subprocess.Popen(
            [dask, "worker", self.address, "--nthreads", "1", "--no-dashboard", "--no-nanny"],
            env={**os.environ, **(worker_env or {})},
            **quiet,
        )
        with distributed.Client(self.address, set_as_default=False, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)

    def kill_scheduler(self) -> None:
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait(timeout=30)

    def stop(self) -> None:
        for p in (self.worker, self.scheduler):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


def test_cut_dask_reads_no_more_files_than_are_in_flight(cluster, tmp_path, monkeypatch):
    c, _ = cluster
    inputs = _shoot(tmp_path / "in", 12)
    (tmp_path / "out").mkdir()
    jobs = [(p, tmp_path / "out" / f"{p.stem}.png") for p in inputs]
    reads: list[Path] = []
    read_bytes = Path.read_bytes

    def counting(self: Path) -> bytes:
        if self.parent == tmp_path / "in":
            reads.append(self)
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    yielded: list[Path] = []
    held = []
    for src, _dst, res, err in run_batch(jobs, Settings(), address=c.scheduler_address, max_in_flight=3):
        assert err is None and isinstance(res, Processed)
        held.append(len(reads) - len(yielded))  # files read and not yet handed back, this one included
        yielded.append(src)
    assert max(held) == 3  # the bound is reached and never passed: a huge batch is never all in memory
    assert sorted(yielded) == sorted(inputs) == sorted(reads)


def test_a_file_that_keeps_killing_workers_is_given_back_not_failed(tmp_path):
    import dask

    # allowed-failures 0: the first worker death marks the task as a killer (default: the fourth)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            processes=True, n_workers=1, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1"
        )
    try:
        with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
            ex = DaskExecutor(cluster.scheduler_address, 2, "wait", None)
            try:
                fut = ex.submit(_jpeg(0, (600, 450)), Settings())
                deadline = time.monotonic() + 60
                while not any(client.processing().values()):
                    assert time.monotonic() < deadline, "the task never started"
                    time.sleep(0.05)
                os.kill(next(iter(client.run(os.getpid).values())), signal.SIGKILL)
                with pytest.raises(WorkLost, match="killed several Dask workers"):
                    fut.result(timeout=60)
            finally:
                ex.shutdown(wait=False)
    finally:
        cluster.close()


def test_workers_that_cannot_run_knockout_get_no_work(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="knockout.distributed")
    monkeypatch.setattr(knockout.distributed, "_LOOK_EVERY", 0.5)
    fake = tmp_path / "fake" / "knockout"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("no knockout here")\n')
    sched = _Scheduler(tmp_path, _free_port(), worker_env={"PYTHONPATH": str(fake.parent)})
    ex = DaskExecutor(sched.address, 2, "wait", None)
    good = None
    try:
        assert "1 Dask worker(s) do not run knockout" in caplog.text and "no knockout here" in caplog.text
        # a task sent there would never finish; with no other worker the daemon gets WorkLost (retry later)
        with pytest.raises(WorkLost, match=r"no Dask worker at .* can run knockout"):
            ex.submit(_jpeg(0), Settings()).result(timeout=30)
        good = subprocess.Popen(
            [sched.dask, "worker", sched.address, "--nthreads", "1", "--no-dashboard", "--no-nanny"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        while True:  # once the new worker is checked, work goes to it and only to it
            try:
                res = ex.submit(_jpeg(1), Settings()).result(timeout=90)
                break
            except WorkLost:
                assert time.monotonic() < deadline, "the good worker was never used"
                time.sleep(0.5)
        assert isinstance(res, Processed) and (res.width, res.height) == (90, 120)
    finally:
        ex.shutdown(wait=False)
        if good is not None:
            good.kill()
            good.wait(timeout=30)
        sched.stop()


def test_cut_dask_without_a_scheduler_exits_2_naming_the_address(tmp_path):
    (src,) = _shoot(tmp_path, 1)
    address = f"tcp://127.0.0.1:{_free_port()}"
    r = subprocess.run(
        [*KNOCKOUT, "cut", str(src), "--dask", address], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 2
    assert f"cannot reach the Dask scheduler at {address}" in r.stderr and "dask scheduler" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


@pytest.mark.parametrize("command", ["cut", "watch"])
def test_dask_without_dask_installed_says_how_to_install_it(tmp_path, command):
    (src,) = _shoot(tmp_path / "inbox", 1)
    args = [str(src)] if command == "cut" else ["-c", str(du.write_config(tmp_path)), "--once"]
    code = (  # as if knockout[dask] were not installed: `import distributed` fails
        "import sys; sys.modules['distributed'] = None; from knockout.cli import main; "
        f"sys.exit(main([{command!r}, *{args!r}, '--dask', 'tcp://127.0.0.1:8786']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2, r.stderr
    assert "pip install 'knockout[dask]'" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in (tmp_path / "inbox").iterdir()] == [src.name]  # untouched, nothing written


# -- the daemon (knockout watch) on a Dask cluster -------------------------------------------


def _inbox_burst(tmp_path: Path, prefix: str, n: int) -> tuple[Path, Path, Path, Path]:
    """``n`` 180x135 JPEGs in ``tmp_path/inbox``; the inbox, outbox, processed and failed folders."""
    inbox, out, done, failed = (tmp_path / name for name in ("inbox", "outbox", "processed", "failed"))
    inbox.mkdir()
    blobs = [_jpeg(i, (180, 135)) for i in range(5)]
    for i in range(n):
        (inbox / f"{prefix}{i:03d}.jpg").write_bytes(blobs[i % 5])
    return inbox, out, done, failed


def _wait_for_outputs(d: du.DaemonProcess, out: Path, k: int) -> None:
    du.wait_for(lambda: len(du.visible(out)) >= k if out.exists() else False, 120, d, f"{k} outputs")


def test_watch_dask_worker_killed_mid_burst_every_input_once(cluster, tmp_path):
    c, client = cluster
    _two_workers(client)
    inbox, out, done, failed = _inbox_burst(tmp_path, "f", 20)
    (inbox / "bad.jpg").write_bytes(b"junk, not a jpeg")
    cfg = du.write_config(tmp_path, settle=0.1)
    with distributed.get_task_stream(client=client) as stream:
        d = du.DaemonProcess(cfg, "--dask", c.scheduler_address)  # in flight: 2 per worker thread
        try:
            _wait_for_outputs(d, out, 4)
            _kill_a_busy_worker(client)
            du.wait_for(lambda: len(du.visible(done)) == 20, 150, d, "20 inputs in processed/")
            du.wait_for(lambda: failed.exists() and len(du.visible(failed)) == 2, 30, d, "bad.jpg in failed/")
            d.signal(signal.SIGTERM)
            assert d.wait() == 0, d.text()
        finally:
            d.stop()
    assert sorted(p.name for p in du.visible(out)) == [f"f{i:03d}.png" for i in range(20)]  # each once
    for p in du.visible(out)[::5]:
        du.check_image(p, size=(135, 180))
    assert [p.name for p in du.visible(failed)] == ["bad.jpg", "bad.jpg.error.txt"]
    assert not du.visible(inbox) and not du.hidden_files(out)
    ran = [t for t in stream.data if str(t["key"]).startswith("knockout-process")]
    assert len(ran) >= 21, "the work did not run on the cluster"
    assert "lost the Dask scheduler" not in d.text()
    assert "4 tasks in flight at most" in d.text()


def test_watch_dask_scheduler_killed_falls_back_to_local_pool(tmp_path):
    sched = _Scheduler(tmp_path, _free_port())
    inbox, out, done, _ = _inbox_burst(tmp_path, "g", 10)
    cfg = du.write_config(tmp_path, settle=0.1, workers=1, executor={"dask": sched.address, "max_in_flight": 4})
    d = du.DaemonProcess(cfg)
    try:
        _wait_for_outputs(d, out, 3)
        assert len(du.visible(done)) < 10, "the burst finished before the scheduler could be killed"
        sched.kill_scheduler()
        du.wait_for(lambda: len(du.visible(done)) == 10, 150, d, "10 inputs in processed/")
        d.signal(signal.SIGTERM)
        assert d.wait() == 0, d.text()
    finally:
        d.stop()
        sched.stop()
    assert sorted(p.name for p in du.visible(out)) == [f"g{i:03d}.png" for i in range(10)]
    for p in du.visible(out)[::4]:
        du.check_image(p, size=(135, 180))
    assert not du.visible(inbox) and not du.hidden_files(out)
    assert "falling back to the local pool" in d.text()


def test_watch_dask_wait_mode_keeps_files_in_the_inbox_until_the_scheduler_is_back(tmp_path):
    port = _free_port()
    sched = _Scheduler(tmp_path, port)
    inbox, out, done, failed = _inbox_burst(tmp_path, "h", 8)
    executor = {"dask": sched.address, "max_in_flight": 2, "on_scheduler_loss": "wait"}
    cfg = du.write_config(tmp_path, settle=0.1, workers=1, executor=executor)
    d = du.DaemonProcess(cfg)
    try:
        _wait_for_outputs(d, out, 2)
        sched.stop()  # scheduler and worker SIGKILLed
        du.wait_for(lambda: "waiting for it" in d.text(), 30, d, "the loss to be noticed")
        time.sleep(1.0)
        away = len(du.visible(done))
        assert away < 8, "the burst finished before the scheduler could be killed"
        time.sleep(2.0)
        assert len(du.visible(done)) == away  # nothing runs while the scheduler is away ...
        assert not failed.exists() or not du.visible(failed)  # ... and nothing is failed for it
        sched = _Scheduler(tmp_path, port)  # back, at the same address
        du.wait_for(lambda: len(du.visible(done)) == 8, 150, d, "8 inputs in processed/")
        d.signal(signal.SIGTERM)
        assert d.wait() == 0, d.text()
    finally:
        d.stop()
        sched.stop()
    assert sorted(p.name for p in du.visible(out)) == [f"h{i:03d}.png" for i in range(8)]
    assert not du.visible(inbox) and not du.hidden_files(out)
    assert "reconnected to the Dask scheduler" in d.text() and "local pool" not in d.text()
