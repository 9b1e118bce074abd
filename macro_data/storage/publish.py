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

On object storage (``s3://``), where there is no rename, :class:`ObjectWorldStore` publishes by
pointer: each stage writes an immutable version group ``<world>/<stage>/v-<time>-<id>.zarr`` and
then replaces the small pointer object ``<world>/<stage>.json`` with one PUT. Readers (and the
manifest, which is written last and names the exact versions) follow the pointers, so they never
see a partial version; stages own separate pointers, so they never overwrite each other's arrays.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import json
import os
import posixpath
import shutil
import socket
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock
import zarr

from macro_data.errors import StorageError
from macro_data.files import file_lock, fsync_path, fsync_paths
from macro_data.storage import locations

LOCK_TIMEOUT_S = 600.0
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def exchange(a: Path, b: Path) -> None:
    """Atomically swap two existing paths (Linux ``renameat2``); ``OSError`` if unsupported."""
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


def _owner_tag(label: str) -> str:
    return f"{label}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def owner_alive(tag: str) -> bool:
    """Whether the process that owns an entry tagged ``<label>-<host>-<pid>-<id>`` still runs on this
    host (host names may contain dashes too)."""
    marker = f"-{socket.gethostname()}-"
    at = tag.rfind(marker)
    if at < 0:
        return True  # another host's (or unknown) entry: leave it alone
    try:
        os.kill(int(tag[at + len(marker) :].split("-", 1)[0]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def world_store(dataset: str | os.PathLike, world_id: str) -> WorldStore | ObjectWorldStore:
    """The store of one world of a dataset: local folder (default) or object storage."""
    if locations.is_remote(dataset):
        return ObjectWorldStore(str(dataset), world_id)
    return WorldStore(Path(dataset), world_id)


class WorldStore:
    """The published group ``<dataset>/<world>.zarr`` and its staging area (local file system)."""

    def __init__(self, dataset_dir: Path, world_id: str):
        self.dataset_dir = Path(dataset_dir)
        self.world_id = world_id
        self.path = self.dataset_dir / f"{world_id}.zarr"
        self.location = str(self.path)
        self.staging_dir = self.dataset_dir / ".staging" / world_id
        self.lock_path = self.dataset_dir / ".locks" / f"{world_id}.lock"

    def open_array(self, name: str) -> zarr.Array:
        return zarr.open_array(str(self.path / name), mode="r")

    def relative_path(self, name: str) -> str:
        """Path of an array relative to the dataset folder (as the manifest records it)."""
        return f"{self.world_id}.zarr/{name}"

    def stored_bytes(self, name: str) -> int:
        return locations.stored_bytes(str(self.path / name))

    def inputs(self, staged: zarr.Group, names: list[str], what: str) -> zarr.Group:
        """Hard-link the published input arrays into the stage's private folder and open them there.

        A concurrent republish of the inputs then cannot change what this stage reads half-way.
        """
        missing = [n for n in names if n not in self.array_names()]
        if missing:
            raise StorageError(
                f"world {self.world_id!r}: {what} needs arrays {', '.join(missing)}, missing from "
                f"{self.path}; materialize world_draws for this world first"
            )
        snap = Path(str(staged.store.root)) / staged.path / ".inputs"
        with self.lock():
            snap.mkdir(parents=True)
            os.link(self.path / "zarr.json", snap / "zarr.json")
            for n in names:
                shutil.copytree(self.path / n, snap / n, copy_function=os.link)
        return zarr.open_group(str(snap), mode="r")

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
        return file_lock(self.lock_path, timeout=LOCK_TIMEOUT_S)

    @contextlib.contextmanager
    def staging(
        self, label: str, group_attributes: dict, adopt: Callable[[Path], bool] | None = None
    ) -> Iterator[zarr.Group]:
        """A private Zarr group to write new arrays into; removed afterwards whatever happens.

        ``adopt(folder)``: a staging area that a dead process of this host left for the same label
        is taken over (renamed to this process's tag, so two resuming processes never share one)
        when ``adopt`` accepts it, instead of starting empty. Other debris of dead processes is
        removed.
        """
        path = self.staging_dir / _owner_tag(f"stage.{label}")
        try:
            self.staging_dir.mkdir(parents=True, exist_ok=True)
            adopted = self._adopt(label, path, adopt) if adopt is not None else False
            self.clean_debris(label)
            if adopted:
                group = zarr.open_group(str(path), mode="r+")
            else:
                group = zarr.open_group(str(path), mode="w", attributes=group_attributes)
        except OSError as exc:
            raise StorageError(
                f"world {self.world_id!r}: cannot create the staging area {path} "
                f"({exc.strerror or exc}); nothing was changed"
            ) from exc
        try:
            yield group
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _adopt(self, label: str, path: Path, accept: Callable[[Path], bool]) -> bool:
        for p in sorted(self.staging_dir.iterdir()):
            if p.name.startswith(f"stage.{label}-") and p.is_dir() and not owner_alive(p.name) and accept(p):
                try:
                    os.rename(p, path)  # atomic: of two processes resuming at once, one wins
                except OSError:
                    continue
                return True
        return False

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
                fsync_path(new / "zarr.json")
                fsync_path(new)
                if self.path.exists():
                    try:
                        exchange(new, self.path)
                    except OSError as exc:
                        if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
                            raise
                        _swap_by_renames(new, self.path)
                else:
                    os.rename(new, self.path)
                fsync_path(self.dataset_dir)
                shutil.rmtree(new, ignore_errors=True)  # after an exchange this holds the old group
        except filelock.Timeout:
            raise StorageError(
                f"world {self.world_id!r}: another run has held the publish lock "
                f"{self.lock_path} for over {LOCK_TIMEOUT_S:.0f} s"
            ) from None
        except OSError as exc:
            raise StorageError(
                f"world {self.world_id!r}: publishing {', '.join(arrays)} into {self.path} "
                f"failed ({exc}); the previously published version is unchanged"
            ) from exc

    def clean_debris(self, label: str | None = None) -> None:
        """Remove staging entries left by processes that died (kill -9) on this host.

        A dead stage's staging area is what that stage resumes from, so with ``label`` (the stage
        cleaning up) the staging areas of the *other* stages are kept for them; each stage removes
        its own when it runs (after trying to adopt them)."""
        if not self.staging_dir.is_dir():
            return
        for p in self.staging_dir.iterdir():
            if owner_alive(p.name):
                continue
            if label is not None and p.name.startswith("stage.") and not p.name.startswith(f"stage.{label}-"):
                continue
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def consolidate(path: Path | str) -> None:
    """Consolidated metadata (one read opens the whole group, e.g. in xarray).

    Zarr warns that consolidation is not yet part of the v3 specification; readers that ignore it
    still read the per-array metadata, which stays authoritative.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        if locations.is_remote(path):
            store = zarr.storage.FsspecStore.from_url(str(path), storage_options=locations.storage_options(str(path)))
            zarr.consolidate_metadata(store)
        else:
            zarr.consolidate_metadata(str(path))


def _fsync_tree(path: Path) -> None:
    """fsync every file under ``path``, then every directory (so no entry points at unsynced data)."""
    files, dirs = [], []
    for dirpath, _, names in os.walk(path):
        dirs.append(dirpath)
        files += [os.path.join(dirpath, f) for f in names]
    fsync_paths(files)
    fsync_paths(dirs)


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


class ObjectWorldStore:
    """A world on object storage: immutable versions per stage, published by pointer (see module doc)."""

    KEEP_VERSIONS = 2  # the current version of a stage and the one before (for readers still on it)

    def __init__(self, dataset: str, world_id: str):
        self.dataset = dataset.rstrip("/")
        self.world_id = world_id
        self.base = locations.join(self.dataset, world_id)
        self.location = self.base
        self._snapshot: dict[str, dict] | None = None
        self._groups: dict[str, zarr.Group] = {}  # published versions are immutable: opened once

    def _pointer(self, stage: str) -> str:
        return locations.join(self.base, f"{stage}.json")

    def _pointers(self) -> dict[str, dict]:
        """Every stage's pointer, read once per store object: what is read through one store is one
        consistent set of versions, and a lookup is not a listing plus a GET per stage each time. A
        publish through this store reads them again; a store made later (:func:`world_store`) sees
        publishes made elsewhere."""
        if self._snapshot is None:
            fs, path = locations.filesystem(self.base)
            out = {}
            for entry in fs.glob(path + "/*.json") if fs.exists(path) else []:
                stage = posixpath.basename(entry)[: -len(".json")]
                out[stage] = json.loads(fs.cat_file(entry))
            self._snapshot = out
        return self._snapshot

    def exists(self) -> bool:
        return bool(self._pointers())

    def array_names(self) -> set[str]:
        return {a for p in self._pointers().values() for a in p["arrays"]}

    def _owner(self, name: str) -> dict:
        for p in self._pointers().values():
            if name in p["arrays"]:
                return p
        raise StorageError(f"world {self.world_id!r}: no published array {name!r} under {self.base}")

    def _group(self, group: str) -> zarr.Group:
        if group not in self._groups:
            self._groups[group] = locations.open_group(locations.join(self.dataset, group), mode="r")
        return self._groups[group]

    def open_array(self, name: str) -> zarr.Array:
        return self._group(self._owner(name)["group"])[name]

    def relative_path(self, name: str) -> str:
        return f"{self._owner(name)['group']}/{name}"

    def stored_bytes(self, name: str) -> int:
        return locations.stored_bytes(locations.join(self.dataset, self.relative_path(name)))

    def open(self) -> zarr.Group:
        raise StorageError(
            f"world {self.world_id!r} on object storage has one group per stage; open arrays "
            f"with open_array() or through the manifest"
        )

    @contextlib.contextmanager
    def staging(
        self, label: str, group_attributes: dict, adopt: Callable[[Path], bool] | None = None
    ) -> Iterator[zarr.Group]:
        """A fresh, not yet referenced version group; removed if the stage fails before publishing.
        (Object storage does not resume interrupted stages: ``adopt`` is ignored.)"""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        loc = locations.join(self.base, label, f"v-{stamp}-{uuid.uuid4().hex[:8]}.zarr")
        group = locations.open_group(loc, mode="w", attributes=group_attributes)
        self._staged = getattr(self, "_staged", {})
        self._staged[loc] = (label, False)
        try:
            yield group
        finally:
            if not self._staged.pop(loc, (label, False))[1]:
                locations.remove(loc)

    def inputs(self, staged: zarr.Group, names: list[str], what: str) -> zarr.Group:
        """Published versions are immutable: read the inputs' current version directly."""
        owner = self._pointers()
        for p in owner.values():
            if all(n in p["arrays"] for n in names):
                return self._group(p["group"])
        raise StorageError(
            f"world {self.world_id!r}: {what} needs arrays {', '.join(names)}, not published under "
            f"{self.base}; materialize world_draws for this world first"
        )

    def publish(self, staged: zarr.Group, arrays: list[str], group_attributes: dict) -> None:
        loc = locations.group_location(staged)
        label, _ = self._staged[loc]
        staged.attrs.put(group_attributes)
        consolidate(loc)
        pointer = {
            "group": loc[len(self.dataset) + 1 :],
            "arrays": sorted(arrays),
            "stage": label,
            "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        try:
            locations.write_bytes_atomic(self._pointer(label), json.dumps(pointer, indent=1).encode())
        except OSError as exc:
            raise StorageError(
                f"world {self.world_id!r}: publishing {label} to {self._pointer(label)} failed "
                f"({exc}); the previously published version is unchanged"
            ) from exc
        self._staged[loc] = (label, True)
        self._snapshot = None
        self._collect(label, keep=posixpath.basename(loc))

    def _collect(self, label: str, keep: str) -> None:
        fs, path = locations.filesystem(locations.join(self.base, label))
        versions = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))
        old = [v for v in versions if v != keep][: max(0, len(versions) - self.KEEP_VERSIONS)]
        for v in old:
            fs.rm(posixpath.join(path, v), recursive=True)

    def clean_debris(self, label: str | None = None) -> None:
        """Nothing to clean: unreferenced versions are removed by the stage or by later publishes."""
