"""Atomic publish of the arrays a stage owns inside a world's Zarr group.

Layout of a dataset folder ``<root>/<name>/<version>/``::

    manifest.json          written last, atomically
    <world>.zarr/          the published group: what readers see
    .staging/<world>/      work in progress (hidden; readers never look here)
    .locks/<world>.lock    serialises publishes of one world

A stage writes its arrays into a private staging group. Publishing, under the world's lock,
builds a complete new group next to the published one (hard links to the arrays other stages own,
plus the freshly staged arrays) and swaps it in with one ``renameat2(RENAME_EXCHANGE)`` call, so a
reader, a crash or a concurrent run sees either the old group or the new one, never a mix. Where
the exchange is not available, a rename pair is used and an interrupted swap is rolled back on
the next publish or read (see :func:`recover`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import socket
import uuid
import warnings
from pathlib import Path
from typing import Iterator

import filelock
import zarr

from macro_data.errors import StorageError

LOCK_TIMEOUT_S = 600.0
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exchange(a: Path, b: Path) -> None:
    """Atomically swap two existing paths (Linux ``renameat2``); ``OSError`` if unsupported."""
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


def _owner_tag(label: str) -> str:
    return f"{label}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _pid_alive(tag: str) -> bool:
    """Whether the process that owns a staging entry (by its tag) still runs on this host."""
    parts = tag.rsplit("-", 3)
    if len(parts) != 4 or parts[1] != socket.gethostname():
        return True  # another host's (or unknown) entry: leave it alone
    try:
        os.kill(int(parts[2]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class WorldStore:
    """The published group ``<dataset>/<world>.zarr`` and its staging area."""

    def __init__(self, dataset_dir: Path, world_id: str):
        self.dataset_dir = Path(dataset_dir)
        self.world_id = world_id
        self.path = self.dataset_dir / f"{world_id}.zarr"
        self.staging_dir = self.dataset_dir / ".staging" / world_id
        self.lock_path = self.dataset_dir / ".locks" / f"{world_id}.lock"

    # ---- reading --------------------------------------------------------------------------------
    def exists(self) -> bool:
        recover(self)
        return (self.path / "zarr.json").is_file()

    def open(self) -> zarr.Group:
        if not self.exists():
            raise StorageError(f"world {self.world_id!r}: no published store at {self.path}")
        return zarr.open_group(str(self.path), mode="r")

    def array_names(self) -> set[str]:
        if not self.exists():
            return set()
        return {p.name for p in self.path.iterdir() if (p / "zarr.json").is_file()}

    # ---- writing --------------------------------------------------------------------------------
    def lock(self) -> filelock.FileLock:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.lock_path), timeout=LOCK_TIMEOUT_S)

    @contextlib.contextmanager
    def staging(self, label: str, group_attributes: dict) -> Iterator[zarr.Group]:
        """A private Zarr group to write new arrays into; removed afterwards whatever happens."""
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self.clean_debris()
        path = self.staging_dir / _owner_tag(f"stage.{label}")
        group = zarr.open_group(str(path), mode="w", attributes=group_attributes)
        try:
            yield group
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def publish(self, staged: zarr.Group, arrays: list[str], group_attributes: dict) -> None:
        """Replace ``arrays`` in the published group by the staged ones, atomically.

        Arrays of the published group that are not in ``arrays`` are kept (hard-linked). Arrays
        listed but absent from the staging group are removed (e.g. an optional array a world no
        longer produces).
        """
        staged_path = Path(str(staged.store.root)) / staged.path
        try:
            with self.lock():
                recover(self)
                new = self.staging_dir / _owner_tag("group")
                if self.path.exists():
                    keep = [p for p in self.path.iterdir() if p.name not in arrays and p.name != "zarr.json"]
                    new.mkdir(parents=True)
                    for p in keep:
                        if p.is_dir():
                            shutil.copytree(p, new / p.name, copy_function=os.link)
                        else:
                            os.link(p, new / p.name)
                new.mkdir(parents=True, exist_ok=True)
                for name in arrays:
                    if (staged_path / name).exists():
                        _fsync_tree(staged_path / name)  # only new files: linked ones are durable already
                        shutil.move(str(staged_path / name), str(new / name))
                # group metadata: written fresh (zarr writes files by temp + rename)
                zarr.open_group(str(new), mode="a").attrs.put(group_attributes)
                consolidate(new)
                _fsync_file(new / "zarr.json")
                _fsync_dir(new)
                if self.path.exists():
                    try:
                        exchange(new, self.path)
                    except OSError as exc:
                        if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
                            raise
                        _swap_by_renames(new, self.path)
                else:
                    os.rename(new, self.path)
                _fsync_dir(self.dataset_dir)
                shutil.rmtree(new, ignore_errors=True)  # after an exchange this holds the old group
        except filelock.Timeout:
            raise StorageError(f"world {self.world_id!r}: another run has held the publish lock "
                               f"{self.lock_path} for over {LOCK_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise StorageError(f"world {self.world_id!r}: publishing {', '.join(arrays)} into {self.path} "
                               f"failed ({exc}); the previously published version is unchanged") from exc

    def clean_debris(self) -> None:
        """Remove staging entries left by processes that died (kill -9) on this host."""
        if not self.staging_dir.is_dir():
            return
        for p in self.staging_dir.iterdir():
            if not _pid_alive(p.name):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def consolidate(path: Path) -> None:
    """Consolidated metadata (one read opens the whole group, e.g. in xarray).

    Zarr warns that consolidation is not yet part of the v3 specification; readers that ignore it
    still read the per-array metadata, which stays authoritative.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(str(path))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for dirpath, _, files in os.walk(path):
        for f in files:
            _fsync_file(Path(dirpath) / f)
        _fsync_dir(Path(dirpath))


def _swap_by_renames(new: Path, target: Path) -> None:
    """Fallback swap: target -> <target>.old, new -> target. :func:`recover` repairs a crash in between."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(target, old)
    os.rename(new, target)
    os.rename(old, new)  # so the caller's cleanup removes it


def recover(store: WorldStore) -> None:
    """Undo a half-done rename-pair swap: if the target vanished but its ``.old`` exists, restore it."""
    old = store.path.with_name(store.path.name + ".old")
    if old.exists() and not store.path.exists():
        os.rename(old, store.path)
