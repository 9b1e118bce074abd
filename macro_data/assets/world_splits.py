"""Asset ``world_splits``: the split label of every sample (held-out regions first, then per-sample uniform)."""

import dagster as dg

from macro_data import groups, splits
from macro_data.assets._shared import KINDS, load_recipe_for, materialize_result, run_stage
from macro_data.assets.world_draws import world_draws
from macro_data.partitions import world_partitions
from macro_data.pipeline.world_splits import STAGE, build_world_splits
from macro_data.resources.compute import ComputeResource
from macro_data.resources.recipe import RecipeResource
from macro_data.resources.storage import DatasetRootResource
from macro_data.versioning import code_version

CODE_VERSION = code_version(STAGE)


def splits_table(summary: dict) -> str:
    rows = ["| split | label | count | fraction | target | rule |", "|---|---|---|---|---|---|"]
    for name, s in summary.items():
        rows.append(f"| {name} | {s['label']} | {s['count']} | {s['fraction']:.4f} | {s['target_fraction']:.3f} | "
                    f"{s.get('statistic', '')} {s.get('direction', '')} {s.get('threshold', '')} |")
    return "\n".join(rows)


@dg.asset(
    name=STAGE,
    partitions_def=world_partitions,
    deps=[world_draws],
    group_name=groups.WORLDS,
    kinds=KINDS,
    tags={"stage": "splits"},
    code_version=CODE_VERSION,
    description=(
        "Split labels `split (sample,)` int8 of one world: `test_extrapolation_slice` and "
        "`test_extrapolation_corner` hold out whole regions of parameter space (fixed thresholds per world); "
        f"the rest is assigned by a per-sample uniform to train/val/test_interpolation (80/10/5 % of the total). "
        f"Labels: {splits.LABELS}."
    ),
)
def world_splits(context: dg.AssetExecutionContext, recipe: RecipeResource, storage: DatasetRootResource,
                 compute: ComputeResource):
    loaded = load_recipe_for(context, recipe)
    result = run_stage(context, build_world_splits, loaded, storage.path(), CODE_VERSION, compute)
    summary = result.stats["splits"]
    extra = {"splits": dg.MetadataValue.md(splits_table(summary))}
    extra.update({f"count/{name}": s["count"] for name, s in summary.items()})
    result.stats.pop("splits")
    return materialize_result(result, loaded, extra)
