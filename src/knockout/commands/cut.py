"""``knockout cut PATH...``: cut out files, folders and globs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import glob
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from .._formats import EXTENSIONS, output_suffix
from .._text import printable
from ..fsutil import atomic_write, make_folders
from ..settings import Settings, SettingsError

if TYPE_CHECKING:  # the image modules (numpy, Pillow, SciPy) are imported when a file is cut
    import multiprocessing.context  # (and multiprocessing, the report's writers when they are used)

    from ..process import Processed
    from ..report import BatchReport

__all__ = ["register", "expand_inputs", "output_path"]

log = logging.getLogger(__name__)

Result = tuple[Path, Path, "Processed | None", "str | None"]

#: ``-`` as an input or output: standard input / standard output
STDIO = Path("-")
_OUTPUT_SUFFIXES = {".png": "png", ".webp": "webp", ".jpg": "jpeg", ".jpeg": "jpeg"}

EPILOG = """\
Outputs: without -o, NAME-cutout.png beside each input (NAME-mask.png, NAME-solid.jpg for
--output mask / solid); with -o, OUTDIR/NAME.png, sub-folders of a folder (-r) or of a glob's
fixed part mirrored; -o OUT.png with one input names the output. Two paths IN OUT name the
output when OUT ends in .png, .webp, .jpg or is -, and is new or an earlier output of knockout
(else both are inputs); its extension gives the format unless --format. - reads standard input
or writes standard output (format from --format, PNG by default). An input is never overwritten, and an existing
output is kept unless --overwrite. Exit status: 0 all succeeded, 1 some inputs failed, 2 usage
error (unknown option, bad setting value).

examples:
  knockout cut portrait.jpg                        writes portrait-cutout.png beside it
  knockout cut portrait.jpg out.png                names the output
  cat a.jpg | knockout cut - -o - > a.png          standard input to standard output
  knockout cut -r shoot/ -o cutouts/               sub-folders mirrored in cutouts/
  knockout cut shoot/ -c config.yaml --job studio  a config.yaml job's settings
  knockout cut shoot/ -o cutouts/                  every image in a folder
  knockout cut 'shoot/**/*.jpg' -o cutouts/ -j 0   a recursive glob, on all cores
  knockout cut a.jpg --format webp                 lossless WebP instead of PNG
  knockout cut a.jpg --output mask                 the 8-bit mask alone
  knockout cut ids/ -o out/ --output solid --background '#ffffff' --format jpeg --crop
  knockout cut a.heic --preset classic-kmeans      the source article's recipe, exactly
  knockout cut shoot/ --dask tcp://scheduler:8786  on a Dask cluster
"""


def _jobs(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of processes; use 1, 2, ... or 0 for all cores")
    return n


def register(sub: argparse._SubParsersAction) -> None:
    from ..cli import add_settings_arguments, common_options

    p = sub.add_parser(
        "cut",
        parents=[common_options()],
        help="cut out images (files, folders, globs)",
        description="Remove the backdrop of each image and write a cut-out.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    p.add_argument(
        "-o",
        "--outdir",
        type=Path,
        help="output folder (created if missing), an output file name for one input (OUT.png), "
        "or - for standard output",
    )
    p.add_argument("-c", "--config", metavar="FILE", help="take the settings of a job of this config.yaml")
    p.add_argument("--job", metavar="NAME", help="which job of --config (needed when it has several)")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folders")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    p.add_argument("-j", "--jobs", type=_jobs, default=1, help="parallel processes (default 1; 0 = all cores)")
    p.add_argument("--dask", metavar="ADDRESS", help="run on a Dask scheduler, e.g. tcp://host:8786")
    p.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write one row per input (input, output, method, tolerance, confidence, review, reasons, ms): "
        "CSV for FILE.csv, JSON lines for FILE.jsonl; an existing FILE that is not a report only with --overwrite",
    )
    add_settings_arguments(p)
    p.set_defaults(func=run)


def _is_image_name(p: Path) -> bool:
    return p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")


def _not_a_file(p: Path) -> str:
    """Why ``p``, which is no regular file (nor a folder), cannot be read: the reason for its error line."""
    try:
        os.stat(p)
    except OSError as exc:
        if not os.path.islink(p):
            return "no such file or folder"
        if exc.errno == errno.ELOOP:
            return "a link that loops (too many levels of links)"
        if exc.errno == errno.ENOENT:
            return f"a link to nothing ({os.readlink(p)})"
        return f"a link that cannot be followed ({exc.strerror or exc})"
    return "not a regular file"


def _regular(named: list[Path], problems: list[str]) -> list[Path]:
    """The regular files among ``named`` (image names a folder or a glob gave); each other one (a link
    to nothing, a link that loops, a pipe) is added to ``problems`` with the reason."""
    files = [x for x in named if x.is_file()]
    problems.extend(f"{x}: {_not_a_file(x)}" for x in named if not x.is_file())
    return files


def expand_inputs(paths: Iterable[str], *, recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Files named by ``paths`` (files, folders, globs), and a list of problems found.

    A file named directly is taken whatever its extension; folders and globs give only
    files with an image extension (:data:`knockout.imageio.EXTENSIONS`), never hidden ones.
    Each file appears once, in the order given (folders and globs sorted).
    """
    found, problems = _expand(paths, recursive=recursive)
    return [f for f, _ in found], problems


