"""Stage ``world_draws``: the random inputs of every sample of one world.

Writes ``theta (sample, param)``, ``shocks (sample, time, shock)`` and the world's drawn
per-period metadata (``regime (sample, time)`` for switching), plus the coordinate arrays
``param``, ``shock`` and ``time``. Batches are whole seeding blocks, so the content does not
depend on the batch or chunk size.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from macro_data.pipeline.common import (BATCH_SAMPLES, Progress, RunInfo, StageResult, data_version,
                                        group_attributes, provenance, stamp)
from macro_data.recipes import Recipe
from macro_data.storage.arrays import ChunkedArrayWriter, write_small_array
from macro_data.storage.publish import WorldStore
from macro_data.worlds import get_world
from macro_data.worlds.sampling import BLOCK_SIZE, draw_range, seeding_description

STAGE = "world_draws"
BATCH = (BATCH_SAMPLES // BLOCK_SIZE) * BLOCK_SIZE


def output_arrays(world_id: str) -> list[str]:
    world = get_world(world_id)
    return ["theta", "shocks", *[m.name for m in world.metadata_fields if m.stage == "draws"], "param", "shock", "time"]


def build_world_draws(recipe: Recipe, world_id: str, root: str | Path, run: RunInfo | None = None) -> StageResult:
    run = run or RunInfo()
    t0 = time.perf_counter()
    world = get_world(world_id)
    plan = recipe.world(world_id)
    n, T, S, P = plan.n_samples, recipe.T, len(world.shocks), len(world.parameters)
    store = WorldStore(recipe.dataset_dir(root), world_id)
    attrs = group_attributes(world, recipe)
    chunk, clevel = recipe.chunk_samples, recipe.clevel
    with store.staging(STAGE, attrs) as g:
        writers = {
            "theta": ChunkedArrayWriter(g, "theta", (n, P), np.float32, ("sample", "param"), chunk, clevel, {
                "description": "parameter draw of each sample (natural units; see the group's world.parameters)",
                "parameters": list(world.parameter_names),
                "units": [p.unit for p in world.parameters]}),
            "shocks": ChunkedArrayWriter(g, "shocks", (n, T, S), np.float32, ("sample", "time", "shock"), chunk, clevel, {
                "description": "structural innovations eps[t, j], standard normal (sd units); the model receives "
                               "sigma_j * eps[t, j]; y[0..T-1] is driven by eps[0..T-1] from the steady state",
                "shocks": list(world.shocks), "units": "standard deviations"}),
        }
        for m in world.metadata_fields:
            if m.stage == "draws":
                writers[m.name] = ChunkedArrayWriter(g, m.name, (n, T), m.dtype, ("sample", "time"), chunk, clevel,
                                                     {"description": m.description})
        rejections = 0
        progress = Progress(n, f"{world_id} draws", run.log)
        for start in range(0, n, BATCH):
            d = draw_range(world, recipe.seed, start, min(start + BATCH, n), T, plan.priors)
            writers["theta"].append(d.theta)
            writers["shocks"].append(d.shocks)
            for name, values in d.metadata.items():
                writers[name].append(values)
            rejections += int(d.rejections.sum())
            progress.update(start + d.n)
        summaries = {name: w.close() for name, w in writers.items()}
        write_small_array(g, "param", np.array(world.parameter_names), ("param",), clevel,
                          {"description": "parameter names (theta columns)"})
        write_small_array(g, "shock", np.array(world.shocks), ("shock",), clevel, {"description": "shock names"})
        write_small_array(g, "time", np.arange(T, dtype=np.int32), ("time",), clevel,
                          {"description": "quarter index t = 0..T-1", "units": "quarters"})
        version = data_version(summaries)
        rejection_rate = rejections / (rejections + n)
        stats = {"n_samples": n, "n_rejected": rejections, "rejection_rate": rejection_rate,
                 "seeding": seeding_description()}
        prov = provenance(STAGE, world, recipe, run, version, upstream={})
        prov["stats"] = {"n_samples": n, "n_rejected": rejections, "rejection_rate": rejection_rate}
        stamp(g, output_arrays(world_id), prov)
        store.publish(g, output_arrays(world_id), attrs)
    return StageResult(STAGE, world_id, store.path, summaries, version, time.perf_counter() - t0, stats)
