"""Sensors: rebuild what a changed recipe (or external-data registry) affects.

The cursor holds the hashes last seen. The first tick only records them; afterwards a changed
recipe hash requests one run per world of the recipe (tagged with the recipe's name and hash).
A recipe that no longer loads is reported as a skip reason naming the file and field, and the
cursor is kept, so fixing the file triggers the rebuild.
"""

from __future__ import annotations

import json

import dagster as dg

from macro_data.errors import MacroDataError
from macro_data.jobs import build_world_job
from macro_data.recipes import load_recipe, resolve_recipe_path
from macro_data.schedules import world_run_requests


@dg.sensor(jobs=[build_world_job], minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Watches the configured recipe file ($MACRO_DATA_RECIPE); when its content hash changes, "
                       "requests a run per world partition of the recipe.")
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
