"""Benchmark of the reading side: mixed-world training batches, map-style random access, and memory.

    python benchmarks/read.py                            # 25,000, 100,000 and 250,000 samples (about 8 minutes)
    python benchmarks/read.py --sizes 5000 10000 --map-items 10000

The dataset: the default recipe's layout (T = 200, H = 40, chunks of 1,024 samples, Blosc LZ4
level 3) with the worlds nk, rbc, var, lss and switching, ``size / 5`` samples each, built by the
pipeline's stage functions (draws, arrays, splits, train-split statistics, manifest; zlb is left out
only because simulating it takes minutes). Its files are in the OS page cache when read, as they
are during training after the first epoch.

Every measurement runs in its own subprocess pinned to one core (so its peak RSS is its own), from
the opened dataset onward. Rates are samples per CPU second of that core (``time.process_time``),
with the wall-clock rate beside them: on an idle machine the two agree; on a shared one the wall
clock also counts the time other processes held the core.

* ``mixed``: one epoch of a mixed-world training view of the train split, ``regime="A"``, batches
  of 256, chunk shuffle, ``normalize="stats"``; and, as a baseline measured in the same process, the
  decode limit: decoding once every chunk the epoch needs (theta, shocks, irfs, split of every world);
* ``map``: a shuffled epoch of ``min(--map-items, size)`` samples (all splits; at 100,000 samples,
  the whole dataset) from the map-style dataset with a 1 GiB cache, in batches of 256 index lists as
  a DataLoader with a sampler asks for them (``__getitems__``); and ten such batches with a small
  cache (``--small-cache``), to show that the cache, not the dataset, bounds memory.

Targets: mixed view >= 30,000 samples/s and map-style epoch >= 10,000 samples/s at every size; peak
RSS of the mixed epoch the same at every size (within 10 %; the smallest size is still larger than
the chunk shuffle's buffers); peak RSS of map-style access at most the process's RSS after opening
plus the cache bound plus 64 MiB (the batch, the chunks being decoded and what the C allocator
keeps of freed chunks), the same at every size for the small cache.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent / "datasets" / "recipes" / "default.yaml"
WORLDS = ("nk", "rbc", "var", "lss", "switching")
BATCH = 256
MIXED_TARGET = 30_000
MAP_TARGET = 10_000
FLAT = 1.10
MAP_SLACK_MIB = 64


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_core() -> int | None:
    """Pin this process (and the threads it starts) to one core; the core, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {core})
    return core


# ---- children ---------------------------------------------------------------------------------------------------


