"""Edge-quality benchmark on the known-alpha composites (bench/make_composites.py).

For each method and preset, prints mean and 10th-percentile IoU, mean absolute alpha error
(whole image), boundary F-score (2 px), the foreground colour error (in the true soft band,
0.05 < alpha < 0.95, the true-alpha-weighted mean RGB distance of the cut-out's colours to the
true foreground colours: the default output against the raw pixels, ``--no-decontaminate``;
then the same ratio over only the pixels where the cut-out's alpha is above 0, whose colour shows;
and that error split by the cut-out's alpha, 0 / soft / 255, against the raw pixels' on the same
pixels: at 255 the colour is the raw pixel's, at 0 the edge colour extended or (0, 0, 0)),
and the edge-band colour error of the cut-out composited onto a contrasting colour with and
without decontamination (same alpha), with a per-backdrop breakdown. Then the same foreground
colour error on the shipped examples (examples/headshot*.jpg), whose flyaway strands have one
drawn colour (examples/make_headshot.py gives their true alpha). Usage:

    python bench/make_composites.py            # once: writes bench/out/composites (gitignored)
    python bench/edges.py [--limit N] [--configs kmeans,threshold,classic-threshold]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from make_composites import parse_hex  # bench/, next to this script
from PIL import Image

from knockout import Settings
from knockout.matte import matte
from knockout.metrics import alpha_error, boundary_f, edge_color_error, foreground_error, iou
from knockout.segment import segment

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
import make_headshot  # noqa: E402  (examples/: the shipped pictures' generator, for their truth)


def settings_for(name: str, **extra) -> Settings:
    return Settings(preset=name, **extra) if name.startswith("classic") else Settings(method=name, **extra)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE / "out" / "composites")
    ap.add_argument("--configs", default="kmeans,threshold,classic-threshold,classic-kmeans")
    ap.add_argument("--limit", type=int, default=0, help="first N composites (0 = all)")
    ap.add_argument("--preset-limit", type=int, default=60, help="composites for the slow presets (0 = all)")
    ap.add_argument("--feather", type=float, default=None, help="override the feather setting")
    ap.add_argument("--worst", type=int, default=5)
    ap.add_argument("--csv", type=Path, help="write per-image figures here")
    ap.add_argument("--no-examples", action="store_true", help="skip the shipped examples")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for every config")
    args = ap.parse_args(argv)
    if not (args.data / "manifest.csv").exists():
        print(f"no composites at {args.data}; run bench/make_composites.py first", file=sys.stderr)
        return 0
    with open(args.data / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if args.limit:
        rows = rows[: args.limit]
    out_rows = []
    for name in args.configs.split(","):
        extra = {} if args.feather is None else {"feather": args.feather}
        extra.update(kv.split("=", 1) for kv in args.set)
        s_on = settings_for(name, **extra)
        s_off = s_on.replace(decontaminate=False)
        todo = rows
        if name.startswith("classic") and args.preset_limit:
            todo = rows[: args.preset_limit]
        res = []
        for r in todo:
            img = np.asarray(Image.open(args.data / "images" / f"{r['name']}.jpg").convert("RGB"))
            ta = np.asarray(Image.open(args.data / "alpha" / f"{r['name']}.png"))
            fg = np.asarray(Image.open(args.data / "fg" / f"{r['name']}.png").convert("RGB"))
            t0 = time.perf_counter()
            seg = segment(img, settings=s_on)
            alpha, colors = matte(img, seg, settings=s_on)
            dt = time.perf_counter() - t0
            _, raw = matte(img, seg, settings=s_off)
            c = parse_hex(r["contrast_color"])
            res.append(
                {
                    "config": name,
                    "name": r["name"],
                    "backdrop": r["backdrop"],
                    "iou": iou(alpha, ta),
                    "iou_hard": iou(seg.mask, ta),
                    "mae": alpha_error(alpha, ta),
                    "bf": boundary_f(alpha, ta),
                    "fg_on": foreground_error(colors, fg, ta),
                    "fg_off": foreground_error(img, fg, ta),
                    # the same where the cut-out shows a colour (its alpha > 0), raw on the same pixels
                    "fg_vis_on": foreground_error(colors, fg, np.where(alpha > 0, ta, 0)),
                    "fg_vis_off": foreground_error(img, fg, np.where(alpha > 0, ta, 0)),
                    **_split(colors, img, fg, ta, alpha),
                    "col_on": edge_color_error(colors, alpha, fg, ta, background=c),
                    "col_off": edge_color_error(raw, alpha, fg, ta, background=c),
                    "ms": dt * 1000,
                }
            )
        out_rows += res
        _report(name, res, args.worst)
        if not args.no_examples:
            _examples(s_on)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(out_rows[0]))
            wr.writeheader()
            wr.writerows(out_rows)
    return 0


def _split(colors: np.ndarray, raw: np.ndarray, fg: np.ndarray, ta: np.ndarray, alpha: np.ndarray) -> dict:
    """The foreground colour error's parts by the cut-out's alpha (0, soft, 255): each part's share
    of ``foreground_error`` (the parts add up to it), for the default output and the raw pixels."""
    out = {}
    t = ta.astype(np.float32) / 255
    band = (t > 0.05) & (t < 0.95)
    total = t[band].sum()
    for name, sel in (("a0", alpha == 0), ("soft", (alpha > 0) & (alpha < 255)), ("a1", alpha == 255)):
        part = np.where(sel, ta, 0)
        share = t[band & sel].sum() / max(total, 1e-9)
        out[f"fg_{name}_on"] = foreground_error(colors, fg, part) * share
        out[f"fg_{name}_off"] = foreground_error(raw, fg, part) * share
    return out


def _line(label: str, res: list[dict]) -> str:
    keys = ("iou", "iou_hard", "mae", "bf", "fg_on", "fg_off", "fg_vis_on", "fg_vis_off", "col_on", "col_off", "ms",
            "fg_a0_on", "fg_a0_off", "fg_soft_on", "fg_soft_off", "fg_a1_on")  # fmt: skip
    a = {k: np.array([r[k] for r in res]) for k in keys}
    return (
        f"{label:26s} n={len(res):3d} IoU mean {a['iou'].mean():.4f} p10 {np.percentile(a['iou'], 10):.4f} "
        f"(hard mask {a['iou_hard'].mean():.4f})  alpha MAE {100 * a['mae'].mean():.2f}%  BF {a['bf'].mean():.3f}  "
        f"fg colour err {a['fg_on'].mean():.1f} vs {a['fg_off'].mean():.1f} raw "
        f"(ratio {a['fg_on'].mean() / max(1e-9, a['fg_off'].mean()):.3f}; where alpha > 0 "
        f"{a['fg_vis_on'].mean() / max(1e-9, a['fg_vis_off'].mean()):.3f})  "
        f"[by the cut-out's alpha: 0 {a['fg_a0_on'].mean():.1f} vs {a['fg_a0_off'].mean():.1f}, soft "
        f"{a['fg_soft_on'].mean():.1f} vs {a['fg_soft_off'].mean():.1f}, 255 {a['fg_a1_on'].mean():.1f}]  "
        f"edge colour err {a['col_on'].mean():.1f} vs {a['col_off'].mean():.1f} undecontaminated "
        f"(ratio {a['col_on'].mean() / max(1e-9, a['col_off'].mean()):.2f})  {a['ms'].mean():.0f} ms/img"
    )


def _report(name: str, res: list[dict], worst: int) -> None:
    print(_line(name, res), flush=True)
    for kind in sorted({r["backdrop"] for r in res}):
        print(_line(f"  {kind}", [r for r in res if r["backdrop"] == kind]), flush=True)
    if worst:
        bad = sorted(res, key=lambda r: r["iou"])[:worst]
        print("   worst:", ", ".join(f"{r['name']}({r['backdrop']})={r['iou']:.3f}" for r in bad), flush=True)
        bad = sorted(res, key=lambda r: -r["fg_on"] / max(1e-9, r["fg_off"]))[:worst]
        print(
            "   worst fg colour ratio:",
            ", ".join(f"{r['name']}({r['backdrop']})={r['fg_on']:.1f}/{r['fg_off']:.1f}" for r in bad),
            flush=True,
        )


def _examples(settings: Settings) -> None:
    """The foreground colour error on the shipped examples' flyaway strands, per backdrop."""
    on, off = [], []
    for kind in make_headshot.BACKDROPS:
        path = HERE.parent / "examples" / ("headshot.jpg" if kind == "grey" else f"headshot-{kind}.jpg")
        img = np.asarray(Image.open(path).convert("RGB"))
        _, ta, strands = make_headshot.draw(backdrop=kind, truth=True)
        ta = np.where(strands, ta, 0)  # only where the strands alone cover the backdrop
        fg = np.broadcast_to(np.array(make_headshot.STRAND_COLOR, np.uint8), img.shape)
        _, colors = matte(img, segment(img, settings=settings), settings=settings)
        on.append(foreground_error(colors, fg, ta))
        off.append(foreground_error(img, fg, ta))
    per = "  ".join(
        f"{k} {a:.1f}/{b:.1f}={a / b:.3f}" for k, a, b in zip(make_headshot.BACKDROPS, on, off, strict=True)
    )
    print(f"  examples fg colour err {np.mean(on):.1f} vs {np.mean(off):.1f} raw "
          f"(ratio {np.mean(on) / np.mean(off):.3f}):  {per}", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