def _expand(paths: Iterable[str], *, recursive: bool) -> tuple[list[tuple[Path, PurePath]], list[str]]:
    """As :func:`expand_inputs`, each file with the sub-folder it was found in (below a folder
    given, or below a glob's fixed leading part), which ``-o`` mirrors."""
    files: list[tuple[Path, PurePath]] = []
    problems: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            named = sorted(x for x in it if _is_image_name(x) and not x.is_dir())
            found = _regular(named, problems)
            if not named:
                problems.append(f"{raw}: folder holds no images ({' '.join(sorted(EXTENSIONS))})")
            files.extend((x, x.parent.relative_to(p)) for x in found)
        elif p.is_file():
            files.append((p, PurePath()))
        elif glob.has_magic(raw) and not os.path.lexists(p):
            found = sorted(Path(x) for x in glob.glob(raw, recursive=True) if not Path(x).is_dir())
            named = [x for x in found if _is_image_name(x)]
            images = _regular(named, problems)
            if not named:
                why = "no image file" if found else "no file"
                problems.append(f"{raw}: {why} matches this pattern")
            fixed = Path(*[part for part in _fixed_parts(raw)])
            files.extend((x, x.parent.relative_to(fixed) if x.is_relative_to(fixed) else PurePath()) for x in images)
        else:
            problems.append(f"{raw}: {_not_a_file(p)}")
    seen: set[Path] = set()
    unique = []
    for f, folder in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, folder))
    return unique, problems


def _fixed_parts(pattern: str) -> list[str]:
    """The leading parts of a glob pattern without wildcards (``shoot/2024`` of ``shoot/2024/**/*.jpg``)."""
    parts = []
    for part in PurePath(pattern).parts[:-1]:
        if glob.has_magic(part):
            break
        parts.append(part)
    return parts


def _is_own_output(path: Path) -> bool:
    from ..imageio import is_own_output  # Pillow: only when an existing file must be looked at

    return is_own_output(path)


def output_path(src: Path, settings: Settings, outdir: Path | None, *, folder: PurePath | None = None) -> Path:
    """Where the output of ``src`` goes: ``OUTDIR/FOLDER/NAME.ext``, or ``NAME-TAG.ext`` beside it.

    TAG is ``cutout``, ``mask`` or ``solid`` after ``settings.output``; the tagged name is
    also used in OUTDIR when the plain one would be ``src`` itself. ``folder`` is the
    sub-folder ``src`` was found in below a folder or a glob's fixed part (mirrored in OUTDIR).
    """
    ext = output_suffix(settings)
    tag = {"rgba": "cutout", "mask": "mask", "solid": "solid"}[settings.output]
    if outdir is None:
        return src.with_name(f"{src.stem}-{tag}{ext}")
    outdir = outdir / (folder or PurePath())
    out = outdir / f"{src.stem}{ext}"
    if out.resolve() == src.resolve():
        out = outdir / f"{src.stem}-{tag}{ext}"
    return out


