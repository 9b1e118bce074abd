"""What a world's store should hold: the expectations every check compares the data against.

A :class:`WorldSpec` is built either from a recipe (inside the Dagster asset checks, before a
manifest exists) or from a dataset's ``manifest.json`` (validating a finished dataset folder).
Array shapes, dtypes and dimension names follow the writers in :mod:`macro_data.pipeline`:

=================  ====================  =======================================  ============
array              shape                 dimensions                               stage
=================  ====================  =======================================  ============
theta              (n, P)                sample, param                            world_draws
shocks             (n, T, S)             sample, time, shock                      world_draws
drawn metadata     (n, T)                sample, time (e.g. ``regime``)           world_draws
trajectories       (n, T, 3)             sample, time, observable                 world_arrays
irfs               (n, S, H + 1, 3)      sample, shock, horizon, observable       world_arrays
extras             (n, T, E)             sample, time, extra                      world_arrays
simulated meta     (n, T)                sample, time (e.g. ``binding``)          world_arrays
split              (n,)                  sample                                   world_splits
=================  ====================  =======================================  ============

plus the coordinate arrays ``param``, ``shock``, ``time`` (draws), ``observable``, ``horizon``,
``extra`` (arrays), whose values are the world's names and the index ranges. With state IRFs
(``irfs: {states: K}``, K > 0) world_arrays also writes ``state_dates (n, K)`` int32, ``irfs_state
(n, K, S, H + 1, 3)``, ``states (n, K, V)`` (sample, state, state_var), the world's per-date labels
``(n, K)`` and the coordinate array ``state_var``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from macro_data.errors import StorageError
from macro_data.pipeline import world_arrays, world_draws, world_splits
from macro_data.recipes import Recipe, WorldPlan
from macro_data.storage.publish import world_store
from macro_data.worlds import World, get_world
from macro_data.worlds.priors import PriorSet

STAGE_MODULES = {world_draws.STAGE: world_draws, world_arrays.STAGE: world_arrays, world_splits.STAGE: world_splits}
STAGE_SHORT = {world_draws.STAGE: "draws", world_arrays.STAGE: "arrays", world_splits.STAGE: "splits"}


@dataclass(frozen=True)
class ArraySpec:
    """The expected layout of one array; ``values`` for coordinate arrays (names, index ranges)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    dims: tuple[str, ...]
    stage: str
    values: tuple | None = None

    @property
    def is_coordinate(self) -> bool:
        return self.values is not None


class StoreView:
    """Read access to a world's published arrays, whatever the store (a local ``<world>.zarr`` folder
    or versioned groups on object storage): ``view[name]`` opens an array, ``name in view`` asks."""

    def __init__(self, store) -> None:
        self.store = store
        self.names = store.array_names()

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> zarr.Array:
        if name not in self.names:
            raise KeyError(f"array {name!r} is not published in world {self.store.world_id!r} ({self.store.location})")
        return self.store.open_array(name)


@dataclass
class WorldSpec:
    """One world of a dataset: sizes, seed, priors, where its store is, and what it should hold.

    ``manifest`` is the world's entry of ``manifest.json`` when validating a dataset folder, else
    ``None`` (the Dagster checks run before the manifest exists).
    """

    world_id: str
    n: int
    T: int
    H: int
    seed: int
    priors: PriorSet  # name -> (low, high), with each parameter's family
    dataset_dir: str | Path  # a local folder or an object-storage URL
    recipe_sha256: str
    manifest: dict | None = None
    noise: dict[str, float] = field(default_factory=dict)  # measurement-noise sd per observable; {}: no noise
    design: str = "random"  # how the parameters' first proposals fill the prior (random or sobol)
    irf_states: int = 0  # K: state dates per sample (0: no state IRFs)
    burn_in: int = 0  # B: periods simulated before t = 0 and not stored (0: from the steady state)
    world: World = field(init=False)

    def __post_init__(self) -> None:
        self.world = get_world(self.world_id)

    @property
    def store(self):
        return world_store(self.dataset_dir, self.world_id)

    def open(self) -> StoreView:
        """The published arrays; :class:`StorageError` naming the world and location when absent."""
        store = self.store
        if not store.exists():
            raise StorageError(f"world {self.world_id!r}: no published store at {store.location}")
        return StoreView(store)

    def arrays(self, stage: str | None = None) -> dict[str, ArraySpec]:
        """Expected arrays (of one stage, or all), in the writers' order."""
        specs = expected_arrays(self.world, self.n, self.T, self.H, self.plan)
        return {k: v for k, v in specs.items() if stage is None or v.stage == stage}

    @property
    def plan(self) -> WorldPlan:
        """The world's plan as the recipe resolved it (what decides which arrays the stages write)."""
        return WorldPlan(
            self.world_id,
            self.n,
            self.priors,
            design=self.design,
            burn_in=self.burn_in,
            noise=dict(self.noise),
            irf_states=self.irf_states,
        )

    def data_arrays(self, stage: str | None = None) -> list[str]:
        return [k for k, v in self.arrays(stage).items() if not v.is_coordinate]


