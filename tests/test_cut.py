"""``knockout cut``: run the way a user runs it (main() and the installed console script)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _images import to_bytes
from conftest import synthetic_headshot
from PIL import Image

from knockout import __version__
from knockout.cli import main

SUMMARY = re.compile(r"^knockout: (\d+) cut out, (\d+) failed(?:, (\d+) skipped \(output exists.*\))? in [\d.]+ s$")


def _headshot_file(path: Path, fmt: str | None = None, seed: int = 0) -> Path:
    img, _ = synthetic_headshot(72, 54, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, fmt)
    return path


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("knockout")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "knockout.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300, check=False)


def _summary(err: str) -> tuple[int, int, int]:
    last = err.strip().splitlines()[-1]
    m = SUMMARY.match(last)
    assert m, f"no summary line in {err!r}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


# -- inputs and output names -------------------------------------------------------------------
def test_single_file_beside_input(tmp_path, capsys):
    src = _headshot_file(tmp_path / "portrait.jpg")
    assert main(["cut", str(src)]) == 0
    out = tmp_path / "portrait-cutout.png"
    im = Image.open(out)
    assert im.mode == "RGBA" and im.size == (54, 72)
    assert _summary(capsys.readouterr().err) == (1, 0, 0)


def test_folder_glob_and_recursive(tmp_path, capsys):
    shoot = tmp_path / "shoot"
    _headshot_file(shoot / "a.jpg")
    _headshot_file(shoot / "b.png", seed=1)
    _headshot_file(shoot / "sub" / "c.webp", seed=2)
    (shoot / "notes.txt").write_text("not an image")
    (shoot / ".hidden.png").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["cut", str(shoot), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    out2 = tmp_path / "out2"
    assert main(["cut", str(shoot), "-r", "-o", str(out2)]) == 0
    assert sorted(p.relative_to(out2).as_posix() for p in out2.rglob("*.png")) == ["a.png", "b.png", "sub/c.png"]
    out3 = tmp_path / "out3"
    assert main(["cut", str(shoot / "*.jpg"), str(shoot / "**" / "*.webp"), "-o", str(out3)]) == 0
    assert sorted(p.relative_to(out3).as_posix() for p in out3.rglob("*.png")) == ["a.png", "sub/c.png"]
    capsys.readouterr()


def test_existing_output_kept_unless_overwrite(tmp_path, capsys):
    src = _headshot_file(tmp_path / "a.jpg")
    dst = tmp_path / "a-cutout.png"
    dst.write_bytes(b"mine")
    assert main(["cut", str(src)]) == 0
    assert dst.read_bytes() == b"mine"
    assert _summary(capsys.readouterr().err) == (0, 0, 1)
    assert main(["cut", str(src), "--overwrite"]) == 0
    assert Image.open(dst).mode == "RGBA"
    assert _summary(capsys.readouterr().err) == (1, 0, 0)


def test_rerun_on_a_folder_does_not_cut_out_the_cutouts(tmp_path, capsys):
    _headshot_file(tmp_path / "a.jpg")
    assert main(["cut", str(tmp_path)]) == 0
    assert main(["cut", str(tmp_path), "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-cutout.png", "a.jpg"]
    capsys.readouterr()


def test_input_is_never_overwritten(tmp_path, capsys):
    a = _headshot_file(tmp_path / "a.png")
    before = a.read_bytes()
    # -o into the input's own folder: a.png would be its own output, so it gets a tagged name
    assert main(["cut", str(a), "-o", str(tmp_path), "--overwrite"]) == 0
    assert a.read_bytes() == before and (tmp_path / "a-cutout.png").exists()
    # a.jpg's output would be a.png, itself an input: refused even with --overwrite
    _headshot_file(tmp_path / "a.jpg")
    assert main(["cut", str(tmp_path / "a.jpg"), str(a), "-o", str(tmp_path), "--overwrite"]) == 1
    assert a.read_bytes() == before
    assert "is also an input" in capsys.readouterr().err


def test_a_folders_photo_named_like_another_inputs_output_is_an_input_not_an_old_cutout(tmp_path, capsys):
    # shoot/a.jpg's output in shoot/ is a.png; shoot/a.png is the user's own photo (no knockout mark)
    _headshot_file(tmp_path / "a.jpg")
    photo = _headshot_file(tmp_path / "a.png", seed=3)
    before = photo.read_bytes()
    assert main(["cut", str(tmp_path), "-o", str(tmp_path), "--overwrite"]) == 1
    assert photo.read_bytes() == before
    err = capsys.readouterr().err
    assert f"{tmp_path / 'a.jpg'}: its output {photo} is also an input" in err
    # a real earlier cut-out of a.jpg (knockout's mark) is still left out of the inputs and replaced
    photo.unlink()
    assert main(["cut", str(tmp_path / "a.jpg"), "-o", str(tmp_path)]) == 0
    assert main(["cut", str(tmp_path), "-o", str(tmp_path), "--overwrite"]) == 0
    assert _summary(capsys.readouterr().err)[:2] == (1, 0)


def test_two_inputs_one_output_name(tmp_path, capsys):
    _headshot_file(tmp_path / "x" / "a.jpg")
    _headshot_file(tmp_path / "y" / "a.jpg")
    assert main(["cut", str(tmp_path / "x" / "a.jpg"), str(tmp_path / "y" / "a.jpg"), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "would also be written by" in err and _summary(err) == (1, 1, 0)


# -- output options ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case",
    [
        ([], "a-cutout.png", "PNG", "RGBA"),
        (["--format", "webp"], "a-cutout.webp", "WEBP", "RGBA"),
        (["--output", "mask"], "a-mask.png", "PNG", "L"),
        (["--output", "solid", "--background", "#ffffff", "--format", "jpeg"], "a-solid.jpg", "JPEG", "RGB"),
        (["--output", "solid"], "a-solid.png", "PNG", "RGB"),
    ],
)
def test_output_options(tmp_path, capsys, case):
    opts, name, fmt, mode = case
    src = _headshot_file(tmp_path / "a.jpg")
    assert main(["cut", str(src), *opts]) == 0
    im = Image.open(tmp_path / name)
    assert (im.format, im.mode, im.size) == (fmt, mode, (54, 72))
    px = np.asarray(im.convert("RGBA"))
    if "--output" not in opts:
        assert px[1, 1, 3] == 0 and px[-2, 27, 3] == 255
    elif "mask" in opts:
        assert np.asarray(im)[1, 1] == 0 and np.asarray(im)[-2, 27] == 255
    else:
        assert px[1, 1, :3].min() >= 245  # backdrop replaced by white
    capsys.readouterr()


def test_crop_with_margin(tmp_path, capsys):
    src = _headshot_file(tmp_path / "a.jpg")
    opts = ["--feather", "0", "--output", "mask", "--overwrite"]
    assert main(["cut", str(src), *opts]) == 0
    full = np.asarray(Image.open(tmp_path / "a-mask.png"))
    rows, cols = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
    for margin in (0, 3):
        assert main(["cut", str(src), "--crop", "--margin", str(margin), *opts]) == 0
        m = np.asarray(Image.open(tmp_path / "a-mask.png"))
        y0, y1 = max(0, rows[0] - margin), min(72, rows[-1] + 1 + margin)
        x0, x1 = max(0, cols[0] - margin), min(54, cols[-1] + 1 + margin)
        assert m.shape == (y1 - y0, x1 - x0) and m.shape != full.shape
        assert np.array_equal(m, full[y0:y1, x0:x1])
    capsys.readouterr()


def test_parallel_jobs(tmp_path, capsys):
    for i in range(3):
        _headshot_file(tmp_path / f"p{i}.png", seed=i)
    assert main(["cut", str(tmp_path), "-o", str(tmp_path / "out"), "-j", "2"]) == 0
    assert len(list((tmp_path / "out").iterdir())) == 3
    assert _summary(capsys.readouterr().err) == (3, 0, 0)


def test_parallel_jobs_cut_each_file_exactly_once_and_report_each_error(tmp_path):
    # with -j 2 this process cuts files too, beside a pool worker that takes files once it is ready
    shoot = tmp_path / "shoot"
    for i in range(7):
        _headshot_file(shoot / f"p{i}.png", seed=i)
    (shoot / "bad1.jpg").write_text("not an image\n")
    (shoot / "bad2.png").write_bytes(b"")
    (shoot / "bad3.jpg").write_bytes((shoot / "p0.png").read_bytes()[:60])
    r2 = _cli("cut", "shoot", "-o", "out2", "-j", "2", "--report", "r2.jsonl", cwd=tmp_path)
    r1 = _cli("cut", "shoot", "-o", "out1", "--report", "r1.jsonl", cwd=tmp_path)
    assert r2.returncode == r1.returncode == 1, r2.stderr
    assert _summary(r2.stderr) == _summary(r1.stderr) == (7, 3, 0)
    rows = [json.loads(line) for line in (tmp_path / "r2.jsonl").read_text().splitlines()]
    assert sorted(row["input"] for row in rows) == sorted(str(Path("shoot") / p.name) for p in shoot.iterdir())
    failed = {Path(row["input"]).name for row in rows if row.get("error")}
    assert failed == {"bad1.jpg", "bad2.png", "bad3.jpg"}
    errors = [ln for ln in r2.stderr.splitlines() if ln.startswith("knockout: error: ")]
    assert len(errors) == 3 and all(any(f"{name}: " in ln for ln in errors) for name in failed)
    names = sorted(p.name for p in (tmp_path / "out1").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "out2").iterdir()) and len(names) == 7
    for name in names:  # the same cut-outs as one process makes
        assert (tmp_path / "out2" / name).read_bytes() == (tmp_path / "out1" / name).read_bytes()


# -- bad inputs, through the installed command ---------------------------------------------------
def test_each_kind_of_bad_input_is_one_line_and_others_still_processed(tmp_path):
    good = _headshot_file(tmp_path / "good.jpg")
    jpeg = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (tmp_path / "text.jpg").write_text("this is not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "tiny.png").write_bytes(to_bytes(Image.new("RGB", (1, 1)), "PNG"))
    names = ["truncated.jpg", "corrupt.png", "good.jpg", "text.jpg", "empty.png", "tiny.png", "missing.jpg"]
    r = _cli("cut", *names, "-o", "out", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("knockout: error: ")]
    expected = {
        "truncated.jpg": "truncated or corrupt",
        "corrupt.png": "truncated or corrupt",
        "text.jpg": "not an image",
        "empty.png": "empty file",
        "tiny.png": "2x2",
        "missing.jpg": "no such file",
    }
    assert len(errors) == len(expected)
    for name, reason in expected.items():
        (line,) = [ln for ln in errors if ln.startswith(f"knockout: error: {name}: ")]
        assert reason in line
    assert _summary(r.stderr) == (1, 6, 0)
    assert Image.open(tmp_path / "out" / "good.png").mode == "RGBA"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


def test_a_link_to_nothing_in_a_folder_is_said_not_skipped(tmp_path):
    """A folder (or a glob) holding image names that are links to nothing, or links that loop: each
    gets its line (they were skipped without a word, so a shoot lost files unseen); the rest is cut."""
    shoot = tmp_path / "shoot"
    _headshot_file(shoot / "good.jpg")
    (shoot / "broken.jpg").symlink_to("moved-away.jpg")
    (shoot / "loop.jpg").symlink_to("loop.jpg")
    (shoot / "sub").mkdir()
    (shoot / "not-an-image.txt").symlink_to("nowhere")  # not an image name: not knockout's business
    (tmp_path / "arg.jpg").symlink_to("arg.jpg")
    for args in (["shoot"], ["shoot/*.jpg"]):
        r = _cli("cut", *args, "arg.jpg", "-o", "out", "--overwrite", cwd=tmp_path)
        assert r.returncode == 1, r.stderr
        errors = sorted(ln for ln in r.stderr.splitlines() if ln.startswith("knockout: error: "))
        assert errors == [
            "knockout: error: arg.jpg: a link that loops (too many levels of links)",
            "knockout: error: shoot/broken.jpg: a link to nothing (moved-away.jpg)",
            "knockout: error: shoot/loop.jpg: a link that loops (too many levels of links)",
        ], r.stderr
        assert _summary(r.stderr) == (1, 3, 0)
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


@pytest.mark.parametrize("outdir", ["notes.txt", "notes.txt/cutouts"])
def test_an_output_folder_in_the_way_of_a_file_says_which_file(tmp_path, outdir):
    _headshot_file(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("mine\n")
    r = _cli("cut", "a.jpg", "-o", outdir, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr == f"knockout: error: cannot create output folder {outdir}: notes.txt is a file, not a folder\n"
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_debug_shows_tracebacks(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    r = _cli("cut", "empty.png", "--debug", cwd=tmp_path)
    assert r.returncode == 1
    assert "knockout: error: empty.png: empty file" in r.stderr and "Traceback" in r.stderr


def test_too_many_pixels_through_the_cli(tmp_path, capsys):
    src = _headshot_file(tmp_path / "a.jpg")
    assert main(["cut", str(src), "--max-pixels", "1000"]) == 1
    assert "too many pixels" in capsys.readouterr().err


# -- usage, version, help, progress ------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["cut", "a.jpg", "--feather", "lots"],
        ["cut", "a.jpg", "--format", "gif"],
        ["cut", "a.jpg", "--format", "jpeg"],  # jpeg cannot hold the rgba cut-out
        ["cut", "a.jpg", "--no-such-option"],
        ["cut", "a.jpg", "-j", "-1"],
        ["cut"],
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, args):
    _headshot_file(tmp_path / "a.jpg")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
    finally:
        os.chdir(cwd)
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert not (tmp_path / "a-cutout.png").exists()


def test_bad_setting_names_the_key_through_the_command(tmp_path):
    r = _cli("cut", "a.jpg", "--png-compression", "12", cwd=tmp_path)
    assert r.returncode == 2
    assert "png_compression" in r.stderr and "0 to 9" in r.stderr and "Traceback" not in r.stderr


def test_version():
    r = _cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"knockout {__version__}"


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["cut", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "knockout cut shoot/ -o cutouts/" in out and "--overwrite" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_when_more_than_one_file(tmp_path, monkeypatch):
    for i in range(2):
        _headshot_file(tmp_path / f"p{i}.png", seed=i)
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["cut", str(tmp_path / "p0.png"), str(tmp_path / "p1.png")]) == 0
    assert "2/2" in term.getvalue() and "img" in term.getvalue()
    # one file: no bar; -q: no bar and no summary
    term2 = _Terminal()
    monkeypatch.setattr(sys, "stderr", term2)
    assert main(["cut", str(tmp_path / "p0.png"), "--overwrite"]) == 0
    assert "1/1" not in term2.getvalue() and _summary(term2.getvalue()) == (1, 0, 0)
    term3 = _Terminal()
    monkeypatch.setattr(sys, "stderr", term3)
    assert main(["cut", str(tmp_path / "p0.png"), str(tmp_path / "p1.png"), "--overwrite", "-q"]) == 0
    assert term3.getvalue() == ""


def test_orientation_and_profile_reach_the_output(tmp_path, capsys):
    from _images import srgb_profile

    img, _ = synthetic_headshot(72, 54)
    stored = Image.fromarray(img).transpose(Image.Transpose.ROTATE_90)  # stored sideways, 72 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # a camera's "turn 90 degrees clockwise to display"
    src = tmp_path / "sideways.jpg"
    stored.save(src, quality=95, exif=exif.tobytes(), icc_profile=srgb_profile())
    assert main(["cut", str(src)]) == 0
    out = Image.open(tmp_path / "sideways-cutout.png")
    assert out.size == (54, 72)  # upright, as a viewer shows the input
    a = np.asarray(out)[..., 3]
    assert a[1, 1] == 0 and a[-2, 27] == 255  # backdrop at the top, shoulders at the bottom
    assert out.info.get("icc_profile") == srgb_profile()
    capsys.readouterr()


def test_report_lists_each_input_with_its_confidence_and_the_png_carries_it(tmp_path):
    import json

    from _faces import face_headshot

    shoot = tmp_path / "shoot"
    shoot.mkdir()
    good, _ = face_headshot()
    close, _ = face_headshot(backdrop=(28, 28, 30), shirt=(36, 34, 40))  # a shirt a few delta E from the backdrop
    Image.fromarray(good).save(shoot / "good.png")
    Image.fromarray(close).save(shoot / "close.png")
    (shoot / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    for name in ("report.csv", "report.jsonl"):
        r = _cli("cut", str(shoot), "-o", str(tmp_path / f"out-{name}"), "--report", str(tmp_path / name), "-q")
        assert r.returncode == 1, r.stderr  # broken.jpg failed
    rows = {Path(r["input"]).name: r for r in csv.DictReader(open(tmp_path / "report.csv"))}
    assert set(rows) == {"good.png", "close.png", "broken.jpg"}
    assert rows["good.png"]["review"] == "False" and float(rows["good.png"]["confidence"]) >= 0.5
    assert rows["close.png"]["review"] == "True" and "unstable" in rows["close.png"]["reasons"].split()
    assert rows["broken.jpg"]["output"] == "" and rows["broken.jpg"]["error"]
    assert rows["good.png"]["method"] == "threshold" and float(rows["good.png"]["ms"]) > 0
    lines = [json.loads(ln) for ln in open(tmp_path / "report.jsonl")]
    by = {Path(x["input"]).name: x for x in lines}
    assert by["close.png"]["review"] is True and isinstance(by["close.png"]["reasons"], list)
    with Image.open(rows["close.png"]["output"]) as im:
        assert float(im.text["knockout:confidence"]) == pytest.approx(float(rows["close.png"]["confidence"]), abs=1e-3)
        assert "unstable" in im.text["knockout:reasons"]
    r = _cli("cut", str(shoot / "good.png"), "-o", str(tmp_path / "x"), "--report", str(tmp_path / "r.txt"))
    assert r.returncode == 2 and "r.txt" in r.stderr and ".csv" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()  # refused before the -o folder was made


def test_report_replaces_only_a_report_and_a_write_error_is_one_line_the_cutouts_go_on(tmp_path):
    a = _headshot_file(tmp_path / "a.jpg")
    b = _headshot_file(tmp_path / "b.jpg", seed=1)
    budget = tmp_path / "budget.csv"
    budget.write_text("name,amount\nrent,900\n")
    r = _cli("cut", str(a), "-o", str(tmp_path / "o1"), "--report", str(budget))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"--report {budget} exists and is not a knockout report; use --overwrite to replace it" in r.stderr
    assert budget.read_text() == "name,amount\nrent,900\n" and not (tmp_path / "o1" / "a.png").exists()
    # an earlier run's report is replaced (a rerun), as its cut-outs are with --overwrite
    for name in ("r.csv", "r.jsonl"):
        for _ in range(2):
            r = _cli("cut", str(a), "-o", str(tmp_path / "o2"), "--overwrite", "--report", str(tmp_path / name))
            assert r.returncode == 0, r.stderr
    r = _cli("cut", str(a), "-o", str(tmp_path / "o3"), "--overwrite", "--report", str(budget))
    assert r.returncode == 0 and "a.jpg" in budget.read_text(), r.stderr
    # a report that cannot be written (a full disk): said once, every input still cut out, exit 1
    if Path("/dev/full").exists():
        os.symlink("/dev/full", tmp_path / "full.csv")
        r = _cli("cut", a, b, "-o", tmp_path / "o4", "--overwrite", "--report", tmp_path / "full.csv")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert [ln for ln in lines if "error" in ln] == [
            f"knockout: error: --report {tmp_path / 'full.csv'}: cannot write it (No space left on device); "
            "the cut-outs go on without it"
        ], r.stderr
        assert sorted(p.name for p in (tmp_path / "o4").iterdir()) == ["a.png", "b.png"]
        assert _summary(r.stderr)[:2] == (2, 0)


def test_a_name_with_a_newline_or_control_codes_is_escaped_in_every_line(tmp_path):
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    (shoot / "bad\nknockout: 1 cut out, 0 failed.jpg").write_bytes(b"not a jpeg")
    (shoot / "esc\x1b[2Jx.jpg").write_bytes(b"x")
    r = _cli("cut", shoot, "-o", tmp_path / "out")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 3 and "\x1b" not in r.stderr, r.stderr
    assert any("bad\\nknockout: 1 cut out, 0 failed.jpg: " in ln for ln in lines)
    assert any("esc\\x1b[2Jx.jpg: " in ln for ln in lines) and _summary(r.stderr) == (0, 2, 0)


# -- habits users bring from other tools (issue 15) ----------------------------------------------
def _run(*args: str, cwd: Path | None = None, stdin: bytes | None = None, env: dict | None = None):
    """The console script as a subprocess, bytes in and out (for - as standard input and output)."""
    import os

    exe = Path(sys.executable).with_name("knockout")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "knockout"]
    return subprocess.run(
        [*cmd, *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_in_out_with_an_output_name_knockout_cannot_write_is_refused_before_any_work(tmp_path):
    """``knockout cut in.jpg out.tiff`` (ImageMagick's habit): one line naming out.tiff and the formats it
    could be, exit 2, nothing written (it used to cut in.jpg to in-cutout.png and call out.tiff missing)."""
    src = _headshot_file(tmp_path / "in.jpg")
    for name in ("out.tiff", "out.txt", "out"):
        r = _cli("cut", str(src), str(tmp_path / name))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert f"{tmp_path / name}: no such file" in lines[0] and ".png, .webp or .jpg" in lines[0], r.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jpg"]


def test_a_folder_and_a_new_name_says_to_use_o_before_any_work(tmp_path):
    """``knockout cut shoot/ cutouts/`` (rembg's ``p IN_DIR OUT_DIR``): one line saying to use -o, exit 2,
    nothing written (it used to write shoot/NAME-cutout.png beside every photo and call cutouts/ missing)."""
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    _headshot_file(shoot / "a.jpg")
    r = _cli("cut", str(shoot), str(tmp_path / "cutouts"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and f"-o {tmp_path / 'cutouts'}" in lines[0], r.stderr
    assert [p.name for p in shoot.iterdir()] == ["a.jpg"] and not (tmp_path / "cutouts").exists()
    assert _cli("cut", str(shoot), "-o", str(tmp_path / "cutouts")).returncode == 0
    assert (tmp_path / "cutouts" / "a.png").exists()


def test_in_out_names_the_output_and_its_extension_the_format(tmp_path):
    src = _headshot_file(tmp_path / "in.jpg")
    r = _cli("cut", str(src), str(tmp_path / "out.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out.png").mode == "RGBA" and not (tmp_path / "in-cutout.png").exists()
    assert _cli("cut", str(src), str(tmp_path / "out.webp")).returncode == 0
    assert Image.open(tmp_path / "out.webp").format == "WEBP"
    # run again: its own earlier output (marked by knockout) is the output, kept unless --overwrite
    for name, extra in (("out.png", []), ("out.webp", []), ("solid.jpg", ["--output", "solid"])):
        before = (tmp_path / name).read_bytes() if (tmp_path / name).exists() else None
        r = _cli("cut", str(src), str(tmp_path / name), *extra)
        if before is not None:
            assert _summary(r.stderr) == (0, 0, 1) and (tmp_path / name).read_bytes() == before
        r = _cli("cut", str(src), str(tmp_path / name), *extra, "--overwrite")
        assert _summary(r.stderr) == (1, 0, 0), r.stderr
    assert not list(tmp_path.glob("*-cutout.*")) and not list(tmp_path.glob("*-solid.*"))
    # a JPEG name needs a JPEG-able output; a --format that contradicts the name is refused
    r = _cli("cut", str(src), str(tmp_path / "out.jpg"))
    assert r.returncode == 2 and "jpeg cannot hold an alpha channel" in r.stderr
    r = _cli("cut", str(src), str(tmp_path / "o.png"), "--format", "webp")
    assert r.returncode == 2 and "the name says png but --format is webp" in r.stderr
    # two existing photos are still two inputs, with or without alpha, grey or colour
    _headshot_file(tmp_path / "b.png", seed=1)
    assert _summary(_cli("cut", str(src), str(tmp_path / "b.png")).stderr) == (2, 0, 0)
    assert Image.open(tmp_path / "b-cutout.png").mode == "RGBA"
    Image.open(src).convert("L").save(tmp_path / "grey.png")
    Image.open(src).convert("RGBA").save(tmp_path / "rgba.png")
    for photo in ("grey.png", "rgba.png"):
        assert _summary(_cli("cut", str(src), str(tmp_path / photo), "--overwrite").stderr) == (2, 0, 0)
        assert Image.open(tmp_path / photo).size == (54, 72)  # the photo itself untouched


def test_o_with_an_image_name_names_the_one_output_and_never_makes_a_folder_of_it(tmp_path):
    """``knockout cut big.jpg -o out.png`` (gcc's and ffmpeg's habit): out.png is the cut-out, not a folder
    named out.png with big.png inside (what it did); with several inputs, one line and nothing written."""
    src = _headshot_file(tmp_path / "in.jpg")
    r = _cli("cut", str(src), "-o", str(tmp_path / "out.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.png").is_file() and Image.open(tmp_path / "out.png").mode == "RGBA"
    r = _cli("cut", str(src), "-o", str(tmp_path / "out.webp"))
    assert r.returncode == 0 and Image.open(tmp_path / "out.webp").format == "WEBP", r.stderr
    r = _cli("cut", str(src), "-o", str(tmp_path / "out.png"))  # run again: kept unless --overwrite
    assert _summary(r.stderr) == (0, 0, 1), r.stderr
    _headshot_file(tmp_path / "b.jpg", seed=1)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _cli("cut", str(src), str(tmp_path / "b.jpg"), "-o", str(tmp_path / "two.png"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and f"{tmp_path / 'two.png'}:" in lines[0], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # a folder that really is named like an image is still a folder
    (tmp_path / "odd.png").mkdir()
    assert _cli("cut", str(src), "-o", str(tmp_path / "odd.png")).returncode == 0
    assert (tmp_path / "odd.png" / "in.png").is_file()


def test_dash_reads_standard_input_and_writes_standard_output(tmp_path):
    data = _headshot_file(tmp_path / "a.jpg").read_bytes()
    r = _run("cut", "-", "-o", "-", stdin=data, cwd=tmp_path)  # cat a.jpg | knockout cut - -o - > a.png
    assert r.returncode == 0, r.stderr
    out = Image.open(io.BytesIO(r.stdout))
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (54, 72)
    assert b"1 cut out" in r.stderr and list(tmp_path.iterdir()) == [tmp_path / "a.jpg"]
    r = _run("cut", "-", "--format", "webp", stdin=data, cwd=tmp_path)
    assert r.returncode == 0 and Image.open(io.BytesIO(r.stdout)).format == "WEBP"
    r = _run("cut", "-", str(tmp_path / "named.png"), stdin=data)
    assert r.returncode == 0 and Image.open(tmp_path / "named.png").mode == "RGBA"
    r = _run("cut", str(tmp_path / "a.jpg"), "-", "--output", "mask")
    assert r.returncode == 0 and Image.open(io.BytesIO(r.stdout)).mode == "L"
    r = _run("cut", "-", "-o", "-", stdin=b"not an image")
    assert r.returncode == 1 and b"knockout: error: -: not an image" in r.stderr and r.stdout == b""
    r = _run("cut", str(tmp_path / "a.jpg"), str(tmp_path / "a.jpg"), "-o", "-")
    assert r.returncode == 2 and b"give a single input" in r.stderr


def test_recursive_mirrors_sub_folders(tmp_path):
    shoot = tmp_path / "shoot"
    _headshot_file(shoot / "monday" / "headshot.jpg")
    _headshot_file(shoot / "tuesday" / "headshot.jpg", seed=1)
    _headshot_file(shoot / "tuesday" / "late" / "headshot.jpg", seed=2)
    _headshot_file(shoot / "top.jpg", seed=3)
    r = _cli("cut", "-r", str(shoot), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert _summary(r.stderr) == (4, 0, 0)
    made = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert made == ["monday/headshot.png", "top.png", "tuesday/headshot.png", "tuesday/late/headshot.png"]
    # a recursive glob mirrors what lies below its fixed part
    r = _cli("cut", str(shoot / "**" / "headshot.jpg"), "-o", str(tmp_path / "g"))
    assert r.returncode == 0, r.stderr
    made = sorted(p.relative_to(tmp_path / "g").as_posix() for p in (tmp_path / "g").rglob("*.png"))
    assert made == ["monday/headshot.png", "tuesday/headshot.png", "tuesday/late/headshot.png"]


def test_config_job_gives_the_settings(tmp_path):
    src = _headshot_file(tmp_path / "a.jpg")
    (tmp_path / "studio.yaml").write_text(
        "settings: {feather: 0}\n"
        "jobs:\n"
        "  - {name: masks, inbox: in1, outbox: out1, settings: {output: mask}}\n"
        "  - {name: ids, inbox: in2, outbox: out2, settings: {output: solid, format: jpeg, background: red}}\n"
    )
    cfg = str(tmp_path / "studio.yaml")
    r = _cli("cut", str(src), "-o", str(tmp_path / "m"), "-c", cfg, "--job", "masks")
    assert r.returncode == 0, r.stderr
    mask = np.asarray(Image.open(tmp_path / "m" / "a.png"))
    assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}  # output: mask, feather: 0 from the file
    r = _cli("cut", str(src), "-o", str(tmp_path / "i"), "-c", cfg, "--job", "ids")
    assert r.returncode == 0, r.stderr
    solid = np.asarray(Image.open(tmp_path / "i" / "a.jpg"))
    assert solid.shape == (72, 54, 3) and solid[1, 1, 0] > 240 and solid[1, 1, 1] < 15  # the backdrop: red
    # an option on the command line wins over the job's
    r = _cli("cut", str(src), "-o", str(tmp_path / "w"), "-c", cfg, "--job", "ids", "--background", "#00f")
    assert r.returncode == 0 and np.asarray(Image.open(tmp_path / "w" / "a.jpg"))[1, 1, 2] > 240
    r = _cli("cut", str(src), "-c", cfg)
    assert r.returncode == 2 and "has jobs masks, ids; choose one with --job NAME" in r.stderr
    r = _cli("cut", str(src), "-c", cfg, "--job", "mask")
    assert r.returncode == 2 and "no job named 'mask' (did you mean 'masks'?)" in r.stderr
    (tmp_path / "bad.yaml").write_text("jobs: [{inbox: in, outbox: out, settings: {feather: lots}}]\n")
    r = _cli("cut", str(src), "-c", str(tmp_path / "bad.yaml"))
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "feather" in r.stderr and "Traceback" not in r.stderr


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    for i in range(3):
        _headshot_file(tmp_path / f"p{i}.png", seed=i)
    r = _run("cut", str(tmp_path), "-o", str(tmp_path / "out"), env={"KNOCKOUT_PROGRESS_EVERY": "0"})
    err = r.stderr.decode()
    assert r.returncode == 0, err
    lines = [x for x in err.splitlines() if " done, " in x]
    assert [x.split(" done")[0] for x in lines] == ["knockout: 1/3", "knockout: 2/3"]
    assert all(re.search(r"[\d.]+ images/s, about \d+ s left$", x) for x in lines)
    assert "\r" not in err and "it/s" not in err  # no terminal bar in a log
    r = _run("cut", str(tmp_path), "-o", str(tmp_path / "q"), "-q", env={"KNOCKOUT_PROGRESS_EVERY": "0"})
    assert r.returncode == 0 and r.stderr == b""


def test_multi_frame_input_says_the_first_frame_is_used(tmp_path):
    img, _ = synthetic_headshot(72, 54)
    frames = [Image.fromarray(img), Image.fromarray(255 - img), Image.fromarray(img[::-1].copy())]
    src = tmp_path / "wave.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100, loop=0)
    r = _cli("cut", str(src))
    assert r.returncode == 0, r.stderr
    assert f"knockout: warning: {src}: has 3 frames or pages; only the first is cut out" in r.stderr
    assert Image.open(tmp_path / "wave-cutout.png").size == (54, 72)
    one = _headshot_file(tmp_path / "still.gif")
    assert "warning" not in _cli("cut", str(one)).stderr


def test_files_pillow_reads_are_found_in_folders_and_globs(tmp_path):
    from PIL import features

    shoot = tmp_path / "shoot"
    _headshot_file(shoot / "a.jfif", "JPEG")
    _headshot_file(shoot / "b.jp2", "JPEG2000", seed=1)
    names = ["a.png", "b.png"]
    if features.check("avif"):
        _headshot_file(shoot / "c.avif", "AVIF", seed=2)
        names.append("c.png")
    r = _cli("cut", str(shoot), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names
    r = _cli("cut", str(shoot / "*.jfif"), "-o", str(tmp_path / "g"))
    assert r.returncode == 0 and [p.name for p in (tmp_path / "g").iterdir()] == ["a.png"]


def test_pool_workers_import_the_core_without_scipys_unused_imports():
    # the fork server preloads the core with knockout._lean_imports, as the command line imports it
    from concurrent.futures import ProcessPoolExecutor

    from knockout.commands.cut import _pool_context

    with ProcessPoolExecutor(1, mp_context=_pool_context()) as pool:
        loaded = set(pool.submit(eval, "list(__import__('sys').modules)").result())
        parsed = pool.submit(eval, "'Array API Standard Support' in __import__('scipy.ndimage').ndimage.label.__doc__")
        assert parsed.result() is False
    assert {"knockout.process", "scipy.ndimage"} <= loaded
    assert not {"numpy.f2py", "numpy.testing", "unittest"} & loaded


_BLAS_PROBE = """
import os, sys
{before}
from knockout.commands import cut
cut._one_blas_thread()
print(os.environ.get("OPENBLAS_NUM_THREADS"))
"""


@pytest.mark.parametrize(
    ("before", "env", "expected"),
    [
        ("", {}, "1"),  # a knockout cut process: set before numpy loads
        ("", {"OMP_NUM_THREADS": "3"}, "None"),  # the user's choice is kept
        ("", {"OPENBLAS_NUM_THREADS": "2"}, "2"),
        ("import numpy", {}, "None"),  # numpy already loaded (a program calling main): left alone
    ],
)
def test_a_cut_process_starts_openblas_with_one_thread_unless_told(before, env, expected):
    import os

    from knockout.commands.cut import _BLAS_THREADS

    clean = {k: v for k, v in os.environ.items() if k not in _BLAS_THREADS}
    probe = [sys.executable, "-c", _BLAS_PROBE.format(before=before)]
    r = subprocess.run(probe, env={**clean, **env}, capture_output=True, text=True, check=False)
    assert r.stdout.strip() == expected, r.stderr


def test_ctrl_c_still_reports_the_files_the_workers_finished(tmp_path, monkeypatch):
    """On Ctrl-C with -j 2, a file a worker had finished (its output written) could miss its --report row."""
    import queue

    from knockout.commands import cut

    done: queue.SimpleQueue = queue.SimpleQueue()
    finished = (tmp_path / "w.jpg", tmp_path / "w.png", None, None)  # a worker's result, not yet taken
    done.put(finished)
    done.put((tmp_path / "x.jpg", tmp_path / "x.png", None, "worker process failed: KeyboardInterrupt"))

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cut, "_work", interrupted)
    jobs = [(tmp_path / "here.jpg", tmp_path / "here.png")]
    got = []
    with pytest.raises(KeyboardInterrupt):
        for res in cut._cut_here(lambda: jobs.pop() if jobs else None, done, 1, None, debug=False):
            got.append(res)
    assert got == [finished]  # the interrupted ones are not reported as done or as failed


def test_a_fifo_where_the_report_or_the_page_goes_is_never_waited_on(tmp_path):
    """Checking whether an existing --report FILE (or report -o PAGE) is ours opened it: a FIFO hung the run."""
    a = _headshot_file(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "r.csv")
    os.mkfifo(tmp_path / "page.html")
    exe = Path(sys.executable).with_name("knockout")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "knockout.cli"]
    for args, says in (
        (["cut", str(a), "-o", str(tmp_path / "o"), "--report", str(tmp_path / "r.csv")], "not a knockout report"),
        (["report", str(tmp_path / "r.csv"), "-o", str(tmp_path / "page.html")], "not a knockout review page"),
    ):
        r = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
