"""``knockout sheet PATH... -o sheet.png``: a before/after contact sheet.

Originals on top, the cut-outs of each method compared below them (one row per method) on a
checkerboard or a chosen colour, a caption under each picture. :func:`make_sheet` draws the
sheet from arrays (``knockout eval`` uses it for its worst cases); :func:`run` is the command.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..settings import PRESETS, Settings, SettingsError

if TYPE_CHECKING:  # numpy and Pillow are imported when the command runs, not for --help
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

__all__ = ["make_sheet", "register", "method_settings"]

log = logging.getLogger(__name__)

_CAPTION = 16  # caption line height in pixels
_PAD = 6
_CHECK = 8  # checkerboard square size


def register(sub: argparse._SubParsersAction) -> None:
    from ..cli import add_settings_arguments, common_options

    p = sub.add_parser(
        "sheet",
        parents=[common_options()],
        help="before/after contact sheet of cut-outs",
        description="Cut out each image and draw a contact sheet: originals on top, the cut-outs below "
        "(one row per method) on a checkerboard or a colour, names under each.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  knockout sheet shoot/*.jpg -o sheet.png\n"
        "  knockout sheet a.jpg b.jpg -o compare.png --method kmeans,threshold,classic-threshold\n"
        "  knockout sheet shoot/ -o sheet.png --columns 6 --thumb 160 --canvas '#00b140'",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    p.add_argument(
        "-o",
        "--sheet",
        dest="sheet",
        type=Path,
        default=Path("sheet.png"),
        help="sheet file; .png (default sheet.png), .webp (lossless) or .jpg, as its name says",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the sheet file if it exists")
    p.add_argument("--columns", type=int, default=4, help="pictures per row (default 4)")
    p.add_argument("--thumb", type=int, default=240, help="thumbnail size in pixels (default 240)")
    p.add_argument(
        "--canvas",
        default="checker",
        help="under the cut-outs: 'checker' or a colour '#rrggbb' (default checker)",
    )
    add_settings_arguments(p)
    for action in p._actions:  # --method takes a comma-separated list here: one row per method
        if action.dest == "method":
            action.help = f"one or more methods or presets, comma-separated, one row each (default {Settings().method})"
            action.metavar = "METHOD[,METHOD...]"
    p.set_defaults(func=run)


_THUMB_MIN, _THUMB_MAX = 16, 4096  # a sheet cell; 4096 is already a full-size 12 MP portrait's height


def method_settings(args: argparse.Namespace) -> list[tuple[str, Settings]]:
    """The (label, settings) to compare from ``--method a,b,c`` and the other settings options.

    Each item is a method (``kmeans``, ``threshold``) or a preset name.
    """
    from ..cli import settings_from_args

    raw = getattr(args, "method", None)
    args.method = None
    base = settings_from_args(args).replace(output="rgba", format="png", crop=False)
    names = [m.strip() for m in (raw or base.effective_method).split(",") if m.strip()]
    if not names:
        allowed = ", ".join(["kmeans", "threshold", *PRESETS])
        raise SettingsError(f"method: {raw!r} names no method; use one or more of: {allowed}, separated by commas")
    out = []
    for name in names:
        if name in PRESETS:
            out.append((name, base.replace(preset=name)))
        else:
            try:
                out.append((name, base.replace(method=name, preset=None)))
            except SettingsError:
                allowed = ", ".join(["kmeans", "threshold", *PRESETS])
                raise SettingsError(f"method: {name!r} is not allowed; use one or more of: {allowed}") from None
    return out


def _parse_canvas(value: str) -> str | tuple[int, int, int]:
    if value.strip().lower() in ("checker", "checkerboard"):
        return "checker"
    from ..settings import _parse_color

    try:
        return _parse_color("canvas", value)
    except SettingsError:
        raise SettingsError(f"canvas: {value!r} is not allowed; use 'checker' or a colour '#rrggbb'") from None


def _fit(im: Image.Image, box: int) -> Image.Image:
    from PIL import Image

    im = im.copy()
    im.thumbnail((box, box), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return im


def _canvas_tile(size: tuple[int, int], canvas: str | tuple[int, int, int]) -> Image.Image:
    import numpy as np
    from PIL import Image

    w, h = size
    if canvas == "checker":
        yy, xx = np.mgrid[0:h, 0:w]
        light = ((yy // _CHECK + xx // _CHECK) % 2).astype(bool)
        arr = np.where(light[..., None], np.uint8(204), np.uint8(153)).repeat(3, axis=2)
        return Image.fromarray(arr.astype(np.uint8), "RGB")
    return Image.new("RGB", size, tuple(canvas))


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _clip_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def make_sheet(
    originals: Sequence[np.ndarray],
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    captions: Sequence[str],
    *,
    columns: int = 4,
    thumb: int = 240,
    canvas: str | tuple[int, int, int] = "checker",
) -> np.ndarray:
    """Draw a before/after contact sheet.

    Parameters
    ----------
    originals : sequence of ndarray of uint8, shape (H, W, 3)
        The input pictures, drawn in the top row of each band.
    rows : sequence of (label, sequence of ndarray of uint8, shape (H, W, 4))
        One row per method: its label and one RGBA cut-out per original (same order).
    captions : sequence of str
        A caption (usually the file name) per original.
    columns : int, keyword-only
        Pictures per row; more pictures wrap into further bands.
    thumb : int, keyword-only
        Each picture is fitted into a ``thumb`` x ``thumb`` box.
    canvas : 'checker' or tuple of 3 int, keyword-only
        What the cut-outs are composited on.

    Returns
    -------
    ndarray of uint8, shape (H', W', 3)
        The sheet.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    n = len(originals)
    if n == 0:
        raise ValueError("no pictures to draw; pass at least one original")
    if len(captions) != n or any(len(cuts) != n for _, cuts in rows):
        raise ValueError(f"{n} originals need {n} captions and {n} cut-outs in every row")
    if columns < 1 or thumb < 16:
        raise ValueError(f"columns must be >= 1 and thumb >= 16 pixels, got columns={columns}, thumb={thumb}")
    cols = min(columns, n)
    bands = -(-n // cols)
    cell_w, cell_h = thumb + _PAD, thumb + _CAPTION + _PAD
    per_band = 1 + len(rows)
    sheet = Image.new("RGB", (_PAD + cols * cell_w, _PAD + bands * per_band * cell_h + (bands - 1) * _PAD), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font()
    for i in range(n):
        band, col = divmod(i, cols)
        x = _PAD + col * cell_w
        y0 = _PAD + band * (per_band * cell_h + _PAD)
        pictures = [(Image.fromarray(originals[i], "RGB"), captions[i])]
        pictures += [(Image.fromarray(cuts[i], "RGBA"), label) for label, cuts in rows]
        for r, (pic, text) in enumerate(pictures):
            small = _fit(pic, thumb)
            y = y0 + r * cell_h
            ox, oy = x + (thumb - small.width) // 2, y + (thumb - small.height) // 2
            if small.mode == "RGBA":
                tile = _canvas_tile(small.size, canvas)
                tile.paste(small, (0, 0), small)
                small = tile
            sheet.paste(small, (ox, oy))
            draw.text((x, y + thumb + 2), _clip_text(draw, text, font, thumb), fill=(40, 40, 40), font=font)
    return np.asarray(sheet)


_SHEET_FORMATS = {".png": ("PNG", {"compress_level": 6}), ".webp": ("WEBP", {"lossless": True})}
_SHEET_FORMATS |= {".jpg": ("JPEG", {"quality": 92}), ".jpeg": ("JPEG", {"quality": 92})}


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..cutout import cut_out
    from ..fsutil import atomic_write, file_in_the_way
    from ..imageio import ImageError, decode
    from .cut import _progress, _say, expand_inputs

    quiet = getattr(args, "quiet", 0) > 0
    kind = _SHEET_FORMATS.get(args.sheet.suffix.lower())
    if kind is None:
        raise SettingsError(f"{args.sheet}: a sheet is .png, .webp or .jpg; name it so (for example sheet.png)")
    if args.sheet.exists() and not args.overwrite:
        raise SettingsError(f"{args.sheet} exists; use --overwrite to replace it, or another -o name")
    in_the_way = file_in_the_way(args.sheet.parent)
    if in_the_way:  # said before the work, not after
        raise SettingsError(f"cannot write {args.sheet}: {in_the_way[0]} is {in_the_way[1]}, not a folder")

    if args.columns < 1:
        raise SettingsError(f"columns: {args.columns} is out of range; use an integer >= 1")
    if not _THUMB_MIN <= args.thumb <= _THUMB_MAX:
        raise SettingsError(f"thumb: {args.thumb} is out of range; use {_THUMB_MIN} to {_THUMB_MAX} pixels")
    canvas = _parse_canvas(args.canvas)
    methods = method_settings(args)
    files, problems = expand_inputs(args.paths)
    for msg in problems:
        print(f"knockout: error: {msg}", file=sys.stderr)
    failed = len(problems)
    originals, captions = [], []
    rows: list[tuple[str, list[np.ndarray]]] = [(label, []) for label, _ in methods]
    for path in _progress(files, total=len(files), enabled=not quiet):
        try:
            pic = decode(path.read_bytes(), settings=methods[0][1])
        except ImageError as exc:
            _say(f"knockout: error: {path}: {exc}")
            failed += 1
            continue
        except OSError as exc:
            _say(f"knockout: error: {path}: cannot read: {exc.strerror or exc}")
            failed += 1
            continue
        originals.append(pic.rgb)
        captions.append(path.name)
        for (_, settings), (_, cuts) in zip(methods, rows, strict=True):
            cuts.append(cut_out(pic.rgb, settings=settings, source_alpha=pic.alpha).pixels)
        log.debug("%s: cut out with %s", path, ", ".join(label for label, _ in methods))
    if not originals:
        print("knockout: error: no image could be read; nothing to draw", file=sys.stderr)
        return 1 if failed else 2
    sheet = make_sheet(originals, rows, captions, columns=args.columns, thumb=args.thumb, canvas=canvas)
    buf = io.BytesIO()
    Image.fromarray(sheet).save(buf, kind[0], **kind[1])
    try:
        if args.sheet.parent != Path():
            args.sheet.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.sheet, buf.getvalue())
    except OSError as exc:
        print(f"knockout: error: cannot write {args.sheet}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not quiet:
        n, m = len(originals), len(methods)
        what = f"{n} image{'s' * (n != 1)} x {m} method{'s' * (m != 1)}"
        print(f"knockout: sheet of {what} -> {args.sheet}", file=sys.stderr)
    return 1 if failed else 0
