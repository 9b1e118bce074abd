"""Dataset recipes: declarative, schema-validated descriptions of a dataset.

A recipe is a YAML file (a name: ``./datasets/recipes/<name>.yaml`` or a shipped recipe; or any path) checked against
``schemas/recipe.schema.json`` and then against rules a schema cannot express: prior overrides
inside each parameter's bounds; ``name`` and ``version`` matching their patterns in full (JSON
Schema patterns are searched, and ``$`` also matches before a trailing newline); and nesting at
most :data:`MAX_NESTING` levels deep. Loading a recipe to build it (:func:`load_recipe`) also
checks resource limits before anything is allocated (:func:`check_resources`): one storage chunk of
any array at most :data:`MAX_CHUNK_BYTES` decoded (Blosc refuses buffers over 2 GiB) and one
compute step (the float64 inputs and outputs of one batch of samples, see
:data:`macro_data.worlds.sampling.BATCH_SAMPLES`) at most :data:`MAX_STEP_BYTES`. Errors name the
file, the field and the rule.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from macro_data import config_yaml, paths, schemas
from macro_data.errors import MacroDataError, RecipeError
from macro_data.hashing import canonical_json
from macro_data.worlds import get_world, world_ids
from macro_data.worlds.priors import PriorSet

# A multiple of the 256-sample seeding block and hash segment: regions, growth and resume align on chunks.
DEFAULT_CHUNK_SAMPLES = 1024
DEFAULT_CLEVEL = 3
DEFAULT_LICENSE = "CC-BY-4.0"  # not written into the document, so recipes without it keep their hash
MAX_RECIPE_BYTES = 1_000_000  # a recipe is a few hundred bytes; refuse anything absurd before parsing
MAX_NESTING = 32  # a recipe nests 5 levels; deeper documents are refused before recursive validation
MAX_CHUNK_BYTES = 1 << 30  # decoded bytes of one stored chunk (float32)
MAX_STEP_BYTES = 8 << 30  # float64 inputs and outputs of one compute step of a world
# Generator settings a recipe may give at its top level (every world) and inside a world's entry (that
# world, overriding), with the value that leaves the dataset as it was before the key existed. Defaults
# are not written into the recipe document, so recipes without these keys keep their hash.
WORLD_SETTINGS: dict[str, Any] = {"design": "random", "burn_in": 0, "noise": {}, "irfs": {"states": 0}}


@dataclass(frozen=True)
class WorldPlan:
    """One world of a recipe: sample count, resolved prior bounds and generator settings.

    ``design``, ``burn_in``, ``noise`` and ``irf_states`` are resolved from the recipe: the world's own
    entry, else the recipe's top level, else :data:`WORLD_SETTINGS`.
    """

    world_id: str
    n_samples: int
    priors: PriorSet  # name -> (low, high), and each parameter's Prior (family and arguments)
    prior_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    design: str = "random"
    burn_in: int = 0
    noise: dict[str, float] = field(default_factory=dict)
    irf_states: int = 0


def resolve_settings(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the generator settings resolved into each world's entry, non-default values only.

    The recipe hash is taken of this form: where a setting is written (top level or world entry) or
    whether a default is written explicitly changes nothing, and recipes older than the settings keep
    their hash.
    """
    doc = {k: v for k, v in document.items() if k not in WORLD_SETTINGS}
    doc["worlds"] = {}
    for world_id, spec in document["worlds"].items():
        entry = {k: v for k, v in spec.items() if k not in WORLD_SETTINGS}
        if entry.get("priors"):  # the default family written out changes nothing
            entry["priors"] = {
                name: {k: v for k, v in prior.items() if (k, v) != ("family", "uniform")}
                for name, prior in entry["priors"].items()
            }
        for key, value in world_settings(document, world_id).items():
            default = WORLD_SETTINGS[key]
            if key == "irfs":  # merged key by key: keep the keys off their default
                value = {k: v for k, v in value.items() if v != default[k]}
                if value:
                    entry[key] = value
            elif value != default:
                entry[key] = value
        doc["worlds"][world_id] = entry
    return doc


