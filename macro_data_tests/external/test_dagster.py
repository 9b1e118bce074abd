"""The Dagster layer: partitioned external_dataset asset, its asset check, and the real-data moments asset;
the registry's entries as dynamic partitions (a malformed registry fails the assets, not the code location)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from macro_data.external.real_data import summarize
from macro_data.orchestration.assets import external as ext_assets
from macro_data.orchestration.assets.external import EXTERNAL_PARTITIONS, GROUP, build_external_assets
from macro_data.orchestration.resources.external import ExternalDataResource
from macro_data.orchestration.sensors import partition_changes, registry_change_sensor, registry_partitions_sensor

from .conftest import MACRODATA_SHA256, MACRODATA_SIZE, macro_entry, macrodata_path, write_registry


@pytest.fixture
def setup(env, make_registry, server):
    make_registry(
        [
            macro_entry(
                "us_macro_statsmodels", [server.url("/missing/macrodata.csv"), server.url("/ok/macrodata.csv")]
            ),
            macro_entry("later", [server.url("/ok/x.csv")], sha256=None, size=None, pinned=False, filename="x.csv"),
        ]
    )
    assets, checks = build_external_assets()
    resource = ExternalDataResource(
        registry_path=str(env["registry"]),
        data_root=str(env["root"]),
        allow_http_hosts=["127.0.0.1"],
        read_timeout_s=2.0,
        attempts_per_url=1,
        backoff_base_s=0.01,
        deadline_s=20.0,
    )
    return assets, checks, {"external_data": resource}


def _tick(sensor, instance: dg.DagsterInstance, cursor: str | None = None):
    """Evaluate ``sensor`` and apply its partition requests to ``instance`` (as the sensor daemon does)."""
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    for req in getattr(result, "dynamic_partitions_requests", None) or []:
        if isinstance(req, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(req.partitions_def_name, req.partition_keys)
        else:
            for key in req.partition_keys:
                instance.delete_dynamic_partition(req.partitions_def_name, key)
    return result


def _partitioned_instance() -> dg.DagsterInstance:
    """An ephemeral instance whose external_dataset partitions were added by the partitions sensor."""
    instance = dg.DagsterInstance.ephemeral()
    _tick(registry_partitions_sensor, instance)
    return instance


def _materializations(result, key="external_dataset"):
    return [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key == dg.AssetKey(key)
    ]


def test_module_level_objects_are_wired():
    keys = {a.key.to_user_string() for a in ext_assets.assets}
    assert keys == {"external_dataset", "us_macro_moments"}
    assert ext_assets.GROUP == GROUP == "external"
    assert isinstance(ext_assets.resources["external_data"], ExternalDataResource)
    ds = next(a for a in ext_assets.assets if a.key == dg.AssetKey("external_dataset"))
    assert ds.partitions_def == EXTERNAL_PARTITIONS
    for a in ext_assets.assets:
        spec = next(iter(a.specs))
        assert spec.group_name == "external" and spec.description and spec.code_version
        assert spec.kinds and len(spec.kinds) >= 2
    assert next(iter(ds.specs)).kinds == {"csv", "http"}
    (check,) = ext_assets.asset_checks
    assert {(k.asset_key.to_user_string(), k.name) for k in check.check_keys} == {
        ("external_dataset", "cached_file_verified")
    }
    defs = dg.Definitions(
        assets=ext_assets.assets, asset_checks=ext_assets.asset_checks, resources=ext_assets.resources
    )
    defs.resolve_all_job_defs()


def test_materialize_partition_with_check(setup, server):
    assets, checks, resources = setup
    ds = assets[0]
    instance = _partitioned_instance()
    assert ds.partitions_def.get_partition_keys(dynamic_partitions_store=instance) == ["us_macro_statsmodels", "later"]
    result = dg.materialize([ds, *checks], partition_key="us_macro_statsmodels", resources=resources, instance=instance)
    assert result.success
    (mat,) = _materializations(result)
    md = mat.metadata
    assert mat.partition == "us_macro_statsmodels"
    assert md["url"] == dg.MetadataValue.url(server.url("/ok/macrodata.csv"))
    assert md["mirror_index"].value == 1 and md["cache"].value == "downloaded"
    assert md["sha256"].value == MACRODATA_SHA256 and md["size_bytes"].value == MACRODATA_SIZE
    assert md["rows"].value == 203 and md["dagster/row_count"].value == 203
    assert md["columns"].value.startswith("year, quarter, realgdp")
    assert isinstance(md["path"], dg.PathMetadataValue)
    assert md["path"].value.endswith(f"{MACRODATA_SHA256}/macrodata.csv")
    assert [c.name for c in md["dagster/column_schema"].schema.columns][:2] == ["year", "quarter"]
    assert mat.tags["dagster/data_version"] == MACRODATA_SHA256
    (ev,) = result.get_asset_check_evaluations()
    assert ev.passed and ev.check_name == "cached_file_verified"
    assert ev.metadata["partition"].value == "us_macro_statsmodels"
    assert ev.metadata["entries"].value["us_macro_statsmodels"]["status"] == "ok"
    assert ev.metadata["entries"].value["later"]["status"] == "unpinned"
    # provenance carries the Dagster run id
    prov = (resources["external_data"].root() / "external" / "provenance.jsonl").read_text().splitlines()
    fetches = [json.loads(x) for x in prov if json.loads(x)["event"] == "fetch"]
    assert fetches[-1]["run_id"] == result.run_id

    # corrupt the cached file: the check, run on its own, fails and quarantines it; the next materialization heals
    path = md["path"].value
    with open(path, "r+b") as f:
        f.write(b"X")
    job = dg.define_asset_job("verify_external", selection=dg.AssetSelection.checks(*checks))
    defs = dg.Definitions(assets=[ds], asset_checks=checks, resources=resources, jobs=[job])
    check_only = defs.resolve_job_def("verify_external").execute_in_process(instance=instance, raise_on_error=False)
    assert not _materializations(check_only)  # the check ran alone
    (ev,) = check_only.get_asset_check_evaluations()
    assert not ev.passed and ev.metadata["partition"].value == "(all)"
    assert ev.metadata["entries"].value["us_macro_statsmodels"]["status"] == "corrupt"
    assert ev.description.startswith("us_macro_statsmodels: corrupt (sha256 mismatch: expected " + MACRODATA_SHA256)
    assert not os.path.exists(path)
    again = dg.materialize([ds], partition_key="us_macro_statsmodels", resources=resources, instance=instance)
    (mat,) = _materializations(again)
    assert mat.metadata["cache"].value == "downloaded" and server.hits["/ok/macrodata.csv"] == 2


def test_unpinned_partition_fails_with_the_pin_instruction(setup, server):
    assets, checks, resources = setup
    result = dg.materialize(
        [assets[0]],
        partition_key="later",
        resources=resources,
        instance=_partitioned_instance(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "run `macro-data pin later`" in failure.event_specific_data.error.cause.message
    assert sum(server.hits.values()) == 0


def test_us_macro_moments(setup, env):
    assets, checks, resources = setup
    assert [a.key.to_user_string() for a in assets] == ["external_dataset", "us_macro_moments"]
    instance = _partitioned_instance()
    result = dg.materialize(
        assets, resources=resources, instance=instance, selection=dg.AssetSelection.assets("us_macro_moments")
    )
    assert result.success
    (mat,) = _materializations(result, "us_macro_moments")
    md = mat.metadata
    out = env["root"] / "external" / "derived" / "us_macro_moments.json"
    assert md["path"].value == str(out)
    written = json.loads(out.read_text())
    expected = summarize(macrodata_path(), source_sha256=MACRODATA_SHA256)  # same file, computed directly
    assert written == json.loads(json.dumps(expected))
    assert md["output_sd"].value == pytest.approx(expected["moments"]["observables"]["output"]["sd"])
    assert md["rate_autocorr1"].value == pytest.approx(expected["moments"]["observables"]["rate"]["autocorr1"])
    assert "| output |" in md["moments"].value and md["sample"].value == "1959Q2-2009Q3 (202 quarters)"
    assert mat.tags["dagster/data_version"] == expected["summary_sha256"]


def test_partition_changes():
    assert partition_changes(["a", "b", "c"], ["b", "old"]) == (["a", "c"], ["old"])
    assert partition_changes([], []) == ([], [])


def _failure_message(result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.event_specific_data.error.message


def test_malformed_registry_fails_the_assets_not_the_code_location(setup, env):
    assets, checks, resources = setup
    instance = _partitioned_instance()
    registry = env["registry"]
    good = registry.read_text()
    registry.write_text(good.replace("  urls:", "  urls: [unclosed", 1))
    line = (
        registry.read_text().splitlines().index(next(x for x in registry.read_text().splitlines() if "[unclosed" in x))
    )

    # the code location loads (in a fresh process: the registry is read by nothing at load time)
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dagster"), "definitions", "validate", "-m", "macro_data"],
        cwd=env["tmp"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "DAGSTER_HOME": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful for code location macro_data" in proc.stdout + proc.stderr

    # materializing a partition fails with the registry's file, line and problem
    result = dg.materialize(
        [assets[0]], partition_key="later", resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    message = _failure_message(result)
    assert "the external-data registry cannot be used" in message and str(registry) in message
    assert f"line {line + 1}" in message and "invalid YAML" in message
    # so does the moments asset, and the partitions are left as they are
    moments = dg.materialize(
        assets,
        resources=resources,
        instance=instance,
        raise_on_error=False,
        selection=dg.AssetSelection.assets("us_macro_moments"),
    )
    assert not moments.success and str(registry) in _failure_message(moments)
    skipped = _tick(registry_partitions_sensor, instance)
    assert str(registry) in skipped.skip_message and "partitions left as they are" in skipped.skip_message
    assert instance.get_dynamic_partitions("external_dataset") == ["us_macro_statsmodels", "later"]


def test_registry_edit_adds_and_removes_partitions_without_reload(setup, env, server):
    assets, checks, resources = setup
    instance = _partitioned_instance()
    assert _tick(registry_partitions_sensor, instance).skip_message == "partitions match the registry (2 entries)"
    change_cursor = _tick(registry_change_sensor, instance).cursor
    # a new pinned entry: the partition appears after the next tick, same code location objects
    write_registry(
        env["registry"],
        [
            macro_entry("us_macro_statsmodels", [server.url("/ok/macrodata.csv")]),
            macro_entry("us_macro_copy", [server.url("/ok/macrodata.csv")]),
        ],
    )
    changed = _tick(registry_change_sensor, instance, cursor=change_cursor)  # adds the partition and requests its run
    assert [r.partition_key for r in changed.run_requests] == ["us_macro_statsmodels", "us_macro_copy"]
    assert instance.get_dynamic_partitions("external_dataset") == ["us_macro_statsmodels", "us_macro_copy"]
    result = dg.materialize([assets[0]], partition_key="us_macro_copy", resources=resources, instance=instance)
    assert result.success and _materializations(result)[0].metadata["sha256"].value == MACRODATA_SHA256
    # removing an entry removes its partition
    write_registry(env["registry"], [macro_entry("us_macro_statsmodels", [server.url("/ok/macrodata.csv")])])
    _tick(registry_partitions_sensor, instance)
    assert instance.get_dynamic_partitions("external_dataset") == ["us_macro_statsmodels"]
