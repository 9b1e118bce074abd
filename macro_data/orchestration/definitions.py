"""The Dagster code location: assembles assets, checks, jobs and resources (nothing else lives here)."""

import dagster as dg

from macro_data.orchestration import checks, jobs
from macro_data.orchestration.assets import external
from macro_data.orchestration.assets.dataset_manifest import dataset_manifest
from macro_data.orchestration.assets.validation_report import validation_report
from macro_data.orchestration.assets.world_arrays import world_arrays
from macro_data.orchestration.assets.world_draws import world_draws
from macro_data.orchestration.assets.world_splits import world_splits
from macro_data.orchestration.assets.world_stats import world_stats
from macro_data.orchestration.automation import DATASET_CONDITION
from macro_data.orchestration.resources.compute import ComputeResource
from macro_data.orchestration.resources.recipe import RecipeResource
from macro_data.orchestration.resources.storage import DatasetRootResource
from macro_data.orchestration.schedules import weekly_world_backfill
from macro_data.orchestration.sensors import recipe_change_sensor, registry_change_sensor, registry_partitions_sensor

defs = dg.Definitions(
    assets=[
        world_draws,
        world_arrays,
        world_splits,
        world_stats,
        # all-worlds assets: automation policy applied here, in one place
        *(a.with_attributes(automation_condition=DATASET_CONDITION) for a in [dataset_manifest, validation_report]),
        *external.assets,
    ],
    asset_checks=[*checks.asset_checks, *external.asset_checks],
    jobs=[jobs.build_world_job, jobs.build_dataset_job, jobs.fetch_external_job],
    schedules=[weekly_world_backfill],
    sensors=[recipe_change_sensor, registry_change_sensor, registry_partitions_sensor],
    # One process per run: the default multiprocess executor starts a process per step (four stages
    # and four check steps per world), each importing Dagster and this package again, which made
    # up most of a small world's run. The steps of a world run depend on each other anyway;
    # parallelism comes from running several partitions at once (macro-data build --jobs, or
    # concurrent runs launched from the UI) and from the compute resource within a stage.
    executor=dg.in_process_executor,
    resources={
        "recipe": RecipeResource(),
        "storage": DatasetRootResource(),
        "compute": ComputeResource(),
        **external.resources,
    },
)
