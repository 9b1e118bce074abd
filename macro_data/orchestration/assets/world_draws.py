"""Asset ``world_draws``: parameter draws, innovations and other random inputs of each sample."""

from macro_data.orchestration.assets._shared import world_stage_asset
from macro_data.pipeline.world_draws import STAGE, build_world_draws
from macro_data.versioning import code_version
from macro_data.worlds.sampling import seeding_description

CODE_VERSION = code_version(STAGE)

world_draws = world_stage_asset(
    STAGE,
    build_world_draws,
    tag="draws",
    description=(
        "Random inputs of every sample of one world: `theta (sample, param)` drawn from the priors "
        "(invalid draws rejected and redrawn), standard-normal innovations `shocks (sample, time, shock)`, "
        "and drawn per-period metadata (`regime` for switching). Seeded per (seed, world, sample block); "
        "written to `<root>/<recipe>/<version>/<world>.zarr`."
    ),
    extra_metadata=lambda result: {
        "seeding_algorithm": seeding_description()["algorithm"],
        "seeding_block_size": seeding_description()["block_size"],
    },
)
