"""Map-style random access to a mixed view's items, through a bounded cache of decoded chunks.

``mds = ds.map_dataset("train", regime="A", cache_bytes=1 << 30)`` gives ``len(mds)`` items (the
view's items: samples, or ``(sample, start)`` windows, of every world, world after world in the
view's order). ``mds[i]`` is one item (the mixed-batch contract of :mod:`macro_data.read.batches`
without the batch axis); ``mds.__getitems__(indices)`` (what PyTorch's DataLoader calls with a
sampler) returns the whole mixed batch at once, built with vectorized gathers.

Use with PyTorch (torch stays optional)::

    sampler = torch.utils.data.DistributedSampler(mds, shuffle=True, seed=0)
    loader = torch.utils.data.DataLoader(mds, batch_size=256, sampler=sampler, collate_fn=mdr.torch_collate)
    for epoch in range(E):
        sampler.set_epoch(epoch); mds.set_epoch(epoch)   # new target shocks each epoch

The cache holds decoded chunks up to ``cache_bytes`` in total, least recently used evicted first
(plus the one chunk being read). Each process keeps its own: with DataLoader workers, memory is
``num_workers * cache_bytes``. When the cache holds every chunk an epoch touches, each chunk is
decoded once; with a smaller cache, random access re-decodes chunks that were evicted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from macro_data.read._args import int_arg
from macro_data.read.batches import ChunkCache, ReadStats
from macro_data.read.errors import ReadArgumentError
from macro_data.read.training import TrainingView

DEFAULT_CACHE_BYTES = 256 << 20


class MapDataset:
    """Random access (``__len__``, ``__getitem__``, ``__getitems__``) to the items of a mixed view.

    Parameters
    ----------
    view : TrainingView
        A view with ``batches="mixed"``: its split, worlds, windows, regime, history, normalization
        and seed apply; its batch size, mixing and shuffle do not (the sampler decides the order).
    cache_bytes : int
        Bound on the decoded chunks kept in memory.
    """

    def __init__(self, view: TrainingView, cache_bytes: int = DEFAULT_CACHE_BYTES):
        if not isinstance(view, TrainingView) or not view.mixed:
            raise ReadArgumentError(
                "view: a map-style dataset serves mixed batches; build it from a TrainingView with "
                "batches='mixed' (dataset.map_dataset(split, ...) does)"
            )
        self.view = view
        self.cache_bytes = int_arg("cache_bytes", cache_bytes, 1)
        self.worlds = view.worlds
        self._items = [view._items[w] for w in view.worlds]
        self._offsets = np.concatenate([[0], np.cumsum([it.n_items for it in self._items])]).astype(np.int64)
        self.epoch = 0
        self.stats: ReadStats | None = None
        self._cache: ChunkCache | None = None

    # ---- description ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return (
            f"<MapDataset {len(self)} items of split {self.view.split!r}, worlds {list(self.worlds)}, "
            f"regime={self.view.regime!r}, cache {self.cache_bytes / 2**20:.0f} MiB>"
        )

    @property
    def offsets(self) -> dict[str, tuple[int, int]]:
        """``{world: (first item, end item)}``: where each world's items sit in ``0 .. len - 1``."""
        return {w: (int(self._offsets[k]), int(self._offsets[k + 1])) for k, w in enumerate(self.worlds)}

    @property
    def cache(self) -> ChunkCache:
        if self._cache is None:
            self._cache = ChunkCache(max_bytes=self.cache_bytes, stats=self.stats)
        return self._cache

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the target shocks (as ``DistributedSampler.set_epoch``).

        Parameters
        ----------
        epoch : int
            The epoch (``>= 0``).
        """
        self.epoch = int_arg("epoch", epoch, 0)

    def __getstate__(self) -> dict:  # DataLoader workers start with an empty cache of their own
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    # ---- access -----------------------------------------------------------------------------------
    def _locate(self, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        try:
            idx = np.asarray(indices)
        except (TypeError, ValueError) as exc:
            raise ReadArgumentError(f"indices must be a 1-d sequence of integers ({exc})") from None
        n = len(self)
        if idx.ndim != 1 or (idx.size and (idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer))):
            raise ReadArgumentError(
                f"indices must be a 1-d sequence of integers; got dtype {idx.dtype}, shape {idx.shape}"
            )
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise ReadArgumentError(f"index {bad} out of range for {n} items")
        idx = idx.astype(np.int64)
        idx = np.where(idx < 0, idx + n, idx)
        world_pos = np.searchsorted(self._offsets, idx, side="right") - 1
        local = idx - self._offsets[world_pos]
        index = np.empty(idx.size, dtype=np.int64)
        with_start = self.view.seq_len is not None or self.view.state_irfs
        start = np.empty(idx.size, dtype=np.int64) if with_start else None
        for w in np.unique(world_pos):
            g = np.flatnonzero(world_pos == w)
            i, s = self._items[w].decode(local[g])
            index[g] = i
            if start is not None:
                start[g] = s
        return world_pos, index, start

    def __getitems__(self, indices: Sequence[int]) -> dict:
        """The mixed batch of the items ``indices`` (in that order): see :mod:`macro_data.read.batches`.

        Parameters
        ----------
        indices : sequence of int
            Item positions in ``0 .. len - 1`` (negative counts from the end).

        Returns
        -------
        dict
            The mixed batch.
        """
        world_pos, index, start = self._locate(indices)
        batch = self.view.batcher.build(self.cache, world_pos, index, start, self.epoch)
        if self.stats is not None:
            self.stats.batches += 1
        return batch

    batch = __getitems__

    def __getitem__(self, i: int) -> dict:
        """One item: the mixed-batch keys without the batch axis (lists become one value, counts ints)."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise ReadArgumentError(f"index must be an integer; got {i!r}")
        batch = self.__getitems__([i])
        return {k: (v[0].item() if isinstance(v, np.ndarray) and v.ndim == 1 else v[0]) for k, v in batch.items()}
