"""Folder work for the daemon: which names are inputs, claims by atomic rename, safe moves and writes.

A claim moves an inbox file into ``INBOX/.knockout-claims/TOKEN/files/REL`` with one
``rename(2)``: of two daemons racing for a file exactly one wins, the other gets ENOENT.
``TOKEN/owner.json`` names the host and pid and its modification time is the owner's
heartbeat. Before an output is written, ``TOKEN/out/REL.json`` records where it goes, so a
claim recovered after a crash can tell "output already written, only the input move is
missing" from "start again".
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath
from typing import Any

from knockout import fsutil
from knockout._formats import EXTENSIONS
from knockout.fsutil import FOLDER_MODE, UnsafeFolder, free_name, fsync_dir, link_or_rename

__all__ = [
    "ClaimBusy",
    "Claims",
    "LinkOnPath",
    "UnsafeFolder",
    "is_folder_link",
    "is_hidden",
    "is_input_name",
    "too_deep",
    "move_noreplace",
    "real_folder",
    "walk_inputs",
    "write_noreplace",
]

log = logging.getLogger(__name__)

CLAIMS = ".knockout-claims"
_TEMP_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", ".partial", ".download", ".filepart")
HOST = socket.gethostname()


def real_folder(path: Path) -> os.stat_result:
    """``lstat`` of ``path``, which must be a real folder (not a link) owned by this process's user.

    Raises
    ------
    UnsafeFolder
        When it is a symbolic link, not a folder, or another user's.
    FileNotFoundError
        When it does not exist.
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFolder(f"{path} is a symbolic link, not the daemon's folder; it is never followed: remove it")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"{path} is not a folder (the daemon keeps its work there): remove or rename it")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise UnsafeFolder(
            f"{path} belongs to user id {st.st_uid}, not to this daemon's ({os.geteuid()}); "
            "run every daemon sharing an inbox as one user, or remove the folder"
        )
    return st


def _same(st: os.stat_result, key: tuple[int, int]) -> bool:
    return (st.st_dev, st.st_ino) == key


def is_hidden(rel: PurePath) -> bool:
    """Whether a path relative to the inbox is hidden: any part named ``.*`` or ``~*`` (the claims too)."""
    return any(part.startswith((".", "~")) for part in rel.parts)


def is_temporary(rel: PurePath) -> bool:
    """Whether a name is a download's or an editor's temporary one (``*.part``, ``*.tmp``...): it will be renamed."""
    return rel.name.lower().endswith(_TEMP_SUFFIXES)


def is_input_name(rel: PurePath) -> bool:
    """Whether a path relative to the inbox names an input (hidden, temporary, non-image: no)."""
    if is_hidden(rel) or is_temporary(rel):
        return False
    return PurePath(rel.name.lower()).suffix in EXTENSIONS


def is_folder_link(path: Path) -> bool:
    """Whether ``path`` is a symbolic link to a folder (never followed: it goes to failed/)."""
    return os.path.islink(path) and os.path.isdir(path)


MAX_DEPTH = 64  # parts of an input's path in its inbox (os.walk and shutil.rmtree recurse once a folder)


def too_deep(rel: PurePath, is_folder: bool) -> bool:
    """Whether ``rel`` (a file, or a folder whose files would be) lies deeper than :data:`MAX_DEPTH` in its inbox.

    Such inputs are never claimed: a 1,000-deep nesting made the claims, the outbox and ``processed/``
    as deep, where Python's recursive folder walks (``os.walk`` before 3.12, ``shutil.rmtree``) fail.
    """
    return len(rel.parts) + is_folder > MAX_DEPTH


def walk_inputs(root: Path, *, recursive: bool, others: bool = False) -> Iterator[Path]:
    """Input files under ``root``, and links to folders (never followed); hidden names skipped.

    With ``others``, the other names that are neither hidden nor temporary too (non-image files),
    and the folders :data:`MAX_DEPTH` deep, which are not walked into (:func:`too_deep`).
    """
    stack = [_entries(Path(root))]
    while stack:
        e = next(stack[-1], None)
        if e is None:
            stack.pop()
            continue
        if e.name.startswith((".", "~")):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                if recursive and len(stack) < MAX_DEPTH:
                    stack.append(_entries(Path(e.path)))
                elif recursive and others:
                    yield Path(e.path)
            elif is_input_name(PurePath(e.name)) or (e.is_symlink() and e.is_dir()):
                yield Path(e.path)
            elif others and not is_temporary(PurePath(e.name)):
                yield Path(e.path)
        except OSError:
            continue


