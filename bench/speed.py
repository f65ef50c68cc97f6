"""Speed and memory of ``knockout cut`` against the source article's recipe, side by side in one run.

By default, every figure of issue 13's targets as whole processes (imports included), the commands
alternated (the order reversed every other round), medians of ``--rounds`` rounds of wall time, CPU
time and peak RSS, each measured by a small probe process: ``knockout --help`` and ``status`` against
``python -c pass``; ``knockout cut big.jpg`` (12 MP) against the article's recipe as a script and a
bare process that decodes the JPEG with Pillow, converts it to RGBA and writes it with
``knockout._png``; ``knockout cut DIR -j 1`` and ``-j 2`` on ``--batch`` 600x800 portraits against
the recipe looping over the same files in one process. ``--wired`` adds knockout runs with
``knockout._kmeans.KMeans`` standing in for scikit-learn's (scikit-learn never imported).

With ``--in-process``, also issue 2's report, on a 12-megapixel photo:

(a) end to end, file to file: knockout (decode, segment, matte, compose, encode, atomic write) vs the
    article's recipe (Pillow ``getdata`` -> scikit-learn ``KMeans()`` with its defaults, fitted and
    predicted on every pixel -> alpha 0/255 -> PNG); target >= 20x;
(b) the kmeans segmentation alone, ``segment(img, settings=Settings(method="kmeans"))``, vs the recipe's
    ``KMeans().fit`` + ``predict`` on the same pixels, median of ``--repeat`` runs against the median of
    ``--recipe-fits`` runs (``KMeans()`` has no seed: its iterations vary); target >= 50x;
(c) the share of encoding in knockout's end to end, at each ``png_compression`` level (1-3: the
    fast writer ``knockout._png``), Pillow at the default level (the encoder used before), and
    lossless WebP;
(d) peak memory of ``knockout cut`` on the 12 MP photo, in a fresh process (``ru_maxrss``), with a
    ``tracemalloc`` breakdown by stage; target <= 400 MB;
(e) images per second on a batch of 600x800 JPEGs through ``knockout cut`` (-j 1 and -j 2).

The photo is a portrait from ../shared/data/portraits (the first plain-backdrop one) upscaled to
3000x4000 with light sensor-like noise, or a synthetic headshot when that folder is absent. Every
derived file lives in a temporary folder and is deleted at the end: never commit them.

knockout's times are the best of ``--repeat`` runs after a warm-up ((b): their median); the recipe
runs end to end once, and its fit + predict ``--recipe-fits`` times in all (it takes minutes).
Machines here are shared and noisy: compare ratios from the same run, not absolute times.

Usage: python bench/speed.py [--rounds 3] [--wired] [--batch 24] [--no-recipe] [--in-process [--repeat 3]]
Prints a markdown report; copy it into bench/RESULTS.md with the machine's load.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
# ../shared beside the checkout (CI, /work/main), or beside the worktrees' folder (/work/wt/NAME)
_CANDIDATES = [ROOT.parent / "shared" / "data" / "portraits", ROOT.parent.parent / "shared" / "data" / "portraits"]
PORTRAITS = Path(os.environ.get("KNOCKOUT_PORTRAITS", next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])))

from conftest import synthetic_headshot  # noqa: E402

from knockout.compose import compose  # noqa: E402
from knockout.cutout import cut_out  # noqa: E402
from knockout.fsutil import atomic_write  # noqa: E402
from knockout.imageio import decode, encode  # noqa: E402
from knockout.matte import matte  # noqa: E402
from knockout.process import process_file  # noqa: E402
from knockout.segment import segment  # noqa: E402
from knockout.settings import Settings  # noqa: E402


# -- inputs ---------------------------------------------------------------------------------------
def _portrait_names(kinds: tuple[str, ...]) -> list[str]:
    manifest = PORTRAITS / "manifest.csv"
    if not manifest.exists():
        return []
    with manifest.open(newline="") as fh:
        return [row["name"] for row in csv.DictReader(fh) if row["background_kind"] in kinds]


def make_photo(folder: Path, megapixels: float) -> tuple[Path, str]:
    """A JPEG of about ``megapixels`` (3:4 portrait) and a description of where it came from."""
    h = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    w = round(h * 3 / 4)
    names = _portrait_names(("plain",))
    rng = np.random.default_rng(0)
    if names:
        src = PORTRAITS / "images" / f"{names[0]}.jpg"
        im = Image.open(src).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
        a = np.asarray(im).astype(np.int16)
        a += rng.normal(0, 1.5, a.shape).round().astype(np.int16)  # grain, as a real 12 MP photo has
        what = f"{names[0]} from ../shared/data/portraits upscaled to {w}x{h} (+ grain)"
        img = np.clip(a, 0, 255).astype(np.uint8)
    else:
        img, _ = synthetic_headshot(h, w, noise=2.0)
        what = f"synthetic headshot {w}x{h} (../shared/data/portraits not found)"
    path = folder / "photo.jpg"
    Image.fromarray(img).save(path, quality=92)
    return path, what


def make_batch(folder: Path, n: int) -> tuple[list[Path], str]:
    """``n`` 600x800 JPEGs: portraits when present (copied to a temp folder only), else synthetic."""
    folder.mkdir()
    names = _portrait_names(("plain", "studio", "gradient"))[:n]
    paths = []
    if len(names) == n:
        for name in names:
            dst = folder / f"{name}.jpg"
            shutil.copyfile(PORTRAITS / "images" / f"{name}.jpg", dst)
            paths.append(dst)
        return paths, f"{n} portraits (plain, studio, gradient) from ../shared/data/portraits, 600x800"
    for i in range(n):
        img, _ = synthetic_headshot(800, 600, seed=i)
        dst = folder / f"synthetic_{i:03d}.jpg"
        Image.fromarray(img).save(dst, quality=90)
        paths.append(dst)
    return paths, f"{n} synthetic 600x800 headshots"


# -- the article's recipe, written out ---------------------------------------------------------------
def recipe(src: Path, dst: Path) -> dict[str, float]:
    """The source article's KMeans recipe end to end; returns the time of each step in seconds."""
    from sklearn.cluster import KMeans

    t = {}
    t0 = time.perf_counter()
    img = Image.open(src).convert("RGB")
    # the article's getdata: a list of (r, g, b) tuples (renamed get_flattened_data in Pillow 13)
    flat = img.get_flattened_data() if hasattr(img, "get_flattened_data") else img.getdata()
    pixels = np.array(list(flat))
    t1 = time.perf_counter()
    km = KMeans().fit(pixels)  # scikit-learn's defaults: 8 clusters
    t2 = time.perf_counter()
    labels = km.predict(pixels)
    t3 = time.perf_counter()
    alpha = np.where(labels == labels[0], 0, 255).astype(np.uint8).reshape(img.height, img.width)
    out = img.convert("RGBA")
    out.putalpha(Image.fromarray(alpha))
    out.save(dst, "PNG")  # Pillow's default PNG settings
    t4 = time.perf_counter()
    t.update(read=t1 - t0, fit=t2 - t1, predict=t3 - t2, write=t4 - t3, total=t4 - t0, iterations=km.n_iter_)
    return t


