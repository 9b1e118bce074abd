"""Training views: shuffled, mixed, optionally windowed batches, read chunk by chunk.

``view = ds.training_view("train", batch_size=256, seed=0)`` and ``for world, batch in view.iter(epoch)``.

**Batch shape across worlds.** Worlds differ in the number of parameters (``theta`` width) and of
shocks, so every batch comes from *one* world: the iterator yields ``(world, batch)`` with
``batch`` a dict of NumPy arrays, all with the batch on axis 0:

* ``index`` (B,) int64: sample indices within the world (and ``start`` (B,) int64 with windows);
* ``theta`` (B, P_w) float32 in natural units, ``theta_normalized`` (B, P_w) float32 (unless
  ``normalize=False``; rule in :mod:`macro_data.read.normalize`);
* ``shocks`` (B, T, S_w), ``trajectories`` (B, T, 3), ``irfs`` (B, S_w, H + 1, 3), and any other
  array asked for with ``arrays=`` (``extras``, ``regime``, ``binding``, ``split``).

No padding or masks: a model with per-world input heads consumes the batches directly, and one
that wants a common width can pad per batch knowing the world. Observables are the same three
canonical series in every world.

**Windows.** With ``seq_len=L`` (and ``stride``, default ``L``: non-overlapping windows), the
unit of iteration is a ``(sample, start)`` pair with ``start`` in ``0, stride, ..., <= T - L``;
arrays with a ``time`` axis (``shocks``, ``trajectories``, ``extras``, ``regime``, ``binding``)
are cut to ``[start, start + L)``, while ``theta`` and ``irfs`` are the sample's. Only windows
with ``start = 0`` begin at the steady state; later windows begin wherever the path is, which is
what ``start`` tells the model. Every window of every split sample appears once per pass.

**Mixing rule** (which world each batch comes from), fixed per ``(seed, epoch)``:

* ``"proportional"`` (default): one epoch is one pass over every world's split, so world ``w``
  contributes ``ceil(n_w / B)`` batches (``floor`` with ``drop_last``), i.e. in proportion to its
  split size; the order of the batches' worlds is a seeded random interleaving.
* ``"uniform"``: every world equally often; ``{"nk": 2, "rbc": 1}``: explicit non-negative
  weights (normalized to sum 1; weight 0 drops a world). An epoch has ``num_batches`` batches
  (default: as many as the proportional epoch), and world ``w`` gets ``num_batches * p_w`` of
  them, rounded by largest remainder (ties to the earlier world), so proportions are exact up to
  one batch. A world that needs more batches than one pass over its split starts a new pass,
  reshuffled; one that needs fewer stops mid-pass (the next epoch starts a fresh pass).

**Shuffle**, deterministic for a given ``seed`` and ``epoch`` and independent of which other
worlds are mixed in (world ``w``'s pass ``p`` of epoch ``e`` uses its own stream
``SeedSequence(seed, spawn_key=(SHUFFLE_KEY, world_key(w), e, p))``):

* ``"chunks"`` (default): the sample chunks are visited in a random order, ``buffer_chunks`` at
  a time; the items (samples or windows) of the split in those chunks are shuffled together and
  cut into batches, leftovers carried into the next buffer so that only a pass's last batch is
  short. Each chunk is decoded once per pass (when every buffer holds at least ``batch_size``
  items) and memory holds ``buffer_chunks`` chunks per array per world. The price: a batch
  mixes samples from ``buffer_chunks`` chunks (plus carried-over ones) rather than from the whole
  split. Samples are independent draws whose index carries no information, so batches are still
  i.i.d. draws from the prior; what is restricted is which samples can meet in one batch. With
  windows, the windows of one sample share its buffer, so a batch is more likely to hold several
  windows of the same path than under ``"global"``.
* ``"global"``: a uniform random permutation of all items; each batch gathers its (sorted)
  items chunk by chunk, decoding each chunk it touches once per batch (up to ``min(B, n_chunks)``
  chunks per batch: on the default layout, 10,000 samples in 1,000-sample chunks and B = 256,
  every batch decodes every chunk, about 40x slower than ``"chunks"``), holding at most
  ``buffer_chunks`` decoded chunks per array. With ``buffer_chunks >= n_chunks`` everything is
  decoded once and kept, i.e. the whole arrays are in memory.
* ``"none"``: storage order (sample-major, then window start), e.g. for evaluation.

Memory: the batch, plus at most ``buffer_chunks`` decoded chunks per requested array per world
in the view, plus the index bookkeeping (8 bytes per item of the pass). Never a whole array.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from macro_data.read.dataset import Dataset, LazyArray, WorldData, _names_arg
from macro_data.read.errors import ReadArgumentError
from macro_data.read.normalize import ParameterNormalizer
from macro_data.worlds.base import stable_key

DEFAULT_ARRAYS = ("theta", "shocks", "trajectories", "irfs")
MIXING_RULES = ("proportional", "uniform")
SHUFFLE_MODES = ("chunks", "global", "none")
DEFAULT_BUFFER_CHUNKS = 2
MAX_NUM_BATCHES = 10_000_000  # the epoch's schedule (one int64 per batch, permuted) is held in memory


def _stream_key(label: str) -> int:
    return int.from_bytes(hashlib.sha256(f"macro_data/read/{label}".encode()).digest()[:4], "big")


SHUFFLE_KEY = _stream_key("shuffle")
SCHEDULE_KEY = _stream_key("schedule")


def _int_arg(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ReadArgumentError(f"{name} must be {what}; got {value!r}")
    return int(value)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key))))


@dataclass
class ReadStats:
    """What an iteration decoded: ``chunk_reads[(world, array, chunk)]`` counts and bytes."""

    chunk_reads: Counter = field(default_factory=Counter)
    bytes_decoded: int = 0
    batches: int = 0

    @property
    def total_chunk_reads(self) -> int:
        return sum(self.chunk_reads.values())


class _Gatherer:
    """Gathers batch rows from one world's arrays through a small LRU cache of decoded chunks."""

    def __init__(
        self, world: WorldData, names: Sequence[str], buffer_chunks: int, seq_len: int | None, stats: ReadStats | None
    ):
        self.world = world
        self.arrays: dict[str, LazyArray] = {n: world.arrays[n] for n in names}
        base = world.arrays["theta"].chunk_rows
        self.capacity = {
            n: math.ceil(buffer_chunks * base / a.chunk_rows) + (a.chunk_rows != base) for n, a in self.arrays.items()
        }
        self.cache: dict[str, OrderedDict] = {n: OrderedDict() for n in names}
        self.seq_len = seq_len
        self.offsets = np.arange(seq_len) if seq_len else None
        self.stats = stats

    def windowed(self, name: str) -> bool:
        a = self.arrays[name]
        return self.seq_len is not None and a.ndim >= 2 and a.dims[1] == "time"

    def _chunk(self, name: str, c: int) -> np.ndarray:
        cache = self.cache[name]
        if c in cache:
            cache.move_to_end(c)
            return cache[c]
        block = self.arrays[name].read_chunk(c)
        if self.stats is not None:
            self.stats.chunk_reads[(self.world.name, name, c)] += 1
            self.stats.bytes_decoded += block.nbytes
        cache[c] = block
        while len(cache) > self.capacity[name]:
            cache.popitem(last=False)
        return block

    def gather(self, index: np.ndarray, start: np.ndarray | None) -> dict[str, np.ndarray]:
        out = {}
        for name, arr in self.arrays.items():
            windowed = start is not None and self.windowed(name)
            shape = (index.size, self.seq_len, *arr.shape[2:]) if windowed else (index.size, *arr.shape[1:])
            buf = np.empty(shape, dtype=arr.dtype)
            chunk_of = index // arr.chunk_rows
            order = np.argsort(chunk_of, kind="stable")
            cuts = np.flatnonzero(np.diff(chunk_of[order])) + 1
            groups = np.split(order, cuts)
            # Chunks already cached first: then loading new ones can only evict chunks this batch is done with.
            groups.sort(key=lambda g: (int(chunk_of[g[0]]) not in self.cache[name], int(chunk_of[g[0]])))
            for g in groups:
                c = int(chunk_of[g[0]])
                block = self._chunk(name, c)
                rows = index[g] - c * arr.chunk_rows
                if windowed:
                    buf[g] = block[rows[:, None], start[g][:, None] + self.offsets[None, :]]
                else:
                    buf[g] = block[rows]
            out[name] = buf
        return out


