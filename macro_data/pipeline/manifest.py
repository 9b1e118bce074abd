"""Stage ``dataset_manifest``: ``manifest.json`` describing a complete dataset.

The manifest is built from what the world stores say about themselves (array attributes written
by each stage: recipe hash, code version, run id, data version, content hashes) and refuses to
publish unless every world of the recipe is complete and consistent: all arrays present, made
from this recipe, by the expected code versions, and simulated/split from the draws that are
published now. It is validated against ``schemas/manifest.schema.json`` and written atomically
(temporary file, fsync, rename), so readers see the old manifest or the new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import zarr

from macro_data import environment, paths, schemas, splits
from macro_data.errors import ManifestError
from macro_data.pipeline import card, release, world_arrays, world_draws, world_splits, world_stats
from macro_data.pipeline.common import read_provenance
from macro_data.recipes import Recipe
from macro_data.storage import locations
from macro_data.storage.arrays import HASH_ALGORITHM, HASH_DESCRIPTION
from macro_data.storage.publish import world_store
from macro_data.versioning import code_version, for_world
from macro_data.worlds import burn_in, get_world, state_irfs
from macro_data.worlds.sampling import seeding_description

SCHEMA_VERSION = "1.1.0"
MANIFEST_NAME = "manifest.json"
STAGES = {world_draws.STAGE: world_draws, world_arrays.STAGE: world_arrays, world_splits.STAGE: world_splits}


# The arrays the manifest lists (coordinate arrays are in the stores too, but not data arrays).
def package_version() -> str:
    try:
        return metadata.version("macro_data")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_commit() -> str:
    """The commit of the source checkout the package runs from; ``unknown`` for an installed wheel."""
    checkout = paths.source_checkout()
    if checkout is None:
        return "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _world_entry(recipe: Recipe, world_id: str, dataset_dir: str, code_versions: Mapping[str, str] | None) -> dict:
    world = get_world(world_id)
    plan = recipe.world(world_id)
    store = world_store(dataset_dir, world_id)
    if not store.exists():
        raise ManifestError(
            f"world {world_id!r} of recipe {recipe.name!r} has not been materialized "
            f"(no store at {store.location}); materialize world_draws, world_arrays and world_splits "
            f"for partition {world_id!r} first"
        )
    present = store.array_names()
    opened: dict[str, zarr.Array] = {}

    def array(name: str) -> zarr.Array:
        if name not in opened:
            opened[name] = store.open_array(name)
        return opened[name]

    prov: dict[str, dict] = {}
    arrays: dict[str, dict] = {}
    for stage, module in STAGES.items():
        expected = module.output_arrays(world_id, plan)
        data = set(module.data_arrays(world_id, plan))  # listed in the manifest; coordinates are not
        missing = [a for a in expected if a not in present]
        if missing:
            raise ManifestError(
                f"world {world_id!r}: arrays {', '.join(missing)} of stage {stage} are missing "
                f"from {store.location}; materialize {stage} for partition {world_id!r}"
            )
        for name in expected:
            p = read_provenance(array(name))
            if p.get("recipe_sha256") != recipe.sha256:
                raise ManifestError(
                    f"world {world_id!r}: array {name!r} was made from recipe sha256 "
                    f"{p.get('recipe_sha256')!r}, not the current recipe {recipe.sha256!r} "
                    f"({recipe.source}); re-materialize {stage} for partition {world_id!r}"
                )
            current = for_world(code_versions[stage], world) if code_versions else None
            if current and p.get("code_version") != current:
                raise ManifestError(
                    f"world {world_id!r}: array {name!r} was written by code version "
                    f"{p.get('code_version')!r} of {stage}, the current one is "
                    f"{current!r}; re-materialize {stage} for partition {world_id!r}"
                )
            if name in data:
                a = array(name)
                arrays[name] = {
                    "path": store.relative_path(name),
                    "shape": list(a.shape),
                    "dtype": str(a.dtype),
                    "dimension_names": list(a.metadata.dimension_names or ()),
                    "sha256": a.attrs["sha256"],
                    "stored_bytes": store.stored_bytes(name),
                    "description": a.attrs.get("description", ""),
                    "stage": stage,
                }
        prov[stage] = read_provenance(array(expected[0]))
    draws_version = prov[world_draws.STAGE]["data_version"]
    for stage in (world_arrays.STAGE, world_splits.STAGE):
        used = (prov[stage].get("upstream") or {}).get(world_draws.STAGE, {}).get("data_version")
        if used != draws_version:
            raise ManifestError(
                f"world {world_id!r}: {stage} was computed from draws with data version {used!r}, "
                f"but the published draws have {draws_version!r}; re-materialize {stage} "
                f"for partition {world_id!r}"
            )
    n = plan.n_samples
    if (
        arrays["theta"]["shape"][0] != n
        or arrays["shocks"]["shape"][1] != recipe.T
        or arrays["irfs"]["shape"][2] != recipe.H + 1
    ):
        raise ManifestError(
            f"world {world_id!r}: stored shapes theta {arrays['theta']['shape']}, irfs "
            f"{arrays['irfs']['shape']} do not match the recipe (n={n}, T={recipe.T}, H={recipe.H})"
        )
    desc = world.describe()
    draw_stats = prov[world_draws.STAGE].get("stats", {})
    # Optional: the train-split statistics (datasets built before them, or without them, have none).
    stats_code = (code_versions or {}).get(world_stats.STAGE)
    stats_code = for_world(stats_code, world) if stats_code else None
    stats = world_stats.manifest_entry(store, recipe, world_id, prov, stats_code)
    entry = {
        **desc,
        "n_samples": n,
        "n_rejected": draw_stats.get("n_rejected"),
        "rejection_rate": draw_stats.get("rejection_rate"),
        "priors": plan.priors.as_manifest(),
        "arrays": arrays,
        "splits": prov[world_splits.STAGE]["splits"],
        "stats": {**draw_stats, **prov[world_arrays.STAGE].get("stats", {})},
        "provenance": {
            stage: {
                k: p.get(k)
                for k in ("run_id", "code_version", "data_version", "written_at", "upstream", "environment", "build")
            }
            for stage, p in prov.items()
        },
    }
    if plan.design != "random":  # recorded when not the default, so default manifests are as before
        entry["design"] = plan.design
    if plan.noise:  # the observed array's measurement noise, per observable (0 where none)
        entry["noise"] = {o.name: float(plan.noise.get(o.name, 0.0)) for o in world.observables}
    if stats is not None:
        entry[world_stats.STATS_KEY], entry["provenance"][world_stats.STAGE] = stats
    if plan.irf_states:
        entry["state_irfs"] = state_irfs_entry(world, plan.irf_states)
    if plan.burn_in:
        entry["burn_in"] = {
            "periods": plan.burn_in,
            "definition": burn_in.DEFINITION,
            "state_variables": [v.as_dict() for v in world.state_variables],
        }
    return entry


def state_irfs_entry(world, K: int) -> dict:
    """What the state-IRF arrays of a world mean (only in manifests of datasets that have them)."""
    return {
        "states": K,
        "definition": state_irfs.DEFINITION,
        "dates": state_irfs.DATE_RULE,
        "state_variables": [v.as_dict() for v in world.state_variables],
        "labels": [f.as_dict() for f in world.state_labels],
        "method": state_irfs.method(world),
    }


def build_manifest_document(
    recipe: Recipe,
    root: str | Path,
    run_id: str = "local",
    code_versions: Mapping[str, str] | None = None,
    dataset_dir: str | None = None,
) -> dict:
    """The manifest as a dict; :class:`ManifestError` unless every world is complete and consistent.

    ``dataset_dir``: where the worlds are (default: the version folder under ``root``)."""
    dataset_dir = dataset_dir or recipe.dataset_dir(root)
    code_versions = current_code_versions() if code_versions is None else code_versions
    worlds = {w: _world_entry(recipe, w, dataset_dir, code_versions) for w in recipe.world_ids}
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": {
            "name": recipe.name,
            "version": recipe.version,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "recipe": recipe.document,
        "recipe_sha256": recipe.sha256,
        "package": {"name": "macro_data", "version": package_version(), "git_commit": git_commit()},
        "environment": environment.fingerprint(),
        "seeding": seeding_description(),
        "hash": {"algorithm": HASH_ALGORITHM, "description": HASH_DESCRIPTION},
        "T": recipe.T,
        "H": recipe.H,
        "conventions": {
            "time": "quarterly; y[0..T-1] driven by eps[0..T-1] from the steady state (no burn-in)"
            + (
                "; a world with a burn_in entry starts instead from initial_state, the state after its burn-in"
                if any(recipe.world(w).burn_in for w in recipe.world_ids)
                else ""
            ),
            "irfs": "irfs[j, h] = y_shocked[h] - y_baseline[h], +1 sd innovation j at h = 0 from the steady state",
            "storage": (
                "float32 data (int8/bool labels and flags), chunked along samples, Blosc LZ4 + byte shuffle, crc32c"
            ),
            **(
                {"state_irfs": state_irfs.DEFINITION, "state_dates": state_irfs.DATE_RULE}
                if any(recipe.world(w).irf_states for w in recipe.world_ids)
                else {}
            ),
        },
        "split_labels": dict(splits.LABELS),
        "split_algorithm": {
            "name": splits.ALGORITHM,
            "target_fractions": splits.TARGET_FRACTIONS,
            "train_cut": splits.TRAIN_CUT,
            "val_cut": splits.VAL_CUT,
        },
        "worlds": worlds,
        "provenance": {
            "dataset_manifest": {
                "run_id": run_id,
                "code_version": (code_versions or {}).get("dataset_manifest", "unknown"),
            }
        },
    }


def validate_manifest(document: dict) -> None:
    errors = schemas.errors("manifest", document)
    if errors:
        lines = [f"{schemas.location(e)}: {e.message}" for e in errors[:10]]
        raise ManifestError("manifest does not match schemas/manifest.schema.json:\n  " + "\n  ".join(lines))


def current_code_versions() -> dict[str, str]:
    """The code versions this code gives the world stages and the manifest."""
    return {stage: code_version(stage) for stage in (*STAGES, world_stats.STAGE, "dataset_manifest")}


# Fields of a manifest that change on every build without describing other data.
VOLATILE = (("dataset", "created_at"), ("provenance", "dataset_manifest", "run_id"), ("environment",))


def _without_volatile(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    for path in VOLATILE:
        node = doc
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return doc


def published_manifest(recipe: Recipe, root: str | Path, replace: bool = False) -> dict | None:
    """The published manifest (and card) of the version if they describe exactly what the stores hold
    now, built by the current code; else ``None``. Reads, never writes."""
    target = release.target(recipe, root, replace)
    location = locations.join(target.dataset_dir, MANIFEST_NAME)
    if not (locations.exists(location) and locations.exists(locations.join(target.dataset_dir, card.CARD_NAME))):
        return None
    try:
        old = json.loads(locations.read_bytes(location))
        doc = build_manifest_document(recipe, root, dataset_dir=target.dataset_dir)
    except (ManifestError, ValueError, OSError):
        return None
    return old if _without_volatile(old) == _without_volatile(doc) else None


@dataclass
class ManifestResult:
    location: str
    document: dict
    seconds: float
    up_to_date: bool = False  # the published manifest already described exactly this data: nothing written
    card: str | None = None  # location of the dataset card


def build_manifest(
    recipe: Recipe,
    root: str | Path,
    run_id: str = "local",
    code_versions: Mapping[str, str] | None = None,
    *,
    replace: bool = False,
    force: bool = False,
) -> ManifestResult:
    """Build, validate and publish ``manifest.json`` (written last, atomically) and the dataset card.

    Refuses (:class:`macro_data.pipeline.release.ReleaseError`) a recipe other than the version's;
    writes nothing when the published manifest already describes the same data (unless ``force``);
    with ``replace``, publishes the replacement built beside the version by swapping it in.
    """
    t0 = time.perf_counter()
    target = release.target(recipe, root, replace)
    release.claim(recipe, target)
    dataset = target.dataset_dir
    doc = build_manifest_document(recipe, root, run_id, code_versions, dataset_dir=dataset)
    validate_manifest(doc)
    location = locations.join(dataset, MANIFEST_NAME)
    card_location = locations.join(dataset, card.CARD_NAME)
    if not force and locations.exists(location) and locations.exists(card_location):
        try:
            old = json.loads(locations.read_bytes(location))
        except ValueError:
            old = None
        if old is not None and _without_volatile(old) == _without_volatile(doc):
            final = locations.join(target.final_dir, MANIFEST_NAME)
            release.promote(target)
            return ManifestResult(
                final,
                old,
                time.perf_counter() - t0,
                up_to_date=True,
                card=locations.join(target.final_dir, card.CARD_NAME),
            )
    raw = (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode()
    tmp_dir = None if locations.is_remote(dataset) else locations.join(dataset, ".staging")
    locations.write_bytes_atomic(location, raw, tmp_dir=tmp_dir)
    locations.write_bytes_atomic(
        card_location, card.render(doc, hashlib.sha256(raw).hexdigest()).encode(), tmp_dir=tmp_dir
    )
    release.promote(target)
    return ManifestResult(
        locations.join(target.final_dir, MANIFEST_NAME),
        doc,
        time.perf_counter() - t0,
        card=locations.join(target.final_dir, card.CARD_NAME),
    )
