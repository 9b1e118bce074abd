"""Code versions derived from the source that produces each asset's data (the one scheme for all assets).

An asset's code version is a hash of the files its output depends on, so editing a world's
module (or the storage code) marks the dependent assets stale in Dagster without anyone having
to remember to bump a number. Paths are relative to the package folder, so an editable checkout
and an installed wheel of the same source give the same versions.
"""

from __future__ import annotations

import hashlib
from functools import cache

from macro_data import paths

_WORLD_STAGE = ("worlds/*.py", "storage/*.py", "files.py", "pipeline/common.py", "pipeline/stage.py")

# Files (relative to the package folder) each asset's output depends on; globs allowed.
ASSET_SOURCES: dict[str, tuple[str, ...]] = {
    "world_draws": (*_WORLD_STAGE, "pipeline/world_draws.py"),
    "world_arrays": (*_WORLD_STAGE, "pipeline/world_arrays.py"),
    "world_splits": (*_WORLD_STAGE, "splits.py", "pipeline/world_splits.py"),
    "world_stats": (*_WORLD_STAGE, "pipeline/world_stats.py"),
    "dataset_manifest": (
        "pipeline/manifest.py",
        "pipeline/world_stats.py",
        "storage/*.py",
        "files.py",
        "environment.py",
        "data/schemas/manifest.schema.json",
    ),
    "validation_report": ("validation/*.py", "data/schemas/validation_report.schema.json"),
    "external_dataset": (
        "external/registry.py",
        "external/urls.py",
        "external/http.py",
        "external/cache.py",
        "external/archives.py",
        "external/tabular.py",
        "external/fetch.py",
        "data/schemas/external_registry.schema.json",
    ),
    "us_macro_moments": ("external/real_data.py", "external/tabular.py"),
}


@cache
def code_version(asset: str) -> str:
    """``<asset>-<12 hex>``: SHA-256 over the asset's source files (path and bytes, sorted by path)."""
    return files_version(asset, ASSET_SOURCES[asset])


@cache
def files_version(label: str, patterns: tuple[str, ...]) -> str:
    """``<label>-<12 hex>``: SHA-256 over the package files matching ``patterns`` (path and bytes)."""
    h = hashlib.sha256()
    files = sorted({p for pattern in patterns for p in paths.PACKAGE_DIR.glob(pattern) if p.is_file()})
    for f in files:
        h.update(f.relative_to(paths.PACKAGE_DIR).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return f"{label}-{h.hexdigest()[:12]}"


def for_world(version: str, world) -> str:
    """A world stage's code version for one world: ``version`` itself for a built-in world, and
    ``<version>+<the world's own code version>`` for a world that has one (a model file's changes
    with the file's bytes and the declared-world compiler), so editing a model file makes only that
    world's stages out of date."""
    own = getattr(world, "code_version", None)
    return f"{version}+{own}" if isinstance(own, str) and own else version


def catalog_version(version: str, worlds) -> str:
    """The Dagster code version of a world stage asset: ``version`` plus a digest of the catalog's
    own world code versions (model files), so that editing a model file shows the stage as changed
    in the UI. Dagster keeps one code version per asset, not per partition; the stages themselves
    compare :func:`for_world` versions, so re-materializing an unaffected world is a no-op."""
    own = sorted(f"{w.name}:{w.code_version}" for w in worlds if isinstance(getattr(w, "code_version", None), str))
    if not own:
        return version
    return f"{version}+worlds-{hashlib.sha256(chr(0).join(own).encode()).hexdigest()[:12]}"
