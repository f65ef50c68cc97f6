"""``knockout eval`` as a user runs it, on synthetic headshots with known masks."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_headshot
from PIL import Image

from knockout import Settings
from knockout.cli import main
from knockout.commands.evaluate import find_pairs, score_image
from knockout.cutout import cut_out
from knockout.metrics import iou

KNOCKOUT = Path(sys.executable).with_name("knockout")


def _dataset(root: Path, n: int = 3, mask_suffix: str = "") -> tuple[Path, Path]:
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(n):
        img, mask = synthetic_headshot(seed=i)
        Image.fromarray(img).save(images / f"p{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(masks / f"p{i}{mask_suffix}.png")
    return images, masks


def test_eval_command_prints_a_table_and_writes_csv_and_sheet(tmp_path):
    images, masks = _dataset(tmp_path)
    out = tmp_path / "report"
    r = subprocess.run(
        [str(KNOCKOUT), "eval", "--images", str(images), "--masks", str(masks), "-o", str(out),
         "--method", "kmeans,classic-threshold"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["method", "images", "IoU"]
    km = next(x for x in lines if x.startswith("kmeans")).split()
    assert km[1] == "3" and float(km[2]) > 0.95
    rows = list(csv.DictReader(open(out / "eval.csv")))
    assert len(rows) == 6 and {r["method"] for r in rows} == {"kmeans", "classic-threshold"}
    # the CSV's IoU is the IoU of the cut-out the core makes
    img = np.asarray(Image.open(images / "p1.png"))
    truth = np.asarray(Image.open(masks / "p1.png"))
    expect = iou(cut_out(img, settings=Settings()).alpha, truth)
    got = next(r for r in rows if r["image"] == "p1.png" and r["method"] == "kmeans")
    assert float(got["iou"]) == pytest.approx(expect, abs=1e-4)
    assert 0 <= float(got["alpha_error"]) < 0.05 and float(got["ms"]) > 0
    sheet = Image.open(out / "worst.png")
    assert sheet.format == "PNG" and sheet.size[1] > sheet.size[0] / 2


def test_eval_settings_change_the_scores(tmp_path, capsys):
    images, masks = _dataset(tmp_path, n=2, mask_suffix="_mask")
    assert main(["eval", "--images", str(images), "--masks", str(masks), "-o", str(tmp_path / "a")]) == 0
    soft = list(csv.DictReader(open(tmp_path / "a" / "eval.csv")))
    assert (
        main(["eval", "--images", str(images), "--masks", str(masks), "-o", str(tmp_path / "b"), "--feather", "0"]) == 0
    )
    hard = list(csv.DictReader(open(tmp_path / "b" / "eval.csv")))
    capsys.readouterr()
    assert [r["alpha_error"] for r in soft] != [r["alpha_error"] for r in hard]


def test_eval_reports_missing_masks_and_bad_files(tmp_path, capsys):
    images, masks = _dataset(tmp_path, n=2)
    (images / "lonely.png").write_bytes((images / "p0.png").read_bytes())
    (images / "broken.png").write_bytes(b"garbage")
    (masks / "broken.png").write_bytes((masks / "p0.png").read_bytes())
    code = main(["eval", "--images", str(images), "--masks", str(masks), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1
    assert "lonely.png" in err and "no mask" in err and "broken.png" in err
    assert len(list(csv.DictReader(open(tmp_path / "r" / "eval.csv")))) == 2


def test_eval_usage_errors(tmp_path, capsys):
    images, _ = _dataset(tmp_path, n=1)
    assert main(["eval", "--images", str(images), "--masks", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def _png_header(width: int, height: int) -> bytes:
    """A PNG that says it is width x height (grey) and holds no pixels: enough for Pillow's size check."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_eval_a_mask_too_large_to_read_is_one_line_and_the_rest_go_on(tmp_path, capsys):
    images, masks = _dataset(tmp_path, n=2)
    (masks / "p0.png").write_bytes(_png_header(20000, 20000))  # 400 MP: Pillow refuses it
    (masks / "p1.png").write_bytes(_png_header(10000, 10000))  # 100 MP: Pillow warns
    code = main(["eval", "--images", str(images), "--masks", str(masks), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "p0.png" in ln or "p1.png" in ln or "Warning" in ln]
    assert code == 1 and "Traceback" not in err and "DecompressionBomb" not in err, err
    assert len(lines) == 2 and all("mask" in ln and "too large" in ln for ln in lines), err


def test_sheet_and_eval_refuse_an_empty_method_list_and_a_huge_thumbnail(tmp_path, capsys):
    images, masks = _dataset(tmp_path, n=1)
    for args in (
        ["eval", "--images", str(images), "--masks", str(masks), "--method", ","],
        ["sheet", str(images), "-o", str(tmp_path / "s.png"), "--method", " , "],
        ["sheet", str(images), "-o", str(tmp_path / "s.png"), "--thumb", "40000"],
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("knockout: error: "), err
    assert not (tmp_path / "s.png").exists()


def test_find_pairs_and_size_mismatch(tmp_path):
    images, masks = _dataset(tmp_path, n=2, mask_suffix="_mask")
    pairs, problems = find_pairs(images, masks)
    assert [p[1].name for p in pairs] == ["p0_mask.png", "p1_mask.png"] and not problems
    img, _ = synthetic_headshot()
    with pytest.raises(ValueError, match="mask is"):
        score_image(img, np.zeros((5, 5), np.uint8), settings=Settings())


def test_ms_per_image_leaves_out_the_warm_up(tmp_path, monkeypatch, capsys):
    """The first cut of a method pays imports and caches; a fake clock makes that cost 100 s here."""
    import time

    import knockout.cutout

    images, masks = _dataset(tmp_path, n=3)
    now = [0.0]
    calls = []
    real = knockout.cutout.cut_out

    def slow_first(image, **kw):
        calls.append(1)
        now[0] += 100.0 if len(calls) == 1 else 0.005  # the first call ever is the warm-up
        return real(image, **kw)

    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(knockout.cutout, "cut_out", slow_first)
    out = tmp_path / "report"
    assert main(["eval", "--images", str(images), "--masks", str(masks), "-o", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "eval.csv")))
    assert [r["image"] for r in rows] == ["p0.png", "p1.png", "p2.png"]
    assert [float(r["ms"]) for r in rows] == pytest.approx([5.0, 5.0, 5.0])
    capsys.readouterr()


def test_eval_says_how_well_the_confidence_finds_the_failures(tmp_path):
    from _faces import face_headshot

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    # without the face prior, a cap filling the top edge fails (IoU 0.59, 0.58), the others do not
    cases = {"a": {}, "b": {"seed": 3}, "cap": {"cap": (60, 40, 30)}, "cap2": {"cap": (90, 30, 30), "seed": 1}}
    for name, kw in cases.items():
        rgb, truth = face_headshot(**kw)
        Image.fromarray(rgb).save(images / f"{name}.png")
        Image.fromarray(truth.astype(np.uint8) * 255).save(masks / f"{name}.png")
    r = subprocess.run(
        [str(KNOCKOUT), "eval", "--images", str(images), "--masks", str(masks), "-o", str(tmp_path / "out"),
         "--method", "threshold", "--no-face-prior"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if "confidence AUROC" in ln)
    assert "AUROC 1.000 for IoU < 0.9 (2 of 4)" in line, line
    assert "100 % of those flagged, 0 % of the good" in line, line
    rows = list(csv.DictReader(open(tmp_path / "out" / "eval.csv")))
    flagged = {r["image"] for r in rows if r["review"] == "True"}
    assert flagged == {"cap.png", "cap2.png"}
