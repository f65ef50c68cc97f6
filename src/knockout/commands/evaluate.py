"""``knockout eval --images DIR --masks DIR``: score the core against ground-truth masks or mattes.

For each method asked, every image is cut out and its matte compared with the ground truth:
IoU and boundary F-score (2 px) of the subject (alpha >= one half), mean absolute alpha error
over the whole image, and time per image. Prints a table, writes a per-image CSV and a sheet
of the worst cases into OUTDIR, so users can tune settings on their own photos.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..settings import Settings

if TYPE_CHECKING:  # numpy and Pillow are imported when the command runs, not for --help
    import numpy as np

__all__ = ["Score", "find_pairs", "register", "score_image"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Score:
    """How one cut-out compares with its ground truth.

    Attributes
    ----------
    iou, boundary_f, alpha_error : float
        Subject IoU, boundary F-score (2 px), mean absolute alpha error (0-1, whole image).
    milliseconds : float
        Time of the cut (segmentation and matte).
    pixels : ndarray of uint8, shape (H, W, 4)
        The RGBA cut-out (decontaminated colours and alpha).
    confidence : float or None
        knockout's own confidence in the cut-out (None for the presets).
    """

    iou: float
    boundary_f: float
    alpha_error: float
    milliseconds: float
    pixels: np.ndarray
    confidence: float | None = None


def score_image(image: np.ndarray, truth: np.ndarray, *, settings: Settings) -> Score:
    """Cut out ``image`` with ``settings`` and score it against ``truth``.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    truth : ndarray of uint8, shape (H, W)
        Ground-truth mask or matte, 255 on the subject.
    settings : Settings, keyword-only
        Output options are ignored: the RGBA cut-out is scored.
    """
    from ..cutout import cut_out
    from ..metrics import alpha_error, boundary_f, iou

    if truth.shape != image.shape[:2]:
        raise ValueError(
            f"mask is {truth.shape[1]}x{truth.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}"
        )
    settings = settings.replace(output="rgba", format="png", crop=False)
    t0 = time.perf_counter()
    res = cut_out(image, settings=settings)
    ms = (time.perf_counter() - t0) * 1000
    a = res.alpha
    judged = res.segmentation.assessment
    conf = None if judged is None else judged.confidence
    return Score(iou(a, truth), boundary_f(a, truth), alpha_error(a, truth), ms, res.pixels, conf)


def register(sub: argparse._SubParsersAction) -> None:
    from ..cli import add_settings_arguments, common_options

    p = sub.add_parser(
        "eval",
        parents=[common_options()],
        help="score cut-outs against ground-truth masks",
        description="Cut out every image in --images and compare it with the mask or matte of the same name "
        "in --masks (NAME.png, or NAME_mask.png; 255 = subject). Prints IoU, boundary F-score (2 px), "
        "alpha error and time per image (after one untimed warm-up cut per method) for each method; "
        "writes eval.csv (one line per image and "
        "method) and worst.png (a sheet of the worst cases) into OUTDIR.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  knockout eval --images photos/ --masks masks/\n"
        "  knockout eval --images photos/ --masks masks/ -o report/ --method kmeans,threshold,classic-threshold\n"
        "  knockout eval --images photos/ --masks masks/ --feather 0 --no-decontaminate",
    )
    p.add_argument("--images", type=Path, required=True, help="folder of images")
    p.add_argument("--masks", type=Path, required=True, help="folder of ground-truth masks or mattes")
    p.add_argument(
        "-o", "--outdir", type=Path, default=Path("knockout-eval"), help="report folder (default ./knockout-eval)"
    )
    p.add_argument("--worst", type=int, default=8, help="images in the worst-cases sheet (default 8)")
    add_settings_arguments(p)
    for action in p._actions:
        if action.dest == "method":
            action.help = f"one or more methods or presets, comma-separated (default {Settings().method})"
            action.metavar = "METHOD[,METHOD...]"
    p.set_defaults(func=run)


def find_pairs(images: Path, masks: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(image, mask) pairs matched by file name, and a problem message per unmatched image."""
    from ..imageio import EXTENSIONS

    by_stem: dict[str, Path] = {}
    for m in sorted(masks.iterdir()):
        if m.is_file() and m.suffix.lower() in EXTENSIONS and not m.name.startswith("."):
            by_stem.setdefault(m.stem, m)
    pairs, problems = [], []
    for img in sorted(images.iterdir()):
        if not img.is_file() or img.suffix.lower() not in EXTENSIONS or img.name.startswith("."):
            continue
        mask = by_stem.get(img.stem) or by_stem.get(f"{img.stem}_mask") or by_stem.get(f"{img.stem}-mask")
        if mask is None:
            problems.append(f"{img}: no mask named {img.stem}.png (or {img.stem}_mask.png) in {masks}")
        else:
            pairs.append((img, mask))
    return pairs, problems


