"""knockout.process and knockout.cutout: bytes in, bytes out, on small synthetic headshots."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from _images import srgb_profile, to_bytes
from conftest import synthetic_headshot
from PIL import Image

from knockout.cutout import cut_out
from knockout.imageio import ImageError
from knockout.process import Processed, process_bytes, process_file
from knockout.settings import Settings


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    img, _ = synthetic_headshot(96, 72)
    return to_bytes(Image.fromarray(img), "PNG", icc_profile=srgb_profile())


def test_process_bytes_makes_an_rgba_cutout(png_bytes):
    res = process_bytes(png_bytes, settings=Settings())
    assert isinstance(res, Processed)
    assert (res.width, res.height, res.suffix, res.method) == (72, 96, ".png", Settings().method)
    im = Image.open(io.BytesIO(res.data))
    assert im.mode == "RGBA" and im.size == (72, 96)
    a = np.asarray(im)[..., 3]
    assert a[2, 2] == 0 and a[-2, 36] == 255 and a[40, 36] == 255
    assert im.info.get("icc_profile") == srgb_profile()
    assert res.milliseconds > 0


def test_processed_and_settings_pickle(png_bytes):
    s = Settings(format="webp")
    res = process_bytes(png_bytes, settings=s)
    assert pickle.loads(pickle.dumps(res)) == res
    assert pickle.loads(pickle.dumps(s)) == s


def test_existing_alpha_is_combined(png_bytes):
    rgba = np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGBA")).copy()
    rgba[:, :36, 3] = 0  # the left half was already transparent
    res = process_bytes(to_bytes(Image.fromarray(rgba, "RGBA"), "PNG"), settings=Settings())
    a = np.asarray(Image.open(io.BytesIO(res.data)))[..., 3]
    assert a[:, :30].max() == 0  # stays transparent, subject or not
    assert a[-2, 50] == 255


def test_process_file(tmp_path, png_bytes):
    p = tmp_path / "x.png"
    p.write_bytes(png_bytes)
    assert process_file(p, settings=Settings(output="mask")).data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ImageError):
        process_file(tmp_path / "x.png", settings=Settings(max_pixels=10))


def test_cut_out_outputs_and_full_frame_alpha(headshot):
    img, truth = headshot
    res = cut_out(img, settings=Settings(crop=True, margin=2))
    assert res.alpha.shape == truth.shape
    assert res.pixels.shape[2] == 4 and res.pixels.shape[0] < img.shape[0]
    assert res.segmentation.mask.shape == truth.shape


def test_cut_out_checks_source_alpha(headshot):
    img, _ = headshot
    with pytest.raises(ValueError, match="source_alpha"):
        cut_out(img, settings=Settings(), source_alpha=np.zeros((3, 3), np.uint8))


def test_process_bytes_gives_the_same_output_as_cut_out(png_bytes):
    for s in (Settings(), Settings(method="kmeans", crop=True), Settings(output="mask")):
        rgb = np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB"))
        expected = cut_out(rgb, settings=s).pixels
        got = np.asarray(Image.open(io.BytesIO(process_bytes(png_bytes, settings=s).data)))
        assert np.array_equal(got, expected)


def test_the_output_is_built_from_the_image_itself_once_the_mask_is_released(png_bytes, monkeypatch):
    """At 12 MP the image is 36 MB and its full-size mask 12 MB: the mask is gone before compose
    allocates the output (48 MB), and compose gets the decoded image itself with the matte's colour
    edits (no full-size copy of the image is made for the colours)."""
    import gc
    import weakref

    from knockout import process

    images, masks, seen = [], [], []
    decode, segment, compose = process.decode, process.segment, process.compose

    def decode_and_watch(*args, **kwargs):
        pic = decode(*args, **kwargs)
        images.append(weakref.ref(pic.rgb))
        return pic

    def segment_and_watch(*args, **kwargs):
        seg = segment(*args, **kwargs)
        masks.append(weakref.ref(seg.mask))
        return seg

    def compose_and_check(colors, *args, **kwargs):
        gc.collect()
        seen.append((masks[0]() is None, colors is images[0](), kwargs["edits"] is not None))
        return compose(colors, *args, **kwargs)

    monkeypatch.setattr(process, "decode", decode_and_watch)
    monkeypatch.setattr(process, "segment", segment_and_watch)
    monkeypatch.setattr(process, "compose", compose_and_check)
    process_bytes(png_bytes, settings=Settings())
    assert seen == [(True, True, True)]


def test_the_matte_runs_on_one_blas_thread(png_bytes, monkeypatch):
    """OpenBLAS's threads only spin on a headshot's vectors (2.5x the CPU time at 600x800)."""
    from threadpoolctl import threadpool_info

    from knockout import process

    seen = []
    matte = process._matted

    def matte_and_look(*args, **kwargs):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return matte(*args, **kwargs)

    monkeypatch.setattr(process, "_matted", matte_and_look)
    process_bytes(png_bytes, settings=Settings())
    assert seen and set(seen) == {1}
