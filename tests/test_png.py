"""knockout._png: the fast PNG writer decodes to exactly its input, is a valid PNG, and is used at levels 1-3 only."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from _images import srgb_profile
from PIL import Image

from knockout import _png
from knockout.imageio import encode
from knockout.settings import Settings

pytestmark = pytest.mark.skipif(not _png.available(), reason="python-isal is not installed")

MODES = {"L": (), "RGB": (3,), "RGBA": (4,)}


def _pixels(h: int, w: int, mode: str, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, *MODES[mode]), np.uint8)


def _decoded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        out.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    return out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (3, 5), (40, 33)])
@pytest.mark.parametrize("level", _png.LEVELS)
def test_decodes_to_the_same_pixels(mode, shape, level):
    a = _pixels(*shape, mode)
    im = _decoded(_png.encode_png(a, level=level))
    assert im.format == "PNG" and im.mode == mode and im.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(im), a)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_icc_profile_is_carried(mode):
    icc = srgb_profile()
    im = _decoded(_png.encode_png(_pixels(6, 7, mode), icc_profile=icc))
    assert im.info["icc_profile"] == icc


def test_no_icc_profile_in_grey():
    im = _decoded(_png.encode_png(_pixels(6, 7, "L"), icc_profile=srgb_profile()))
    assert "icc_profile" not in im.info


@pytest.mark.parametrize("strips", [2, 3, 7, 500])
def test_strips_give_the_same_pixels_as_one_strip(strips):
    a = _pixels(61, 47, "RGBA", seed=3)
    a[10:30, :, 3] = 0  # some long runs, as a cut-out has
    one = _png.encode_png(a, strips=1)
    many = _png.encode_png(a, strips=strips)
    assert sum(kind == b"IDAT" for kind, _ in _chunks(many)) == min(strips, 61)
    assert np.array_equal(np.asarray(_decoded(many)), np.asarray(_decoded(one)))
    assert np.array_equal(np.asarray(_decoded(many)), a)


@pytest.mark.parametrize("strips", [1, 4])
def test_is_a_valid_png(strips):
    a = _pixels(23, 17, "RGBA", seed=5)
    icc = srgb_profile()
    data = _png.encode_png(a, icc_profile=icc, strips=strips)
    Image.open(io.BytesIO(data)).verify()
    chunks = _chunks(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[:2] == [b"IHDR", b"iCCP"] and kinds[-1] == b"IEND"
    assert set(kinds[2:-1]) == {b"IDAT"}
    assert chunks[0][1] == struct.pack(">IIBBBBB", 17, 23, 8, 6, 0, 0, 0)
    # zlib.decompress checks the stream's header and Adler-32; every row is filter type 2 (Up)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(23, 1 + 17 * 4)
    assert (rows[:, 0] == 2).all()
    assert np.array_equal(np.cumsum(rows[:, 1:], axis=0, dtype=np.uint8), a.reshape(23, -1))


def test_large_random_image_through_encode():
    a = _pixels(1500, 1400, "RGBA", seed=7)  # 8.4 MB: big enough to be cut into strips on 2+ CPUs
    a[:300, :, 3] = 0
    out = encode(a, settings=Settings())
    assert np.array_equal(np.asarray(_decoded(out)), a)


def test_levels_1_to_3_use_the_fast_writer_0_and_9_use_pillow(monkeypatch):
    calls = []
    real = _png.encode_png

    def spy(pixels, **kw):
        calls.append(kw["level"])
        return real(pixels, **kw)

    monkeypatch.setattr(_png, "encode_png", spy)
    a = _pixels(30, 20, "RGBA")
    for level in range(10):
        out = encode(a, settings=Settings(png_compression=level))
        assert np.array_equal(np.asarray(_decoded(out)), a)
    assert calls == [1, 2, 3]
    # level 0 is stored (Pillow): bigger than the raw pixels
    assert len(encode(a, settings=Settings(png_compression=0))) > a.nbytes


def test_without_isal_pillow_writes_the_png(monkeypatch):
    monkeypatch.setattr(_png, "isal_zlib", None)
    assert not _png.available()
    a = _pixels(8, 9, "RGB")
    out = encode(a, settings=Settings(png_compression=1))
    assert np.array_equal(np.asarray(_decoded(out)), a)
    with pytest.raises(RuntimeError, match="isal"):
        _png.encode_png(a)


def test_bad_input():
    with pytest.raises(ValueError, match="level"):
        _png.encode_png(_pixels(2, 2, "RGB"), level=6)
    with pytest.raises(ValueError, match="uint8"):
        _png.encode_png(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        _png.encode_png(np.zeros((0, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        _png.encode_png(np.zeros(5, np.uint8))


@pytest.mark.parametrize("lengths", [(0, 5), (5, 0), (1, 1), (3000, 70_000), (65_521, 65_521), (200_000, 131_042)])
def test_adler32_of_strips_combines_to_the_whole(lengths):
    rng = np.random.default_rng(sum(lengths))
    a, b = (rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths)
    assert _png._adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


def test_big_image_is_filtered_strip_by_strip(monkeypatch):
    a = _pixels(1500, 1400, "RGBA", seed=3)  # 8.4 MB: two strips of about 4 MB
    sizes = []
    filter_up = _png._filter_up
    monkeypatch.setattr(
        _png, "_filter_up", lambda rows, above=None: sizes.append(rows.nbytes) or filter_up(rows, above)
    )
    data = _png.encode_png(a)
    assert len(sizes) == 2 and max(sizes) < a.nbytes // 2 + a.shape[1] * 4
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), a)


@pytest.mark.parametrize("strips", [1, 3, 7])
def test_rows_built_strip_by_strip_give_the_same_file(strips):
    from knockout.compose import Edits, compose

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (37, 23), dtype=np.uint8)
    alpha[:5] = 0
    ys, xs = np.nonzero(rng.random(alpha.shape) < 0.3)
    edits = Edits(ys, xs, rng.integers(0, 256, (len(ys), 3), dtype=np.uint8))
    whole = compose(image, alpha, settings=Settings(), edits=edits)
    lazy = compose(image, alpha, settings=Settings(), edits=edits, lazy=True)
    assert _png.encode_png(lazy, strips=strips) == _png.encode_png(whole, strips=strips)
    assert encode(lazy, settings=Settings()) == encode(whole, settings=Settings())
    webp = Settings(format="webp")
    assert encode(lazy, settings=webp) == encode(whole, settings=webp)  # built at once for the other encoders
