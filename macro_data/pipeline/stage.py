"""The one template every world stage follows (draws, arrays, splits, stats).

:func:`run_stage` takes a :class:`StageSpec` (what the stage reads, writes and computes per
region) and does, in order:

1. **release check**: the version's recorded recipe must be this recipe (or it is recorded now);
   see :mod:`macro_data.pipeline.release`. Nothing is written before this passes.
2. **up to date?** If the published arrays of the stage carry this recipe's hash, the current
   code version, a data version that matches their content hashes and (for stages that read
   inputs) the data version of the inputs published now, the stage returns what is published
   and writes nothing (``force`` skips this).
3. **staging**: a private group; a staging area of the same stage left by a killed process of this
   host, for the same recipe, code and inputs, is adopted with its journal of completed regions
   (**resume**).
4. **growth**: a published version of the same recipe but fewer (or more) samples lends its
   leading whole chunks (hard links) and their segment digests and counts (:func:`reusable_prefix`).
5. **regions**: the remaining samples in regions aligned to chunks, seeding blocks and hash
   segments, computed where ``run.compute`` says; each completed region's files are synced and
   the region is appended to the journal (``regions.jsonl``) before the next is counted done.
6. **summarize, stamp, publish**: content hashes from the segment digests (recorded beside each
   array, :mod:`macro_data.storage.segments`), the data version, provenance on every array, and one
   atomic publish of the stage's arrays.

Resume and growth work on local stores; on object storage a stage always computes everything.

A stage whose outputs have no sample axis (``world_stats``: moments over a split) gives a
``reduce`` instead of ``region``/``finish``: steps 1, 2 and 6 are the same, step 3 without resume,
and instead of 4-5 one pass over its inputs (cheap, and nothing to reuse or resume chunk by chunk).
Its inputs may come from several stages (``upstream``); it is up to date only while each of them
is the one it was computed from.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from macro_data import progress
from macro_data.compute import run_regions
from macro_data.errors import StorageError
from macro_data.files import fsync_paths
from macro_data.pipeline import release
from macro_data.pipeline.common import (
    RegionJob,
    RegionResult,
    RunInfo,
    StageResult,
    check_inputs,
    data_version,
    group_attributes,
    os_errors_as_storage_errors,
    plan_regions,
    provenance,
    read_provenance,
    region_unit,
    snapshot_inputs,
    stamp,
)
from macro_data.recipes import Recipe, WorldPlan
from macro_data.storage import locations, segments
from macro_data.storage.arrays import ArraySummary, describe, summarize
from macro_data.storage.chunks import ChunkIO
from macro_data.storage.publish import world_store
from macro_data.versioning import code_version, for_world
from macro_data.worlds import World, get_world

JOURNAL = "regions.jsonl"
# Recipe keys that never change the numbers: a version that differs from another only in these and
# in sample counts may reuse its samples.
NOT_NUMERIC_KEYS = ("name", "version", "description", "extends", "license", "citation")


@dataclass
class StageOutcome:
    """What a stage's ``finish`` adds: ``stats`` (provenance ``stats`` and result metadata) and
    ``provenance`` (further top-level provenance entries, named in the spec's ``provenance_keys``,
    also shown as result metadata). Both are stamped on every array, so an up-to-date stage
    reports them without recomputing."""

    stats: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


@dataclass
class Reduction:
    """What a stage without a sample axis computed in its one pass: the segment digests of each data
    array it wrote (:class:`~macro_data.storage.arrays.RegionWriter`), and its outcome."""

    digests: dict[str, list[bytes]]
    outcome: StageOutcome


@dataclass(frozen=True)
class StageSpec:
    """One world stage: its name, arrays, the per-region computation and how it sums up.

    ``finish(group, recipe, world, counts)`` gets the staged group and the stage's counts summed
    over all samples (``{name: int}``) and returns a :class:`StageOutcome`.

    A stage whose outputs have no sample axis gives ``reduce(inputs, group, recipe, world)`` instead
    of ``region`` and ``finish``: it reads its inputs (``{name: array}``) once, fills the outputs
    ``create_outputs`` made, and returns a :class:`Reduction`.
    """

    name: str
    # arrays hashed into the data version ((world_id, plan) -> names; the world's settings may add arrays,
    # e.g. state IRFs; no plan: the defaults)
    data_arrays: Callable[[str, WorldPlan | None], list[str]]
    output_arrays: Callable[[str, WorldPlan | None], list[str]]  # data and coordinate arrays the stage publishes
    create_outputs: Callable[[zarr.Group, Recipe, str], None]
    region: Callable[[RegionJob], RegionResult] | None = None
    finish: Callable[[zarr.Group, Recipe, World, dict[str, int]], StageOutcome] | None = None
    inputs: Callable[[str], list[str]] = lambda world_id: []  # published arrays read (world_draws' outputs)
    provenance_keys: tuple[str, ...] = ()  # top-level provenance entries of StageOutcome.provenance
    # upstream stage -> one of its published arrays among the inputs (default: world_draws -> inputs[0])
    upstream: Callable[[str], dict[str, str]] | None = None
    reduce: Callable[[Mapping[str, zarr.Array], zarr.Group, Recipe, World], Reduction] | None = None

    def __post_init__(self) -> None:
        if (self.reduce is None) == (self.region is None or self.finish is None):
            raise ValueError(f"stage {self.name}: give either region and finish, or reduce")

    def upstream_arrays(self, world_id: str) -> dict[str, str]:
        """``{upstream stage: an input array it published}``: the stages whose data this stage is computed from."""
        if self.upstream is not None:
            return self.upstream(world_id)
        inputs = self.inputs(world_id)
        return {"world_draws": inputs[0]} if inputs else {}

    def result_stats(self, prov: dict) -> dict:
        """The result metadata of a stage from its provenance."""
        return {**(prov.get("stats") or {}), **{k: prov[k] for k in self.provenance_keys if k in prov}}


@dataclass
class Prefix:
    """Leading samples taken over from another version (growth) or an interrupted run (resume)."""

    stop: int
    digests: dict[str, list[bytes]]
    counts: dict[str, np.ndarray]
    source: str


# ---- the journal of completed regions (resume) ------------------------------------------------------------------


class Journal:
    """``regions.jsonl`` in a local staging area: a header line, then one line per completed region."""

    def __init__(self, folder: Path):
        self.path = folder / JOURNAL

    def header(self) -> dict | None:
        lines = self._lines()
        return lines[0] if lines and lines[0].get("kind") == "header" else None

    def regions(self) -> list[RegionResult]:
        out = []
        for line in self._lines()[1:]:
            if line.get("kind") == "region":
                digests = {
                    k: [bytes.fromhex(v[i : i + 64]) for i in range(0, len(v), 64)] for k, v in line["digests"].items()
                }
                counts = {k: np.asarray(v, dtype=np.int64) for k, v in line["counts"].items()}
                out.append(RegionResult(int(line["start"]), int(line["stop"]), digests, counts))
        return out

    def start(self, header: dict) -> None:
        self._append({"kind": "header", **header}, truncate=True)

    def close(self) -> None:
        """Publishing moves the staged arrays out: from then on the area must not be resumed."""
        self.path.unlink(missing_ok=True)

    def append(self, r: RegionResult, **extra) -> None:
        self._append(
            {
                "kind": "region",
                "start": r.start,
                "stop": r.stop,
                "digests": {k: b"".join(v).hex() for k, v in r.digests.items()},
                "counts": {k: [int(x) for x in v] for k, v in r.counts.items()},
                **extra,
            }
        )

    def _lines(self) -> list[dict]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return []
        out = []
        for line in raw.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                break  # a line torn by a kill: everything after it is unknown
        return out

    def _append(self, record: dict, truncate: bool = False) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else os.O_APPEND)
        fd = os.open(self.path, flags, 0o666)
        try:
            os.write(fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def _region_files(group: zarr.Group, names: list[str], start: int, stop: int) -> list[Path]:
    out = []
    for name in names:
        io = ChunkIO.for_array(group[name])
        if io is None:
            continue
        out += [io.path(i) for i in range(start // io.chunk, -(-stop // io.chunk))]
    return out


# ---- up to date? ----------------------------------------------------------------------------------------------------


def stored_summary(store, name: str) -> ArraySummary:
    array = store.open_array(name)
    return describe(array, str(array.attrs.get("sha256")), store.stored_bytes(name))


def published_state(spec: StageSpec, recipe: Recipe, world_id: str, store, code: str) -> StageResult | None:
    """The published stage as a result, if it is up to date for ``recipe`` and code version ``code``."""
    plan = recipe.world(world_id)
    names, outputs = spec.data_arrays(world_id, plan), spec.output_arrays(world_id, plan)
    try:
        if not store.exists() or not set(outputs) <= store.array_names():
            return None
        provs = {n: read_provenance(store.open_array(n)) for n in names}
        prov = provs[names[0]]
        if prov.get("recipe_sha256") != recipe.sha256 or prov.get("code_version") != code:
            return None
        if any(p.get("data_version") != prov.get("data_version") for p in provs.values()):
            return None
        summaries = {n: stored_summary(store, n) for n in names}
        if data_version(summaries) != prov.get("data_version"):
            return None
        for stage, array in spec.upstream_arrays(world_id).items():
            upstream = read_provenance(store.open_array(array)).get("data_version")
            if ((prov.get("upstream") or {}).get(stage) or {}).get("data_version") != upstream:
                return None
    except (StorageError, OSError, KeyError, ValueError, TypeError):
        return None
    return StageResult(
        spec.name,
        world_id,
        store.location,
        summaries,
        prov["data_version"],
        0.0,
        spec.result_stats(prov),
        up_to_date=True,
    )


# ---- growth: samples of another version -------------------------------------------------------------------------


def _numeric_document(doc: dict) -> dict:
    """A recipe document without what never changes the numbers, and without sample counts."""
    out = {k: v for k, v in doc.items() if k not in NOT_NUMERIC_KEYS}
    out["worlds"] = {w: {k: v for k, v in spec.items() if k != "n_samples"} for w, spec in doc["worlds"].items()}
    return out


def _base_candidates(recipe: Recipe, root: str) -> list[tuple[str, dict]]:
    """``(version folder, recorded recipe)`` of versions this recipe may grow from."""
    if recipe.extends is not None:
        name, version = recipe.extends
        folder = locations.join(root, name, version)
        record = release.recorded(folder) if locations.exists(folder) else None
        if record is None or record.get("recipe") is None:
            raise release.ReleaseError(
                f"recipe {recipe.source}: extends {name}@{version}, but no built version is recorded at {folder}"
            )
        base = record["recipe"]
        if base.get("storage") != recipe.document.get("storage"):
            raise release.ReleaseError(
                f"recipe {recipe.source}: extends {name}@{version}, whose storage settings differ "
                f"({'; '.join(release.differences(base.get('storage'), recipe.document.get('storage'), 'storage'))}); "
                f"samples are reused chunk by chunk, so storage settings cannot change"
            )
        diff = release.differences(_numeric_document(base), _numeric_document(recipe.document))
        if diff:
            raise release.ReleaseError(
                f"recipe {recipe.source}: extends {name}@{version}, but differs from it in more than the sample "
                f"counts: {'; '.join(diff[:10])}"
            )
        return [(folder, record)]
    if locations.is_remote(root) or not (Path(root) / recipe.name).is_dir():
        return []
    out = []
    for folder in sorted((Path(root) / recipe.name).iterdir()):
        if folder.name.startswith(".") or folder.name == recipe.version:
            continue
        try:
            record = release.recorded(str(folder))
        except release.ReleaseError:
            continue
        if (
            record
            and record.get("recipe")
            and _numeric_document(record["recipe"]) == _numeric_document(recipe.document)
        ):
            out.append((str(folder), record))
    return out


def reusable_prefix(
    spec: StageSpec, recipe: Recipe, world_id: str, root: str, code: str, staged: zarr.Group, inputs: zarr.Group | None
) -> Prefix | None:
    """Link the longest reusable prefix of another version's arrays of this stage into ``staged``.

    A base qualifies when its recipe equals this one except in sample counts (and names), its stage
    was built by the current code, its segment digests are recorded, and, for stages that read
    inputs, its inputs over the prefix have the same digests as this build's. The prefix ends on a
    multiple of ``lcm(chunk, 256)``, so whole chunks and whole segments are reused.
    """
    if locations.is_remote(root) or locations.is_remote(locations.group_location(staged)):
        return None
    n = recipe.world(world_id).n_samples
    unit = region_unit(recipe.chunk_samples)
    names = spec.data_arrays(world_id, recipe.world(world_id))
    best: Prefix | None = None
    best_store = None
    for folder, record in _base_candidates(recipe, root):
        base_world = (record["recipe"].get("worlds") or {}).get(world_id)
        if not base_world:
            continue
        stop = min(int(base_world["n_samples"]), n) // unit * unit
        if stop == 0 or (best is not None and stop <= best.stop):
            continue
        store = world_store(folder, world_id)
        try:
            if not store.exists() or not set(names) <= store.array_names():
                continue
            prov = read_provenance(store.open_array(names[0]))
            if prov.get("recipe_sha256") != record["recipe_sha256"] or prov.get("code_version") != code:
                continue
            segs = {name: segments.read(locations.join(store.location, name)) for name in names}
            if any(s is None for s in segs.values()):
                continue
            if inputs is not None and not _same_inputs(spec, world_id, store, inputs, stop):
                continue
        except (StorageError, OSError, KeyError, ValueError):
            continue
        best = Prefix(
            stop,
            {name: s.prefix(stop).digests for name, s in segs.items()},
            segs[names[0]].prefix(stop).counts,
            f"{record['recipe'].get('name')}@{record['recipe'].get('version')}",
        )
        best_store = store
    if best is None or best_store is None:
        return None
    staged_root = Path(locations.group_location(staged))
    for name in names:
        io = ChunkIO.for_array(best_store.open_array(name))
        dst = ChunkIO.for_array(staged[name])
        if io is None or dst is None or io.chunk != dst.chunk:
            return None
        for i in range(best.stop // io.chunk):
            target = staged_root / name / dst.path(i).relative_to(dst.folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(io.path(i), target)
            except OSError:  # another file system: copy
                shutil.copyfile(io.path(i), target)
    return best


def _same_inputs(spec: StageSpec, world_id: str, base_store, inputs: zarr.Group, stop: int) -> bool:
    """The inputs of this build and of the base agree on the prefix, by their recorded segment digests."""
    for name in spec.inputs(world_id):
        ours = segments.read(locations.join(locations.group_location(inputs), name))
        theirs = segments.read(locations.join(base_store.location, name))
        if ours is None or theirs is None or ours.prefix(stop).digests != theirs.prefix(stop).digests:
            return False
    return True


# ---- the template -------------------------------------------------------------------------------------------------


def run_stage(
    spec: StageSpec, recipe: Recipe, world_id: str, root: str | Path, run: RunInfo | None = None
) -> StageResult:
    """Run one world stage (see the module docstring); returns what is published afterwards."""
    run = run or RunInfo()
    t0 = time.perf_counter()
    world = get_world(world_id)
    code = for_world(run.code_version or code_version(spec.name), world)
    plan = recipe.world(world_id)
    n = plan.n_samples
    root = str(root)
    target = release.target(recipe, root, run.replace)
    release.claim(recipe, target)
    store = world_store(target.dataset_dir, world_id)
    if not run.force:
        done = published_state(spec, recipe, world_id, store, code)
        if done is not None:
            store.clean_debris(spec.name)  # what killed runs of this stage left; other stages' areas stay resumable
            done.seconds = time.perf_counter() - t0
            return done
    if spec.reduce is not None:
        return _run_reduction(spec, recipe, world, store, run, code, t0)
    input_names = spec.inputs(world_id)
    upstream_version = None
    if input_names and store.exists() and input_names[0] in store.array_names():
        upstream_version = read_provenance(store.open_array(input_names[0])).get("data_version")
    header = {
        "stage": spec.name,
        "recipe_sha256": recipe.sha256,
        "code_version": code,
        "n": n,
        "chunk_samples": recipe.chunk_samples,
        "inputs_data_version": upstream_version,
    }

    def adoptable(folder: Path) -> bool:
        found = Journal(folder).header()
        return (
            found is not None
            and {k: found.get(k) for k in header} == header
            and all((folder / name / "zarr.json").is_file() for name in spec.data_arrays(world_id, plan))
        )

    attrs = group_attributes(world, recipe)
    with (
        os_errors_as_storage_errors(spec.name, world_id, store.location),
        store.staging(spec.name, attrs, adopt=adoptable) as g,
    ):
        staged_path = locations.group_location(g)
        journal = None if locations.is_remote(staged_path) else Journal(Path(staged_path))
        resumed = journal is not None and journal.header() is not None
        inputs = None
        if input_names:
            if resumed and (Path(staged_path) / ".inputs").is_dir():
                inputs = locations.open_group(str(Path(staged_path) / ".inputs"), mode="r")
            else:
                inputs = snapshot_inputs(store, g, input_names, spec.name)
        upstream = check_inputs(inputs, input_names, recipe, world, spec.name) if inputs is not None else {}
        if inputs is not None and inputs[input_names[0]].shape[0] != n:
            raise StorageError(
                f"world {world_id!r}: {spec.name} found {inputs[input_names[0]].shape[0]} stored draws, the recipe "
                f"asks for {n}; materialize world_draws for this world first"
            )
        completed: list[RegionResult] = []
        reused = 0
        if resumed:
            plan = [tuple(r) for r in journal.header()["regions"]]
            completed = journal.regions()
            reused = int(journal.header().get("reused_samples", 0))
        else:
            spec.create_outputs(g, recipe, world_id)
            prefix = reusable_prefix(spec, recipe, world_id, root, code, g, inputs)
            start = prefix.stop if prefix else 0
            reused = start
            plan = plan_regions(n, recipe.chunk_samples, run.compute.region_samples, start)
            if journal is not None:
                journal.start(
                    {
                        **header,
                        "regions": [list(r) for r in plan],
                        "reused_samples": reused,
                        "reused_from": prefix.source if prefix else None,
                    }
                )
            if prefix:
                completed = [RegionResult(0, prefix.stop, prefix.digests, prefix.counts)]
                if journal is not None:
                    journal.append(completed[0], reused_from=prefix.source)
        done_starts = {r.start for r in completed}
        resumed_samples = sum(r.stop - r.start for r in completed) - reused if resumed else 0
        location = staged_path
        in_location = locations.group_location(inputs) if inputs is not None else None
        jobs = [
            RegionJob(spec.name, recipe, world_id, location, a, b, in_location) for a, b in plan if a not in done_starts
        ]
        already = sum(r.stop - r.start for r in completed)
        tracker = progress.Tracker(n, f"{world_id} {spec.name.removeprefix('world_')}", run.log, already)
        count = [already]
        names = spec.data_arrays(world_id, recipe.world(world_id))

        def on_done(job: RegionJob, result: RegionResult) -> None:
            if journal is not None:
                # durable before it counts as done
                fsync_paths(_region_files(g, names, job.start, job.stop), missing_ok=True)
                journal.append(result)
            count[0] += job.stop - job.start
            tracker.update(count[0])

        results = sorted([*completed, *run_regions(spec.region, jobs, run.compute, on_done)], key=lambda r: r.start)
        covered = [(r.start, r.stop) for r in results]
        if [a for a, _ in covered][1:] != [b for _, b in covered][:-1] or covered[0][0] != 0 or covered[-1][1] != n:
            raise StorageError(f"world {world_id!r}: {spec.name} regions {covered} do not cover [0, {n}) exactly")
        digests = {name: [d for r in results for d in r.digests[name]] for name in names}
        counts = {k: np.concatenate([r.counts[k] for r in results]) for k in (results[0].counts if results else {})}
        summaries = {}
        for i, name in enumerate(names):
            array_location = locations.join(staged_path, name)
            summaries[name] = summarize(g[name], digests[name], locations.stored_bytes(array_location))
            segments.write(array_location, segments.Segments(n, digests[name], counts if i == 0 else {}))
        version = data_version(summaries)
        outcome = spec.finish(g, recipe, world, {k: int(v.sum()) for k, v in counts.items()})
        prov = provenance(spec.name, world, recipe, run, version, upstream=_upstream(upstream))
        prov["code_version"] = code
        prov.update(outcome.provenance)
        prov["stats"] = outcome.stats
        prov["build"] = {
            "reused_samples": reused,
            "resumed_samples": resumed_samples,
            "reused_from": (journal.header() or {}).get("reused_from") if journal else None,
        }
        stamp(g, spec.output_arrays(world_id, recipe.world(world_id)), prov)
        if journal is not None:
            journal.close()
        store.publish(g, spec.output_arrays(world_id, recipe.world(world_id)), attrs)
    return StageResult(
        spec.name,
        world_id,
        store.location,
        summaries,
        version,
        time.perf_counter() - t0,
        {**spec.result_stats(prov), "compute": run.compute.describe()},
        reused_samples=reused,
        resumed_samples=resumed_samples,
    )


def open_inputs(store, staged: zarr.Group, names: list[str], what: str) -> dict[str, zarr.Array]:
    """The published input arrays, frozen for this stage, by name (they may come from several stages).

    On a local disk they are hard-linked into the staging area (:func:`snapshot_inputs`); on object
    storage, where published versions are immutable and each stage has its own version group, each
    is its stage's current version."""
    missing = [n for n in names if n not in store.array_names()]
    if missing:
        raise StorageError(
            f"world {store.world_id!r}: {what} needs arrays {', '.join(missing)}, not published under "
            f"{store.location}; materialize the stages that write them for this world first"
        )
    if not locations.is_remote(store.location):
        group = snapshot_inputs(store, staged, names, what)
        return {n: group[n] for n in names}
    return {n: store.open_array(n) for n in names}


