"""Stage ``world_arrays``: simulate every sample of one world from its stored draws.

Reads ``theta``/``shocks`` (and drawn metadata) as stored — float32 values, which are exactly
the values simulated from — and asks the world for float32 results (simulated in float64, rounded
once, without float64 copies of a batch where the world's kernels allow), then writes
``trajectories (sample, time, observable)``, ``irfs (sample, shock, horizon, observable)``,
``extras (sample, time, extra)`` where the world has extra observables, simulated metadata
(``binding`` for zlb), ``observed`` (trajectories plus seeded Gaussian measurement noise) when the
recipe asks for ``noise``, and the coordinate arrays
``observable``, ``extra`` and ``horizon``.

With ``irfs: {states: K}`` (K > 0) it also writes the state-dependent IRFs
(:mod:`macro_data.worlds.state_irfs`): ``state_dates (sample, state)``, ``irfs_state (sample, state,
shock, horizon, observable)``, ``states (sample, state, state_var)``, the world's per-date labels
(switching ``state_regime``, zlb ``at_bound``) and the coordinate array ``state_var``; the batch is
then simulated in float64 once (its float32 outputs are the same numbers, rounded once).

With ``burn_in: B`` (B > 0) each batch is simulated for ``B + T`` periods (:mod:`macro_data.worlds.burn_in`:
burn-in innovations from the ``burn_in`` stream, never stored), the last ``T`` are stored, and
``initial_state (sample, state_var)`` holds the state entering ``t = 0``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import zarr

from macro_data.errors import StorageError
from macro_data.pipeline.common import RegionJob, RegionResult, RunInfo, StageResult
from macro_data.pipeline.stage import StageOutcome, StageSpec, run_stage
from macro_data.recipes import Recipe, WorldPlan
from macro_data.storage import segments
from macro_data.storage.arrays import create_array, read_ahead, read_rows, region_writers, write_small_array
from macro_data.storage.locations import open_group
from macro_data.worlds import World, burn_in, get_world, state_irfs
from macro_data.worlds.sampling import (
    BATCH_SAMPLES,
    BLOCK_SIZE,
    blocks_covering,
    burn_in_shocks,
    metadata_chains,
    noise_range,
    observe,
)

STAGE = "world_arrays"


def noise_sd(plan: WorldPlan | None, world_id: str) -> np.ndarray | None:
    """Measurement-noise standard deviations per canonical observable (0 where the recipe gives none), or
    ``None`` when the world's plan asks for no noise (then there is no ``observed`` array)."""
    if plan is None or not plan.noise:
        return None
    return np.array([float(plan.noise.get(o.name, 0.0)) for o in get_world(world_id).observables])


def state_arrays(world_id: str) -> list[str]:
    """The data arrays of the state IRFs (written when K > 0)."""
    return ["state_dates", "irfs_state", "states", *[f.name for f in get_world(world_id).state_labels]]


def data_arrays(world_id: str, plan: WorldPlan | None = None) -> list[str]:
    world = get_world(world_id)
    K, B = (plan.irf_states, plan.burn_in) if plan is not None else (0, 0)
    return [
        "trajectories",
        "irfs",
        *(["extras"] if world.extras else []),
        *[m.name for m in world.metadata_fields if m.stage == "simulation"],
        *(["observed"] if noise_sd(plan, world_id) is not None else []),
        *(state_arrays(world_id) if K else []),
        *(["initial_state"] if B else []),
    ]


def output_arrays(world_id: str, plan: WorldPlan | None = None) -> list[str]:
    K, B = (plan.irf_states, plan.burn_in) if plan is not None else (0, 0)
    return [
        *data_arrays(world_id, plan),
        "observable",
        "horizon",
        *(["extra"] if get_world(world_id).extras else []),
        *(["state_var"] if K or B else []),
    ]


def state_variable_attrs(world: World) -> dict:
    """Names, units and definitions of the world's state variables, for every array with a ``state_var`` axis."""
    svars = world.state_variables
    return {
        "state_variables": [v.name for v in svars],
        "units": [v.unit for v in svars],
        "definitions": [v.definition for v in svars],
    }


def state_var_array(g: zarr.Group, world: World, clevel: int) -> None:
    """The coordinate ``state_var``: names and units of the world's state variables."""
    names = np.array([v.name for v in world.state_variables])
    attrs = {"description": "state variable names", **state_variable_attrs(world)}
    write_small_array(g, "state_var", names, ("state_var",), clevel, attrs)


