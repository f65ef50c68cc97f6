"""``knockout cut PATH...``: cut out files, folders and globs."""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..fsutil import atomic_write
from ..imageio import EXTENSIONS, ImageError, output_suffix
from ..process import Processed, process_file
from ..settings import Settings

__all__ = ["register", "expand_inputs", "output_path"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    from ..cli import add_settings_arguments, common_options

    p = sub.add_parser(
        "cut",
        parents=[common_options()],
        help="cut out images (files, folders, globs)",
        description="Remove the backdrop of each image and write a cut-out. Without -o the output "
        "goes beside the input as NAME-cutout.png; with -o it goes into OUTDIR as NAME.png.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  knockout cut a.jpg b.jpg\n  knockout cut shoot/ -o out/ --feather 0\n"
        "  knockout cut 'shoot/*.tif' -o out/ --output mask",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    p.add_argument("-o", "--outdir", type=Path, help="output folder (created if missing)")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folders")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never the input)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="parallel processes (default 1; 0 = all cores)")
    p.add_argument("--dask", metavar="ADDRESS", help="run on a Dask scheduler, e.g. tcp://host:8786")
    add_settings_arguments(p)
    p.set_defaults(func=run)


def expand_inputs(paths: Iterable[str], *, recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Files named by ``paths`` (files, folders, globs), and a list of problems found."""
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            found = sorted(
                x for x in it if x.is_file() and x.suffix.lower() in EXTENSIONS and not x.name.startswith(".")
            )
            if not found:
                problems.append(f"{raw}: folder holds no images ({', '.join(sorted(EXTENSIONS))})")
            files.extend(found)
        elif p.exists():
            files.append(p)
        elif glob.has_magic(raw):
            found = sorted(Path(x) for x in glob.glob(raw, recursive=True) if Path(x).is_file())
            if not found:
                problems.append(f"{raw}: no file matches this pattern")
            files.extend(found)
        else:
            problems.append(f"{raw}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def output_path(src: Path, settings: Settings, outdir: Path | None) -> Path:
    """Where the output of ``src`` goes: ``OUTDIR/NAME.ext`` or ``NAME-cutout.ext`` beside it."""
    ext = output_suffix(settings)
    tag = {"rgba": "cutout", "mask": "mask", "solid": "solid"}[settings.output]
    if outdir is None:
        return src.with_name(f"{src.stem}-{tag}{ext}")
    out = outdir / f"{src.stem}{ext}"
    if out.resolve() == src.resolve():
        out = outdir / f"{src.stem}-{tag}{ext}"
    return out


def _work(src: Path, dst: Path, settings: Settings) -> tuple[Path, Path, Processed | None, str | None]:
    try:
        res = process_file(src, settings=settings)
    except ImageError as exc:
        return src, dst, None, str(exc)
    except OSError as exc:
        return src, dst, None, f"cannot read: {exc.strerror or exc}"
    try:
        atomic_write(dst, res.data)
    except OSError as exc:
        return src, dst, None, f"cannot write {dst}: {exc.strerror or exc}"
    return src, dst, res, None


def _run_local(jobs: list[tuple[Path, Path]], settings: Settings, workers: int) -> Iterator[tuple]:
    if workers <= 1 or len(jobs) <= 1:
        for src, dst in jobs:
            yield _work(src, dst, settings)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_work, src, dst, settings) for src, dst in jobs]
        for fut in futures:
            yield fut.result()


def run(args: argparse.Namespace) -> int:
    from ..cli import settings_from_args

    settings = settings_from_args(args)
    files, problems = expand_inputs(args.paths, recursive=args.recursive)
    for msg in problems:
        print(f"knockout: error: {msg}", file=sys.stderr)
    if args.outdir is not None:
        try:
            args.outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"knockout: error: cannot create output folder {args.outdir}: {exc.strerror}", file=sys.stderr)
            return 2
    jobs: list[tuple[Path, Path]] = []
    skipped = 0
    failed = len(problems)
    claimed: dict[Path, Path] = {}
    for src in files:
        dst = output_path(src, settings, args.outdir)
        key = dst.resolve()
        if key in claimed:
            print(
                f"knockout: error: {src}: output {dst} would also be written by {claimed[key]}; "
                "rename one input or use separate -o folders",
                file=sys.stderr,
            )
            failed += 1
            continue
        claimed[key] = src
        if dst.exists() and not args.overwrite:
            log.info("%s: output %s exists, kept (use --overwrite to replace)", src, dst)
            skipped += 1
            continue
        jobs.append((src, dst))
    t0 = time.perf_counter()
    done = 0
    if args.dask:
        from ..distributed import run_batch

        results = run_batch(jobs, settings, address=args.dask)
    else:
        workers = (os.cpu_count() or 1) if args.jobs == 0 else args.jobs
        results = _run_local(jobs, settings, workers)
    results = _progress(results, total=len(jobs))
    for src, dst, res, err in results:
        if err is not None:
            failed += 1
            print(f"knockout: error: {src}: {err}", file=sys.stderr)
        else:
            done += 1
            log.info("%s -> %s (%s, %.0f ms)", src, dst, res.method, res.milliseconds)
    dt = time.perf_counter() - t0
    print(
        f"knockout: {done} cut out, {failed} failed, {skipped} skipped (output exists) in {dt:.1f} s", file=sys.stderr
    )
    return 1 if failed else 0


def _progress(it: Iterator, *, total: int) -> Iterator:
    if total <= 1:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, unit="img", disable=None, file=sys.stderr)
