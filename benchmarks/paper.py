"""Benchmark of a whole dataset build: ``macro-data build --recipe paper`` against the raw limit.

    python benchmarks/paper.py                    # the paper recipe: six worlds x 100,000 samples
    python benchmarks/paper.py --recipe default   # six worlds x 10,000
    python benchmarks/paper.py --jobs 1           # world runs one after another (the old way)
    python benchmarks/paper.py --repeat 5         # five rounds of both, then their medians

In one session, each in subprocesses of its own:

* ``raw``: the raw limit of the whole dataset. For every world, draw the same random numbers and
  write arrays of the same shapes, dtypes, chunks and codecs with Zarr alone (``run_raw`` of
  ``benchmarks/build.py``), two worlds at a time (``--raw-jobs``) on two cores. Wall time from the
  start of the first world to the end of the last.
* ``build``: ``macro-data build`` of the recipe on a fresh Dagster instance and data root, wall time
  from start to exit, manifest and validation report included. The CPU time is that of the whole
  process tree; the peak memory is the largest sum of the resident sets of the build's processes
  (sampled every 50 ms) and the largest single process. The validation time is the report's own
  (``validation_report.json``: ``seconds``).

With ``--repeat N``, N rounds of both, one after the other (raw, build, raw, build, ...), so that a
drift of the machine during the session moves both; then the medians of the rounds, each figure's
own (the ratio's is the median of the rounds' ratios), and the verdict on the targets.

Targets (issue #19, on 2 cores), on those medians: the paper recipe's build <= 60 s, its ratio to
raw <= 4, validation <= 10 s and peak memory < 1.5 GB (1,430 MiB); the default recipe's build
<= 12 s (and the same validation and memory targets). The exit code is 1 when a median misses one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def recipe_path(name: str) -> Path:
    path = Path(name)
    return path if path.is_file() else REPO / "datasets" / "recipes" / f"{name}.yaml"


def tree_rss_mib(root_pid: int) -> tuple[float, float]:
    """``(sum, largest)`` resident set of ``root_pid`` and its descendants, MiB (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, largest, todo = 0, 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        largest = max(largest, rss.get(pid, 0))
        todo += children.get(pid, [])
    return total / 2**20, largest / 2**20


def run_build(recipe: Path, work: Path, jobs: int | None) -> dict:
    env = {**os.environ, "DAGSTER_HOME": str(work / "home"), "PYTHONPATH": str(REPO)}
    (work / "home").mkdir()
    cmd = [sys.executable, "-m", "macro_data.cli", "build", "--recipe", str(recipe), "--root", str(work / "root")]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0, 0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            total, largest = tree_rss_mib(proc.pid)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], largest)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(out[-4000:], file=sys.stderr)
        raise SystemExit(2)
    reports = list((work / "root").rglob("validation_report.json"))
    validation = json.loads(reports[0].read_text())["seconds"] if reports else float("nan")
    worlds = dict(re.findall(r"world (\w+): \d+ samples in ([\d.]+) s", out))
    dataset = re.search(r"dataset stages done in ([\d.]+) s", out)
    return {
        "seconds": seconds,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_total_mib": peak[0],
        "peak_process_mib": peak[1],
        "validation": validation,
        "worlds": {w: float(s) for w, s in worlds.items()},
        "dataset_stages": float(dataset.group(1)) if dataset else float("nan"),
    }


def run_raw(recipe: Path, work: Path, jobs: int) -> dict:
    """Every world's raw limit (``benchmarks/build.py``'s ``raw`` child), ``jobs`` at a time."""
    import yaml

    worlds = list(yaml.safe_load(recipe.read_text())["worlds"])
    env = {**os.environ, "DAGSTER_HOME": "", "PYTHONPATH": str(REPO)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    waiting, running, results = list(worlds), [], {}
    while waiting or running:
        while waiting and len(running) < jobs:
            w = waiting.pop(0)
            root = work / f"raw-{w}"
            root.mkdir()
            cmd = [sys.executable, str(HERE / "build.py"), "--world", w, "--child", "raw", str(recipe), str(root)]
            running.append((w, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)))
        w, proc = running.pop(0)
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"raw run of {w} failed")
        results[w] = json.loads(out.strip().splitlines()[-1])
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": seconds,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "worlds": {w: r["seconds"] for w, r in results.items()},
        "peak_process_mib": max(r["peak_rss_mib"] for r in results.values()),
    }


