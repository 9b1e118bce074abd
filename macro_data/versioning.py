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

_WORLD_STAGE = ("worlds/*.py", "storage/*.py", "files.py", "pipeline/common.py")

# Files (relative to the package folder) each asset's output depends on; globs allowed.
ASSET_SOURCES: dict[str, tuple[str, ...]] = {
    "world_draws": (*_WORLD_STAGE, "pipeline/world_draws.py"),
    "world_arrays": (*_WORLD_STAGE, "pipeline/world_arrays.py"),
    "world_splits": (*_WORLD_STAGE, "splits.py", "pipeline/world_splits.py"),
    "dataset_manifest": (
        "pipeline/manifest.py",
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
    h = hashlib.sha256()
    files = sorted({p for pattern in ASSET_SOURCES[asset] for p in paths.PACKAGE_DIR.glob(pattern)})
    for f in files:
        h.update(f.relative_to(paths.PACKAGE_DIR).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return f"{asset}-{h.hexdigest()[:12]}"
