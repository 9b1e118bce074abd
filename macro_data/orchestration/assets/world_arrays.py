"""Asset ``world_arrays``: trajectories, IRFs, extras and simulated metadata from the stored draws."""

from macro_data.orchestration.assets._shared import world_stage_asset
from macro_data.orchestration.assets.world_draws import world_draws
from macro_data.pipeline.world_arrays import STAGE, build_world_arrays
from macro_data.versioning import code_version

CODE_VERSION = code_version(STAGE)

world_arrays = world_stage_asset(
    STAGE,
    build_world_arrays,
    tag="simulation",
    deps=[world_draws],
    description=(
        "Simulated data of one world from its stored draws: canonical observables `trajectories (sample, time, "
        "observable)` (output, inflation, rate), impulse responses `irfs (sample, shock, horizon, observable)`, "
        "`extras` where the world has extra observables, and simulated metadata (`binding` for zlb)."
    ),
)
