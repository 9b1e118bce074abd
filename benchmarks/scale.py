"""Scale benchmark: one world built at 10k, 100k and 1M samples, locally and on a Dask LocalCluster.

    python benchmarks/scale.py                              # nk; 10k, 100k, 1M local; 1M on 2 Dask workers
    python benchmarks/scale.py --sizes 10000 100000 --dask-sizes 100000

Each configuration runs in its own subprocess (draws, arrays and splits stages of the ``paper``
recipe with the sample count changed) and reports wall time, time per sample, bytes written, and
peak RSS of the driver and, on Dask, of each worker. Targets: memory flat in the sample count
(1M no more than 100k) and time per sample flat or falling.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import directory_bytes, recipe_file  # noqa: E402  (benchmarks share the recipe helper)


def child(world: str, recipe_path: Path, root: Path, mode: str, workers: int) -> dict:
    from macro_data.compute import ComputeConfig
    from macro_data.pipeline.common import RunInfo
    from macro_data.pipeline.world_arrays import build_world_arrays
    from macro_data.pipeline.world_draws import build_world_draws
    from macro_data.pipeline.world_splits import build_world_splits
    from macro_data.recipes import load_recipe

    recipe = load_recipe(recipe_path)
    config = ComputeConfig(mode=mode, workers=workers)
    worker_peaks: list[float] = []
    t0 = time.perf_counter()
    for fn in (build_world_draws, build_world_arrays, build_world_splits):
        fn(recipe, world, root, RunInfo(compute=config))
    seconds = time.perf_counter() - t0
    if mode == "dask":
        from macro_data.compute import _clusters

        client = _clusters[("local", workers)][1]
        worker_peaks = [
            v / 1024
            for v in client.run(
                lambda: __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss
            ).values()
        ]
    return {
        "seconds": seconds,
        "driver_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peaks_mib": worker_peaks,
        "bytes_written": directory_bytes(root),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="nk")
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dask-sizes", nargs="*", type=int, default=[1_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "RECIPE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.world, Path(args.child[1]), Path(args.child[2]), args.child[0], args.workers)))
        return 0
    print(f"scale: world {args.world}, paper recipe settings (T=200, H=40, chunk 1000); one BLAS thread per process")
    print(
        f"{'mode':<14} {'n':>9} {'seconds':>8} {'us/sample':>9} {'samples/s':>10} {'driver MiB':>10} "
        f"{'worker MiB':>14} {'GB written':>10}"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    runs = [("local", n) for n in args.sizes] + [("dask", n) for n in args.dask_sizes]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for mode, n in runs:
            recipe = recipe_file(tmp, args.world, n)
            root = tmp / f"{mode}-{n}"
            root.mkdir()
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--world",
                    args.world,
                    "--workers",
                    str(args.workers),
                    "--child",
                    mode,
                    str(recipe),
                    str(root),
                ],
                capture_output=True,
                text=True,
                env=env,
            )
            if out.returncode != 0:
                print(out.stderr[-4000:], file=sys.stderr)
                return 2
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((mode, n, r))
            workers = "/".join(f"{p:.0f}" for p in r["worker_peaks_mib"]) or "-"
            label = f"dask x{args.workers}" if mode == "dask" else "local"
            print(
                f"{label:<14} {n:>9,} {r['seconds']:>8.1f} {1e6 * r['seconds'] / n:>9.1f} {n / r['seconds']:>10,.0f} "
                f"{r['driver_peak_mib']:>10.0f} {workers:>14} {r['bytes_written'] / 1e9:>10.2f}"
            )
            subprocess.run(["rm", "-rf", str(root)], check=False)
    local = {n: r for mode, n, r in rows if mode == "local"}
    if 100_000 in local and 1_000_000 in local:
        a, b = local[100_000], local[1_000_000]
        print(
            f"peak driver memory 1M / 100k: {b['driver_peak_mib'] / a['driver_peak_mib']:.2f}; "
            f"time per sample 1M / 100k: {(b['seconds'] / 1e6) / (a['seconds'] / 1e5):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
