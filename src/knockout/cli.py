"""The ``knockout`` command line: ``cut``, ``watch``, ``status``, ``sheet``, ``eval``, ``gimp``.

Each sub-command lives in its own module with a ``register(subparsers)`` function; this
module only builds the parser, configures logging and maps errors to exit codes
(0 success, 1 some inputs failed, 2 usage or configuration error).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from . import __version__
from .settings import FORMATS, METHODS, OUTPUTS, PRESETS, Settings, SettingsError

__all__ = ["add_settings_arguments", "common_options", "main", "settings_from_args"]

log = logging.getLogger(__name__)

# sub-command modules, in the order --help lists them; a module missing from an install is skipped
_COMMANDS = (
    "knockout.commands.cut",
    "knockout.daemon.cli",
    "knockout.commands.sheet",
    "knockout.commands.evaluate",
    "knockout.gimp",
)

EPILOG = """examples:
  knockout cut portrait.jpg                      writes portrait-cutout.png beside it
  knockout cut shoot/ -o cutouts/ --format webp  a whole folder, lossless WebP
  knockout cut '*.jpg' --output solid --background '#ffffff' --format jpeg
  knockout watch                                 run the daemon on the default config.yaml
  knockout watch -c studio.yaml --check          validate a config and print it resolved
  knockout sheet a.jpg b.jpg -o sheet.png        before/after contact sheet
  knockout eval --images imgs/ --masks masks/    score against ground-truth masks
  knockout gimp install                          install the GIMP 3 plug-in
"""

_HELP = {
    "method": "kmeans (colour clusters) or threshold (colour distance)",
    "preset": "classic-threshold or classic-kmeans: the source article's recipes, exactly",
    "clusters": "number of KMeans colour clusters (2-32)",
    "tolerance": "'auto' or a colour distance in CIE delta E (0.5-100)",
    "feather": "soft edge width in pixels (0 = hard edge)",
    "decontaminate": "remove backdrop colour spill from edge pixels",
    "fill_holes": "fill holes inside the subject",
    "min_island": "remove islands smaller than this fraction of the image",
    "output": "rgba (cut-out), mask (8-bit grey) or solid (subject on --background)",
    "format": "png, webp (lossless) or jpeg (solid/mask only)",
    "background": "colour for --output solid: a name (white), '#fff' or '#rrggbb'",
    "crop": "crop to the subject plus --margin",
    "margin": "margin in pixels around the subject when cropping",
    "png_compression": "PNG level 0-9: 1-3 fast (default 1), 0 stored, 4-9 zlib (slow, 9 smallest)",
    "jpeg_quality": "JPEG quality 1-100",
    "max_pixels": "largest image accepted, in pixels",
    "seed": "random seed",
    "face_prior": "find a frontal face and keep the face and neck as subject",
    "review_below": "flag a cut-out for review when its confidence (0-1) is below this",
    "strip": "drop the input's EXIF and DPI from the output (the ICC profile is kept)",
    "depth": "bits per channel of the output; 16 (PNG) keeps a 16-bit input's precision",
}

# the values a setting takes, shown in the usage line (the default first); Settings validates them
_CHOICES: dict[str, tuple[Any, ...]] = {
    "method": METHODS,
    "preset": tuple(PRESETS),
    "output": OUTPUTS,
    "format": FORMATS,
    "depth": (8, 16),
}


def _metavar(name: str, default: Any) -> str:
    values = _CHOICES.get(name)
    if not values:
        return name.upper()
    ordered = sorted(values, key=lambda v: v != default)
    return "{" + ",".join(str(v) for v in ordered) + "}"


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per :class:`Settings` field (``--feather``, ``--no-decontaminate``...)."""
    group = parser.add_argument_group("segmentation and output settings (also config.yaml keys)")
    defaults = Settings()
    for f in fields(Settings):
        opt = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        shown = defaults.to_dict()[f.name]
        if isinstance(default, bool):
            group.add_argument(
                opt,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{_HELP[f.name]} (default: {'on' if default else 'off'})",
            )
        else:
            group.add_argument(
                opt,
                dest=f.name,
                default=None,
                metavar=_metavar(f.name, default),
                help=f"{_HELP[f.name]} (default: {shown})",
            )


