"""File-system helpers shared by ``knockout cut`` and the daemon: the one atomic writer, the one folder maker.

Both refuse to work through a symbolic link inside a folder tree they were given as ``root``
(:class:`UnsafeFolder`), and both keep names within the file system's limit (``NAME_MAX``):
a temporary name is shortened, never the final one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["UnsafeFolder", "atomic_write", "file_in_the_way", "make_folders"]

NAME_MAX = 255  # bytes in one name, on every file system the daemon and knockout cut support

FOLDER_MODE = 0o755  # folders for outputs and inputs: everyone may read them, whatever the umask
PRIVATE_MODE = 0o700  # the daemon's own working folders (its claims)


class UnsafeFolder(OSError):
    """A folder that must be a real folder is not (a link, a file...). The message is one line."""


NOT_REGULAR = "not a regular file now (a FIFO, a socket, a device or a folder was put in its place)"


class NotRegular(ValueError):
    """What was opened is not a regular file (the message is one line)."""


def open_regular(path: Path | str) -> tuple[BinaryIO, os.stat_result]:
    """``path`` opened for reading, and its ``fstat``, when it is a regular file.

    Never through a symbolic link (``O_NOFOLLOW``), never waiting for a FIFO's writer (``O_NONBLOCK``):
    for a file someone else may have swapped.

    Raises
    ------
    NotRegular
        When it is a FIFO, a socket, a device or a folder (closed again).
    OSError
        When it cannot be opened (a link, gone, no permission).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    fh = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(NOT_REGULAR)
    except BaseException:
        fh.close()
        raise
    return fh, st


def file_in_the_way(path: Path) -> tuple[Path, str] | None:
    """The first part of ``path`` (itself or a parent) that exists and is no folder, and what it is; or None.

    For a clear error before any work: ``("notes.txt", "a file")`` or ``(..., "a link to nothing")``.
    """
    for part in (path, *path.parents):
        if os.path.lexists(part):
            if part.is_dir():
                return None
            return part, "a file" if part.exists() else "a link to nothing"
    return None


def make_folders(path: Path, *, mode: int = FOLDER_MODE, root: Path | None = None) -> Path:
    """``mkdir -p path``; returns ``path``.

    Parameters
    ----------
    path : Path
        The folder wanted.
    mode : int, keyword-only
        The mode of each folder made, whatever the umask: :data:`FOLDER_MODE` (0755, the
        default: outputs stay readable by the people who collect them) or :data:`PRIVATE_MODE`
        (0700, for a program's own working folders). Existing folders are left as they are.
    root : Path, optional
        A folder ``path`` lies in (the outbox, ``processed/``...). ``root`` itself is made like
        any folder; every folder below it must be a real folder, never a symbolic link (checked
        with ``lstat``), so nothing is ever made or written outside ``root``.

    Raises
    ------
    UnsafeFolder
        When a part below ``root`` is a link or not a folder.
    """
    path = Path(path)
    if root is not None:
        root = Path(root)
        rel = path.relative_to(root)
        make_folders(root, mode=mode)
        p = root
        for part in rel.parts:
            p = p / part
            with contextlib.suppress(FileExistsError):
                os.mkdir(p, mode)
                os.chmod(p, mode)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeFolder(f"{p} is a symbolic link inside {root}; links are never followed: remove it")
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeFolder(f"{p} is not a folder; remove or rename it")
        return path
    missing = []
    p = path
    while not p.is_dir() and p != p.parent:
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue
        os.chmod(folder, mode)
    return path


def temp_name(path: Path, tag: str) -> Path:
    """``.NAME.TAG.tmp`` beside ``path``, NAME shortened (in bytes) so the whole stays within ``NAME_MAX``."""
    end = os.fsencode(f".{tag}.tmp")
    name = os.fsencode(path.name)[: NAME_MAX - 1 - len(end)]
    return path.with_name(os.fsdecode(b"." + name + end))


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o644,
    replace: bool = True,
    tag: str | None = None,
    durable: bool = True,
    taken: Callable[[Path], bool] = os.path.lexists,
) -> Path:
    """Write ``data`` to ``path`` so that readers never see a partial file; returns the final path.

    The bytes go to a hidden temporary file in the same folder (``.NAME.TAG.tmp``, never
    through a link), are fsynced (``durable``), then renamed to ``path``; the folder is fsynced so the
    rename survives a crash. The folder must exist (see :func:`make_folders`).

    Parameters
    ----------
    replace : bool, keyword-only
        Replace an existing ``path`` (default); otherwise use the first free ``NAME-N.ext``
        (never replacing anything).
    tag : str, optional
        The temporary name's tag (default random), so a crash's leftovers can be found.
    durable : bool, keyword-only
        fsync the file and its folder (default), so that the file survives a crash of the
        machine. ``knockout cut``, which never touches its inputs, passes False: a crash loses
        only outputs that a second run makes again, and an fsync of a 12 MP cut-out cost 20-160 ms
        here. Readers never see a partial file either way (the rename).
    taken : callable, keyword-only
        Whether a name is taken, when ``replace`` is False (default: something is there).
    """
    path = Path(path)
    tmp = temp_name(path, tag or uuid.uuid4().hex[:8])
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # whatever the umask, outputs get normal permissions
        if replace:
            os.replace(tmp, path)
            target = path
        else:
            for _ in range(100):
                target = free_name(path, taken)
                try:
                    link_or_rename(tmp, target)
                    break
                except FileExistsError:
                    continue
            else:
                raise FileExistsError(errno.EEXIST, "no free name", str(path))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if durable:
        fsync_dir(path.parent)
    return target


def fsync_dir(path: Path) -> None:
    """fsync a folder, so a rename in it survives a crash (errors ignored)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def free_name(dst: Path, exists: Callable[[Path], bool] = os.path.lexists) -> Path:
    """``dst``, or the first of ``NAME-1.ext``, ``NAME-2.ext``... that does not exist."""
    if not exists(dst):
        return dst
    stem, suffix = dst.stem, dst.suffix
    if dst.name.endswith(".error.txt"):
        stem, suffix = dst.name[: -len(".error.txt")], ".error.txt"
    for i in range(1, 100_000):
        tail = os.fsencode(f"-{i}{suffix}")  # a long stem is shortened so the name stays within NAME_MAX
        cand = dst.with_name(os.fsdecode(os.fsencode(stem)[: NAME_MAX - len(tail)] + tail))
        if not exists(cand):
            return cand
    raise FileExistsError(errno.EEXIST, "no free name", str(dst))


def link_or_rename(src: Path, dst: Path, *, dir_fd: int | None = None) -> None:
    """Rename ``src`` to ``dst`` without ever replacing an existing ``dst`` (FileExistsError).

    With ``dir_fd``, ``dst`` is a name in the folder that descriptor holds open (never a path
    through a link someone put in place since the folder was opened).
    """
    try:
        os.link(src, dst, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.EACCES):
            raise
        # file systems without hard links (some network shares): check, then rename
        if lexists(dst, dir_fd=dir_fd):
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
        os.rename(src, dst, dst_dir_fd=dir_fd)
        return
    os.unlink(src)


def lexists(path: Path | str, *, dir_fd: int | None = None) -> bool:
    """``os.path.lexists``, of a name in an open folder with ``dir_fd``."""
    try:
        os.lstat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True
