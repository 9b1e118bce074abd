"""Benchmark of the simulator bank: draw + simulate + IRFs per world, against a raw-RNG baseline.

    python benchmarks/worlds.py                 # 100,000 samples per world, T=200, H=40
    python benchmarks/worlds.py --n 20000 --worlds nk zlb
    python benchmarks/worlds.py --worlds --world-files datasets/worlds/*.yaml benchmarks/models/*.yaml --repeats 5

Each world runs in its own subprocess (so its peak RSS is its own) on one core, in batches of
4096 samples as the pipeline does. The baseline, measured in the same run, is the cost of just
drawing the same random numbers (the streams of every block: one proposal round of parameters,
the innovations, and per-period uniforms where the world draws them), nothing else.

Declared worlds (``--world-files``, model files in the format of ``docs/declared_worlds.md``) are
measured the same way; their target depends on the model's size (:func:`declared_target`).
With ``--repeats N`` every measurement runs N times (fresh subprocesses) and the table gives the
median samples/s with the range, for a machine shared with other work; the targets apply to the
wall-clock median, and the CPU-time rate is shown beside it (less sensitive to other load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# One core, as the targets say; set before numpy loads BLAS.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

TARGETS = {"lss": 20_000, "var": 20_000, "nk": 20_000, "rbc": 20_000, "switching": 20_000, "zlb": 2_000}
BATCH = 4096


def declared_target(n_variables: int) -> int | None:
    """samples/s a declared world should reach: 10,000 up to 6 variables, 2,000 up to 20, else none."""
    if n_variables <= 6:
        return 10_000
    if n_variables <= 20:
        return 2_000
    return None


def load(spec: str):
    """A built-in world id, or a model file path (anything ending in .yaml)."""
    if spec.endswith(".yaml"):
        from macro_data.worlds.declared import load_world_file

        return load_world_file(spec)
    from macro_data.worlds import get_world

    return get_world(spec)


def measure(spec: str, n: int, T: int, H: int, mode: str) -> dict:
    import numpy as np

    from macro_data.worlds.sampling import BLOCK_SIZE, block_rng, draw_range

    world = load(spec)
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "baseline":
        P, S = len(world.parameters), len(world.shocks)
        draws_meta = any(m.stage == "draws" for m in world.metadata_fields)
        for b in range(-(-n // BLOCK_SIZE)):
            block_rng(42, world, b, "theta").random((BLOCK_SIZE, P))
            block_rng(42, world, b, "shocks").standard_normal((BLOCK_SIZE, T, S)).astype(np.float32)
            if draws_meta:
                block_rng(42, world, b, "metadata").random((BLOCK_SIZE, T))
    else:
        for start in range(0, n, BATCH):
            d = draw_range(world, 42, start, min(start + BATCH, n), T)
            world.simulate(d.theta, d.shocks, d.metadata)
            world.irfs(d.theta, H)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    # declared worlds carry their linear system; rbc's `system` is a method
    variables = getattr(getattr(world, "system", None), "variables", None)
    n_variables = len(variables) if variables is not None else None
    return {
        "world": world.name,
        "mode": mode,
        "n": n,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "n_variables": n_variables,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(spec: str, args, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--n", str(args.n), "--T", str(args.T), "--H", str(args.H), "--child", spec, mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--H", type=int, default=40)
    parser.add_argument("--worlds", nargs="*", default=list(TARGETS), help="built-in worlds (none: --worlds alone)")
    parser.add_argument("--world-files", nargs="*", default=[], metavar="PATH", help="declared-world model files")
    parser.add_argument("--repeats", type=int, default=1, help="runs per world; the table gives the median")
    parser.add_argument("--child", nargs=2, metavar=("WORLD", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.n, args.T, args.H, args.child[1])))
        return 0
    print(
        f"simulator bank: n={args.n:,} per world, T={args.T}, H={args.H}, one core, batches of {BATCH}, "
        f"{args.repeats} run(s) each (median)"
    )
    print(
        f"{'world':<22} {'samples/s':>11} {'target':>8} {'ok':>3} {'seconds':>8} {'peak MiB':>9} "
        f"{'baseline s':>10} {'x baseline':>10} {'cpu samples/s':>13}  range samples/s"
    )
    failed = []
    for spec in list(args.worlds) + list(args.world_files):
        fulls, bases = [], []
        for _ in range(max(args.repeats, 1)):
            bases.append(run_child(spec, args, "baseline"))
            fulls.append(run_child(spec, args, "full"))
        name = fulls[0]["world"]
        target = TARGETS.get(spec) if spec in TARGETS else declared_target(fulls[0]["n_variables"])
        rates = sorted(f["n"] / f["seconds"] for f in fulls)
        rate = statistics.median(rates)
        seconds = statistics.median(f["seconds"] for f in fulls)
        base = statistics.median(b["seconds"] for b in bases)
        peak = max(f["peak_rss_mib"] for f in fulls)
        cpu_rate = statistics.median(f["n"] / f["cpu_seconds"] for f in fulls)  # less sensitive to other load
        ok = target is None or rate >= target
        failed += [] if ok else [name]
        label = name if spec in TARGETS else f"{name} ({fulls[0]['n_variables']} var)"
        print(
            f"{label:<22} {rate:>11,.0f} {(f'{target:,}' if target else '-'):>8} {'yes' if ok else 'NO':>3} "
            f"{seconds:>8.2f} {peak:>9.0f} {base:>10.2f} {seconds / base:>10.1f} {cpu_rate:>13,.0f}  "
            f"{rates[0]:,.0f}-{rates[-1]:,.0f}"
        )
    if failed:
        print(f"below target: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