def _entries(folder: Path) -> Iterator[os.DirEntry]:
    """A folder's entries in name order (none, said once, when it cannot be listed)."""
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc.strerror or exc)
        entries = []
    return iter(sorted(entries, key=lambda e: e.name))


PATH_MAX = 4096  # bytes in a path that open(2) takes (Linux; macOS's 1024 fails in open() itself)

#: the pids a process can have (Linux's pid_max is at most 2^22; other systems stay below 2^31)
PID_RANGE = range(1, 2**31)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (False for a number no process can have)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid not in PID_RANGE:
        return False  # 0 and -1 would ask about a process group, a huge one overflows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_folders(path: Path, mode: int = FOLDER_MODE, *, root: Path | None = None) -> None:
    """``mkdir -p path`` (:func:`knockout.fsutil.make_folders`: with ``root``, no link below it)."""
    fsutil.make_folders(path, mode=mode, root=root)


_ROOTS: dict[Path, tuple[int, int]] = {}  # the daemon's folders as they were at start: (device, inode)


def remember_roots(folders: Iterator[Path] | tuple[Path, ...] | list[Path]) -> None:
    """Record which folders the configured inbox, outbox, processed/, failed/, review/ are (at start, reload)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            st = os.stat(folder)
            _ROOTS[Path(folder)] = (st.st_dev, st.st_ino)


def check_root(root: Path) -> None:
    """Raise :class:`UnsafeFolder` when a remembered folder was replaced (by a link or another folder).

    A folder removed meanwhile is made again (and remembered as the new one). Something there that
    is not a folder (a file put in its place, or a link to one) raises NotADirectoryError: nothing
    can be written through it, and the caller retries until it is a folder again. That is decided
    by what the thing is, not by its inode number, which a file system may give a new file again.
    """
    key = _ROOTS.get(Path(root))
    if key is None:
        return
    try:
        st = os.stat(root)
    except FileNotFoundError:
        make_folders(root)
        remember_roots([root])
        return
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder (a file is in its place)", str(root))
    if (st.st_dev, st.st_ino) != key:
        raise UnsafeFolder(
            f"{root} is not the folder it was when the daemon started (replaced, or a link put there); "
            "not written through: restart the daemon if the change is wanted"
        )


def move_noreplace(
    src: Path, dst: Path, *, root: Path | None = None, beside: Callable[[Path], Path] | None = None
) -> Path:
    """Move ``src`` to ``dst`` (or ``dst`` with ``-1``, ``-2``... if taken); returns where it went.

    Works across file systems (copy, fsync, then remove the source) and never overwrites.
    With ``root`` (the folder ``dst`` lies in), no folder below ``root`` may be a link, and
    ``root`` must be the folder it was at start (:func:`check_root`). With ``beside`` (the name
    of a file that goes beside the target, such as its record), a name is taken only when that is free too.
    """
    if root is not None:
        check_root(root)
    make_folders(dst.parent, root=root if root is not None else dst.parent)
    # below root, the folder is held open (each part O_NOFOLLOW) from now on: a link swapped in
    # after the check above is refused (LinkOnPath), never moved through by its path
    folder = _open_below(root, dst.parent.relative_to(root)) if root is not None else None
    try:
        for _ in range(100):
            target = free_name(dst, taken(beside, folder))
            name = target if folder is None else target.name
            try:
                try:
                    link_or_rename(src, name, dir_fd=folder)
                except OSError as exc:
                    if exc.errno != errno.EXDEV or isinstance(exc, FileExistsError):
                        raise
                    _copy_across(src, target)
                    os.unlink(src)
                if folder is None:
                    fsync_dir(target.parent)
                else:
                    with contextlib.suppress(OSError):
                        os.fsync(folder)
                return target
            except FileExistsError:
                continue
    finally:
        if folder is not None:
            os.close(folder)
    raise FileExistsError(errno.EEXIST, "no free name", str(dst))


def taken(beside: Callable[[Path], Path] | None, folder: int | None = None) -> Callable[[Path], bool]:
    """Whether a name is taken: something is there, or (with ``beside``) where its companion file goes.

    With ``folder`` (an open folder's descriptor), names are looked up in it, not by their paths.
    """

    def there(p: Path) -> bool:
        return fsutil.lexists(p if folder is None else p.name, dir_fd=folder)

    if beside is None:
        return there
    return lambda p: there(p) or there(beside(p))


def _copy_across(src: Path, target: Path) -> None:
    if src.is_symlink():
        os.symlink(os.readlink(src), target)
        return
    tmp = fsutil.temp_name(target, uuid.uuid4().hex[:8])
    try:
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            shutil.copyfileobj(fi, fo, 1 << 20)
            fo.flush()
            os.fsync(fo.fileno())
        shutil.copystat(src, tmp)
        link_or_rename(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_noreplace(
    path: Path,
    data: bytes,
    *,
    tag: str,
    replace: bool,
    mode: int = 0o644,
    root: Path | None = None,
    beside: Callable[[Path], Path] | None = None,
) -> Path:
    """Write ``data`` atomically to ``path`` (:func:`knockout.fsutil.atomic_write`), making its folder.

    With ``replace`` an existing file is replaced; otherwise the first free ``NAME-N.ext`` is
    used. The temporary name is ``.NAME.knockout-TAG.tmp`` so crash leftovers can be found.
    With ``root`` (the outbox), no folder below ``root`` may be a link, and ``root`` must be the
    folder it was at start (:func:`check_root`). With ``beside``, a free name is one whose companion
    file's name (``beside(name)``, its review note) is free too. Returns the final path.
    """
    if root is not None:
        check_root(root)
    make_folders(path.parent, root=root if root is not None else path.parent)
    return fsutil.atomic_write(path, data, mode=mode, replace=replace, tag=f"knockout-{tag}", taken=taken(beside))


class Claims:
    """This daemon's claims in one inbox.

    Everything it renames or deletes lies in ``INBOX/.knockout-claims``, which must be a real
    folder of this user's (never a link: :class:`UnsafeFolder` otherwise); its identity (device
    and inode) is recorded at :meth:`start` and checked again before every claim and recovery.
    """

    def __init__(self, inbox: Path, token: str) -> None:
        self.inbox = inbox
        self.token = token
        self.base = inbox / CLAIMS
        self.root = self.base / token
        self.files = self.root / "files"
        self.marks = self.root / "out"
        self._ids: tuple[tuple[int, int], ...] | None = None
        self._inbox_was_link: bool | None = None  # at the first start

    def start(self) -> None:
        """Create (or check) the claims folder and this daemon's own folder in it.

        Raises
        ------
        UnsafeFolder
            When ``.knockout-claims`` (or a folder in it that this daemon needs) is a link, a file, or another user's.
        """
        self._inbox_not_swapped_for_a_link()
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.base, 0o755)
        base = real_folder(self.base)
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.root, 0o700)
        root = real_folder(self.root)
        for sub in (self.files, self.marks):
            with contextlib.suppress(FileExistsError):
                os.mkdir(sub, 0o700)
            real_folder(sub)
        owner = {"host": HOST, "pid": os.getpid(), "started": time.time(), "token": self.token}
        _write_new(self.root / "owner.json", json.dumps(owner).encode())
        subs = [real_folder(sub) for sub in (self.files, self.marks)]
        self._ids = tuple((st.st_dev, st.st_ino) for st in (base, root, *subs))

    def check(self) -> None:
        """Raise :class:`UnsafeFolder` unless the claims folders are still the ones :meth:`start` made.

        A claims folder removed by someone is made again (FileNotFoundError is handled so).
        """
        if self._ids is None:
            self.start()
            return
        self._inbox_not_swapped_for_a_link()
        try:
            now = [real_folder(p) for p in (self.base, self.root, self.files, self.marks)]
        except FileNotFoundError:
            self.start()  # removed under us: made again (a link or a file put there instead raises)
            return
        if not all(_same(st, key) for st, key in zip(now, self._ids, strict=True)):
            raise UnsafeFolder(f"{self.root} was replaced by another folder since the daemon made it; not using it")

    def _inbox_not_swapped_for_a_link(self) -> None:
        """The inbox may be a link its owner made; one put in place of a real folder since is never followed."""
        is_link = os.path.islink(self.inbox)
        if self._inbox_was_link is None:
            self._inbox_was_link = is_link
        elif is_link and not self._inbox_was_link:
            raise UnsafeFolder(
                f"{self.inbox} is a link now, where the daemon started on a folder; never followed: "
                "put the folder back, or restart the daemon if the link is wanted"
            )

    def _open(self, folder: Path, rel: PurePath, *, create: bool) -> int:
        """A descriptor of ``folder/rel`` (``folder`` its own ``files`` or ``out``), no part a link.

        ``folder`` is opened with ``O_NOFOLLOW`` and must be the one :meth:`start` made; the parts
        of ``rel`` are made (``create``) and opened one by one below it (:func:`_descend`): a link
        swapped in after :meth:`check` is refused, never written through.
        """
        self.check()
        assert self._ids is not None
        key = self._ids[2] if folder == self.files else self._ids[3]
        try:
            fd = os.open(folder, _DIR_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeFolder(f"{folder} is a link or not a folder now; never followed") from None
            raise
        if not _same(os.fstat(fd), key):
            os.close(fd)
            raise UnsafeFolder(f"{folder} was replaced since the daemon made it; not using it")
        return _descend(
            fd,
            rel,
            create=create,
            refuse=lambda part: UnsafeFolder(f"{folder / rel}: {part} is a link or not a folder; never followed"),
        )

    def heartbeat(self) -> None:
        with contextlib.suppress(OSError):
            self.check()
            os.utime(self.root / "owner.json", follow_symlinks=False)

    def claim(self, src: Path, rel: PurePath) -> Path | None:
        """Move ``src`` into the claims; None when another process took it first.

        Raises
        ------
        UnsafeFolder
            When the claims folder is not what :meth:`start` made (nothing is moved); as
            :class:`LinkOnPath` when a folder on ``rel``'s path in the inbox is a link now.
        """
        dst = self.files / rel
        if len(os.fsencode(dst)) >= PATH_MAX:  # every later step names it by its path: not claimed at all
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(dst))
        try:
            into = self._open(self.files, rel.parent, create=True)  # never through a link
            try:
                # the same name in flight (uploaded again meanwhile): never replaced, it waits in the inbox
                if fsutil.lexists(rel.name, dir_fd=into):
                    raise ClaimBusy(f"{rel}: a file of that name is being processed; it waits until that one is done")
                folder = _open_below(self.inbox, rel.parent)  # src's folder, never through a link
                try:
                    os.rename(rel.name, rel.name, src_dir_fd=folder, dst_dir_fd=into)
                finally:
                    os.close(folder)
            finally:
                os.close(into)
        except FileNotFoundError:
            return None
        return dst

    def release(self, rel: PurePath) -> Path | None:
        """Give a claimed file back to the inbox (under a free name); returns where it went."""
        self.check()
        return _release(self.files / rel, self.inbox / rel, self.inbox)

    def mark(self, rel: PurePath, output: Path) -> None:
        """Record before writing that ``rel``'s output goes to ``output``."""
        rec: dict = {"output": str(output), "existed": False}
        try:
            st = os.stat(output)
            rec.update(existed=True, ino=st.st_ino, mtime_ns=st.st_mtime_ns)
        except FileNotFoundError:
            pass
        name = mark_path(self.marks, rel).name
        folder = self._open(self.marks, rel.parent, create=True)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=folder)
            _write_new(name, json.dumps(rec).encode(), dir_fd=folder)
        finally:
            os.close(folder)

    def unmark(self, rel: PurePath) -> None:
        """Remove ``rel``'s mark; nothing when the marks folder is not the daemon's now (never through a link)."""
        try:
            folder = self._open(self.marks, rel.parent, create=False)
        except FileNotFoundError:
            return
        except UnsafeFolder as exc:
            log.warning("%s: mark of %s left: %s", self.marks, rel, exc)
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(mark_path(self.marks, rel).name, dir_fd=folder)
        finally:
            os.close(folder)

    def close(self) -> None:
        """Remove this daemon's (empty) claims folder at a clean exit."""
        try:
            self.check()
        except OSError as exc:
            log.warning("%s: left as it is: %s", self.root, exc)
            return
        adopted = self.root / "adopted"
        for p in (self.files, self.marks, adopted):
            _prune(p)
            with contextlib.suppress(OSError):
                p.rmdir()
        try:
            left = [e for e in os.listdir(self.root) if e != "owner.json"]
        except OSError:
            return
        if not left:  # else owner.json stays, so the next start recovers what is left
            with contextlib.suppress(OSError):
                os.unlink(self.root / "owner.json")
            with contextlib.suppress(OSError):
                self.root.rmdir()


