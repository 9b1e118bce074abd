"""open_dataset on object storage: a dataset the build wrote to an S3-compatible server (moto, 127.0.0.1)
reads, verifies and batches exactly like its local twin."""

from __future__ import annotations

import numpy as np
import pytest

import macro_data.read as mdr
from macro_data.pipeline import world_arrays, world_draws, world_splits, world_stats
from macro_data.pipeline.manifest import build_manifest
from macro_data.recipes import load_recipe
from macro_data_tests.conftest import s3_server, write_recipe

pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
pytestmark = pytest.mark.slow  # two builds, one through the S3 server (every object a request): about 40 s
WORLDS = ("nk", "rbc")


@pytest.fixture(scope="module")
def s3():
    with s3_server("macro-data-read") as url:
        yield url


@pytest.fixture(scope="module")
def twins(s3, tmp_path_factory):
    """The same recipe built by the pipeline's stage functions (the asset code, without the Dagster run and
    its checks, which the scale tests cover on S3) locally and onto the server."""
    base = tmp_path_factory.mktemp("reads3")
    recipe = load_recipe(write_recipe(base, n=300, worlds=WORLDS))
    for root in (str(base / "local"), s3):
        for w in WORLDS:
            world_draws.build_world_draws(recipe, w, root)
            world_arrays.build_world_arrays(recipe, w, root)
            world_splits.build_world_splits(recipe, w, root)
            world_stats.build_world_stats(recipe, w, root)
        build_manifest(recipe, root)
    return mdr.open_dataset(base / "local" / "tiny" / "0.1.0"), f"{s3}/tiny/0.1.0"


def test_remote_dataset_opens_verifies_and_reads_like_the_local_one(twins):
    local, url = twins
    remote = mdr.open_dataset(url, verify=True)  # every content hash, the statistics and labels included
    assert remote.worlds == local.worlds and str(remote.path) == url
    assert mdr.open_dataset(f"{url}/manifest.json").worlds == WORLDS
    for w in WORLDS:
        assert remote[w].has_stats
        for a, arr in local[w].arrays.items():
            np.testing.assert_array_equal(remote[w][a].read(), arr.read())
            assert remote[w][a].path.startswith(f"{url}/{w}/")  # the stage's immutable version group
        np.testing.assert_array_equal(remote[w].stats["irfs"].sd, local[w].stats["irfs"].sd)
    options = dict(batches="mixed", regime="C", history=6, normalize="stats", normalize_outputs=True, batch_size=64)
    for a, b in zip(remote.training_view("train", **options).iter(0), local.training_view("train", **options).iter(0)):
        assert a["world_ids"] == b["world_ids"]
        for k in ("theta", "irf", "history", "shock_idx", "index"):
            np.testing.assert_array_equal(a[k], b[k])
    mds = remote.map_dataset("val", regime="A")
    np.testing.assert_array_equal(
        mds.__getitems__([0, 5, 3])["eps_sequence"],
        local.map_dataset("val", regime="A").__getitems__([0, 5, 3])["eps_sequence"],
    )


def test_remote_errors_name_the_url(twins):
    _, url = twins
    with pytest.raises(mdr.DatasetNotFoundError, match="no manifest.json found"):
        mdr.open_dataset(url.rsplit("/", 1)[0] + "/9.9.9")