def world_settings(document: dict[str, Any], world_id: str) -> dict[str, Any]:
    """The generator settings of one world: its entry's keys over the top level's over the defaults.
    ``irfs`` merges key by key (a world may set ``irfs.states`` alone)."""
    entry = document["worlds"][world_id]
    out: dict[str, Any] = {}
    for key, default in WORLD_SETTINGS.items():
        if key == "irfs":
            out[key] = {**default, **(document.get(key) or {}), **(entry.get(key) or {})}
        else:
            out[key] = entry.get(key, document.get(key, default))
    return out


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``document`` is the recipe as written plus storage defaults, with the generator
    settings (:data:`WORLD_SETTINGS`) resolved into each world's entry (non-default values only);
    ``sha256`` hashes it."""

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
    def extends(self) -> tuple[str, str] | None:
        """``(name, version)`` of the dataset this one grows from (``extends: name@version``), if any."""
        value = self.document.get("extends")
        return tuple(value.split("@", 1)) if value else None  # type: ignore[return-value]

    @property
    def license(self) -> str:
        return self.document.get("license") or DEFAULT_LICENSE

    @property
    def citation(self) -> str | None:
        return self.document.get("citation")

    @property
    def world_ids(self) -> list[str]:
        """Worlds of the recipe in the package's display order."""
        return [w for w in world_ids() if w in self.worlds] + sorted(set(self.worlds) - set(world_ids()))

    def world(self, world_id: str) -> WorldPlan:
        if world_id not in self.worlds:
            raise RecipeError(
                f"recipe {self.source}: world {world_id!r} is not part of recipe {self.name!r} "
                f"(its worlds: {', '.join(self.world_ids)})"
            )
        return self.worlds[world_id]

    def dataset_dir(self, root: str | os.PathLike) -> str:
        """``<root>/<name>/<version>``: a local path or an object-storage URL."""
        from macro_data.storage.locations import join

        return join(root, self.name, self.version)


def resolve_recipe_path(name_or_path: str | os.PathLike | None = None) -> Path:
    """A recipe path, or a name looked up in ``./datasets/recipes/`` then among the shipped recipes;
    default ``$MACRO_DATA_RECIPE`` or ``default``."""
    spec = str(name_or_path or os.environ.get("MACRO_DATA_RECIPE") or "default")
    if "\x00" in spec:  # no file system takes it, and path functions raise a bare ValueError on it
        raise RecipeError(f"recipe {spec!r}: a recipe name or path cannot contain a NUL character")
    candidate = Path(spec)
    if candidate.suffix in (".yaml", ".yml", ".json") or os.sep in spec or "/" in spec:
        if not candidate.is_file():
            raise RecipeError(f"recipe {spec!r}: no such file {candidate.resolve()}")
        return candidate
    local = Path.cwd() / paths.LOCAL_RECIPES / f"{spec}.yaml"
    if local.is_file():
        return local
    shipped = paths.packaged_recipes()
    if spec in shipped:
        return Path(str(shipped[spec]))
    local_names = sorted(p.stem for p in (Path.cwd() / paths.LOCAL_RECIPES).glob("*.yaml"))
    raise RecipeError(
        f"recipe {spec!r}: not found in {Path.cwd() / paths.LOCAL_RECIPES} "
        f"({', '.join(local_names) or 'no recipes there'}) nor among the shipped recipes "
        f"({', '.join(sorted(shipped))}); give a name or a path to a .yaml file"
    )