def build(size: int, folder: Path) -> dict:
    from macro_data.pipeline import world_arrays, world_draws, world_splits, world_stats
    from macro_data.pipeline.manifest import build_manifest
    from macro_data.recipes import load_recipe

    doc = yaml.safe_load(DEFAULT.read_text())
    doc["name"] = f"bench-read-{size}"
    doc["worlds"] = {w: {"n_samples": size // len(WORLDS)} for w in WORLDS}
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    recipe = load_recipe(path)
    root = folder / "root"
    t0 = time.perf_counter()
    for w in recipe.world_ids:
        for stage in (world_draws, world_arrays, world_splits, world_stats):
            getattr(stage, f"build_{stage.STAGE}")(recipe, w, root)
    build_manifest(recipe, root)
    return {"seconds": time.perf_counter() - t0, "dataset": recipe.dataset_dir(root)}


def mixed(dataset: str) -> dict:
    import macro_data.read as mdr

    core = one_core()
    ds = mdr.open_dataset(dataset)
    view = ds.training_view("train", batches="mixed", regime="A", batch_size=BATCH, normalize="stats", seed=0)
    base = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for batch in view.iter(0):
        n += batch["index"].size
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_mib()
    # the decode limit: every chunk the epoch needs, decoded once (same process, same core)
    c0 = time.process_time()
    decoded = 0
    for w in view.worlds:
        for a in view.batcher.arrays():
            arr = ds[w].arrays[a]
            for c in range(arr.n_chunks):
                decoded += arr.read_chunk(c).nbytes
    decode_cpu = time.process_time() - c0
    return {
        "core": core,
        "items": n,
        "seconds": seconds,
        "wall_rate": n / seconds,
        "rate": n / cpu,
        "decode_rate": n / decode_cpu,
        "decoded_mib": decoded / 2**20,
        "base_mib": base,
        "peak_mib": peak,
    }


def mapped(dataset: str, items: int, cache_mib: int, batches: int | None) -> dict:
    import numpy as np

    import macro_data.read as mdr

    core = one_core()
    ds = mdr.open_dataset(dataset)
    mds = ds.map_dataset(None, regime="A", normalize="stats", cache_bytes=cache_mib << 20)
    order = np.random.default_rng(0).permutation(len(mds))[:items]
    cuts = range(0, order.size, BATCH)
    if batches is not None:
        cuts = cuts[:batches]
    base = rss_mib()
    held = 0
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for lo in cuts:
        batch = mds.__getitems__(order[lo : lo + BATCH].tolist())  # what a DataLoader with a sampler calls
        n += batch["index"].size
        held = max(held, mds.cache.nbytes)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "core": core,
        "items": n,
        "seconds": seconds,
        "wall_rate": n / seconds,
        "rate": n / cpu,
        "hits": mds.cache.hits,
        "misses": mds.cache.misses,
        "cache_held_mib": held / 2**20,
        "cache_mib": cache_mib,
        "base_mib": base,
        "peak_mib": peak_mib(),
    }


# ---- driver -----------------------------------------------------------------------------------------------------


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env={**os.environ}
    )
    if out.returncode != 0:
        print(out.stderr[-4000:], file=sys.stderr)
        raise SystemExit(2)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", nargs="*", type=int, default=[25_000, 100_000, 250_000], help="samples, all worlds together"
    )
    parser.add_argument("--map-items", type=int, default=100_000, help="samples of the map-style epoch")
    parser.add_argument("--cache-mib", type=int, default=1024, help="map-style cache bound")
    parser.add_argument(
        "--small-cache",
        type=int,
        default=32,
        help="MiB, below the smallest size's data; the bounded-memory run (0: skip)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, rest = args.child[0], args.child[1:]
        if kind == "build":
            out = build(int(rest[0]), Path(rest[1]))
        elif kind == "mixed":
            out = mixed(rest[0])
        else:
            out = mapped(rest[0], int(rest[1]), int(rest[2]), int(rest[3]) if rest[3] != "all" else None)
        print(json.dumps(out))
        return 0
    import numpy
    import zarr

    print(
        f"reading benchmark: worlds {', '.join(WORLDS)}, default layout (T=200, H=40, chunks 1024), one core per "
        f"measurement; Python {sys.version.split()[0]}, numpy {numpy.__version__}, zarr {zarr.__version__}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"{'size':>8} {'what':<22} {'items':>8} {'samples/s':>10} {'(wall)':>9} {'target':>7} {'x target':>8} "
        f"{'base MiB':>8} {'peak MiB':>8}  notes"
    )
    rows: dict[str, list[dict]] = {"mixed": [], "map": [], "small": []}

    def show(size: int, what: str, r: dict, target: int | None, note: str) -> None:
        t = f"{target:>7,} {r['rate'] / target:>8.2f}" if target else f"{'':>7} {'':>8}"
        print(
            f"{size:>8} {what:<22} {r['items']:>8,} {r['rate']:>10,.0f} {r['wall_rate']:>9,.0f} {t} "
            f"{r['base_mib']:>8.0f} {r['peak_mib']:>8.0f}  {note}",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            folder = Path(tmp) / str(size)
            folder.mkdir()
            built = run_child("build", str(size), str(folder))
            print(f"{size:>8} {'build (not timed)':<22} {built['seconds']:>8.0f} s", flush=True)
            dataset = built["dataset"]
            m = run_child("mixed", dataset)
            rows["mixed"].append(m)
            show(
                size,
                "mixed view, regime A",
                m,
                MIXED_TARGET,
                f"decode limit {m['decode_rate']:,.0f}/s (the view at {m['rate'] / m['decode_rate']:.0%} of it)",
            )
            p = run_child("map", dataset, str(min(args.map_items, size)), str(args.cache_mib), "all")
            rows["map"].append(p)
            show(
                size,
                f"map-style, {args.cache_mib} MiB",
                p,
                MAP_TARGET,
                f"cache held {p['cache_held_mib']:.0f} MiB, {p['misses']:,} chunk decodes",
            )
            if args.small_cache:
                q = run_child("map", dataset, str(min(args.map_items, size)), str(args.small_cache), "10")
                rows["small"].append(q)
                show(
                    size,
                    f"map-style, {args.small_cache} MiB",
                    q,
                    None,
                    f"cache held {q['cache_held_mib']:.0f} MiB, {q['misses']:,} chunk decodes (memory only: "
                    f"random access re-decodes evicted chunks)",
                )
            shutil.rmtree(folder)  # one dataset on disk at a time
    mixed_peaks = [m["peak_mib"] for m in rows["mixed"]]
    small_peaks = [q["peak_mib"] for q in rows["small"]] or [1.0]
    flat = max(mixed_peaks) / min(mixed_peaks)
    small_flat = max(small_peaks) / min(small_peaks)
    bounded = all(p["peak_mib"] <= p["base_mib"] + p["cache_mib"] + MAP_SLACK_MIB for p in rows["map"] + rows["small"])
    slowest_mixed = min(m["rate"] for m in rows["mixed"])
    slowest_map = min(p["rate"] for p in rows["map"])
    ok = slowest_mixed >= MIXED_TARGET and slowest_map >= MAP_TARGET and flat <= FLAT and small_flat <= FLAT
    ok = ok and bounded
    print(
        f"slowest mixed view {slowest_mixed:,.0f} samples/s (target >= {MIXED_TARGET:,}: "
        f"x{slowest_mixed / MIXED_TARGET:.2f}); slowest map-style epoch {slowest_map:,.0f} samples/s (target >= "
        f"{MAP_TARGET:,}: x{slowest_map / MAP_TARGET:.2f})\n"
        f"peak RSS by size: mixed epoch {' -> '.join(f'{x:.0f}' for x in mixed_peaks)} MiB (x{flat:.2f}, target "
        f"<= {FLAT}); map-style with {args.small_cache} MiB cache {' -> '.join(f'{x:.0f}' for x in small_peaks)} MiB "
        f"(x{small_flat:.2f}, target <= {FLAT}); every map-style peak within opened RSS + cache bound + "
        f"{MAP_SLACK_MIB} MiB: {'yes' if bounded else 'NO'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
