"""Reading macro_data datasets: lazy labelled arrays, verification, training batches (no Dagster here).

>>> import macro_data.read as mdr
>>> ds = mdr.open_dataset("datasets/build/default/1.0.0")           # folder, manifest.json, or s3:// URL
>>> ds.worlds                                                         # ('lss', 'var', 'nk', ...)
>>> traj = ds["nk"].arrays["trajectories"]                            # lazy: nothing read yet
>>> traj.dims, traj.coords["observable"], traj.units                 # names and units
>>> traj[:10, :, 0]                                                   # reads one chunk
>>> ds["nk"].split_indices("train")                                   # sorted int64 indices
>>> for world, batch in ds.training_view("train", batch_size=256, seed=0).iter(epoch=0): ...
>>> view = ds.training_view("train", batches="mixed", regime="A", normalize="stats")
>>> for batch in view.iter(epoch=0): ...                              # several worlds per batch, padded
>>> mds = ds.map_dataset("train", regime="C", history=8)             # random access, bounded cache
>>> report = mdr.evaluate(predict, ds, "test_interpolation")          # metrics next to two baselines

See ``docs/using_the_data.md``; the rules are in :mod:`macro_data.read.training` (mixing,
shuffling, windows, sharding), :mod:`macro_data.read.batches` (the mixed batch),
:mod:`macro_data.read.normalize` and :mod:`macro_data.read.stats` (normalization),
:mod:`macro_data.read.evaluate` (metrics). Nothing here imports the build side (pipeline, worlds,
storage writers, Dagster); PyTorch is imported only by the adapters, when called.
"""

from macro_data.read.batches import REGIMES, ChunkCache, ReadStats
from macro_data.read.dataset import Dataset, LazyArray, WorldData, load_manifest, open_dataset
from macro_data.read.errors import DatasetNotFoundError, IntegrityError, ReadArgumentError, ReadError
from macro_data.read.evaluate import evaluate
from macro_data.read.mapstyle import MapDataset
from macro_data.read.normalize import ParameterNormalizer, discrete_uniform_moments, uniform_moments
from macro_data.read.stats import OutputNormalizer, WorldStats
from macro_data.read.torch_adapter import torch_collate, torch_dataset
from macro_data.read.training import TrainingView, iter_batches

__all__ = [
    "REGIMES",
    "ChunkCache",
    "Dataset",
    "DatasetNotFoundError",
    "IntegrityError",
    "LazyArray",
    "MapDataset",
    "OutputNormalizer",
    "ParameterNormalizer",
    "ReadArgumentError",
    "ReadError",
    "ReadStats",
    "TrainingView",
    "WorldData",
    "WorldStats",
    "discrete_uniform_moments",
    "evaluate",
    "iter_batches",
    "load_manifest",
    "open_dataset",
    "torch_collate",
    "torch_dataset",
    "uniform_moments",
]
