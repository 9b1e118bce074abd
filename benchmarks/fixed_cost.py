"""Benchmark of a world's fixed cost: from the start of a run, or of a command, to its first samples.

    python benchmarks/fixed_cost.py                # three repeats of each measurement
    python benchmarks/fixed_cost.py --repeats 5

A 64-sample nk world, so drawing takes milliseconds and what is measured is the fixed cost. Each
path has its own Dagster instance, created by a first run that is not counted (a new instance
creates its SQLite tables once, about 0.5 s); each counted repeat starts from an empty data root,
in subprocesses:

* ``macro-data build``: from the creation of the world's run to the start and to the end of its
  ``world_draws`` step (64 samples drawn and published), read from the run's event log. The
  process that runs it imported Dagster and the code location once, before the build's first run.
* ``dagster asset materialize``: ``world_draws`` of the nk partition, from the start of the
  command to the same two events. This includes starting Python, importing Dagster and loading
  the code location.
* baseline: ``python -c "import dagster"``, the floor of any Dagster command, in the same session.

The first sample lies between the two events, so the end of the step is an upper bound.

Targets (issue #19), on that upper bound: <= 1 s through ``macro-data build``, <= 3 s through
``dagster asset materialize``. The exit code is 1 when a median misses its target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"build": 1.0, "materialize": 3.0}
RECIPE = "name: fixed\nversion: 0.1.0\nseed: 7\nT: 200\nH: 40\nworlds: {nk: {n_samples: 64}}\n"


def draws_events(home: Path) -> tuple[float, float, float]:
    """``(run created, world_draws started, world_draws finished)`` of the instance's latest run, epoch s."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dagster as dg\n"
            "inst = dg.DagsterInstance.get()\n"
            "run = inst.get_runs(limit=1)[0]\n"
            "recs = inst.all_logs(run.run_id)\n"
            "ev = {(r.dagster_event.event_type_value, r.dagster_event.step_key): r.timestamp\n"
            "      for r in recs if r.dagster_event is not None}\n"
            "print(recs[0].timestamp, ev[('STEP_START', 'world_draws')], ev[('STEP_SUCCESS', 'world_draws')])\n",
        ],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    created, started, finished = map(float, out.stdout.split())
    return created, started, finished


def fresh(work: Path, name: str, k: int) -> tuple[Path, Path, dict]:
    """The path's instance (created on first use) and an empty data root for repeat ``k``."""
    home, root = work / name / "home", work / name / f"root{k}"
    if not home.is_dir():
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    return home, root, env


def run_build(work: Path, recipe: Path, k: int) -> tuple[float, float]:
    home, root, env = fresh(work, "build", k)
    cmd = [sys.executable, "-m", "macro_data.cli", "build", "--recipe", str(recipe), "--root", str(root)]
    subprocess.run([*cmd, "--skip-dataset"], env=env, cwd=work, capture_output=True, check=True)
    created, started, finished = draws_events(home)
    return started - created, finished - created


def run_materialize(work: Path, recipe: Path, k: int) -> tuple[float, float]:
    home, root, env = fresh(work, "materialize", k)
    env.update(MACRO_DATA_RECIPE=str(recipe), MACRO_DATA_ROOT=str(root))
    dagster = Path(sys.executable).parent / "dagster"
    cmd = [str(dagster), "asset", "materialize", "-m", "macro_data", "--select", "world_draws", "--partition", "nk"]
    t0 = time.time()
    subprocess.run(cmd, env=env, cwd=work, capture_output=True, check=True)
    _, started, finished = draws_events(home)
    return started - t0, finished - t0


def run_baseline() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import dagster"], check=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (default 3)")
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"{os.cpu_count()} cores; load average at start {load}; 64-sample nk world, {args.repeats} repeats")
    rows = {"build": [], "materialize": []}
    baseline = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        recipe = work / "fixed.yaml"
        recipe.write_text(RECIPE)
        run_build(work, recipe, -1)  # creates the instances; not counted
        run_materialize(work, recipe, -1)
        for k in range(args.repeats):  # interleaved, so a change of load hits every measurement alike
            baseline.append(run_baseline())
            rows["build"].append(run_build(work, recipe, k))
            rows["materialize"].append(run_materialize(work, recipe, k))
    base = statistics.median(baseline)
    print(f"baseline: python -c 'import dagster' {base:.2f} s (median; runs {', '.join(f'{b:.2f}' for b in baseline)})")
    print(f"{'path':<34} {'to draws start s':>17} {'to 64 samples s':>16} {'target s':>9} {'x baseline':>11}")
    met = True
    for name, label, since in (
        ("build", "macro-data build", "from the run's creation"),
        ("materialize", "dagster asset materialize", "from the command's start"),
    ):
        start = statistics.median(r[0] for r in rows[name])
        end = statistics.median(r[1] for r in rows[name])
        met &= end <= TARGETS[name]
        print(f"{label:<34} {start:>17.2f} {end:>16.2f} {TARGETS[name]:>9.1f} {end / base:>11.2f}   ({since})")
        print(f"{'':<34} runs: " + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in rows[name]))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
