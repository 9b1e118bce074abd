"""Schedules: the periodic backfill of every world partition of the configured recipe."""

from __future__ import annotations

import dagster as dg

from macro_data.errors import MacroDataError
from macro_data.orchestration.jobs import build_world_job
from macro_data.recipes import load_recipe, resolve_recipe_path

BACKFILL_CRON = "0 3 * * 0"  # Sundays 03:00 UTC


def recipe_tags(name: str, sha256: str) -> dict[str, str]:
    return {"macro_data/recipe": name, "macro_data/recipe_sha256": sha256}


def world_run_requests(recipe_spec: str | None, run_key_prefix: str) -> list[dg.RunRequest]:
    """One run per world of the recipe, with the recipe pinned in run config (what was checked is what runs)."""
    path = resolve_recipe_path(recipe_spec)
    recipe = load_recipe(path)
    config = {"resources": {"recipe": {"config": {"recipe": str(path)}}}}
    return [
        dg.RunRequest(
            run_key=f"{run_key_prefix}:{recipe.name}@{recipe.version}:{recipe.sha256[:12]}:{w}",
            partition_key=w,
            run_config=config,
            tags=recipe_tags(recipe.name, recipe.sha256),
        )
        for w in recipe.world_ids
    ]


@dg.schedule(
    job=build_world_job,
    cron_schedule=BACKFILL_CRON,
    execution_timezone="UTC",
    description="Weekly backfill: one run per world partition of the configured recipe "
    "($MACRO_DATA_RECIPE, default `default`); the all-worlds assets follow by declarative "
    "automation once every world partition is fresh.",
)
def weekly_world_backfill(context: dg.ScheduleEvaluationContext):
    date = context.scheduled_execution_time.strftime("%Y-%m-%d")
    try:
        return world_run_requests(None, f"backfill-{date}")
    except MacroDataError as exc:
        return dg.SkipReason(f"recipe cannot be loaded: {exc}")
