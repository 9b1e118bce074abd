"""A dataset built onto an S3-compatible server (moto, on 127.0.0.1) reads back identically."""

from __future__ import annotations

import json

import pytest
import zarr

from macro_data.storage import locations
from macro_data.storage.arrays import content_hash
from macro_data.storage.publish import world_store
from macro_data_tests.conftest import build_dataset, build_world, s3_server, write_recipe

pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
WORLDS = ("nk", "switching")
pytestmark = pytest.mark.slow  # a build onto object storage through Dagster: minutes


@pytest.fixture(scope="module")
def s3():
    with s3_server("macro-data-test") as url:
        yield url


@pytest.fixture(scope="module")
def built(s3, tmp_path_factory, instance):
    base = tmp_path_factory.mktemp("s3")
    recipe = write_recipe(base, n=300, worlds=WORLDS)
    for w in WORLDS:
        build_world(instance, recipe, base / "local", w)
        build_world(instance, recipe, s3, w)
    build_dataset(instance, recipe, base / "local")
    build_dataset(instance, recipe, s3)
    local = json.loads((base / "local" / "tiny" / "0.1.0" / "manifest.json").read_text())
    remote = json.loads(locations.read_bytes(f"{s3}/tiny/0.1.0/manifest.json"))
    return recipe, s3, local, remote


def test_remote_manifest_hashes_equal_local(built):
    _, _, local, remote = built
    for w in WORLDS:
        for name, spec in local["worlds"][w]["arrays"].items():
            assert remote["worlds"][w]["arrays"][name]["sha256"] == spec["sha256"], f"{w}/{name}"


def test_remote_arrays_read_back_identically(built):
    _, s3, _, remote = built
    for w in WORLDS:
        for name, spec in remote["worlds"][w]["arrays"].items():
            assert spec["path"].startswith(f"{w}/")  # versioned group, named by the stage pointer
            arr = zarr.open_array(
                f"{s3}/tiny/0.1.0/{spec['path']}", mode="r", storage_options=locations.storage_options(s3)
            )
            assert list(arr.shape) == spec["shape"]
            assert content_hash(arr) == spec["sha256"], f"{w}/{name}"


def test_failed_stage_on_object_storage_keeps_the_published_version(built, instance):
    recipe, s3, _, remote = built
    store = world_store(f"{s3}/tiny/0.1.0", "nk")
    before = store.relative_path("theta")
    with pytest.raises(RuntimeError):
        with store.staging("world_draws", {}) as g:
            g.create_array("theta", shape=(3,), dtype="f4")
            raise RuntimeError("worker lost")
    after = world_store(f"{s3}/tiny/0.1.0", "nk").relative_path("theta")  # a new store reads the pointers anew
    assert after == before == remote["worlds"]["nk"]["arrays"]["theta"]["path"]
    fs, path = locations.filesystem(f"{s3}/tiny/0.1.0/nk/world_draws")
    assert len(fs.ls(path)) == 1  # the failed version was removed; only the published one is there


def test_republish_switches_pointer_and_keeps_one_previous_version(built, instance):
    recipe, s3, _, remote = built
    reader = world_store(f"{s3}/tiny/0.1.0", "nk")
    assert reader.relative_path("theta") == remote["worlds"]["nk"]["arrays"]["theta"]["path"]
    build_world(instance, recipe, s3, "nk", force=True)  # same content, new version
    store = world_store(f"{s3}/tiny/0.1.0", "nk")
    assert store.relative_path("theta") != remote["worlds"]["nk"]["arrays"]["theta"]["path"]
    assert content_hash(store.open_array("theta")) == remote["worlds"]["nk"]["arrays"]["theta"]["sha256"]
    # a store opened before the republish keeps reading the versions it first saw, which are still there
    assert reader.relative_path("theta") == remote["worlds"]["nk"]["arrays"]["theta"]["path"]
    assert content_hash(reader.open_array("theta")) == remote["worlds"]["nk"]["arrays"]["theta"]["sha256"]
    fs, path = locations.filesystem(f"{s3}/tiny/0.1.0/nk/world_draws")
    assert len(fs.ls(path)) == 2  # current + the one before, for readers still on the old manifest


def test_a_store_reads_its_own_publish(s3):
    store = world_store(f"{s3}/scratch/0.1.0", "nk")  # a dataset of its own: the built one stays as it is
    paths = []
    for value in (1.0, 2.0):
        with store.staging("world_draws", {}) as g:
            g.create_array("theta", shape=(3,), dtype="f4", fill_value=value)
            store.publish(g, ["theta"], {})
        paths.append(store.relative_path("theta"))
        assert store.open_array("theta")[:].tolist() == [value] * 3
    assert paths[0] != paths[1]