def _work(src: Path, dst: Path, settings: Settings, *, debug: bool = False) -> Result:
    """Cut out ``src`` into ``dst``; never raises. Returns (src, dst, Processed or None, error or None).

    The returned :class:`Processed` has its ``data`` dropped (it is on disk), so results
    are cheap to send back from worker processes. With ``debug`` the error carries the
    traceback after its first line.
    """
    from ..imageio import ImageError

    try:
        data = _read(src)
        if "knockout.process" in sys.modules:
            from ..process import process_bytes

            res = process_bytes(data, settings=settings)
        else:
            res = _first_cut(data, settings)
    except ImageError as exc:
        return src, dst, None, _error(str(exc), debug)
    except OSError as exc:
        return src, dst, None, _error(f"cannot read: {exc.strerror or exc}", debug)
    except Exception as exc:  # a bug or an odd image must not stop the batch
        return src, dst, None, _error(f"cannot cut out: {type(exc).__name__}: {exc}", debug)
    try:
        if dst == STDIO:
            sys.stdout.buffer.write(res.data)
            sys.stdout.buffer.flush()
        else:
            atomic_write(dst, res.data, durable=False)  # the inputs are kept: a crash loses nothing
    except OSError as exc:
        return src, dst, None, _error(f"cannot write {dst}: {exc.strerror or exc}", debug)
    return src, dst, dataclasses.replace(res, data=b""), None


def _first_cut(data: bytes, settings: Settings) -> Processed:
    """The first file of a process, decoded on a thread while the core (SciPy) is imported: Pillow
    decodes without holding the GIL that the imports need (the whole decode, 0.1 s at 12 MP, is
    hidden in a one-off cut)."""
    from concurrent.futures import ThreadPoolExecutor

    from .._matte_size import reduction_for
    from ..imageio import decode

    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        # popped: the only reference is the cut's
        decoding = [pool.submit(decode, data, settings=settings, reduce=reduction_for(settings))]
        from ..matte import _sparse
        from ..process import process_decoded

        # and the matte's sparse solvers, imported while the image is segmented (whose labellings,
        # filters and resizes run without the GIL); the matte waits for that import if it is not done
        if not settings.hard_edged:
            pool.submit(_sparse)
        return process_decoded(lambda: decoding.pop().result(), settings=settings, started=t0)


def _read(src: Path) -> bytes:
    return sys.stdin.buffer.read() if src == STDIO else src.read_bytes()


def _error(message: str, debug: bool) -> str:
    line = " ".join(message.split())
    return f"{line}\n{traceback.format_exc().rstrip()}" if debug else line