def _write_new(path: Path | str, data: bytes, *, dir_fd: int | None = None) -> None:
    """Create ``path`` (never through a link, never replacing anything) and write ``data``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _make_inside(root: Path, rel: PurePath) -> None:
    """``mkdir -p root/rel`` where every part below ``root`` must be a real folder (links refused)."""
    p = root
    for part in rel.parts:
        p = p / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(p, 0o700)
        real_folder(p)


class ClaimBusy(Exception):
    """A file of the same name is in flight (claimed and not yet filed): the new one waits in the inbox."""


class LinkOnPath(UnsafeFolder):
    """A folder on an input's path became a symbolic link (or a file) after the input was seen."""


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _open_below(root: Path, rel: PurePath) -> int:
    """A descriptor of the folder ``root/rel``, each part below ``root`` opened with ``O_NOFOLLOW``.

    Raises
    ------
    UnsafeFolder
        When a part is a symbolic link (or not a folder) now: the path leads outside.
    """
    # root itself is a configured folder (its identity checked by check_root), which may be a link
    # its owner made (/srv/inbox -> /mnt/share/inbox): followed; the parts below it never are
    fd = os.open(root, _DIR_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))
    return _descend(
        fd, rel, refuse=lambda part: LinkOnPath(f"{part} on its path is a link or not a folder now; not followed")
    )


