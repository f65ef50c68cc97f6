"""knockout.imageio: every mode and format in, every output format out, bad bytes rejected."""

from __future__ import annotations

import io

import numpy as np
import pytest
from _images import png16, png_header_only, srgb_profile, to_bytes
from conftest import synthetic_headshot
from PIL import Image

from knockout.imageio import ImageError, decode, encode, output_suffix
from knockout.settings import Settings


def _marked(h: int = 30, w: int = 20) -> np.ndarray:
    a = np.full((h, w, 3), 200, np.uint8)
    a[:4, :4] = (255, 0, 0)  # red marker in the stored top-left corner
    return a


# -- orientation and colour profiles --------------------------------------------------------
def test_exif_orientation_is_applied():
    im = Image.fromarray(_marked())
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: turn 90 degrees clockwise to display
    pic = decode(to_bytes(im, "PNG", exif=exif.tobytes()))
    assert pic.rgb.shape == (20, 30, 3)
    # after a clockwise turn the stored top-left corner is at the top right
    assert tuple(pic.rgb[1, -2]) == (255, 0, 0)
    assert tuple(pic.rgb[1, 1]) == (200, 200, 200)


def test_exif_orientation_jpeg():
    exif = Image.Exif()
    exif[0x0112] = 8
    pic = decode(to_bytes(Image.fromarray(_marked()), "JPEG", exif=exif.tobytes(), quality=95))
    assert pic.rgb.shape == (20, 30, 3)


def test_icc_profile_is_kept():
    icc = srgb_profile()
    pic = decode(to_bytes(Image.fromarray(_marked()), "PNG", icc_profile=icc))
    assert pic.icc_profile == icc


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_icc_profile_is_written(fmt):
    icc = srgb_profile()
    out = encode(np.zeros((5, 6, 4), np.uint8), settings=Settings(format=fmt), icc_profile=icc)
    assert Image.open(io.BytesIO(out)).info.get("icc_profile") == icc


def test_icc_profile_on_solid_jpeg_not_on_mask():
    icc = srgb_profile()
    jpg = encode(np.zeros((5, 6, 3), np.uint8), settings=Settings(output="solid", format="jpeg"), icc_profile=icc)
    assert Image.open(io.BytesIO(jpg)).info.get("icc_profile") == icc
    mask = encode(np.zeros((5, 6), np.uint8), settings=Settings(output="mask"), icc_profile=icc)
    assert Image.open(io.BytesIO(mask)).info.get("icc_profile") is None


def test_grey_profile_is_not_carried_to_rgb_output():
    grey_icc = Image.open(io.BytesIO(to_bytes(Image.new("L", (4, 4)), "PNG"))).info.get("icc_profile")
    assert grey_icc is None  # Pillow adds none; build a grey profile by editing an RGB one's header
    icc = bytearray(srgb_profile())
    icc[16:20] = b"GRAY"
    pic = decode(to_bytes(Image.new("L", (4, 4), 9), "PNG", icc_profile=bytes(icc)))
    assert pic.icc_profile is None


# -- modes ----------------------------------------------------------------------------------
def test_mode_L():
    pic = decode(to_bytes(Image.new("L", (7, 5), 77), "PNG"))
    assert pic.rgb.shape == (5, 7, 3) and pic.rgb.dtype == np.uint8
    assert (pic.rgb == 77).all() and pic.alpha is None


def test_mode_LA_keeps_alpha():
    a = np.zeros((5, 7, 2), np.uint8)
    a[..., 0] = 90
    a[:, :3, 1] = 255
    pic = decode(to_bytes(Image.fromarray(a, "LA"), "PNG"))
    assert (pic.rgb == 90).all()
    assert (pic.alpha[:, :3] == 255).all() and (pic.alpha[:, 3:] == 0).all()


def test_mode_P_without_transparency():
    im = Image.new("P", (6, 4))
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    im.putpixel((0, 0), 1)
    pic = decode(to_bytes(im, "PNG"))
    assert pic.alpha is None
    assert tuple(pic.rgb[0, 0]) == (200, 100, 50) and tuple(pic.rgb[3, 5]) == (10, 20, 30)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_mode_P_with_transparency(fmt):
    im = Image.new("P", (6, 4))
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    im.putpixel((0, 0), 1)
    pic = decode(to_bytes(im, fmt, transparency=0))
    assert pic.alpha is not None
    assert pic.alpha[0, 0] == 255 and pic.alpha[3, 5] == 0
    assert tuple(pic.rgb[0, 0]) == (200, 100, 50)


