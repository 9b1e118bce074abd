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
  one batch, unlike the build, which also tests batch independence), and the ``observed`` array
  (with measurement noise) from those trajectories and the noise stream, compared with the stored
  arrays; with state IRFs (K > 0) also ``state_dates``, ``irfs_state``, ``states`` and the per-date
  labels, recomputed by :func:`macro_data.worlds.state_irfs.state_arrays` from the fresh draws, the
  fresh simulation and the dates' own stream; with a burn-in, the simulation runs through the
  burn-in innovations redrawn from the ``burn_in`` stream, and ``initial_state`` is compared too.

"Bit-identical" means equal float32 bit patterns (and equal integer/bool values): no tolerance.

Across environments. Each stage records the environment fingerprint of the process that computed
it (:mod:`macro_data.environment`). When the validating process agrees with it on everything that
decides floating-point results (numpy and scipy versions, their BLAS/LAPACK builds, CPU
architecture and model: :func:`macro_data.environment.numerically_equal`), the comparison is bit
for bit, as above. When they differ, a float value that is not bit-identical may still pass if

    |recomputed - stored| <= CROSS_ENV_RTOL * max(|stored values of that sample in that array|)

(:data:`CROSS_ENV_RTOL` = 1e-4). Why: another BLAS kernel or library version may order or fuse
float64 operations differently (about 1e-16 relative per operation, amplified at most a few
hundred fold over T = 200 recursive periods), far below float32 storage rounding (6e-8
relative); a wrong sample (another parameter draw, another innovation, another model) differs at
order 1e-2 of its scale or more. Integers, booleans and labels (regimes, binding flags, splits) are
always compared exactly. Storage corruption is caught independently by the integrity checks
(content hashes, crc32c). Measured on the supported matrix (Python 3.11-3.13, numpy 2.x, their
OpenBLAS builds, one x86-64 CPU), every world was bit-identical across environments, so the
tolerance is a guard for other CPUs and BLAS builds, never relied on where bits agree; the check
reports how many samples needed it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from macro_data import environment
from macro_data.pipeline import world_arrays
from macro_data.pipeline.common import read_provenance
from macro_data.recent import Recent
from macro_data.storage.arrays import storage_dtype
from macro_data.validation.results import CheckResult, Problems, result
from macro_data.validation.spec import WorldSpec
from macro_data.worlds import burn_in, state_irfs
from macro_data.worlds.sampling import BLOCK_SIZE, block_rng, burn_in_shocks, draw_range, noise_range, observe

SUBSET_SIZE = 64
CROSS_ENV_RTOL = 1e-4  # relative to a sample's scale in an array; only across environments (module doc)


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
    burn_in_metadata: dict[str, np.ndarray] = field(default_factory=dict)  # drawn chains' burn-in periods (n, B)


# The latest redraws, by what decides them: in a world run the draws check and then the simulation
# check redraw the same subset, in the same process (the dataset validator shares one redraw the same
# way). Redrawing is a pure function of the key, so the second check gets the identical arrays.
_REDRAWN: Recent[Fresh] = Recent(4)


def _redraw_key(spec: WorldSpec, indices: np.ndarray) -> tuple | None:
    if getattr(spec.priors, "uniforms", None) is not None:  # a design's uniforms are not part of the key
        return None
    return (
        spec.world,  # the object: declared worlds may share a name
        spec.n,
        spec.seed,
        spec.T,
        spec.design,
        spec.burn_in,
        repr(spec.priors),
        np.asarray(indices, dtype=np.int64).tobytes(),
    )


def redraw(spec: WorldSpec, indices: np.ndarray) -> Fresh:
    """Draws of the subset samples from the seed (whole blocks, then the samples' rows); the arrays
    are read-only, as they may be shared with a later call for the same subset."""
    key = _redraw_key(spec, indices)
    if key is not None and (shared := _REDRAWN.get(key)) is not None:
        return shared
    fresh = _redraw(spec, indices)
    for a in (*fresh.arrays.values(), *fresh.burn_in_metadata.values()):
        a.setflags(write=False)
    if key is not None and fresh.error is None:
        _REDRAWN.put(key, fresh)
    return fresh


