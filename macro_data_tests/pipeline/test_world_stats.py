"""world_stats: train-split moments stored with the data, in the manifest, and guarded by a blocking check.

References are recomputed here with plain numpy on arrays read directly with zarr.
"""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pytest
import zarr

from macro_data import splits
from macro_data.errors import ManifestError, StorageError
from macro_data.orchestration.assets.world_stats import world_stats as world_stats_asset
from macro_data.orchestration.checks import asset_checks
from macro_data.orchestration.partitions import world_partitions
from macro_data.orchestration.resources.compute import ComputeResource
from macro_data.orchestration.resources.recipe import RecipeResource
from macro_data.orchestration.resources.storage import DatasetRootResource
from macro_data.pipeline import release, world_arrays, world_draws, world_splits, world_stats
from macro_data.pipeline.common import RunInfo, data_version
from macro_data.pipeline.manifest import build_manifest
from macro_data.recipes import load_recipe
from macro_data.storage.arrays import ArraySummary, content_hash
from macro_data.validation.spec import spec_from_manifest
from macro_data.validation.train_stats import check_train_stats
from macro_data.worlds import WORLD_IDS, get_world
from macro_data_tests.conftest import build_world, write_recipe

POOL = {"theta": 1, "shocks": 2, "trajectories": 2, "extras": 2, "irfs": 1}


def _numpy_moments(dataset_dir, world):
    g = zarr.open_group(str(dataset_dir / f"{world}.zarr"), mode="r")
    train = g["split"][:] == splits.LABELS["train"]
    out = {}
    for a in world_stats.source_arrays(world):
        x = g[a][:][train].astype(np.float64)
        x = x.reshape(-1, *x.shape[POOL[a] :])
        out[a] = (x.mean(axis=0), x.std(axis=0, ddof=1), x.shape[0])
    return out, int(train.sum())


def test_stored_moments_equal_numpy_on_the_train_split(tiny_dataset):
    _, _, dataset_dir = tiny_dataset
    doc = json.loads((dataset_dir / "manifest.json").read_text())
    for w in WORLD_IDS:
        entry = doc["worlds"][w]["train_stats"]
        ref, n_train = _numpy_moments(dataset_dir, w)
        assert entry["n_samples"] == n_train and entry["split"] == "train" and entry["ddof"] == 1
        assert set(entry["arrays"]) == set(ref)
        for a, (mean, sd, count) in ref.items():
            spec = entry["arrays"][a]
            z = zarr.open_array(str(dataset_dir / spec["path"]), mode="r")
            assert z.dtype == np.float32 and list(z.metadata.dimension_names)[0] == "moment"
            assert spec["count"] == count and spec["shape"] == [2, *mean.shape]
            stored = z[:].astype(np.float64)
            np.testing.assert_allclose(stored[0], mean, rtol=2e-7, atol=2e-7 * (np.abs(mean).max() + 1e-30))
            np.testing.assert_allclose(stored[1], sd, rtol=2e-7, atol=1e-30)
            assert content_hash(z) == spec["sha256"] == z.attrs["sha256"]
        # theta moments include the derived columns (lss and var are mostly derived)
        world = get_world(w)
        assert entry["arrays"]["theta"]["shape"] == [2, len(world.parameters)]
        # the readable summary carries the same numbers
        obs = [o.name for o in world.observables]
        for j, o in enumerate(obs):
            assert entry["summary"]["trajectories"][o]["sd"] == pytest.approx(ref["trajectories"][1][j], rel=1e-9)
        s0 = world.shocks[0]
        assert entry["summary"]["irfs"][s0]["output"]["max_sd"] == pytest.approx(
            ref["irfs"][1][0, :, 0].max(), rel=1e-9
        )


