"""Regions computed in a process pool or on a real 2-worker Dask LocalCluster equal local results."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import zarr

from macro_data.compute import ComputeConfig, ComputeError, run_regions
from macro_data.pipeline.common import RunInfo, plan_regions
from macro_data.pipeline.world_arrays import build_world_arrays
from macro_data.pipeline.world_draws import build_world_draws
from macro_data.pipeline.world_splits import build_world_splits
from macro_data.recipes import load_recipe
from macro_data_tests.conftest import write_recipe

distributed = pytest.importorskip("distributed")
REGION = 512  # small regions, so a small world has several


def test_regions_are_aligned_disjoint_and_covering():
    for n, chunk, target in [(10_000, 1000, 16384), (2_000, 128, 512), (999, 37, 100), (5, 1000, 16384)]:
        regions = plan_regions(n, chunk, target)
        assert regions[0][0] == 0 and regions[-1][1] == n
        assert all(a == b0 for (_, a), (b0, _) in zip(regions, regions[1:]))
        assert all(a % chunk == 0 and a % 256 == 0 for a, _ in regions)


def _build(recipe, root, world, compute):
    run = RunInfo(compute=compute)
    hashes = {}
    for fn in (build_world_draws, build_world_arrays, build_world_splits):
        hashes.update({k: v.sha256 for k, v in fn(recipe, world, root, run).arrays.items()})
    return hashes


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as c:
        yield c


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    base = tmp_path_factory.mktemp("scale")
    recipe = load_recipe(
        write_recipe(base, n=2000, worlds=("nk", "switching"), T=16, H=4, storage={"chunk_samples": 128, "clevel": 1})
    )
    local = {w: _build(recipe, base / "local", w, ComputeConfig(region_samples=REGION)) for w in ("nk", "switching")}
    return recipe, base, local


@pytest.mark.parametrize("world", ["nk", "switching"])
def test_dask_cluster_matches_local(small, cluster, world):
    recipe, base, local = small
    assert len(plan_regions(2000, 128, REGION)) == 4
    config = ComputeConfig(mode="dask", scheduler=cluster.scheduler_address, region_samples=REGION)
    assert _build(recipe, base / "dask", world, config) == local[world]


def test_process_pool_matches_local(small):
    recipe, base, local = small
    assert _build(recipe, base / "pool", "nk", ComputeConfig(processes=2, region_samples=REGION)) == local["nk"]


@pytest.mark.parametrize("world", ["nk", "switching"])
def test_region_threads_match_local(small, world):
    recipe, base, local = small
    assert (
        _build(recipe, base / f"threads-{world}", world, ComputeConfig(threads=3, region_samples=REGION))
        == local[world]
    )


def test_a_failing_region_on_threads_stops_the_rest_and_is_reported(tmp_path):
    jobs = [{"dir": str(tmp_path), "i": i} for i in range(6)]
    with pytest.raises(ComputeError, match="disk unplugged"):
        run_regions(_always_fails, jobs, ComputeConfig(threads=2, retries=0))
    assert run_regions(_flaky, jobs, ComputeConfig(threads=2, retries=1)) == [0, 10, 20, 30, 40, 50]


def _flaky(job):
    """Fails the first attempt of every job (a marker file records attempts), then succeeds."""
    marker = Path(job["dir"]) / f"attempt-{job['i']}"
    attempts = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempts))
    if attempts == 1:
        raise OSError(f"transient failure of job {job['i']}")
    return job["i"] * 10


def _always_fails(job):
    raise OSError("disk unplugged")


@pytest.mark.parametrize("mode", ["local", "dask"])
def test_failed_regions_are_retried_then_reported(tmp_path, cluster, mode):
    config = ComputeConfig(mode=mode, scheduler=cluster.scheduler_address if mode == "dask" else None, retries=1)
    jobs = [{"dir": str(tmp_path), "i": i} for i in range(4)]
    assert run_regions(_flaky, jobs, config) == [0, 10, 20, 30]
    assert sorted(p.read_text() for p in tmp_path.glob("attempt-*")) == ["2"] * 4
    with pytest.raises(ComputeError, match="disk unplugged"):
        run_regions(_always_fails, jobs, config)


def test_killing_a_worker_mid_run_never_publishes_a_partial_world(tmp_path, small):
    """A worker killed while writing regions: the world is published complete and identical, or not at all."""
    recipe, base, local = small
    root = tmp_path / "root"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        ) as c,
        distributed.Client(c) as client,
    ):
        pids = list(client.run(os.getpid).values())
        config = ComputeConfig(mode="dask", scheduler=c.scheduler_address, region_samples=256, retries=3)
        staging = root / "tiny" / "0.1.0" / ".staging" / "nk"
        result: dict = {}

        def build():
            try:
                result["hashes"] = _build(recipe, root, "nk", config)
            except Exception as exc:  # noqa: BLE001 - recorded and asserted on below
                result["error"] = exc

        thread = threading.Thread(target=build)
        thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(staging.glob("*/shocks/c.*")):
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)
        published_early = (root / "tiny" / "0.1.0" / "nk.zarr").exists()
        thread.join(timeout=240)
    assert not thread.is_alive()
    assert not published_early or "hashes" in result
    if "hashes" in result:
        assert result["hashes"] == local["nk"]
        g = zarr.open_group(str(root / "tiny" / "0.1.0" / "nk.zarr"), mode="r")
        assert {n: g[n].attrs["sha256"] for n in local["nk"]} == local["nk"]
    else:
        assert not (root / "tiny" / "0.1.0" / "nk.zarr" / "trajectories").exists()
    assert not [p for p in staging.iterdir() if p.name.startswith("stage.")] if staging.exists() else True
