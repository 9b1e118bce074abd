"""Stage ``world_stats``: train-split moments of every float array of one world, stored with the data.

Over the samples labelled ``train`` (the published ``split`` array), the mean and the standard
deviation (``ddof = 1``) of

* ``theta`` per parameter (derived columns included), pooled over samples;
* ``shocks`` per shock, ``trajectories`` per observable and ``extras`` per extra observable, pooled
  over samples and periods;
* ``irfs`` per (shock, horizon, observable), pooled over samples.

They are accumulated in float64 (Chan et al.'s pairwise update, slab by slab: memory bounded by
one slab whatever the number of samples) and written as float32 arrays
``moments_<array> (moment, ...)`` with ``moment = (mean, sd)`` (coordinate array ``moment``), each
with its content hash, published atomically into the world's store through the stage template
(:mod:`macro_data.pipeline.stage`: release claim, up-to-date skip while the draws, arrays and
splits it was computed from are the published ones, private staging; one pass instead of regions).
The manifest lists them under ``worlds.<w>.train_stats`` with their hashes, a hash over all of them
(``sha256``) and a readable summary; the reader standardizes theta (``normalize="stats"``) and the outputs
(``normalize_outputs=True``) with them. The blocking asset check ``world_stats /
matches_recomputation`` recomputes them independently (:mod:`macro_data.validation.train_stats`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import zarr

from macro_data import splits
from macro_data.errors import ManifestError, StorageError
from macro_data.pipeline.common import RunInfo, StageResult, read_provenance
from macro_data.pipeline.stage import Reduction, StageOutcome, StageSpec, run_stage
from macro_data.recipes import Recipe, WorldPlan
from macro_data.storage.arrays import RegionWriter, create_array, read_ahead, read_rows, write_small_array
from macro_data.worlds import World, get_world
from macro_data.worlds.compiled import lazily_compiled

STAGE = "world_stats"
STATS_KEY = "train_stats"  # the manifest field, per world
SPLIT = "train"
DDOF = 1
PREFIX = "moments_"
MOMENTS = ("mean", "sd")
SLAB_SAMPLES = 2048  # samples read per step (rounded to whole chunks): bounds memory
POOLED = {  # array -> the leading axes pooled (after the sample axis, how many more)
    "theta": ("sample",),
    "shocks": ("sample", "time"),
    "trajectories": ("sample", "time"),
    "extras": ("sample", "time"),
    "irfs": ("sample",),
}
# The stages the moments are computed from, each with one of its published arrays among the inputs.
UPSTREAM = {"world_draws": "theta", "world_arrays": "irfs", "world_splits": "split"}
DEFINITION = (
    "mean and standard deviation (ddof = 1) over the train split, accumulated in float64 and stored as "
    "float32: theta per parameter; shocks, trajectories and extras per variable, pooled over samples and "
    "periods; irfs per (shock, horizon, observable), pooled over samples"
)


def source_arrays(world_id: str) -> list[str]:
    """The arrays whose moments are stored, in order."""
    world = get_world(world_id)
    return ["theta", "shocks", "trajectories", "irfs", *(["extras"] if world.extras else [])]


def stored_name(array: str) -> str:
    return PREFIX + array


def data_arrays(world_id: str, plan: WorldPlan | None = None) -> list[str]:
    return [stored_name(a) for a in source_arrays(world_id)]


def output_arrays(world_id: str, plan: WorldPlan | None = None) -> list[str]:
    return [*data_arrays(world_id), "moment"]


class Moments:
    """Running count, mean and sum of squared deviations over the first axis (float64)."""

    def __init__(self, shape: tuple[int, ...]):
        self.count = 0
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)

    def add(self, block: np.ndarray, pooled: int = 1, keep: np.ndarray | None = None) -> None:
        """Add ``block``, whose first ``pooled`` axes are pooled (samples; and periods, for paths); with
        ``keep``, only its rows where ``keep`` is true (read in place, no copy of them)."""
        keep = np.ones(block.shape[0], dtype=bool) if keep is None else np.ascontiguousarray(keep, dtype=bool)
        periods = int(np.prod(block.shape[1:pooled]))
        k = int(np.count_nonzero(keep)) * periods
        if not k:
            return
        shape = block.shape[pooled:]
        bmean, bm2 = np.empty(int(np.prod(shape))), np.empty(int(np.prod(shape)))
        # a row per sample, its (period, variable) values contiguous
        block_moments(np.ascontiguousarray(block.reshape(block.shape[0], -1)), keep, periods, bmean, bm2)
        bmean, bm2 = bmean.reshape(shape), bm2.reshape(shape)
        total = self.count + k
        delta = bmean - self.mean
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + bm2 + np.square(delta) * (self.count * k / total)
        self.count = total

    def sd(self) -> np.ndarray:
        return np.sqrt(self.m2 / (self.count - DDOF))


@lazily_compiled
def block_moments(x, keep, periods, mean, m2):  # pragma: no cover - compiled
    """Mean and sum of squared deviations of the rows of one block where ``keep`` is true, per variable,
    in float64, into ``mean`` and ``m2`` (at least one row kept).

    ``x`` is ``(rows, periods * variables)``, a row per sample; every (row, period) is one observation.
    The sums run in numpy's order for ``x[keep].astype(float64).sum(axis=0).reshape(periods, -1).sum(axis=0)``
    (from +0.0, rows one after another, then periods likewise), so the moments are those numpy
    gives bit for bit, without copying the kept rows, the float64 copy and the temporaries (three
    passes over the block instead of about nine)."""
    rows, width = x.shape
    nvar = width // periods
    kept = 0
    col = np.zeros(width)
    for i in range(rows):
        if keep[i]:
            kept += 1
            for j in range(width):
                col[j] = col[j] + x[i, j]
    count = kept * periods
    for v in range(nvar):
        s = 0.0
        for p in range(periods):
            s = s + col[p * nvar + v]
        mean[v] = s / count
    centre = np.empty(width)
    for j in range(width):
        centre[j] = mean[j % nvar]
    col[:] = 0.0
    for i in range(rows):
        if keep[i]:
            for j in range(width):
                d = x[i, j] - centre[j]
                col[j] = col[j] + d * d
    for v in range(nvar):
        s = 0.0
        for p in range(periods):
            s = s + col[p * nvar + v]
        m2[v] = s


def compute_moments(inputs, arrays: list[str], label: int) -> tuple[dict[str, Moments], int]:
    """Moments of ``arrays`` over the samples whose ``split`` equals ``label``, slab by slab; and the
    number of such samples."""
    n = inputs["split"].shape[0]
    chunk = inputs["theta"].chunks[0]
    slab = max(chunk, (SLAB_SAMPLES // chunk) * chunk)
    readers = {a: read_rows(inputs[a]) for a in ["split", *arrays]}
    acc = {a: Moments(tuple(inputs[a].shape[len(POOLED[a]) :])) for a in arrays}

    def load(lo: int, hi: int) -> dict[str, np.ndarray]:
        sel = readers["split"](lo, hi) == label
        return {"n": int(sel.sum()), "keep": sel, **{a: readers[a](lo, hi) for a in arrays}}

    n_train = 0
    for blocks in read_ahead(functools.partial(load, lo, min(lo + slab, n)) for lo in range(0, n, slab)):
        n_train += blocks["n"]
        for a in arrays:
            acc[a].add(blocks[a], len(POOLED[a]), blocks["keep"])
    return acc, n_train


def _summary(world, acc: dict[str, Moments]) -> dict:
    """The readable part for the manifest: per variable mean and sd; IRFs at h = 0 and their maxima."""
    names = {
        "theta": world.parameter_names,
        "shocks": world.shocks,
        "trajectories": [o.name for o in world.observables],
        "extras": [o.name for o in world.extras],
    }
    out: dict = {}
    for a, labels in names.items():
        if a in acc:
            m, s = acc[a].mean, acc[a].sd()
            out[a] = {name: {"mean": float(m[j]), "sd": float(s[j])} for j, name in enumerate(labels)}
    m, s = acc["irfs"].mean, acc["irfs"].sd()
    out["irfs"] = {
        shock: {
            o.name: {
                "mean_h0": float(m[i, 0, k]),
                "sd_h0": float(s[i, 0, k]),
                "max_abs_mean": float(np.abs(m[i, :, k]).max()),
                "max_sd": float(s[i, :, k].max()),
            }
            for k, o in enumerate(world.observables)
        }
        for i, shock in enumerate(world.shocks)
    }
    return out


def _dims(array: str) -> tuple[str, ...]:
    return {
        "theta": ("param",),
        "shocks": ("shock",),
        "trajectories": ("observable",),
        "extras": ("extra",),
        "irfs": ("shock", "horizon", "observable"),
    }[array]


def create_outputs(g: zarr.Group, recipe: Recipe, world_id: str) -> None:
    """The coordinate array; the moment arrays are written by :func:`reduce` once their counts are known."""
    write_small_array(
        g, "moment", np.array(MOMENTS), ("moment",), recipe.clevel, {"description": "statistic of each row"}
    )


def reduce(inputs: Mapping[str, zarr.Array], g: zarr.Group, recipe: Recipe, world: World) -> Reduction:
    """The moments of the world's arrays over its train split, written into the staged group."""
    arrays = source_arrays(world.name)
    acc, n_train = compute_moments(inputs, arrays, splits.LABELS[SPLIT])
    if n_train <= DDOF:
        raise StorageError(
            f"world {world.name!r}: the {SPLIT} split has {n_train} samples; at least {DDOF + 1} are needed "
            f"for its standard deviations"
        )
    digests = {}
    for a in arrays:
        values = np.stack([acc[a].mean, acc[a].sd()]).astype(np.float32)
        name = stored_name(a)
        create_array(
            g,
            name,
            values.shape,
            np.float32,
            ("moment", *_dims(a)),
            values.shape[0],
            recipe.clevel,
            {
                "description": f"mean and sd of {a} over the {SPLIT} split (moment: mean, sd)",
                "array": a,
                "split": SPLIT,
                "ddof": DDOF,
                "pooled_over": list(POOLED[a]),
                "count": int(acc[a].count),
                "n_samples": n_train,
            },
        )
        writer = RegionWriter(g[name])
        writer.append(values)
        digests[name] = writer.close()
    record = {
        "split": SPLIT,
        "n_samples": n_train,
        "ddof": DDOF,
        "arrays": {a: {"count": int(acc[a].count), "pooled_over": list(POOLED[a])} for a in arrays},
        "summary": _summary(world, acc),
    }
    n = recipe.world(world.name).n_samples
    return Reduction(digests, StageOutcome(stats={"n_samples": n, "n_train": n_train}, provenance={STATS_KEY: record}))