def check_upstream(
    inputs: Mapping[str, zarr.Array], upstream: Mapping[str, str], recipe: Recipe, world_id: str, what: str
) -> dict:
    """Inputs from several stages must come from this recipe and, for stages downstream of the draws, from
    the draws published now; returns ``{stage: {data_version, run_id}}`` (provenance ``upstream``)."""
    provs = {stage: read_provenance(inputs[array]) for stage, array in upstream.items()}
    for stage, prov in provs.items():
        if prov.get("recipe_sha256") != recipe.sha256:
            raise StorageError(
                f"world {world_id!r}: {what} found {stage} outputs made from recipe sha256 "
                f"{prov.get('recipe_sha256')!r}, but the recipe is {recipe.sha256!r}; materialize {stage} first"
            )
    draws = (provs.get("world_draws") or {}).get("data_version")
    for stage, prov in provs.items():
        if stage == "world_draws" or "world_draws" not in provs:
            continue
        used = ((prov.get("upstream") or {}).get("world_draws") or {}).get("data_version")
        if used != draws:
            raise StorageError(
                f"world {world_id!r}: the published {stage} outputs were computed from draws {used!r}, the "
                f"published draws are {draws!r}; materialize {stage} for this world first"
            )
    return {s: {"data_version": p.get("data_version"), "run_id": p.get("run_id")} for s, p in provs.items()}


