"""The stored train-split statistics (``world_stats``) against an independent recomputation.

The stage accumulates one pass of pairwise (Chan et al.) updates over slabs read directly from the
chunk files; this check recomputes the same moments another way: it reads the split labels and the
source arrays (a chunk that fails to decode is read again through Zarr's API, so the check sees what
any Zarr reader sees) and sums, in float64, the deviations ``x - c`` and their squares about a
shift ``c`` (the first train sample's values; a compiled loop over the train rows of each slab,
:func:`shifted_sums`), then ``mean = c + S1 / n`` and
``sd = sqrt((S2 - S1^2 / n) / (n - ddof))`` (the shifted-data algorithm: ``c`` lies within a few sd
of the mean, so the subtraction loses a few bits at most, far below float32 precision; a constant
column gives exactly 0; one read of each array suffices).

It also checks every stored array: it decodes, has the layout the stage writes (``(moment, ...)``,
float32, ``moment = (mean, sd)``), its content hash equals the one recorded with it (and, when
validating a dataset folder, the manifest's), and its recorded counts are the train split's.

Tolerance: the stage rounds to float32 (relative 6e-8) and sums in another order, so a stored mean
must be within ``RTOL * (|mean| + sd)`` of the recomputed one and a stored sd within
``RTOL * sd`` (``RTOL = 1e-5``); a column that is constant over the train split must have sd 0 exactly.
"""

from __future__ import annotations

import time

import numpy as np
import zarr

from macro_data import splits
from macro_data.pipeline import world_stats
from macro_data.storage.arrays import content_hash, iter_rows
from macro_data.validation.results import CheckResult, Problems, result
from macro_data.validation.spec import WorldSpec
from macro_data.worlds.compiled import lazily_compiled

RTOL = 1e-5
READ_ROWS = 4096
NAME = "consistency.train_stats"
STATS_KEY = world_stats.STATS_KEY