def _descend(fd: int, rel: PurePath, *, refuse: Callable[[str], UnsafeFolder], create: bool = False) -> int:
    """From the open folder ``fd`` (taken over: closed on the way), a descriptor of ``rel`` below it.

    Each part is opened with ``O_NOFOLLOW`` (made first, with ``create``); a part that is a link or
    no folder raises ``refuse(part)``.
    """
    try:
        for part in rel.parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise refuse(part) from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def mark_path(marks: Path, rel: PurePath) -> Path:
    """Where the mark of ``rel`` lies: ``REL.json``, or a digest of the name when that would be too long."""
    name = f"{rel.name}.json"
    if len(os.fsencode(name)) > fsutil.NAME_MAX:
        name = hashlib.sha256(os.fsencode(rel.name)).hexdigest() + ".json"
    return marks / rel.parent / name


def _release(src: Path, dst: Path, root: Path) -> Path | None:
    try:
        return move_noreplace(src, dst, root=root)
    except FileNotFoundError:
        return None


def _prune(root: Path) -> None:
    """Remove empty folders under ``root`` (not ``root`` itself)."""
    try:
        real_folder(root)
    except OSError:
        return
    for dirpath, _dirs, _files in os.walk(root, topdown=False):  # os.walk never enters links
        if Path(dirpath) != root:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def dead_owners(inbox: Path, own: str, claim_timeout: float) -> Iterator[Path]:
    """Claim folders in ``inbox`` whose owner is gone: a dead pid on this host, or no heartbeat.

    Only real folders of this user's holding a daemon's ``owner.json`` (a regular file naming a
    host and a pid) count: links and anything else found there are never touched.

    Raises
    ------
    UnsafeFolder
        When ``INBOX/.knockout-claims`` is a link, not a folder, or another user's.
    """
    base = inbox / CLAIMS
    try:
        real_folder(base)
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return
    now = time.time()
    for e in entries:
        if e.name == own:
            continue
        try:
            real_folder(Path(e.path))
            info, age = _owner(Path(e.path) / "owner.json")
            for sub in ("files", "out", "adopted"):  # a daemon makes these as real folders
                if os.path.lexists(Path(e.path) / sub):
                    real_folder(Path(e.path) / sub)
        except OSError:
            continue
        if info is None:
            _remove_if_empty(Path(e.path), now - e.stat(follow_symlinks=False).st_mtime, claim_timeout)
            continue
        if info.get("host") == HOST:
            dead = not pid_alive(info["pid"]) or info["pid"] == os.getpid() or age > claim_timeout
        else:
            dead = age > claim_timeout
        if dead:
            yield Path(e.path)


