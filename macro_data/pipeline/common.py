"""What the world stages share: run provenance, stage results, progress, input snapshots."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import zarr

from macro_data import environment, progress
from macro_data.compute import ComputeConfig, run_regions
from macro_data.errors import StorageError
from macro_data.recipes import Recipe
from macro_data.storage.arrays import HASH_ALGORITHM, HASH_SEGMENT, ArraySummary, summarize
from macro_data.storage.locations import group_location, join, stored_bytes
from macro_data.worlds import World
from macro_data.worlds.sampling import BLOCK_SIZE

PROVENANCE_ATTR = "macro_data"  # attribute key holding an array's provenance
BATCH_SAMPLES = 2048  # samples computed per step inside a region: bounds memory whatever the dataset size


@dataclass
class RunInfo:
    """Who is writing and how: filled by the Dagster layer (run id, code version, compute) or by plain callers."""

    run_id: str = "local"
    code_version: str = "unknown"
    log: Callable[[str], None] | None = None
    compute: ComputeConfig = field(default_factory=ComputeConfig)


def plan_regions(n: int, chunk_samples: int, target: int = 16384) -> list[tuple[int, int]]:
    """Disjoint ``[start, stop)`` regions covering ``0..n``, each starting on a storage chunk, a seeding
    block and a hash segment (all 256), so regions can be computed and written independently; about
    ``target`` samples each (a multiple of ``lcm(chunk, 256)``)."""
    unit = math.lcm(int(chunk_samples), BLOCK_SIZE, HASH_SEGMENT)
    size = unit * max(1, -(-int(target) // unit))
    return [(a, min(a + size, n)) for a in range(0, n, size)]


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
    stats: dict = field(default_factory=dict)  # additive counts


def compute_regions(
    fn, stage: str, recipe: Recipe, world_id: str, staging: zarr.Group, run: RunInfo, inputs: zarr.Group | None = None
) -> tuple[dict[str, list[bytes]], dict]:
    """Run ``fn`` over the world's regions per ``run.compute``; returns digests per array (in sample
    order) and the summed stats. Progress goes to the run log and the progress listeners."""
    n = recipe.world(world_id).n_samples
    location = group_location(staging)
    in_location = group_location(inputs) if inputs is not None else None
    jobs = [
        RegionJob(stage, recipe, world_id, location, a, b, in_location)
        for a, b in plan_regions(n, recipe.chunk_samples, run.compute.region_samples)
    ]
    tracker = Progress(n, f"{world_id} {stage.removeprefix('world_')}", run.log)
    done = [0]

    def on_done(job: RegionJob, _result) -> None:
        done[0] += job.stop - job.start
        tracker.update(done[0])

    results = run_regions(fn, jobs, run.compute, on_done)
    digests: dict[str, list[bytes]] = {}
    stats: dict = {}
    for r in results:
        for name, d in r.digests.items():
            digests.setdefault(name, []).extend(d)
        for k, v in r.stats.items():
            stats[k] = stats.get(k, 0) + v
    return digests, stats


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


def summarize_staged(staged: zarr.Group, names: list[str], digests: dict[str, list[bytes]]) -> dict[str, ArraySummary]:
    """Content hashes into the staged arrays' attributes, with sizes on disk."""
    base = group_location(staged)
    return {n: summarize(staged[n], digests[n], stored_bytes(join(base, n))) for n in names}


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


class Progress:
    """Per-step progress: samples done, rate, ETA — to the run log (every 2 s) and to listeners."""

    def __init__(self, total: int, label: str, log: Callable[[str], None] | None):
        self.total, self.label, self.log = total, label, log
        self.t0 = time.perf_counter()
        self._last = 0.0

    def update(self, done: int) -> None:
        now = time.perf_counter()
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        progress.notify(self.label, done, self.total, rate, eta)
        if self.log is None or (done < self.total and now - self._last < 2.0):
            return
        self._last = now
        self.log(
            f"{self.label}: {done}/{self.total} samples ({100 * done / self.total:.0f}%), "
            f"{rate:,.0f} samples/s, ETA {eta:.0f} s"
        )


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