def test_mode_RGBA_keeps_alpha():
    a = np.zeros((4, 5, 4), np.uint8)
    a[..., :3] = (1, 2, 3)
    a[..., 3] = 128
    pic = decode(to_bytes(Image.fromarray(a, "RGBA"), "PNG"))
    assert tuple(pic.rgb[0, 0]) == (1, 2, 3) and (pic.alpha == 128).all()


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_mode_CMYK(fmt):
    im = Image.new("CMYK", (8, 6), (0, 0, 0, 0))  # no ink: white
    im.paste((0, 255, 255, 0), (0, 0, 4, 6))  # magenta + yellow: red
    pic = decode(to_bytes(im, fmt))
    assert pic.rgb.shape == (6, 8, 3)
    assert (pic.rgb[:, 6:] >= 245).all()
    r, g, b = pic.rgb[3, 1].astype(int)
    assert r >= 230 and g <= 30 and b <= 30


def test_16bit_grey_png():
    pic = decode(png16(np.full((3, 4), 0xABCD, np.uint16)))
    assert pic.rgb.dtype == np.uint8 and (pic.rgb == round(0xABCD * 255 / 65535)).all()


def test_16bit_grey_tiff():
    im = Image.fromarray(np.full((3, 4), 65535, np.uint16))
    assert im.mode == "I;16"
    pic = decode(to_bytes(im, "TIFF"))
    assert (pic.rgb == 255).all()


def test_16bit_rgb_png():
    a = np.zeros((3, 4, 3), np.uint16)
    a[...] = (0x1234, 0xFF00, 0x80FF)
    pic = decode(png16(a))
    assert pic.rgb.dtype == np.uint8
    assert np.abs(pic.rgb[0, 0].astype(int) - [0x12, 0xFF, 0x80]).max() <= 1


def test_16bit_rgba_png_keeps_alpha():
    a = np.zeros((3, 4, 4), np.uint16)
    a[..., 3] = 0x8000
    pic = decode(png16(a))
    assert pic.alpha is not None and (np.abs(pic.alpha.astype(int) - 128) <= 1).all()


# -- formats --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "GIF"])
def test_lossless_formats_round_trip(fmt):
    a = np.zeros((6, 8, 3), np.uint8)
    a[:, :4] = (250, 250, 250)
    kw = {"lossless": True} if fmt == "WEBP" else {}
    pic = decode(to_bytes(Image.fromarray(a), fmt, **kw))
    assert np.array_equal(pic.rgb, a)


def test_jpeg():
    a = np.full((16, 16, 3), (100, 150, 200), np.uint8)
    pic = decode(to_bytes(Image.fromarray(a), "JPEG", quality=95))
    assert np.abs(pic.rgb.astype(int) - a).max() <= 3


def test_heic_through_the_heif_extra():
    pillow_heif = pytest.importorskip("pillow_heif", reason="the optional 'heif' extra (pillow-heif) is not installed")
    a = np.full((64, 64, 3), (40, 160, 90), np.uint8)
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(a)).save(buf, quality=95)
    data = buf.getvalue()
    assert data[4:12] in (b"ftypheic", b"ftypmif1", b"ftypheix")
    pic = decode(data)
    assert pic.rgb.shape == (64, 64, 3)
    assert np.abs(pic.rgb.astype(int) - a).mean() < 8


# -- bad input --------------------------------------------------------------------------------
def _jpeg() -> bytes:
    return to_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"just some text, not an image\n", "not an image"),
        (_jpeg()[:300], "truncated or corrupt"),
        (_jpeg()[: len(_jpeg()) // 2], "truncated or corrupt"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "truncated or corrupt"),
    ],
    ids=["empty", "non-image", "truncated-header", "truncated-data", "corrupt-png"],
)
def test_bad_bytes_raise_image_error_with_one_line(data, reason):
    with pytest.raises(ImageError) as info:
        decode(data)
    msg = str(info.value)
    assert reason in msg and "\n" not in msg