def recompute(arrays: dict[str, zarr.Array], labels: np.ndarray, label: int) -> tuple[dict, int]:
    """``({array: (mean, sd, count)}, n)`` over the samples labelled ``label``: one shifted pass, float64."""
    sel_all = labels == label
    n = int(sel_all.sum())
    chunk = next(iter(arrays.values())).chunks[0]
    step = max(chunk, (READ_ROWS // chunk) * chunk)
    out = {}
    with np.errstate(invalid="ignore", over="ignore"):  # damaged data (inf, NaN) shows up as a mismatch below
        for name, arr in arrays.items():
            out[name] = _shifted_pass(name, iter_rows(arr, step, zarr_on_error=True), sel_all)
    return out, n


@lazily_compiled
def shifted_sums(x, keep, shift, s1, s2):  # pragma: no cover - compiled
    """Add ``x[i] - shift`` and its square into ``s1`` and ``s2`` (float64, per column) for every row ``i``
    of ``x (rows, width)`` with ``keep[i]``; return the number of rows added. The rows are read in place:
    no copy of the selected rows, no float64 copy of the block."""
    rows, width = x.shape
    added = 0
    for i in range(rows):
        if keep[i]:
            added += 1
            for j in range(width):
                d = x[i, j] - shift[j]
                s1[j] = s1[j] + d
                s2[j] = s2[j] + d * d
    return added


def _shifted_pass(name: str, slabs, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and sd from the sums of ``x - c`` and ``(x - c)^2``, ``c`` the first kept sample's values
    (its first period's, for paths); ``slabs`` yields ``(first row, block)``, ``keep`` marks the rows."""
    pooled = len(world_stats.POOLED[name])
    centre = shift = s1 = s2 = None
    shape: tuple[int, ...] = ()
    periods = samples = 0
    for lo, block in slabs:
        block = np.asarray(block)
        sel = np.ascontiguousarray(keep[lo : lo + block.shape[0]])
        if not sel.any():
            continue
        x = np.ascontiguousarray(block.reshape(block.shape[0], -1))
        if shift is None:
            shape = block.shape[pooled:]
            periods = int(np.prod(block.shape[1:pooled]))
            centre = x[int(np.argmax(sel)), : x.shape[1] // periods].astype(np.float64)  # c
            shift = np.tile(centre, periods)  # c repeated over the pooled periods
            s1, s2 = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        samples += shifted_sums(x, sel, shift, s1, s2)
    if shift is None:
        return np.nan, np.nan, 0
    count = samples * periods
    total1 = s1.reshape(periods, -1).sum(axis=0).reshape(shape)
    total2 = s2.reshape(periods, -1).sum(axis=0).reshape(shape)
    mean = centre.reshape(shape) + total1 / count
    var = (total2 - total1 * total1 / count) / (count - world_stats.DDOF)
    return mean, np.sqrt(np.maximum(var, 0.0)), count


def check_train_stats(spec: WorldSpec) -> CheckResult:
    """Stored statistics: layout, hashes and counts, and equal (within tolerance) to a recomputation."""
    t0 = time.perf_counter()
    problems = Problems()
    figures: dict = {"rtol": RTOL}
    view = spec.open()
    names = world_stats.output_arrays(spec.world_id)
    missing = [n for n in names if n not in view]
    if missing:
        problems.add(
            f"arrays {', '.join(repr(m) for m in missing)} of stage {world_stats.STAGE} are missing; "
            f"materialize {world_stats.STAGE} for this world"
        )
        return result(NAME, "consistency", spec.world_id, problems, "", figures, seconds=time.perf_counter() - t0)
    listed = ((spec.manifest or {}).get(world_stats.STATS_KEY) or {}).get("arrays") if spec.manifest else None
    sources = world_stats.source_arrays(spec.world_id)
    stored: dict[str, tuple[np.ndarray, dict]] = {}
    for a in sources:
        name = world_stats.stored_name(a)
        try:
            z = view[name]
            values = np.asarray(z[...])
            digest = content_hash(z)
        except Exception as exc:  # noqa: BLE001 - missing or corrupt chunk, unreadable metadata
            problems.add(f"array {name!r} does not decode ({type(exc).__name__}: {exc})")
            continue
        src = view[a]
        shape = (2, *src.shape[len(world_stats.POOLED[a]) :])
        if (
            values.shape != shape
            or str(z.dtype) != "float32"
            or tuple(z.metadata.dimension_names or ())[:1] != ("moment",)
        ):
            problems.add(
                f"array {name!r} has shape {values.shape}, dtype {z.dtype}, dimensions "
                f"{z.metadata.dimension_names}; expected {shape}, float32, ('moment', ...)"
            )
            continue
        if z.attrs.get("sha256") != digest:
            problems.add(f"array {name!r}: content hash {digest}, the store recorded {z.attrs.get('sha256')}")
        if listed is not None and (listed.get(a) or {}).get("sha256") != digest:
            problems.add(
                f"array {name!r}: content hash {digest}, the manifest lists {(listed.get(a) or {}).get('sha256')}"
            )
        stored[a] = (values.astype(np.float64), dict(z.attrs))
    try:
        moment = [str(v) for v in np.asarray(view["moment"][...]).tolist()]
        if moment != list(world_stats.MOMENTS):
            problems.add(f"coordinate array 'moment' holds {moment[:4]}, expected {list(world_stats.MOMENTS)}")
    except Exception as exc:  # noqa: BLE001
        problems.add(f"coordinate array 'moment' does not decode ({type(exc).__name__}: {exc})")
    try:
        labels = np.asarray(view["split"][...])
        ref, n_train = recompute({a: view[a] for a in stored}, labels, splits.LABELS[world_stats.SPLIT])
    except Exception as exc:  # noqa: BLE001 - a source array that does not decode: integrity names the chunk
        problems.add(f"the statistics cannot be recomputed: an input does not decode ({type(exc).__name__}: {exc})")
        ref, n_train = {}, None
    figures["n_train"] = n_train
    for a, (mean_ref, sd_ref, count) in ref.items():
        values, attrs = stored[a]
        name = world_stats.stored_name(a)
        mean, sd = values[0], values[1]
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 where the column is 0: equal only
            mean_dev = np.where(mean == mean_ref, 0.0, np.abs(mean - mean_ref) / (np.abs(mean_ref) + sd_ref))
            sd_dev = np.where(sd == sd_ref, 0.0, np.abs(sd - sd_ref) / sd_ref)
        worst_mean, worst_sd = float(np.nanmax(mean_dev, initial=0.0)), float(np.nanmax(sd_dev, initial=0.0))
        figures[f"{a}_max_relative_deviation"] = max(worst_mean, worst_sd)
        bad_mean = ~(mean_dev <= RTOL)
        bad_sd = ~(sd_dev <= RTOL)
        if bad_mean.any() or bad_sd.any():
            where = np.argwhere(bad_mean | bad_sd)[0]
            at = tuple(int(i) for i in where)
            problems.add(
                f"array {name!r}: {int(bad_mean.sum())} means and {int(bad_sd.sum())} sds differ from the "
                f"recomputation by more than {RTOL:g} (relative), e.g. at {at}: stored mean {mean[at]:.9g}, sd "
                f"{sd[at]:.9g}; recomputed {mean_ref[at]:.9g}, {sd_ref[at]:.9g}"
            )
        if attrs.get("count") != count or attrs.get("n_samples") != n_train:
            problems.add(
                f"array {name!r} records count {attrs.get('count')} over {attrs.get('n_samples')} samples, the "
                f"{world_stats.SPLIT} split gives {count} over {n_train}"
            )
    if listed is not None and n_train is not None and spec.manifest[world_stats.STATS_KEY]["n_samples"] != n_train:
        problems.add(
            f"the manifest's train_stats count {spec.manifest[world_stats.STATS_KEY]['n_samples']} samples, the "
            f"{world_stats.SPLIT} split has {n_train}"
        )
    ok = (
        f"{len(stored)} stored moment arrays decode, hash as recorded, and equal a two-pass float64 recomputation "
        f"over the {n_train} {world_stats.SPLIT} samples (relative tolerance {RTOL:g})"
    )
    return result(
        NAME,
        "consistency",
        spec.world_id,
        problems,
        ok,
        figures,
        {"arrays": [world_stats.stored_name(a) for a in sources], "split": world_stats.SPLIT},
        time.perf_counter() - t0,
    )
