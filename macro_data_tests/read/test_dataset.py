"""Opening a dataset: labelled lazy arrays equal direct Zarr reads; splits; bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

import macro_data.read as mdr
from macro_data.errors import MacroDataError
from macro_data.worlds import get_world


def _z(folder, world, name):
    return zarr.open_array(str(folder / f"{world}.zarr" / name), mode="r")[...]


def test_open_by_folder_or_manifest_and_describe(read_dataset):
    ds = mdr.open_dataset(read_dataset)
    ds2 = mdr.open_dataset(read_dataset / "manifest.json")
    assert ds.worlds == ds2.worlds == ("lss", "nk", "rbc")
    assert (ds.name, ds.version, ds.T, ds.H) == ("readtest", "0.1.0", 32, 6)
    assert "nk" in ds and "var" not in ds and len(ds) == 3
    for w in ds.worlds:
        world, data = get_world(w), ds[w]
        assert data.parameter_names == world.parameter_names
        assert data.shocks == world.shocks
        assert data.observables == ("output", "inflation", "rate")
        theta, shocks, traj, irfs = (data[a] for a in ("theta", "shocks", "trajectories", "irfs"))
        assert theta.dims == ("sample", "param") and theta.coords["param"] == world.parameter_names
        assert theta.units == {p.name: p.unit for p in world.parameters}
        assert traj.dims == ("sample", "time", "observable")
        assert traj.coords["time"] == tuple(range(32)) and traj.coords["sample"] is None
        assert traj.units == {o.name: o.unit for o in world.observables}
        assert traj.units["output"] == "percent"
        assert irfs.dims == ("sample", "shock", "horizon", "observable")
        assert irfs.shape == (data.n_samples, len(world.shocks), 7, 3)
        assert irfs.coords["shock"] == world.shocks and irfs.coords["horizon"] == tuple(range(7))
        assert set(shocks.units.values()) == {"standard deviations"}
        assert traj.chunk_rows == 100 and traj.n_chunks == -(-data.n_samples // 100)
    rbc = ds["rbc"]["extras"]
    assert rbc.coords["extra"] == tuple(o.name for o in get_world("rbc").extras)


@pytest.mark.parametrize("world", ["nk", "rbc", "lss"])
def test_lazy_indexing_equals_direct_zarr_reads(read_dataset, world):
    ds = mdr.open_dataset(read_dataset)
    for name, arr in ds[world].arrays.items():
        full = _z(read_dataset, world, name)
        n = full.shape[0]
        np.testing.assert_array_equal(arr.read(), full)
        np.testing.assert_array_equal(arr[37:251], full[37:251])
        np.testing.assert_array_equal(arr[::-7], full[::-7])
        np.testing.assert_array_equal(arr[-3:], full[-3:])
        np.testing.assert_array_equal(arr[5], full[5])
        np.testing.assert_array_equal(arr[np.int64(n - 1)], full[n - 1])
        picks = [n - 1, 0, 150, 150, 99, 100]
        np.testing.assert_array_equal(arr[picks], full[picks])
        np.testing.assert_array_equal(arr.take(np.array(picks)), full[picks])
        mask = np.zeros(n, bool)
        mask[[3, 140, n - 2]] = True
        np.testing.assert_array_equal(arr[mask], full[mask])
        np.testing.assert_array_equal(arr[...], full)
        if full.ndim >= 2:
            np.testing.assert_array_equal(arr[10:20, 1], full[10:20, 1])
            np.testing.assert_array_equal(arr[..., 0], full[..., 0])
        assert arr.take([]).shape == (0, *full.shape[1:])


def test_split_indices_match_labels_and_manifest(read_dataset):
    ds = mdr.open_dataset(read_dataset)
    manifest = json.loads((read_dataset / "manifest.json").read_text())
    for w in ds.worlds:
        labels = _z(read_dataset, w, "split")
        seen = []
        for name, label in manifest["split_labels"].items():
            idx = ds[w].split_indices(name)
            np.testing.assert_array_equal(idx, np.flatnonzero(labels == label))
            assert idx.dtype == np.int64 and idx.size == manifest["worlds"][w]["splits"][name]["count"]
            assert ds[w].split_sizes[name] == idx.size
            seen.append(idx)
        np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(labels.size))
        np.testing.assert_array_equal(ds[w].split_indices(None), np.arange(labels.size))
        both = ds[w].split_indices(["val", "train"])
        np.testing.assert_array_equal(both, np.flatnonzero((labels == 0) | (labels == 1)))


def test_theta_moments_against_numpy(read_dataset):
    ds = mdr.open_dataset(read_dataset)
    theta = _z(read_dataset, "nk", "theta").astype(np.float64)
    idx = ds["nk"].split_indices("train")
    moments = ds["nk"].theta_moments("train")
    ref_mean, ref_sd = theta[idx].mean(axis=0), theta[idx].std(axis=0, ddof=1)
    for j, name in enumerate(ds["nk"].parameter_names):
        assert moments[name][0] == pytest.approx(ref_mean[j], rel=1e-12, abs=1e-15)
        assert moments[name][1] == pytest.approx(ref_sd[j], rel=1e-9)


def test_worlds_subset(read_dataset):
    ds = mdr.open_dataset(read_dataset, worlds=["rbc"])
    assert ds.worlds == ("rbc",)
    with pytest.raises(mdr.ReadArgumentError, match="'nk' is in the dataset but was not opened"):
        ds["nk"]


def test_bad_arguments_are_clear_errors(read_dataset, tmp_path):
    ds = mdr.open_dataset(read_dataset)
    with pytest.raises(mdr.ReadArgumentError, match="unknown world 'var'; opened worlds: lss, nk, rbc"):
        ds["var"]
    with pytest.raises(mdr.ReadArgumentError, match="worlds: 'foo' is not in dataset"):
        mdr.open_dataset(read_dataset, worlds=["foo"])
    with pytest.raises(mdr.ReadArgumentError, match="unknown split 'training'; splits: train, val"):
        ds["nk"].split_indices("training")
    with pytest.raises(mdr.ReadArgumentError, match="world 'nk': unknown array 'extras'"):
        ds["nk"]["extras"]
    with pytest.raises(mdr.ReadArgumentError, match="sample index 1000 out of range for 1000 samples"):
        ds["nk"]["theta"][[0, 1000]]
    with pytest.raises(mdr.ReadArgumentError, match="boolean sample mask"):
        ds["nk"]["theta"][np.ones(3, bool)]
    with pytest.raises(mdr.DatasetNotFoundError, match="no manifest.json found") as info:
        mdr.open_dataset(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert isinstance(info.value, MacroDataError) and isinstance(info.value, FileNotFoundError)
    (tmp_path / "nk.zarr").mkdir()
    with pytest.raises(mdr.DatasetNotFoundError, match="materialize dataset_manifest"):
        mdr.open_dataset(tmp_path)
    with pytest.raises(mdr.DatasetNotFoundError):
        mdr.open_dataset(tmp_path / "nowhere" / "manifest.json")
