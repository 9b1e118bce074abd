"""Sensors: rebuild what a changed recipe or external-data registry affects.

The cursor holds the hashes last seen. The first tick only records them; afterwards a changed
recipe hash requests one run per world of the recipe (tagged with the recipe's name and hash), and
a changed or added registry entry requests a fetch-and-verify run of that entry. A file that no
longer loads is reported as a skip reason naming the file and field, and the cursor is kept, so
fixing the file triggers the runs.
"""

from __future__ import annotations

import json

import dagster as dg

from macro_data.errors import MacroDataError
from macro_data.external.registry import load_registry
from macro_data.orchestration.assets import external
from macro_data.orchestration.jobs import build_world_job, fetch_external_job
from macro_data.orchestration.schedules import world_run_requests
from macro_data.recipes import load_recipe, resolve_recipe_path


@dg.sensor(
    jobs=[build_world_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the configured recipe file ($MACRO_DATA_RECIPE); when its content hash changes, "
    "requests a run per world partition of the recipe.",
)
def recipe_change_sensor(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    try:
        path = resolve_recipe_path(None)
        recipe = load_recipe(path)
    except MacroDataError as exc:
        return dg.SkipReason(f"recipe cannot be loaded, nothing requested: {exc}")
    seen = cursor.get("recipe_sha256")
    new_cursor = json.dumps({**cursor, "recipe_sha256": recipe.sha256})
    if seen is None:
        return dg.SensorResult(skip_reason=f"recorded recipe {recipe.name} ({recipe.sha256[:12]})", cursor=new_cursor)
    if seen == recipe.sha256:
        return dg.SensorResult(skip_reason=f"recipe {recipe.name} unchanged ({recipe.sha256[:12]})", cursor=new_cursor)
    context.log.info(f"recipe {path} changed: {seen[:12]} -> {recipe.sha256[:12]}")
    return dg.SensorResult(run_requests=world_run_requests(str(path), "recipe-change"), cursor=new_cursor)


@dg.sensor(
    jobs=[fetch_external_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the external-data registry ($MACRO_DATA_REGISTRY); when an entry is added or its "
    "content (URLs, hash, size, columns...) changes, requests a fetch-and-verify run of it.",
)
def registry_change_sensor(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else None
    try:
        registry = load_registry(None)
    except MacroDataError as exc:
        return dg.SkipReason(f"registry cannot be loaded, nothing requested: {exc}")
    seen = {name: e.entry_sha256 for name, e in registry.entries.items()}
    if cursor is None:
        return dg.SensorResult(skip_reason=f"recorded {len(seen)} registry entries", cursor=json.dumps(seen))
    asset = next(a for a in external.assets if a.key == dg.AssetKey("external_dataset"))
    known = set(asset.partitions_def.get_partition_keys())
    requests, notes = [], []
    for name, entry in registry.entries.items():
        if cursor.get(name) == entry.entry_sha256:
            continue
        if not entry.pinned:
            notes.append(f"{name}: changed but unpinned (run `macro-data pin {name}`)")
        elif name not in known:
            notes.append(f"{name}: new entry; reload the code location to add its partition")
        else:
            requests.append(
                dg.RunRequest(
                    run_key=f"registry-change:{name}:{entry.entry_sha256[:12]}",
                    partition_key=name,
                    tags={"macro_data/registry_entry": name, "macro_data/entry_sha256": entry.entry_sha256},
                )
            )
    for note in notes:
        context.log.info(note)
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(notes) or "registry unchanged", cursor=json.dumps(seen))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen))
