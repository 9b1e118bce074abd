"""Sensors: rebuild what a changed recipe or external-data registry affects, and keep the
registry's partitions in step with the file.

The cursor holds the hashes last seen. The first tick only records them; afterwards a changed
recipe hash requests one run per world of the recipe (tagged with the recipe's name and hash), and
a changed or added registry entry requests a fetch-and-verify run of that entry. A file that no
longer loads is reported as a skip reason naming the file and field, and the cursor is kept, so
fixing the file triggers the runs.

``registry_partitions_sensor`` (running by default) adds a partition of ``external_dataset`` for
each registry entry and removes those of removed entries, so a registry edit needs no reload of the
code location; a registry that does not load leaves the partitions as they are.
"""

from __future__ import annotations

import json

import dagster as dg

from macro_data.errors import MacroDataError
from macro_data.external.registry import Registry, load_registry
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


def partition_changes(entries: list[str], partitions: list[str]) -> tuple[list[str], list[str]]:
    """``(to_add, to_delete)``: the partition keys that make ``partitions`` the registry's ``entries``."""
    have, want = set(partitions), set(entries)
    return [n for n in entries if n not in have], [k for k in partitions if k not in want]


def _partition_requests(context: dg.SensorEvaluationContext, registry: Registry) -> list:
    known = context.instance.get_dynamic_partitions(external.EXTERNAL_PARTITIONS.name)
    add, delete = partition_changes(registry.names, list(known))
    requests: list = []
    if add:
        requests.append(external.EXTERNAL_PARTITIONS.build_add_request(add))
    if delete:
        requests.append(external.EXTERNAL_PARTITIONS.build_delete_request(delete))
    return requests


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the partitions of external_dataset in step with the external-data registry "
    "($MACRO_DATA_REGISTRY): one partition per entry, added and removed as the file changes (no reload).",
)
def registry_partitions_sensor(context: dg.SensorEvaluationContext):
    try:
        registry = load_registry(None)
    except MacroDataError as exc:
        return dg.SkipReason(f"registry cannot be loaded, partitions left as they are: {exc}")
    requests = _partition_requests(context, registry)
    if not requests:
        return dg.SkipReason(f"partitions match the registry ({len(registry.names)} entries)")
    return dg.SensorResult(dynamic_partitions_requests=requests)


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
    requests, notes = [], []
    for name, entry in registry.entries.items():
        if cursor.get(name) == entry.entry_sha256:
            continue
        if not entry.pinned:
            notes.append(f"{name}: changed but unpinned (run `macro-data pin {name}`)")
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
    partitions = _partition_requests(context, registry)  # a new entry's partition, before its run
    if not requests:
        return dg.SensorResult(
            skip_reason="; ".join(notes) or "registry unchanged",
            cursor=json.dumps(seen),
            dynamic_partitions_requests=partitions,
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen), dynamic_partitions_requests=partitions)
