"""Benchmark of the chunk codec: stored size and encode/decode speed on simulated arrays.

    python benchmarks/codecs.py                  # nk, 8,192 samples of the paper recipe's shapes
    python benchmarks/codecs.py --world var --samples 4096

Draws and simulates ``--samples`` samples of one world (T = 200, H = 40), then encodes and
decodes its shocks, trajectories and IRFs in chunks of 1,024 samples with Blosc, one thread per
call as the stages call it, for each candidate codec. Prints the stored fraction of the bytes,
encode and decode speeds, and the cost of writing a byte once and reading it four times (what a
paper build does: the next stage, the integrity, statistics and train-statistics passes), each
against the previous codec (zstd level 3 with bitshuffle) measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numcodecs import Blosc, blosc

CANDIDATES = [  # (label, cname, shuffle); the first is the baseline
    ("zstd + bitshuffle (before)", "zstd", Blosc.BITSHUFFLE),
    ("zstd + byte shuffle", "zstd", Blosc.SHUFFLE),
    ("lz4 + bitshuffle", "lz4", Blosc.BITSHUFFLE),
    ("lz4 + byte shuffle (now)", "lz4", Blosc.SHUFFLE),
]
CHUNK = 1024


def arrays(world_id: str, n: int) -> dict[str, np.ndarray]:
    from macro_data.worlds import get_world
    from macro_data.worlds.sampling import draw_range

    world = get_world(world_id)
    d = draw_range(world, 42, 0, n, 200)
    sim = world.simulate(d.theta, d.shocks, d.metadata)
    return {
        "shocks": d.shocks,
        "trajectories": sim.trajectories.astype(np.float32),
        "irfs": world.irfs(d.theta, 40).astype(np.float32),
    }


def measure(data: dict[str, np.ndarray], cname: str, shuffle: int, clevel: int, repeats: int) -> dict:
    raw = stored = 0
    enc_s = dec_s = 0.0
    for x in data.values():
        codec = Blosc(cname=cname, clevel=clevel, shuffle=shuffle, blocksize=0, typesize=x.itemsize)
        chunks = [np.ascontiguousarray(x[i : i + CHUNK]).view(np.uint8).reshape(-1) for i in range(0, len(x), CHUNK)]
        best_e = best_d = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            encoded = [codec.encode(c) for c in chunks]
            best_e = min(best_e, time.perf_counter() - t)
            t = time.perf_counter()
            for e in encoded:
                codec.decode(e)
            best_d = min(best_d, time.perf_counter() - t)
        raw += x.nbytes
        stored += sum(len(e) for e in encoded)
        enc_s += best_e
        dec_s += best_d
    mb = raw / 1e6
    return {"stored": stored / raw, "encode": mb / enc_s, "decode": mb / dec_s, "w1r4": 1e3 * (enc_s + 4 * dec_s) / mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="nk")
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--clevel", type=int, default=3, help="Blosc level (the recipes' storage.clevel, default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many passes per codec")
    args = parser.parse_args()
    blosc.use_threads = False  # one thread per call, as in the stages' codec threads (documented setting)
    data = arrays(args.world, args.samples)
    total = sum(x.nbytes for x in data.values()) / 2**20
    names = ", ".join(data)
    print(f"{args.world}: {args.samples} samples, {names} ({total:.0f} MiB), chunks of {CHUNK}, level {args.clevel}")
    rows = [(label, measure(data, c, s, args.clevel, args.repeats)) for label, c, s in CANDIDATES]
    base = rows[0][1]
    head = f"{'codec':28s} {'stored':>7s} {'encode MB/s':>12s} {'decode MB/s':>12s}"
    print(f"{head} {'write 1 + read 4':>17s} {'x before':>9s}")
    for label, r in rows:
        print(
            f"{label:28s} {r['stored']:7.3f} {r['encode']:12,.0f} {r['decode']:12,.0f} "
            f"{r['w1r4']:11.2f} ms/MB {base['w1r4'] / r['w1r4']:8.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
