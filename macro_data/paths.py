"""Where the project keeps its files: recipes, registry, schemas, and the generated-data root.

Environment variables (read at call time, so tests and run config can change them):
``MACRO_DATA_ROOT`` output root (default ``datasets/build`` under the project),
``MACRO_DATA_RECIPE`` recipe name or path (default ``default``),
``MACRO_DATA_REGISTRY`` external-data registry path (default ``datasets/external.yaml``).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATASETS_DIR = PROJECT_ROOT / "datasets"
RECIPES_DIR = DATASETS_DIR / "recipes"
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
DEFAULT_REGISTRY = DATASETS_DIR / "external.yaml"


def data_root() -> Path | str:
    """The generated-data root: ``$MACRO_DATA_ROOT`` (a path or an ``s3://`` URL) or ``datasets/build``."""
    root = os.environ.get("MACRO_DATA_ROOT")
    if root and "://" in root:
        return root
    return Path(root or DATASETS_DIR / "build")


def registry_path() -> Path:
    """The external-data registry: ``$MACRO_DATA_REGISTRY`` or ``datasets/external.yaml``."""
    return Path(os.environ.get("MACRO_DATA_REGISTRY") or DEFAULT_REGISTRY)


def schema_path(name: str) -> Path:
    """Path of a JSON Schema shipped in ``schemas/`` (``name`` without ``.schema.json``)."""
    return SCHEMAS_DIR / f"{name}.schema.json"