#: the most bytes of an owner.json or a mark the daemon reads (it writes about 100)
SMALL_JSON = 1 << 16


def _small_json(path: Path) -> tuple[Any, os.stat_result | None]:
    """A small JSON file the daemon writes (``owner.json``, a mark) and its ``fstat``; ``(None, None)``
    when it is not one: not a regular file (a FIFO is never waited on, a link never followed), larger
    than :data:`SMALL_JSON` (a planted sparse file is never read whole), or not JSON."""
    try:
        fh, st = fsutil.open_regular(path)
    except (OSError, fsutil.NotRegular):
        return None, None
    with fh:
        data = fh.read(SMALL_JSON + 1) if st.st_size <= SMALL_JSON else b""
    if not data or len(data) > SMALL_JSON:
        return None, None
    try:
        return json.loads(data.decode("utf-8")), st
    except ValueError:  # UnicodeDecodeError too
        return None, None


def _owner(path: Path) -> tuple[dict | None, float]:
    """A daemon's ``owner.json`` and its age in seconds; ``None`` when it is not one (or absent)."""
    info, st = _small_json(path)
    if not isinstance(info, dict) or st is None:
        return None, 0.0
    pid = info.get("pid")
    if not (isinstance(info.get("host"), str) and isinstance(pid, int) and not isinstance(pid, bool)):
        return None, 0.0
    if pid not in PID_RANGE:  # no daemon's: a planted file (a pid too large for kill() killed the loop)
        return None, 0.0
    return info, time.time() - st.st_mtime