def _run_reduction(
    spec: StageSpec, recipe: Recipe, world: World, store, run: RunInfo, code: str, t0: float
) -> StageResult:
    """Steps 3 and 6 of the template around one pass of ``spec.reduce`` over the inputs."""
    world_id = world.name
    plan = recipe.world(world_id)
    names, outputs = spec.data_arrays(world_id, plan), spec.output_arrays(world_id, plan)
    attrs = group_attributes(world, recipe)
    with (
        os_errors_as_storage_errors(spec.name, world_id, store.location),
        store.staging(spec.name, attrs) as g,
    ):
        inputs = open_inputs(store, g, spec.inputs(world_id), spec.name)
        upstream = check_upstream(inputs, spec.upstream_arrays(world_id), recipe, world_id, spec.name)
        spec.create_outputs(g, recipe, world_id)
        done = spec.reduce(inputs, g, recipe, world)
        staged_path = locations.group_location(g)
        summaries = {
            n: summarize(g[n], done.digests[n], locations.stored_bytes(locations.join(staged_path, n))) for n in names
        }
        version = data_version(summaries)
        prov = provenance(spec.name, world, recipe, run, version, upstream=upstream)
        prov["code_version"] = code
        prov.update(done.outcome.provenance)
        prov["stats"] = done.outcome.stats
        stamp(g, outputs, prov)
        store.publish(g, outputs, attrs)
    return StageResult(
        spec.name, world_id, store.location, summaries, version, time.perf_counter() - t0, spec.result_stats(prov)
    )


def _upstream(prov: dict) -> dict:
    if not prov:
        return {}
    return {"world_draws": {"data_version": prov.get("data_version"), "run_id": prov.get("run_id")}}
