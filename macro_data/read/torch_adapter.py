"""Optional PyTorch adapter: a :class:`~macro_data.read.training.TrainingView` as an ``IterableDataset``.

PyTorch is not a dependency of macro_data; it is imported only when :func:`torch_dataset` is
called (or ``TorchBatches`` is first looked up), and a clear error says so if it is missing.

The dataset yields whole batches (dicts of tensors plus ``"world"``), so use it with
``torch.utils.data.DataLoader(ds, batch_size=None)``. With ``num_workers = W > 1`` worker ``k``
produces batches ``k, k + W, ...`` of the epoch's plan, so the workers together yield every batch
exactly once (in an interleaved order that the DataLoader restores round-robin). Each worker keeps
its own chunk cache, so with ``shuffle="chunks"`` every worker may decode every chunk: prefer
``num_workers=0`` or ``1`` unless decoding is the bottleneck. Call ``set_epoch(e)`` before each
epoch for a new order.
"""

from __future__ import annotations

from typing import Any

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
            "dependency of macro_data): pip install torch"
        ) from exc
    return torch


def _build_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    torch = _import_torch()

    class TorchBatches(torch.utils.data.IterableDataset):
        """Batches of a :class:`TrainingView` as dicts of tensors (plus ``"world"``: the world name)."""

        def __init__(self, view, epoch: int = 0):
            super().__init__()
            self.view = view
            self.epoch = epoch

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __len__(self) -> int:
            return len(self.view)

        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            shard = (info.id, info.num_workers) if info is not None else (0, 1)
            for world, batch in self.view.iter(self.epoch, shard=shard):
                out = {k: torch.from_numpy(v) for k, v in batch.items()}
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


def torch_dataset(view, epoch: int = 0):
    """A ``torch.utils.data.IterableDataset`` over ``view`` (a :class:`TrainingView`)."""
    return _build_class()(view, epoch)
