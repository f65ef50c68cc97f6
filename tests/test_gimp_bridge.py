"""knockout.gimp_bridge: the core's side of the GIMP plug-in, on tiny synthetic layers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import synthetic_headshot

from knockout.cutout import cut_out
from knockout.gimp_bridge import knock_out
from knockout.settings import Settings


def _rgba(rgb: np.ndarray, alpha: int = 255) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], alpha, np.uint8)])


def test_mask_is_the_core_alpha(headshot) -> None:
    rgb, _ = headshot
    h, w = rgb.shape[:2]
    res = knock_out(_rgba(rgb).tobytes(), width=w, height=h, sample="u8", output="mask", settings=Settings())
    want = cut_out(rgb, settings=Settings())
    np.testing.assert_array_equal(np.frombuffer(res.data, np.uint8).reshape(h, w), want.alpha)
    assert res.tolerance == pytest.approx(want.segmentation.tolerance)


def test_alpha_output_is_the_cutout_and_multiplies_the_layer_alpha(headshot) -> None:
    rgb, _ = headshot
    h, w = rgb.shape[:2]
    want = cut_out(rgb, settings=Settings(), source_alpha=np.full((h, w), 128, np.uint8)).pixels
    res = knock_out(_rgba(rgb, 128).tobytes(), width=w, height=h, sample="u8", output="alpha", settings=Settings())
    np.testing.assert_array_equal(np.frombuffer(res.data, np.uint8).reshape(h, w, 4), want)


def test_high_bit_depth_keeps_precision_away_from_the_edge(headshot) -> None:
    rgb, _ = headshot
    h, w = rgb.shape[:2]
    rgba16 = _rgba(rgb).astype(np.uint32) * 257
    rgba16[..., :3] = np.minimum(rgba16[..., :3] + 3, 65535)  # low bits that an 8-bit round trip would lose
    rgba16 = rgba16.astype(np.uint16)
    out = knock_out(rgba16.tobytes(), width=w, height=h, sample="u16", output="alpha", settings=Settings())
    got = np.frombuffer(out.data, np.uint16).reshape(h, w, 4)
    want = cut_out(rgb, settings=Settings())
    np.testing.assert_array_equal(got[..., 3], want.alpha.astype(np.uint16) * 257)
    untouched = (want.pixels[..., :3] == rgb).all(axis=-1) & (want.alpha > 0)  # (alpha 0: nothing kept)
    assert untouched.mean() > 0.3
    np.testing.assert_array_equal(got[..., :3][untouched], rgba16[..., :3][untouched])
    f = knock_out((_rgba(rgb) / 255).astype(np.float32), width=w, height=h, sample="float", output="mask",
                  settings=Settings())  # fmt: skip
    np.testing.assert_allclose(np.frombuffer(f.data, np.float32).reshape(h, w), want.alpha / 255, atol=1e-6)


def test_bad_inputs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="expected 64"):
        knock_out(bytes(10), width=4, height=4, sample="u8", output="mask", settings=Settings())
    with pytest.raises(ValueError, match="sample 'u4'"):
        knock_out(bytes(64), width=4, height=4, sample="u4", output="mask", settings=Settings())
    with pytest.raises(ValueError, match="output 'paint'"):
        knock_out(bytes(64), width=4, height=4, sample="u8", output="paint", settings=Settings())


def test_subprocess_entry_point(tmp_path) -> None:
    rgb, _ = synthetic_headshot(60, 50)
    (tmp_path / "in.raw").write_bytes(_rgba(rgb).tobytes())
    req = {"width": 50, "height": 60, "sample": "u8", "output": "mask", "settings": {"feather": 0},
           "input": str(tmp_path / "in.raw"), "result": str(tmp_path / "out.raw")}  # fmt: skip
    (tmp_path / "req.json").write_text(json.dumps(req))
    cmd = [sys.executable, "-m", "knockout.gimp_bridge", str(tmp_path / "req.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bytes"] == 60 * 50
    want = cut_out(rgb, settings=Settings(feather=0)).alpha
    np.testing.assert_array_equal(np.frombuffer((tmp_path / "out.raw").read_bytes(), np.uint8).reshape(60, 50), want)
    req["settings"] = {"feather": 99}
    (tmp_path / "req.json").write_text(json.dumps(req))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "knockout: error: GIMP plug-in settings: feather: 99 is out of range; use a number from 0.0 to 20.0"
    )
