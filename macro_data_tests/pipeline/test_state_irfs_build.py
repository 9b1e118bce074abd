"""State IRFs through the asset graph: a Dagster build with ``irfs: {states: K}`` whose validation passes,
arrays and manifest entries with dimension names and units, chunk-size independence, prefix stability,
and K = 0 leaving every dataset as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from macro_data.recipes import load_recipe
from macro_data.worlds import get_world
from macro_data_tests.conftest import build_dataset, build_world, write_recipe

WORLDS = ("nk", "switching", "zlb", "var")
STATE_ARRAYS = ("state_dates", "irfs_state", "states")


@pytest.fixture(scope="module")
def state_dataset(tmp_path_factory, instance):
    base = tmp_path_factory.mktemp("states")
    recipe = write_recipe(base, n=300, worlds=WORLDS, irfs={"states": 3})
    root = base / "root"
    for w in WORLDS:
        build_world(instance, recipe, root, w)
    build_dataset(instance, recipe, root)
    return recipe, root, root / "tiny" / "0.1.0"


def _group(dataset_dir, world):
    return zarr.open_group(str(dataset_dir / f"{world}.zarr"), mode="r")


def test_build_writes_state_arrays_and_validation_passes(state_dataset):
    _, _, dataset_dir = state_dataset
    report = json.loads((dataset_dir / "validation_report.json").read_text())
    assert report["status"] == "pass", report.get("summary")
    text = json.dumps(report)
    assert "irfs_state" in text  # re-simulated by reproducibility.simulation
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    assert "state_irfs" in manifest["conventions"]
    for w in WORLDS:
        world = get_world(w)
        g = _group(dataset_dir, w)
        entry = manifest["worlds"][w]
        labels = [f.name for f in world.state_labels]
        for name in (*STATE_ARRAYS, *labels):
            assert name in entry["arrays"], (w, name)
        assert list(g["irfs_state"].metadata.dimension_names) == ["sample", "state", "shock", "horizon", "observable"]
        assert list(g["states"].metadata.dimension_names) == ["sample", "state", "state_var"]
        assert g["irfs_state"].shape == (300, 3, len(world.shocks), 9, 3) and g["irfs_state"].dtype == np.float32
        assert g["state_dates"].dtype == np.int32
        assert g["states"].attrs["state_variables"] == [v.name for v in world.state_variables]
        assert len(g["states"].attrs["units"]) == len(world.state_variables)
        assert list(g["state_var"][:]) == [v.name for v in world.state_variables]
        assert entry["state_irfs"]["states"] == 3
        assert [v["name"] for v in entry["state_irfs"]["state_variables"]] == [v.name for v in world.state_variables]
        dates = g["state_dates"][:]
        assert dates.min() >= 1 and dates.max() < 24
        assert np.isfinite(g["irfs_state"][:]).all() and np.isfinite(g["states"][:]).all()
        if world.linear:  # the state IRFs of a linear world are its steady-state IRFs
            np.testing.assert_array_equal(g["irfs_state"][:], np.broadcast_to(g["irfs"][:][:, None], (300, 3, 3, 9, 3)))
    assert _group(dataset_dir, "switching")["state_regime"].dtype == np.int8
    zlb = _group(dataset_dir, "zlb")
    assert zlb["at_bound"].dtype == bool and zlb["at_bound"][:].any()
    binding = zlb["binding"][:]
    dates = zlb["state_dates"][:]
    np.testing.assert_array_equal(zlb["at_bound"][:], binding[np.arange(300)[:, None], dates - 1])


def _hashes(dataset_dir, world):
    g = _group(dataset_dir, world)
    names = ("trajectories", "irfs", *STATE_ARRAYS, *[f.name for f in get_world(world).state_labels])
    return {name: g[name].attrs["sha256"] for name in names}


@pytest.mark.parametrize("world", ["switching", "zlb"])
def test_state_arrays_do_not_depend_on_chunking(tmp_path, instance, state_dataset, world):
    _, _, dataset_dir = state_dataset
    recipe = write_recipe(
        tmp_path, n=300, worlds=WORLDS, irfs={"states": 3}, storage={"chunk_samples": 37, "clevel": 5}
    )
    build_world(instance, recipe, tmp_path / "root", world)
    assert _hashes(tmp_path / "root" / "tiny" / "0.1.0", world) == _hashes(dataset_dir, world)


def test_state_arrays_are_prefix_stable(tmp_path, instance, state_dataset):
    _, _, dataset_dir = state_dataset
    large = write_recipe(tmp_path, n=700, worlds=WORLDS, irfs={"states": 3})
    build_world(instance, large, tmp_path / "root", "zlb")
    a, b = _group(dataset_dir, "zlb"), _group(tmp_path / "root" / "tiny" / "0.1.0", "zlb")
    for name in ("trajectories", *STATE_ARRAYS, "at_bound"):
        np.testing.assert_array_equal(a[name][:], b[name][:300], err_msg=name)


def test_k_zero_leaves_the_dataset_as_it_was(tmp_path, instance, state_dataset):
    """States 0 written explicitly: the recipe hash of a recipe without the key, no state arrays, and the
    other arrays identical to those of a build with K > 0 (state IRFs never touch them)."""
    _, _, dataset_dir = state_dataset
    plain = write_recipe(tmp_path / "a", n=300, worlds=WORLDS)
    zero = write_recipe(tmp_path / "b", n=300, worlds=WORLDS, irfs={"states": 0})
    assert load_recipe(plain).sha256 == load_recipe(zero).sha256
    build_world(instance, zero, tmp_path / "root", "zlb")
    g = _group(tmp_path / "root" / "tiny" / "0.1.0", "zlb")
    assert not any(name in g for name in (*STATE_ARRAYS, "at_bound", "state_var"))
    s = _group(dataset_dir, "zlb")
    for name in ("theta", "shocks", "trajectories", "irfs", "extras", "binding"):
        assert g[name].attrs["sha256"] == s[name].attrs["sha256"], name


def test_identities_catch_wrong_state_labels_and_linear_state_irfs(tmp_path, state_dataset):
    import shutil

    from macro_data.validation.identities import check_identities
    from macro_data.validation.spec import spec_from_manifest

    _, _, dataset_dir = state_dataset
    copy = tmp_path / "copy"
    shutil.copytree(dataset_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    for w in ("zlb", "nk"):
        assert check_identities(spec_from_manifest(manifest, w, copy)).passed
    g = zarr.open_group(str(copy / "zlb.zarr"), mode="r+")
    g["at_bound"][:] = ~g["at_bound"][:]
    g = zarr.open_group(str(copy / "nk.zarr"), mode="r+")
    g["irfs_state"][:, 0] = g["irfs_state"][:, 0] * 1.5
    for w, what in (("zlb", "at_bound labels differ"), ("nk", "irfs_state differs from irfs")):
        r = check_identities(spec_from_manifest(manifest, w, copy))
        assert not r.passed and what in r.message, r.message


@pytest.mark.parametrize("regime", ["B1", "C"])
def test_reader_serves_history_before_t_and_the_state_irfs_at_t(state_dataset, regime):
    from macro_data.read import ReadArgumentError, open_dataset

    _, _, dataset_dir = state_dataset
    ds = open_dataset(dataset_dir)
    k = 6
    view = ds.training_view(
        "train", batches="mixed", regime=regime, history=k, state_irfs=True, batch_size=100, normalize=False
    )
    ref = {
        w: {a: _group(dataset_dir, w)[a][:] for a in ("trajectories", "irfs_state", "state_dates", "split")}
        for w in WORLDS
    }
    seen = []
    for batch in view.iter(0):
        assert ("theta" in batch) == (regime == "C") and "eps_sequence" not in batch
        worlds = np.array(batch["world_ids"])
        for w in set(worlds):
            g = np.flatnonzero(worlds == w)
            r = ref[w]
            idx, t = batch["index"][g], batch["start"][g]
            S = r["irfs_state"].shape[2]
            for b, i, date in zip(g, idx, t):
                kk = int(np.flatnonzero(r["state_dates"][i] == date)[0])
                np.testing.assert_array_equal(batch["irf"][b, :S], r["irfs_state"][i, kk])
                n_hist = min(k, int(date))
                np.testing.assert_array_equal(
                    batch["history"][b, k - n_hist :], r["trajectories"][i, date - n_hist : date]
                )
                assert batch["history_mask"][b].sum() == n_hist and not batch["history"][b, : k - n_hist].any()
            seen += [(w, int(i), int(s)) for i, s in zip(idx, t)]
    expected = sorted(
        (w, int(i), int(d))
        for w in WORLDS
        for i in np.flatnonzero(ref[w]["split"] == 0)
        for d in ref[w]["state_dates"][i]
    )
    assert sorted(seen) == expected  # one epoch: every (train sample, state date) once
    with pytest.raises(ReadArgumentError, match="state_irfs"):
        ds.training_view("train", batches="mixed", regime="A", state_irfs=True)
