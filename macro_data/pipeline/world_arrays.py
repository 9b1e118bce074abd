"""Stage ``world_arrays``: simulate every sample of one world from its stored draws.

Reads ``theta``/``shocks`` (and drawn metadata) as stored — float32 values, which are exactly
the values simulated from — and asks the world for float32 results (simulated in float64, rounded
once, without float64 copies of a batch where the world's kernels allow), then writes
``trajectories (sample, time, observable)``, ``irfs (sample, shock, horizon, observable)``,
``extras (sample, time, extra)`` where the world has extra observables, simulated metadata
(``binding`` for zlb), and the coordinate arrays
``observable``, ``extra`` and ``horizon``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import zarr

from macro_data.errors import StorageError
from macro_data.pipeline.common import (
    BATCH_SAMPLES,
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
from macro_data.storage.arrays import create_array, read_ahead, read_rows, region_writers, write_small_array
from macro_data.storage.locations import open_group
from macro_data.storage.publish import world_store
from macro_data.worlds import get_world

STAGE = "world_arrays"


def data_arrays(world_id: str) -> list[str]:
    world = get_world(world_id)
    return [
        "trajectories",
        "irfs",
        *(["extras"] if world.extras else []),
        *[m.name for m in world.metadata_fields if m.stage == "simulation"],
    ]


def output_arrays(world_id: str) -> list[str]:
    return [*data_arrays(world_id), "observable", "horizon", *(["extra"] if get_world(world_id).extras else [])]


def create_outputs(g: zarr.Group, recipe: Recipe, world_id: str) -> None:
    world = get_world(world_id)
    n, T, H, S = recipe.world(world_id).n_samples, recipe.T, recipe.H, len(world.shocks)
    chunk, clevel = recipe.chunk_samples, recipe.clevel
    obs_units = [o.unit for o in world.observables]
    create_array(
        g,
        "trajectories",
        (n, T, 3),
        np.float32,
        ("sample", "time", "observable"),
        chunk,
        clevel,
        {
            "description": "canonical observables simulated from the steady state, driven by shocks[0..T-1]",
            "observables": [o.name for o in world.observables],
            "units": obs_units,
            "definitions": [o.definition for o in world.observables],
        },
    )
    create_array(
        g,
        "irfs",
        (n, S, H + 1, 3),
        np.float32,
        ("sample", "shock", "horizon", "observable"),
        chunk,
        clevel,
        {
            "description": "impulse responses irfs[j, h] = y_shocked[h] - y_baseline[h] to a +1 sd innovation j "
            "at h = 0 from the steady state (baseline: all innovations zero)",
            "shocks": list(world.shocks),
            "observables": [o.name for o in world.observables],
            "units": obs_units,
        },
    )
    if world.extras:
        create_array(
            g,
            "extras",
            (n, T, len(world.extras)),
            np.float32,
            ("sample", "time", "extra"),
            chunk,
            clevel,
            {
                "description": "extra observables of the world, same timing as trajectories",
                "extras": [o.name for o in world.extras],
                "units": [o.unit for o in world.extras],
                "definitions": [o.definition for o in world.extras],
            },
        )
        write_small_array(
            g,
            "extra",
            np.array([o.name for o in world.extras]),
            ("extra",),
            clevel,
            {"description": "extra observable names", "units": [o.unit for o in world.extras]},
        )
    for m in world.metadata_fields:
        if m.stage == "simulation":
            create_array(g, m.name, (n, T), m.dtype, ("sample", "time"), chunk, clevel, {"description": m.description})
    write_small_array(
        g,
        "observable",
        np.array([o.name for o in world.observables]),
        ("observable",),
        clevel,
        {"description": "canonical observable names", "units": obs_units},
    )
    write_small_array(
        g,
        "horizon",
        np.arange(H + 1, dtype=np.int32),
        ("horizon",),
        clevel,
        {"description": "IRF horizon h = 0..H", "units": "quarters"},
    )


def simulate_region(job: RegionJob) -> RegionResult:
    """Simulate samples ``job.start .. job.stop - 1`` from the input snapshot into the staging arrays."""
    world = get_world(job.world_id)
    inputs = open_group(job.inputs, mode="r")
    g = open_group(job.staging, mode="r+")
    drawn = [m.name for m in world.metadata_fields if m.stage == "draws"]
    simulated = [m.name for m in world.metadata_fields if m.stage == "simulation"]
    stats: dict = {}
    theta_region = inputs["theta"][job.start : job.stop]  # one read: a few bytes per sample
    readers = {k: read_rows(inputs[k]) for k in ["shocks", *drawn]}

    def load(lo: int, hi: int):
        theta = theta_region[lo - job.start : hi - job.start].astype(np.float64)
        return theta, readers["shocks"](lo, hi), {k: readers[k](lo, hi) for k in drawn}

    with region_writers(g, data_arrays(job.world_id), job.start, job.stop) as writers:
        for theta, shocks, drawn_metadata in read_ahead(
            functools.partial(load, lo, hi) for lo, hi in job.batches(BATCH_SAMPLES)
        ):
            sim = world.simulate(theta, shocks, drawn_metadata, dtype=np.float32)
            writers["trajectories"].append(sim.trajectories)
            writers["irfs"].append(world.irfs(theta, job.recipe.H, dtype=np.float32))
            if world.extras:
                writers["extras"].append(sim.extras)
            for name in simulated:  # e.g. zlb binding: per-sample fraction of periods, and samples ever binding
                values = sim.metadata[name]
                writers[name].append(values)
                stats[f"{name}_fraction_sum"] = stats.get(f"{name}_fraction_sum", 0.0) + float(
                    values.mean(axis=1).sum()
                )
                stats[f"{name}_any_count"] = stats.get(f"{name}_any_count", 0) + int(values.any(axis=1).sum())
        digests = {name: w.close() for name, w in writers.items()}
    return RegionResult(job.start, job.stop, digests, stats)


def build_world_arrays(recipe: Recipe, world_id: str, root: str | Path, run: RunInfo | None = None) -> StageResult:
    run = run or RunInfo()
    t0 = time.perf_counter()
    world = get_world(world_id)
    n, T = recipe.world(world_id).n_samples, recipe.T
    store = world_store(recipe.dataset_dir(root), world_id)
    attrs = group_attributes(world, recipe)
    drawn = [m.name for m in world.metadata_fields if m.stage == "draws"]
    with os_errors_as_storage_errors(STAGE, world_id, store.location), store.staging(STAGE, attrs) as g:
        inputs = snapshot_inputs(store, g, ["theta", "shocks", *drawn], STAGE)
        upstream = check_inputs(inputs, ["theta"], recipe, world, STAGE)
        if inputs["theta"].shape[0] != n or inputs["shocks"].shape[1] != T:
            raise StorageError(
                f"world {world_id!r}: stored draws have shape {inputs['shocks'].shape}, "
                f"recipe asks for {n} samples of T={T}"
            )
        create_outputs(g, recipe, world_id)
        digests, counts = compute_regions(simulate_region, STAGE, recipe, world_id, g, run, inputs)
        summaries = summarize_staged(g, data_arrays(world_id), digests)
        version = data_version(summaries)
        stats: dict = {"n_samples": n}
        for m in world.metadata_fields:
            if m.stage == "simulation":
                stats[f"{m.name}_mean_fraction"] = counts.get(f"{m.name}_fraction_sum", 0.0) / n
                stats[f"{m.name}_any_share"] = counts.get(f"{m.name}_any_count", 0) / n
        prov = provenance(
            STAGE,
            world,
            recipe,
            run,
            version,
            upstream={"world_draws": {"data_version": upstream.get("data_version"), "run_id": upstream.get("run_id")}},
        )
        prov["stats"] = stats
        stamp(g, output_arrays(world_id), prov)
        store.publish(g, output_arrays(world_id), attrs)
    return StageResult(
        STAGE,
        world_id,
        store.location,
        summaries,
        version,
        time.perf_counter() - t0,
        {**stats, "compute": run.compute.describe()},
    )