# Targets per recipe name (issue #19): the build's wall time and its ratio to the raw limit (None:
# none), then those of every recipe.
TARGETS = {"paper": {"build_s": 60.0, "ratio": 4.0}, "default": {"build_s": 12.0, "ratio": None}}
VALIDATION_S, PEAK_MIB = 10.0, 1.5e9 / 2**20  # 1.5 GB: 1,430.5 MiB


def one_round(recipe: Path, args: argparse.Namespace) -> dict:
    """Raw limit, then build; prints both, returns the figures the verdict is on."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = run_raw(recipe, Path(tmp), args.raw_jobs)
    print(
        f"raw limit: {raw['seconds']:.1f} s wall, {raw['cpu']:.1f} s CPU ({args.raw_jobs} worlds at a time; "
        + ", ".join(f"{w} {s:.1f}" for w, s in raw["worlds"].items())
        + ")"
    )
    with tempfile.TemporaryDirectory() as tmp:
        build = run_build(recipe, Path(tmp), args.jobs)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(
        f"build: {build['seconds']:.1f} s wall, {build['cpu']:.1f} s CPU; worlds "
        + ", ".join(f"{w} {s:.1f}" for w, s in build["worlds"].items())
        + f"; manifest and validation report {build['dataset_stages']:.1f} s"
    )
    print(f"validation: {build['validation']:.1f} s")
    print(
        f"peak memory: {build['peak_total_mib']:.0f} MiB all build processes together, "
        f"{build['peak_process_mib']:.0f} MiB the largest one"
    )
    ratio = build["seconds"] / raw["seconds"]
    print(f"ratio build / raw: {ratio:.2f} (wall), {build['cpu'] / raw['cpu']:.2f} (CPU); load average at end {load}")
    return {
        "raw_s": raw["seconds"],
        "build_s": build["seconds"],
        "ratio": ratio,
        "validation_s": build["validation"],
        "peak_mib": build["peak_total_mib"],
    }


def verdict(name: str, medians: dict) -> list[str]:
    """The targets the medians miss (none: an empty list)."""
    target = TARGETS.get(name, {})
    missed = []
    if target.get("build_s") is not None and medians["build_s"] > target["build_s"]:
        missed.append(f"build {medians['build_s']:.1f} s > {target['build_s']:.0f} s")
    if target.get("ratio") is not None and medians["ratio"] > target["ratio"]:
        missed.append(f"ratio {medians['ratio']:.2f} > {target['ratio']:.0f}")
    if medians["validation_s"] > VALIDATION_S:
        missed.append(f"validation {medians['validation_s']:.1f} s > {VALIDATION_S:.0f} s")
    if medians["peak_mib"] >= PEAK_MIB:
        missed.append(f"peak memory {medians['peak_mib']:.0f} MiB >= 1.5 GB ({PEAK_MIB:.1f} MiB)")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="paper", help="recipe name or file (default: paper)")
    parser.add_argument("--jobs", type=int, default=None, help="macro-data build --jobs (default: its own)")
    parser.add_argument("--raw-jobs", type=int, default=2, help="worlds at a time in the raw limit (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of raw and build (default 1)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    recipe = recipe_path(args.recipe)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"recipe {recipe.name}; {os.cpu_count()} cores; load average at start {load}")
    rounds = []
    for i in range(args.repeat):
        if args.repeat > 1:
            print(f"round {i + 1} of {args.repeat}")
        rounds.append(one_round(recipe, args))
    medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    if args.repeat > 1:
        builds = ", ".join(f"{r['build_s']:.1f}" for r in rounds)
        ratios = ", ".join(f"{r['ratio']:.2f}" for r in rounds)
        print(
            f"medians of {args.repeat} rounds: raw {medians['raw_s']:.1f} s, build {medians['build_s']:.1f} s "
            f"(rounds: {builds}), ratio {medians['ratio']:.2f} (rounds: {ratios}), "
            f"validation {medians['validation_s']:.1f} s, peak memory {medians['peak_mib']:.0f} MiB"
        )
    name = recipe.stem if recipe.resolve().parent == (REPO / "datasets" / "recipes").resolve() else None
    if name not in TARGETS:
        return 0
    missed = verdict(name, medians)
    print(f"targets ({name} recipe): " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
