"""Asset ``world_draws``: parameter draws, innovations and other random inputs of each sample."""

import dagster as dg

from macro_data import groups
from macro_data.assets._shared import KINDS, load_recipe_for, materialize_result, run_stage
from macro_data.partitions import world_partitions
from macro_data.pipeline.world_draws import STAGE, build_world_draws
from macro_data.resources.compute import ComputeResource
from macro_data.resources.recipe import RecipeResource
from macro_data.resources.storage import DatasetRootResource
from macro_data.versioning import code_version

CODE_VERSION = code_version(STAGE)


@dg.asset(
    name=STAGE,
    partitions_def=world_partitions,
    group_name=groups.WORLDS,
    kinds=KINDS,
    tags={"stage": "draws"},
    code_version=CODE_VERSION,
    description=(
        "Random inputs of every sample of one world: `theta (sample, param)` drawn from the priors "
        "(invalid draws rejected and redrawn), standard-normal innovations `shocks (sample, time, shock)`, "
        "and drawn per-period metadata (`regime` for switching). Seeded per (seed, world, sample block); "
        "written to `<root>/<recipe>/<version>/<world>.zarr`."
    ),
)
def world_draws(context: dg.AssetExecutionContext, recipe: RecipeResource, storage: DatasetRootResource,
                compute: ComputeResource):
    loaded = load_recipe_for(context, recipe)
    result = run_stage(context, build_world_draws, loaded, storage.path(), CODE_VERSION, compute)
    return materialize_result(result, loaded, {
        "seeding_algorithm": result.stats["seeding"]["algorithm"],
        "seeding_block_size": result.stats["seeding"]["block_size"],
    })