def test_max_pixels_is_the_limit():
    data = to_bytes(Image.new("RGB", (20, 20)), "PNG")
    with pytest.raises(ImageError, match=r"too many pixels.*max_pixels"):
        decode(data, settings=Settings(max_pixels=399))
    assert decode(data, settings=Settings(max_pixels=400)).rgb.shape == (20, 20, 3)


def test_decompression_bomb_guard_stays_on():
    bomb = png_header_only(50_000, 50_000)  # 2.5 gigapixels claimed in a few bytes
    with pytest.raises(ImageError, match="too many pixels"):
        decode(bomb)
    assert Image.MAX_IMAGE_PIXELS is not None


def test_max_pixels_above_pillows_default_is_honoured(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    decode(to_bytes(Image.new("RGB", (2, 2)), "PNG"), settings=Settings(max_pixels=300_000_000))
    assert Image.MAX_IMAGE_PIXELS >= 300_000_000  # Pillow's guard never rejects what the settings allow


# -- encode -------------------------------------------------------------------------------
def _rgba() -> np.ndarray:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (20, 30, 4), np.uint8)
    a[:5, :, 3] = 0
    return a


def test_png_is_rgba_and_exact():
    out = encode(_rgba(), settings=Settings())
    im = Image.open(io.BytesIO(out))
    assert im.format == "PNG" and im.mode == "RGBA"
    assert np.array_equal(np.asarray(im), _rgba())


def test_png_compression_level_is_used():
    a = np.zeros((200, 200, 4), np.uint8)
    a[..., 3] = 255
    a[50:150, 50:150] = (10, 200, 30, 255)
    fast = encode(a, settings=Settings(png_compression=0))
    small = encode(a, settings=Settings(png_compression=9))
    assert len(fast) > 5 * len(small)


def test_webp_is_lossless_even_under_transparent_pixels():
    out = encode(_rgba(), settings=Settings(format="webp"))
    im = Image.open(io.BytesIO(out))
    assert im.format == "WEBP" and im.mode == "RGBA"
    assert np.array_equal(np.asarray(im), _rgba())


def test_mask_is_8bit_grey():
    m = np.zeros((10, 12), np.uint8)
    m[2:8, 3:9] = 255
    im = Image.open(io.BytesIO(encode(m, settings=Settings(output="mask"))))
    assert im.mode == "L" and np.array_equal(np.asarray(im), m)


def test_jpeg_solid_and_rgba_refused():
    s = Settings(output="solid", format="jpeg")
    im = Image.open(io.BytesIO(encode(np.full((8, 8, 3), 255, np.uint8), settings=s)))
    assert im.format == "JPEG" and im.mode == "RGB"
    with pytest.raises(ValueError, match="alpha"):
        encode(np.zeros((8, 8, 4), np.uint8), settings=s)


def test_webp_size_limit_is_a_clear_error():
    with pytest.raises(ImageError, match="16383"):
        encode(np.zeros((1, 16384, 4), np.uint8), settings=Settings(format="webp"))


def test_encode_checks_input():
    with pytest.raises(ValueError, match="uint8"):
        encode(np.zeros((4, 4, 4), np.float32), settings=Settings())
    with pytest.raises(ValueError, match="shape"):
        encode(np.zeros((4, 4, 2), np.uint8), settings=Settings())


def test_output_suffix():
    assert output_suffix(Settings()) == ".png"
    assert output_suffix(Settings(format="webp")) == ".webp"
    assert output_suffix(Settings(output="solid", format="jpg")) == ".jpg"


