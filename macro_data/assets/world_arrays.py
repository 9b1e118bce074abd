"""Asset ``world_arrays``: trajectories, IRFs, extras and simulated metadata from the stored draws."""

import dagster as dg

from macro_data import groups
from macro_data.assets._shared import KINDS, load_recipe_for, materialize_result, run_stage
from macro_data.assets.world_draws import world_draws
from macro_data.partitions import world_partitions
from macro_data.pipeline.world_arrays import STAGE, build_world_arrays
from macro_data.resources.compute import ComputeResource
from macro_data.resources.recipe import RecipeResource
from macro_data.resources.storage import DatasetRootResource
from macro_data.versioning import code_version

CODE_VERSION = code_version(STAGE)


@dg.asset(
    name=STAGE,
    partitions_def=world_partitions,
    deps=[world_draws],
    group_name=groups.WORLDS,
    kinds=KINDS,
    tags={"stage": "simulation"},
    code_version=CODE_VERSION,
    description=(
        "Simulated data of one world from its stored draws: canonical observables `trajectories (sample, time, "
        "observable)` (output, inflation, rate), impulse responses `irfs (sample, shock, horizon, observable)`, "
        "`extras` where the world has extra observables, and simulated metadata (`binding` for zlb)."
    ),
)
def world_arrays(context: dg.AssetExecutionContext, recipe: RecipeResource, storage: DatasetRootResource,
                 compute: ComputeResource):
    loaded = load_recipe_for(context, recipe)
    result = run_stage(context, build_world_arrays, loaded, storage.path(), CODE_VERSION, compute)
    return materialize_result(result, loaded)
