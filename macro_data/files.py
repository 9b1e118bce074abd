"""Local files written whole or not at all: the one atomic-write helper, and fsync.

Every file the package publishes on a local disk (chunks, manifests, reports, registry edits,
provenance summaries, downloaded reference data) is written by :func:`atomic_write`, or by
:func:`atomic_file` when it is streamed rather than held in memory: a temporary file beside the
target (or in ``tmp_dir`` on the same file system), renamed over it once complete, so a reader or
a crash sees the old content or the new, never a part.

* Temporary names are unique per process *and* thread (pid, thread id, random suffix), so
  concurrent writers of one target never share a temporary file.
* The file is created with mode ``0o666`` and the process's umask applies, as for any file a
  program creates: ``0644`` under the usual ``022``, group-writable under ``002``. (Temporary-file
  helpers such as ``tempfile.mkstemp`` create ``0600`` files, which teammates cannot read.)
  ``mode=`` sets an explicit mode instead, e.g. to keep the mode of a file being replaced.
* ``durable=True`` (the default) fsyncs the file before the rename and the folder after it, so
  the new content survives a power loss once the call returns. Chunk writes pass ``False``: a
  stage syncs all its files at once when it publishes.

Lock files (:func:`file_lock`) follow the umask too, so teammates sharing a dataset folder can
take each other's locks.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import filelock

FSYNC_THREADS = 8  # concurrent fsyncs let the file system commit them in shared journal transactions
TEMP_SUFFIX = ".part"  # reserved: a file ending in it is a write in progress (or debris of a crash)


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a local file or directory (a directory's fsync makes its entries durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_paths(paths: Iterable[str | os.PathLike], missing_ok: bool = False) -> None:
    """fsync many files (or directories) at once, :data:`FSYNC_THREADS` at a time: concurrent fsyncs
    let the file system commit them in shared journal transactions instead of one after the other.
    ``missing_ok``: skip a path that does not exist. Returns once every one is durable."""

    def sync(path: str | os.PathLike) -> None:
        try:
            fsync_path(path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    paths = list(paths)
    if len(paths) <= 1:
        for p in paths:
            sync(p)
        return
    with ThreadPoolExecutor(min(FSYNC_THREADS, len(paths))) as pool:
        list(pool.map(sync, paths))


def temp_path(path: Path, tmp_dir: str | os.PathLike | None = None) -> Path:
    """A fresh hidden temporary name for ``path``, unique per process and thread."""
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    tag = f"{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:12]}"
    return folder / f".{path.name}.{tag}{TEMP_SUFFIX}"


def atomic_write(
    path: str | os.PathLike,
    data: bytes | bytearray | memoryview,
    *,
    tmp_dir: str | os.PathLike | None = None,
    durable: bool = True,
    mode: int | None = None,
    make_parents: bool = True,
) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring for names, modes and ``durable``).

    Parameters
    ----------
    path
        The file to write; an existing file is replaced.
    data
        Its new content.
    tmp_dir, durable, mode, make_parents
        As for :func:`atomic_file`.
    """
    with atomic_file(path, tmp_dir=tmp_dir, durable=durable, mode=mode, make_parents=make_parents) as tmp:
        with _naming(path):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            with os.fdopen(fd, "wb") as f:
                f.write(data)


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike,
    *,
    tmp_dir: str | os.PathLike | None = None,
    durable: bool = True,
    mode: int | None = None,
    make_parents: bool = True,
) -> Iterator[Path]:
    """A temporary file that becomes ``path`` when the ``with`` block ends without an exception.

    The block creates and writes the temporary file itself, in any way and of any size (a download
    streamed to disk, a copy); :func:`atomic_write` is this with the bytes in memory. When the block
    raises, the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path
        The file to publish; an existing file is replaced.
    tmp_dir
        Folder for the temporary file (default: beside ``path``); it must be on the same file system.
    durable
        fsync the file before the rename and the folder after it.
    mode
        Permission bits of the published file; default: what the umask gives a new file.
    make_parents
        Create missing folders of ``path`` (and ``tmp_dir``); with False they must exist already
        (for a writer that must never recreate a folder someone removed).

    Yields
    ------
    Path
        The temporary file's path (a fresh name, not created yet). An ``OSError`` while publishing
        names ``path`` where the OS names no file (a failed fsync, for instance).
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
        if tmp_dir is not None:
            Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, tmp_dir)
    try:
        yield tmp
        with _naming(path):
            if durable:
                fsync_path(tmp)
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, path)
            if durable:
                fsync_path(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An ``OSError`` that names no file (a failed write() or fsync(): a full disk) names ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable read sets it, so restore at once
    os.umask(mask)
    return mask


def file_lock(path: str | os.PathLike, timeout: float = -1) -> filelock.FileLock:
    """An inter-process lock on ``path`` whose file gets the mode the umask gives any new file
    (older filelock releases force ``0644``, which locks a group-writable folder's teammates out)."""
    return filelock.FileLock(str(path), timeout=timeout, mode=0o666 & ~umask())