def _too_deep(document: Any, limit: int = MAX_NESTING) -> str | None:
    """Path of the first container nested deeper than ``limit`` (iterative: no recursion on hostile input)."""
    stack = [(document, [], 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth >= limit:
                return "/".join(map(str, path)) or "(top level)"
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((v, path + [k], depth + 1) for k, v in items)
    return None


def check_resources(recipe: Recipe) -> Recipe:
    """Refuse a recipe whose build would need absurd memory, judged from the shapes alone (nothing is
    allocated): one storage chunk over :data:`MAX_CHUNK_BYTES` decoded, or one compute step over
    :data:`MAX_STEP_BYTES`. :func:`load_recipe` (what every build uses) applies it; :func:`parse_recipe`
    does not, so the recipe recorded in an existing manifest is still read whatever its size."""
    from macro_data.worlds.sampling import BATCH_SAMPLES, BLOCK_SIZE

    T, H, chunk = recipe.T, recipe.H, recipe.chunk_samples
    out = []
    for w, plan in recipe.worlds.items():
        world = get_world(w)
        S, E, P = len(world.shocks), len(world.extras), len(world.parameters)
        per_sample = {
            "theta": P,
            "shocks": T * S,
            "trajectories": T * 3,
            "observed": T * 3 if plan.noise else 0,
            "extras": T * E,
            "irfs": S * (H + 1) * 3,
            "metadata": T * len(world.metadata_fields),
            "irfs_state": plan.irf_states * S * (H + 1) * 3,  # with its states: every array scales with K
            "states": plan.irf_states * len(world.state_variables),
            # a step simulates the burn-in too: innovations, outputs and metadata over B more periods
            "burn_in": plan.burn_in * (S + 3 + E + len(world.metadata_fields)),
        }
        name, biggest = max(per_sample.items(), key=lambda kv: kv[1])
        rows = min(chunk, plan.n_samples)
        if rows * biggest * 4 > MAX_CHUNK_BYTES:
            out.append(
                f"field storage/chunk_samples: one chunk of world {w!r} array {name!r} would hold "
                f"{rows} x {biggest} values = {rows * biggest * 4:,} bytes decoded, above the "
                f"{MAX_CHUNK_BYTES:,}-byte limit (rule: chunk size); lower storage.chunk_samples"
            )
        step = min(BATCH_SAMPLES, -(-plan.n_samples // BLOCK_SIZE) * BLOCK_SIZE)
        if step * sum(per_sample.values()) * 8 > MAX_STEP_BYTES:
            out.append(
                f"field T: one compute step of world {w!r} ({step} samples, T={T}, H={H}) would hold "
                f"{step * sum(per_sample.values()) * 8:,} bytes of float64 inputs and outputs, above the "
                f"{MAX_STEP_BYTES:,}-byte limit (rule: step memory); lower T, H, irfs.states or burn_in"
            )
    if out:
        raise RecipeError(f"recipe {recipe.source}: too large to build:\n  " + "\n  ".join(out))
    return recipe


def parse_recipe(document: Any, source: str = "<recipe>") -> Recipe:
    """Validate a recipe document (already parsed) and build a :class:`Recipe`."""
    if not isinstance(document, dict):
        raise RecipeError(f"recipe {source}: the top level must be a mapping; got {type(document).__name__}")
    deep = _too_deep(document)
    if deep is not None:
        raise RecipeError(f"recipe {source}: field {deep}: nested more than {MAX_NESTING} levels deep (rule: nesting)")
    errors = schemas.errors("recipe", document)
    if errors:
        lines = [f"field {schemas.location(e)}: {e.message} (rule: {e.validator})" for e in errors[:10]]
        raise RecipeError(f"recipe {source} does not match schemas/recipe.schema.json:\n  " + "\n  ".join(lines))
    for key in ("name", "version", "extends"):  # the schema's search lets "name\n" through: match whole
        if key not in document:
            continue
        pattern = schemas.load("recipe")["properties"][key]["pattern"]
        if not re.fullmatch(pattern, document[key]):
            raise RecipeError(
                f"recipe {source}: field {key}: {document[key]!r} does not match {pattern!r} (rule: pattern)"
            )
    storage = dict(document.get("storage") or {})
    storage.setdefault("chunk_samples", DEFAULT_CHUNK_SAMPLES)
    storage.setdefault("clevel", DEFAULT_CLEVEL)
    doc = {**resolve_settings(document), "storage": storage}
    worlds: dict[str, WorldPlan] = {}
    for world_id, spec in document["worlds"].items():
        overrides = {k: dict(v) for k, v in (spec.get("priors") or {}).items()}
        try:
            world = get_world(world_id)
        except MacroDataError as exc:
            raise RecipeError(f"recipe {source}: field worlds/{world_id}: {exc}") from None
        try:
            priors = world.resolve_priors(overrides)
        except MacroDataError as exc:
            raise RecipeError(f"recipe {source}: field worlds/{world_id}/priors: {exc}") from None
        settings = world_settings(document, world_id)
        worlds[world_id] = WorldPlan(
            world_id,
            int(spec["n_samples"]),
            priors,
            overrides,
            design=settings["design"],
            burn_in=int(settings["burn_in"]),
            noise={k: float(v) for k, v in settings["noise"].items()},
            irf_states=int(settings["irfs"]["states"]),
        )
    try:
        digest = hashlib.sha256(canonical_json(doc)).hexdigest()
    except ValueError as exc:  # NaN/inf that slipped through as YAML .nan/.inf
        raise RecipeError(f"recipe {source}: non-finite number in the recipe ({exc})") from None
    return Recipe(
        name=doc["name"],
        version=doc["version"],
        seed=int(doc["seed"]),
        T=int(doc["T"]),
        H=int(doc["H"]),
        worlds=worlds,
        chunk_samples=int(storage["chunk_samples"]),
        clevel=int(storage["clevel"]),
        document=doc,
        source=source,
        sha256=digest,
    )


def load_yaml_document(path: Path, what: str) -> Any:
    """Parse a small YAML file strictly (:mod:`macro_data.config_yaml`); errors name the file and line."""
    return config_yaml.load_file(path, what, MAX_RECIPE_BYTES, RecipeError)


def load_recipe(name_or_path: str | os.PathLike | None = None) -> Recipe:
    """Load and validate a recipe by name (``datasets/recipes/<name>.yaml``) or path."""
    path = resolve_recipe_path(name_or_path)
    return check_resources(parse_recipe(load_yaml_document(path, "recipe"), source=str(path)))
