"""Code versions derived from the source that produces each stage's data.

A stage's code version is a hash of the files its output depends on, so editing a world's
module (or the storage code) marks the dependent assets stale in Dagster without anyone having
to remember to bump a number.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from macro_data import paths

_PKG = Path(__file__).resolve().parent

# Files (relative to the project root) each stage's output depends on; globs allowed.
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "world_draws": ("macro_data/worlds/*.py", "macro_data/storage/*.py", "macro_data/pipeline/common.py",
                    "macro_data/pipeline/world_draws.py"),
    "world_arrays": ("macro_data/worlds/*.py", "macro_data/storage/*.py", "macro_data/pipeline/common.py",
                     "macro_data/pipeline/world_arrays.py"),
    "world_splits": ("macro_data/worlds/*.py", "macro_data/splits.py", "macro_data/storage/*.py",
                     "macro_data/pipeline/common.py", "macro_data/pipeline/world_splits.py"),
    "dataset_manifest": ("macro_data/pipeline/manifest.py", "macro_data/storage/*.py",
                         "schemas/manifest.schema.json"),
}


@lru_cache(maxsize=None)
def code_version(stage: str) -> str:
    """``<stage>-<12 hex>``: SHA-256 over the stage's source files (path and bytes, sorted by path)."""
    h = hashlib.sha256()
    files = sorted({p for pattern in STAGE_SOURCES[stage] for p in paths.PROJECT_ROOT.glob(pattern)})
    for f in files:
        h.update(f.relative_to(paths.PROJECT_ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return f"{stage}-{h.hexdigest()[:12]}"