def common_options() -> argparse.ArgumentParser:
    """A parent parser with ``-v``, ``-q`` and ``--debug``, for every sub-command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    common.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return common


def settings_from_args(args: argparse.Namespace, base: Settings | None = None) -> Settings:
    """The settings given on the command line, over ``base`` (or the defaults)."""
    values: dict[str, Any] = (base or Settings()).to_dict()
    for name in Settings.keys():
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    return Settings.from_mapping(values)


class _Parser(argparse.ArgumentParser):
    """argparse's parser (and its sub-commands'), except that help or a version that cannot be
    written to stdout (a full disk) raises: argparse's own ``_print_message`` drops write errors."""

    def _print_message(self, message: str, file: Any = None) -> None:
        if message and file is not None and file is sys.stdout:
            file.write(message)
        else:
            super()._print_message(message, file)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="knockout",
        description="Take the plain or studio backdrop off headshots.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"knockout {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def _unknown_options(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    """Exit 2 with the sub-command's own usage and the closest option of that sub-command."""
    import difflib

    sub = parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, "command", None) in action.choices:
            sub = action.choices[args.command]
    known = [opt for action in sub._actions for opt in action.option_strings if opt.startswith("--")]
    hints = []
    for arg in extra:
        word = arg.split("=", 1)[0]
        close = difflib.get_close_matches(word, known, n=1, cutoff=0.6) if word.startswith("-") else []
        if close:
            hints.append(f"{arg} (did you mean {close[0]}?)")
        else:
            hints.append(arg)
    sub.error(f"unrecognized arguments: {' '.join(hints)}")


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.INFO + 10 * (getattr(args, "quiet", 0) - getattr(args, "verbose", 0))
    if getattr(args, "debug", False):
        level = logging.DEBUG
    logging.basicConfig(
        level=max(logging.DEBUG, min(level, logging.CRITICAL)),
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    # before a command first imports SciPy: none of numpy's unused submodules. Only the command line
    # does this; a program that imports knockout as a library keeps its import machinery as it was
    from ._lean_imports import install

    install()
    real = sys.stdout
    if real is not None:
        sys.stdout = _Stdout(real)
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)  # --help and --version print and exit here
        if extra:
            _unknown_options(parser, args, extra)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        _configure_logging(args)
        return int(args.func(args) or 0)
    except SettingsError as exc:
        for line in str(exc).splitlines():  # every problem found, each on a line of its own
            print(f"knockout: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("knockout: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`knockout status --json | head`): stop quietly, as other tools do;
        # stdout goes to /dev/null so that the interpreter's last flush does not fail again
        _drop_stdout()
        return 1
    except OSError as exc:
        if not getattr(exc, "on_stdout", False):
            raise
        return _unwritable(exc)
    finally:
        sys.stdout = real


class _Stdout:
    """``sys.stdout`` while a command runs: a write that fails (a full disk) is marked as stdout's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            exc.on_stdout = True
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            exc.on_stdout = True
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _unwritable(exc: OSError) -> int:
    """Say in one line that stdout could not be written (a full disk, a file-size limit); the exit code."""
    try:
        print(f"knockout: error: cannot write to standard output: {exc.strerror or exc}", file=sys.stderr)
    except OSError:  # stderr cannot be written either: nothing to say it with
        pass
    _drop_stdout()
    return 1


def _drop_stdout() -> None:
    """Point stdout at /dev/null, dropping what it still holds, so that the last flush cannot fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def run() -> None:
    """The ``knockout`` script (and ``python -m knockout``): :func:`main`, then the exit.

    Python's own shutdown frees every module's objects one by one before the process ends: 0.05 s
    of CPU (0.1-0.3 s of wall time on a busy machine) after a cut that imported SciPy, more than
    ``knockout --help`` takes to start (bench/RESULTS.md). So when nothing else runs in this process
    (no other thread, no child process), the exit handlers are run and the streams flushed, and
    the process ends there; otherwise it exits as usual.
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse's --help, --version and usage errors exit from parse_args
        if exc.code is not None and not isinstance(exc.code, int):
            raise
        code = exc.code or 0
    failed = _flush_error()
    if isinstance(failed, OSError):  # what the command printed could not all be written
        said = _unwritable(failed)  # said in one line, and stdout dropped
        code = code or said
    if _busy() or _flush_error() is not None:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()  # logging's shutdown, multiprocessing's clean-up, the user's handlers
    if _flush_error() is not None:
        sys.exit(code)
    os._exit(code)


def _busy() -> bool:
    """True when a thread other than this one, or a child process, is still alive."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return True
    mp = sys.modules.get("multiprocessing")
    return mp is not None and bool(mp.active_children())


def _flush_error() -> OSError | ValueError | None:
    """Flush stdout and stderr; the error when one of them cannot be written (ValueError: a stream the
    command closed, which holds nothing more to write), else None."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError) as exc:
        return exc
    return None


if __name__ == "__main__":  # pragma: no cover
    run()
