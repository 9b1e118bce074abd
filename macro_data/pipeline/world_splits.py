"""Stage ``world_splits``: the split label of every sample of one world (:mod:`macro_data.splits`).

Writes ``split (sample,) int8``; the label-to-name mapping is stored in the array's attributes
and in the manifest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from macro_data import splits
from macro_data.pipeline.common import RegionJob, RegionResult, RunInfo, StageResult
from macro_data.pipeline.stage import StageOutcome, StageSpec, run_stage
from macro_data.recipes import Recipe, WorldPlan
from macro_data.storage.arrays import create_array, iter_rows, region_writers
from macro_data.storage.locations import open_group
from macro_data.worlds import World, get_world
from macro_data.worlds.sampling import split_uniforms

STAGE = "world_splits"
LABEL_ROWS = 1 << 20  # labels tallied per read: 1 MiB of int8


def data_arrays(world_id: str, plan: WorldPlan | None = None) -> list[str]:
    return ["split"]


def output_arrays(world_id: str, plan: WorldPlan | None = None) -> list[str]:
    return ["split"]


def create_outputs(g: zarr.Group, recipe: Recipe, world_id: str) -> None:
    create_array(
        g,
        "split",
        (recipe.world(world_id).n_samples,),
        np.int8,
        ("sample",),
        recipe.chunk_samples,
        recipe.clevel,
        {"description": "split label of each sample", "labels": dict(splits.LABELS), "algorithm": splits.ALGORITHM},
    )


def split_region(job: RegionJob) -> RegionResult:
    """Labels of samples ``job.start .. job.stop - 1`` from their theta and split uniforms."""
    world = get_world(job.world_id)
    theta = open_group(job.inputs, mode="r")["theta"][job.start : job.stop]  # one read: a few bytes per sample
    labels = splits.assign(world, theta.astype(np.float64), split_uniforms(world, job.recipe.seed, job.start, job.stop))
    with region_writers(open_group(job.staging, mode="r+"), ["split"], job.start, job.stop) as writers:
        writers["split"].append(labels)  # one write per region: one byte per sample
        return RegionResult(job.start, job.stop, {"split": writers["split"].close()})


def finish(g: zarr.Group, recipe: Recipe, world: World, counts: dict[str, int]) -> StageOutcome:
    tally = splits.SplitTally()  # labels are 1 byte per sample: tally them here, in order
    for start, labels in iter_rows(g["split"], LABEL_ROWS):
        tally.add(start, labels)
    summary = tally.summary(world, recipe.seed)
    return StageOutcome(stats={"n_samples": recipe.world(world.name).n_samples}, provenance={"splits": summary})


SPEC = StageSpec(
    STAGE,
    data_arrays,
    output_arrays,
    create_outputs,
    split_region,
    finish,
    inputs=lambda w: ["theta"],
    provenance_keys=("splits",),
)


def build_world_splits(recipe: Recipe, world_id: str, root: str | Path, run: RunInfo | None = None) -> StageResult:
    """Label every sample of ``world_id`` from its published draws and publish the labels."""
    return run_stage(SPEC, recipe, world_id, root, run)
