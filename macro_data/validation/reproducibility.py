"""Reproducibility: a random subset of samples recomputed from scratch must match bit for bit.

The subset: :data:`SUBSET_SIZE` samples (all of them when the world has fewer), chosen without
replacement by ``Generator(PCG64(SeedSequence(seed, spawn_key=(world_key, 0, 4))))`` (the
seeding algorithm's spare ``subset`` purpose of block 0), so it is fixed by the seed and
differs between worlds and seeds. :func:`subset_indices` returns it.

For each subset sample, everything is recomputed from ``(seed, world, sample index)`` alone,
with the package's own code and no stored data:

* ``reproducibility.draws``: the parameter draw, innovations and drawn metadata (e.g. regimes)
  from :func:`macro_data.worlds.sampling.draw_range` (whole seeding blocks, then the sample's
  row), compared with the stored ``theta``, ``shocks`` and metadata;
* ``reproducibility.simulation``: trajectories, IRFs, extras and simulated metadata from
  :meth:`World.simulate` / :meth:`World.irfs` on those fresh draws (the subset is simulated as
  one batch, unlike the build, which also tests batch independence), compared with the stored
  arrays.

"Bit-identical" means equal float32 bit patterns (and equal integer/bool values): no tolerance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from macro_data.storage.arrays import storage_dtype
from macro_data.validation.results import CheckResult, Problems, result
from macro_data.validation.spec import WorldSpec
from macro_data.worlds.sampling import BLOCK_SIZE, block_rng, draw_range

SUBSET_SIZE = 64


def subset_indices(spec: WorldSpec, size: int = SUBSET_SIZE) -> np.ndarray:
    """The sorted sample indices re-simulated for ``spec``'s world (fixed by the seed)."""
    k = min(int(size), spec.n)
    rng = block_rng(spec.seed, spec.world, 0, "subset")
    return np.sort(rng.choice(spec.n, size=k, replace=False)).astype(np.int64)


@dataclass
class Fresh:
    """Recomputed values of the subset samples, in storage dtypes."""

    indices: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None  # why recomputation failed, if it did