def recipe_fits(src: Path, runs: int) -> list[tuple[float, int]]:
    """The recipe's ``KMeans().fit`` + ``predict`` again, ``runs`` times: (seconds, iterations) each.

    ``KMeans()`` has no fixed seed, so its iteration count (and time) changes from run to run;
    one run is one draw, so (b) compares medians.
    """
    from sklearn.cluster import KMeans

    img = Image.open(src).convert("RGB")
    pixels = np.asarray(img).reshape(-1, 3).astype(np.int64)  # what np.array(list(getdata)) gives
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        km = KMeans().fit(pixels)
        km.predict(pixels)
        out.append((time.perf_counter() - t0, km.n_iter_))
    return out


# -- knockout --------------------------------------------------------------------------------------
def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def stages(data: bytes, settings: Settings) -> tuple[dict[str, float], np.ndarray, bytes | None]:
    t = {}
    t0 = time.perf_counter()
    pic = decode(data, settings=settings)
    t1 = time.perf_counter()
    seg = segment(pic.rgb, settings=settings)
    t2 = time.perf_counter()
    alpha, colors = matte(pic.rgb, seg, settings=settings)
    t3 = time.perf_counter()
    out = compose(colors, alpha, settings=settings, source_alpha=pic.alpha)
    t4 = time.perf_counter()
    encode(out, settings=settings, icc_profile=pic.icc_profile)
    t5 = time.perf_counter()
    t.update(decode=t1 - t0, segment=t2 - t1, matte=t3 - t2, compose=t4 - t3, encode=t5 - t4, total=t5 - t0)
    return t, out, pic.icc_profile


