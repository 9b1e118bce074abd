"""Stage ``world_arrays``: simulate every sample of one world from its stored draws.

Reads ``theta``/``shocks`` (and drawn metadata) as stored — float32 values, which are exactly
the values simulated from — and writes ``trajectories (sample, time, observable)``,
``irfs (sample, shock, horizon, observable)``, ``extras (sample, time, extra)`` where the world
has extra observables, simulated metadata (``binding`` for zlb), and the coordinate arrays
``observable``, ``extra`` and ``horizon``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from macro_data.pipeline.common import (BATCH_SAMPLES, Progress, RunInfo, StageResult, check_inputs, data_version,
                                        group_attributes, provenance, stamp, snapshot_inputs)
from macro_data.errors import StorageError
from macro_data.recipes import Recipe
from macro_data.storage.arrays import ChunkedArrayWriter, write_small_array
from macro_data.storage.publish import WorldStore
from macro_data.worlds import get_world

STAGE = "world_arrays"


def output_arrays(world_id: str) -> list[str]:
    world = get_world(world_id)
    names = ["trajectories", "irfs", "observable", "horizon"]
    if world.extras:
        names += ["extras", "extra"]
    return names + [m.name for m in world.metadata_fields if m.stage == "simulation"]


def build_world_arrays(recipe: Recipe, world_id: str, root: str | Path, run: RunInfo | None = None) -> StageResult:
    run = run or RunInfo()
    t0 = time.perf_counter()
    world = get_world(world_id)
    plan = recipe.world(world_id)
    n, T, H, S = plan.n_samples, recipe.T, recipe.H, len(world.shocks)
    store = WorldStore(recipe.dataset_dir(root), world_id)
    attrs = group_attributes(world, recipe)
    chunk, clevel = recipe.chunk_samples, recipe.clevel
    drawn_meta = [m.name for m in world.metadata_fields if m.stage == "draws"]
    sim_meta = [m for m in world.metadata_fields if m.stage == "simulation"]
    with store.staging(STAGE, attrs) as g:
        inputs = snapshot_inputs(store, g, ["theta", "shocks", *drawn_meta], STAGE)
        upstream = check_inputs(inputs, ["theta"], recipe, world, STAGE)
        if inputs["theta"].shape[0] != n or inputs["shocks"].shape[1] != T:
            raise StorageError(f"world {world_id!r}: stored draws have shape {inputs['shocks'].shape}, "
                             f"recipe asks for {n} samples of T={T}")
        obs_units = [o.unit for o in world.observables]
        writers = {
            "trajectories": ChunkedArrayWriter(g, "trajectories", (n, T, 3), np.float32, ("sample", "time", "observable"),
                                               chunk, clevel, {
                "description": "canonical observables simulated from the steady state, driven by shocks[0..T-1]",
                "observables": [o.name for o in world.observables], "units": obs_units,
                "definitions": [o.definition for o in world.observables]}),
            "irfs": ChunkedArrayWriter(g, "irfs", (n, S, H + 1, 3), np.float32, ("sample", "shock", "horizon", "observable"),
                                       chunk, clevel, {
                "description": "impulse responses irfs[j, h] = y_shocked[h] - y_baseline[h] to a +1 sd innovation j "
                               "at h = 0 from the steady state (baseline: all innovations zero)",
                "shocks": list(world.shocks), "observables": [o.name for o in world.observables], "units": obs_units}),
        }
        if world.extras:
            writers["extras"] = ChunkedArrayWriter(g, "extras", (n, T, len(world.extras)), np.float32,
                                                   ("sample", "time", "extra"), chunk, clevel, {
                "description": "extra observables of the world, same timing as trajectories",
                "extras": [o.name for o in world.extras], "units": [o.unit for o in world.extras],
                "definitions": [o.definition for o in world.extras]})
        for m in sim_meta:
            writers[m.name] = ChunkedArrayWriter(g, m.name, (n, T), m.dtype, ("sample", "time"), chunk, clevel,
                                                 {"description": m.description})
        meta_sums = {m.name: 0.0 for m in sim_meta}
        meta_any = {m.name: 0 for m in sim_meta}
        progress = Progress(n, f"{world_id} arrays", run.log)
        for start in range(0, n, BATCH_SAMPLES):
            stop = min(start + BATCH_SAMPLES, n)
            theta = inputs["theta"][start:stop].astype(np.float64)
            eps = inputs["shocks"][start:stop].astype(np.float64)
            meta = {k: inputs[k][start:stop] for k in drawn_meta}
            sim = world.simulate(theta, eps, meta)
            writers["trajectories"].append(sim.trajectories)
            writers["irfs"].append(world.irfs(theta, H))
            if world.extras:
                writers["extras"].append(sim.extras)
            for m in sim_meta:
                values = sim.metadata[m.name]
                writers[m.name].append(values)
                meta_sums[m.name] += float(values.mean(axis=1).sum())
                meta_any[m.name] += int(values.any(axis=1).sum())
            progress.update(stop)
        summaries = {name: w.close() for name, w in writers.items()}
        write_small_array(g, "observable", np.array([o.name for o in world.observables]), ("observable",), clevel,
                          {"description": "canonical observable names", "units": obs_units})
        write_small_array(g, "horizon", np.arange(H + 1, dtype=np.int32), ("horizon",), clevel,
                          {"description": "IRF horizon h = 0..H", "units": "quarters"})
        if world.extras:
            write_small_array(g, "extra", np.array([o.name for o in world.extras]), ("extra",), clevel,
                              {"description": "extra observable names", "units": [o.unit for o in world.extras]})
        version = data_version(summaries)
        stats: dict = {"n_samples": n}
        for m in sim_meta:  # e.g. zlb: mean fraction of binding periods per sample, share of samples ever binding
            stats[f"{m.name}_mean_fraction"] = meta_sums[m.name] / n
            stats[f"{m.name}_any_share"] = meta_any[m.name] / n
        prov = provenance(STAGE, world, recipe, run, version,
                          upstream={"world_draws": {"data_version": upstream.get("data_version"),
                                                    "run_id": upstream.get("run_id")}})
        prov["stats"] = stats
        stamp(g, output_arrays(world_id), prov)
        store.publish(g, output_arrays(world_id), attrs)
    return StageResult(STAGE, world_id, store.path, summaries, version, time.perf_counter() - t0, stats)
