"""Where the package finds its files, and where it writes by default.

Packaged, read-only resources travel inside the package (``macro_data/data/``, read through
:mod:`importlib.resources`): the JSON Schemas, the shipped recipes and the external-data registry.
In git they live once, at the top level (``schemas/``, ``datasets/recipes/``,
``datasets/external.yaml``); ``macro_data/data/`` links to them and a wheel carries copies.

Everything written goes below the current working directory unless configured otherwise, never
into the installation. Environment variables, read at call time (so tests and run config can
change them):

``MACRO_DATA_ROOT``      output root (default ``./datasets/build``; a path or an ``s3://`` URL)
``MACRO_DATA_RECIPE``    recipe name or path (default ``default``)
``MACRO_DATA_REGISTRY``  external-data registry (default ``./datasets/external.yaml`` where it
                         exists, else the registry shipped with the package, read-only)

A recipe *name* is looked up in ``./datasets/recipes/<name>.yaml`` first, then among the shipped
recipes, so a project folder can add or override recipes.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from macro_data.errors import MacroDataError

PACKAGE_DIR = Path(__file__).resolve().parent
LOCAL_DATASETS = Path("datasets")  # relative to the working directory
LOCAL_RECIPES = LOCAL_DATASETS / "recipes"
LOCAL_REGISTRY = LOCAL_DATASETS / "external.yaml"


class MissingResourceError(MacroDataError):
    """A file that should have been installed with the package is not there."""


def packaged(relative: str) -> Traversable:
    """A file shipped in ``macro_data/data/`` (``relative`` like ``schemas/recipe.schema.json``)."""
    item = resources.files("macro_data").joinpath("data", *relative.split("/"))
    if not item.is_file() and not item.is_dir():
        raise MissingResourceError(
            f"packaged resource macro_data/data/{relative} is missing from this installation "
            f"({PACKAGE_DIR}); reinstall macro_data"
        )
    return item


def packaged_recipes() -> dict[str, Traversable]:
    """The shipped recipes by name."""
    folder = packaged("recipes")
    return {p.name[: -len(".yaml")]: p for p in folder.iterdir() if p.name.endswith(".yaml")}


def data_root() -> Path | str:
    """The generated-data root: ``$MACRO_DATA_ROOT`` (a path or an ``s3://`` URL) or ``./datasets/build``."""
    root = os.environ.get("MACRO_DATA_ROOT")
    if root and "://" in root:
        return root
    return Path(root) if root else Path.cwd() / LOCAL_DATASETS / "build"


def registry_path() -> Path:
    """The external-data registry: ``$MACRO_DATA_REGISTRY``, else ``./datasets/external.yaml`` where it
    exists, else the one shipped with the package."""
    if os.environ.get("MACRO_DATA_REGISTRY"):
        return Path(os.environ["MACRO_DATA_REGISTRY"])
    local = Path.cwd() / LOCAL_REGISTRY
    if local.is_file():
        return local
    return Path(str(packaged("external.yaml")))


def is_packaged(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies inside the installed package, or is reached through its ``data/`` links
    (read-only either way: never edited in place)."""
    here, there = Path(os.path.abspath(path)), Path(os.path.realpath(path))
    for candidate, package in ((here, Path(os.path.abspath(__file__)).parent), (there, PACKAGE_DIR)):
        if candidate == package or package in candidate.parents:
            return True
    return False


def schema_text(name: str) -> str:
    """The JSON Schema ``<name>.schema.json`` shipped with the package."""
    return packaged(f"schemas/{name}.schema.json").read_text(encoding="utf-8")


def source_checkout() -> Path | None:
    """The git checkout the package is imported from (an editable install), or ``None``."""
    parent = PACKAGE_DIR.parent
    return parent if (parent / ".git").exists() and (parent / "pyproject.toml").is_file() else None
