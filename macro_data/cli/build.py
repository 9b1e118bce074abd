"""``macro-data build``: build a whole dataset through the Dagster asset graph.

One run per world partition (draws, arrays, splits, train-split statistics), then the all-worlds
assets (manifest, and the validation report once it exists), all recorded in the Dagster instance
at ``$DAGSTER_HOME`` (default ``./.dagster_home`` in the working directory), so ``dagster dev``
shows them afterwards.

World runs are independent (each world has its own seed streams and its own store), so up to
``--jobs`` of them run at once, each in a worker process of its own: the simulators hold the GIL,
so threads would not use a second core. A worker imports the code location and opens the instance
once and then runs the worlds it is given, costliest first, so the slow world does not start last;
the first worker left without a world then runs the dataset run. The first worker starts first
thing and imports while this process reads the recipe and finds what is up to date; it is stopped
at once when nothing is left to run. The data do not depend on ``--jobs`` (see the bit-identity
test of the parallel build).

Dagster's default SQLite storage opens a connection for every event it writes. Each process that
executes runs (a lane, or this one with ``--jobs 1``) keeps idle connections to the instance's runs,
its event index and the current run's events, so that those closes do not checkpoint and delete a
write-ahead log after every event (:mod:`macro_data.sqlite_keepalive`).
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures as cf
import gc
import multiprocessing
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from macro_data import paths, progress
from macro_data.compute import MAX_DEFAULT_WORKERS, default_workers, spawn_pool
from macro_data.progress import TerminalBar
from macro_data.sqlite_keepalive import IdleConnections


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
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="world runs at once, each in a process of its own (default: the cores available, at most "
        f"{MAX_DEFAULT_WORKERS}; 1: one after another in this process)",
    )
    p.set_defaults(handler=run)


# Relative cost of a sample per world (stages and checks of a world run, nk = 1), for the order in
# which worlds start: the costliest first (longest-processing-time order), so that with two or more
# runs at once a long world does not start last and leave the other cores idle at the end. Measured
# on the paper recipe, two runs at once on two cores (mean of two builds, world runs of 25 to 48 s);
# unknown worlds: 1.
WORLD_COST = {"zlb": 1.85, "var": 1.7, "rbc": 1.55, "lss": 1.5, "switching": 1.25}


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


@dataclass(frozen=True)
class WorldRun:
    """The outcome of one world's run, as a worker process reports it."""

    world: str
    success: bool
    run_id: str
    seconds: float
    failures: tuple[str, ...] = ()


_worker_state: dict = {}

# Dagster's default SQLite storage under $DAGSTER_HOME: the runs, the event index, and one database of
# events per run. Every run writes to all three; with another storage none of them exists, and
# nothing is held (:mod:`macro_data.sqlite_keepalive`).
RUNS_DB = Path("history", "runs.db")
EVENT_INDEX_DB = Path("history", "runs", "index.db")


def run_events_db(run_id: str) -> Path:
    return Path("history", "runs", f"{run_id}.db")


def _worker_start(environ: dict[str, str]) -> None:
    os.environ.update(environ)  # DAGSTER_HOME and the build's settings, as in the parent


def _import_code_location() -> None:
    """A new worker's first task, while the parent is still reading the recipe: import Dagster, the
    code location, and the libraries Dagster's SQLite storage is built on (about 0.5 s that would
    otherwise be spent under the instance lock of :func:`_load`, which the other workers wait for).
    Imports only: a worker stopped during it leaves nothing behind."""
    import dagster  # noqa: F401

    import macro_data.orchestration.definitions  # noqa: F401

    for name in ("sqlalchemy", "alembic.migration"):
        try:
            __import__(name)
        except ImportError:  # another storage, or a Dagster that no longer uses them
            pass


def _load(state: dict) -> None:
    """Import the code location and open the instance into ``state`` (once per process), holding its
    runs and event index databases with idle connections (:mod:`macro_data.sqlite_keepalive`)."""
    if state:
        return
    import dagster as dg

    from macro_data.files import file_lock
    from macro_data.orchestration.definitions import defs

    state["defs"] = defs
    # Workers open a fresh instance at the same moment: Dagster creates its SQLite tables on
    # first use, and two processes doing that at once record the schema twice (the instance
    # then refuses to open). One process at a time opens it and touches its storages.
    home = Path(os.environ["DAGSTER_HOME"])
    with file_lock(home / ".macro_data_instance.lock"):
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        instance.get_latest_materialization_event(dg.AssetKey("world_draws"))
    state["instance"] = instance
    state["home"] = home
    keep = state["keep"] = IdleConnections()
    for db in (home / RUNS_DB, home / EVENT_INDEX_DB):
        keep.hold(db)


def _tidy() -> None:
    """A worker's task between runs: return the memory its last run freed to the OS."""
    from macro_data.memory import release_freed_memory

    gc.collect()
    release_freed_memory()