def create_state_outputs(g: zarr.Group, recipe: Recipe, world: World) -> None:
    """The state-IRF arrays (see the module docstring)."""
    n, H, S = recipe.world(world.name).n_samples, recipe.H, len(world.shocks)
    K = recipe.world(world.name).irf_states
    chunk, clevel = recipe.chunk_samples, recipe.clevel
    svars = world.state_variables
    create_array(
        g,
        "state_dates",
        (n, K),
        np.int32,
        ("sample", "state"),
        chunk,
        clevel,
        {
            "description": "state dates t in [1, T) of the stored time axis, drawn from the sample's state_dates "
            "stream (rule in docs/worlds.md; zlb oversamples dates near the bound)",
            "units": "period index (quarters)",
        },
    )
    create_array(
        g,
        "irfs_state",
        (n, K, S, H + 1, 3),
        np.float32,
        ("sample", "state", "shock", "horizon", "observable"),
        chunk,
        clevel,
        {
            "description": state_irfs.DEFINITION,
            "shocks": list(world.shocks),
            "observables": [o.name for o in world.observables],
            "units": [o.unit for o in world.observables],
        },
    )
    create_array(
        g,
        "states",
        (n, K, len(svars)),
        np.float32,
        ("sample", "state", "state_var"),
        chunk,
        clevel,
        {
            "description": "the state entering period t = state_dates (after periods 0..t-1)",
            **state_variable_attrs(world),
        },
    )
    for f in world.state_labels:
        create_array(
            g, f.name, (n, K), f.dtype, ("sample", "state"), chunk, clevel, {"description": f.description, "units": ""}
        )