def _read_mask(path: Path) -> np.ndarray:
    import numpy as np
    from PIL import Image, ImageOps

    from ..imageio import ImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # a line of ours, not Pillow's two
            raw = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        n = f"{int(size.group(1)):,} pixels" if size else "its size"
        raise ImageError(
            f"cannot read mask: {n} is too large (Pillow reads at most {Image.MAX_IMAGE_PIXELS:,})"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read mask: {exc}") from None
    try:
        with raw:
            im = ImageOps.exif_transpose(raw)
            if im.mode in ("RGBA", "LA"):
                return np.asarray(im.getchannel("A"))
            if im.mode in ("I", "I;16", "I;16B", "I;16L"):
                a = np.asarray(im).astype(np.float32)
                return np.clip(a / max(1.0, a.max()) * 255, 0, 255).astype(np.uint8)
            a = np.asarray(im.convert("L"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read mask: {exc}") from None
    if a.max(initial=0) == 1:  # 0/1 masks
        a = a * np.uint8(255)
    return a


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..fsutil import atomic_write
    from ..imageio import ImageError, decode
    from .sheet import make_sheet, method_settings

    for what, folder in (("--images", args.images), ("--masks", args.masks)):
        if not folder.is_dir():
            print(f"knockout: error: {what} {folder}: no such folder", file=sys.stderr)
            return 2
    methods = method_settings(args)
    pairs, problems = find_pairs(args.images, args.masks)
    for msg in problems:
        print(f"knockout: error: {msg}", file=sys.stderr)
    if not pairs:
        print(f"knockout: error: no image in {args.images} has a mask in {args.masks}", file=sys.stderr)
        return 2
    failed = len(problems)
    records: list[dict] = []
    scored: dict[str, tuple[Path, Path]] = {}
    from .cut import _progress, _say

    warm = set()
    for img_path, mask_path in _progress(pairs, total=len(pairs), enabled=getattr(args, "quiet", 0) <= 0):
        try:
            pic = decode(img_path.read_bytes(), settings=methods[0][1])
            truth = _read_mask(mask_path)
        except (ImageError, OSError) as exc:
            _say(f"knockout: error: {img_path}: {exc}")
            failed += 1
            continue
        try:
            for label, settings in methods:
                if label not in warm:  # the first cut of a method pays its imports and caches: not timed
                    score_image(pic.rgb, truth, settings=settings)
                    warm.add(label)
            for label, settings in methods:
                s = score_image(pic.rgb, truth, settings=settings)
                records.append(
                    {
                        "image": img_path.name,
                        "method": label,
                        "iou": s.iou,
                        "boundary_f": s.boundary_f,
                        "alpha_error": s.alpha_error,
                        "ms": s.milliseconds,
                        "confidence": "" if s.confidence is None else s.confidence,
                        "review": s.confidence is not None and s.confidence < settings.review_below,
                    }
                )
        except ValueError as exc:
            _say(f"knockout: error: {img_path}: {exc} (mask {mask_path})")
            failed += 1
            continue
        scored[img_path.name] = (img_path, mask_path)
    if not records:
        return 1
    print(_table(records, [label for label, _ in methods]))
    for label, settings in methods:
        line = _confidence_line(label, [r for r in records if r["method"] == label], settings.review_below)
        if line:
            print(line)
    try:
        args.outdir.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        wr = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
        wr.writeheader()
        for r in records:
            wr.writerow({k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in r.items()})
        atomic_write(args.outdir / "eval.csv", buf.getvalue().encode())
        first = methods[0][0]
        worst = sorted((r for r in records if r["method"] == first), key=lambda r: (r["iou"], r["boundary_f"]))
        worst = worst[: max(1, args.worst)]
        names = [r["image"] for r in worst]
        by = {(r["image"], r["method"]): r for r in records}
        originals, rows = _worst_rows(names, scored, methods)
        captions = [f"{n}  IoU {by[(n, first)]['iou']:.3f}" for n in names]
        sheet = make_sheet(originals, rows, captions, columns=min(4, len(names)), thumb=200)
        out = io.BytesIO()
        Image.fromarray(sheet).save(out, "PNG", compress_level=6)
        atomic_write(args.outdir / "worst.png", out.getvalue())
    except OSError as exc:
        print(f"knockout: error: cannot write the report in {args.outdir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"knockout: {len(scored)} images scored, {failed} failed; report in {args.outdir}/", file=sys.stderr)
    return 1 if failed else 0


def _worst_rows(names, scored, methods):
    """Cut the worst images out again (only scores are kept while scoring, to bound memory)."""
    import numpy as np

    from ..cutout import cut_out
    from ..imageio import decode

    originals, truth_cuts = [], []
    rows: list[tuple[str, list[np.ndarray]]] = [(label, []) for label, _ in methods]
    for n in names:
        img_path, mask_path = scored[n]
        rgb = decode(img_path.read_bytes(), settings=methods[0][1]).rgb
        truth = _read_mask(mask_path)
        originals.append(_small(rgb))
        truth_cuts.append(_small(np.dstack([rgb, truth])))
        for (_, settings), (_, cuts) in zip(methods, rows, strict=True):
            cuts.append(_small(cut_out(rgb, settings=settings.replace(output="rgba", crop=False)).pixels))
    return originals, [("ground truth", truth_cuts), *rows]


def _small(a: np.ndarray, side: int = 400) -> np.ndarray:
    """Keep only a thumbnail-sized copy for the worst-cases sheet (memory on big folders)."""
    import numpy as np
    from PIL import Image

    h, w = a.shape[:2]
    f = side / max(h, w)
    if f >= 1:
        return a
    im = Image.fromarray(a)
    return np.asarray(im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BOX))


FAILED_BELOW = 0.90  # IoU under this is a failed cut-out, for the confidence figures
GOOD_FROM = 0.95  # IoU from this is a good one


def _confidence_line(label: str, records: list[dict], review_below: float) -> str:
    """How well the confidence finds the failed cut-outs: AUROC, and who is flagged at ``review_below``."""
    import numpy as np

    rs = [r for r in records if r["confidence"] != ""]
    if not rs:
        return ""
    conf = np.array([r["confidence"] for r in rs], float)
    iou = np.array([r["iou"] for r in rs], float)
    bad, good = iou < FAILED_BELOW, iou >= GOOD_FROM
    flagged = conf < review_below
    if bad.all() or not bad.any():
        auroc = "n/a (needs failed and other images)"
    else:
        from sklearn.metrics import roc_auc_score

        auroc = f"{roc_auc_score(bad, -conf):.3f}"

    def share(m: np.ndarray) -> str:
        return f"{100 * flagged[m].mean():.0f} %" if m.any() else "n/a"

    return (
        f"{label}: confidence AUROC {auroc} for IoU < {FAILED_BELOW:g} ({bad.sum()} of {len(rs)}); "
        f"at review_below {review_below:g}: {share(bad)} of those flagged, {share(good)} of the good "
        f"(IoU >= {GOOD_FROM:g}, {good.sum()}) flagged"
    )


def _table(records: list[dict], labels: list[str]) -> str:
    import numpy as np

    lines = [
        f"{'method':18s} {'images':>6s} {'IoU mean':>8s} {'IoU p10':>8s} {'BF 2px':>7s} "
        f"{'alpha err':>9s} {'ms/img':>7s}"
    ]
    for label in labels:
        rs = [r for r in records if r["method"] == label]
        if not rs:
            continue
        a = np.array([[r["iou"], r["boundary_f"], r["alpha_error"], r["ms"]] for r in rs])
        lines.append(
            f"{label:18s} {len(rs):6d} {a[:, 0].mean():8.3f} {np.percentile(a[:, 0], 10):8.3f} "
            f"{a[:, 1].mean():7.3f} {100 * a[:, 2].mean():8.2f}% {a[:, 3].mean():7.0f}"
        )
    return "\n".join(lines)
