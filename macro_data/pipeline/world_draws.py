"""Stage ``world_draws``: the random inputs of every sample of one world.

Writes ``theta (sample, param)``, ``shocks (sample, time, shock)`` and the world's drawn
per-period metadata (``regime (sample, time)`` for switching), plus the coordinate arrays
``param``, ``shock`` and ``time``. Regions and batches are whole seeding blocks, so the content
does not depend on the batch or chunk size, nor on where regions are computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from macro_data.pipeline.common import RegionJob, RegionResult, RunInfo, StageResult
from macro_data.pipeline.stage import StageOutcome, StageSpec, run_stage
from macro_data.recipes import Recipe, WorldPlan
from macro_data.storage import segments
from macro_data.storage.arrays import create_array, region_writers, write_small_array
from macro_data.storage.locations import open_group
from macro_data.worlds import World, get_world
from macro_data.worlds.sampling import BATCH_SAMPLES, BLOCK_SIZE, draw_range

STAGE = "world_draws"
BATCH = (BATCH_SAMPLES // BLOCK_SIZE) * BLOCK_SIZE


def data_arrays(world_id: str, plan: WorldPlan | None = None) -> list[str]:
    world = get_world(world_id)
    return ["theta", "shocks", *[m.name for m in world.metadata_fields if m.stage == "draws"]]


def output_arrays(world_id: str, plan: WorldPlan | None = None) -> list[str]:
    return [*data_arrays(world_id), "param", "shock", "time"]


def create_outputs(g: zarr.Group, recipe: Recipe, world_id: str) -> None:
    world = get_world(world_id)
    n, T = recipe.world(world_id).n_samples, recipe.T
    chunk, clevel = recipe.chunk_samples, recipe.clevel
    create_array(
        g,
        "theta",
        (n, len(world.parameters)),
        np.float32,
        ("sample", "param"),
        chunk,
        clevel,
        {
            "description": "parameter draw of each sample (natural units; see the group's world.parameters)",
            "parameters": list(world.parameter_names),
            "units": [p.unit for p in world.parameters],
        },
    )
    create_array(
        g,
        "shocks",
        (n, T, len(world.shocks)),
        np.float32,
        ("sample", "time", "shock"),
        chunk,
        clevel,
        {
            "description": "structural innovations eps[t, j], standard normal (sd units); the model receives "
            "sigma_j * eps[t, j]; y[0..T-1] is driven by eps[0..T-1] from the steady state",
            "shocks": list(world.shocks),
            "units": "standard deviations",
        },
    )
    for m in world.metadata_fields:
        if m.stage == "draws":
            create_array(g, m.name, (n, T), m.dtype, ("sample", "time"), chunk, clevel, {"description": m.description})
    write_small_array(
        g,
        "param",
        np.array(world.parameter_names),
        ("param",),
        clevel,
        {"description": "parameter names (theta columns)"},
    )
    write_small_array(g, "shock", np.array(world.shocks), ("shock",), clevel, {"description": "shock names"})
    write_small_array(
        g,
        "time",
        np.arange(T, dtype=np.int32),
        ("time",),
        clevel,
        {"description": "quarter index t = 0..T-1", "units": "quarters"},
    )


def draw_region(job: RegionJob) -> RegionResult:
    """Draw samples ``job.start .. job.stop - 1`` and write them into the staging arrays."""
    world = get_world(job.world_id)
    plan = job.recipe.world(job.world_id)
    g = open_group(job.staging, mode="r+")
    rejections = []
    with region_writers(g, data_arrays(job.world_id), job.start, job.stop) as writers:
        for lo, hi in job.batches(BATCH):
            d = draw_range(world, job.recipe.seed, lo, hi, job.recipe.T, plan.priors, plan.design, plan.burn_in)
            writers["theta"].append(d.theta)
            writers["shocks"].append(d.shocks)
            for name, values in d.metadata.items():
                writers[name].append(values)
            rejections.append(segments.per_segment(d.rejections, lo))
        digests = {name: w.close() for name, w in writers.items()}
    return RegionResult(job.start, job.stop, digests, {"n_rejected": np.concatenate(rejections)})


def finish(g: zarr.Group, recipe: Recipe, world: World, counts: dict[str, int]) -> StageOutcome:
    n = recipe.world(world.name).n_samples
    rejections = counts.get("n_rejected", 0)
    draw_stats = {"n_samples": n, "n_rejected": rejections, "rejection_rate": rejections / (rejections + n)}
    return StageOutcome(stats=draw_stats)


SPEC = StageSpec(STAGE, data_arrays, output_arrays, create_outputs, draw_region, finish)


def build_world_draws(recipe: Recipe, world_id: str, root: str | Path, run: RunInfo | None = None) -> StageResult:
    """Draw every sample of ``world_id`` and publish the draws (see :mod:`macro_data.pipeline.stage`)."""
    return run_stage(SPEC, recipe, world_id, root, run)
