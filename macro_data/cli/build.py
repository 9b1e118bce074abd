"""``macro-data build``: build a whole dataset through the Dagster asset graph.

One run per world partition (draws, arrays, splits, train-split statistics), then the all-worlds
assets (manifest, and the validation report once it exists), all recorded in the Dagster instance
at ``$DAGSTER_HOME`` (default ``./.dagster_home`` in the working directory), so ``dagster dev``
shows them afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from macro_data import paths, progress
from macro_data.progress import TerminalBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="build a dataset (all worlds, splits, manifest) through Dagster",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--recipe",
        default=None,
        help="recipe name (./datasets/recipes/NAME.yaml or a shipped recipe) or a path "
        "(default: $MACRO_DATA_RECIPE or 'default')",
    )
    p.add_argument("--root", default=None, help="output root (default: $MACRO_DATA_ROOT or ./datasets/build)")
    p.add_argument("--worlds", default=None, help="comma-separated subset of the recipe's worlds (default: all)")
    p.add_argument("--skip-dataset", action="store_true", help="build the world partitions only")
    p.add_argument(
        "--replace",
        action="store_true",
        help="rebuild a published version from a different recipe; the published data stays until the new "
        "version is complete (without it, a recipe other than the version's is refused)",
    )
    p.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    p.add_argument("--verbose", action="store_true", help="show Dagster's event log on the console")
    p.set_defaults(handler=run)


def run_config(
    recipe: str | None, root: str | None, quiet: bool = False, replace: bool = False, force: bool = False
) -> dict:
    storage = {"root": root, "replace": replace, "force": force}
    config: dict = {"resources": {"recipe": {"config": {"recipe": recipe}}, "storage": {"config": storage}}}
    if quiet:  # the instance still records every event; only the console stays readable
        config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
    return config


def failure_messages(result) -> list[str]:
    out = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            err = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            out.append(f"{event.step_key}: {user.description if user and user.description else err.message.strip()}")
    return out or ["run failed (see the Dagster run log)"]


def run(args: argparse.Namespace) -> int:
    bar = TerminalBar()
    progress.add_listener(bar)
    try:
        return _build(args)
    finally:
        progress.remove_listener(bar)


def up_to_date_worlds(recipe, worlds: list[str], dataset_dir: str) -> list[str]:
    """Worlds whose stages are all published for this recipe and this code: nothing to run."""
    from macro_data.pipeline import stage, world_arrays, world_draws, world_splits, world_stats
    from macro_data.storage.publish import world_store
    from macro_data.versioning import code_version, for_world
    from macro_data.worlds import get_world

    specs = (world_draws.SPEC, world_arrays.SPEC, world_splits.SPEC, world_stats.SPEC)
    return [
        w
        for w in worlds
        if all(
            stage.published_state(
                s, recipe, w, world_store(dataset_dir, w), for_world(code_version(s.name), get_world(w))
            )
            is not None
            for s in specs
        )
    ]


def dataset_up_to_date(recipe, root: str, replace: bool) -> bool:
    from macro_data.pipeline.manifest import published_manifest
    from macro_data.validation.report import published_report
    from macro_data.versioning import code_version

    return (
        published_manifest(recipe, root, replace) is not None
        and published_report(recipe.dataset_dir(root), code_version("validation_report")) is not None
    )


def _build(args: argparse.Namespace) -> int:
    from macro_data.pipeline import release
    from macro_data.recipes import load_recipe

    recipe = load_recipe(args.recipe)  # fail fast, before any run, on a bad recipe
    worlds = recipe.world_ids
    if args.worlds:
        asked = [w.strip() for w in args.worlds.split(",") if w.strip()]
        for w in asked:
            recipe.world(w)
        worlds = asked
    root = args.root if not args.root or "://" in args.root else str(Path(args.root).resolve())
    resolved_root = root or str(paths.data_root())
    target = release.target(recipe, resolved_root, args.replace)
    release.check(recipe, target)  # a recipe other than the version's is refused before anything is written
    t0 = time.perf_counter()
    into = f"{target.final_dir}" + (f" (replacement built in {target.dataset_dir})" if target.replacing else "")
    print(f"building {recipe.name} {recipe.version} ({', '.join(worlds)}) into {into}")
    current = [] if args.force else up_to_date_worlds(recipe, worlds, target.dataset_dir)
    for w in current:
        print(f"world {w}: up to date (recipe, code and data versions match): skipped")
    pending = [w for w in worlds if w not in current]
    with_dataset = not args.skip_dataset and not args.worlds
    if with_dataset and not pending and not args.force and dataset_up_to_date(recipe, resolved_root, args.replace):
        print(f"manifest and validation report: up to date: skipped\nnothing to do ({time.perf_counter() - t0:.1f} s)")
        return 0
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(Path.cwd() / ".dagster_home")
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # a fresh local instance: SQLite defaults, no telemetry
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    import dagster as dg

    from macro_data.orchestration.definitions import defs

    recipe_arg = str(Path(args.recipe).resolve()) if args.recipe and Path(args.recipe).is_file() else args.recipe
    config = run_config(recipe_arg, root, quiet=not args.verbose, replace=args.replace, force=args.force)
    instance = dg.DagsterInstance.get()
    tags = {"macro_data/recipe": recipe.name, "macro_data/recipe_sha256": recipe.sha256[:16]}
    print(f"Dagster instance {os.environ['DAGSTER_HOME']}")
    world_job = defs.resolve_job_def("build_world")
    for w in pending:
        t = time.perf_counter()
        result = world_job.execute_in_process(
            instance=instance, partition_key=w, run_config=config, tags=tags, raise_on_error=False
        )
        if not result.success:
            print(f"world {w}: FAILED (run {result.run_id})", file=sys.stderr)
            for line in failure_messages(result):
                print(f"  {line}", file=sys.stderr)
            return 1
        print(
            f"world {w}: {recipe.world(w).n_samples} samples in {time.perf_counter() - t:.1f} s (run {result.run_id})"
        )
    if with_dataset:
        result = defs.resolve_job_def("build_dataset_files").execute_in_process(
            instance=instance, run_config=config, tags=tags, raise_on_error=False
        )
        if not result.success:
            print(f"dataset stages: FAILED (run {result.run_id})", file=sys.stderr)
            for line in failure_messages(result):
                print(f"  {line}", file=sys.stderr)
            return 1
        print(f"dataset stages done (run {result.run_id})")
    print(f"done in {time.perf_counter() - t0:.1f} s: {target.final_dir}")
    return 0
