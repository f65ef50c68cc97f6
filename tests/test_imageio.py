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
