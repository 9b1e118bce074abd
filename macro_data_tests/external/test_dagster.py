"""The Dagster layer: partitioned external_dataset asset, its asset check, and the real-data moments asset."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from macro_data.external.real_data import summarize
from macro_data.orchestration.assets import external as ext_assets
from macro_data.orchestration.assets.external import GROUP, build_external_assets
from macro_data.orchestration.resources.external import ExternalDataResource

from .conftest import MACRODATA_SHA256, MACRODATA_SIZE, macro_entry, macrodata_path


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
    assets, checks = build_external_assets(env["registry"], allow_http_hosts="127.0.0.1")
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
    assert ds.partitions_def.get_partition_keys()[0] == "us_macro_statsmodels"
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
    assert ds.partitions_def.get_partition_keys() == ["us_macro_statsmodels", "later"]
    instance = dg.DagsterInstance.ephemeral()
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
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "run `macro-data pin later`" in failure.event_specific_data.error.cause.message
    assert sum(server.hits.values()) == 0


def test_us_macro_moments(setup, env):
    assets, checks, resources = setup
    assert [a.key.to_user_string() for a in assets] == ["external_dataset", "us_macro_moments"]
    instance = dg.DagsterInstance.ephemeral()
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
