"""Opening a published dataset, and the views over it (the reading API's front door).

A dataset folder ``<root>/<name>/<version>/`` (local, or the ``s3://`` root a build wrote) holds
``manifest.json`` and one Zarr v3 group per world. :func:`open_dataset` reads and validates the
manifest and opens every listed array's metadata (no data is read); the integrity rules are in
:mod:`macro_data.read.store`. :class:`Dataset` adds the training views
(:meth:`Dataset.training_view`, iterable) and map-style access (:meth:`Dataset.map_dataset`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from macro_data.read.manifest import MANIFEST_NAME, load_manifest, read_manifest, resolve_manifest
from macro_data.read.mapstyle import DEFAULT_CACHE_BYTES, MapDataset
from macro_data.read.store import DatasetCore, LazyArray, WorldData
from macro_data.read.training import TrainingView

__all__ = ["MANIFEST_NAME", "Dataset", "LazyArray", "WorldData", "load_manifest", "open_dataset"]


class Dataset(DatasetCore):
    """A published dataset: its manifest, per world a :class:`WorldData`, and views for training."""

    def training_view(self, split: str | Sequence[str] | None = "train", **options) -> TrainingView:
        """An iterable view of ``split`` (:class:`~macro_data.read.training.TrainingView`).

        Parameters
        ----------
        split : str, list of str or None
            A split name (``"train"``, ``"val"``, ``"test_interpolation"``, ...), a list, or ``None``.
        **options
            :class:`~macro_data.read.training.TrainingView` options (``batch_size``, ``batches``,
            ``regime``, ``history``, ``normalize``, ``normalize_outputs``, ``worlds``, ...).

        Returns
        -------
        TrainingView
        """
        return TrainingView(self, split, **options)

    def map_dataset(
        self, split: str | Sequence[str] | None = "train", *, cache_bytes: int = DEFAULT_CACHE_BYTES, **options
    ) -> MapDataset:
        """Map-style random access to the items of ``split`` as mixed batches
        (:class:`~macro_data.read.mapstyle.MapDataset`).

        Parameters
        ----------
        split : str, list of str or None
        cache_bytes : int
            Bound on the decoded chunks held in memory.
        **options
            :class:`~macro_data.read.training.TrainingView` options (``regime``, ``history``,
            ``normalize``, ``normalize_outputs``, ``worlds``, ``seq_len``, ``seed``...); ``batches``
            is ``"mixed"``.

        Returns
        -------
        MapDataset
        """
        return MapDataset(TrainingView(self, split, batches="mixed", **options), cache_bytes)


def open_dataset(path: str | os.PathLike, *, worlds: Sequence[str] | None = None, verify: bool = False) -> Dataset:
    """Open the dataset at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset folder ``<root>/<name>/<version>/`` or its ``manifest.json``; a local path or an
        ``s3://`` URL (object storage through fsspec, endpoint from ``MACRO_DATA_S3_ENDPOINT``).
    worlds : list of str, optional
        Open only these worlds (default: all).
    verify : bool
        Decode every array of the opened worlds and check its content hash against the manifest
        before returning (:class:`IntegrityError` otherwise); this reads the whole dataset once.

    Returns
    -------
    Dataset
    """
    manifest = resolve_manifest(path)
    ds = Dataset(manifest.parent, read_manifest(manifest), worlds)
    if verify:
        ds.verify()
    return ds