def _numpy_block_moments(block: np.ndarray, pooled: int) -> tuple[np.ndarray, np.ndarray]:
    """The numpy formulation the compiled block kernel reproduces: float64 copy, sums over rows, then periods."""
    k = int(np.prod(block.shape[:pooled]))
    x = block.reshape(block.shape[0], -1).astype(np.float64)
    periods = k // block.shape[0]
    mean = x.sum(axis=0).reshape(periods, -1).sum(axis=0) / k
    d = x - np.tile(mean, periods)
    return mean, np.square(d).sum(axis=0).reshape(periods, -1).sum(axis=0)


@pytest.mark.parametrize(
    ("shape", "pooled"),
    [((2048, 200, 3), 2), ((300, 40, 4), 2), ((2048, 40), 1), ((700, 3, 41, 3), 1), ((1, 200, 3), 2), ((1, 5), 1)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_moments_equal_the_numpy_formulation_bit_for_bit(shape, pooled, dtype):
    rng = np.random.default_rng(sum(shape) + pooled)
    block = (rng.standard_normal(shape) * 37.0 + 1234.5).astype(dtype)  # a large mean: rounding shows in the sums
    width = int(np.prod(shape[pooled:]))
    block[..., 0] = -0.0  # signed zeros: numpy's sums start from +0.0, so a variable all -0.0 has mean +0.0
    flat = block.reshape(block.shape[0], -1)
    if width > 2 and block.shape[0] > 1:
        flat[-1, 1] = np.nan
        flat[0, 2] = np.inf
    keep = np.ones(shape[0], dtype=bool)
    keep[1::3] = False  # rows left out are read past, not copied
    keep[0] = True
    mean, m2 = np.empty(width), np.empty(width)
    with np.errstate(invalid="ignore"):
        world_stats.block_moments(flat, keep, int(np.prod(shape[1:pooled])), mean, m2)
        ref_mean, ref_m2 = _numpy_block_moments(block[keep], pooled)
    assert mean.tobytes() == ref_mean.tobytes() and m2.tobytes() == ref_m2.tobytes()
    assert np.signbit(mean[0]) == np.signbit(ref_mean[0])


def test_moments_over_blocks_equal_the_two_pass_moments():
    """Blocks merged (Chan et al.) give the mean and ddof-1 sd of all rows at once, within rounding."""
    rng = np.random.default_rng(7)
    data = rng.standard_normal((5000, 20, 3)) * np.array([0.5, 4.0, 80.0]) + np.array([1.0, -30.0, 900.0])
    acc = world_stats.Moments((3,))
    for lo in range(0, 5000, 1024):
        acc.add(data[lo : lo + 1024].astype(np.float32), 2)
    x = data.astype(np.float32).astype(np.float64).reshape(-1, 3)
    assert acc.count == x.shape[0]
    np.testing.assert_allclose(acc.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.sd(), x.std(axis=0, ddof=1), rtol=1e-10)


def test_manifest_hash_and_provenance_of_the_stats(tiny_dataset):
    _, _, dataset_dir = tiny_dataset
    doc = json.loads((dataset_dir / "manifest.json").read_text())
    for w in WORLD_IDS:
        entry = doc["worlds"][w]
        stats = entry["train_stats"]
        summaries = {}
        for a, spec in stats["arrays"].items():
            z = zarr.open_array(str(dataset_dir / spec["path"]), mode="r")
            name = world_stats.stored_name(a)
            summaries[name] = ArraySummary(name, tuple(z.shape), "float32", (), content_hash(z), 0, 0)
        assert stats["sha256"] == data_version(summaries)  # the statistics' own content hash
        prov = entry["provenance"]["world_stats"]
        assert prov["data_version"] == stats["sha256"] and prov["run_id"] not in ("", "local")
        for stage in ("world_draws", "world_arrays", "world_splits"):
            assert prov["upstream"][stage]["data_version"] == entry["provenance"][stage]["data_version"]
        moment = zarr.open_array(str(dataset_dir / f"{w}.zarr" / "moment"), mode="r")[:]
        assert [str(v) for v in moment] == ["mean", "sd"]


def test_check_catches_wrong_numbers_and_damaged_chunks(tiny_dataset, tmp_path):
    import shutil

    _, _, dataset_dir = tiny_dataset
    copy = tmp_path / "tiny" / "0.1.0"
    shutil.copytree(dataset_dir, copy, ignore=shutil.ignore_patterns(".staging", ".locks"))
    doc = json.loads((copy / "manifest.json").read_text())
    assert check_train_stats(spec_from_manifest(doc, "nk", copy)).passed
    # a well-formed array (valid checksum, hash re-recorded) holding a slightly wrong sd
    z = zarr.open_array(str(copy / "nk.zarr" / "moments_irfs"), mode="r+")
    values = z[:]
    values[1, 0, 3, 1] *= 1.001
    z[:] = values
    z.attrs["sha256"] = content_hash(z)
    r = check_train_stats(spec_from_manifest(doc, "nk", copy))
    assert not r.passed and "'moments_irfs'" in r.message and "differ from the recomputation" in r.message
    assert "the manifest lists" in r.message  # and its hash no longer matches the manifest's
    # a flipped byte in a chunk file
    chunk = copy / "rbc.zarr" / "moments_theta" / "c.0.0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x20
    chunk.write_bytes(bytes(raw))
    r = check_train_stats(spec_from_manifest(doc, "rbc", copy))
    assert not r.passed and "'moments_theta' does not decode" in r.message


@dg.asset(deps=[world_stats_asset], partitions_def=world_partitions, group_name="probe")
def after_stats():
    """A downstream asset: it must not run when the blocking check of world_stats fails."""
    return dg.MaterializeResult(metadata={"ran": True})


def test_blocking_check_stops_downstream_when_the_stats_are_wrong(tmp_path, instance, monkeypatch):
    recipe = write_recipe(tmp_path, n=300, worlds=("nk",), name="blocking")
    root = tmp_path / "root"
    build_world(instance, recipe, root, "nk")  # draws, arrays, splits, stats and their checks: all pass
    real = world_stats.compute_moments

    def off_by_a_bit(inputs, arrays, label):
        acc, n = real(inputs, arrays, label)
        acc["trajectories"].mean = acc["trajectories"].mean + 0.01  # a bug in the stage
        return acc, n

    monkeypatch.setattr(world_stats, "compute_moments", off_by_a_bit)
    check = next(c for c in asset_checks if any(k.asset_key == world_stats_asset.key for k in c.check_keys))
    result = dg.materialize(
        [world_stats_asset, check, after_stats],
        partition_key="nk",
        instance=instance,
        resources={
            "recipe": RecipeResource(recipe=str(recipe)),
            "storage": DatasetRootResource(root=str(root), force=True),  # else it is up to date: skipped
            "compute": ComputeResource(),
        },
        raise_on_error=False,
    )
    evaluations = result.get_asset_check_evaluations()
    assert [(e.check_name, e.passed) for e in evaluations] == [("matches_recomputation", False)]
    assert evaluations[0].severity == dg.AssetCheckSeverity.ERROR
    assert "'moments_trajectories'" in evaluations[0].description
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"world_stats"}  # after_stats was stopped by the blocking check
    assert not result.success


def _plain_build(folder, recipe_path, stats=True):
    recipe = load_recipe(recipe_path)
    for w in recipe.world_ids:
        world_draws.build_world_draws(recipe, w, folder)
        world_arrays.build_world_arrays(recipe, w, folder)
        world_splits.build_world_splits(recipe, w, folder)
        if stats:
            world_stats.build_world_stats(recipe, w, folder)
    return recipe


def test_stats_follow_their_inputs_and_stale_ones_are_refused(tmp_path, monkeypatch):
    recipe_path = write_recipe(tmp_path / "a", n=256, worlds=("rbc",), name="stale")
    root = tmp_path / "root"
    recipe = _plain_build(root, recipe_path)
    doc = build_manifest(recipe, root).document
    stats = doc["worlds"]["rbc"]["train_stats"]
    assert stats["n_samples"] > 100
    store = root / "stale" / "0.1.0" / "rbc.zarr"
    before = {p: p.stat().st_mtime_ns for p in store.glob("moments_*/**/*") if p.is_file()}
    # the stage template: up to date while its recipe, code and the draws, arrays and splits it was computed
    # from are the published ones; nothing is rewritten
    again = world_stats.build_world_stats(recipe, "rbc", root)
    assert again.up_to_date and again.data_version == stats["sha256"] and again.stats["n_train"] == stats["n_samples"]
    assert {p: p.stat().st_mtime_ns for p in store.glob("moments_*/**/*") if p.is_file()} == before
    # the splits rebuilt by other code (other labels), the statistics not: the manifest refuses them
    real = splits.assign
    monkeypatch.setattr(splits, "assign", lambda world, theta, u: np.roll(real(world, theta, u), 1))
    world_splits.build_world_splits(recipe, "rbc", root, RunInfo(force=True))
    with pytest.raises(ManifestError, match="world_stats was computed from world_splits outputs"):
        build_manifest(recipe, root)
    redone = world_stats.build_world_stats(recipe, "rbc", root)  # not up to date any more: recomputed
    assert not redone.up_to_date and redone.data_version != stats["sha256"]
    assert build_manifest(recipe, root).document["worlds"]["rbc"]["train_stats"]["sha256"] == redone.data_version
    # statistics written by another code version of the stage are refused too, and then recomputed
    world_stats.build_world_stats(recipe, "rbc", root, RunInfo(code_version="world_stats-000000000000"))
    with pytest.raises(ManifestError, match="re-materialize world_stats for partition 'rbc'"):
        build_manifest(recipe, root)
    assert not world_stats.build_world_stats(recipe, "rbc", root).up_to_date
    build_manifest(recipe, root)
    # a dataset built without the stage has no train_stats (the field is optional)
    recipe3 = _plain_build(tmp_path / "root3", write_recipe(tmp_path / "c", n=256, worlds=("nk",)), stats=False)
    doc3 = build_manifest(recipe3, tmp_path / "root3").document
    assert "train_stats" not in doc3["worlds"]["nk"] and "world_stats" not in doc3["worlds"]["nk"]["provenance"]


def test_stats_need_the_published_arrays(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, n=256, worlds=("rbc",), name="early"))
    world_draws.build_world_draws(recipe, "rbc", tmp_path / "root")
    with pytest.raises(
        StorageError,
        match="world_stats needs arrays trajectories, irfs, extras, split, not published .*materialize the stages",
    ):
        world_stats.build_world_stats(recipe, "rbc", tmp_path / "root")