def knockout_command() -> list[str]:
    exe = Path(sys.executable).with_name("knockout")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "knockout.cli"]


# The probe is a child subreaper (Linux): a pool's fork server, left behind by its parent, is reparented
# to it and waited for here, so the CPU time of `-j 2`'s workers (the fork server's children) counts too.
_MEMORY_PROBE = r"""
import ctypes, json, os, resource, subprocess, sys, time
try:
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except (OSError, AttributeError):
    pass
t0 = time.perf_counter()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - t0
end = time.monotonic() + 30
while time.monotonic() < end:  # descendants that outlived the command (a fork server)
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            time.sleep(0.01)
    except ChildProcessError:
        break
use = resource.getrusage(resource.RUSAGE_CHILDREN)
peak, cpu = use.ru_maxrss / 1024, use.ru_utime + use.ru_stime
print(json.dumps({"rc": r.returncode, "peak_mb": peak, "seconds": seconds, "cpu": cpu, "stderr": r.stderr[-500:]}))
"""

_IMPORTS = "import knockout.cli, knockout.process, knockout.commands.cut, sklearn.cluster, scipy.ndimage, tqdm"

_TRACEMALLOC_PROBE = r"""
import json, sys, tracemalloc
from pathlib import Path
from knockout.imageio import decode, encode
from knockout.segment import segment
from knockout.matte import matte
from knockout.compose import compose
from knockout.settings import Settings
s = Settings()
out = {}
tracemalloc.start()
data = Path(sys.argv[1]).read_bytes()
def mark(name):
    out[name] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.reset_peak()
mark("read")
pic = decode(data, settings=s); mark("decode")
seg = segment(pic.rgb, settings=s); mark("segment")
alpha, colors = matte(pic.rgb, seg, settings=s); mark("matte")
px = compose(colors, alpha, settings=s, source_alpha=pic.alpha); mark("compose")
b = encode(px, settings=s, icc_profile=pic.icc_profile); mark("encode")
print(json.dumps(out))
"""


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def memory(photo: Path, outdir: Path) -> dict[str, object]:
    cmd = [*knockout_command(), "cut", str(photo), "-o", str(outdir), "--overwrite"]
    # measured from a small wrapper process: Linux keeps ru_maxrss across fork + exec, so a child of
    # this (large) process would report this process's peak
    run = json.loads(_run([sys.executable, "-c", _MEMORY_PROBE, *cmd]).stdout)
    if run["rc"] != 0:
        raise RuntimeError(f"knockout cut failed: {run['stderr']}")
    base = json.loads(_run([sys.executable, "-c", _MEMORY_PROBE, sys.executable, "-c", _IMPORTS]).stdout)
    trace = json.loads(_run([sys.executable, "-c", _TRACEMALLOC_PROBE, str(photo)]).stdout)
    return {"peak_mb": run["peak_mb"], "imports_mb": base["peak_mb"], "tracemalloc_mb": trace}


def batch_rate(paths: list[Path], outdir: Path, jobs: int) -> float:
    folder = paths[0].parent
    cmd = [*knockout_command(), "cut", str(folder), "-o", str(outdir), "--overwrite", "-q", "-j", str(jobs)]
    t0 = time.perf_counter()
    r = _run(cmd)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"knockout cut failed: {r.stderr[-500:]}")
    return len(paths) / dt


