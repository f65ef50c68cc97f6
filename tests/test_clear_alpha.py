"""Nothing of the old photo under alpha 0, in every RGBA output: CLI (PNG, WebP), daemon, Dask.

Drop the alpha channel of a cut-out and the backdrop must not come back: each output path is
run as a user runs it, and every pixel with alpha 0 is checked to be either (0, 0, 0) or (near
the edge) the subject's edge colour, never the backdrop's.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import daemon_util as du
import numpy as np
import pytest
from conftest import synthetic_headshot
from PIL import Image
from scipy import ndimage as ndi

from knockout.process import process_bytes
from knockout.settings import Settings

GREEN = (40, 200, 60)  # a backdrop no subject pixel is near
KNOCKOUT = [sys.executable, "-m", "knockout.cli"]


def _jpeg(seed: int = 0, size: tuple[int, int] = (160, 120)) -> bytes:
    rgb, _ = synthetic_headshot(*size, backdrop=GREEN, seed=seed)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _check_clear(path_or_bytes) -> None:
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        assert im.mode == "RGBA", im.mode
        px = np.asarray(im)
    clear = px[..., 3] == 0
    assert clear.sum() > 1000, "the test image should have backdrop"
    rgb = px[..., :3][clear].astype(np.int32)
    assert (np.abs(rgb - GREEN).sum(axis=1) > 100).all(), "backdrop colour under alpha 0"
    far = ndi.distance_transform_edt(clear) > 10  # well beyond the edge: (0, 0, 0)
    assert far.sum() > 500 and not px[..., :3][far].any(), "alpha 0 pixels beyond the edge should be (0, 0, 0)"


@pytest.mark.parametrize("fmt", ["png", "webp"])
@pytest.mark.parametrize("extra", [[], ["--no-decontaminate"], ["--preset", "classic-threshold"]])
def test_cli_outputs_hold_nothing_of_the_backdrop_under_alpha_zero(tmp_path, fmt, extra):
    src = tmp_path / "head.jpg"
    src.write_bytes(_jpeg())
    r = subprocess.run(
        [*KNOCKOUT, "cut", str(src), "-o", str(tmp_path / "out"), "--format", fmt, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    (out,) = (tmp_path / "out").iterdir()
    assert out.suffix == f".{fmt}"
    _check_clear(out)


def test_what_a_transparent_input_hid_stays_hidden():
    rgb, _ = synthetic_headshot(160, 120, backdrop=GREEN)
    a = np.full(rgb.shape[:2], 255, np.uint8)
    a[60:80, :] = 0  # a transparent stripe across the face in the input
    buf = io.BytesIO()
    Image.fromarray(np.dstack([rgb, a])).save(buf, "PNG")
    out = process_bytes(buf.getvalue(), settings=Settings(crop=False))
    with Image.open(io.BytesIO(out.data)) as im:
        px = np.asarray(im)
    assert (px[60:80, :, 3] == 0).all() and not px[60:80, :, :3].any()
    _check_clear(out.data)


def test_daemon_outputs_hold_nothing_of_the_backdrop_under_alpha_zero(tmp_path):
    for fmt in ("png", "webp"):
        (tmp_path / f"in-{fmt}").mkdir()
        (tmp_path / f"in-{fmt}" / "a.jpg").write_bytes(_jpeg(1))
        (tmp_path / f"in-{fmt}" / "b.jpg").write_bytes(_jpeg(2))
    jobs = [
        {"name": "png", "inbox": "in-png", "outbox": "out-png"},
        {"name": "webp", "inbox": "in-webp", "outbox": "out-webp", "settings": {"format": "webp"}},
    ]
    cfg = du.write_config(tmp_path, jobs=jobs)
    r = du.knockout("watch", "-c", str(cfg), "--once", timeout=200)
    assert r.returncode == 0, r.stdout + r.stderr
    outs = du.visible(tmp_path / "out-png") + du.visible(tmp_path / "out-webp")
    assert sorted(p.suffix for p in outs) == [".png", ".png", ".webp", ".webp"], outs
    for p in outs:
        _check_clear(p)


def test_dask_outputs_hold_nothing_of_the_backdrop_under_alpha_zero(tmp_path):
    distributed = pytest.importorskip("distributed")
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for i in range(3):
        (shoot / f"head {i}.jpg").write_bytes(_jpeg(i))
    with distributed.LocalCluster(
        processes=True, n_workers=1, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1"
    ) as cluster:
        r = subprocess.run(
            [*KNOCKOUT, "cut", str(shoot), "-o", str(tmp_path / "out"), "--dask", cluster.scheduler_address],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert r.returncode == 0, r.stderr
    outs = sorted(Path(tmp_path / "out").iterdir())
    assert len(outs) == 3
    for p in outs:
        _check_clear(p)