def test_stats_follow_the_release_rules(tmp_path):
    root = tmp_path / "root"
    build_manifest(_plain_build(root, write_recipe(tmp_path / "a", n=256, worlds=("rbc",), name="rel", seed=7)), root)
    dataset = root / "rel" / "0.1.0"
    published = zarr.open_array(str(dataset / "rbc.zarr" / "moments_irfs"), mode="r").attrs["sha256"]
    other = load_recipe(write_recipe(tmp_path / "b", n=256, worlds=("rbc",), name="rel", seed=8))
    with pytest.raises(release.ReleaseError, match="seed: 7 -> 8"):  # a published version never changes
        world_stats.build_world_stats(other, "rbc", root)
    replace = RunInfo(replace=True)  # built beside the version, swapped in with the manifest
    for fn in (
        world_draws.build_world_draws,
        world_arrays.build_world_arrays,
        world_splits.build_world_splits,
        world_stats.build_world_stats,
    ):
        fn(other, "rbc", root, replace)
    assert zarr.open_array(str(dataset / "rbc.zarr" / "moments_irfs"), mode="r").attrs["sha256"] == published
    assert (root / "rel" / ".replace" / "0.1.0" / "rbc.zarr" / "moments_irfs").is_dir()
    doc = build_manifest(other, root, replace=True).document
    swapped = zarr.open_array(str(dataset / "rbc.zarr" / "moments_irfs"), mode="r").attrs["sha256"]
    assert swapped != published and doc["worlds"]["rbc"]["train_stats"]["arrays"]["irfs"]["sha256"] == swapped