def redraw(spec: WorldSpec, indices: np.ndarray) -> Fresh:
    """Draws of the subset samples from the seed (whole blocks, then the samples' rows)."""
    world = spec.world
    fresh = Fresh(indices)
    theta, shocks, meta = [], [], {}
    try:
        for b in np.unique(indices // BLOCK_SIZE):
            lo, hi = int(b) * BLOCK_SIZE, min((int(b) + 1) * BLOCK_SIZE, spec.n)
            d = draw_range(world, spec.seed, lo, hi, spec.T, spec.priors)
            rows = indices[(indices >= lo) & (indices < hi)] - lo
            theta.append(d.theta[rows])
            shocks.append(d.shocks[rows])
            for k, v in d.metadata.items():
                meta.setdefault(k, []).append(v[rows])
    except Exception as exc:  # noqa: BLE001 - reported as a failure of the check
        fresh.error = f"redrawing failed: {type(exc).__name__}: {exc}"
        return fresh
    fresh.arrays["theta"] = np.concatenate(theta)
    fresh.arrays["shocks"] = np.concatenate(shocks)
    for k, parts in meta.items():
        fresh.arrays[k] = np.concatenate(parts)
    return fresh


def resimulate(spec: WorldSpec, drawn: Fresh) -> Fresh:
    """Trajectories, IRFs, extras and simulated metadata of the redrawn subset, as one batch."""
    world = spec.world
    fresh = Fresh(drawn.indices)
    if drawn.error:
        fresh.error = drawn.error
        return fresh
    meta = {m.name: drawn.arrays[m.name] for m in world.metadata_fields if m.stage == "draws"}
    try:
        sim = world.simulate(drawn.arrays["theta"], drawn.arrays["shocks"], meta)
        fresh.arrays["trajectories"] = sim.trajectories
        fresh.arrays["irfs"] = world.irfs(drawn.arrays["theta"], spec.H)
        if world.extras:
            fresh.arrays["extras"] = sim.extras
        for m in world.metadata_fields:
            if m.stage == "simulation":
                fresh.arrays[m.name] = sim.metadata[m.name]
    except Exception as exc:  # noqa: BLE001
        fresh.error = f"re-simulation failed: {type(exc).__name__}: {exc}"
    return fresh


def read_subset(group, name: str, indices: np.ndarray) -> np.ndarray:
    """Stored rows ``indices`` of an array, read one row at a time (one chunk decoded at a time, so
    memory stays at one chunk however scattered the rows are)."""
    array = group[name]
    return np.concatenate([np.asarray(array[int(i): int(i) + 1]) for i in indices]) if len(indices) else \
        np.zeros((0, *array.shape[1:]), dtype=array.dtype)


def _compare(name: str, stored: np.ndarray, fresh: np.ndarray, indices: np.ndarray, problems: Problems,
             figures: dict) -> None:
    dtype = storage_dtype(stored.dtype)
    fresh = np.asarray(fresh).astype(dtype)
    stored = np.asarray(stored).astype(dtype)
    if fresh.shape != stored.shape:
        problems.add(f"{name}: recomputed shape {fresh.shape} differs from the stored {stored.shape}")
        return
    if dtype.kind == "f":
        uint = np.dtype(f"u{dtype.itemsize}")
        differs = fresh.view(uint) != stored.view(uint)
    else:
        differs = fresh != stored
    per_sample = differs.reshape(differs.shape[0], -1).any(axis=1)
    count = int(per_sample.sum())
    diff = np.abs(fresh.astype(np.float64) - stored.astype(np.float64))
    max_abs = float(np.nanmax(diff)) if diff.size else 0.0
    figures["mismatching_samples"][name] = count
    figures["max_abs_difference"][name] = max_abs
    if count:
        i = int(np.flatnonzero(per_sample)[0])
        pos = np.unravel_index(int(np.flatnonzero(differs[i])[0]), differs.shape[1:])
        problems.add(f"{name}: {count} of {len(indices)} re-simulated samples differ from the stored values "
                     f"(max |difference| {max_abs:.3g}); first: sample {int(indices[i])} at {tuple(int(p) for p in pos)}, "
                     f"stored {stored[i][pos]!r}, recomputed {fresh[i][pos]!r}")


def _check(spec: WorldSpec, name: str, fresh: Fresh, arrays: list[str], t0: float, ok: str) -> CheckResult:
    problems = Problems()
    figures: dict = {"subset_size": int(len(fresh.indices)), "mismatching_samples": {}, "max_abs_difference": {}}
    inputs = {"subset": "SeedSequence(seed, spawn_key=(world_key, 0, purpose 'subset')), without replacement",
              "subset_size": int(len(fresh.indices)), "seed": spec.seed, "indices": fresh.indices.tolist(),
              "arrays": arrays, "comparison": "bit-identical (float32 bit patterns)"}
    if fresh.error:
        problems.add(fresh.error)
        return result(name, "reproducibility", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0)
    try:
        group = spec.open()
    except Exception as exc:  # noqa: BLE001
        problems.add(f"the store does not open ({exc})")
        return result(name, "reproducibility", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0)
    for a in arrays:
        try:
            stored = read_subset(group, a, fresh.indices)
        except Exception as exc:  # noqa: BLE001
            problems.add(f"{a}: the stored rows of the subset do not read ({type(exc).__name__}: {exc})")
            continue
        _compare(a, stored, fresh.arrays[a], fresh.indices, problems, figures)
    return result(name, "reproducibility", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0)


def check_draws(spec: WorldSpec, drawn: Fresh | None = None) -> CheckResult:
    """Stored draws of the subset equal the draws recomputed from the seed."""
    t0 = time.perf_counter()
    drawn = drawn or redraw(spec, subset_indices(spec))
    arrays = ["theta", "shocks", *[m.name for m in spec.world.metadata_fields if m.stage == "draws"]]
    ok = (f"{len(drawn.indices)} samples redrawn from the seed: {', '.join(arrays)} bit-identical to the stored values")
    return _check(spec, "reproducibility.draws", drawn, arrays, t0, ok)


def check_simulation(spec: WorldSpec, drawn: Fresh | None = None, simulated: Fresh | None = None) -> CheckResult:
    """Stored outputs of the subset equal a from-scratch re-simulation (fresh draws, one batch)."""
    t0 = time.perf_counter()
    drawn = drawn or redraw(spec, subset_indices(spec))
    simulated = simulated or resimulate(spec, drawn)
    world = spec.world
    arrays = ["trajectories", "irfs", *(["extras"] if world.extras else []),
              *[m.name for m in world.metadata_fields if m.stage == "simulation"]]
    ok = (f"{len(simulated.indices)} samples re-simulated from scratch: {', '.join(arrays)} bit-identical to the "
          f"stored values")
    return _check(spec, "reproducibility.simulation", simulated, arrays, t0, ok)
