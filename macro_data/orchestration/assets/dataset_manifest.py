"""Asset ``dataset_manifest``: ``manifest.json`` of the whole dataset, published only when complete."""

import hashlib

import dagster as dg

from macro_data.errors import MacroDataError
from macro_data.orchestration import groups
from macro_data.orchestration.assets.world_arrays import CODE_VERSION as ARRAYS_VERSION
from macro_data.orchestration.assets.world_arrays import world_arrays
from macro_data.orchestration.assets.world_draws import CODE_VERSION as DRAWS_VERSION
from macro_data.orchestration.assets.world_draws import world_draws
from macro_data.orchestration.assets.world_splits import CODE_VERSION as SPLITS_VERSION
from macro_data.orchestration.assets.world_splits import world_splits
from macro_data.orchestration.assets.world_stats import CODE_VERSION as STATS_VERSION
from macro_data.orchestration.assets.world_stats import world_stats
from macro_data.orchestration.resources.recipe import RecipeResource
from macro_data.orchestration.resources.storage import DatasetRootResource
from macro_data.pipeline.manifest import build_manifest
from macro_data.storage import locations
from macro_data.versioning import code_version

CODE_VERSION = code_version("dataset_manifest")
EXPECTED_CODE_VERSIONS = {
    "world_draws": DRAWS_VERSION,
    "world_arrays": ARRAYS_VERSION,
    "world_splits": SPLITS_VERSION,
    "world_stats": STATS_VERSION,
    "dataset_manifest": CODE_VERSION,
}


def worlds_table(doc: dict) -> str:
    rows = [
        "| world | samples | rejection rate | train | val | test_interp | slice | corner | MiB on disk |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w, e in doc["worlds"].items():
        s = e["splits"]
        mib = sum(a.get("stored_bytes", 0) for a in e["arrays"].values()) / 2**20
        rows.append(
            f"| {w} | {e['n_samples']} | {e['rejection_rate']:.4f} | {s['train']['count']} | "
            f"{s['val']['count']} | {s['test_interpolation']['count']} | "
            f"{s['test_extrapolation_slice']['count']} | {s['test_extrapolation_corner']['count']} | {mib:.1f} |"
        )
    return "\n".join(rows)


@dg.asset(
    deps=[world_draws, world_arrays, world_splits, world_stats],
    group_name=groups.DATASET,
    kinds={"python", "json"},
    tags={"stage": "manifest"},
    code_version=CODE_VERSION,
    description=(
        "`manifest.json` of the dataset (validated against schemas/manifest.schema.json): recipe and its hash, "
        "seeding, per world the parameters, shocks, observables with units, arrays with shapes, dimension names "
        "and content hashes, splits, train-split statistics (when world_stats was built), and provenance. "
        "Refuses to publish unless every world of the recipe was materialized from the same recipe and the "
        "current code versions."
    ),
)
def dataset_manifest(context: dg.AssetExecutionContext, recipe: RecipeResource, storage: DatasetRootResource):
    try:
        loaded = recipe.load()
        result = build_manifest(
            loaded,
            storage.path(),
            context.run.run_id,
            EXPECTED_CODE_VERSIONS,
            replace=storage.replace,
            force=storage.force,
        )
        path, doc, seconds = result.location, result.document, result.seconds
    except MacroDataError as exc:
        raise dg.Failure(description=f"dataset_manifest refused: {exc}") from exc
    content = hashlib.sha256(locations.read_bytes(path)).hexdigest()
    # Data version: what the manifest describes (recipe + every array hash), not its timestamp.
    described = hashlib.sha256(
        "".join(
            f"{w}/{a}:{spec['sha256']}\n"
            for w, e in sorted(doc["worlds"].items())
            for a, spec in sorted(e["arrays"].items())
        ).encode()
        + loaded.sha256.encode()
    ).hexdigest()
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.url(path) if locations.is_remote(path) else dg.MetadataValue.path(path),
            "dataset": f"{loaded.name} {loaded.version}",
            "recipe_sha256": loaded.sha256,
            "worlds": dg.MetadataValue.md(worlds_table(doc)),
            "n_worlds": len(doc["worlds"]),
            "n_samples_total": sum(e["n_samples"] for e in doc["worlds"].values()),
            "git_commit": doc["package"]["git_commit"],
            "manifest_sha256": content,
            "dataset_card": dg.MetadataValue.url(result.card)
            if locations.is_remote(result.card)
            else dg.MetadataValue.path(result.card),
            "up_to_date": result.up_to_date,
            "wall_time_s": round(seconds, 3),
        },
        data_version=dg.DataVersion(described),
    )
