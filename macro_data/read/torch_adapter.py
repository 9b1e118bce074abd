"""Optional PyTorch adapters: a :class:`~macro_data.read.training.TrainingView` as an ``IterableDataset``,
and the collate function for the map-style dataset.

PyTorch is not a dependency of macro_data; it is imported only when :func:`torch_dataset` or
:func:`torch_collate` is called (or ``TorchBatches`` is first looked up), and a clear error says so
if it is missing.

**Iterable** (``torch_dataset(view)``): yields whole batches (tensors; in one-world views plus
``"world"``, the world name; in mixed views ``world_ids`` and ``split`` stay lists of names), so
use it with ``torch.utils.data.DataLoader(ds, batch_size=None)``. Sharding is automatic:

* **ranks**: when ``torch.distributed`` is initialized (or ``rank``/``world_size`` are given), rank
  r of R takes the r-th of R equal contiguous blocks of the epoch's batches (``floor(n / R)`` each,
  the last ``n mod R`` batches dropped), so every rank gets the same number of batches, disjoint
  from the others', and decodes only its part of the chunks;
* **DataLoader workers**: worker k of W takes batches ``k, k + W, ...`` of its rank's block, so
  the workers together yield the block exactly once (in an interleaved order that the DataLoader
  restores round-robin). Each worker keeps its own chunk cache and may decode the chunks of the
  whole block: prefer ``num_workers`` of 0 to 2 unless decoding is the bottleneck.

Call ``set_epoch(e)`` before each epoch for a new order; ``len()`` is the rank's batches.

**Map-style**: :class:`macro_data.read.mapstyle.MapDataset` needs no torch class (any object with
``__len__`` and ``__getitem__`` works with ``DataLoader`` and ``DistributedSampler``); pass
``collate_fn=torch_collate``: the DataLoader hands it the batch ``MapDataset.__getitems__`` built.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from macro_data.read.errors import ReadError

_CLASS: Any = None


class TorchNotAvailableError(ReadError, ImportError):
    """PyTorch was asked for but is not installed."""


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise TorchNotAvailableError(
            "the PyTorch adapter needs torch, which is not installed (it is not a "
            "dependency of macro_data): pip install torch (the CPU build is enough)"
        ) from exc
    return torch


def _tensors(torch, batch: dict) -> dict:
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


def distributed_rank(torch) -> tuple[int, int]:
    """``(rank, world size)`` of the initialized ``torch.distributed`` process group, else ``(0, 1)``.

    Parameters
    ----------
    torch : module
        The imported ``torch`` package.

    Returns
    -------
    tuple of int
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _build_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    torch = _import_torch()

    class TorchBatches(torch.utils.data.IterableDataset):
        """Batches of a :class:`TrainingView` as dicts of tensors, sharded by rank and worker."""

        def __init__(self, view, epoch: int = 0, rank: int | None = None, world_size: int | None = None):
            super().__init__()
            self.view = view
            self.epoch = epoch
            self.rank, self.world_size = rank, world_size

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def ranks(self) -> tuple[int, int]:
            """``(rank, world size)``: as given, else from ``torch.distributed``."""
            if self.rank is not None or self.world_size is not None:
                return (self.rank or 0, self.world_size or 1)
            return distributed_rank(torch)

        def __getstate__(self) -> dict:
            # Pickled for spawned DataLoader workers, in the main process: fix the rank there, since the
            # process group is not initialized in a spawned worker.
            state = dict(self.__dict__)
            if state["rank"] is None and state["world_size"] is None:
                state["rank"], state["world_size"] = distributed_rank(torch)
            return state

        def __len__(self) -> int:
            return self.view.batches_for(ranks=self.ranks())

        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            shard = (info.id, info.num_workers) if info is not None else (0, 1)
            batches = self.view.iter(self.epoch, shard=shard, ranks=self.ranks())
            if self.view.mixed:
                for batch in batches:
                    yield _tensors(torch, batch)
                return
            for world, batch in batches:
                out = _tensors(torch, batch)
                out["world"] = world
                yield out

    # Picklable by name (spawned DataLoader workers look it up here, which rebuilds it on demand).
    TorchBatches.__module__ = __name__
    TorchBatches.__qualname__ = "TorchBatches"
    _CLASS = TorchBatches
    return _CLASS


def __getattr__(name: str):
    if name == "TorchBatches":
        return _build_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def torch_dataset(view, epoch: int = 0, rank: int | None = None, world_size: int | None = None):
    """A ``torch.utils.data.IterableDataset`` over ``view``.

    Parameters
    ----------
    view : TrainingView
        One-world or mixed batches.
    epoch : int
        The first epoch (then ``set_epoch``).
    rank, world_size : int, optional
        Override the distributed rank and world size (default: from ``torch.distributed`` if it
        is initialized, else a single process).

    Returns
    -------
    torch.utils.data.IterableDataset
        Batches as dicts of tensors; use ``DataLoader(ds, batch_size=None)``.
    """
    return _build_class()(view, epoch, rank, world_size)


def torch_collate(batch: dict) -> dict:
    """``collate_fn`` for a map-style dataset: the mixed batch with NumPy arrays as tensors.

    Parameters
    ----------
    batch : dict
        What :meth:`MapDataset.__getitems__` returned.

    Returns
    -------
    dict
        The same keys; arrays as ``torch.Tensor`` (sharing memory), lists of names unchanged.
    """
    return _tensors(_import_torch(), batch)
