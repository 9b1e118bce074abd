"""The asset graph builds a complete, consistent, reproducible dataset (real Dagster runs, real Zarr)."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg
import jsonschema
import numpy as np
import pytest
import zarr

from macro_data import paths, splits
from macro_data.recipes import load_recipe
from macro_data.storage.arrays import content_hash
from macro_data.worlds import WORLD_IDS, get_world
from macro_data_tests.conftest import build_dataset, build_world, write_recipe


def _manifest(dataset_dir):
    return json.loads((dataset_dir / "manifest.json").read_text())


def test_manifest_is_valid_and_complete(tiny_dataset):
    recipe, _, dataset_dir = tiny_dataset
    doc = _manifest(dataset_dir)
    jsonschema.Draft202012Validator(json.loads(paths.schema_text("manifest"))).validate(doc)
    assert sorted(doc["worlds"]) == sorted(WORLD_IDS)
    assert doc["recipe_sha256"] == load_recipe(recipe).sha256
    assert doc["seeding"]["block_size"] == 256
    for w, entry in doc["worlds"].items():
        assert entry["n_samples"] == 300
        assert 0 <= entry["rejection_rate"] < 1
        assert [o["name"] for o in entry["observables"]] == ["output", "inflation", "rate"]
        for stage in ("world_draws", "world_arrays", "world_splits"):
            assert entry["provenance"][stage]["run_id"] not in ("", "local")
        expected = {"theta", "shocks", "trajectories", "irfs", "split"}
        expected |= {"extras"} if get_world(w).extras else set()
        expected |= {m.name for m in get_world(w).metadata_fields}
        assert set(entry["arrays"]) == expected


def test_manifest_hashes_match_the_stores(tiny_dataset):
    _, _, dataset_dir = tiny_dataset
    doc = _manifest(dataset_dir)
    for w, entry in doc["worlds"].items():
        for name, spec in entry["arrays"].items():
            arr = zarr.open_array(str(dataset_dir / spec["path"]), mode="r")
            assert list(arr.shape) == spec["shape"] and str(arr.dtype) == spec["dtype"]
            assert list(arr.metadata.dimension_names) == spec["dimension_names"]
            assert content_hash(arr) == spec["sha256"], f"{w}/{name}"


def test_arrays_have_expected_shapes_dtypes_and_no_nan(tiny_dataset):
    _, _, dataset_dir = tiny_dataset
    for w in WORLD_IDS:
        g = zarr.open_group(str(dataset_dir / f"{w}.zarr"), mode="r")
        world = get_world(w)
        assert g["theta"].shape == (300, len(world.parameters))
        assert g["shocks"].shape == (300, 24, len(world.shocks))
        assert g["trajectories"].shape == (300, 24, 3)
        assert g["irfs"].shape == (300, len(world.shocks), 9, 3)
        assert g["split"].dtype == np.int8
        for name in ("theta", "shocks", "trajectories", "irfs"):
            assert g[name].dtype == np.float32 and np.isfinite(g[name][:]).all()
        assert world.valid(g["theta"][:].astype(np.float64)).all()


def test_splits_disjoint_covering_and_held_out(tiny_dataset):
    _, _, dataset_dir = tiny_dataset
    doc = _manifest(dataset_dir)
    for w in WORLD_IDS:
        world = get_world(w)
        g = zarr.open_group(str(dataset_dir / f"{w}.zarr"), mode="r")
        labels = g["split"][:]
        theta = g["theta"][:].astype(np.float64)
        assert set(np.unique(labels)) <= set(splits.LABELS.values())
        counts = {name: int((labels == v).sum()) for name, v in splits.LABELS.items()}
        assert sum(counts.values()) == 300  # covering, and disjoint since one label per sample
        for name, c in counts.items():
            assert doc["worlds"][w]["splits"][name]["count"] == c
            idx = np.flatnonzero(labels == splits.LABELS[name])
            assert doc["worlds"][w]["splits"][name]["index_hash"] == splits.index_set_hash(idx)
        # held-out regions recomputed independently from theta: none in train/val/test_interpolation
        rule = world.slice_rule
        stat = world.slice_statistic(theta)
        region = stat > rule.threshold if rule.direction == "above" else stat < rule.threshold
        p, v = world.corner_statistics(theta)
        corner = (p > world.corner_rule.persistence_threshold) & (v > world.corner_rule.volatility_threshold)
        pooled = np.isin(labels, [splits.LABELS["train"], splits.LABELS["val"], splits.LABELS["test_interpolation"]])
        assert not (pooled & (region | corner)).any()
        assert (labels[region] == splits.LABELS["test_extrapolation_slice"]).all()


def test_xarray_reads_labelled_variables(tiny_dataset):
    xr = pytest.importorskip("xarray")
    _, _, dataset_dir = tiny_dataset
    ds = xr.open_zarr(dataset_dir / "nk.zarr")
    assert ds["trajectories"].dims == ("sample", "time", "observable")
    assert list(ds["observable"].values) == ["output", "inflation", "rate"]
    assert list(ds["shock"].values) == ["monetary", "demand", "cost_push"]
    assert "phi_pi" in list(ds["param"].values)
    assert float(ds["theta"].sel(param="phi_pi").min()) >= 1.05
    assert ds["irfs"].dims == ("sample", "shock", "horizon", "observable")
    assert ds.attrs["world"]["name"] == "nk"
    assert ds["trajectories"].attrs["units"][0] == "percent"


def test_materialization_metadata_is_readable(tiny_dataset, instance):
    ev = instance.get_latest_materialization_event(dg.AssetKey("world_arrays"))
    meta = ev.asset_materialization.metadata
    for key in ("path", "wall_time_s", "bytes_on_disk", "compression_ratio", "arrays", "sha256/trajectories"):
        assert key in meta, key
    # The instance is the session's: other tests materialize manifests of their own datasets in it.
    _, _, dataset_dir = tiny_dataset
    records = instance.fetch_materializations(dg.AssetKey("dataset_manifest"), limit=10_000).records
    ours = [
        r.asset_materialization.metadata
        for r in records
        if r.asset_materialization.metadata["path"].value == str(dataset_dir / "manifest.json")
    ]
    assert ours and ours[0]["n_worlds"].value == 6


def test_manifest_refuses_incomplete_dataset(tmp_path, instance):
    recipe = write_recipe(tmp_path, n=64, worlds=("nk", "rbc"))
    root = tmp_path / "root"
    build_world(instance, recipe, root, "nk")
    result = build_dataset(instance, recipe, root, raise_on_error=False)
    assert not result.success
    text = " ".join(
        str(e.step_failure_data.user_failure_data.description) for e in result.all_events if e.is_step_failure
    )
    assert "world 'rbc'" in text and "has not been materialized" in text
    assert not (root / "tiny" / "0.1.0" / "manifest.json").exists()


def test_manifest_refuses_worlds_from_another_recipe(tmp_path, instance):
    recipe = write_recipe(tmp_path, n=64, worlds=("nk",))
    root = tmp_path / "root"
    build_world(instance, recipe, root, "nk")
    changed = write_recipe(tmp_path / "b", n=64, worlds=("nk",), seed=8)
    result = build_dataset(instance, changed, root, raise_on_error=False)
    assert not result.success
    text = " ".join(
        str(e.step_failure_data.user_failure_data.description) for e in result.all_events if e.is_step_failure
    )
    # refused by the version's recorded recipe, naming the field that differs, before anything is written
    assert "tiny@0.1.0" in text and "built from another recipe (fields that differ: seed: 7 -> 8)" in text
    assert not (root / "tiny" / "0.1.0" / "manifest.json").exists()


def test_world_outside_recipe_fails_clearly(tmp_path, instance):
    recipe = write_recipe(tmp_path, n=64, worlds=("nk",))
    result = build_world(instance, recipe, tmp_path / "root", "rbc", raise_on_error=False)
    assert not result.success
    text = " ".join(
        str(e.step_failure_data.user_failure_data.description) for e in result.all_events if e.is_step_failure
    )
    assert "world 'rbc' is not part of recipe 'tiny'" in text


def _hashes(dataset_dir, world):
    g = zarr.open_group(str(dataset_dir / f"{world}.zarr"), mode="r")
    return {name: g[name].attrs["sha256"] for name in ("theta", "shocks", "trajectories", "irfs", "split")}


@pytest.mark.parametrize("world", ["nk", "switching", "zlb"])
def test_same_recipe_and_other_chunking_give_identical_hashes(tmp_path, instance, tiny_dataset, world):
    _, _, dataset_dir = tiny_dataset
    recipe = write_recipe(tmp_path, storage={"chunk_samples": 37, "clevel": 5})
    build_world(instance, recipe, tmp_path / "root", world)
    assert _hashes(tmp_path / "root" / "tiny" / "0.1.0", world) == _hashes(dataset_dir, world)


def test_prefix_stability(tmp_path, instance):
    small = write_recipe(tmp_path / "s", n=3000, worlds=("nk",), T=8, H=2)
    large = write_recipe(tmp_path / "l", n=5000, worlds=("nk",), T=8, H=2)
    build_world(instance, small, tmp_path / "rs", "nk")
    build_world(instance, large, tmp_path / "rl", "nk")
    a = zarr.open_group(str(tmp_path / "rs" / "tiny" / "0.1.0" / "nk.zarr"), mode="r")
    b = zarr.open_group(str(tmp_path / "rl" / "tiny" / "0.1.0" / "nk.zarr"), mode="r")
    for name in ("theta", "shocks", "trajectories", "irfs", "split"):
        np.testing.assert_array_equal(a[name][:], b[name][:3000], err_msg=name)


@pytest.mark.slow
def test_cli_materialize_matches(tmp_path, tiny_dataset):
    """`dagster asset materialize` as CI runs it (subprocess, the code location's executor)."""
    recipe, _, dataset_dir = tiny_dataset
    root = tmp_path / "cli-root"
    env = {
        **__import__("os").environ,
        "MACRO_DATA_RECIPE": str(recipe),
        "MACRO_DATA_ROOT": str(root),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    (tmp_path / "home").mkdir()
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "macro_data",
        "--select",
        "world_draws,world_arrays,world_splits",
        "--partition",
        "var",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert _hashes(root / "tiny" / "0.1.0", "var") == _hashes(dataset_dir, "var")