def input_arrays(world_id: str) -> list[str]:
    return [*source_arrays(world_id), "split"]


def upstream_arrays(world_id: str) -> dict[str, str]:
    return dict(UPSTREAM)


SPEC = StageSpec(
    STAGE,
    data_arrays,
    output_arrays,
    create_outputs,
    inputs=input_arrays,
    provenance_keys=(STATS_KEY,),
    upstream=upstream_arrays,
    reduce=reduce,
)


def build_world_stats(recipe: Recipe, world_id: str, root: str | Path, run: RunInfo | None = None) -> StageResult:
    """Compute the train-split moments of ``world_id`` from its published arrays and publish them."""
    return run_stage(SPEC, recipe, world_id, root, run)


def manifest_entry(store, recipe: Recipe, world_id: str, published: dict, code_version: str | None) -> tuple | None:
    """``(train_stats entry, provenance entry)`` for the manifest, or ``None`` if the world has no statistics.

    ``published`` maps each upstream stage to the provenance of its published outputs. Statistics that
    were made from another recipe, by another code version (when ``code_version`` is given), or from
    outputs that are no longer the published ones are refused (:class:`ManifestError`), as stale arrays
    of any stage are.
    """
    present = store.array_names()
    names = output_arrays(world_id)
    if not any(n in present for n in names):
        return None
    missing = [n for n in names if n not in present]
    if missing:
        raise ManifestError(
            f"world {world_id!r}: arrays {', '.join(missing)} of stage {STAGE} are missing from {store.location}; "
            f"materialize {STAGE} for partition {world_id!r}"
        )
    opened = {n: store.open_array(n) for n in names}
    prov = read_provenance(opened[names[0]])
    again = f"; re-materialize {STAGE} for partition {world_id!r}"
    for n in names:
        p = read_provenance(opened[n])
        if p.get("recipe_sha256") != recipe.sha256:
            raise ManifestError(
                f"world {world_id!r}: array {n!r} was made from recipe sha256 {p.get('recipe_sha256')!r}, not "
                f"the current recipe {recipe.sha256!r}" + again
            )
        if code_version is not None and p.get("code_version") != code_version:
            raise ManifestError(
                f"world {world_id!r}: array {n!r} was written by code version {p.get('code_version')!r} of "
                f"{STAGE}, the current one is {code_version!r}" + again
            )
        if p.get("data_version") != prov.get("data_version"):
            raise ManifestError(f"world {world_id!r}: the arrays of {STAGE} come from different runs" + again)
    for stage in UPSTREAM:
        used = ((prov.get("upstream") or {}).get(stage) or {}).get("data_version")
        if used != published[stage].get("data_version"):
            raise ManifestError(
                f"world {world_id!r}: {STAGE} was computed from {stage} outputs {used!r}, the published ones "
                f"are {published[stage].get('data_version')!r}" + again
            )
    record = prov.get(STATS_KEY) or {}
    arrays = {}
    for a in source_arrays(world_id):
        z = opened[stored_name(a)]
        arrays[a] = {
            "path": store.relative_path(stored_name(a)),
            "shape": list(z.shape),
            "dtype": str(z.dtype),
            "dimension_names": list(z.metadata.dimension_names or ()),
            "sha256": z.attrs["sha256"],
            "stored_bytes": store.stored_bytes(stored_name(a)),
            "description": z.attrs.get("description", ""),
            "stage": STAGE,
            "pooled_over": list(z.attrs.get("pooled_over", [])),
            "count": int(z.attrs.get("count", 0)),
        }
    entry = {
        "split": record.get("split", SPLIT),
        "n_samples": int(record.get("n_samples", 0)),
        "ddof": int(record.get("ddof", DDOF)),
        "definition": DEFINITION,
        "sha256": prov.get("data_version"),
        "arrays": arrays,
        "summary": record.get("summary", {}),
    }
    keep = ("run_id", "code_version", "data_version", "written_at", "upstream", "environment")
    return entry, {k: prov.get(k) for k in keep}