def create_outputs(g: zarr.Group, recipe: Recipe, world_id: str) -> None:
    world = get_world(world_id)
    plan = recipe.world(world_id)
    n, T, H, S = plan.n_samples, recipe.T, recipe.H, len(world.shocks)
    chunk, clevel = recipe.chunk_samples, recipe.clevel
    obs_units = [o.unit for o in world.observables]
    start = (
        f"from initial_state (the state after {plan.burn_in} burn-in periods from the steady state, see the "
        "manifest's burn_in)"
        if plan.burn_in
        else "from the steady state"
    )
    create_array(
        g,
        "trajectories",
        (n, T, 3),
        np.float32,
        ("sample", "time", "observable"),
        chunk,
        clevel,
        {
            "description": f"canonical observables simulated {start}, driven by shocks[0..T-1]",
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
    sd = noise_sd(plan, world_id)
    if sd is not None:
        create_array(
            g,
            "observed",
            (n, T, 3),
            np.float32,
            ("sample", "time", "observable"),
            chunk,
            clevel,
            {
                "description": "trajectories plus Gaussian measurement noise: float32(trajectories + sd * noise), "
                "noise standard normal from the seeding's noise stream; trajectories stay clean",
                "observables": [o.name for o in world.observables],
                "units": obs_units,
                "noise_sd": {o.name: float(s) for o, s in zip(world.observables, sd)},
            },
        )
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
    if plan.irf_states:
        create_state_outputs(g, recipe, world)
    if plan.burn_in:
        create_array(
            g,
            "initial_state",
            (n, len(world.state_variables)),
            np.float32,
            ("sample", "state_var"),
            chunk,
            clevel,
            {
                "description": f"the state entering t = 0: after {plan.burn_in} burn-in periods from the steady "
                "state, driven by unstored innovations of the burn_in stream (see the manifest's burn_in)",
                "burn_in": plan.burn_in,
                **state_variable_attrs(world),
            },
        )
    if plan.irf_states or plan.burn_in:
        state_var_array(g, world, clevel)


def simulate_region(job: RegionJob) -> RegionResult:
    """Simulate samples ``job.start .. job.stop - 1`` from the input snapshot into the staging arrays."""
    world = get_world(job.world_id)
    plan = job.recipe.world(job.world_id)
    inputs = open_group(job.inputs, mode="r")
    g = open_group(job.staging, mode="r+")
    drawn = [m.name for m in world.metadata_fields if m.stage == "draws"]
    simulated = [m.name for m in world.metadata_fields if m.stage == "simulation"]
    counts: dict[str, list[np.ndarray]] = {}
    theta_region = inputs["theta"][job.start : job.stop]  # one read: a few bytes per sample
    readers = {k: read_rows(inputs[k]) for k in ["shocks", *drawn]}
    sd = noise_sd(plan, job.world_id)
    K, B, seed = plan.irf_states, plan.burn_in, job.recipe.seed

    def load(lo: int, hi: int):
        theta = theta_region[lo - job.start : hi - job.start].astype(np.float64)
        return theta, readers["shocks"](lo, hi), {k: readers[k](lo, hi) for k in drawn}

    with region_writers(g, data_arrays(job.world_id, plan), job.start, job.stop) as writers:
        for (lo, hi), (theta, shocks, drawn_metadata) in zip(
            job.batches(BATCH_SAMPLES),
            read_ahead(functools.partial(load, lo, hi) for lo, hi in job.batches(BATCH_SAMPLES)),
        ):
            run = None
            if B:  # simulated through the burn-in in float64; the stored outputs are it rounded once
                burn_meta = burn_in_metadata(world, seed, inputs, drawn_metadata, lo, hi, B, job.recipe.T)
                run = burn_in.simulate(
                    world, theta, shocks, drawn_metadata, burn_in_shocks(world, seed, lo, hi, B), burn_meta
                )
                sim64 = run.window
                sim = sim64.as_dtype(np.float32)
                writers["initial_state"].append(run.initial_state.astype(np.float32))
            elif K:  # float64 once: the state IRFs read it; the stored float32 outputs are it rounded once
                sim64 = world.simulate(theta, shocks, drawn_metadata, dtype=np.float64)
                sim = sim64.as_dtype(np.float32)
            else:
                sim = world.simulate(theta, shocks, drawn_metadata, dtype=np.float32)
            writers["trajectories"].append(sim.trajectories)
            writers["irfs"].append(world.irfs(theta, job.recipe.H, dtype=np.float32))
            if world.extras:
                writers["extras"].append(sim.extras)
            if sd is not None:
                z = noise_range(world, seed, lo, hi, job.recipe.T)
                writers["observed"].append(observe(sim.trajectories, z, sd))
            for name in simulated:  # e.g. zlb binding: periods at the bound, and samples that ever reach it
                values = sim.metadata[name]
                writers[name].append(values)
                counts.setdefault(f"{name}_periods", []).append(segments.per_segment(values.sum(axis=1), lo))
                counts.setdefault(f"{name}_samples", []).append(segments.per_segment(values.any(axis=1), lo))
            if K:
                u = state_irfs.date_uniforms(world, seed, lo, hi, K)
                if run is not None:
                    st = state_irfs.state_arrays(world, theta, run.eps, run.metadata, run.sim, u, job.recipe.H, B)
                else:
                    st = state_irfs.state_arrays(world, theta, shocks, drawn_metadata, sim64, u, job.recipe.H)
                for name in state_arrays(job.world_id):
                    value = st[name]
                    writers[name].append(value.astype(np.float32) if value.dtype == np.float64 else value)
                for f in world.state_labels:
                    if f.dtype == "bool":
                        per = segments.per_segment(st[f.name].sum(axis=1), lo)
                        counts.setdefault(f"{f.name}_dates", []).append(per)
        digests = {name: w.close() for name, w in writers.items()}
    return RegionResult(job.start, job.stop, digests, {k: np.concatenate(v) for k, v in counts.items()})


def burn_in_metadata(
    world: World, seed: int, inputs: zarr.Group, stored: dict[str, np.ndarray], lo: int, hi: int, B: int, T: int
) -> dict[str, np.ndarray]:
    """The burn-in periods ``(hi - lo, B)`` of the drawn metadata chains of samples ``lo .. hi - 1``.

    The chains are re-drawn for ``B + T`` periods from the covering blocks' metadata streams with the
    stored theta (:func:`~macro_data.worlds.sampling.metadata_chains`; rows past the dataset's end
    repeat its last sample, which the row-wise chains never read). Their last ``T`` periods must equal
    the stored metadata: a mismatch means the inputs were not drawn with this recipe, and is an error."""
    if not stored:
        return {}
    blocks = blocks_covering(lo, hi)
    first = blocks.start * BLOCK_SIZE
    theta = inputs["theta"][first : min(blocks.stop * BLOCK_SIZE, inputs["theta"].shape[0])].astype(np.float64)
    pad = len(blocks) * BLOCK_SIZE - theta.shape[0]
    theta = np.concatenate([theta, np.repeat(theta[-1:], pad, axis=0)])
    chains = metadata_chains(world, seed, blocks, theta, B + T)
    out = {}
    for k, v in chains.items():
        rows = v[lo - first : hi - first]
        if not np.array_equal(rows[:, B:], stored[k]):
            raise StorageError(
                f"world {world.name!r}: stored {k!r} of samples {lo}..{hi - 1} is not the chain drawn with "
                f"burn_in {B} from the recipe's seed; rebuild world_draws with this recipe"
            )
        out[k] = rows[:, :B]
    return out


def finish(g: zarr.Group, recipe: Recipe, world: World, counts: dict[str, int]) -> StageOutcome:
    n, T = recipe.world(world.name).n_samples, recipe.T
    stats: dict = {"n_samples": n}
    for m in world.metadata_fields:
        if m.stage == "simulation":
            stats[f"{m.name}_mean_fraction"] = counts.get(f"{m.name}_periods", 0) / (n * T)
            stats[f"{m.name}_any_share"] = counts.get(f"{m.name}_samples", 0) / n
    K = recipe.world(world.name).irf_states
    if K:
        stats["irf_states"] = K
        for f in world.state_labels:
            if f.dtype == "bool":
                stats[f"{f.name}_date_fraction"] = counts.get(f"{f.name}_dates", 0) / (n * K)
    return StageOutcome(stats=stats)


def input_arrays(world_id: str) -> list[str]:
    return ["theta", "shocks", *[m.name for m in get_world(world_id).metadata_fields if m.stage == "draws"]]


SPEC = StageSpec(STAGE, data_arrays, output_arrays, create_outputs, simulate_region, finish, inputs=input_arrays)


def build_world_arrays(recipe: Recipe, world_id: str, root: str | Path, run: RunInfo | None = None) -> StageResult:
    """Simulate every sample of ``world_id`` from its published draws and publish the results."""
    return run_stage(SPEC, recipe, world_id, root, run)
