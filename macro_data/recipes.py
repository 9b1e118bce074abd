"""Dataset recipes: declarative, schema-validated descriptions of a dataset.

A recipe is a YAML file (``datasets/recipes/<name>.yaml`` or any path) checked against
``schemas/recipe.schema.json`` and then against rules a schema cannot express (prior overrides
inside each parameter's bounds). Errors name the file, the field and the rule.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from macro_data import paths
from macro_data.errors import MacroDataError, RecipeError
from macro_data.worlds import WORLD_IDS, get_world

DEFAULT_CHUNK_SAMPLES = 1000
DEFAULT_CLEVEL = 3
MAX_RECIPE_BYTES = 1_000_000  # a recipe is a few hundred bytes; refuse anything absurd before parsing


@dataclass(frozen=True)
class WorldPlan:
    """One world of a recipe: sample count and resolved prior bounds."""

    world_id: str
    n_samples: int
    priors: dict[str, tuple[float, float]]
    prior_overrides: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``document`` is the recipe as written plus defaults; ``sha256`` hashes it."""

    name: str
    version: str
    seed: int
    T: int
    H: int
    worlds: dict[str, WorldPlan]
    chunk_samples: int
    clevel: int
    document: dict[str, Any]
    source: str
    sha256: str

    @property
    def world_ids(self) -> list[str]:
        """Worlds of the recipe in the package's display order."""
        return [w for w in WORLD_IDS if w in self.worlds]

    def world(self, world_id: str) -> WorldPlan:
        if world_id not in self.worlds:
            raise RecipeError(f"recipe {self.source}: world {world_id!r} is not part of recipe {self.name!r} "
                              f"(its worlds: {', '.join(self.world_ids)})")
        return self.worlds[world_id]

    def dataset_dir(self, root: str | os.PathLike) -> str:
        """``<root>/<name>/<version>``: a local path or an object-storage URL."""
        from macro_data.storage.locations import join

        return join(root, self.name, self.version)


def canonical_json(doc: Any) -> bytes:
    """The byte form that is hashed: sorted keys, no insignificant white space, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def resolve_recipe_path(name_or_path: str | os.PathLike | None = None) -> Path:
    """A recipe name in ``datasets/recipes/`` or a path; default ``$MACRO_DATA_RECIPE`` or ``default``."""
    spec = str(name_or_path or os.environ.get("MACRO_DATA_RECIPE") or "default")
    candidate = Path(spec)
    if candidate.suffix in (".yaml", ".yml", ".json") or os.sep in spec or "/" in spec:
        path = candidate
    else:
        path = paths.RECIPES_DIR / f"{spec}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in paths.RECIPES_DIR.glob("*.yaml"))
        raise RecipeError(f"recipe {spec!r}: no such file {path} (recipes shipped: {', '.join(known)})")
    return path


def _schema() -> dict:
    return json.loads(paths.schema_path("recipe").read_text())


def _field_path(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(top level)"


def parse_recipe(document: Any, source: str = "<recipe>") -> Recipe:
    """Validate a recipe document (already parsed) and build a :class:`Recipe`."""
    if not isinstance(document, dict):
        raise RecipeError(f"recipe {source}: the top level must be a mapping; got {type(document).__name__}")
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        lines = [f"field {_field_path(e)}: {e.message} (rule: {e.validator})" for e in errors[:10]]
        raise RecipeError(f"recipe {source} does not match schemas/recipe.schema.json:\n  " + "\n  ".join(lines))
    storage = dict(document.get("storage") or {})
    storage.setdefault("chunk_samples", DEFAULT_CHUNK_SAMPLES)
    storage.setdefault("clevel", DEFAULT_CLEVEL)
    doc = {**document, "storage": storage}
    worlds: dict[str, WorldPlan] = {}
    for world_id, spec in document["worlds"].items():
        overrides = {k: {"low": float(v["low"]), "high": float(v["high"])} for k, v in (spec.get("priors") or {}).items()}
        try:
            priors = get_world(world_id).resolve_priors(overrides)
        except MacroDataError as exc:
            raise RecipeError(f"recipe {source}: field worlds/{world_id}/priors: {exc}") from None
        worlds[world_id] = WorldPlan(world_id, int(spec["n_samples"]), priors, overrides)
    try:
        digest = hashlib.sha256(canonical_json(doc)).hexdigest()
    except ValueError as exc:  # NaN/inf that slipped through as YAML .nan/.inf
        raise RecipeError(f"recipe {source}: non-finite number in the recipe ({exc})") from None
    return Recipe(name=doc["name"], version=doc["version"], seed=int(doc["seed"]), T=int(doc["T"]), H=int(doc["H"]),
                  worlds=worlds, chunk_samples=int(storage["chunk_samples"]), clevel=int(storage["clevel"]),
                  document=doc, source=source, sha256=digest)


class _NoAliasSafeLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases: a recipe never needs them and they enable expansion bombs."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not allowed in recipes", event.start_mark)
        return super().compose_node(parent, index)


def load_yaml_document(path: Path, what: str) -> Any:
    """Parse a small YAML file safely (no aliases, size-capped); errors name the file and line."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RecipeError(f"{what} {path}: cannot read ({exc.strerror})") from None
    if size > MAX_RECIPE_BYTES:
        raise RecipeError(f"{what} {path}: {size} bytes is larger than the {MAX_RECIPE_BYTES}-byte limit")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliasSafeLoader)
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{what} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{what} {path}: invalid YAML: {exc}") from None
    except RecursionError:
        raise RecipeError(f"{what} {path}: nesting too deep") from None


def load_recipe(name_or_path: str | os.PathLike | None = None) -> Recipe:
    """Load and validate a recipe by name (``datasets/recipes/<name>.yaml``) or path."""
    path = resolve_recipe_path(name_or_path)
    return parse_recipe(load_yaml_document(path, "recipe"), source=str(path))