# -- whole processes (issue 13) ---------------------------------------------------------------------
# The article's recipe as its reader runs it: a script that loops over the files in one process.
_RECIPE_SCRIPT = r"""
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from sklearn.cluster import KMeans
out = Path(sys.argv[-1])
for src in sys.argv[1:-1]:
    img = Image.open(src).convert("RGB")
    flat = img.get_flattened_data() if hasattr(img, "get_flattened_data") else img.getdata()
    pixels = np.array(list(flat))
    labels = KMeans().fit(pixels).predict(pixels)
    alpha = np.where(labels == labels[0], 0, 255).astype(np.uint8).reshape(img.height, img.width)
    rgba = img.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(out / (Path(src).stem + ".png"), "PNG")
"""

# The floor for one big file: decode the JPEG with Pillow, RGBA, the project's PNG writer.
_BARE_SCRIPT = r"""
import sys
import numpy as np
from PIL import Image
from knockout._png import encode_png
with open(sys.argv[2], "wb") as f:
    f.write(encode_png(np.asarray(Image.open(sys.argv[1]).convert("RGBA")), level=1))
"""

# knockout's command line as it will run once segment.py clusters with knockout._kmeans: a stand-in
# sklearn.cluster whose KMeans is knockout._kmeans.KMeans (scikit-learn itself is never imported).
_WIRED_SCRIPT = r"""
import sys, types
import knockout._kmeans
fake = types.ModuleType("sklearn")
fake.cluster = types.ModuleType("sklearn.cluster")
fake.cluster.KMeans = knockout._kmeans.KMeans
sys.modules["sklearn"], sys.modules["sklearn.cluster"] = fake, fake.cluster
from knockout.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of ``cmd`` as a fresh process, measured by a small
    probe process (Linux keeps ru_maxrss across fork + exec, so this large process cannot start it)."""
    r = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, *cmd], capture_output=True, text=True, cwd=cwd, check=False
    )
    res = json.loads(r.stdout)
    if res["rc"] not in (0, 1) or "Traceback" in res["stderr"]:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed: {res['stderr']}")
    return res["seconds"], res["cpu"], res["peak_mb"]


