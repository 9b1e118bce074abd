"""Benchmark of the simulator bank: draw + simulate + IRFs per world, against a raw-RNG baseline.

    python benchmarks/worlds.py                 # 100,000 samples per world, T=200, H=40
    python benchmarks/worlds.py --n 20000 --worlds nk zlb

Each world runs in its own subprocess (so its peak RSS is its own) on one core, in batches of
4096 samples as the pipeline does. The baseline, measured in the same run, is the cost of just
drawing the same random numbers (the streams of every block: one proposal round of parameters,
the innovations, and per-period uniforms where the world draws them), nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# One core, as the targets say; set before numpy loads BLAS.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

TARGETS = {"lss": 20_000, "var": 20_000, "nk": 20_000, "rbc": 20_000, "switching": 20_000, "zlb": 2_000}
BATCH = 4096


def measure(world_id: str, n: int, T: int, H: int, mode: str) -> dict:
    import numpy as np

    from macro_data.worlds import get_world
    from macro_data.worlds.sampling import BLOCK_SIZE, block_rng, draw_range

    world = get_world(world_id)
    t0 = time.perf_counter()
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
    seconds = time.perf_counter() - t0
    return {
        "world": world_id,
        "mode": mode,
        "n": n,
        "seconds": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--H", type=int, default=40)
    parser.add_argument("--worlds", nargs="*", default=list(TARGETS))
    parser.add_argument("--child", nargs=2, metavar=("WORLD", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.n, args.T, args.H, args.child[1])))
        return 0
    print(f"simulator bank: n={args.n:,} per world, T={args.T}, H={args.H}, one core, batches of {BATCH}")
    print(
        f"{'world':<10} {'samples/s':>11} {'target':>8} {'ok':>3} {'seconds':>8} {'peak MiB':>9} "
        f"{'baseline s':>10} {'x baseline':>10}"
    )
    failed = []
    for w in args.worlds:
        res = {}
        for mode in ("baseline", "full"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--n",
                    str(args.n),
                    "--T",
                    str(args.T),
                    "--H",
                    str(args.H),
                    "--child",
                    w,
                    mode,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        full, base = res["full"], res["baseline"]
        rate = full["n"] / full["seconds"]
        ok = rate >= TARGETS[w]
        failed += [] if ok else [w]
        print(
            f"{w:<10} {rate:>11,.0f} {TARGETS[w]:>8,} {'yes' if ok else 'NO':>3} {full['seconds']:>8.2f} "
            f"{full['peak_rss_mib']:>9.0f} {base['seconds']:>10.2f} {full['seconds'] / base['seconds']:>10.1f}"
        )
    if failed:
        print(f"below target: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
