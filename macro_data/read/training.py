"""Training views: shuffled, mixed, optionally windowed batches, read chunk by chunk.

``view = ds.training_view("train", batch_size=256, seed=0)``; then either

* ``batches="world"`` (default): ``for world, batch in view.iter(epoch)``, one world per batch; or
* ``batches="mixed"``: ``for batch in view.iter(epoch)``, items of several worlds in one batch,
  zero-padded to common widths with masks (the contract is in :mod:`macro_data.read.batches`).

**One-world batches.** Worlds differ in the number of parameters (``theta`` width) and of
shocks, so every such batch comes from *one* world: the iterator yields ``(world, batch)`` with
``batch`` a dict of NumPy arrays, all with the batch on axis 0:

* ``index`` (B,) int64: sample indices within the world (and ``start`` (B,) int64 with windows);
* ``theta`` (B, P_w) float32 in natural units, ``theta_normalized`` (B, P_w) float32 (unless
  ``normalize=False``; rule in :mod:`macro_data.read.normalize`);
* ``shocks`` (B, T, S_w), ``trajectories`` (B, T, 3), ``irfs`` (B, S_w, H + 1, 3), and any other
  array asked for with ``arrays=`` (``extras``, ``regime``, ``binding``, ``split``).

**Mixed batches** (``batches="mixed"``) serve one emulator across worlds: ``world_ids``,
``world_index``, ``theta``/``theta_mask`` (B, P_max), ``irf``/``irf_mask`` (B, S_max, H + 1, 3),
``shock_idx``, ``eps_sequence`` (B, L, S_max), ``history``/``history_mask`` (B, k, 3), ``index``,
``split`` and ``start``. The information ``regime`` decides which inputs are present:

* ``"A"``: world, theta, eps_sequence, shock (no history);
* ``"B1"``: world, history, shock (no theta, no eps_sequence); needs ``history=k``;
* ``"C"``: world, theta, history, shock (no eps_sequence); needs ``history=k``;
* ``None``: everything (history only with ``history=k``).

Irrelevant keys are absent, not zero. ``normalize`` maps theta (``True``/``"prior"``: the prior
z-score; ``"stats"``: the stored train-split moments, derived columns included; ``False``: natural
units); ``normalize_outputs=True`` also standardizes ``irf``, ``history`` and ``eps_sequence`` with
the stored train-split moments, and :meth:`TrainingView.denormalize_irf` maps predicted IRFs back
to natural units (per world).

**State IRFs.** ``state_irfs=True`` (mixed batches, regime ``"B1"`` or ``"C"``, ``history=k``; datasets
built with ``irfs: {states: K}``) makes the items ``(sample, state)`` pairs: ``start`` is the state
date ``t``, ``history`` the k periods before it, ``trajectories[t-k:t]`` (ending at ``t - 1``), and
``irf`` the response from that state, ``irfs_state`` at ``t``.

**World selection.** ``worlds=[...]`` picks worlds, ``exclude_worlds=[...]`` drops some (leave
one world out: train with ``exclude_worlds=["zlb"]``, evaluate with ``worlds=["zlb"]``; pass the
dataset's ``p_max``/``s_max`` to both so the padded widths agree).

**Windows.** With ``seq_len=L`` (and ``stride``, default ``L``: non-overlapping windows), the
unit of iteration is a ``(sample, start)`` pair with ``start`` in ``0, stride, ..., <= T - L``;
arrays with a ``time`` axis (``shocks``, ``trajectories``, ``extras``, ``regime``, ``binding``)
are cut to ``[start, start + L)``, while ``theta`` and ``irfs`` are the sample's. Only windows
with ``start = 0`` begin at the steady state (at ``initial_state`` in datasets built with a burn-in);
later windows begin wherever the path is, which is
what ``start`` tells the model. Every window of every split sample appears once per pass.

**Mixing rule** (which world each batch, or each item of a mixed batch, comes from), fixed per
``(seed, epoch)``:

* ``"proportional"`` (default): one epoch is one pass over every world's split. One-world
  batches: world ``w`` contributes ``ceil(n_w / B)`` batches (``floor`` with ``drop_last``), in a
  seeded random interleaving. Mixed batches: ``ceil(N / B)`` batches of B items (N the items of
  all worlds; the last one short, or dropped with ``drop_last``), each batch's world composition a
  draw without replacement from the items left (multivariate hypergeometric), so the epoch is a
  uniformly random interleaving of the worlds' item streams.
* ``"uniform"``: every world equally often; ``{"nk": 2, "rbc": 1}``: explicit non-negative
  weights (normalized to sum 1; weight 0 drops a world). An epoch has ``num_batches`` batches
  (default: as many as the proportional epoch). One-world batches: world ``w`` gets
  ``num_batches * p_w`` of them, rounded by largest remainder (ties to the earlier world), so
  proportions are exact up to one batch. Mixed batches: each batch's composition is multinomial
  ``(B, p)``. A world that needs more items than one pass over its split starts a new pass,
  reshuffled; one that needs fewer stops mid-pass (the next epoch starts a fresh pass).

**Shuffle**, deterministic for a given ``seed`` and ``epoch`` and independent of which other
worlds are mixed in (world ``w``'s pass ``p`` of epoch ``e`` uses its own stream
``SeedSequence(seed, spawn_key=(SHUFFLE_KEY, world_key(w), e, p))``):

* ``"chunks"`` (default): the sample chunks are visited in a random order, ``buffer_chunks`` at
  a time; the items (samples or windows) of the split in those chunks are shuffled together and
  consumed in that order. Each chunk is decoded once per pass and memory holds at most
  ``buffer_chunks`` chunks per array per world (one-world batches, which carry leftovers into
  the next buffer) or ``2 * buffer_chunks`` (mixed batches, whose items of one world may straddle
  two buffers). The price: a batch mixes samples from ``buffer_chunks`` chunks (plus carried-over
  ones) rather than from the whole split. Samples are independent draws whose index carries no
  information, so batches are still i.i.d. draws from the prior; what is restricted is which
  samples can meet in one batch. With windows, the windows of one sample share its buffer, so a
  batch is more likely to hold several windows of the same path than under ``"global"``.
* ``"global"``: a uniform random permutation of all items; each batch gathers its items chunk by
  chunk, decoding each chunk it touches once per batch (up to ``min(B, n_chunks)`` chunks per
  batch: on the default layout, 10,000 samples in 1,000-sample chunks and B = 256, every batch
  decodes every chunk, about 40x slower than ``"chunks"``), holding at most ``buffer_chunks``
  decoded chunks per array. With ``buffer_chunks >= n_chunks`` everything is decoded once and
  kept, i.e. the whole arrays are in memory.
* ``"none"``: storage order (sample-major, then window start; for mixed batches the worlds in the
  view's order, one after the other), e.g. for evaluation.

**Sharding** (distributed training). ``iter(epoch, ranks=(r, R))``: the epoch's batch sequence,
the same on every rank, is cut into R contiguous blocks of ``floor(n_batches / R)`` batches (the
last ``n_batches mod R`` batches of the epoch are dropped), and rank r takes block r: disjoint,
equal lengths, and each rank decodes only about 1/R of the chunks. ``shard=(k, n)`` then takes
every n-th batch of that block from the k-th (DataLoader workers). The PyTorch adapter sets both
from ``torch.distributed`` and the worker info.

Memory: the batch, plus the decoded chunks held (above) per requested array per world in the
view, plus the index bookkeeping (8 bytes per item of a pass in the item order, and the split's
sample indices). Never a whole array.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from macro_data.read._args import int_arg, known, names_arg
from macro_data.read.batches import REGIMES, TARGET_SHOCKS, ChunkCache, MixedBatcher, ReadStats, gather, world_key
from macro_data.read.errors import ReadArgumentError
from macro_data.read.normalize import ParameterNormalizer
from macro_data.read.stats import OutputNormalizer
from macro_data.read.store import DatasetCore, WorldData

DEFAULT_ARRAYS = ("theta", "shocks", "trajectories", "irfs")
MIXING_RULES = ("proportional", "uniform")
SHUFFLE_MODES = ("chunks", "global", "none")
BATCH_MODES = ("world", "mixed")
NORMALIZE_MODES = ("prior", "stats")
DEFAULT_BUFFER_CHUNKS = 2
MAX_NUM_BATCHES = 10_000_000  # the epoch's schedule (a world per batch) is held in memory


def _stream_key(label: str) -> int:
    return int.from_bytes(hashlib.sha256(f"macro_data/read/{label}".encode()).digest()[:4], "big")


SHUFFLE_KEY = _stream_key("shuffle")
SCHEDULE_KEY = _stream_key("schedule")
MIXED_KEY = _stream_key("mixed")


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key))))


def _pair_arg(name: str, value, what: str) -> tuple[int, int]:
    try:
        k, n = value
    except (TypeError, ValueError):
        raise ReadArgumentError(f"{name} must be ({what} index, {what} count); got {value!r}") from None
    n = int_arg(f"{name[:-1] if name.endswith('s') else name} count", n, 1)
    k = int_arg(f"{name[:-1] if name.endswith('s') else name} index", k, 0)
    if k >= n:
        raise ReadArgumentError(
            f"{name[:-1] if name.endswith('s') else name} index must be < {what} count {n}; got {k}"
        )
    return k, n


def _opened(dataset: DatasetCore, world, argument: str) -> None:
    """A :class:`ReadArgumentError` naming ``argument`` unless ``world`` is an opened world of ``dataset``."""
    try:
        dataset[world]
    except ReadArgumentError as exc:
        raise ReadArgumentError(f"{argument}: {exc}") from None


class _Gatherer:
    """Gathers one-world batch rows from one world's arrays through a small LRU cache of decoded chunks."""

    def __init__(self, world: WorldData, names: Sequence[str], buffer_chunks: int, seq_len: int | None, stats):
        self.world = world
        self.arrays = {n: world.arrays[n] for n in names}
        base = world.arrays["theta"].chunk_rows
        self.cache = ChunkCache(
            per_array={
                (world.name, n): math.ceil(buffer_chunks * base / a.chunk_rows) + (a.chunk_rows != base)
                for n, a in self.arrays.items()
            },
            stats=stats,
        )
        self.seq_len = seq_len

    def windowed(self, name: str) -> bool:
        a = self.arrays[name]
        return self.seq_len is not None and a.ndim >= 2 and a.dims[1] == "time"

    def gather(self, index: np.ndarray, start: np.ndarray | None) -> dict[str, np.ndarray]:
        out = {}
        for name, arr in self.arrays.items():
            if start is not None and self.windowed(name):
                out[name] = gather(self.cache, arr, index, start, self.seq_len)
            else:
                out[name] = gather(self.cache, arr, index)
        return out