def _damaged_jpegs() -> dict[str, bytes]:
    rgb, _ = synthetic_headshot(400, 300, seed=1)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG")
    good = buf.getvalue()
    sos = good.index(b"\xff\xda")
    half = good[: sos + (len(good) - sos) // 2] + b"\xff\xd9"  # half the scan data, then an end marker
    sof = good.index(b"\xff\xc0")
    tall = bytearray(good)  # a small JPEG whose header claims 3000x2000
    tall[sof + 5 : sof + 9] = (2000).to_bytes(2, "big") + (3000).to_bytes(2, "big")
    return {"half": half, "tall": bytes(tall)}


@pytest.mark.parametrize("kind", ["half", "tall"])
def test_a_jpeg_whose_scan_data_ends_early_is_refused(kind):
    with pytest.raises(ImageError, match="truncated or corrupt image: the JPEG's scan data ends early"):
        decode(_damaged_jpegs()[kind])


def test_a_float_image_with_nan_is_refused():
    f = np.full((20, 30), 0.5, np.float32)
    f[3, 4] = np.nan
    buf = io.BytesIO()
    Image.fromarray(f, mode="F").save(buf, "TIFF")
    with pytest.raises(ImageError, match=r"1 pixel.* NaN or infinite"):
        decode(buf.getvalue())


def test_a_bomb_far_over_the_limit_names_max_pixels_not_pillows_number():
    with pytest.raises(ImageError, match=r"too many pixels: over max_pixels = 1,000 \(raise max_pixels"):
        decode(png_header_only(50_000, 50_000), settings=Settings(max_pixels=1000))


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (4, 1)])
def test_an_image_smaller_than_2x2_is_a_clear_image_error(size):
    with pytest.raises(ImageError, match=rf"too small: {size[0]}x{size[1]} pixels; knockout needs at least 2x2"):
        decode(to_bytes(Image.new("RGB", size), "PNG"))


def test_a_heic_without_the_extra_says_how_to_install_it(monkeypatch):
    from knockout import imageio

    monkeypatch.setattr(imageio, "_HEIF", False)
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(ImageError, match=r"needs the heif extra: pip install 'knockout\[heif\]'"):
        decode(heic)


def _progressive_with_scans(n: int) -> bytes:
    rgb, _ = synthetic_headshot(400, 300, seed=2)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    scan = data[data.rindex(b"\xff\xda") : -2]  # the last scan, up to the end marker
    return data[:-2] + scan * n + b"\xff\xd9"


def test_a_jpeg_with_thousands_of_scans_is_refused_before_decoding():
    assert decode(_progressive_with_scans(20)).rgb.shape == (400, 300, 3)  # a few extra scans are fine
    with pytest.raises(ImageError, match=r"too many scans: \d+ in one JPEG \(at most 100\)"):
        decode(_progressive_with_scans(3000))


def test_running_out_of_memory_is_a_memory_error_not_a_bad_file(monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Image, "open", no_memory)
    with pytest.raises(MemoryError, match="a resource limit, not a bad file"):
        decode(to_bytes(Image.new("RGB", (4, 4)), "PNG"))


# -- metadata photographers put in their files (issue 15) -----------------------------------
def _knockout(*args: str):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("knockout")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "knockout"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, check=False)


_TAGS = {0x013B: "Ann Artist", 0x8298: "(c) 2024 Ann Artist", 0x0132: "2024:05:01 10:00:00", 0x010F: "Canon"}
_TAGS[0x0110] = "EOS R5"


def _camera_jpeg(path, *, orientation: int = 6) -> None:
    from conftest import synthetic_headshot

    img, _ = synthetic_headshot(72, 54)
    exif = Image.Exif()
    for tag, value in _TAGS.items():
        exif[tag] = value
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 09:59:58"  # DateTimeOriginal
    exif.get_ifd(0x8769)[0x927C] = b"maker note bytes"
    stored = Image.fromarray(img).transpose(Image.Transpose.ROTATE_90)  # stored sideways
    stored.save(path, "JPEG", quality=95, exif=exif, dpi=(300, 300), icc_profile=srgb_profile())


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("out.png", []),  # the fast PNG writer
        ("out9.png", ["--png-compression", "9"]),  # Pillow's PNG writer
        ("out.webp", []),
        ("out.jpg", ["--output", "solid"]),
    ],
)
def test_exif_and_dpi_are_carried_to_the_output(tmp_path, name, extra):
    src = tmp_path / "camera.jpg"
    _camera_jpeg(src)
    r = _knockout("cut", str(src), str(tmp_path / name), *extra)
    assert r.returncode == 0, r.stderr
    out = Image.open(tmp_path / name)
    assert out.size == (54, 72)  # turned upright ...
    exif = out.getexif()
    assert exif.get(0x0112, 1) == 1  # ... so the orientation says so
    assert {tag: exif.get(tag) for tag in _TAGS} == _TAGS
    assert exif.get_ifd(0x8769).get(0x9003) == "2024:05:01 09:59:58"
    assert 0x927C not in exif.get_ifd(0x8769)  # no maker note (its offsets point into the old file)
    assert float(exif[0x011A]) == pytest.approx(300) and exif[0x0128] == 2
    if out.format != "WEBP":  # WebP keeps its resolution in the EXIF only
        assert out.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert out.info.get("icc_profile") == srgb_profile()


