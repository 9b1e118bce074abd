"""Releases: a published ``name@version`` never changes under its name.

The first build of a version records the recipe it is built from in ``<version>/recipe.json``
(the recipe document, its SHA-256, and when), under a lock, before any stage writes. Every later
build of that version, whatever the entry point (``macro-data build``, ``dagster asset
materialize``, the UI), checks its recipe against that record first and is refused, naming the
dataset, the version and the recipe fields that differ, when the hashes differ. Nothing is
written then. Rebuilding the same recipe (after a code change, or with ``force``) stays allowed.

A version is rebuilt from another recipe only on request (``replace``): the stages then write into
a private area beside it, ``<root>/<name>/.replace/<version>/``, while readers keep seeing the
published version; the manifest stage, once the new version is complete and its manifest
written, swaps the two folders in one atomic exchange (:func:`promote`) and removes the old one.
A replacement that fails or is killed leaves the published version untouched; its area is resumed
by the next ``replace`` build of the same recipe, or discarded by one of another recipe.

Object storage (``s3://``) records and checks the recipe the same way; replacing a version there
is refused (there is no atomic exchange of a whole version): remove it and build it again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macro_data.errors import MacroDataError
from macro_data.files import file_lock, fsync_path
from macro_data.hashing import canonical_json
from macro_data.recipes import Recipe
from macro_data.storage import locations

RECIPE_FILE = "recipe.json"
MANIFEST_FILE = "manifest.json"
REPLACE_DIR = ".replace"
LOCK_TIMEOUT_S = 600.0


class ReleaseError(MacroDataError):
    """A build that would change a published version, or a release operation that cannot be done."""


@dataclass(frozen=True)
class Target:
    """Where a build writes (``dataset_dir``) and the version it publishes (``final_dir``)."""

    dataset_dir: str
    final_dir: str
    replacing: bool = False


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Fields that differ between two recipe documents, as ``field: old -> new`` (nested keys with dots)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{key}: (absent) -> {json.dumps(new[k])}")
            elif k not in new:
                out.append(f"{key}: {json.dumps(old[k])} -> (absent)")
            else:
                out += differences(old[k], new[k], key)
        return out
    return [] if old == new else [f"{prefix or '(recipe)'}: {json.dumps(old)} -> {json.dumps(new)}"]


def replace_dir(recipe: Recipe, root: str | os.PathLike) -> str:
    return locations.join(root, recipe.name, REPLACE_DIR, recipe.version)


def target(recipe: Recipe, root: str | os.PathLike, replace: bool = False) -> Target:
    """Where a build of ``recipe`` writes: the version folder, or its replacement area."""
    final = recipe.dataset_dir(root)
    if not replace:
        return Target(final, final)
    if locations.is_remote(final):
        raise ReleaseError(
            f"dataset {recipe.name}@{recipe.version}: replace is not supported on object storage ({final}); "
            f"remove the version (macro-data remove {recipe.name}@{recipe.version}) and build it again"
        )
    published = recorded(final)
    if published is None:
        raise ReleaseError(
            f"dataset {recipe.name}@{recipe.version}: replace asked for, but no version is published at {final}; "
            f"build it without replace"
        )
    if published["recipe_sha256"] == recipe.sha256:  # the same recipe: nothing to replace, an ordinary build
        return Target(final, final)
    return Target(replace_dir(recipe, root), final, True)


def recorded(dataset_dir: str) -> dict | None:
    """The recipe a version was built from: its ``recipe.json``, else (older versions) its manifest's
    recipe, else the recipe hash stamped on any world store it holds; ``None`` for an empty folder."""
    for name in (RECIPE_FILE, MANIFEST_FILE):
        path = locations.join(dataset_dir, name)
        if locations.exists(path):
            try:
                doc = json.loads(locations.read_bytes(path))
                return {"recipe": doc["recipe"], "recipe_sha256": doc["recipe_sha256"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise ReleaseError(f"{path} is unreadable ({exc}); the version's recipe cannot be checked") from None
    if not locations.is_remote(dataset_dir) and Path(dataset_dir).is_dir():
        for store in sorted(Path(dataset_dir).glob("*.zarr/zarr.json")):
            try:
                sha = json.loads(store.read_bytes())["attributes"]["dataset"]["recipe_sha256"]
            except (ValueError, KeyError, TypeError, OSError):
                continue
            return {"recipe": None, "recipe_sha256": sha}
    return None


def _refusal(recipe: Recipe, where: str, record: dict) -> ReleaseError:
    diff = differences(record["recipe"], recipe.document) if record.get("recipe") is not None else []
    fields = "; ".join(diff[:12]) + (f"; ... ({len(diff)} in all)" if len(diff) > 12 else "")
    what = f"fields that differ: {fields}" if diff else f"its recipe sha256 is {record['recipe_sha256']}"
    return ReleaseError(
        f"dataset {recipe.name}@{recipe.version} at {where} was built from another recipe ({what}); a published "
        f"version never changes: give the recipe a new version, or rebuild this one on purpose with --replace "
        f"(storage resource config replace: true), which keeps the published data until the new build is complete"
    )


def check(recipe: Recipe, target: Target) -> None:
    """:func:`claim` without writing: raise the refusal a build of ``recipe`` into ``target`` would get."""
    existing = recorded(target.dataset_dir)
    if existing is not None and existing["recipe_sha256"] != recipe.sha256 and not target.replacing:
        raise _refusal(recipe, target.dataset_dir, existing)


def claim(recipe: Recipe, target: Target) -> None:
    """Check (and, for a new version, record) the recipe before anything is written; see module doc."""
    where = target.dataset_dir
    path = locations.join(where, RECIPE_FILE)
    record = {
        "name": recipe.name,
        "version": recipe.version,
        "recipe_sha256": recipe.sha256,
        "recipe": recipe.document,
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if locations.is_remote(where):
        existing = recorded(where)
        if existing is not None and existing["recipe_sha256"] != recipe.sha256:
            raise _refusal(recipe, where, existing)
        if existing is None:
            locations.write_bytes_atomic(path, canonical_json(record))
        return
    try:
        Path(where).mkdir(parents=True, exist_ok=True)
        lock = file_lock(Path(where) / ".locks" / "release.lock", timeout=LOCK_TIMEOUT_S)
        (Path(where) / ".locks").mkdir(exist_ok=True)
    except OSError as exc:
        raise ReleaseError(
            f"dataset {recipe.name}@{recipe.version}: cannot write into {where} ({exc.strerror or exc})"
        ) from exc
    with lock:
        existing = recorded(where)
        if existing is not None and existing["recipe_sha256"] == recipe.sha256:
            if not Path(path).exists():  # an older version without the record: add it
                locations.write_bytes_atomic(path, canonical_json(record), tmp_dir=Path(where) / ".locks")
            return
        if existing is not None and not target.replacing:
            raise _refusal(recipe, where, existing)
        if existing is not None:  # an abandoned replacement of another recipe: never published, discard it
            _discard_contents(Path(where))
        locations.write_bytes_atomic(path, canonical_json(record), tmp_dir=Path(where) / ".locks")


def _discard_contents(folder: Path) -> None:
    for p in folder.iterdir():
        if p.name == ".locks":
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def promote(target: Target) -> None:
    """Swap a complete replacement in for the published version (one atomic exchange), then remove
    the old one. A crash in between leaves either the old or the new version published."""
    from macro_data.storage.publish import exchange

    if not target.replacing:
        return
    new, final = Path(target.dataset_dir), Path(target.final_dir)
    if not (new / MANIFEST_FILE).is_file():
        raise ReleaseError(f"replacement at {new} has no manifest yet: it is not complete, nothing was swapped")
    lock = file_lock(final / ".locks" / "release.lock", timeout=LOCK_TIMEOUT_S)
    with lock:
        exchange(new, final)  # readers see the old version or the new one, never a mix
        fsync_path(final.parent)
    shutil.rmtree(new, ignore_errors=True)  # now the old version
