"""The Dagster code location: assembles assets, checks, jobs and resources (nothing else lives here)."""

import dagster as dg

from macro_data import jobs
from macro_data.assets.dataset_manifest import dataset_manifest
from macro_data.assets.world_arrays import world_arrays
from macro_data.assets.world_draws import world_draws
from macro_data.assets.world_splits import world_splits
from macro_data.resources.recipe import RecipeResource
from macro_data.resources.storage import DatasetRootResource

defs = dg.Definitions(
    assets=[world_draws, world_arrays, world_splits, dataset_manifest],
    jobs=[jobs.build_world_job, jobs.build_dataset_job],
    resources={"recipe": RecipeResource(), "storage": DatasetRootResource()},
)
