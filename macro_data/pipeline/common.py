"""What the world stages share: run provenance, stage results, input snapshots (progress: macro_data.progress)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import zarr

from macro_data import environment
from macro_data.compute import ComputeConfig
from macro_data.errors import StorageError
from macro_data.recipes import Recipe
from macro_data.storage.arrays import HASH_ALGORITHM, HASH_SEGMENT, ArraySummary
from macro_data.worlds import World
from macro_data.worlds.sampling import BLOCK_SIZE

PROVENANCE_ATTR = "macro_data"  # attribute key holding an array's provenance


@dataclass
class RunInfo:
    """Who is writing and how: filled by the Dagster layer or by plain callers.

    ``code_version``: ``None`` means the stage's own (:func:`macro_data.versioning.code_version`).
    ``force``: rebuild even if the published stage is up to date. ``replace``: rebuild a published
    version from another recipe, in its replacement area (:mod:`macro_data.pipeline.release`).
    """

    run_id: str = "local"
    code_version: str | None = None
    log: Callable[[str], None] | None = None
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    force: bool = False
    replace: bool = False


def region_unit(chunk_samples: int) -> int:
    """The alignment of regions and reused prefixes: a storage chunk, a seeding block and a hash segment."""
    return math.lcm(int(chunk_samples), BLOCK_SIZE, HASH_SEGMENT)


def plan_regions(n: int, chunk_samples: int, target: int = 16384, start: int = 0) -> list[tuple[int, int]]:
    """Disjoint ``[start, stop)`` regions covering ``start..n``, each starting on a storage chunk, a seeding
    block and a hash segment (``start`` must be such a boundary), so regions can be computed and written
    independently; about ``target`` samples each (a multiple of ``lcm(chunk, 256)``)."""
    unit = region_unit(chunk_samples)
    if start % unit:
        raise ValueError(f"regions must start on a multiple of {unit}; got {start}")
    size = unit * max(1, -(-int(target) // unit))
    return [(a, min(a + size, n)) for a in range(start, n, size)]


@dataclass(frozen=True)
class RegionJob:
    """One task: samples ``start .. stop - 1`` of a world, read from ``inputs`` and written to ``staging``."""

    stage: str
    recipe: Recipe
    world_id: str
    staging: str  # the staging group holding the stage's (pre-created) output arrays
    start: int
    stop: int
    inputs: str | None = None  # a snapshot group of the published inputs, for stages that read them

    def __str__(self) -> str:
        return f"{self.stage} region [{self.start}, {self.stop}) of world {self.world_id!r} (staged in {self.staging})"

    def batches(self, size: int) -> list[tuple[int, int]]:
        """The region's samples as consecutive ``(lo, hi)`` steps of at most ``size``."""
        return [(lo, min(lo + size, self.stop)) for lo in range(self.start, self.stop, size)]


@dataclass
class RegionResult:
    start: int
    stop: int
    digests: dict[str, list[bytes]]  # per array, hash-segment digests of the region
    counts: dict[str, np.ndarray] = field(default_factory=dict)  # additive counts, one per hash segment


@dataclass
class StageResult:
    """Outcome of one stage for one world, shown as materialization metadata."""

    stage: str
    world_id: str
    path: str
    arrays: dict[str, ArraySummary]
    data_version: str
    seconds: float
    stats: dict = field(default_factory=dict)
    up_to_date: bool = False  # nothing was computed or written: the published stage already matched
    reused_samples: int = 0  # leading samples taken from another version (growth) without recomputing
    resumed_samples: int = 0  # samples completed by an interrupted run of this stage and kept

    @property
    def stored_bytes(self) -> int:
        return sum(a.stored_bytes for a in self.arrays.values())

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


@contextlib.contextmanager
def os_errors_as_storage_errors(stage: str, world_id: str, location: str) -> Iterator[None]:
    """A disk or network error while a stage writes: one message naming the world, stage and file
    (or, where the OS names none, e.g. a full disk, the store being written)."""
    try:
        yield
    except OSError as exc:
        where = exc.filename if getattr(exc, "filename", None) else f"into {location}"
        raise StorageError(
            f"world {world_id!r}: {stage} could not write {where} ({exc.strerror or exc}); "
            f"the previously published version is unchanged"
        ) from exc


def data_version(arrays: dict[str, ArraySummary]) -> str:
    """Hash of the stage's array hashes: equal content gives an equal data version."""
    lines = "".join(f"{name}:{a.dtype}:{list(a.shape)}:{a.sha256}\n" for name, a in sorted(arrays.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def provenance(stage: str, world: World, recipe: Recipe, run: RunInfo, version: str, upstream: dict) -> dict:
    return {
        "stage": stage,
        "world": world.name,
        "dataset": recipe.name,
        "dataset_version": recipe.version,
        "recipe_sha256": recipe.sha256,
        "seed": recipe.seed,
        "code_version": run.code_version,
        "run_id": run.run_id,
        "data_version": version,
        "upstream": upstream,
        "hash_algorithm": HASH_ALGORITHM,
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "environment": environment.fingerprint(),
    }


def group_attributes(world: World, recipe: Recipe) -> dict:
    """Self-description of a world group: the world's parameters, shocks, observables and units."""
    return {
        "world": world.describe(),
        "dataset": {"name": recipe.name, "version": recipe.version, "recipe_sha256": recipe.sha256},
    }


def stamp(group: zarr.Group, names: list[str], prov: dict) -> None:
    for name in names:
        group[name].attrs.update({PROVENANCE_ATTR: prov})


def read_provenance(array: zarr.Array) -> dict:
    return dict(array.attrs.get(PROVENANCE_ATTR) or {})


def snapshot_inputs(store, staged: zarr.Group, names: list[str], what: str) -> zarr.Group:
    """The published input arrays, frozen for this stage (see the store's ``inputs``)."""
    if not store.exists():
        raise StorageError(
            f"world {store.world_id!r}: {what} needs {', '.join(names)} but nothing is "
            f"published at {store.location}; materialize world_draws for this world first"
        )
    return store.inputs(staged, names, what)


def check_inputs(inputs: zarr.Group, names: list[str], recipe: Recipe, world: World, what: str) -> dict:
    """Inputs must come from this recipe; returns their provenance (for ``upstream``)."""
    prov = read_provenance(inputs[names[0]])
    if prov.get("recipe_sha256") != recipe.sha256:
        raise StorageError(
            f"world {world.name!r}: {what} found draws made from recipe sha256 "
            f"{prov.get('recipe_sha256')!r}, but the recipe is {recipe.sha256!r}; "
            f"materialize world_draws for this world first"
        )
    return prov
