"""Asset ``world_stats``: train-split moments of one world, stored with its data (thin shell over the pipeline)."""

import dagster as dg

from macro_data.orchestration.assets._shared import world_stage_asset
from macro_data.orchestration.assets.world_arrays import world_arrays
from macro_data.orchestration.assets.world_splits import world_splits
from macro_data.pipeline.common import StageResult
from macro_data.pipeline.world_stats import STAGE, STATS_KEY, build_world_stats
from macro_data.versioning import code_version

CODE_VERSION = code_version(STAGE)


def moments_table(summary: dict, array: str, label: str) -> str:
    rows = [f"| {label} | mean | sd |", "|---|---|---|"]
    rows += [f"| {name} | {m['mean']:.4g} | {m['sd']:.4g} |" for name, m in summary.get(array, {}).items()]
    return "\n".join(rows)


def stats_metadata(result: StageResult) -> dict:
    stats = result.stats[STATS_KEY]
    summary = stats["summary"]
    irf_rows = ["| shock | observable | mean h=0 | sd h=0 | max sd |", "|---|---|---|---|---|"]
    for shock, obs in summary["irfs"].items():
        irf_rows += [
            f"| {shock} | {o} | {m['mean_h0']:.4g} | {m['sd_h0']:.4g} | {m['max_sd']:.4g} |" for o, m in obs.items()
        ]
    return {
        "split": stats["split"],
        "n_train": stats["n_samples"],
        "trajectories": dg.MetadataValue.md(moments_table(summary, "trajectories", "observable")),
        "shocks": dg.MetadataValue.md(moments_table(summary, "shocks", "shock")),
        "irfs": dg.MetadataValue.md("\n".join(irf_rows)),
        "theta": dg.MetadataValue.md(moments_table(summary, "theta", "parameter")),
    }


world_stats = world_stage_asset(
    STAGE,
    build_world_stats,
    tag="stats",
    deps=[world_arrays, world_splits],
    description=(
        "Output statistics of one world over its train split, stored with the data: mean and sd (ddof 1) of "
        "theta per parameter (derived columns included), of shocks, trajectories and extras per variable "
        "(pooled over samples and periods) and of irfs per (shock, horizon, observable), as float32 arrays "
        "`moments_<array> (moment, ...)` with their content hashes; summarized in the manifest "
        "(`train_stats`). The reader standardizes with them (`normalize='stats'`, `normalize_outputs=True`)."
    ),
    extra_metadata=stats_metadata,
)
