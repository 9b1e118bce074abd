"""Benchmark of growth and resume: what a build costs when part of the work already exists.

    python benchmarks/release.py                 # nk, 100,000 -> 110,000 samples; kill at 70 %
    python benchmarks/release.py --world zlb --n 20000 --grow-to 22000

Each measurement runs in its own subprocess; CPU time is user + system of that process (the world
stages: world_draws, world_arrays, world_splits, with the default compute: this process, reads
and writes on background threads), wall time alongside.

* growth: a version of ``--n`` samples is built; then a version of ``--grow-to`` samples that
  extends it, and the same recipe from scratch in another root. Target: the grown build costs at
  most 20 % of the from-scratch build (CPU time of the world stages). Content hashes are compared.
* resume: the world stages of ``--n`` samples run in a child that is killed (SIGKILL) once the
  simulation stage has completed ``--kill-at`` of its regions; the next run resumes. Target: the
  resumed stages take at most 40 % of an uninterrupted run (wall time), with equal hashes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
PAPER = HERE.parent / "datasets" / "recipes" / "paper.yaml"


def recipe_file(folder: Path, world: str, n: int, version: str, extends: str | None = None) -> Path:
    doc = yaml.safe_load(PAPER.read_text())
    doc.update({"name": f"bench-{world}", "version": version, "worlds": {world: {"n_samples": n}}})
    if extends:
        doc["extends"] = extends
    path = folder / f"{world}-{n}-{version}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def child(recipe: str, world: str, root: str, kill_at: float | None) -> None:
    from macro_data.pipeline import stage, world_arrays, world_draws, world_splits
    from macro_data.recipes import load_recipe

    if kill_at is not None:  # SIGKILL once the simulation stage recorded that share of its regions
        original = stage.Journal.append
        state = {"regions": 0}

        def append(self, result, **extra):
            original(self, result, **extra)
            header = self.header() or {}
            if header.get("stage") == "world_arrays":
                state["regions"] += 1
                if state["regions"] >= kill_at * len(header["regions"]):
                    os.kill(os.getpid(), signal.SIGKILL)

        stage.Journal.append = append
    r = load_recipe(recipe)
    t0, c0 = time.perf_counter(), time.process_time()
    out = {}
    for fn in (world_draws.build_world_draws, world_arrays.build_world_arrays, world_splits.build_world_splits):
        res = fn(r, world, root)
        out[res.stage] = {
            "hashes": {k: a.sha256 for k, a in res.arrays.items()},
            "reused": res.reused_samples,
            "resumed": res.resumed_samples,
            "up_to_date": res.up_to_date,
        }
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "wall": time.perf_counter() - t0,
                "cpu": usage.ru_utime + usage.ru_stime,
                "cpu_stages": time.process_time() - c0,
                "stages": out,
            }
        )
    )


def run(recipe: Path, world: str, root: Path, kill_at: float | None = None) -> dict | None:
    cmd = [sys.executable, __file__, "--child", str(recipe), world, str(root)]
    if kill_at is not None:
        cmd += ["--kill-at", str(kill_at)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == -signal.SIGKILL:
        return None
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-4000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hashes(result: dict) -> dict:
    return {s: v["hashes"] for s, v in result["stages"].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="nk")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--grow-to", type=int, default=110_000)
    parser.add_argument("--kill-at", type=float, default=0.7)
    parser.add_argument("--child", nargs=3, metavar=("RECIPE", "WORLD", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.kill_at if "--kill-at" in sys.argv else None)
        return 0
    import zarr

    print(f"growth and resume, world {args.world}; Python {sys.version.split()[0]}, zarr {zarr.__version__}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = recipe_file(tmp, args.world, args.n, "1.0.0")
        grown = recipe_file(tmp, args.world, args.grow_to, "1.1.0", extends=f"bench-{args.world}@1.0.0")
        alone = recipe_file(tmp, args.world, args.grow_to, "1.1.0")  # the same numbers, no base to grow from
        run(base, args.world, tmp / "root")
        g = run(grown, args.world, tmp / "root")
        s = run(alone, args.world, tmp / "scratch")
        same = hashes(g) == hashes(s)
        share = g["cpu_stages"] / s["cpu_stages"]
        reused = g["stages"]["world_arrays"]["reused"]
        print(
            f"growth {args.n:,} -> {args.grow_to:,}: grown {g['cpu_stages']:.2f} CPU-s ({g['wall']:.2f} s wall), "
            f"from scratch {s['cpu_stages']:.2f} CPU-s ({s['wall']:.2f} s wall): {100 * share:.1f} % "
            f"(target <= 20 %); {reused:,} samples reused; hashes equal: {same}"
        )
        ok &= share <= 0.20 and same
        shutil.rmtree(tmp / "root")
        shutil.rmtree(tmp / "scratch")

        full = run(base, args.world, tmp / "full")
        killed = run(base, args.world, tmp / "killed", kill_at=args.kill_at)
        resumed = run(base, args.world, tmp / "killed")
        same = hashes(resumed) == hashes(full)
        share = resumed["wall"] / full["wall"]
        kept = resumed["stages"]["world_arrays"]["resumed"]
        print(
            f"resume after kill -9 at {100 * args.kill_at:.0f} % of the simulation stage "
            f"({'killed' if killed is None else 'NOT killed'}): resumed stages {resumed['wall']:.2f} s, "
            f"uninterrupted {full['wall']:.2f} s: {100 * share:.1f} % (target <= 40 %); {kept:,} samples kept; "
            f"draws up to date: {resumed['stages']['world_draws']['up_to_date']}; hashes equal: {same}"
        )
        ok &= killed is None and share <= 0.40 and same
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