def _remove_if_empty(path: Path, age: float, claim_timeout: float) -> None:
    """A claim folder left empty by a daemon killed while making it: ``rmdir`` (which removes only empty folders)."""
    if age > claim_timeout:
        with contextlib.suppress(OSError):
            os.rmdir(path)


def adopt(owner_dir: Path, claims: Claims) -> Path | None:
    """Atomically take over a dead owner's claim folder (None if another daemon did)."""
    claims.check()
    real_folder(owner_dir)
    target = claims.root / "adopted" / owner_dir.name
    _make_inside(claims.root, PurePath("adopted"))
    try:
        os.rename(owner_dir, target)
    except (FileNotFoundError, OSError) as exc:
        if isinstance(exc, FileNotFoundError) or exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return None
        raise
    return target


def claimed_files(owner_dir: Path) -> Iterator[tuple[PurePath, Path, dict | None]]:
    """``(rel, path, mark)`` for every entry claimed in an (adopted) owner folder, nested ones too.

    Claimed entries are files or links (a link is an entry itself: never followed); folders
    that are links are never descended into.
    """
    files = owner_dir / "files"
    if _is_real_dir(files):
        for dirpath, dirs, names in os.walk(files):  # os.walk never enters a link to a folder
            links = [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]
            dirs[:] = [d for d in dirs if d not in links]
            for n in sorted(names + links):
                p = Path(dirpath) / n
                rel = p.relative_to(files)
                yield PurePath(rel), p, _mark(mark_path(owner_dir / "out", rel))
    adopted = owner_dir / "adopted"
    if _is_real_dir(adopted):
        for sub in sorted(adopted.iterdir()):
            if _is_real_dir(sub):
                yield from claimed_files(sub)


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _mark(path: Path) -> dict | None:
    mark, _st = _small_json(path)
    return mark if isinstance(mark, dict) and isinstance(mark.get("output"), str) else None


def output_done(mark: dict | None, folders: tuple[Path, ...] | None = None) -> Path | None:
    """The output a recovered claim had finished writing, or None if it must be processed again.

    With ``folders`` (the job's outbox and review folder), only a regular file inside one of
    them counts: a planted mark naming any other file (``/etc/hostname``), or a link, is no output.
    """
    if not mark:
        return None
    out = Path(mark["output"])
    if folders is not None and not any(out.is_absolute() and _inside_folder(out, f) for f in folders):
        return None
    try:
        st = os.lstat(out)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    if mark.get("existed") and (st.st_ino, st.st_mtime_ns) == (mark.get("ino"), mark.get("mtime_ns")):
        return None  # the old file is still there: our write never happened
    return out


def _inside_folder(path: Path, folder: Path) -> bool:
    """Whether ``path`` names something below ``folder`` (by its parts: no ``..``)."""
    return ".." not in path.parts and path.parent.is_relative_to(folder) and path != folder


def remove_tree(path: Path, claims: Claims) -> None:
    """Delete an adopted claim folder: only inside this daemon's own claims folder, never through a link."""
    claims.check()
    if path.parent.parent != claims.root:
        raise UnsafeFolder(f"{path} is not inside {claims.root}; not deleting it")
    real_folder(path)
    shutil.rmtree(path, ignore_errors=True)  # shutil.rmtree unlinks links inside, it never follows them


def remove_temps(outbox: Path, tag: str) -> int:
    """Delete ``.NAME.knockout-TAG.tmp`` leftovers of a dead daemon in ``outbox``."""
    n = 0
    end = f".knockout-{tag}.tmp"
    for dirpath, _dirs, names in os.walk(outbox):
        for name in names:
            if name.startswith(".") and name.endswith(end):
                with contextlib.suppress(OSError):
                    os.unlink(Path(dirpath) / name)
                    n += 1
    return n