def _run_local(
    jobs: list[tuple[Path, Path]], settings: Settings, workers: int, *, debug: bool = False
) -> Iterator[Result]:
    """Run ``jobs`` in ``workers`` processes, this one included; yields results as they finish.

    One file, or one worker, runs in this process (no pool). With more, this process cuts files
    too, beside ``workers - 1`` pool workers started once: it starts on the first file at once
    while the pool starts (the pool's fork server imports the core, its workers warm up), and a
    worker takes a file only once it is ready, one at a time, so no file waits behind a worker
    that has not started. Each process gets its share of the CPUs as its thread budget. A worker
    that dies fails the file it had; this process cuts the rest.
    """
    from .._memory import reuse_freed_memory

    if workers <= 1 or len(jobs) <= 1:
        reuse_freed_memory()
        for src, dst in jobs:
            yield _work(src, dst, settings, debug=debug)
        return
    import queue
    import threading
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    from .._cpus import own_threads_limited, usable_cpus

    n = min(workers, len(jobs))
    threads = max(1, usable_cpus() // n)
    todo = deque(jobs)
    lock = threading.Lock()
    done: queue.SimpleQueue = queue.SimpleQueue()  # results from the workers; None when a feeder ends

    def take() -> tuple[Path, Path] | None:
        with lock:
            return todo.popleft() if todo else None

    pool = ProcessPoolExecutor(
        max_workers=n - 1, mp_context=_pool_context(), initializer=_start_worker, initargs=(threads, settings)
    )

    def feed() -> None:
        """Keep one worker busy with one file at a time, from when it is ready."""
        job = None
        try:
            pool.submit(_ready).result()  # the worker has started and warmed up
            while (job := take()) is not None:
                done.put(pool.submit(_work, job[0], job[1], settings, debug=debug).result())
        # a worker killed by the OOM killer (BrokenProcessPool): its file fails, the rest go on here;
        # Ctrl-C in a worker (KeyboardInterrupt, also raised here in this process's main thread)
        except BaseException as exc:
            if job is not None:
                done.put((*job, None, _error(f"worker process failed: {type(exc).__name__}: {exc}", debug)))
        finally:
            done.put(None)

    feeders = [threading.Thread(target=feed, daemon=True) for _ in range(n - 1)]
    for t in feeders:
        t.start()
    reuse_freed_memory()
    finished = False
    try:
        with own_threads_limited(threads):
            yield from _cut_here(take, done, len(feeders), settings, debug=debug)
        finished = True
    finally:
        if not finished:  # on Ctrl-C, drop the files not started instead of cutting them all out first
            with lock:
                todo.clear()
        pool.shutdown(wait=finished, cancel_futures=not finished)


def _cut_here(
    take: Callable[[], tuple[Path, Path] | None], done: Any, feeders: int, settings: Settings, *, debug: bool
) -> Iterator[Result]:
    """Cut files here while there are any to take, yielding the workers' results as they come in;
    then the workers' last results, until each of the ``feeders`` has said it is done (None)."""
    import queue

    while (job := take()) is not None:
        try:
            res = _work(job[0], job[1], settings, debug=debug)
        except KeyboardInterrupt:  # Ctrl-C: what the workers had finished (outputs written) is still reported
            yield from _finished_before(done)
            raise
        yield res
        while True:  # what the workers finished meanwhile
            try:
                res = done.get_nowait()
            except queue.Empty:
                break
            if res is None:
                feeders -= 1
            else:
                yield res
    while feeders:
        res = done.get()
        if res is None:
            feeders -= 1
        else:
            yield res


def _finished_before(done: Any) -> Iterator[Result]:
    """The workers' results already in ``done`` that succeeded (those Ctrl-C stopped are not results)."""
    import queue

    while True:
        try:
            res = done.get_nowait()
        except queue.Empty:
            return
        if res is not None and res[3] is None:
            yield res


def _ready() -> None:
    """A no-op run in a pool worker: when it returns, the worker has started and warmed up."""


def _start_worker(threads: int, settings: Settings) -> None:
    """A pool worker: its thread budget, then a tiny cut-out so that every lazy import is done."""
    from .._cpus import limit_threads
    from .._memory import reuse_freed_memory
    from ..process import warm_up

    limit_threads(threads)
    reuse_freed_memory()
    warm_up(settings)


def _pool_context() -> multiprocessing.context.BaseContext:
    """Never plain fork: a child forked after KMeans has started its OpenMP threads can deadlock.

    A fork server that has imported knockout (and never run KMeans) starts workers quickly;
    spawn, where there is no fork server, imports everything in each worker.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["knockout._preload"])
    return ctx


def _say(message: str, *, raw: bool = False) -> None:
    """One line on stderr, names in it escaped (a newline or an escape code in a file name stays in its line)."""
    if not raw:
        message = printable(message)
    if "tqdm" in sys.modules:  # a progress bar may be running: keep it intact
        sys.modules["tqdm"].tqdm.write(message, file=sys.stderr)
    else:  # one file, or quiet: no bar, and tqdm's import (0.1 s) is not paid
        print(message, file=sys.stderr)


#: the variables OpenBLAS reads for its thread count (the first one set wins), and MKL's
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _one_blas_thread() -> None:
    """Have OpenBLAS start with one thread in this process (and its pool's), unless the user chose.

    A cut-out holds BLAS at one thread anyway (:func:`knockout.process.process_decoded`,
    :func:`knockout.segment.segment`); set before numpy is imported, the variable also keeps the
    OpenBLAS of numpy and of SciPy from starting idle threads as they load: 70-100 ms of CPU of every
    ``knockout cut`` process on a 2-core machine (bench/RESULTS.md). Nothing is changed once numpy
    is imported (a program calling :func:`knockout.cli.main`).
    """
    if "numpy" not in sys.modules and not any(var in os.environ for var in _BLAS_THREADS):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"


def run(args: argparse.Namespace) -> int:
    from ..cli import settings_from_args

    _one_blas_thread()

    inputs, named = _named_output(args)
    settings = settings_from_args(args, _config_settings(args))
    if named is not None and named != STDIO:
        settings = _format_from_name(named, settings, given=args.format)
    debug = bool(getattr(args, "debug", False))
    quiet = getattr(args, "quiet", 0) > 0
    if not debug:
        logging.getLogger("PIL").setLevel(max(logging.INFO, logging.getLogger("PIL").level))
    if named is not None:
        src = STDIO if inputs[0] == "-" else Path(inputs[0])
        found, problems = [(src, PurePath())], []
        outputs = {src: named}
    else:
        found, problems = _expand(inputs, recursive=args.recursive)
        outputs = {f: output_path(f, settings, args.outdir, folder=folder) for f, folder in found}
    for msg in problems:
        _say(f"knockout: error: {msg}")
    failed = len(problems)
    bad_report = _report_name_problem(args.report, overwrite=args.overwrite)
    if bad_report:  # before any folder is made
        _say(f"knockout: error: --report {bad_report}")
        return 2
    if args.outdir is not None and named is None:
        try:
            make_folders(args.outdir)
        except OSError as exc:
            # make_folders raises FileExistsError only for a part of the path that is there and no folder
            why = f"{exc.filename} is a file, not a folder" if isinstance(exc, FileExistsError) else exc.strerror or exc
            _say(f"knockout: error: cannot create output folder {args.outdir}: {why}")
            return 2
    jobs, skipped, refused = _plan([f for f, _ in found], outputs, args)
    failed += refused
    report = None
    if args.report is not None:
        try:
            from ..report import BatchReport

            report = BatchReport(args.report)  # its name was checked above (_report_name_problem)
        except OSError as exc:
            _say(f"knockout: error: --report {args.report}: {exc.strerror or exc}")
            return 2

    t0 = time.perf_counter()
    done = 0
    if args.dask and named is None:
        try:
            from ..distributed import run_batch
        except ImportError as exc:
            _say(f"knockout: error: --dask is not available ({exc}); install it with: pip install 'knockout[dask]'")
            return 2
        results: Iterator[Result] = run_batch(jobs, settings, address=args.dask)
    else:
        from .._cpus import usable_cpus

        workers = usable_cpus() if args.jobs == 0 else args.jobs
        results = _run_local(jobs, settings, workers, debug=debug)
    seen = flagged = 0
    report_failed = False
    try:
        for src, dst, res, err in _progress(results, total=len(jobs), enabled=not quiet):
            seen += 1
            if err is not None:
                failed += 1
                _say(f"knockout: error: {src}: {err}")
            else:
                done += 1
                if res is not None:
                    for note in res.notes:
                        _say(f"knockout: warning: {src}: {note}")
                    flagged += res.review
                    log.debug("%s -> %s (%s, %.0f ms)", src, dst, res.method, res.milliseconds)
            if report is not None and not _report_row(report, src, dst, res, err, job=args.job):
                report, report_failed = None, True
    except SettingsError:  # e.g. the Dask scheduler does not answer at start: a usage error, exit 2
        raise
    except Exception as exc:  # the pool or the cluster went away: report, count the rest as failed
        where = f"Dask scheduler {args.dask}" if args.dask else "worker pool"
        _say(f"knockout: error: {where}: {type(exc).__name__}: {' '.join(str(exc).split())}")
        if debug:
            _say(traceback.format_exc().rstrip(), raw=True)
        failed += len(jobs) - seen
    finally:
        if report is not None:
            with contextlib.suppress(OSError):  # a write error was said when a row failed
                report.close()
    dt = time.perf_counter() - t0
    if not quiet:
        kept = f", {skipped} skipped (output exists; --overwrite replaces)" if skipped else ""
        if flagged:
            where = f"; see {args.report}" if report is not None else "; --report FILE lists them"
            _say(f"knockout: {flagged} of them to review (confidence below {settings.review_below:g}){where}")
        _say(f"knockout: {done} cut out, {failed} failed{kept} in {dt:.1f} s")
    return 1 if failed or report_failed else 0


def _report_name_problem(path: Path | None, *, overwrite: bool) -> str | None:
    """Why ``--report PATH`` cannot be written (its suffix, or a file there that is not a report), or None."""
    if path is None:
        return None
    from ..report import is_report, suffix_problem

    why = suffix_problem(path)
    if why is None and os.path.lexists(path) and not overwrite and not is_report(path):
        why = f"{path} exists and is not a knockout report; use --overwrite to replace it, or another name"
    return why


def _report_row(
    report: BatchReport, src: Path, dst: Path, res: Processed | None, err: str | None, *, job: str | None
) -> bool:
    """Add the input's row; False (said once, and the report closed) when the file cannot take it."""
    try:
        if res is None:
            report.add(input=str(src), error=(err or "").splitlines()[0] if err else None, job=job)
        else:
            report.add(
                input=str(src),
                job=job,
                output=str(dst),
                method=res.method,
                tolerance=round(res.tolerance, 2),
                confidence=res.confidence,
                review=res.review,
                reasons=res.reasons,
                ms=round(res.milliseconds),
            )
    except OSError as exc:
        _say(
            f"knockout: error: --report {report.path}: cannot write it ({exc.strerror or exc}); "
            "the cut-outs go on without it"
        )
        with contextlib.suppress(OSError):
            report.close()
        return False
    return True


def _named_output(args: argparse.Namespace) -> tuple[list[str], Path | None]:
    """The inputs, and the output file when the command line names one (``IN OUT``, ``-o -``, ``-``)."""
    paths = list(args.paths)
    out = None
    if args.outdir == STDIO:
        if len(paths) != 1:
            raise SettingsError("-o - writes one image to standard output; give a single input")
        out = STDIO
    elif args.outdir is not None and args.outdir.suffix.lower() in _OUTPUT_SUFFIXES and not args.outdir.is_dir():
        # `-o out.png` (gcc's and ffmpeg's habit) names the one output; never a folder named like an image
        if len(paths) != 1 or not (paths[0] == "-" or Path(paths[0]).is_file()):
            raise SettingsError(
                f"{args.outdir}: -o with an image name names the output of one input file; "
                "for several inputs give -o a folder"
            )
        out = args.outdir
    elif len(paths) == 2 and args.outdir is None and (paths[0] == "-" or Path(paths[0]).is_file()):
        second = Path(paths[1])
        if paths[1] == "-" or (
            second.suffix.lower() in _OUTPUT_SUFFIXES and (not second.exists() or _is_own_output(second))
        ):
            paths, out = paths[:1], second
        elif not second.exists() and not glob.has_magic(paths[1]):
            raise SettingsError(
                f"{second}: no such file; as the output of knockout cut IN OUT its name must end in "
                ".png, .webp or .jpg (the format)"
            )
    elif len(paths) == 2 and args.outdir is None and Path(paths[0]).is_dir():
        second = Path(paths[1])
        if not second.exists() and not glob.has_magic(paths[1]):  # rembg's habit: `rembg p IN_DIR OUT_DIR`
            raise SettingsError(
                f"{second}: no such file or folder; to write the cut-outs of {paths[0]} there, use -o: "
                f"knockout cut {paths[0]} -o {paths[1]}"
            )
    if "-" in paths:
        if len(paths) > 1:
            raise SettingsError("- (standard input) must be the only input: knockout cut - OUT.png, or -o - for stdout")
        if args.outdir is not None and out is None:
            raise SettingsError("standard input has no name to use in -o DIR; name the output: knockout cut - OUT.png")
        out = out or STDIO
        if sys.stdin.isatty():
            why = "- reads standard input, a terminal here; pipe an image in: cat a.jpg | knockout cut - -o -"
            raise SettingsError(why)
    if out == STDIO and sys.stdout.isatty():
        raise SettingsError("not writing image bytes to a terminal; redirect standard output (> a.png) or name a file")
    return paths, out


def _format_from_name(out: Path, settings: Settings, *, given: str | None) -> Settings:
    """The output format its name says (``out.webp``), unless --format chose one; they must agree."""
    said = _OUTPUT_SUFFIXES[out.suffix.lower()]
    if given is None:
        return settings.replace(format=said)
    if settings.format != said:
        raise SettingsError(f"{out}: the name says {said} but --format is {settings.format}; make them agree")
    return settings


def _config_settings(args: argparse.Namespace) -> Settings | None:
    """The settings of a job of ``-c config.yaml`` (``--job NAME``, or its only job), read by the daemon's loader."""
    if args.config is None:
        if args.job is not None:
            raise SettingsError("--job needs -c/--config: the config file that holds the job")
        return None
    from knockout.daemon.config import load_config

    jobs = {job.name: job for job in load_config(args.config).jobs}
    if args.job is None:
        if len(jobs) > 1:
            raise SettingsError(f"{args.config}: has jobs {', '.join(jobs)}; choose one with --job NAME")
        return next(iter(jobs.values())).settings
    if args.job not in jobs:
        import difflib

        hint = difflib.get_close_matches(args.job, list(jobs), n=1)
        also = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SettingsError(f"{args.config}: no job named '{args.job}'{also}; its jobs: {', '.join(jobs)}")
    return jobs[args.job].settings


def _plan(
    files: list[Path], outputs: dict[Path, Path], args: argparse.Namespace
) -> tuple[list[tuple[Path, Path]], int, int]:
    """(jobs to run, outputs kept because they exist, inputs refused)."""
    named = {Path(raw).resolve() for raw in args.paths if Path(raw).is_file()}
    produced = {dst.resolve() for dst in outputs.values() if dst != STDIO}
    kept = []
    for src in files:
        key_src = src.resolve()
        if src != STDIO and key_src in produced and key_src not in named and _is_own_output(src):
            # found in a folder or glob, named like another input's output and knockout's mark in
            # it: an earlier run's cut-out (without the mark it is the user's photo: an input)
            log.debug("%s: an earlier cut-out of another input, not cut out again", src)
        else:
            kept.append(src)
    inputs = {src.resolve() for src in kept if src != STDIO}
    jobs: list[tuple[Path, Path]] = []
    skipped = refused = 0
    claimed: dict[Path, Path] = {}
    for src in kept:
        dst = outputs[src]
        if dst == STDIO:
            jobs.append((src, dst))
            continue
        key = dst.resolve()
        if key in inputs:
            _say(f"knockout: error: {src}: its output {dst} is also an input, which is never overwritten; use -o")
            refused += 1
            continue
        if key in claimed:
            _say(
                f"knockout: error: {src}: output {dst} would also be written by {claimed[key]}; "
                "rename one input or use separate -o folders"
            )
            refused += 1
            continue
        claimed[key] = src
        if dst.exists() and not args.overwrite:
            log.debug("%s: output %s exists, kept (use --overwrite to replace)", src, dst)
            skipped += 1
            continue
        try:
            # mirrored sub-folders of -o: real folders only, never through a link out of it
            make_folders(dst.parent, root=args.outdir if args.outdir not in (None, STDIO, dst) else None)
        except OSError as exc:
            _say(f"knockout: error: {src}: cannot create folder {dst.parent}: {exc.strerror or exc}")
            refused += 1
            continue
        jobs.append((src, dst))
    return jobs, skipped, refused


def _progress(it: Iterable, *, total: int, enabled: bool) -> Iterator:
    """Progress on stderr when there is more than one item.

    A tqdm bar when stderr is a terminal; otherwise (a log file, a CI job) a line every
    ``KNOCKOUT_PROGRESS_EVERY`` seconds (default 10) with done/total and the rate.
    """
    if total <= 1 or not enabled:
        yield from it
        return
    if not sys.stderr.isatty():
        yield from _progress_lines(it, total=total)
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(), tqdm(it, total=total, unit="img", file=sys.stderr) as bar:
        yield from bar


def _progress_lines(it: Iterable, *, total: int) -> Iterator:
    try:
        every = float(os.environ.get("KNOCKOUT_PROGRESS_EVERY", "10"))
    except ValueError:
        every = 10.0
    t0 = last = time.monotonic()
    for done, item in enumerate(it, 1):
        yield item
        now = time.monotonic()
        if now - last >= every and done < total:
            last = now
            rate = done / max(now - t0, 1e-9)
            left = (total - done) / rate
            _say(f"knockout: {done}/{total} done, {rate:.2f} images/s, about {left:.0f} s left")