def whole_process_report(args: argparse.Namespace) -> int:
    """Every figure of issue 13's targets as whole processes, commands alternated, medians."""
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    k = knockout_command()
    py = [sys.executable]
    wired = [*py, "-c", _WIRED_SCRIPT]
    with tempfile.TemporaryDirectory(prefix="knockout-speed-") as tmp_name:
        tmp = Path(tmp_name)
        photo, what = make_photo(tmp, args.megapixels)
        paths, batch_what = make_batch(tmp / "batch", args.batch)
        folder = paths[0].parent
        (tmp / "status").mkdir()
        for d in ("r1", "rb", "big", "bare", "o1", "o2", "w1", "w2", "wb"):
            (tmp / d).mkdir()
        cmds: dict[str, tuple[list[str], Path | None]] = {
            "python -c pass": ([*py, "-c", "pass"], None),
            "knockout --help": ([*k, "--help"], None),
            "knockout status": ([*k, "status"], tmp / "status"),
            "knockout cut big.jpg": ([*k, "cut", str(photo), "-o", str(tmp / "big"), "--overwrite", "-q"], None),
            "bare decode + RGBA + PNG writer": (
                [*py, "-c", _BARE_SCRIPT, str(photo), str(tmp / "bare" / "b.png")],
                None,
            ),
            "knockout cut DIR -j 1": ([*k, "cut", str(folder), "-o", str(tmp / "o1"), "--overwrite", "-q"], None),
            "knockout cut DIR -j 2": (
                [*k, "cut", str(folder), "-o", str(tmp / "o2"), "--overwrite", "-q", "-j", "2"],
                None,
            ),
        }
        if args.wired:
            cmds |= {
                "wired: knockout cut big.jpg": (
                    [*wired, "cut", str(photo), "-o", str(tmp / "wb"), "--overwrite", "-q"],
                    None,
                ),
                "wired: knockout cut DIR -j 1": (
                    [*wired, "cut", str(folder), "-o", str(tmp / "w1"), "--overwrite", "-q"],
                    None,
                ),
                "wired: knockout cut DIR -j 2": (
                    [*wired, "cut", str(folder), "-o", str(tmp / "w2"), "--overwrite", "-q", "-j", "2"],
                    None,
                ),
            }
        if not args.no_recipe:
            cmds["recipe big.jpg"] = ([*py, "-c", _RECIPE_SCRIPT, str(photo), str(tmp / "rb")], None)
            cmds["recipe DIR"] = ([*py, "-c", _RECIPE_SCRIPT, *map(str, paths), str(tmp / "r1")], None)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        cpus: dict[str, list[float]] = {name: [] for name in cmds}
        peaks: dict[str, list[float]] = {name: [] for name in cmds}
        loads = [os.getloadavg()[0]]
        for r in range(args.rounds):
            order = list(cmds) if r % 2 == 0 else list(cmds)[::-1]
            for name in order:
                if name.startswith("recipe") and r >= args.recipe_rounds:
                    continue
                reps = (
                    5
                    if name in ("python -c pass", "knockout --help", "knockout status")
                    or "wired: knockout --" in name
                    or "wired: knockout status" in name
                    else 1
                )
                for _ in range(reps):
                    dt, cpu, peak = _timed(*cmds[name])
                    times[name].append(dt)
                    cpus[name].append(cpu)
                    peaks[name].append(peak)
            loads.append(os.getloadavg()[0])
            print(f"round {r + 1}/{args.rounds} done, load {loads[-1]:.1f}", file=sys.stderr)
    med = {n: float(np.median(v)) for n, v in times.items() if v}
    peak = {n: float(np.median(v)) for n, v in peaks.items() if v}
    cpu = {n: float(np.median(v)) for n, v in cpus.items() if v}
    say(f"Photo: {what}. Batch: {batch_what}.")
    say(
        f"Machine: {usable_cpus_here()} cores, load average (1 min) {', '.join(f'{x:.1f}' for x in loads)} "
        f"(start, after each of {args.rounds} rounds); commands alternated (reversed every other round), "
        f"medians of {args.rounds} rounds (5 runs a round for the start-up commands; the recipe "
        f"{min(args.recipe_rounds, args.rounds)} rounds)."
    )
    say()
    say("| target | measured | target | holds |")
    say("|---|---:|---:|:---:|")

    def row(label: str, value: float, fmt: str, target: str, ok: bool) -> None:
        say(f"| {label} | {format(value, fmt)} | {target} | {'yes' if ok else 'NO'} |")

    for prefix in ("", "wired: ") if args.wired else ("",):
        tag = " (wired)" if prefix else ""
        j1, j2, big = (
            med.get(f"{prefix}knockout cut DIR -j 1"),
            med.get(f"{prefix}knockout cut DIR -j 2"),
            med.get(f"{prefix}knockout cut big.jpg"),
        )
        if "recipe DIR" in med:
            row(
                f"{args.batch} files: recipe / `cut -j 1`{tag}",
                med["recipe DIR"] / j1,
                ".1f",
                ">= 8x",
                med["recipe DIR"] / j1 >= 8,
            )
        row(f"{args.batch} files: `-j 1` / `-j 2`{tag}", j1 / j2, ".2f", ">= 1.7x", j1 / j2 >= 1.7)
        if "recipe big.jpg" in med:
            row(
                f"12 MP: recipe / `cut big.jpg`{tag}",
                med["recipe big.jpg"] / big,
                ".1f",
                ">= 25x",
                med["recipe big.jpg"] / big >= 25,
            )
        bare = med["bare decode + RGBA + PNG writer"]
        row(f"12 MP: `cut big.jpg` / bare process{tag}", big / bare, ".2f", "<= 2.0x", big / bare <= 2.0)
        if not prefix:  # the stand-in imports numpy itself; wiring changes neither command
            h, st = med["knockout --help"], med["knockout status"]
            row("`knockout --help`", h, ".3f", "<= 0.2 s", h <= 0.2)
            row("`knockout status`", st, ".3f", "<= 0.25 s", st <= 0.25)
        pk = peak[f"{prefix}knockout cut big.jpg"]
        row(f"peak RSS of `cut big.jpg`{tag}", pk, ".0f", "<= 280 MB", pk <= 280)
    say()
    say("| command (whole process) | wall, median | CPU (user + sys), median | runs | peak RSS, median |")
    say("|---|---:|---:|---:|---:|")
    for n, v in times.items():
        if v:
            say(f"| {n} | {med[n]:.3f} s | {cpu[n]:.3f} s | {len(v)} | {peak[n]:.0f} MB |")
    say()
    say(
        f"`python -c pass` takes {med['python -c pass']:.3f} s here (start-up figures include it). "
        "`-j 2`'s CPU time includes its pool's fork server and workers; its peak RSS is the largest "
        "of its processes'. "
        "wired: knockout with knockout._kmeans.KMeans standing in for scikit-learn's (what segment.py "
        "will run once it uses knockout._kmeans; scikit-learn never imported)."
    )
    return 0