@dataclass(frozen=True)
class _WorldItems:
    """The items of one world in a view: split samples x window starts."""

    world: str
    samples: np.ndarray  # sorted sample indices of the split
    starts: np.ndarray | None  # window starts, or None without windows
    chunk_rows: int
    n_samples: int

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
        return self.samples[items // self.n_windows], self.starts[items % self.n_windows]


class TrainingView:
    """Batches of one split across worlds; see the module docstring for every rule.

    Arguments: ``split`` (a split name, a list of them, or ``None`` for all samples),
    ``batch_size``, ``worlds`` (default: all opened), ``mixing`` (``"proportional"``,
    ``"uniform"`` or ``{world: weight}``), ``num_batches`` (weighted mixing only), ``seed``,
    ``shuffle`` (``"chunks"``, ``"global"``, ``"none"``), ``buffer_chunks``, ``seq_len``,
    ``stride``, ``arrays``, ``normalize`` (``True``, ``False`` or ``{world: ParameterNormalizer}``),
    ``bounds`` (for ``normalize=True``: ``"prior"`` or ``"parameters"``), ``drop_last``.
    """

    def __init__(
        self,
        dataset: Dataset,
        split: str | Sequence[str] | None = "train",
        *,
        batch_size: int = 256,
        worlds: Sequence[str] | None = None,
        mixing: str | Mapping[str, float] = "proportional",
        num_batches: int | None = None,
        seed: int = 0,
        shuffle: str = "chunks",
        buffer_chunks: int = DEFAULT_BUFFER_CHUNKS,
        seq_len: int | None = None,
        stride: int | None = None,
        arrays: Sequence[str] = DEFAULT_ARRAYS,
        normalize: bool | Mapping[str, ParameterNormalizer] = True,
        bounds: str = "prior",
        drop_last: bool = False,
    ):
        self.dataset = dataset
        self.batch_size = _int_arg("batch_size", batch_size, 1)
        self.seed = _int_arg("seed", seed, 0)
        self.buffer_chunks = _int_arg("buffer_chunks", buffer_chunks, 1)
        self.drop_last = bool(drop_last)
        if shuffle not in SHUFFLE_MODES:
            raise ReadArgumentError(f"shuffle must be one of {', '.join(SHUFFLE_MODES)}; got {shuffle!r}")
        self.shuffle = shuffle
        # ---- worlds and mixing weights
        if worlds is not None:
            worlds = _names_arg("worlds", worlds)
        if isinstance(mixing, Mapping):
            for w in mixing:
                dataset[w]  # unknown or unopened world -> ReadArgumentError
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
        elif mixing in MIXING_RULES:
            self.mixing = mixing
            weights = None
        else:
            raise ReadArgumentError(
                f"mixing must be one of {', '.join(MIXING_RULES)} or a mapping {{world: weight}}; got {mixing!r}"
            )
        names = list(dataset.worlds if worlds is None else worlds)
        if not names:
            raise ReadArgumentError("worlds: no world selected")
        for w in names:
            dataset[w]
        if len(set(names)) != len(names):
            raise ReadArgumentError(f"worlds: repeated world in {names}")
        self.worlds: tuple[str, ...] = tuple(w for w in dataset.worlds if w in names)
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
            for s in _names_arg("split", split):
                dataset[self.worlds[0]].check_split(s)
        T = dataset.T
        if seq_len is None:
            if stride is not None:
                raise ReadArgumentError(f"stride={stride!r} given without seq_len; windows need seq_len")
            self.seq_len, self.stride, starts = None, None, None
        else:
            self.seq_len = _int_arg("seq_len", seq_len, 1)
            if self.seq_len > T:
                raise ReadArgumentError(f"seq_len must be <= T = {T} (trajectory length); got {seq_len!r}")
            self.stride = self.seq_len if stride is None else _int_arg("stride", stride, 1)
            starts = np.arange(0, T - self.seq_len + 1, self.stride, dtype=np.int64)
        self.arrays = tuple(dict.fromkeys(_names_arg("arrays", arrays)))
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
        if normalize is True:
            self.normalizers = {w: dataset[w].normalizer(bounds=bounds) for w in self.worlds}
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
                f"normalize must be True, False or {{world: ParameterNormalizer}}; got {normalize!r}"
            )
        if self.normalizers and "theta" not in self.arrays:
            raise ReadArgumentError("normalize needs 'theta' in arrays (or pass normalize=False)")
        # ---- items and epoch layout
        self._items = {
            w: _WorldItems(
                w, dataset[w].split_indices(split), starts, dataset[w].arrays["theta"].chunk_rows, dataset[w].n_samples
            )
            for w in self.worlds
        }
        self.pass_batches = {w: it.pass_batches(self.batch_size, self.drop_last) for w, it in self._items.items()}
        if self.weights is None:
            if num_batches is not None:
                raise ReadArgumentError(
                    f"num_batches={num_batches!r} applies to weighted mixing ('uniform' or "
                    f"weights); a proportional epoch is one pass over each split"
                )
            self.counts = dict(self.pass_batches)
        else:
            for w in self.worlds:
                if self.weights[w] > 0 and self.pass_batches[w] == 0:
                    raise ReadArgumentError(
                        f"world {w!r} has {self._items[w].n_items} items in split {split!r}, "
                        f"not enough for one batch of {self.batch_size}" + (" with drop_last" if self.drop_last else "")
                    )
            n = (
                sum(self.pass_batches[w] for w in self.worlds if self.weights[w] > 0)
                if num_batches is None
                else _int_arg("num_batches", num_batches, 1)
            )
            if n > MAX_NUM_BATCHES:
                raise ReadArgumentError(
                    f"num_batches: an epoch of {n} batches is more than {MAX_NUM_BATCHES:,} "
                    f"(its schedule is held in memory); use more epochs of fewer batches"
                )
            self.counts = self._apportion(n)

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
        return sum(self.counts.values())

    @property
    def n_items(self) -> dict[str, int]:
        """Items (samples, or windows) per world in one pass over the split."""
        return {w: it.n_items for w, it in self._items.items()}

    def __repr__(self) -> str:
        win = f", seq_len={self.seq_len}, stride={self.stride}" if self.seq_len else ""
        return (
            f"<TrainingView split={self.split!r} batch_size={self.batch_size} mixing={self.mixing} "
            f"shuffle={self.shuffle}{win}: {len(self)} batches/epoch {self.counts}>"
        )

    def schedule(self, epoch: int = 0) -> tuple[str, ...]:
        """The world of every batch of ``epoch``, in order (no data is read)."""
        epoch = _int_arg("epoch", epoch, 0)
        seq = np.repeat(np.arange(len(self.worlds)), [self.counts[w] for w in self.worlds])
        seq = seq[_rng(self.seed, SCHEDULE_KEY, epoch).permutation(seq.size)]
        return tuple(self.worlds[i] for i in seq)

    # ---- per-world item order --------------------------------------------------------------------
    def _pass(self, items: _WorldItems, rng: np.random.Generator) -> Iterator[np.ndarray]:
        B, n = self.batch_size, items.n_items
        if self.shuffle != "chunks":
            order = rng.permutation(n) if self.shuffle == "global" else np.arange(n)
            stop = (n // B) * B if self.drop_last else n
            for lo in range(0, stop, B):
                yield order[lo : lo + B]
            return
        nw = items.n_windows
        n_chunks = -(-items.n_samples // items.chunk_rows)
        edges = np.searchsorted(items.samples, np.arange(n_chunks + 1) * items.chunk_rows)
        chunk_order = rng.permutation(n_chunks)
        carry = np.empty(0, dtype=np.int64)
        for g in range(0, n_chunks, self.buffer_chunks):
            pos = np.concatenate([np.arange(edges[c], edges[c + 1]) for c in chunk_order[g : g + self.buffer_chunks]])
            buf = (pos[:, None] * nw + np.arange(nw)[None, :]).ravel()
            buf = np.concatenate([carry, buf[rng.permutation(buf.size)]])
            full = (buf.size // B) * B
            for lo in range(0, full, B):
                yield buf[lo : lo + B]
            carry = buf[full:]
        if carry.size and not self.drop_last:
            yield carry

    def _stream(self, world: str, epoch: int) -> Iterator[np.ndarray]:
        items, p = self._items[world], 0
        while True:  # weighted mixing may need more than one pass; each pass is reshuffled
            yield from self._pass(items, _rng(self.seed, SHUFFLE_KEY, stable_key(world), epoch, p))
            p += 1

    def plan(
        self, epoch: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
        """``(world, sample indices, window starts or None)`` of every batch of ``epoch``; reads no data."""
        k, n_shards = self._check_shard(shard)
        return self._plan(self.schedule(epoch), epoch, k, n_shards)

    def _plan(self, schedule: tuple[str, ...], epoch: int, k: int, n_shards: int):
        streams = {w: self._stream(w, epoch) for w in self.worlds}
        for b, w in enumerate(schedule):
            items = next(streams[w])
            if b % n_shards == k:
                index, start = self._items[w].decode(items)
                yield w, index, start

    @staticmethod
    def _check_shard(shard) -> tuple[int, int]:
        try:
            k, n = shard
        except (TypeError, ValueError):
            raise ReadArgumentError(f"shard must be (index, count); got {shard!r}") from None
        n = _int_arg("shard count", n, 1)
        k = _int_arg("shard index", k, 0)
        if k >= n:
            raise ReadArgumentError(f"shard index must be < shard count {n}; got {k}")
        return k, n

    # ---- data --------------------------------------------------------------------------------
    def iter(
        self, epoch: int = 0, shard: tuple[int, int] = (0, 1), stats: ReadStats | None = None
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """``(world, batch)`` for every batch of ``epoch`` (every ``shard[1]``-th from ``shard[0]``)."""
        return self._iter(self.plan(epoch, shard), stats)

    def _iter(self, plan, stats: ReadStats | None):
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

    def __iter__(self) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        return self.iter(0)


def iter_batches(
    dataset: Dataset, split: str | Sequence[str] | None = "train", *, epoch: int = 0, **options
) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Shortcut for ``TrainingView(dataset, split, **options).iter(epoch)``."""
    return TrainingView(dataset, split, **options).iter(epoch)