@dataclass(frozen=True)
class _WorldItems:
    """The items of one world in a view: split samples x window starts."""

    world: str
    samples: np.ndarray  # sorted sample indices of the split
    starts: np.ndarray | None  # window starts, or None without windows
    chunk_rows: int
    n_samples: int
    dates: np.ndarray | None = None  # state IRFs: (split samples, K) state dates; starts is then arange(K)

    @property
    def n_windows(self) -> int:
        return 1 if self.starts is None else int(self.starts.size)

    @property
    def n_items(self) -> int:
        return int(self.samples.size) * self.n_windows

    def pass_batches(self, batch_size: int, drop_last: bool) -> int:
        return self.n_items // batch_size if drop_last else -(-self.n_items // batch_size)

    def decode(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.starts is None:
            return self.samples[items], None
        if self.dates is not None:
            return self.samples[items // self.n_windows], self.dates[items // self.n_windows, items % self.n_windows]
        return self.samples[items // self.n_windows], self.starts[items % self.n_windows]


class _Stream:
    """One world's items in the view's order, pass after pass (each reshuffled): ``take(k)`` the next k."""

    def __init__(self, view: TrainingView, world: str, epoch: int):
        self.items = view._items[world]
        self._buffers = self._generate(view, world, epoch)
        self._buf = np.empty(0, dtype=np.int64)
        self._pos = 0

    def _generate(self, view: TrainingView, world: str, epoch: int) -> Iterator[np.ndarray]:
        p = 0
        while True:
            yield from view._buffers(self.items, _rng(view.seed, SHUFFLE_KEY, world_key(world), epoch, p))
            p += 1

    def take(self, k: int) -> np.ndarray:
        parts, need = [], int(k)
        while need:
            if self._pos == self._buf.size:
                self._buf, self._pos = next(self._buffers), 0
                continue
            n = min(need, self._buf.size - self._pos)
            parts.append(self._buf[self._pos : self._pos + n])
            self._pos += n
            need -= n
        return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else self._buf[:0]


class TrainingView:
    """Batches of one split across worlds; the module docstring states every rule.

    Parameters
    ----------
    dataset : Dataset
        The opened dataset (:func:`macro_data.read.open_dataset`).
    split : str, list of str or None
        A split name, a list of them, or ``None`` for all samples.
    batch_size : int
        Items per batch (the last one of an epoch may be shorter, unless ``drop_last``).
    worlds, exclude_worlds : list of str, optional
        Worlds to use (default: all opened) and worlds to leave out.
    mixing : {"proportional", "uniform"} or mapping
        How often each world appears; ``{world: weight}`` for explicit weights.
    num_batches : int, optional
        Batches per epoch for weighted mixing (default: as many as the proportional epoch).
    seed : int
        The order is a function of ``(seed, epoch)`` only.
    shuffle : {"chunks", "global", "none"}
    buffer_chunks : int
        Chunks per world visited together by the chunk shuffle.
    seq_len, stride : int, optional
        Windows of the time series.
    arrays : list of str, optional
        Arrays of one-world batches (default theta, shocks, trajectories, irfs).
    normalize : True, False, "prior", "stats" or mapping
        theta's normalization: prior z-scores (``True``/``"prior"``), the stored train-split moments
        (``"stats"``), none, or ``{world: ParameterNormalizer}``.
    bounds : {"prior", "parameters"}
        The bounds of the prior z-scores.
    drop_last : bool
        Drop short batches.
    batches : {"world", "mixed"}
        One world per batch, or mixed-world batches.
    regime : {"A", "B1", "C"} or None
        The information regime of mixed batches (which inputs are present).
    history : int, optional
        k periods of observed history in mixed batches (``1 <= k <= T``).
    target_shock : {"uniform", "first"}
        The target shock of each item of a mixed batch (default ``"uniform"``).
    normalize_outputs : bool
        Standardize ``irf``, ``history`` and ``eps_sequence`` of mixed batches with the stored moments.
    p_max, s_max : int, optional
        Padded widths of mixed batches (default: the maxima over the view's worlds).
    """

    def __init__(
        self,
        dataset: DatasetCore,
        split: str | Sequence[str] | None = "train",
        *,
        batch_size: int = 256,
        worlds: Sequence[str] | None = None,
        exclude_worlds: Sequence[str] | None = None,
        mixing: str | Mapping[str, float] = "proportional",
        num_batches: int | None = None,
        seed: int = 0,
        shuffle: str = "chunks",
        buffer_chunks: int = DEFAULT_BUFFER_CHUNKS,
        seq_len: int | None = None,
        stride: int | None = None,
        arrays: Sequence[str] | None = None,
        normalize: bool | str | Mapping[str, ParameterNormalizer] = True,
        bounds: str = "prior",
        drop_last: bool = False,
        batches: str = "world",
        regime: str | None = None,
        history: int | None = None,
        target_shock: str | None = None,
        normalize_outputs: bool = False,
        p_max: int | None = None,
        s_max: int | None = None,
        state_irfs: bool = False,
    ):
        self.dataset = dataset
        self.batch_size = int_arg("batch_size", batch_size, 1)
        self.seed = int_arg("seed", seed, 0)
        self.buffer_chunks = int_arg("buffer_chunks", buffer_chunks, 1)
        self.drop_last = bool(drop_last)
        if not isinstance(shuffle, str) or shuffle not in SHUFFLE_MODES:
            raise ReadArgumentError(f"shuffle must be one of {', '.join(SHUFFLE_MODES)}; got {shuffle!r}")
        self.shuffle = shuffle
        if not isinstance(batches, str) or batches not in BATCH_MODES:
            raise ReadArgumentError(f"batches must be one of {', '.join(BATCH_MODES)}; got {batches!r}")
        self.batches = batches
        self.mixed = batches == "mixed"
        # ---- worlds and mixing weights
        if worlds is not None:
            worlds = names_arg("worlds", worlds)
        excluded = names_arg("exclude_worlds", exclude_worlds) if exclude_worlds is not None else []
        for w in excluded:
            _opened(dataset, w, "exclude_worlds")
        if isinstance(mixing, Mapping):
            for w in mixing:
                _opened(dataset, w, "mixing")
            weights = {}
            for w, v in mixing.items():
                if (
                    isinstance(v, bool)
                    or not isinstance(v, (int, float, np.integer, np.floating))
                    or not math.isfinite(v)
                    or v < 0
                ):
                    raise ReadArgumentError(f"mixing: weight of world {w!r} must be a finite number >= 0; got {v!r}")
                weights[w] = float(v)
            if worlds is None:
                worlds = [w for w in dataset.worlds if weights.get(w, 0.0) > 0]
            else:
                missing = [w for w in worlds if w not in weights]
                if missing:
                    raise ReadArgumentError(f"mixing: no weight for world {missing[0]!r} (worlds {list(worlds)})")
            self.mixing = "weights"
        elif isinstance(mixing, str) and mixing in MIXING_RULES:
            self.mixing = mixing
            weights = None
        else:
            raise ReadArgumentError(
                f"mixing must be one of {', '.join(MIXING_RULES)} or a mapping {{world: weight}}; got {mixing!r}"
            )
        names = list(dataset.worlds if worlds is None else worlds)
        for w in names:
            _opened(dataset, w, "worlds")
        if len(set(names)) != len(names):
            raise ReadArgumentError(f"worlds: repeated world in {names}")
        chosen = [w for w in names if w not in excluded]
        if not chosen:
            raise ReadArgumentError(
                "worlds: no world selected"
                + (f" after exclude_worlds={excluded} (from {known(names)})" if excluded else "")
                + f"; the dataset's worlds: {known(dataset.worlds)}"
            )
        self.worlds: tuple[str, ...] = tuple(w for w in dataset.worlds if w in chosen)
        self.excluded: tuple[str, ...] = tuple(excluded)
        if self.mixing == "uniform":
            weights = {w: 1.0 for w in self.worlds}
        if weights is not None:
            total = sum(weights[w] for w in self.worlds)
            if not total > 0:
                raise ReadArgumentError(
                    f"mixing: the weights of worlds {list(self.worlds)} sum to {total}; at least one must be positive"
                )
            self.weights: dict[str, float] | None = {w: weights[w] / total for w in self.worlds}
        else:
            self.weights = None
        # ---- split, windows, arrays
        self.split = split
        if split is not None:
            for s in names_arg("split", split):
                dataset[self.worlds[0]].check_split(s)
        T = dataset.T
        if seq_len is None:
            if stride is not None:
                raise ReadArgumentError(f"stride={stride!r} given without seq_len; windows need seq_len")
            self.seq_len, self.stride, starts = None, None, None
        else:
            self.seq_len = int_arg("seq_len", seq_len, 1)
            if self.seq_len > T:
                raise ReadArgumentError(f"seq_len must be <= T = {T} (trajectory length); got {seq_len!r}")
            self.stride = self.seq_len if stride is None else int_arg("stride", stride, 1)
            starts = np.arange(0, T - self.seq_len + 1, self.stride, dtype=np.int64)
        self._check_mode_options(arrays, regime, history, target_shock, normalize_outputs, p_max, s_max)
        self.state_irfs = bool(state_irfs)
        if self.state_irfs:
            self._check_state_irfs(batches, regime, history, seq_len, normalize_outputs)
        if self.mixed:
            self.regime = regime
            self.history = None if history is None else int_arg("history", history, 1)
            if self.history is not None and self.history > T:
                raise ReadArgumentError(
                    f"history must be <= T = {T} (trajectory length: the history is cut from it); got {history!r}"
                )
            if regime in ("B1", "C") and self.history is None:
                raise ReadArgumentError(f"regime {regime!r} gives observed history: pass history=k (1 <= k <= {T})")
            if regime == "A" and self.history is not None:
                raise ReadArgumentError(
                    f"history={history!r}: regime 'A' has no observed history (it is given to regimes B1 and C, "
                    f"or to regime=None)"
                )
            self.target_shock = "uniform" if target_shock is None else target_shock
        else:
            self.regime, self.history, self.target_shock = None, None, None
        self.arrays = tuple(dict.fromkeys(names_arg("arrays", DEFAULT_ARRAYS if arrays is None else arrays)))
        if not self.arrays:
            raise ReadArgumentError("arrays: no array selected")
        for w in self.worlds:
            for a in self.arrays:
                if a not in dataset[w].arrays:
                    raise ReadArgumentError(
                        f"arrays: world {w!r} has no array {a!r} (its arrays: "
                        f"{', '.join(dataset[w].arrays)}); choose worlds that have it"
                    )
        # ---- normalization
        self.normalize = normalize
        if normalize is True or (isinstance(normalize, str) and normalize == "prior"):
            self.normalizers = {w: dataset[w].normalizer(bounds=bounds) for w in self.worlds}
        elif isinstance(normalize, str) and normalize == "stats":
            for w in self.worlds:
                self._stats_of(w, "normalize='stats'")  # a clear error if the dataset has none
            self.normalizers = {w: dataset[w].stats_normalizer() for w in self.worlds}
        elif normalize is False or normalize is None:
            self.normalizers = {}
        elif isinstance(normalize, Mapping):
            missing = [w for w in self.worlds if w not in normalize]
            if missing:
                raise ReadArgumentError(f"normalize: no normalizer for world {missing[0]!r}")
            wrong = [w for w in self.worlds if not isinstance(normalize[w], ParameterNormalizer)]
            if wrong:
                raise ReadArgumentError(
                    f"normalize: the value for world {wrong[0]!r} must be a ParameterNormalizer "
                    f"(e.g. dataset[{wrong[0]!r}].normalizer()); got {normalize[wrong[0]]!r}"
                )
            self.normalizers = dict(normalize)
        else:
            raise ReadArgumentError(
                f"normalize must be True, False, one of {', '.join(repr(m) for m in NORMALIZE_MODES)} or "
                f"{{world: ParameterNormalizer}}; got {normalize!r}"
            )
        if not self.mixed and self.normalizers and "theta" not in self.arrays:
            raise ReadArgumentError("normalize needs 'theta' in arrays (or pass normalize=False)")
        self.normalize_outputs = bool(normalize_outputs)
        self.output_normalizers: dict[str, OutputNormalizer] = (
            {w: OutputNormalizer(self._stats_of(w, "normalize_outputs=True")) for w in self.worlds}
            if self.normalize_outputs
            else {}
        )
        # ---- items and epoch layout
        self._items = {
            w: _WorldItems(
                w, dataset[w].split_indices(split), starts, dataset[w].arrays["theta"].chunk_rows, dataset[w].n_samples
            )
            if not self.state_irfs
            else self._state_items(w, split)
            for w in self.worlds
        }
        self.pass_batches = {w: it.pass_batches(self.batch_size, self.drop_last) for w, it in self._items.items()}
        total_items = sum(it.n_items for it in self._items.values())
        proportional_batches = (
            (total_items // self.batch_size if self.drop_last else -(-total_items // self.batch_size))
            if self.mixed
            else sum(self.pass_batches.values())
        )
        if self.weights is None:
            if num_batches is not None:
                raise ReadArgumentError(
                    f"num_batches={num_batches!r} applies to weighted mixing ('uniform' or "
                    f"weights); a proportional epoch is one pass over each split"
                )
            self.counts = dict(self.pass_batches)
            self.n_batches = proportional_batches
        else:
            for w in self.worlds:
                needed = self._items[w].n_items if self.mixed else self.pass_batches[w]
                if self.weights[w] > 0 and needed == 0:
                    raise ReadArgumentError(
                        f"world {w!r} has {self._items[w].n_items} items in split {split!r}, "
                        + ("none to mix" if self.mixed else f"not enough for one batch of {self.batch_size}")
                        + (" with drop_last" if self.drop_last and not self.mixed else "")
                    )
            n = (
                (
                    sum(self.pass_batches[w] for w in self.worlds if self.weights[w] > 0)
                    if not self.mixed
                    else proportional_batches
                )
                if num_batches is None
                else int_arg("num_batches", num_batches, 1)
            )
            if n > MAX_NUM_BATCHES:
                raise ReadArgumentError(
                    f"num_batches: an epoch of {n} batches is more than {MAX_NUM_BATCHES:,} "
                    f"(its schedule is held in memory); use more epochs of fewer batches"
                )
            self.counts = self._apportion(n)
            self.n_batches = n
        # ---- mixed batches
        self.batcher: MixedBatcher | None = None
        if self.mixed:
            view_p = max(len(dataset[w].parameter_names) for w in self.worlds)
            view_s = max(len(dataset[w].shocks) for w in self.worlds)
            self.p_max = view_p if p_max is None else int_arg("p_max", p_max, view_p)
            self.s_max = view_s if s_max is None else int_arg("s_max", s_max, view_s)
            self.batcher = MixedBatcher(
                dataset,
                self.worlds,
                state_irfs=self.state_irfs,
                regime=self.regime,
                history=self.history,
                seq_len=self.seq_len,
                theta_norm=self.normalizers,
                output_norm=self.output_normalizers,
                target_shock=self.target_shock,
                seed=self.seed,
                p_max=self.p_max,
                s_max=self.s_max,
            )

    def _check_state_irfs(self, batches, regime, history, seq_len, normalize_outputs) -> None:
        if batches != "mixed" or regime not in ("B1", "C") or history is None:
            raise ReadArgumentError(
                "state_irfs=True serves (history before t, irfs_state at t) pairs: it needs batches='mixed', "
                f"regime='B1' or 'C' and history=k; got batches={batches!r}, regime={regime!r}, history={history!r}"
            )
        if seq_len is not None or normalize_outputs:
            raise ReadArgumentError(
                "state_irfs=True takes no seq_len (the items are state dates) nor normalize_outputs"
            )
        for w in self.worlds:
            if "irfs_state" not in self.dataset[w].arrays:
                raise ReadArgumentError(
                    f"state_irfs=True: world {w!r} has no state IRFs (build it with irfs: {{states: K}}, K > 0)"
                )

    def _state_items(self, world: str, split) -> _WorldItems:
        """Items (sample, state k) of one world: ``start`` is the state date t (history ends at t - 1)."""
        data = self.dataset[world]
        samples = data.split_indices(split)
        dates_arr = data.arrays["state_dates"]
        K = dates_arr.shape[1]
        dates = np.asarray(dates_arr.take(samples), dtype=np.int64)
        chunk_rows = data.arrays["theta"].chunk_rows
        return _WorldItems(world, samples, np.arange(K, dtype=np.int64), chunk_rows, data.n_samples, dates)

    def _check_mode_options(self, arrays, regime, history, target_shock, normalize_outputs, p_max, s_max) -> None:
        if self.mixed:
            if arrays is not None:
                raise ReadArgumentError(
                    "arrays applies to batches='world'; mixed batches hold the keys of their regime "
                    "(regime='A', 'B1', 'C' or None)"
                )
            if regime is not None and (not isinstance(regime, str) or regime not in REGIMES):
                raise ReadArgumentError(
                    f"regime must be one of {', '.join(repr(r) for r in REGIMES if r)} or None; got {regime!r}"
                )
            if target_shock is not None and (not isinstance(target_shock, str) or target_shock not in TARGET_SHOCKS):
                raise ReadArgumentError(
                    f"target_shock must be one of {', '.join(repr(t) for t in TARGET_SHOCKS)}; got {target_shock!r}"
                )
            return
        given = {
            "regime": regime,
            "history": history,
            "target_shock": target_shock,
            "p_max": p_max,
            "s_max": s_max,
            "normalize_outputs": normalize_outputs or None,
        }
        for name, value in given.items():
            if value is not None:
                raise ReadArgumentError(
                    f"{name}={value!r} applies to mixed batches: pass batches='mixed' (batches is one of "
                    f"{', '.join(BATCH_MODES)})"
                )

    def _stats_of(self, world: str, what: str):
        try:
            return self.dataset[world].stats
        except ReadArgumentError as exc:
            raise ReadArgumentError(f"{what}: {exc}") from None

    # ---- layout -------------------------------------------------------------------------------
    def _apportion(self, n: int) -> dict[str, int]:
        exact = {w: n * self.weights[w] for w in self.worlds}
        counts = {w: int(math.floor(v)) for w, v in exact.items()}
        left = n - sum(counts.values())
        by_remainder = sorted(self.worlds, key=lambda w: (-(exact[w] - counts[w]), self.worlds.index(w)))
        for w in by_remainder[:left]:
            counts[w] += 1
        return counts

    def __len__(self) -> int:
        """Batches per epoch (all shards)."""
        return self.n_batches if self.mixed else sum(self.counts.values())

    @property
    def n_items(self) -> dict[str, int]:
        """Items (samples, or windows) per world in one pass over the split."""
        return {w: it.n_items for w, it in self._items.items()}

    @property
    def world_index(self) -> dict[str, int]:
        """Each view world's position in the dataset's world list (``world_index`` of mixed batches)."""
        return {w: self.dataset[w].index for w in self.worlds}

    def __repr__(self) -> str:
        win = f", seq_len={self.seq_len}, stride={self.stride}" if self.seq_len else ""
        mode = f", regime={self.regime!r}, history={self.history}" if self.mixed else ""
        return (
            f"<TrainingView split={self.split!r} batches={self.batches!r} batch_size={self.batch_size} "
            f"mixing={self.mixing} shuffle={self.shuffle}{win}{mode}: {len(self)} batches/epoch, worlds "
            f"{list(self.worlds)}>"
        )

    def schedule(self, epoch: int = 0) -> tuple[str, ...]:
        """The world of every one-world batch of ``epoch``, in order (no data is read).

        Parameters
        ----------
        epoch : int
            The epoch (``>= 0``).

        Returns
        -------
        tuple of str
            One world id per batch.
        """
        epoch = int_arg("epoch", epoch, 0)
        if self.mixed:
            raise ReadArgumentError("schedule() describes one-world batches; a mixed view's plan() gives its items")
        worlds = np.arange(len(self.worlds), dtype=np.min_scalar_type(len(self.worlds)))
        seq = np.repeat(worlds, [self.counts[w] for w in self.worlds])
        # In place, one byte per batch: the order of seq[rng.permutation(seq.size)] (a permutation is
        # the same swaps applied to arange), without its two int64 arrays per batch.
        _rng(self.seed, SCHEDULE_KEY, epoch).shuffle(seq)
        return tuple(self.worlds[i] for i in seq)

    # ---- per-world item order --------------------------------------------------------------------
    def _chunk_edges(self, items: _WorldItems) -> tuple[int, np.ndarray]:
        n_chunks = -(-items.n_samples // items.chunk_rows)
        return n_chunks, np.searchsorted(items.samples, np.arange(n_chunks + 1) * items.chunk_rows)

    def _buffers(self, items: _WorldItems, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """One pass over a world's items as consecutive buffers (item ids), in the shuffle's order."""
        n, nw = items.n_items, items.n_windows
        if not n:
            raise ReadArgumentError(f"world {items.world!r} has no items in split {self.split!r}")
        if self.shuffle == "global":
            yield rng.permutation(n)
            return
        n_chunks, edges = self._chunk_edges(items)
        order = np.arange(n_chunks) if self.shuffle == "none" else rng.permutation(n_chunks)
        for g in range(0, n_chunks, self.buffer_chunks):
            pos = np.concatenate([np.arange(edges[c], edges[c + 1]) for c in order[g : g + self.buffer_chunks]])
            buf = (pos[:, None] * nw + np.arange(nw)[None, :]).ravel()
            if buf.size:
                yield buf if self.shuffle == "none" else buf[rng.permutation(buf.size)]

    def _pass(self, items: _WorldItems, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """One pass over a world's items as one-world batches (leftovers carried to the next buffer)."""
        B, n = self.batch_size, items.n_items
        if self.shuffle != "chunks":
            order = rng.permutation(n) if self.shuffle == "global" else np.arange(n)
            stop = (n // B) * B if self.drop_last else n
            for lo in range(0, stop, B):
                yield order[lo : lo + B]
            return
        carry = np.empty(0, dtype=np.int64)
        for buf in self._buffers(items, rng):
            buf = np.concatenate([carry, buf])
            full = (buf.size // B) * B
            for lo in range(0, full, B):
                yield buf[lo : lo + B]
            carry = buf[full:]
        if carry.size and not self.drop_last:
            yield carry

    def _stream(self, world: str, epoch: int) -> Iterator[np.ndarray]:
        items, p = self._items[world], 0
        while True:  # weighted mixing may need more than one pass; each pass is reshuffled
            yield from self._pass(items, _rng(self.seed, SHUFFLE_KEY, world_key(world), epoch, p))
            p += 1

    # ---- plans -----------------------------------------------------------------------------------
    def _selection(self, shard, ranks) -> tuple[int, int, int, int]:
        """``(first batch, end batch, shard index, shard count)`` of this consumer's batches."""
        k, n = _pair_arg("shard", shard, "shard")
        r, R = _pair_arg("ranks", ranks, "rank")
        per = self.n_batches // R
        return r * per, (r + 1) * per, k, n

    def batches_for(self, shard: tuple[int, int] = (0, 1), ranks: tuple[int, int] = (0, 1)) -> int:
        """How many batches :meth:`iter` yields per epoch for this shard of this rank.

        Parameters
        ----------
        shard : tuple of int
            ``(index, count)`` of the data-loader worker.
        ranks : tuple of int
            ``(rank, world size)`` of the distributed process.

        Returns
        -------
        int
        """
        lo, hi, k, n = self._selection(shard, ranks)
        return len(range(lo + k, hi, n))

    def plan(self, epoch: int = 0, shard: tuple[int, int] = (0, 1), ranks: tuple[int, int] = (0, 1)) -> Iterator:
        """The items of every batch of ``epoch`` for this shard; reads no data.

        Parameters
        ----------
        epoch : int
        shard : (int, int)
            ``(k, n)``: every n-th batch of the rank's block, from the k-th (DataLoader workers).
        ranks : (int, int)
            ``(r, R)``: the r-th of R equal contiguous blocks of the epoch (distributed ranks).

        Returns
        -------
        iterator
            One-world views: ``(world, sample indices, window starts or None)`` per batch. Mixed
            views: ``(world positions in view.worlds, sample indices, window starts or None)``.
        """
        epoch = int_arg("epoch", epoch, 0)
        lo, hi, k, n = self._selection(shard, ranks)
        take = range(lo + k, hi, n)
        if self.mixed:
            return self._select(self._mixed_plan(epoch), take)
        return self._select(self._world_plan(self.schedule(epoch), epoch), take)

    @staticmethod
    def _select(plan: Iterator, take: range) -> Iterator:
        if not take:
            return
        wanted = iter(take)
        nxt = next(wanted)
        for b, entry in enumerate(plan):
            if b == nxt:
                yield entry
                nxt = next(wanted, None)
                if nxt is None:
                    return

    def _world_plan(self, schedule: tuple[str, ...], epoch: int):
        streams = {w: self._stream(w, epoch) for w in self.worlds}
        for w in schedule:
            index, start = self._items[w].decode(next(streams[w]))
            yield w, index, start

    def _mixed_plan(self, epoch: int):
        rng = _rng(self.seed, MIXED_KEY, epoch)
        streams = [_Stream(self, w, epoch) for w in self.worlds]
        items = [self._items[w] for w in self.worlds]
        B = self.batch_size
        if self.weights is None:
            remaining = np.array([it.n_items for it in items], dtype=np.int64)
        else:
            p = np.array([self.weights[w] for w in self.worlds])
        for _ in range(self.n_batches):
            if self.weights is None:
                size = int(min(B, remaining.sum()))
                if self.shuffle == "none":  # storage order: the worlds one after the other
                    counts = np.diff(np.minimum(np.cumsum(remaining), size), prepend=0)
                else:
                    counts = rng.multivariate_hypergeometric(remaining, size)
                remaining -= counts
            else:
                counts = rng.multinomial(B, p)
            world_pos = np.repeat(np.arange(len(self.worlds)), counts)
            index = np.empty(world_pos.size, dtype=np.int64)
            with_start = self.seq_len is not None or self.state_irfs
            start = np.empty(world_pos.size, dtype=np.int64) if with_start else None
            at = 0
            for w in np.flatnonzero(counts):
                c = int(counts[w])
                i, s = items[w].decode(streams[w].take(c))
                index[at : at + c] = i
                if start is not None:
                    start[at : at + c] = s
                at += c
            if self.shuffle != "none":
                perm = rng.permutation(world_pos.size)
                world_pos, index = world_pos[perm], index[perm]
                start = start[perm] if start is not None else None
            yield world_pos, index, start

    # ---- data --------------------------------------------------------------------------------
    def iter(
        self,
        epoch: int = 0,
        shard: tuple[int, int] = (0, 1),
        stats: ReadStats | None = None,
        ranks: tuple[int, int] = (0, 1),
    ) -> Iterator:
        """The batches of ``epoch`` (for one shard of one rank).

        Parameters
        ----------
        epoch : int
            The order is a function of ``(seed, epoch)``.
        shard : (int, int)
            ``(k, n)``: every n-th batch of the rank's block, from the k-th.
        stats : ReadStats, optional
            Filled with the chunks decoded.
        ranks : (int, int)
            ``(r, R)``: the r-th of R equal, disjoint, contiguous blocks of the epoch.

        Returns
        -------
        iterator
            ``(world, batch)`` pairs (one-world views) or batch dicts (mixed views).
        """
        plan = self.plan(epoch, shard, ranks)
        if self.mixed:
            return self._iter_mixed(plan, int(epoch), stats)
        return self._iter_world(plan, stats)

    def chunk_cache(self, stats: ReadStats | None = None) -> ChunkCache:
        """A cache holding what one iteration over this view needs (see the module docstring).

        Parameters
        ----------
        stats : ReadStats, optional
            Where the cache counts its hits, misses and bytes read.

        Returns
        -------
        ChunkCache
        """
        arrays = self.batcher.arrays() if self.mixed else self.arrays
        per_array = {}
        factor = 2 if self.mixed else 1
        for w in self.worlds:
            base = self.dataset[w].arrays["theta"].chunk_rows
            for a in arrays:
                rows = self.dataset[w].arrays[a].chunk_rows
                per_array[(w, a)] = math.ceil(factor * self.buffer_chunks * base / rows) + (rows != base)
        return ChunkCache(per_array=per_array, stats=stats)

    def _iter_mixed(self, plan, epoch: int, stats: ReadStats | None):
        cache = self.chunk_cache(stats)
        for world_pos, index, start in plan:
            batch = self.batcher.build(cache, world_pos, index, start, epoch)
            if stats is not None:
                stats.batches += 1
            yield batch

    def _iter_world(self, plan, stats: ReadStats | None):
        gatherers = {
            w: _Gatherer(self.dataset[w], self.arrays, self.buffer_chunks, self.seq_len, stats) for w in self.worlds
        }
        for w, index, start in plan:
            batch = {"index": index}
            if start is not None:
                batch["start"] = start
            batch.update(gatherers[w].gather(index, start))
            if self.normalizers:
                batch["theta_normalized"] = self.normalizers[w].normalize(batch["theta"]).astype(np.float32)
            if stats is not None:
                stats.batches += 1
            yield w, batch

    def __iter__(self) -> Iterator:
        return self.iter(0)

    # ---- inverse transform ---------------------------------------------------------------------
    def denormalize_irf(self, irf: np.ndarray, worlds) -> np.ndarray:
        """Predicted IRFs back in natural units, per world (the inverse of ``normalize_outputs``).

        Parameters
        ----------
        irf : numpy.ndarray
            ``(B, S_max, H + 1, 3)`` in the view's output units (standardized when the view has
            ``normalize_outputs=True``; else already natural, and this returns a float32 copy).
        worlds : str, list of str or numpy.ndarray
            The world of each row: a batch's ``world_ids`` or ``world_index``, or one world name for all.

        Returns
        -------
        numpy.ndarray
            float32 ``(B, S_max, H + 1, 3)`` in natural units; shocks beyond a world's own are 0.
        """
        return self.dataset._irf_rows(irf, worlds, natural=not self.normalize_outputs)


def iter_batches(dataset: DatasetCore, split: str | Sequence[str] | None = "train", *, epoch: int = 0, **options):
    """Shortcut for ``TrainingView(dataset, split, **options).iter(epoch)``.

    Parameters
    ----------
    dataset : Dataset
    split : str, list of str or None
    epoch : int
    **options
        :class:`TrainingView` options.

    Returns
    -------
    iterator
        As :meth:`TrainingView.iter`.
    """
    return TrainingView(dataset, split, **options).iter(epoch)
