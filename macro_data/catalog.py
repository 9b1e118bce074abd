"""The catalog of a data root: which datasets and versions it holds, and the debris builds leave.

Layout scanned: ``<root>/<name>/<version>/`` (a version folder: ``recipe.json``, ``manifest.json``,
``README.md``, ``<world>.zarr``, reports), ``<root>/<name>/.replace/<version>/`` (a replacement
being built) and, inside a version, ``.staging/`` (work in progress), ``.locks/`` and ``.checks/``
(persisted world-check results, see :mod:`macro_data.validation.reuse`; not debris).

A version's status: ``complete`` (its manifest lists every world of its recipe and each store is
there), ``partial`` (built worlds but no manifest yet, or a manifest missing stores),
``empty`` (recorded recipe, nothing built). Its validation: the report's verdict if the report was
made for the current manifest, ``stale`` if for an older one, ``none`` without one.

Local roots only for :func:`debris` and :func:`remove_version`; :func:`scan` reads object storage
too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import filelock

from macro_data.errors import MacroDataError
from macro_data.files import file_lock
from macro_data.pipeline.release import MANIFEST_FILE, RECIPE_FILE, REPLACE_DIR
from macro_data.storage import locations
from macro_data.storage.publish import owner_alive
from macro_data.validation.dataset import REPORT_JSON

STALE_LOCK_S = 3600.0  # a lock file nobody holds and nobody touched for an hour is debris


class CatalogError(MacroDataError):
    """A catalog operation that cannot be done (unknown version, unwritable root, no confirmation)."""


@dataclass
class VersionInfo:
    """One version of a dataset under a root."""

    name: str
    version: str
    path: str
    status: str  # complete | partial | empty
    worlds: dict[str, int] = field(default_factory=dict)  # world -> samples (as recorded)
    missing_worlds: list[str] = field(default_factory=list)
    validation: dict = field(default_factory=dict)  # status, headline, score, skipped, checks
    bytes: int = 0
    created_at: str | None = None
    recipe_sha256: str | None = None
    replacement_in_progress: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _json(location: str) -> dict | None:
    try:
        return json.loads(locations.read_bytes(location)) if locations.exists(location) else None
    except (OSError, ValueError):
        return None


def _children(location: str) -> list[str]:
    if locations.is_remote(location):
        fs, path = locations.filesystem(location)
        if not fs.exists(path):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    folder = Path(location)
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def describe_version(root: str, name: str, version: str) -> VersionInfo:
    """What a version folder holds (see the module docstring for statuses)."""
    import hashlib

    path = locations.join(root, name, version)
    manifest_raw = None
    manifest_path = locations.join(path, MANIFEST_FILE)
    if locations.exists(manifest_path):
        manifest_raw = locations.read_bytes(manifest_path)
    manifest = json.loads(manifest_raw) if manifest_raw else None
    record = _json(locations.join(path, RECIPE_FILE))
    recipe = (manifest or {}).get("recipe") or (record or {}).get("recipe") or {}
    worlds = {w: int(spec.get("n_samples", 0)) for w, spec in (recipe.get("worlds") or {}).items()}
    stores = {c[: -len(".zarr")] for c in _children(path) if c.endswith(".zarr")}
    missing = sorted(set(worlds) - stores)
    if manifest is not None and not missing and set(manifest.get("worlds", {})) == set(worlds):
        status = "complete"
    elif stores:
        status = "partial"
    else:
        status = "empty"
    validation: dict = {"status": "none"}
    report = _json(locations.join(path, REPORT_JSON))
    if report is not None:
        current = (
            manifest_raw is not None
            and report["dataset"].get("manifest_sha256") == hashlib.sha256(manifest_raw).hexdigest()
        )
        if current:
            from macro_data.validation.report import headline

            s = report["summary"]
            validation = {
                "status": report["status"],
                "headline": headline(report),
                "score": report["score"]["value"],
                "checks": s["checks"],
                "failed": s["fail"],
                "warnings": s["warn"],
                "skipped": s["skipped"],
            }
        else:
            validation = {"status": "stale", "headline": "report made for an older manifest"}
    created = (manifest or {}).get("dataset", {}).get("created_at") or (record or {}).get("recorded_at")
    return VersionInfo(
        name,
        version,
        path,
        status,
        worlds,
        missing,
        validation,
        locations.stored_bytes(path),
        created,
        (manifest or record or {}).get("recipe_sha256"),
        version in _children(locations.join(root, name, REPLACE_DIR)),
    )


def scan(root: str | os.PathLike) -> list[VersionInfo]:
    """Every version of every dataset under ``root``, by name then version."""
    root = str(root)
    out = []
    for name in _children(root):
        if name.startswith(".") or name == "external":
            continue
        for version in _children(locations.join(root, name)):
            if version.startswith("."):
                continue
            folder = locations.join(root, name, version)
            if not any(locations.exists(locations.join(folder, f)) for f in (RECIPE_FILE, MANIFEST_FILE)) and not any(
                c.endswith(".zarr") for c in _children(folder)
            ):
                continue  # not a dataset version
            out.append(describe_version(root, name, version))
    return out


@dataclass
class Debris:
    """Something a build left behind that no process uses."""

    kind: str  # staging | lock | replacement | temporary
    path: str
    reason: str
    bytes: int = 0


def debris(root: str | os.PathLike) -> list[Debris]:
    """Abandoned staging areas (their process died on this host), lock files nobody holds or touched for
    :data:`STALE_LOCK_S`, replacement areas nobody is building, and temporary files of dead writers."""
    root = Path(root)
    if locations.is_remote(str(root)) or not root.is_dir():
        return []
    out: list[Debris] = []
    now = time.time()
    for dataset in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for trash in sorted(dataset.glob(".removing-*")):
            if not owner_alive(trash.name):
                out.append(
                    Debris(
                        "removal",
                        str(trash),
                        "a version whose removal was interrupted",
                        locations.stored_bytes(str(trash)),
                    )
                )
        folders = [v for v in dataset.iterdir() if v.is_dir() and not v.name.startswith(".")]
        replace_root = dataset / REPLACE_DIR
        replacements = [v for v in replace_root.iterdir() if v.is_dir()] if replace_root.is_dir() else []
        for version in [*folders, *replacements]:
            staging = version / ".staging"
            live_staging = False
            for world_dir in sorted(staging.iterdir()) if staging.is_dir() else []:
                for entry in sorted(world_dir.iterdir()) if world_dir.is_dir() else [world_dir]:
                    if entry.name.endswith(".part"):
                        out.append(
                            Debris(
                                "temporary", str(entry), "temporary file of an interrupted write", entry.stat().st_size
                            )
                        )
                    elif not owner_alive(entry.name):
                        out.append(
                            Debris(
                                "staging",
                                str(entry),
                                "staging area of a process that is gone",
                                locations.stored_bytes(str(entry)),
                            )
                        )
                    else:
                        live_staging = True
            locks = version / ".locks"
            for lock in sorted(locks.glob("*.lock")) if locks.is_dir() else []:
                if now - lock.stat().st_mtime < STALE_LOCK_S:
                    continue
                try:
                    with file_lock(lock, timeout=0):
                        out.append(
                            Debris("lock", str(lock), f"held by nobody, untouched for over {STALE_LOCK_S:.0f} s")
                        )
                except filelock.Timeout:
                    pass
            if version.parent == replace_root and not live_staging:
                out.append(
                    Debris(
                        "replacement",
                        str(version),
                        "replacement build nobody is running (a later --replace of the same recipe would resume it)",
                        locations.stored_bytes(str(version)),
                    )
                )
    return out


def collect(items: list[Debris]) -> list[Debris]:
    """Remove debris (as found by :func:`debris`); returns what was removed."""
    removed = []
    for d in items:
        p = Path(d.path)
        try:
            if d.kind == "lock":
                with file_lock(p, timeout=0):
                    p.unlink(missing_ok=True)
            elif p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        except (OSError, filelock.Timeout):
            continue
        removed.append(d)
    return removed


def remove_version(root: str | os.PathLike, name: str, version: str) -> str:
    """Remove ``<root>/<name>/<version>`` (and its replacement area): first renamed out of sight in one
    step, so readers see the whole version or nothing, then deleted. Returns the path removed."""
    root = str(root)
    path = locations.join(root, name, version)
    if (
        not locations.exists(path)
        or describe_version(root, name, version).status == "empty"
        and not locations.exists(locations.join(path, RECIPE_FILE))
    ):
        known = [f"{v.name}@{v.version}" for v in scan(root)]
        raise CatalogError(
            f"no dataset version {name}@{version} under {root} (versions there: {', '.join(known) or 'none'})"
        )
    if locations.is_remote(path):
        locations.remove(path)
        return path
    trash = Path(root) / name / f".removing-{version}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, trash)
    except OSError as exc:
        raise CatalogError(f"cannot remove {path} ({exc.strerror or exc})") from exc
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(Path(root) / name / REPLACE_DIR / version, ignore_errors=True)
    return path