def test_strip_drops_exif_and_dpi_but_keeps_the_profile(tmp_path):
    src = tmp_path / "camera.jpg"
    _camera_jpeg(src)
    for name in ("a.png", "a.webp"):
        r = _knockout("cut", str(src), str(tmp_path / name), "--strip")
        assert r.returncode == 0, r.stderr
        out = Image.open(tmp_path / name)
        assert out.size == (54, 72) and not out.getexif() and "dpi" not in out.info
        assert out.info.get("icc_profile") == srgb_profile()


def test_png_and_tiff_metadata_in(tmp_path):
    from conftest import synthetic_headshot

    img, _ = synthetic_headshot(48, 36)
    exif = Image.Exif()
    exif[0x013B] = "Ann Artist"
    Image.fromarray(img).save(tmp_path / "a.png", dpi=(150, 150), exif=exif)
    Image.fromarray(img).save(tmp_path / "b.tif", dpi=(240, 240), exif=exif)
    for name in ("a.png", "b.tif"):
        r = _knockout("cut", str(tmp_path / name), "-o", str(tmp_path / "out"))
        assert r.returncode == 0, r.stderr
    a = Image.open(tmp_path / "out" / "a.png")
    assert a.info["dpi"] == pytest.approx((150, 150), abs=0.05) and a.getexif()[0x013B] == "Ann Artist"
    b = Image.open(tmp_path / "out" / "b.png")
    assert b.info["dpi"] == pytest.approx((240, 240), abs=0.05) and b.getexif()[0x013B] == "Ann Artist"
    assert 0x0111 not in b.getexif() and 0x0100 not in b.getexif()  # no TIFF strip offsets or width


def test_extensions_cover_what_pillow_reads_for_photo_formats():
    from knockout.imageio import EXTENSIONS, PHOTO_FORMATS

    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in PHOTO_FORMATS}
    assert readable - EXTENSIONS == set()
    assert {".jfif", ".avif", ".jp2", ".heic"} <= EXTENSIONS


def test_the_daemon_takes_the_same_extensions():
    from pathlib import PurePath

    from knockout.daemon.files import is_input_name

    assert is_input_name(PurePath("a.jfif")) and is_input_name(PurePath("sub/B.AVIF"))
    assert not is_input_name(PurePath("notes.txt"))


def _png_header(data: bytes) -> tuple[int, int]:
    return data[24], data[25]  # IHDR bit depth and colour type