def usable_cpus_here() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megapixels", type=float, default=12.0)
    ap.add_argument("--batch", type=int, default=24, help="number of 600x800 JPEGs")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the whole-process commands (medians)")
    ap.add_argument("--recipe-rounds", type=int, default=2, help="rounds that include the article's recipe")
    ap.add_argument("--wired", action="store_true", help="also run knockout with knockout._kmeans swapped in")
    ap.add_argument("--in-process", action="store_true", help="also the in-process report of issue 2, (a)-(e)")
    ap.add_argument("--repeat", type=int, default=3, help="in-process: runs of each knockout timing (best is kept)")
    ap.add_argument("--no-recipe", action="store_true", help="skip the article's recipe (it takes minutes)")
    ap.add_argument("--recipe-fits", type=int, default=3, help="in-process: runs of the recipe's fit+predict (median)")
    args = ap.parse_args()
    whole_process_report(args)
    if args.in_process:
        print()
        in_process_report(args)
    return 0


# -- report (issue 2: in process) ----------------------------------------------------------------------
def in_process_report(args: argparse.Namespace) -> None:
    """(a)-(e) above: knockout in process (best of ``--repeat``) against the recipe."""
    settings = Settings()
    kmeans = Settings(method="kmeans")
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory(prefix="knockout-speed-") as tmp_name:
        tmp = Path(tmp_name)
        photo, what = make_photo(tmp, args.megapixels)
        data = photo.read_bytes()
        img = decode(data, settings=settings).rgb
        h, w = img.shape[:2]
        load = os.getloadavg()
        say(f"Photo: {what}; {w * h / 1e6:.1f} MP, JPEG {len(data) / 1e6:.1f} MB.")
        say(f"Machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at start.")
        say()

        # warm-up: imports, first KMeans, first PNG
        cut_out(img[::8, ::8].copy(), settings=settings)

        # (b) segmentation alone: every run's time, compared by median
        seg_times = [best(lambda: segment(img, settings=kmeans), 1)[0] for _ in range(args.repeat)]
        t_seg = float(np.median(seg_times))
        # breakdown of knockout's end to end, in memory
        runs = [stages(data, settings) for _ in range(args.repeat)]
        t_stage = {k: min(r[0][k] for r in runs) for k in runs[0][0]}
        out, icc = runs[0][1], runs[0][2]
        # (a) knockout end to end, file to file
        dst = tmp / "photo-cutout.png"

        def e2e() -> None:
            atomic_write(dst, process_file(photo, settings=settings).data)

        t_e2e, _ = best(e2e, args.repeat)
        t0 = time.perf_counter()
        r = _run([*knockout_command(), "cut", str(photo), "-o", str(tmp / "cli"), "-q"])
        t_cli = time.perf_counter() - t0
        assert r.returncode == 0, r.stderr

        # (c) encoders on the same output array
        enc = {}
        for level in range(10):
            s = settings.replace(png_compression=level)
            reps = args.repeat if level <= 3 else 1
            t_enc, b = best(lambda s=s: encode(out, settings=s, icc_profile=icc), reps)
            enc[f"PNG level {level}"] = (t_enc, len(b))

        def pillow_png(level: int = settings.png_compression) -> bytes:
            buf = io.BytesIO()
            Image.fromarray(out).save(buf, "PNG", compress_level=level, icc_profile=icc)
            return buf.getvalue()

        t_enc, b = best(pillow_png, args.repeat)
        enc[f"PNG level {settings.png_compression} through Pillow (before the fast writer)"] = (t_enc, len(b))
        s = settings.replace(format="webp")
        t_enc, b = best(lambda s=s: encode(out, settings=s, icc_profile=icc), args.repeat)
        enc["WebP lossless"] = (t_enc, len(b))

        # (d) memory, (e) batch
        mem = memory(photo, tmp / "mem")
        paths, batch_what = make_batch(tmp / "batch", args.batch)
        rate1 = batch_rate(paths, tmp / "batch-out1", 1)
        rate2 = batch_rate(paths, tmp / "batch-out2", 2)
        one = [best(lambda p=p: process_file(p, settings=settings), 1)[0] for p in paths]

        # the recipe, once
        rec = None if args.no_recipe else recipe(photo, tmp / "recipe.png")
        fits = [] if args.no_recipe else [(rec["fit"] + rec["predict"], rec["iterations"])]
        fits += [] if args.no_recipe else recipe_fits(photo, args.recipe_fits - 1)

    say(
        f"(a), (b): knockout (best of {args.repeat}; (b) median) vs the article's recipe (end to end once; (b) median "
        f"of {args.recipe_fits} fit+predict runs), same photo, same run"
    )
    say()
    say("| | knockout | recipe | speed-up | target |")
    say("|---|---:|---:|---:|---:|")
    if rec:
        tot = rec["total"]
        say(f"| end to end, file to file | {t_e2e:.2f} s | {tot:.1f} s | {tot / t_e2e:.0f}x | >= 20x |")
        fp = float(np.median([f for f, _ in fits]))
        say(
            f"| kmeans segmentation vs KMeans fit+predict (medians) | {t_seg:.2f} s | {fp:.1f} s "
            f"| {fp / t_seg:.0f}x | >= 50x |"
        )
    else:
        say(f"| end to end, file to file | {t_e2e:.2f} s | (skipped) | | >= 20x |")
        say(f"| kmeans segmentation | {t_seg:.2f} s | (skipped) | | >= 50x |")
    say(f"| `knockout cut` command, fresh process (with imports) | {t_cli:.2f} s | | | |")
    say()
    if rec:
        say(
            f"Recipe steps: read + getdata {rec['read']:.1f} s, KMeans fit {rec['fit']:.1f} s "
            f"({rec['iterations']} iterations), predict {rec['predict']:.1f} s, alpha + PNG {rec['write']:.1f} s."
        )
    if rec:
        say(
            "(b) recipe's fit+predict, each run: "
            + ", ".join(f"{f:.1f} s ({n} iterations)" for f, n in fits)
            + "; knockout's kmeans segmentation, each run: "
            + ", ".join(f"{t:.3f} s" for t in seg_times)
            + "."
        )
    say(
        f"knockout steps (best of {args.repeat}, in memory): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in t_stage.items() if k != "total")
        + f"; total {t_stage['total']:.2f} s."
    )
    say()
    say("(c) encoding the 12 MP RGBA cut-out; share = encode / (decode + segment + matte + compose + encode)")
    say()
    say("| encoder | time | share of end to end | size |")
    say("|---|---:|---:|---:|")
    rest = t_stage["total"] - t_stage["encode"]
    for name, (t_enc, size) in enc.items():
        default = " (default)" if name == f"PNG level {settings.png_compression}" else ""
        say(f"| {name}{default} | {t_enc:.2f} s | {t_enc / (rest + t_enc):.0%} | {size / 1e6:.1f} MB |")
    say()
    say("(d) peak memory of `knockout cut` on the 12 MP photo in a fresh process (target <= 400 MB)")
    say()
    say(f"- ru_maxrss: {mem['peak_mb']:.0f} MB (of which imports alone: {mem['imports_mb']:.0f} MB)")
    say(
        "- tracemalloc peak by stage (numpy and Python allocations, MB): "
        + ", ".join(f"{k} {v:.0f}" for k, v in mem["tracemalloc_mb"].items())
    )
    say()
    say(f"(e) batch: {batch_what}")
    say()
    say(f"- `knockout cut FOLDER -j 1`: {rate1:.2f} images/s (fresh process, imports included)")
    say(f"- `knockout cut FOLDER -j 2`: {rate2:.2f} images/s")
    say(f"- in process, per image: median {np.median(one) * 1000:.0f} ms, max {max(one) * 1000:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