def expected_arrays(world: World, n: int, T: int, H: int, plan: WorldPlan | None = None) -> dict[str, ArraySpec]:
    """The arrays of a world's store. ``plan`` (default: no generator settings) decides the optional ones:
    ``observed`` with measurement noise, the state-IRF arrays with ``irf_states`` K > 0,
    ``initial_state`` with a burn-in."""
    observed = bool(plan and plan.noise)
    K, B = (plan.irf_states, plan.burn_in) if plan is not None else (0, 0)
    P, S, E = len(world.parameters), len(world.shocks), len(world.extras)
    draws, arrays, splits_ = world_draws.STAGE, world_arrays.STAGE, world_splits.STAGE
    out = {
        "theta": ArraySpec("theta", (n, P), "float32", ("sample", "param"), draws),
        "shocks": ArraySpec("shocks", (n, T, S), "float32", ("sample", "time", "shock"), draws),
    }
    for m in world.metadata_fields:
        if m.stage == "draws":
            out[m.name] = ArraySpec(m.name, (n, T), str(np.dtype(m.dtype)), ("sample", "time"), draws)
    out["param"] = ArraySpec("param", (P,), "str", ("param",), draws, tuple(world.parameter_names))
    out["shock"] = ArraySpec("shock", (S,), "str", ("shock",), draws, tuple(world.shocks))
    out["time"] = ArraySpec("time", (T,), "int32", ("time",), draws, tuple(range(T)))
    out["trajectories"] = ArraySpec("trajectories", (n, T, 3), "float32", ("sample", "time", "observable"), arrays)
    out["irfs"] = ArraySpec("irfs", (n, S, H + 1, 3), "float32", ("sample", "shock", "horizon", "observable"), arrays)
    out["observable"] = ArraySpec(
        "observable", (3,), "str", ("observable",), arrays, tuple(o.name for o in world.observables)
    )
    out["horizon"] = ArraySpec("horizon", (H + 1,), "int32", ("horizon",), arrays, tuple(range(H + 1)))
    if E:
        out["extras"] = ArraySpec("extras", (n, T, E), "float32", ("sample", "time", "extra"), arrays)
        out["extra"] = ArraySpec("extra", (E,), "str", ("extra",), arrays, tuple(o.name for o in world.extras))
    for m in world.metadata_fields:
        if m.stage == "simulation":
            out[m.name] = ArraySpec(m.name, (n, T), str(np.dtype(m.dtype)), ("sample", "time"), arrays)
    if observed:
        out["observed"] = ArraySpec("observed", (n, T, 3), "float32", ("sample", "time", "observable"), arrays)
    if K:
        V = len(world.state_variables)
        out["state_dates"] = ArraySpec("state_dates", (n, K), "int32", ("sample", "state"), arrays)
        out["irfs_state"] = ArraySpec(
            "irfs_state", (n, K, S, H + 1, 3), "float32", ("sample", "state", "shock", "horizon", "observable"), arrays
        )
        out["states"] = ArraySpec("states", (n, K, V), "float32", ("sample", "state", "state_var"), arrays)
        for f in world.state_labels:
            out[f.name] = ArraySpec(f.name, (n, K), str(np.dtype(f.dtype)), ("sample", "state"), arrays)
    if B:
        V = len(world.state_variables)
        out["initial_state"] = ArraySpec("initial_state", (n, V), "float32", ("sample", "state_var"), arrays)
    if K or B:
        out["state_var"] = ArraySpec(
            "state_var",
            (len(world.state_variables),),
            "str",
            ("state_var",),
            arrays,
            tuple(v.name for v in world.state_variables),
        )
    out["split"] = ArraySpec("split", (n,), "int8", ("sample",), splits_)
    # the writers' own lists are the reference: fail loudly if the two ever drift apart
    for stage, module in STAGE_MODULES.items():
        listed = set(module.output_arrays(world.name, plan))
        mine = {k for k, v in out.items() if v.stage == stage}
        if listed != mine:
            raise StorageError(
                f"world {world.name!r}: validation expects arrays {sorted(mine)} from {stage}, "
                f"the writer produces {sorted(listed)}; update macro_data/validation/spec.py"
            )
    return out


def spec_from_recipe(recipe: Recipe, world_id: str, root: str | Path, dataset_dir: str | None = None) -> WorldSpec:
    """``dataset_dir``: where the world's store is (default: the version folder under ``root``; a
    replacement build passes its own area)."""
    plan = recipe.world(world_id)
    return WorldSpec(
        world_id,
        plan.n_samples,
        recipe.T,
        recipe.H,
        recipe.seed,
        plan.priors,
        dataset_dir or recipe.dataset_dir(root),
        recipe.sha256,
        noise={o.name: float(plan.noise.get(o.name, 0.0)) for o in get_world(world_id).observables}
        if plan.noise
        else {},
        design=plan.design,
        irf_states=plan.irf_states,
        burn_in=plan.burn_in,
    )


def spec_from_manifest(manifest: dict, world_id: str, dataset_dir: str | Path) -> WorldSpec:
    entry = manifest["worlds"][world_id]
    priors = PriorSet.from_manifest(entry["priors"])
    return WorldSpec(
        world_id,
        int(entry["n_samples"]),
        int(manifest["T"]),
        int(manifest["H"]),
        int(manifest["recipe"]["seed"]),
        priors,
        dataset_dir,
        manifest["recipe_sha256"],
        entry,
        noise=dict(entry.get("noise") or {}),
        design=entry.get("design", "random"),
        irf_states=int(((manifest["recipe"]["worlds"].get(world_id) or {}).get("irfs") or {}).get("states", 0)),
        burn_in=int((manifest["recipe"]["worlds"].get(world_id) or {}).get("burn_in", 0)),
    )