def _run(job_name: str, world: str | None, config: dict, tags: dict, state: dict | None = None) -> WorldRun:
    """One run of ``job_name`` in this process (on ``world``'s partition, or unpartitioned when
    ``world`` is None). ``state`` caches the code location and the instance: a worker process's own,
    loaded once and reused by its later runs."""
    if state is None:
        state = _worker_state
    loading = not state
    _load(state)
    if loading and state is _worker_state:
        # A worker's Dagster, code location and instance live as long as the process: out of the
        # collector's generations (about 220,000 objects), every later collection skips them, the
        # full one between runs (:func:`_tidy`) included (0.12 -> 0.02 s). Only in a worker: in a
        # caller's process (``--jobs 1``, ``main`` called from Python) it would also freeze the
        # caller's objects, whose cycles would then never be collected. No collection first: it
        # would find about 1,500 objects of import garbage, not worth its 0.08 s.
        gc.freeze()
        # A worker's idle connections end with it: the last to close checkpoints and deletes the logs.
        atexit.register(state["keep"].close)
    t = time.perf_counter()
    keep, home, run_id = state["keep"], state["home"], str(uuid.uuid4())
    events = home / run_events_db(run_id)
    if keep.held(home / EVENT_INDEX_DB):  # the default SQLite storage: hold this run's events from its first one
        state["instance"].all_logs(run_id)  # Dagster creates the run's (empty) event database now
        keep.hold(events)
    try:
        result = (
            state["defs"]
            .resolve_job_def(job_name)
            .execute_in_process(
                instance=state["instance"],
                partition_key=world,
                run_config=config,
                tags=tags,
                raise_on_error=False,
                run_id=run_id,
            )
        )
    finally:
        keep.release(events)
    return WorldRun(
        world or "",
        result.success,
        result.run_id,
        time.perf_counter() - t,
        () if result.success else tuple(failure_messages(result)),
    )


class Runner:
    """Where the runs of a build execute: this process (``jobs`` 1), or ``jobs`` worker processes
    (lanes) that take the world runs, costliest first, then the dataset run in one of them (so this
    process never loads Dagster).

    Each lane is a process of its own. A lane that finds no world left to run either stays for the
    dataset run (the first one to go idle, after returning the memory its last run freed) or exits
    at once: an idle worker keeps the memory of its last world run (about 400 MiB at the paper's
    size), and the dataset run starts worker processes of its own (validation). The dataset run so
    starts with Dagster and the code location already loaded (about 2 s of imports a fresh process
    would pay after the last world run). The first lane may be started before the runs are known
    (:meth:`start`)."""

    def __init__(self, jobs: int, keep_for_dataset: bool = False):
        self.state: dict = {}
        self.jobs = jobs
        self.keep_for_dataset = keep_for_dataset
        self.kept: cf.ProcessPoolExecutor | None = None  # the lane that runs the dataset run
        self.lanes: list[cf.ProcessPoolExecutor] = []  # every lane started, for close()
        self.ready: list[cf.ProcessPoolExecutor] = []  # started by start(), not yet given a run
        self.early: set = set()  # the worker processes of the lanes start() started

    def start(self) -> None:
        """Start the first lane now, importing the code location (:func:`_import_code_location`), before
        the runs are known; :meth:`worlds` and :meth:`dataset` use it first. One lane only: this process
        keeps a core for reading the recipe and checking what is up to date (with every lane importing
        at once, a build with nothing to do took 3.2-3.7 s instead of 2.0 s on two cores)."""
        if self.jobs > 1:
            before = set(multiprocessing.active_children())
            lane = self._new_lane()
            lane.submit(_import_code_location)  # starts the lane's worker process
            self.ready.append(lane)
            self.early |= set(multiprocessing.active_children()) - before

    def stop(self) -> None:
        """Stop the lanes :meth:`start` started that were never given a run: their workers only
        import, so stopping them loses nothing. Their workers alone are terminated (not other
        children of a caller's process), then reaped by their own pools before returning, so none
        outlives the command (a join from here would race the pool's thread for the exit status, and
        could return before it is recorded)."""
        stopped, self.ready = self.ready, []
        if not stopped:
            return
        self.lanes = [lane for lane in self.lanes if all(lane is not s for s in stopped)]
        for child in self.early:
            child.terminate()
        self.early = set()
        for lane in stopped:
            lane.shutdown(wait=True, cancel_futures=True)

    def _take_ready(self) -> cf.ProcessPoolExecutor:
        """The lane :meth:`start` started, now given work: :meth:`stop` no longer terminates its worker."""
        self.early = set()
        return self.ready.pop(0)

    def _new_lane(self) -> cf.ProcessPoolExecutor:
        environ = {k: v for k, v in os.environ.items() if k == "DAGSTER_HOME" or k.startswith("MACRO_DATA_")}
        lane = spawn_pool(1, _worker_start, (environ,))
        self.lanes.append(lane)
        return lane

    def _lane(self) -> cf.ProcessPoolExecutor:
        if self.ready:
            return self._take_ready()
        lane = self._new_lane()
        lane.submit(_import_code_location)  # outside the instance lock the first lane may hold
        return lane

    def _idle(self, lane: cf.ProcessPoolExecutor) -> None:
        """``lane`` has no world left to run: keep it for the dataset run, or let its worker exit."""
        if self.keep_for_dataset and self.kept is None:
            self.kept = lane
            lane.submit(_tidy)
        else:  # the worker is idle: it exits while the other lanes go on (close() waits for it)
            lane.shutdown(wait=False)

    def worlds(self, worlds: list[str], config: dict, tags: dict):
        """Yield each world's :class:`WorldRun` as it finishes, in ``jobs`` lanes taking the worlds in
        order; after a failure (when the caller stops iterating) no further world starts."""
        if self.jobs <= 1:
            for w in worlds:
                yield _run("build_world", w, config, tags, self.state)
            return
        pending = list(worlds)
        running: dict[cf.Future, cf.ProcessPoolExecutor] = {}
        for _ in range(min(self.jobs, len(pending))):
            lane = self._lane()
            running[lane.submit(_run, "build_world", pending.pop(0), config, tags)] = lane
        while self.ready:  # no world to run: the started lane is idle
            self._idle(self._take_ready())
        while running:
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            finished = [(running.pop(fut), fut.result()) for fut in done]
            for lane, result in sorted(finished, key=lambda f: f[1].success):  # a failure first: nothing starts
                if result.success and pending:
                    running[lane.submit(_run, "build_world", pending.pop(0), config, tags)] = lane
                elif result.success:
                    self._idle(lane)
                yield result  # a failed world: the caller stops, and the running worlds finish in close()

    def dataset(self, config: dict, tags: dict) -> WorldRun:
        if self.jobs <= 1:
            return _run("build_dataset_files", None, config, tags, self.state)
        lane, self.kept = self.kept or self._lane(), None
        return lane.submit(_run, "build_dataset_files", None, config, tags).result()

    def close(self) -> None:
        """Wait for every lane's worker (a running world run is never cut short) and let it exit;
        lanes never given a run are stopped (:meth:`stop`)."""
        self.stop()
        for lane in self.lanes:
            lane.shutdown(wait=True, cancel_futures=True)
        self.lanes, self.kept = [], None
        if "keep" in self.state:  # runs in this process (jobs 1): its idle connections end with the build
            self.state["keep"].close()