def _redraw(spec: WorldSpec, indices: np.ndarray) -> Fresh:
    world = spec.world
    fresh = Fresh(indices)
    theta, shocks, meta, burn_meta = [], [], {}, {}
    try:
        for b in np.unique(indices // BLOCK_SIZE):
            lo, hi = int(b) * BLOCK_SIZE, min((int(b) + 1) * BLOCK_SIZE, spec.n)
            d = draw_range(world, spec.seed, lo, hi, spec.T, spec.priors, spec.design, spec.burn_in)
            rows = indices[(indices >= lo) & (indices < hi)] - lo
            theta.append(d.theta[rows])
            shocks.append(d.shocks[rows])
            for k, v in d.metadata.items():
                meta.setdefault(k, []).append(v[rows])
            for k, v in d.burn_in_metadata.items():
                burn_meta.setdefault(k, []).append(v[rows])
    except Exception as exc:  # noqa: BLE001 - reported as a failure of the check
        fresh.error = f"redrawing failed: {type(exc).__name__}: {exc}"
        return fresh
    fresh.arrays["theta"] = np.concatenate(theta)
    fresh.arrays["shocks"] = np.concatenate(shocks)
    for k, parts in meta.items():
        fresh.arrays[k] = np.concatenate(parts)
    fresh.burn_in_metadata = {k: np.concatenate(parts) for k, parts in burn_meta.items()}
    return fresh


def resimulate(spec: WorldSpec, drawn: Fresh) -> Fresh:
    """Trajectories, IRFs, extras and simulated metadata of the redrawn subset, as one batch."""
    world = spec.world
    fresh = Fresh(drawn.indices)
    if drawn.error:
        fresh.error = drawn.error
        return fresh
    meta = {m.name: drawn.arrays[m.name] for m in world.metadata_fields if m.stage == "draws"}
    theta, shocks = drawn.arrays["theta"], drawn.arrays["shocks"]
    try:
        run = None
        if spec.burn_in:  # the burn-in innovations of each subset sample from its block's burn_in stream
            burn = per_sample(drawn.indices, lambda lo, hi: burn_in_shocks(world, spec.seed, lo, hi, spec.burn_in))
            run = burn_in.simulate(world, theta, shocks, meta, burn, drawn.burn_in_metadata)
            sim = run.window
            fresh.arrays["initial_state"] = run.initial_state
        else:
            sim = world.simulate(theta, shocks, meta)
        fresh.arrays["trajectories"] = sim.trajectories
        fresh.arrays["irfs"] = world.irfs(drawn.arrays["theta"], spec.H)
        if world.extras:
            fresh.arrays["extras"] = sim.extras
        for m in world.metadata_fields:
            if m.stage == "simulation":
                fresh.arrays[m.name] = sim.metadata[m.name]
        if spec.noise:  # the noise of each subset sample from its block's noise stream
            z = per_sample(drawn.indices, lambda lo, hi: noise_range(world, spec.seed, lo, hi, spec.T))
            sd = np.array([spec.noise[o.name] for o in world.observables])
            fresh.arrays["observed"] = observe(sim.trajectories, z, sd)
        if spec.irf_states:
            u = per_sample(
                drawn.indices, lambda lo, hi: state_irfs.date_uniforms(world, spec.seed, lo, hi, spec.irf_states)
            )
            if run is not None:
                st = state_irfs.state_arrays(world, theta, run.eps, run.metadata, run.sim, u, spec.H, spec.burn_in)
            else:
                st = state_irfs.state_arrays(world, theta, shocks, meta, sim, u, spec.H)
            fresh.arrays.update(st)
    except Exception as exc:  # noqa: BLE001
        fresh.error = f"re-simulation failed: {type(exc).__name__}: {exc}"
    return fresh


def per_sample(indices: np.ndarray, draw) -> np.ndarray:
    """Rows ``indices`` of a per-sample random quantity: ``draw(lo, hi)`` gives samples ``lo .. hi - 1`` (from
    the blocks covering them), called once per block holding any of ``indices``."""
    parts = []
    for b in np.unique(indices // BLOCK_SIZE):
        lo = int(b) * BLOCK_SIZE
        rows = indices[(indices >= lo) & (indices < lo + BLOCK_SIZE)]
        parts.append(draw(lo, int(rows[-1]) + 1)[rows - lo])
    return np.concatenate(parts)


def read_subset(group, name: str, indices: np.ndarray) -> np.ndarray:
    """Stored rows ``indices`` of an array, in their order, through one orthogonal selection of Zarr's
    public API: each chunk holding any of them is decoded once (not once per row: 5 to 10 times
    faster for 64 rows). Memory is bounded by the chunks Zarr decodes at once (its
    ``async.concurrency``), not by how scattered the rows are: 39 MiB at most to read 64 rows from
    46 chunks of 2.3 MiB."""
    array = group[name]
    if not len(indices):
        return np.zeros((0, *array.shape[1:]), dtype=array.dtype)
    return np.asarray(array.oindex[np.asarray(indices, dtype=np.int64)])


def _compare(
    name: str,
    stored: np.ndarray,
    fresh: np.ndarray,
    indices: np.ndarray,
    problems: Problems,
    figures: dict,
    rtol: float | None,
) -> None:
    """Bit for bit; with ``rtol`` (another environment), float values within ``rtol`` of the sample's scale."""
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
    diff = np.abs(fresh.astype(np.float64) - stored.astype(np.float64))
    max_abs = float(np.nanmax(diff)) if diff.size else 0.0
    figures["max_abs_difference"][name] = max_abs
    if rtol is not None and dtype.kind == "f" and per_sample.any():
        flat = stored.astype(np.float64).reshape(stored.shape[0], -1)
        scale = np.nanmax(np.abs(flat), axis=1, initial=0.0).reshape((-1,) + (1,) * (stored.ndim - 1))
        within = (diff <= rtol * scale) & np.isfinite(fresh) & np.isfinite(stored)
        close = per_sample & ~((differs & ~within).reshape(differs.shape[0], -1).any(axis=1))
        figures["samples_within_tolerance"][name] = int(close.sum())
        differs = differs & ~within
        per_sample = per_sample & ~close
    count = int(per_sample.sum())
    figures["mismatching_samples"][name] = count
    if count:
        i = int(np.flatnonzero(per_sample)[0])
        pos = np.unravel_index(int(np.flatnonzero(differs[i])[0]), differs.shape[1:])
        how = "bit for bit" if rtol is None else f"within {rtol:g} of the sample's scale (another environment)"
        problems.add(
            f"{name}: {count} of {len(indices)} re-simulated samples differ from the stored values {how} "
            f"(max |difference| {max_abs:.3g}); first: sample {int(indices[i])} at {tuple(int(p) for p in pos)}, "
            f"stored {stored[i][pos]!r}, recomputed {fresh[i][pos]!r}"
        )


def stored_environment(group, name: str) -> dict | None:
    """The environment fingerprint the stage that wrote ``name`` recorded (``None`` if none)."""
    try:
        return read_provenance(group[name]).get("environment")
    except Exception:  # noqa: BLE001 - a missing or damaged array is reported by the comparison itself
        return None


def _check(spec: WorldSpec, name: str, fresh: Fresh, arrays: list[str], t0: float, ok: str) -> CheckResult:
    problems = Problems()
    figures: dict = {
        "subset_size": int(len(fresh.indices)),
        "mismatching_samples": {},
        "max_abs_difference": {},
        "samples_within_tolerance": {},
    }
    inputs = {
        "subset": "SeedSequence(seed, spawn_key=(world_key, 0, purpose 'subset')), without replacement",
        "subset_size": int(len(fresh.indices)),
        "seed": spec.seed,
        "indices": fresh.indices.tolist(),
        "arrays": arrays,
        "comparison": "bit-identical (float32 bit patterns)",
    }
    if fresh.error:
        problems.add(fresh.error)
        return result(name, "reproducibility", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0)
    try:
        group = spec.open()
    except Exception as exc:  # noqa: BLE001
        problems.add(f"the store does not open ({exc})")
        return result(name, "reproducibility", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0)
    built = stored_environment(group, arrays[0])
    here = environment.fingerprint()
    rtol = None if environment.numerically_equal(built, here) else CROSS_ENV_RTOL
    if rtol is not None:
        inputs["comparison"] = (
            f"another environment computed the data: bit-identical, or float values within "
            f"{rtol:g} x the sample's largest |value| in the array; integers and flags exactly"
        )
        inputs["environment_differences"] = (
            environment.differences(built or {}, here) if built else ["the data records no environment"]
        )
    for a in arrays:
        try:
            stored = read_subset(group, a, fresh.indices)
        except Exception as exc:  # noqa: BLE001
            problems.add(f"{a}: the stored rows of the subset do not read ({type(exc).__name__}: {exc})")
            continue
        _compare(a, stored, fresh.arrays[a], fresh.indices, problems, figures, rtol)
    if rtol is not None and any(figures["samples_within_tolerance"].values()):
        ok += (
            f" (computed in another environment: {sum(figures['samples_within_tolerance'].values())} "
            f"array rows matched within the cross-environment tolerance, the rest bit for bit)"
        )
    return result(name, "reproducibility", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0)


def check_draws(spec: WorldSpec, drawn: Fresh | None = None) -> CheckResult:
    """Stored draws of the subset equal the draws recomputed from the seed."""
    t0 = time.perf_counter()
    drawn = drawn or redraw(spec, subset_indices(spec))
    arrays = ["theta", "shocks", *[m.name for m in spec.world.metadata_fields if m.stage == "draws"]]
    ok = f"{len(drawn.indices)} samples redrawn from the seed: {', '.join(arrays)} bit-identical to the stored values"
    return _check(spec, "reproducibility.draws", drawn, arrays, t0, ok)


def check_simulation(spec: WorldSpec, drawn: Fresh | None = None, simulated: Fresh | None = None) -> CheckResult:
    """Stored outputs of the subset equal a from-scratch re-simulation (fresh draws, one batch)."""
    t0 = time.perf_counter()
    drawn = drawn or redraw(spec, subset_indices(spec))
    simulated = simulated or resimulate(spec, drawn)
    arrays = world_arrays.data_arrays(spec.world_id, spec.plan)
    ok = (
        f"{len(simulated.indices)} samples re-simulated from scratch: {', '.join(arrays)} bit-identical to the "
        f"stored values"
    )
    return _check(spec, "reproducibility.simulation", simulated, arrays, t0, ok)
