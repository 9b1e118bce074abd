"""What the world-stage assets share: turning a stage result into readable materialization metadata."""

from collections.abc import Callable, Sequence

import dagster as dg

from macro_data.errors import MacroDataError
from macro_data.orchestration import groups
from macro_data.orchestration.partitions import world_partitions
from macro_data.orchestration.resources.compute import ComputeResource
from macro_data.orchestration.resources.recipe import RecipeResource
from macro_data.orchestration.resources.storage import DatasetRootResource
from macro_data.pipeline.common import RunInfo, StageResult
from macro_data.recipes import Recipe
from macro_data.versioning import catalog_version, code_version
from macro_data.worlds.catalog import catalog

KINDS = {"python", "numpy", "zarr"}


def run_info(
    context: dg.AssetExecutionContext, code_version: str, compute: ComputeResource, storage: DatasetRootResource
) -> RunInfo:
    return RunInfo(
        run_id=context.run.run_id,
        code_version=code_version,
        log=context.log.info,
        compute=compute.config(),
        force=storage.force,
        replace=storage.replace,
    )


def load_recipe_for(context: dg.AssetExecutionContext, recipe: RecipeResource) -> Recipe:
    try:
        loaded = recipe.load()
        loaded.world(context.partition_key)
    except MacroDataError as exc:
        raise dg.Failure(description=str(exc)) from None
    return loaded


def arrays_table(result: StageResult) -> str:
    rows = ["| array | shape | dtype | MiB decoded | MiB on disk | ratio | sha256 |", "|---|---|---|---|---|---|---|"]
    for name, a in result.arrays.items():
        rows.append(
            f"| {name} | {' x '.join(map(str, a.shape))} | {a.dtype} | {a.nbytes / 2**20:.2f} | "
            f"{a.stored_bytes / 2**20:.2f} | {a.compression_ratio:.2f} | `{a.sha256[:16]}…` |"
        )
    return "\n".join(rows)


def stage_metadata(result: StageResult, recipe: Recipe) -> dict:
    meta: dict = {
        "world": result.world_id,
        "dataset": f"{recipe.name} {recipe.version}",
        "recipe_sha256": recipe.sha256,
        "path": dg.MetadataValue.url(result.path) if "://" in result.path else dg.MetadataValue.path(result.path),
        "wall_time_s": round(result.seconds, 3),
        "samples_per_s": round(result.stats.get("n_samples", 0) / result.seconds, 1) if result.seconds else 0.0,
        "bytes_on_disk": result.stored_bytes,
        "bytes_decoded": result.nbytes,
        "compression_ratio": round(result.nbytes / result.stored_bytes, 3) if result.stored_bytes else 0.0,
        "arrays": dg.MetadataValue.md(arrays_table(result)),
        "data_version": result.data_version,
        "up_to_date": result.up_to_date,
        "reused_samples": result.reused_samples,
        "resumed_samples": result.resumed_samples,
    }
    for name, a in result.arrays.items():
        meta[f"shape/{name}"] = str(list(a.shape))
        meta[f"sha256/{name}"] = a.sha256
    for key, value in result.stats.items():
        if isinstance(value, (int, float, str)):
            meta[key] = value
    return meta


def materialize_result(result: StageResult, recipe: Recipe, extra: dict | None = None) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={**stage_metadata(result, recipe), **(extra or {})}, data_version=dg.DataVersion(result.data_version)
    )


def run_stage(
    context, fn, recipe: Recipe, storage: DatasetRootResource, code_version: str, compute: ComputeResource
) -> StageResult:
    """Run a plain-Python stage, turning its errors into a Dagster failure that says what and where."""
    try:
        return fn(recipe, context.partition_key, storage.path(), run_info(context, code_version, compute, storage))
    except MacroDataError as exc:
        raise dg.Failure(description=f"{fn.__name__} for world {context.partition_key!r}: {exc}") from exc


def world_stage_asset(
    stage: str,
    build: Callable[..., StageResult],
    *,
    tag: str,
    description: str,
    deps: Sequence[dg.AssetsDefinition] = (),
    extra_metadata: Callable[[StageResult], dict] | None = None,
) -> dg.AssetsDefinition:
    """The asset of one world stage (partitioned by world): loads the recipe, runs ``build`` (a plain
    pipeline function) with the compute resource, and reports the result as materialization metadata
    (plus ``extra_metadata(result)``), with the stage's data version."""
    version = code_version(stage)
    shown = catalog_version(version, catalog().worlds.values())

    @dg.asset(
        name=stage,
        partitions_def=world_partitions,
        deps=list(deps),
        group_name=groups.WORLDS,
        kinds=KINDS,
        tags={"stage": tag},
        code_version=shown,
        description=description,
    )
    def world_stage(
        context: dg.AssetExecutionContext,
        recipe: RecipeResource,
        storage: DatasetRootResource,
        compute: ComputeResource,
    ):
        loaded = load_recipe_for(context, recipe)
        result = run_stage(context, build, loaded, storage, version, compute)
        if result.up_to_date:
            context.log.info(f"{stage} of world {context.partition_key!r} is up to date: nothing recomputed or written")
        return materialize_result(result, loaded, extra_metadata(result) if extra_metadata else None)

    return world_stage