def _build(args: argparse.Namespace) -> int:
    jobs = args.jobs if args.jobs is not None else default_workers()
    if jobs < 1:
        print("macro-data build: --jobs must be at least 1", file=sys.stderr)
        return 2
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(Path.cwd() / ".dagster_home")
    with_dataset = not args.skip_dataset and not args.worlds
    runner = Runner(jobs, keep_for_dataset=with_dataset)
    runner.start()  # the first lane imports the code location while this process reads the recipe
    try:
        return _build_with(args, runner, with_dataset)
    finally:
        runner.close()


def _build_with(args: argparse.Namespace, runner: Runner, with_dataset: bool) -> int:
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
    if with_dataset and not pending and not args.force and dataset_up_to_date(recipe, resolved_root, args.replace):
        print(f"manifest and validation report: up to date: skipped\nnothing to do ({time.perf_counter() - t0:.1f} s)")
        return 0
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # a fresh local instance: SQLite defaults, no telemetry
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    recipe_arg = str(Path(args.recipe).resolve()) if args.recipe and Path(args.recipe).is_file() else args.recipe
    config = run_config(recipe_arg, root, quiet=not args.verbose, replace=args.replace, force=args.force)
    tags = {"macro_data/recipe": recipe.name, "macro_data/recipe_sha256": recipe.sha256[:16]}
    print(f"Dagster instance {os.environ['DAGSTER_HOME']}")
    order = sorted(pending, key=lambda w: -recipe.world(w).n_samples * WORLD_COST.get(w, 1.0))
    if runner.jobs > 1 and len(order) > 1:
        print(f"{min(runner.jobs, len(order))} world runs at once, each in a process of its own")
    for done in runner.worlds(order, config, tags):
        if not done.success:
            print(f"world {done.world}: FAILED (run {done.run_id})", file=sys.stderr)
            for line in done.failures:
                print(f"  {line}", file=sys.stderr)
            return 1
        print(
            f"world {done.world}: {recipe.world(done.world).n_samples} samples in {done.seconds:.1f} s "
            f"(run {done.run_id})"
        )
    if with_dataset:
        done = runner.dataset(config, tags)
        if not done.success:
            print(f"dataset stages: FAILED (run {done.run_id})", file=sys.stderr)
            for line in done.failures:
                print(f"  {line}", file=sys.stderr)
            return 1
        print(f"dataset stages done in {done.seconds:.1f} s (run {done.run_id})")
    print(f"done in {time.perf_counter() - t0:.1f} s: {target.final_dir}")
    return 0