def test_depth_16_keeps_a_16_bit_input_without_banding(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")  # a test dependency: the 16-bit PNG/TIFF reader
    from conftest import synthetic_headshot

    img, mask = synthetic_headshot(72, 54, noise=0)
    ramp = np.linspace(0, 250, 72)[:, None, None]  # a gradient finer than 8 bits can hold
    deep = np.clip(img * 257.0 + ramp, 0, 65535).astype(np.uint16)
    (tmp_path / "deep.png").write_bytes(png16(deep))
    r = _knockout("cut", str(tmp_path / "deep.png"), str(tmp_path / "d16.png"), "--depth", "16")
    assert r.returncode == 0, r.stderr
    data = (tmp_path / "d16.png").read_bytes()
    assert _png_header(data) == (16, 6)  # 16-bit RGBA
    out = imagecodecs.png_decode(data)
    assert out.dtype == np.uint16 and out.shape == (72, 54, 4)
    inside = out[..., 3] == 65535
    assert inside[mask].mean() > 0.9
    np.testing.assert_array_equal(out[..., :3][inside & mask], deep[inside & mask])  # the source's 16 bits
    shirt = out[60:, 27, 2][inside[60:, 27]]
    assert len(np.unique(shirt)) > len(np.unique(shirt >> 8))  # finer steps than 8 bits: no banding
    # the default stays 8-bit; 16 bits need PNG
    assert _knockout("cut", str(tmp_path / "deep.png"), str(tmp_path / "d8.png")).returncode == 0
    assert _png_header((tmp_path / "d8.png").read_bytes()) == (8, 6)
    r = _knockout("cut", str(tmp_path / "deep.png"), str(tmp_path / "d.webp"), "--depth", "16")
    assert r.returncode == 2 and "depth: 16 needs format: png" in r.stderr
    # solid and mask outputs at 16 bits too
    r = _knockout("cut", str(tmp_path / "deep.png"), str(tmp_path / "s16.png"), "--depth", "16", "--output", "solid")
    assert r.returncode == 0 and _png_header((tmp_path / "s16.png").read_bytes()) == (16, 2)
    r = _knockout("cut", str(tmp_path / "deep.png"), str(tmp_path / "m16.png"), "--depth", "16", "--output", "mask")
    assert r.returncode == 0 and _png_header((tmp_path / "m16.png").read_bytes()) == (16, 0)


def test_depth_16_from_an_8_bit_input_is_the_8_bit_cut_out_unrounded():
    from conftest import synthetic_headshot

    from knockout.process import process_bytes

    img, _ = synthetic_headshot(48, 36)
    res = process_bytes(to_bytes(Image.fromarray(img), "PNG"), settings=Settings(depth=16))
    assert _png_header(res.data) == (16, 6)
    eight = np.asarray(
        Image.open(io.BytesIO(process_bytes(to_bytes(Image.fromarray(img), "PNG"), settings=Settings()).data))
    )
    wide = np.frombuffer(zlib_pixels(res.data), ">u2").reshape(48, 36, 4).astype(np.int32)
    sure = eight[..., 3] == 255
    np.testing.assert_array_equal(wide[sure], eight[sure].astype(np.int32) * 257)  # the input's own pixels
    assert np.abs(wide - eight.astype(np.int32) * 257).max() <= 257  # the edge: rounded once, at 16 bits


def zlib_pixels(png: bytes) -> bytes:
    """The unfiltered pixel bytes of a PNG written by knockout's own writer (filter Up on every row)."""
    import struct
    import zlib

    pos, idat, width, height, bpp = 8, b"", 0, 0, 0
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
            bpp = body[8] // 8 * {0: 1, 2: 3, 6: 4}[body[9]]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * bpp)
    assert (rows[:, 0] == 2).all()
    return np.cumsum(rows[:, 1:], axis=0, dtype=np.uint8).tobytes()


def test_depth_16_reads_16_bit_tiff():
    imagecodecs = pytest.importorskip("imagecodecs")
    a = np.random.default_rng(0).integers(0, 65536, (20, 30, 3)).astype(np.uint16)
    pic = decode(imagecodecs.tiff_encode(a), settings=Settings(depth=16))
    np.testing.assert_array_equal(pic.deep, a)
    assert pic.rgb.shape == (20, 30, 3) and decode(imagecodecs.tiff_encode(a)).deep is None  # depth 8: not read


@pytest.mark.parametrize("orientation", [3, 6, 7, 8])
def test_depth_16_turns_a_16_bit_input_upright_like_the_8_bit_copy(orientation):
    pytest.importorskip("imagecodecs")
    import struct
    import zlib

    a = np.random.default_rng(orientation).integers(0, 65536, (20, 30, 3)).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()[6:]  # no Exif\0\0 header in a PNG eXIf chunk
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    plain = png16(a)
    data = plain[:33] + chunk + plain[33:]  # after the signature and IHDR
    pic = decode(data, settings=Settings(depth=16))
    assert pic.deep.shape == pic.rgb.shape == ((20, 30, 3) if orientation == 3 else (30, 20, 3))
    np.testing.assert_array_equal(pic.deep >> 8, pic.rgb)  # the 16 bits are the 8-bit copy's, turned alike


def _soft_edged_headshot_16(h: int = 160, w: int = 128) -> np.ndarray:
    """A 16-bit headshot whose outline is a smooth 6-pixel ramp from backdrop to skin, in 16-bit steps."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot((xx - w / 2 - 0.37) / 0.28, (yy - 0.45 * h) / 0.3) * 0.3  # px, off the pixel grid
    inside = np.clip((0.3 * h - r) / 6 + 0.5, 0, 1)  # 1 in the head, 0 on the backdrop, a ramp between
    inside = np.maximum(inside, ((yy > 0.8 * h) & (np.abs(xx - w / 2) < 0.4 * w)).astype(float))
    backdrop = np.array([120, 150, 200]) * 257.0
    skin = np.array([200, 150, 120]) * 257.0
    img = inside[..., None] * skin + (1 - inside[..., None]) * backdrop
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16)


def test_depth_16_alpha_of_a_smooth_edge_has_16_bit_precision(tmp_path):
    """The matte is computed in float at depth 16: a smooth edge's alpha keeps more than 8 bits."""
    imagecodecs = pytest.importorskip("imagecodecs")
    (tmp_path / "soft.png").write_bytes(png16(_soft_edged_headshot_16()))
    r = _knockout("cut", str(tmp_path / "soft.png"), str(tmp_path / "d16.png"), "--depth", "16", "--feather", "3")
    assert r.returncode == 0, r.stderr
    a = imagecodecs.png_decode((tmp_path / "d16.png").read_bytes())[..., 3]
    soft = a[(a > 0) & (a < 65535)]
    assert len(soft) > 500
    levels = np.unique(soft)
    assert len(levels) > 2 * 256, len(levels)  # 8 bits widened give at most 254 (here: under 200)
    assert np.mean(levels % 257 != 0) > 0.9  # not the 8-bit matte's levels times 257
    # the default output stays 8-bit, with the 8-bit matte
    assert _knockout("cut", str(tmp_path / "soft.png"), str(tmp_path / "d8.png"), "--feather", "3").returncode == 0
    eight = Image.open(tmp_path / "d8.png")
    assert eight.mode == "RGBA" and _png_header((tmp_path / "d8.png").read_bytes()) == (8, 6)
    # and the two mattes agree to within the 8-bit one's rounding (and the colours' small differences)
    assert np.abs(a / 257.0 - np.asarray(eight)[..., 3]).mean() < 1.0


def test_depth_16_keeps_a_16_bit_input_alpha_at_16_bits(tmp_path):
    """A 16-bit RGBA input's own alpha (a smooth fade) is multiplied in at 16 bits, not read at 8."""
    imagecodecs = pytest.importorskip("imagecodecs")
    rgb = _soft_edged_headshot_16()
    h, w = rgb.shape[:2]
    fade = np.clip(np.rint(np.linspace(20000, 65535, h)[:, None] * np.ones((1, w))), 0, 65535).astype(np.uint16)
    (tmp_path / "rgba.png").write_bytes(png16(np.dstack([rgb, fade])))
    r = _knockout("cut", str(tmp_path / "rgba.png"), str(tmp_path / "o16.png"), "--depth", "16")
    assert r.returncode == 0, r.stderr
    a = imagecodecs.png_decode((tmp_path / "o16.png").read_bytes())[..., 3].astype(np.int64)
    body = slice(int(0.85 * h), h - 1), slice(int(0.2 * w), int(0.8 * w))  # the shoulders: the matte's alpha is 1
    np.testing.assert_allclose(a[body], fade[body], atol=1)  # the input's 16-bit alpha, not 8 bits x 257
    assert np.mean(a[body] % 257 != 0) > 0.9


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decode_gives_the_pixels_and_the_reduced_image_pillow_gives(fmt):
    from knockout.matte import _reduce_image

    img, _ = synthetic_headshot(203, 151, noise=3.0)
    data = to_bytes(Image.fromarray(img), fmt)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    pic = decode(data, reduce=lambda h, w: 4)
    assert np.array_equal(pic.rgb, expected)
    f, small = pic.reduced
    assert f == 4 and np.array_equal(small, _reduce_image(pic.rgb, 4))
    assert decode(data, reduce=lambda h, w: 1).reduced is None
    assert decode(data).reduced is None


def test_a_truncated_jpeg_read_in_one_piece_is_still_refused():
    img, _ = synthetic_headshot(120, 90, noise=3.0)
    data = to_bytes(Image.fromarray(img), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode(data[: len(data) // 2])
