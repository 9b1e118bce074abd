"""Stage ``world_splits``: the split label of every sample of one world (:mod:`macro_data.splits`).

Writes ``split (sample,) int8``; the label-to-name mapping is stored in the array's attributes
and in the manifest.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from macro_data import splits
from macro_data.pipeline.common import (
    RegionJob,
    RegionResult,
    RunInfo,
    StageResult,
    check_inputs,
    compute_regions,
    data_version,
    group_attributes,
    os_errors_as_storage_errors,
    provenance,
    snapshot_inputs,
    stamp,
    summarize_staged,
)
from macro_data.recipes import Recipe
from macro_data.storage.arrays import create_array, iter_rows, region_writers
from macro_data.storage.locations import open_group
from macro_data.storage.publish import world_store
from macro_data.worlds import get_world
from macro_data.worlds.sampling import split_uniforms

STAGE = "world_splits"
LABEL_ROWS = 1 << 20  # labels tallied per read: 1 MiB of int8


def output_arrays(world_id: str) -> list[str]:
    return ["split"]


def split_region(job: RegionJob) -> RegionResult:
    """Labels of samples ``job.start .. job.stop - 1`` from their theta and split uniforms."""
    world = get_world(job.world_id)
    theta = open_group(job.inputs, mode="r")["theta"][job.start : job.stop]  # one read: a few bytes per sample
    labels = splits.assign(world, theta.astype(np.float64), split_uniforms(world, job.recipe.seed, job.start, job.stop))
    with region_writers(open_group(job.staging, mode="r+"), ["split"], job.start, job.stop) as writers:
        writers["split"].append(labels)  # one write per region: one byte per sample
        return RegionResult(job.start, job.stop, {"split": writers["split"].close()})


def build_world_splits(recipe: Recipe, world_id: str, root: str | Path, run: RunInfo | None = None) -> StageResult:
    run = run or RunInfo()
    t0 = time.perf_counter()
    world = get_world(world_id)
    n = recipe.world(world_id).n_samples
    store = world_store(recipe.dataset_dir(root), world_id)
    attrs = group_attributes(world, recipe)
    with os_errors_as_storage_errors(STAGE, world_id, store.location), store.staging(STAGE, attrs) as g:
        inputs = snapshot_inputs(store, g, ["theta"], STAGE)
        upstream = check_inputs(inputs, ["theta"], recipe, world, STAGE)
        create_array(
            g,
            "split",
            (n,),
            np.int8,
            ("sample",),
            recipe.chunk_samples,
            recipe.clevel,
            {"description": "split label of each sample", "labels": dict(splits.LABELS), "algorithm": splits.ALGORITHM},
        )
        digests, _ = compute_regions(split_region, STAGE, recipe, world_id, g, run, inputs)
        tally = splits.SplitTally()  # labels are 1 byte per sample: tally them here, in order
        for start, labels in iter_rows(g["split"], LABEL_ROWS):
            tally.add(start, labels)
        summaries = summarize_staged(g, ["split"], digests)
        version = data_version(summaries)
        summary = tally.summary(world, recipe.seed)
        prov = provenance(
            STAGE,
            world,
            recipe,
            run,
            version,
            upstream={"world_draws": {"data_version": upstream.get("data_version"), "run_id": upstream.get("run_id")}},
        )
        prov["splits"] = summary
        stamp(g, ["split"], prov)
        store.publish(g, output_arrays(world_id), attrs)
    return StageResult(
        STAGE,
        world_id,
        store.location,
        summaries,
        version,
        time.perf_counter() - t0,
        {"n_samples": n, "splits": summary, "compute": run.compute.describe()},
    )
