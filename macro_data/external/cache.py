"""Content-addressed cache of verified files, with quarantine.

Layout under ``<root>/external/`` (``root`` = ``$MACRO_DATA_ROOT``, default ``datasets/build``)::

    objects/<sha256>/<filename>          a verified file, named by the registry sha256
    objects/<sha256>/members/<path>      an archive's verified members (renamed into place whole)
    objects/<sha256>/.<filename>.<id>.part   a download in progress (deleted on any failure)
    quarantine/<utc>-<sha256[:12]>-<filename>   files that failed re-verification, kept for inspection
    locks/<sha256>.lock                  per-object lock
    provenance.jsonl                     append-only provenance (see :mod:`.provenance`)

A cache hit is always re-hashed before use; a file whose size or hash is wrong is moved to
``quarantine/`` and fetched again. Files are published with :func:`macro_data.files.atomic_file`
(fsync and atomic rename), so readers see either no file or a complete verified one.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from macro_data import paths
from macro_data.external.errors import ExternalDataError
from macro_data.external.hashes import file_sha256
from macro_data.external.registry import Entry
from macro_data.files import temp_path


@dataclass(frozen=True)
class FileCheck:
    """Outcome of re-verifying one cached file."""

    path: Path
    exists: bool
    ok: bool
    sha256: str | None = None
    size: int | None = None
    reason: str = ""


def _utc_stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class Cache:
    """The external-data cache under ``<root>/external``."""

    def __init__(self, root: str | os.PathLike | None = None):
        root = root if root is not None else paths.data_root()
        if isinstance(root, str) and "://" in root:
            # locks, fsync and atomic renames need a local file system; object stores give none of them
            raise ExternalDataError(
                f"the external-data cache needs a local directory, but the data root is "
                f"{root!r}: pass --root DIR (or data_root to the resource)"
            )
        self.root = Path(root)
        self.base = self.root / "external"

    @property
    def objects_dir(self) -> Path:
        return self.base / "objects"

    @property
    def quarantine_dir(self) -> Path:
        return self.base / "quarantine"

    @property
    def locks_dir(self) -> Path:
        return self.base / "locks"

    @property
    def work_dir(self) -> Path:
        """Scratch space for pins (hash not known yet); same file system as the objects."""
        return self.base / "work"

    @property
    def provenance_path(self) -> Path:
        return self.base / "provenance.jsonl"

    def object_dir(self, sha256: str) -> Path:
        return self.objects_dir / sha256

    def object_path(self, entry: Entry) -> Path:
        return self.object_dir(entry.sha256 or "unpinned") / entry.filename

    def members_dir(self, entry: Entry) -> Path:
        return self.object_dir(entry.sha256 or "unpinned") / "members"

    def new_work_path(self, label: str) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return temp_path(self.work_dir / label)

    def remove_stale_parts(self, sha256: str) -> list[Path]:
        """Delete the temporary files of :func:`~macro_data.files.atomic_file` left by crashed downloads.

        Call it only while holding the object's lock (a writer holds it while its file is in progress).
        """
        removed = []
        d = self.object_dir(sha256)
        if d.is_dir():
            for p in d.glob(".*.part"):
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    def check_file(self, path: Path, sha256: str, size: int) -> FileCheck:
        """Re-verify one file: size first (cheap), then sha256."""
        try:
            st = path.lstat()
        except FileNotFoundError:
            return FileCheck(path, False, False, reason="missing")
        if not path.is_file() or path.is_symlink():
            return FileCheck(path, True, False, reason="not a regular file")
        if st.st_size != size:
            return FileCheck(
                path, True, False, size=st.st_size, reason=f"size {st.st_size} differs from the registry size {size}"
            )
        actual, n = file_sha256(path)
        if actual != sha256:
            return FileCheck(
                path, True, False, actual, n, reason=f"sha256 mismatch: expected {sha256}, actual {actual}"
            )
        return FileCheck(path, True, True, actual, n)

    def quarantine(self, path: Path, sha256: str) -> Path:
        """Move a file or folder that failed verification out of the way (kept for inspection)."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        target = self.quarantine_dir / f"{_utc_stamp()}-{sha256[:12]}-{path.name}"
        shutil.move(str(path), str(target))
        return target

    def object_dirs(self) -> list[Path]:
        if not self.objects_dir.is_dir():
            return []
        return sorted(p for p in self.objects_dir.iterdir() if p.is_dir())
