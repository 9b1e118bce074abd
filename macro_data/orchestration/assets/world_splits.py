"""Asset ``world_splits``: the split label of every sample (held-out regions first, then per-sample uniform)."""

import dagster as dg

from macro_data import splits
from macro_data.orchestration.assets._shared import world_stage_asset
from macro_data.orchestration.assets.world_draws import world_draws
from macro_data.pipeline.common import StageResult
from macro_data.pipeline.world_splits import STAGE, build_world_splits
from macro_data.versioning import code_version

CODE_VERSION = code_version(STAGE)


def splits_table(summary: dict) -> str:
    rows = ["| split | label | count | fraction | target | rule |", "|---|---|---|---|---|---|"]
    for name, s in summary.items():
        rows.append(
            f"| {name} | {s['label']} | {s['count']} | {s['fraction']:.4f} | {s['target_fraction']:.3f} | "
            f"{s.get('statistic', '')} {s.get('direction', '')} {s.get('threshold', '')} |"
        )
    return "\n".join(rows)


def splits_metadata(result: StageResult) -> dict:
    summary = result.stats["splits"]
    return {
        "splits": dg.MetadataValue.md(splits_table(summary)),
        **{f"count/{name}": s["count"] for name, s in summary.items()},
    }


world_splits = world_stage_asset(
    STAGE,
    build_world_splits,
    tag="splits",
    deps=[world_draws],
    description=(
        "Split labels `split (sample,)` int8 of one world: `test_extrapolation_slice` and "
        "`test_extrapolation_corner` hold out whole regions of parameter space (fixed thresholds per world); "
        f"the rest is assigned by a per-sample uniform to train/val/test_interpolation (80/10/5 % of the total). "
        f"Labels: {splits.LABELS}."
    ),
    extra_metadata=splits_metadata,
)
