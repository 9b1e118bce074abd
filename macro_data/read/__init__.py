"""Reading macro_data datasets: lazy labelled arrays, verification, training batches (no Dagster here).

>>> import macro_data.read as mdr
>>> ds = mdr.open_dataset("datasets/build/default/1.0.0")           # folder or its manifest.json
>>> ds.worlds                                                         # ('lss', 'var', 'nk', ...)
>>> traj = ds["nk"].arrays["trajectories"]                            # lazy: nothing read yet
>>> traj.dims, traj.coords["observable"], traj.units                 # names and units
>>> traj[:10, :, 0]                                                   # reads one chunk
>>> ds["nk"].split_indices("train")                                   # sorted int64 indices
>>> for world, batch in ds.training_view("train", batch_size=256, seed=0).iter(epoch=0): ...

See ``docs/using_the_data.md``; the rules (mixing, shuffling, windows, normalization) are in
:mod:`macro_data.read.training` and :mod:`macro_data.read.normalize`.
"""

from macro_data.read.dataset import Dataset, LazyArray, WorldData, load_manifest, open_dataset
from macro_data.read.errors import DatasetNotFoundError, IntegrityError, ReadArgumentError, ReadError
from macro_data.read.normalize import ParameterNormalizer, discrete_uniform_moments, uniform_moments
from macro_data.read.training import ReadStats, TrainingView, iter_batches


def torch_dataset(view, epoch: int = 0):
    """PyTorch ``IterableDataset`` over a :class:`TrainingView` (imports torch only now)."""
    from macro_data.read.torch_adapter import torch_dataset as make

    return make(view, epoch)


__all__ = [
    "Dataset",
    "DatasetNotFoundError",
    "IntegrityError",
    "LazyArray",
    "ParameterNormalizer",
    "ReadArgumentError",
    "ReadError",
    "ReadStats",
    "TrainingView",
    "WorldData",
    "discrete_uniform_moments",
    "iter_batches",
    "load_manifest",
    "open_dataset",
    "torch_dataset",
    "uniform_moments",
]
