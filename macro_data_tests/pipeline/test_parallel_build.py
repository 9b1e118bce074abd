"""`macro-data build` with world runs in parallel worker processes gives the sequential build's bytes,
and records every world's materializations and checks in the instance (real runs, real Zarr)."""

from __future__ import annotations

import hashlib

import dagster as dg
import numpy as np
import pytest
import zarr

from macro_data.cli import main
from macro_data.validation.dataset import validate_dataset
from macro_data.validation.results import jsonable
from macro_data.worlds import WORLD_IDS

WORLD_ASSETS = ("world_draws", "world_arrays", "world_splits", "world_stats")


def _array_hashes(dataset_dir) -> dict[str, tuple]:
    """Every stored array of every world (draws, simulated arrays, splits, statistics, coordinates):
    its recorded content hash (data arrays) and the SHA-256 of its decoded bytes, dtype and shape."""
    out = {}
    for w in WORLD_IDS:
        group = zarr.open_group(str(dataset_dir / f"{w}.zarr"), mode="r")
        for name, array in group.arrays():
            values = np.ascontiguousarray(array[...])
            digest = hashlib.sha256(values.tobytes() + str((values.dtype, values.shape)).encode()).hexdigest()
            out[f"{w}/{name}"] = (array.attrs.get("sha256"), digest)
    assert len(out) > 6 * 5 and sum(bool(recorded) for recorded, _ in out.values()) >= 6 * 5
    return out


@pytest.mark.slow
def test_parallel_build_is_bit_identical_to_the_sequential_one(tmp_path, tiny_dataset, monkeypatch):
    recipe, _, sequential_dir = tiny_dataset  # every world run one after another in one process
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    root = tmp_path / "root"
    assert main(["build", "--recipe", str(recipe), "--root", str(root), "--jobs", "2"]) == 0
    parallel_dir = root / "tiny" / "0.1.0"
    assert _array_hashes(parallel_dir) == _array_hashes(sequential_dir)
    # every world's run is in the instance: one materialization and its checks per world partition
    with dg.DagsterInstance.get() as instance:
        for asset in WORLD_ASSETS:
            done = instance.get_materialized_partitions(dg.AssetKey(asset))
            assert done == set(WORLD_IDS), (asset, done)
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="build_world"))
        assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(WORLD_IDS)
        assert all(r.is_success for r in runs)
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("world_arrays"), "reproducibility"), limit=20
        )
        assert len(checks) == len(WORLD_IDS)


@pytest.mark.slow
def test_validation_in_worker_processes_gives_the_sequential_results(tiny_dataset):
    _, _, dataset_dir = tiny_dataset

    def results(jobs: int):
        v = validate_dataset(dataset_dir, jobs=jobs)
        return [{k: x for k, x in jsonable(r.as_dict()).items() if k != "seconds"} for r in v.results], v.subset_indices

    sequential = results(1)
    assert [r["world"] for r in sequential[0]][0] is None  # the dataset check first, then world by world
    assert results(2) == sequential


def test_a_build_run_keeps_the_instances_write_ahead_logs_between_events(tmp_path, monkeypatch):
    # Dagster's default SQLite storage opens a connection per event; a build's runs hold idle ones to
    # the runs, the event index and the run's own events, so no event's close checkpoints and deletes
    # a log (macro_data.sqlite_keepalive). Without them, every log below is gone between events.
    from macro_data.cli import build

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    seen: dict = {}

    @dg.op
    def probe(context):
        context.log.info("an event written through a connection of its own, then closed")
        dbs = {"runs": build.RUNS_DB, "index": build.EVENT_INDEX_DB, "run": build.run_events_db(context.run_id)}
        seen.update({name: (home / db).with_name(db.name + "-wal").exists() for name, db in dbs.items()})

    @dg.job
    def probe_job():
        probe()

    state: dict = {}
    build._load(state)
    state["defs"] = dg.Definitions(jobs=[probe_job])
    try:
        done = build._run("probe_job", None, {}, {}, state)
        assert done.success, done.failures
        assert seen == {"runs": True, "index": True, "run": True}
        assert not state["keep"].held(home / build.run_events_db(done.run_id))  # released when its run ended
        logs = state["instance"].all_logs(done.run_id)
        events = [e.dagster_event.event_type_value for e in logs if e.is_dagster_event]
        assert events[0] == "PIPELINE_START" and events[-1] == "PIPELINE_SUCCESS" and "STEP_SUCCESS" in events
    finally:
        state["keep"].close()
    assert not list(home.rglob("*-wal"))  # the idle connections were the last: logs checkpointed and deleted
    assert (home / build.run_events_db(done.run_id)).is_file()
