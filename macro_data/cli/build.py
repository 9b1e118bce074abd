"""``macro-data build``: build a whole dataset through the Dagster asset graph.

One run per world partition (draws, arrays, splits), then the all-worlds assets (manifest, and
the validation report once it exists), all recorded in the Dagster instance at ``$DAGSTER_HOME``
(default ``./.dagster_home`` in the working directory), so ``dagster dev`` shows them afterwards.
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
    p.add_argument("--verbose", action="store_true", help="show Dagster's event log on the console")
    p.set_defaults(handler=run)


def run_config(recipe: str | None, root: str | None, quiet: bool = False) -> dict:
    config: dict = {"resources": {"recipe": {"config": {"recipe": recipe}}, "storage": {"config": {"root": root}}}}
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


def _build(args: argparse.Namespace) -> int:
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(Path.cwd() / ".dagster_home")
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # a fresh local instance: SQLite defaults, no telemetry
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    import dagster as dg

    from macro_data.definitions import defs
    from macro_data.recipes import load_recipe

    recipe = load_recipe(args.recipe)  # fail fast, before any run, on a bad recipe
    worlds = recipe.world_ids
    if args.worlds:
        asked = [w.strip() for w in args.worlds.split(",") if w.strip()]
        for w in asked:
            recipe.world(w)
        worlds = asked
    root = args.root if not args.root or "://" in args.root else str(Path(args.root).resolve())
    recipe_arg = str(Path(args.recipe).resolve()) if args.recipe and Path(args.recipe).is_file() else args.recipe
    config = run_config(recipe_arg, root, quiet=not args.verbose)
    instance = dg.DagsterInstance.get()
    tags = {"macro_data/recipe": recipe.name, "macro_data/recipe_sha256": recipe.sha256[:16]}
    t0 = time.perf_counter()
    print(
        f"building {recipe.name} {recipe.version} ({', '.join(worlds)}) into "
        f"{recipe.dataset_dir(root or paths.data_root())}; Dagster instance {os.environ['DAGSTER_HOME']}"
    )
    world_job = defs.resolve_job_def("build_world")
    for w in worlds:
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
    if not args.skip_dataset and not args.worlds:
        result = defs.resolve_job_def("build_dataset_files").execute_in_process(
            instance=instance, run_config=config, tags=tags, raise_on_error=False
        )
        if not result.success:
            print(f"dataset stages: FAILED (run {result.run_id})", file=sys.stderr)
            for line in failure_messages(result):
                print(f"  {line}", file=sys.stderr)
            return 1
        print(f"dataset stages done (run {result.run_id})")
    print(f"done in {time.perf_counter() - t0:.1f} s: {recipe.dataset_dir(root or paths.data_root())}")
    return 0
