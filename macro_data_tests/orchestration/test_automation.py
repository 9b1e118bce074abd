"""Schedules, sensors and declarative automation, evaluated against real instances and definitions."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest
import yaml

from macro_data_tests.conftest import build_world, write_recipe


@pytest.fixture
def recipe_env(tmp_path, monkeypatch):
    path = write_recipe(tmp_path, n=64, worlds=("nk", "rbc"))
    monkeypatch.setenv("MACRO_DATA_RECIPE", str(path))
    monkeypatch.setenv("MACRO_DATA_ROOT", str(tmp_path / "root"))
    return path


def test_schedule_requests_one_valid_run_per_recipe_world(recipe_env):
    from macro_data import defs
    from macro_data.orchestration.schedules import weekly_world_backfill

    ctx = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 29, 3, tzinfo=dt.UTC))
    requests = weekly_world_backfill(ctx)
    assert [r.partition_key for r in requests] == ["nk", "rbc"]
    job = defs.resolve_job_def("build_world")
    for r in requests:
        dg.validate_run_config(job, r.run_config)  # raises if the config does not fit the job
        assert r.run_key.startswith("backfill-2026-11-29:tiny@0.1.0:") and r.run_key.endswith(f":{r.partition_key}")
        assert r.tags["macro_data/recipe"] == "tiny" and len(r.tags["macro_data/recipe_sha256"]) == 64
        assert r.run_config["resources"]["recipe"]["config"]["recipe"] == str(recipe_env)


def test_schedule_skips_with_reason_on_a_bad_recipe(tmp_path, monkeypatch):
    from macro_data.orchestration.schedules import weekly_world_backfill

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1.0.0\nseed: 1\nT: 0\nH: 1\nworlds: {nk: {n_samples: 1}}\n")
    monkeypatch.setenv("MACRO_DATA_RECIPE", str(bad))
    result = weekly_world_backfill(dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 1, 4, 3)))
    assert isinstance(result, dg.SkipReason) and "field T" in result.skip_message and str(bad) in result.skip_message


def test_recipe_sensor_records_then_requests_on_change(recipe_env, tmp_path):
    from macro_data.orchestration.sensors import recipe_change_sensor

    first = recipe_change_sensor(dg.build_sensor_context())
    assert not first.run_requests and "recorded recipe tiny" in first.skip_reason.skip_message
    same = recipe_change_sensor(dg.build_sensor_context(cursor=first.cursor))
    assert not same.run_requests and "unchanged" in same.skip_reason.skip_message
    doc = yaml.safe_load(recipe_env.read_text())
    doc["seed"] = 99
    recipe_env.write_text(yaml.safe_dump(doc))
    changed = recipe_change_sensor(dg.build_sensor_context(cursor=same.cursor))
    assert [r.partition_key for r in changed.run_requests] == ["nk", "rbc"]
    assert json.loads(changed.cursor)["recipe_sha256"] == changed.run_requests[0].tags["macro_data/recipe_sha256"]
    recipe_env.write_text("name: tiny\nversion: 1.0.0\nseed: 1\nT: 5\nH: 1\nworlds: {nk: {n_samples: -3}}\n")
    broken = recipe_change_sensor(dg.build_sensor_context(cursor=changed.cursor))
    assert "worlds/nk/n_samples" in broken.skip_message


@pytest.mark.slow
def test_dataset_assets_wait_for_every_world_partition(tmp_path):
    from macro_data import defs
    from macro_data.worlds import world_ids

    WORLD_IDS = world_ids()  # every partition of the catalog, model-file worlds included
    recipe = write_recipe(tmp_path, n=32, T=6, H=2, worlds=WORLD_IDS)
    root = tmp_path / "root"
    selection = dg.AssetSelection.groups("dataset")
    with dg.instance_for_test() as instance:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        assert result.total_requested == 0
        for w in WORLD_IDS[:-1]:
            build_world(instance, recipe, root, w)
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=result.cursor
        )
        assert result.total_requested == 0, "requested before every world partition exists"
        build_world(instance, recipe, root, WORLD_IDS[-1])
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=result.cursor
        )
        assert result.get_num_requested(dg.AssetKey("dataset_manifest")) == 1
        again = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=result.cursor
        )
        assert again.total_requested == 0, "requested twice for the same update"


def test_registry_sensor_requests_changed_pinned_entries(tmp_path, monkeypatch):
    from macro_data import paths
    from macro_data.orchestration.sensors import registry_change_sensor

    registry = tmp_path / "external.yaml"
    registry.write_text(paths.packaged("external.yaml").read_text())
    monkeypatch.setenv("MACRO_DATA_REGISTRY", str(registry))
    instance = dg.DagsterInstance.ephemeral()  # holds the registry's partitions
    first = registry_change_sensor(dg.build_sensor_context(instance=instance))
    assert "recorded" in first.skip_reason.skip_message
    same = registry_change_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert not same.run_requests
    doc = yaml.safe_load(registry.read_text())
    entry = next(e for e in doc["datasets"] if e["name"] == "us_macro_statsmodels")
    entry["urls"] = list(reversed(entry["urls"]))  # a mirror order change is a change of the entry
    registry.write_text(yaml.safe_dump(doc, sort_keys=False))
    changed = registry_change_sensor(dg.build_sensor_context(instance=instance, cursor=same.cursor))
    assert [r.partition_key for r in changed.run_requests] == ["us_macro_statsmodels"]
    assert changed.run_requests[0].tags["macro_data/registry_entry"] == "us_macro_statsmodels"
    registry.write_text("version: 1\ndatasets: [{name: BAD NAME}]\n")
    broken = registry_change_sensor(dg.build_sensor_context(instance=instance, cursor=changed.cursor))
    assert str(registry) in broken.skip_message
