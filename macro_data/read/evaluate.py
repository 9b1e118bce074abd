"""The evaluation protocol that travels with the dataset: IRF errors per world and horizon, next to two baselines.

``evaluate(predict, ds, "test_interpolation", regime="A")`` runs ``predict`` over every item of the
split (mixed batches, storage order, :mod:`macro_data.read.batches`) and compares its IRFs with the
stored ones, in natural units.

``predict(batch)`` receives the mixed batch *without* ``irf`` (the target; ``irf_mask`` stays)
and returns IRFs for all shocks, ``(B, S_max, H + 1, 3)``, in natural units (a model predicting
standardized IRFs maps them back with ``dataset.denormalize_irf(pred, batch["world_index"])``).
Padded shocks (``irf_mask`` False) are ignored.

Metrics, per world and horizon ``h`` (every item of the world, every one of its own shocks ``s``
and every observable ``o``; ``e = prediction - truth``, ``y = truth``, natural units):

* ``rmse[h] = sqrt(mean_{b,s,o} e[b,s,h,o]^2)``; ``rmse_by_observable[o][h]`` the same per observable
  (observables have their own units, see ``units``);
* ``relative_error[h] = sqrt(sum_{b,s,o} e^2) / sqrt(sum_{b,s,o} y^2)``: the error's norm relative to
  the truth's (``None`` where the truth is all zero); ``relative_error_by_observable`` likewise;
* ``rmse_all`` and ``relative_error_all``: the same over all horizons together.

Baselines, computed the same way on the same items:

* ``train_mean``: the world's mean IRF over its own train split (the stored ``world_stats`` mean
  when the dataset has statistics, else computed from the train split now);
* ``nearest_neighbour``: the IRF of the world's train sample nearest in normalized theta
  (Euclidean; the stored-statistics z-scores when available, else the prior z-scores; ties to the
  lowest sample index). It holds the train split's normalized theta of the evaluated worlds in
  memory (4 * P bytes per train sample).

Both use the evaluated world's own train split, also when the emulator never saw that world
(leave-one-world-out), so they are a floor: an emulator should beat ``train_mean`` everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from macro_data.read._args import int_arg, names_arg
from macro_data.read.batches import ChunkCache, gather
from macro_data.read.errors import ReadArgumentError
from macro_data.read.normalize import ParameterNormalizer
from macro_data.read.store import DatasetCore, WorldData
from macro_data.read.training import TrainingView

BASELINES = ("train_mean", "nearest_neighbour")
FIXED_OPTIONS = ("batches", "shuffle", "mixing", "num_batches", "drop_last")
NN_BLOCK = 16384  # train rows per distance block: memory B * NN_BLOCK * 4 bytes
BASELINE_CACHE_BYTES = 256 << 20
DEFINITIONS = {
    "rmse": "sqrt(mean over the world's items b, own shocks s and observables o of (pred - truth)[b, s, h, o]^2), "
    "natural units",
    "rmse_by_observable": "as rmse, per observable o (in that observable's unit)",
    "relative_error": "sqrt(sum_{b,s,o} (pred - truth)^2) / sqrt(sum_{b,s,o} truth^2) at horizon h "
    "(None where the truth is all zero)",
    "relative_error_by_observable": "as relative_error, per observable",
    "rmse_all": "rmse over all horizons together",
    "relative_error_all": "relative_error over all horizons together",
    "train_mean": "baseline: the world's mean IRF over its train split",
    "nearest_neighbour": "baseline: the IRF of the world's train sample nearest in normalized theta (Euclidean)",
}


class _Errors:
    """Sums of squared errors and truths per horizon and observable, for one world."""

    def __init__(self, H: int):
        self.sse = np.zeros((H + 1, 3))
        self.sst = np.zeros((H + 1, 3))
        self.count = np.zeros((H + 1, 3))
        self.items = 0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """``pred``, ``truth``: ``(n, S_w, H + 1, 3)`` natural units (the world's own shocks only)."""
        e = pred.astype(np.float64) - truth
        self.sse += np.einsum("bsho,bsho->ho", e, e)
        self.sst += np.einsum("bsho,bsho->ho", truth, truth)
        self.count += truth.shape[0] * truth.shape[1]
        self.items += truth.shape[0]

    def metrics(self, observables: Sequence[str], n_shocks: int) -> dict:
        def ratio(a, b):
            return [math.sqrt(x / y) if y > 0 else None for x, y in zip(a, b)]

        def one(a, b):
            return math.sqrt(a / b) if b > 0 else None

        return {
            "n_items": self.items,
            "n_shocks": n_shocks,
            "rmse": ratio(self.sse.sum(1), self.count.sum(1)),
            "relative_error": ratio(self.sse.sum(1), self.sst.sum(1)),
            "rmse_by_observable": {o: ratio(self.sse[:, k], self.count[:, k]) for k, o in enumerate(observables)},
            "relative_error_by_observable": {
                o: ratio(self.sse[:, k], self.sst[:, k]) for k, o in enumerate(observables)
            },
            "rmse_all": one(self.sse.sum(), self.count.sum()),
            "relative_error_all": one(self.sse.sum(), self.sst.sum()),
        }


def train_mean_irf(world: WorldData) -> np.ndarray:
    """The world's mean IRF over its train split, ``(S, H + 1, 3)`` float64 (stored statistics if any).

    Parameters
    ----------
    world : WorldData
        An opened world.

    Returns
    -------
    numpy.ndarray
        ``(S, H + 1, 3)``, float64.
    """
    if world.has_stats:
        return world.stats["irfs"].mean
    idx = world.split_indices("train")
    irfs = world.arrays["irfs"]
    total = np.zeros(irfs.shape[1:])
    bounds = np.searchsorted(idx, [irfs.chunk_range(c)[0] for c in range(irfs.n_chunks)] + [irfs.shape[0]])
    for c in range(irfs.n_chunks):
        sel = idx[bounds[c] : bounds[c + 1]]
        if sel.size:
            total += irfs.read_chunk(c)[sel - c * irfs.chunk_rows].sum(axis=0, dtype=np.float64)
    if not idx.size:
        raise ReadArgumentError(f"world {world.name!r} has no train samples: the baselines need them")
    return total / idx.size


class _Neighbours:
    """Nearest train sample in normalized theta, per world (the train split's z-scores held in memory)."""

    def __init__(self, world: WorldData, normalizer: ParameterNormalizer, cache: ChunkCache):
        self.world = world
        self.normalizer = normalizer
        self.cache = cache
        self.train = world.split_indices("train")
        if not self.train.size:
            raise ReadArgumentError(f"world {world.name!r} has no train samples: the baselines need them")
        theta = world.arrays["theta"]
        z = np.empty((self.train.size, theta.shape[1]), dtype=np.float32)
        bounds = np.searchsorted(
            self.train, [theta.chunk_range(c)[0] for c in range(theta.n_chunks)] + [theta.shape[0]]
        )
        for c in range(theta.n_chunks):
            lo, hi = bounds[c], bounds[c + 1]
            if hi > lo:
                z[lo:hi] = normalizer.normalize(theta.read_chunk(c)[self.train[lo:hi] - c * theta.chunk_rows])
        self.z = z
        self.z2 = np.einsum("np,np->n", z, z, dtype=np.float64)

    def irfs(self, index: np.ndarray) -> np.ndarray:
        """The IRFs of the nearest train samples of samples ``index`` of the world."""
        q = self.normalizer.normalize(gather(self.cache, self.world.arrays["theta"], index))
        best = np.full(index.size, np.inf)
        arg = np.zeros(index.size, dtype=np.int64)
        q2 = np.einsum("bp,bp->b", q, q)
        for lo in range(0, self.z.shape[0], NN_BLOCK):
            block = self.z[lo : lo + NN_BLOCK].astype(np.float64)
            d = q2[:, None] - 2.0 * q @ block.T + self.z2[None, lo : lo + NN_BLOCK]
            k = np.argmin(d, axis=1)
            val = d[np.arange(index.size), k]
            better = val < best
            best[better], arg[better] = val[better], lo + k[better]
        return gather(self.cache, self.world.arrays["irfs"], self.train[arg])


def evaluate(
    predict: Callable[[dict], np.ndarray],
    dataset: DatasetCore,
    split: str | Sequence[str] = "test_interpolation",
    *,
    batch_size: int = 256,
    baselines: Sequence[str] = BASELINES,
    **options,
) -> dict:
    """Run ``predict`` over ``split`` and report IRF errors per world and horizon, with the baselines.

    Parameters
    ----------
    predict : callable
        ``predict(batch) -> (B, S_max, H + 1, 3)`` IRFs in natural units for all shocks, given a mixed
        batch without ``irf`` (module docstring).
    dataset : Dataset
    split : str or list of str
        ``"test_interpolation"``, ``"test_extrapolation_slice"``, ``"test_extrapolation_corner"``,
        ``"val"``, or any other split (or a list of them).
    batch_size : int
        Items per call of ``predict``.
    baselines : list of str
        Any of ``"train_mean"``, ``"nearest_neighbour"`` (default both); ``[]`` for none.
    **options
        :class:`~macro_data.read.training.TrainingView` options for the batches ``predict`` sees
        (``regime`` (default ``"A"``), ``history``, ``worlds``, ``exclude_worlds``, ``normalize``
        (default ``"stats"`` when the dataset has statistics, else ``True``), ``normalize_outputs``,
        ``p_max``, ``s_max``, ``seq_len``, ``seed``...). The order is fixed: storage order.

    Returns
    -------
    dict
        JSON-serializable: ``definitions``, ``horizons``, ``observables``, ``units``, per world the
        metrics (``worlds``), and the same for each baseline (``baselines``).
    """
    if not callable(predict):
        raise ReadArgumentError(f"predict must be a callable batch -> IRFs; got {predict!r}")
    fixed = [k for k in FIXED_OPTIONS if k in options]
    if fixed:
        raise ReadArgumentError(
            f"evaluate fixes {', '.join(fixed)} (mixed batches in storage order); options allowed: the "
            f"view's regime, history, worlds, exclude_worlds, normalize, normalize_outputs, p_max, s_max, seq_len"
        )
    wanted = names_arg("baselines", baselines)
    unknown = [b for b in wanted if b not in BASELINES]
    if unknown:
        raise ReadArgumentError(f"baselines: {unknown[0]!r} is not one of {', '.join(BASELINES)}")
    if split is None:
        raise ReadArgumentError("split must name a split to evaluate (e.g. 'test_interpolation'), not None")
    options.setdefault("regime", "A")
    if "normalize" not in options:
        options["normalize"] = "stats" if dataset.has_stats else True
    view = TrainingView(
        dataset, split, batch_size=int_arg("batch_size", batch_size, 1), batches="mixed", shuffle="none", **options
    )
    H = dataset.H
    observables = dataset[view.worlds[0]].observables
    errors = {name: {w: _Errors(H) for w in view.worlds} for name in ("model", *wanted)}
    cache = ChunkCache(max_bytes=BASELINE_CACHE_BYTES)
    means = {w: train_mean_irf(dataset[w]) for w in view.worlds} if "train_mean" in wanted else {}
    nn_norm = "stats" if dataset.has_stats else "prior"
    neighbours: dict[str, _Neighbours] = {}
    for batch in view.iter(0):
        irf = batch.pop("irf")
        pos = np.searchsorted(np.array([dataset[w].index for w in view.worlds]), batch["world_index"])
        truth = view.denormalize_irf(irf, batch["world_index"]) if view.normalize_outputs else irf
        pred = np.asarray(predict(batch))
        if pred.shape != irf.shape:
            raise ReadArgumentError(
                f"predict returned shape {pred.shape}; it must return (B, S_max, H + 1, 3) = {irf.shape}"
            )
        for k in np.unique(pos):
            w = view.worlds[k]
            data = dataset[w]
            S = len(data.shocks)
            g = np.flatnonzero(pos == k)
            t = truth[g, :S].astype(np.float64)
            errors["model"][w].add(pred[g, :S], t)
            if "train_mean" in wanted:
                errors["train_mean"][w].add(np.broadcast_to(means[w], t.shape), t)
            if "nearest_neighbour" in wanted:
                if w not in neighbours:
                    norm = data.stats_normalizer() if nn_norm == "stats" else data.normalizer()
                    neighbours[w] = _Neighbours(data, norm, cache)
                errors["nearest_neighbour"][w].add(neighbours[w].irfs(batch["index"][g]), t)

    def report(errs: dict[str, _Errors]) -> dict:
        return {w: e.metrics(observables, len(dataset[w].shocks)) for w, e in errs.items()}

    units = {o["name"]: o["unit"] for o in dataset[view.worlds[0]].entry["observables"]}
    out = {
        "dataset": {"name": dataset.name, "version": dataset.version},
        "split": split if isinstance(split, str) else list(split),
        "regime": view.regime,
        "history": view.history,
        "normalize": view.normalize if isinstance(view.normalize, (bool, str)) else "custom",
        "normalize_outputs": view.normalize_outputs,
        "n_items": int(sum(e.items for e in errors["model"].values())),
        "horizons": list(range(H + 1)),
        "observables": list(observables),
        "units": units,
        "definitions": DEFINITIONS,
        "worlds": report(errors["model"]),
        "baselines": {},
    }
    if "train_mean" in wanted:
        out["baselines"]["train_mean"] = {"worlds": report(errors["train_mean"])}
    if "nearest_neighbour" in wanted:
        out["baselines"]["nearest_neighbour"] = {
            "theta_normalization": nn_norm,
            "worlds": report(errors["nearest_neighbour"]),
        }
    return out
