"""The asset checks and the report asset inside real Dagster runs (through the code location)."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import zarr

from macro_data.worlds import get_world
from macro_data_tests.conftest import build_world, run_config, write_recipe
from macro_data_tests.validation.conftest import place_real_data

WORLD_CHECKS = {
    "world_draws": {"integrity", "consistency", "reproducibility"},
    "world_arrays": {"integrity", "reproducibility", "model_identities", "statistical_sanity", "realism"},
    "world_splits": {"integrity", "consistency", "split_fractions"},
    "world_stats": {"matches_recomputation"},
}
BLOCKING = {"integrity", "consistency", "reproducibility", "model_identities", "matches_recomputation"}


def evaluations(result):
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_definitions_declare_the_checks():
    from macro_data import defs

    graph = defs.resolve_asset_graph()
    keys = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    for asset, names in WORLD_CHECKS.items():
        assert {(asset, n) for n in names} <= keys
    assert ("dataset_manifest", "consistency") in keys and ("validation_report", "passed") in keys
    for asset, names in WORLD_CHECKS.items():
        for n in names:
            spec = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(asset), n))
            assert spec.blocking == (n in BLOCKING), (asset, n)
            assert spec.partitions_def is not None and spec.description
    node = graph.get(dg.AssetKey("validation_report"))
    assert node.group_name == "dataset" and set(node.kinds) == {"python", "json", "html"}
    assert dg.AssetKey("dataset_manifest") in node.parent_keys and node.code_version


@pytest.fixture(scope="module")
def nk_run(tmp_path_factory, instance):
    base = tmp_path_factory.mktemp("dagster-nk")
    root = base / "root"
    place_real_data(root)  # the verified cache under the storage root, where the realism check looks
    recipe = write_recipe(base, n=80, worlds=("nk",))
    return build_world(instance, recipe, root, "nk"), recipe, root


def test_world_run_evaluates_every_check_per_partition(nk_run):
    result, _, _ = nk_run
    assert result.success
    ev = evaluations(result)
    assert set(ev) == {(a, n) for a, names in WORLD_CHECKS.items() for n in names}
    for (asset, name), e in ev.items():
        assert e.partition == "nk"
        if name != "realism":  # realism may warn: short T = 24 paths against 202 US quarters
            assert e.passed, f"{asset}:{name}: {e.description}"
        assert e.severity == (dg.AssetCheckSeverity.ERROR if name in BLOCKING else dg.AssetCheckSeverity.WARN)
        assert e.description.startswith("world 'nk': ")
        assert "results" in e.metadata
    # figures as readable metadata
    assert ev[("world_arrays", "reproducibility")].metadata["reproducibility.simulation/subset_size"].value == 64
    assert ev[("world_arrays", "model_identities")].metadata["identities.model/convolution/violations"].value == 0
    assert ev[("world_draws", "integrity")].metadata["integrity.draws/nonfinite_values"].value == 0
    realism = ev[("world_arrays", "realism")]
    assert "skipped" not in realism.description  # the verified file under the storage root was found and used
    assert realism.metadata["realism.us_moments/status"].value in ("pass", "warn")
    assert "realism.us_moments/figures" in realism.metadata


def test_a_selected_check_runs_without_its_step_mates(nk_run, instance):
    """The checks of an asset share a step, but a selection runs only the checks selected. (Dagster
    cannot plan a job of partitioned checks alone, so the selection also holds an up-to-date asset.)"""
    from macro_data import defs

    _, recipe, root = nk_run
    key = dg.AssetCheckKey(dg.AssetKey("world_arrays"), "model_identities")
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.checks(key) | dg.AssetSelection.assets("world_draws").without_checks(),
        partition_key="nk",
        instance=instance,
        resources=dict(defs.resources),
        run_config=run_config(recipe, root),
        raise_on_error=False,
    )
    assert result.success
    assert set(evaluations(result)) == {("world_arrays", "model_identities")}
    assert evaluations(result)[("world_arrays", "model_identities")].passed
    assert [m.asset_key.to_user_string() for m in result.get_asset_materialization_events()] == ["world_draws"]


def test_blocking_check_stops_downstream_assets(nk_run, instance):
    """A draw pushed out of its bounds fails world_draws/consistency (ERROR); world_arrays is not built."""
    from macro_data import defs

    _, recipe, root = nk_run
    store = root / "tiny" / "0.1.0" / "nk.zarr"
    theta = zarr.open_array(str(store / "theta"), mode="r+")
    before = zarr.open_array(str(store / "trajectories"), mode="r").attrs["macro_data"]["run_id"]
    theta[7, get_world("nk").index("kappa")] = 0.9  # bounds 0.01 - 0.5
    job = dg.define_asset_job(
        "checks_then_arrays",
        selection=dg.AssetSelection.checks_for_assets("world_draws") | dg.AssetSelection.assets("world_arrays"),
    )
    d = dg.Definitions(
        assets=list(defs.assets), asset_checks=list(defs.asset_checks), jobs=[job], resources=dict(defs.resources)
    )
    result = d.resolve_job_def("checks_then_arrays").execute_in_process(
        instance=instance, partition_key="nk", run_config=run_config(recipe, root), raise_on_error=False
    )
    assert not result.success
    ev = evaluations(result)
    bad = ev[("world_draws", "consistency")]
    assert not bad.passed and bad.severity == dg.AssetCheckSeverity.ERROR
    assert "sample 7" in bad.description and "'kappa' = 0.9" in bad.description
    assert not ev[("world_draws", "integrity")].passed  # the content hash changed too
    assert [m.asset_key.to_user_string() for m in result.get_asset_materialization_events()] == []
    assert "world_arrays" not in [e.step_key for e in result.get_step_success_events()]
    assert zarr.open_array(str(store / "trajectories"), mode="r").attrs["macro_data"]["run_id"] == before


def _check_evaluation(instance, asset: str, name: str, run_id: str):
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey(asset), name), limit=200
    )
    return next(h.event.dagster_event.event_specific_data for h in history if h.run_id == run_id)


def test_dataset_run_writes_the_report(tiny_dataset, instance):
    _, _, dataset_dir = tiny_dataset
    html_path = str(dataset_dir / "validation_report.html")
    # the session's instance is shared with other tests: find the run that built this dataset
    records = instance.fetch_materializations(dg.AssetKey("validation_report"), limit=200).records
    record = next(r for r in records if r.asset_materialization.metadata["html"].value == html_path)
    meta = record.asset_materialization.metadata
    assert (dataset_dir / "validation_report.html").is_file()
    doc = json.loads((dataset_dir / "validation_report.json").read_text())
    assert meta["score"].value == doc["score"]["value"]
    assert meta["status"].value == doc["status"]
    assert "| world | score |" in meta["summary"].value
    assert doc["summary"]["fail"] == 0
    assert _check_evaluation(instance, "dataset_manifest", "consistency", record.run_id).passed
    verdict = _check_evaluation(instance, "validation_report", "passed", record.run_id)
    assert verdict.passed == (doc["status"] == "pass")
    assert verdict.severity == dg.AssetCheckSeverity.WARN  # no error-level failure: at most a warning
