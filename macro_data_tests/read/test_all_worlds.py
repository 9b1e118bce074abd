"""The reading API on the six-world dataset the Dagster pipeline builds (``tiny_dataset``)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import macro_data.read as mdr
from macro_data.worlds import WORLD_IDS, get_world

pytestmark = pytest.mark.slow  # reads a dataset of every world built through Dagster


def test_every_world_reads_verifies_and_mixes(tiny_dataset):
    _, _, folder = tiny_dataset
    ds = mdr.open_dataset(folder, verify=True)
    assert set(ds.worlds) == set(WORLD_IDS)
    ref = {
        (w, a): zarr.open_array(str(folder / f"{w}.zarr" / a), mode="r")[...] for w in ds.worlds for a in ds[w].arrays
    }
    view = ds.training_view(["train", "val"], batch_size=64, seed=0)
    seen = {w: [] for w in ds.worlds}
    for world, batch in view.iter(0):
        P, S = len(get_world(world).parameters), len(get_world(world).shocks)
        assert batch["theta"].shape[1] == batch["theta_normalized"].shape[1] == P
        assert batch["shocks"].shape[2] == S and batch["irfs"].shape[1:] == (S, 9, 3)
        for a in ("theta", "shocks", "trajectories", "irfs"):
            np.testing.assert_array_equal(batch[a], ref[(world, a)][batch["index"]])
        norm = view.normalizers[world]
        bounded = norm.normalized
        assert np.all(np.abs(batch["theta_normalized"][:, bounded]) <= np.sqrt(3) + 1e-5)
        seen[world].append(batch["index"])
    for w in ds.worlds:
        labels = ref[(w, "split")]
        expected = np.flatnonzero(labels <= 1)
        got = np.concatenate(seen[w]) if seen[w] else np.empty(0, np.int64)
        assert np.array_equal(np.sort(got), expected)


def test_per_period_metadata_is_windowed(tiny_dataset):
    _, _, folder = tiny_dataset
    ds = mdr.open_dataset(folder, worlds=["switching", "zlb"])
    for world, meta in (("switching", "regime"), ("zlb", "binding")):
        full = zarr.open_array(str(folder / f"{world}.zarr" / meta), mode="r")[...]
        view = ds.training_view(
            None, batch_size=50, worlds=[world], seq_len=10, stride=7, arrays=("theta", meta, "trajectories")
        )
        for _, batch in view.iter(0):
            assert batch[meta].dtype == full.dtype and batch[meta].shape[1] == 10
            for r in range(batch["index"].size):
                i, s = batch["index"][r], batch["start"][r]
                np.testing.assert_array_equal(batch[meta][r], full[i, s : s + 10])
