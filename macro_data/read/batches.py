"""Batch assembly from decoded chunks: chunk caches, gathers, and the mixed-world batch.

Everything here is vectorized over the items of a batch; the only Python loops run over worlds
(at most a handful per batch) and over the storage chunks a batch touches.

**Mixed batch** (``batches="mixed"``), for B items drawn from several worlds; P_max and S_max are
fixed per view (the maxima over its worlds, or larger values asked for):

=================  ====================  =======  =============================================================
key                shape                 dtype    content
=================  ====================  =======  =============================================================
``world_ids``      list of B             str      the item's world
``world_index``    (B,)                  int64    the world's position in the dataset's world list (manifest order)
``theta``          (B, P_max)            float32  normalized parameters, zero after the world's own P_w
``theta_mask``     (B, P_max)            bool     True on the world's own parameters
``irf``            (B, S_max, H+1, 3)    float32  impulse responses, zero for shocks beyond the world's S_w
``irf_mask``       (B, S_max)            bool     True on the world's own shocks
``shock_idx``      (B,)                  int64    the target shock: the target is ``irf[b, shock_idx[b]]``
``eps_sequence``   (B, L, S_max)         float32  innovations over the item's window (L = seq_len or T)
``history``        (B, k, 3)             float32  observed history (see below), zero where masked
``history_mask``   (B, k)                bool     True where ``history`` holds a period
``index``          (B,)                  int64    the sample index within its world
``split``          list of B             str      the sample's split
``start``          (B,)                  int64    the window start (views with windows only)
=================  ====================  =======  =============================================================

``history`` without windows is ``trajectories[0:k]``; with windows it is the k periods before the
window start, ``trajectories[start-k:start]``, padded at the front (and masked) where the series
begins later, so the last row is always the most recent period. With ``state_irfs=True`` the items
are (sample, state date t): ``start = t``, ``history = trajectories[t-k:t]`` and ``irf`` is
``irfs_state`` of that date (the response from the state the history leads to).

Target shocks: with ``target_shock="uniform"`` the shock of an item is
``floor(u * S_w)`` with ``u`` a uniform number in [0, 1) computed by a counter-based hash
(SplitMix64) of ``(seed, epoch, world, sample index, window start)``: every item gets the same
shock in an epoch whatever the order, batch, shard or worker it is read in (iterable and
map-style alike), a fresh draw every epoch, uniform over the world's own shocks.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from macro_data.read.normalize import ParameterNormalizer
from macro_data.read.stats import OutputNormalizer
from macro_data.read.store import DatasetCore, LazyArray

REGIMES: dict[str | None, tuple[str, ...]] = {
    "A": ("theta", "eps_sequence"),
    "B1": ("history",),
    "C": ("theta", "history"),
    None: ("theta", "eps_sequence", "history"),  # everything the view can give
}
TARGET_SHOCKS = ("uniform", "first")


def world_key(name: str) -> int:
    """A stable 32-bit number from a world's name (the seeding's world key: never a list position).

    Parameters
    ----------
    name : str
        The world's id.

    Returns
    -------
    int
    """
    return int.from_bytes(hashlib.sha256(f"macro_data/world/{name}".encode()).digest()[:4], "big")


@dataclass
class ReadStats:
    """What an iteration decoded: ``chunk_reads[(world, array, chunk)]`` counts and bytes."""

    chunk_reads: Counter = field(default_factory=Counter)
    bytes_decoded: int = 0
    batches: int = 0

    @property
    def total_chunk_reads(self) -> int:
        return sum(self.chunk_reads.values())


class ChunkCache:
    """Decoded chunks, least recently used evicted first.

    Bounded either per array (``per_array={(world, array): chunks}``: what an iterable view needs,
    its chunk-shuffle buffers) or in total bytes (``max_bytes``: the map-style dataset's cache).

    Parameters
    ----------
    max_bytes : int, optional
        Bound on the decoded bytes kept.
    per_array : Mapping[tuple of str, int], optional
        Bound on the chunks kept per ``(world, array)``.
    stats : ReadStats, optional
        Where the chunk reads are counted.
    """

    def __init__(
        self,
        *,
        max_bytes: int | None = None,
        per_array: Mapping[tuple[str, str], int] | None = None,
        stats: ReadStats | None = None,
    ):
        self.max_bytes = max_bytes
        self.per_array = dict(per_array or {})
        self.stats = stats
        self._lru: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()
        self._count: Counter = Counter()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __contains__(self, key: tuple[str, str, int]) -> bool:
        return key in self._lru

    def get(self, arr: LazyArray, c: int) -> np.ndarray:
        """Chunk ``c`` of ``arr``, decoded once and kept while the bound allows.

        Parameters
        ----------
        arr : LazyArray
            The array.
        c : int
            The chunk's index along ``sample``.

        Returns
        -------
        numpy.ndarray
            The decoded chunk (read-only).
        """
        key = (arr.world, arr.name, c)
        block = self._lru.get(key)
        if block is not None:
            self._lru.move_to_end(key)
            self.hits += 1
            return block
        self.misses += 1
        block = arr.read_chunk(c)
        if self.stats is not None:
            self.stats.chunk_reads[key] += 1
            self.stats.bytes_decoded += block.nbytes
        self._lru[key] = block
        self.nbytes += block.nbytes
        self._count[key[:2]] += 1
        self._evict(key)
        return block

    def _evict(self, newest: tuple[str, str, int]) -> None:
        limit = self.per_array.get(newest[:2])
        if limit is not None and self._count[newest[:2]] > limit:
            victim = next(k for k in self._lru if k[:2] == newest[:2])
            self._drop(victim)
        if self.max_bytes is not None:
            while self.nbytes > self.max_bytes and len(self._lru) > 1:
                self._drop(next(iter(self._lru)))

    def _drop(self, key: tuple[str, str, int]) -> None:
        block = self._lru.pop(key)
        self.nbytes -= block.nbytes
        self._count[key[:2]] -= 1

    def clear(self) -> None:
        self._lru.clear()
        self._count.clear()
        self.nbytes = 0


FEW_CHUNKS = 8  # up to this span of chunks, rows are grouped by one comparison per chunk, else by a sort


def chunk_groups(index: np.ndarray, chunk_rows: int) -> list[tuple[int, np.ndarray | None]]:
    """``(chunk, positions in index)`` per chunk the rows ``index`` fall in (``None``: all of them).

    Arrays of one world share their chunk rows, so a batch computes this once per world and reuses it
    for every array (:func:`gather`'s ``groups``)."""
    if not index.size:
        return []
    chunk_of = index // chunk_rows
    lo, hi = int(chunk_of.min()), int(chunk_of.max())
    if lo == hi:
        return [(lo, None)]
    if hi - lo < FEW_CHUNKS:
        groups = [(c, np.flatnonzero(chunk_of == c)) for c in range(lo, hi + 1)]
        return [(c, g) for c, g in groups if g.size]
    order = np.argsort(chunk_of, kind="stable")
    ordered = chunk_of[order]
    cuts = [0, *(np.flatnonzero(ordered[1:] != ordered[:-1]) + 1).tolist(), order.size]
    return [(int(ordered[a]), order[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def gather(
    cache: ChunkCache,
    arr: LazyArray,
    index: np.ndarray,
    t0: np.ndarray | None = None,
    length: int | None = None,
    out: np.ndarray | None = None,
    groups: list[tuple[int, np.ndarray | None]] | None = None,
) -> np.ndarray:
    """Rows ``index`` of ``arr``; with ``t0`` and ``length``, periods ``t0 .. t0 + length - 1`` of each
    (axis 1, every ``t0 >= 0`` and ``t0 + length <= T``). Written into ``out`` when given; ``groups``:
    :func:`chunk_groups` of ``index`` for ``arr``'s chunk rows, if already known.

    Chunks already cached are visited first, so loading the others can only evict chunks this gather
    is done with."""
    windowed = t0 is not None
    shape = (index.size, length, *arr.shape[2:]) if windowed else (index.size, *arr.shape[1:])
    if out is None:
        out = np.empty(shape, dtype=arr.dtype)
    if not index.size:
        return out
    if groups is None:
        groups = chunk_groups(index, arr.chunk_rows)
    if len(groups) > 1:
        groups = sorted(groups, key=lambda cg: ((arr.world, arr.name, cg[0]) not in cache, cg[0]))
    offsets = np.arange(length) if windowed else None
    for c, g in groups:
        block = cache.get(arr, c)
        base = c * arr.chunk_rows
        rows = (index if g is None else index[g]) - base
        if windowed:
            t = t0 if g is None else t0[g]
            values = block[rows[:, None], t[:, None] + offsets[None, :]]
            if g is None:
                out[...] = values
            else:
                out[g] = values
        elif g is None:
            np.take(block, rows, axis=0, out=out, mode="clip")  # rows are in range: no buffered copy
        else:
            out[g] = block[rows]
    return out


def target_shocks(
    seed: int, epoch: int, keys: np.ndarray, index: np.ndarray, start: np.ndarray | None, n_shocks: np.ndarray
) -> np.ndarray:
    """The target shock of each item (module docstring): ``floor(u * n_shocks)``, ``u`` from a
    SplitMix64 hash of ``(seed, epoch, world key, sample index, window start + 1 or 0)``."""
    m1, m2, golden = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)

    def mix(x: np.ndarray) -> np.ndarray:
        x = x ^ (x >> np.uint64(30))
        x = x * m1
        x = x ^ (x >> np.uint64(27))
        x = x * m2
        return x ^ (x >> np.uint64(31))

    with np.errstate(over="ignore"):
        h = mix(np.full(index.shape, seed, dtype=np.uint64) * golden + np.uint64(epoch))
        h = mix(h ^ mix(keys.astype(np.uint64) + golden))
        h = mix(h ^ mix(index.astype(np.uint64) + golden))
        s = np.zeros(index.shape, np.uint64) if start is None else start.astype(np.uint64) + np.uint64(1)
        h = mix(h ^ mix(s + golden))
    u = (h >> np.uint64(11)).astype(np.float64) * (2.0**-53)
    return np.minimum((u * n_shocks).astype(np.int64), n_shocks - 1)


class MixedBatcher:
    """Builds mixed-world batches (module docstring) for the worlds of a view.

    ``theta_norm`` maps each world to its :class:`ParameterNormalizer` (or is empty: theta in natural
    units); ``output_norm`` maps each world to its :class:`OutputNormalizer` (or is empty: outputs in
    natural units).
    """

    def __init__(
        self,
        dataset: DatasetCore,
        worlds: Sequence[str],
        *,
        regime: str | None,
        history: int | None,
        seq_len: int | None,
        theta_norm: Mapping[str, ParameterNormalizer],
        output_norm: Mapping[str, OutputNormalizer],
        target_shock: str,
        seed: int,
        p_max: int,
        s_max: int,
        state_irfs: bool = False,
    ):
        self.dataset = dataset
        self.state_irfs = state_irfs
        self.worlds = tuple(worlds)
        self.data = [dataset[w] for w in self.worlds]
        keys = set(REGIMES[regime])
        if history is None:
            keys.discard("history")
        self.keys = keys
        self.history = history
        self.seq_len = seq_len
        self.theta_norm = dict(theta_norm)
        self.output_norm = dict(output_norm)
        self.target_shock = target_shock
        self.seed = seed
        self.p_max, self.s_max = p_max, s_max
        self.T, self.H = dataset.T, dataset.H
        self.n_params = np.array([len(d.parameter_names) for d in self.data], dtype=np.int64)
        self.n_shocks = np.array([len(d.shocks) for d in self.data], dtype=np.int64)
        self.param_mask = np.arange(p_max)[None, :] < self.n_params[:, None]
        self.shock_mask = np.arange(s_max)[None, :] < self.n_shocks[:, None]
        self.dataset_index = np.array([d.index for d in self.data], dtype=np.int64)
        self.keys_u32 = np.array([world_key(w) for w in self.worlds], dtype=np.uint64)
        self.names = np.array(self.worlds, dtype=object)
        labels = dataset.manifest["split_labels"]
        self.split_names = np.empty(max(labels.values()) + 1, dtype=object)
        for name, label in labels.items():
            self.split_names[label] = name

    def arrays(self) -> tuple[str, ...]:
        """The stored arrays the batches are made of."""
        need = ["irfs_state", "state_dates", "split"] if self.state_irfs else ["irfs", "split"]
        if "theta" in self.keys:
            need.append("theta")
        if "eps_sequence" in self.keys:
            need.append("shocks")
        if "history" in self.keys:
            need.append("trajectories")
        return tuple(need)

    def build(
        self, cache: ChunkCache, world_pos: np.ndarray, index: np.ndarray, start: np.ndarray | None, epoch: int
    ) -> dict:
        """The batch of items ``(worlds[world_pos[b]], index[b], start[b])``, in that order."""
        B = index.size
        L = self.seq_len if self.seq_len is not None else self.T
        out: dict = {
            "world_ids": self.names[world_pos].tolist(),
            "world_index": self.dataset_index[world_pos],
        }
        irf = np.zeros((B, self.s_max, self.H + 1, 3), dtype=np.float32)
        split = np.empty(B, dtype=np.int8)
        theta = np.zeros((B, self.p_max), dtype=np.float32) if "theta" in self.keys else None
        eps = np.zeros((B, L, self.s_max), dtype=np.float32) if "eps_sequence" in self.keys else None
        k = self.history
        hist = np.zeros((B, k, 3), dtype=np.float32) if "history" in self.keys else None
        hist_mask = np.zeros((B, k), dtype=bool) if hist is not None else None
        present = np.flatnonzero(np.bincount(world_pos, minlength=len(self.worlds)))
        for w in present:
            g = np.flatnonzero(world_pos == w) if present.size > 1 else np.arange(B)
            data, name = self.data[w], self.worlds[w]
            idx = index[g]
            st = start[g] if start is not None else None
            S, P = int(self.n_shocks[w]), int(self.n_params[w])
            onorm = self.output_norm.get(name)
            arrays = data.arrays
            # the chunk groups of these rows, computed once for every array with the same chunk rows
            target = "irfs_state" if self.state_irfs else "irfs"
            groups = chunk_groups(idx, arrays[target].chunk_rows)
            shared = {a: groups if arrays[a].chunk_rows == arrays[target].chunk_rows else None for a in self.arrays()}
            split[g] = gather(cache, arrays["split"], idx, groups=shared["split"])
            block = gather(cache, arrays[target], idx, groups=groups)
            if self.state_irfs:  # the item's state: the (first) state of the sample with date t = start
                dates = gather(cache, arrays["state_dates"], idx, groups=shared["state_dates"])
                state = np.argmax(dates == st[:, None], axis=1)
                block = block[np.arange(idx.size), state]
            irf[g, :S] = onorm.normalize_irf(block) if onorm is not None else block
            if theta is not None:
                t = gather(cache, arrays["theta"], idx, groups=shared["theta"])
                norm = self.theta_norm.get(name)
                theta[g, :P] = norm.normalize(t) if norm is not None else t
            if eps is not None:
                e = gather(cache, arrays["shocks"], idx, st, L if st is not None else None, groups=shared["shocks"])
                eps[g, :, :S] = onorm.normalize_eps(e) if onorm is not None else e
            if hist is not None:
                t0 = st - k if st is not None else np.zeros(idx.size, dtype=np.int64)
                valid = (t0[:, None] + np.arange(k)[None, :]) >= 0
                h = gather(cache, arrays["trajectories"], idx, np.maximum(t0, 0), k, groups=shared["trajectories"])
                if not valid.all():  # front padding: shift each row so its last period is the most recent
                    h = self._front_pad(h, t0, k)
                if onorm is not None:
                    h = onorm.normalize_history(h)
                h[~valid] = 0.0
                hist[g] = h
                hist_mask[g] = valid
        out["theta"] = theta
        out["theta_mask"] = self.param_mask[world_pos] if theta is not None else None
        out["irf"] = irf
        out["irf_mask"] = self.shock_mask[world_pos]
        if self.target_shock == "first":
            out["shock_idx"] = np.zeros(B, dtype=np.int64)
        else:
            out["shock_idx"] = target_shocks(
                self.seed, epoch, self.keys_u32[world_pos], index, start, self.n_shocks[world_pos]
            )
        out["eps_sequence"] = eps
        out["history"] = hist
        out["history_mask"] = hist_mask
        out["index"] = index
        out["split"] = self.split_names[split].tolist()
        if start is not None:
            out["start"] = start
        return {key: v for key, v in out.items() if v is not None}

    @staticmethod
    def _front_pad(h: np.ndarray, t0: np.ndarray, k: int) -> np.ndarray:
        """Rows gathered from period ``max(t0, 0)``: move each row's periods ``0 .. k - 1 + t0`` to the end
        (positions ``-t0 .. k - 1``) where ``t0 < 0``."""
        shift = np.maximum(-t0, 0)
        pos = np.arange(k)[None, :] - shift[:, None]  # source period for each output position
        return np.take_along_axis(h, np.maximum(pos, 0)[:, :, None], axis=1)
