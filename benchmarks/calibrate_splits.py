"""Calibrate a world's extrapolation-split thresholds by Monte Carlo over valid prior draws.

Usage::

    python benchmarks/calibrate_splits.py WORLD [--n 400000] [--seed 0] [--target 0.025]

Generic over ``macro_data.worlds.get_world(name)``: it draws ``n`` valid parameter vectors with the
production sampler (``draw_range``, so the valid prior is exactly what datasets use), then

* slice: the threshold of ``world.slice_statistic`` at the ``target`` tail in the direction of
  ``world.slice_rule`` (``above``: the ``1 - target`` quantile; ``below``: the ``target`` quantile);
* corner, among draws outside that slice: thresholds on the two ``corner_statistics`` with equal
  marginal tail probability ``q`` (over all valid draws), ``q`` found by bisection so that the
  draws in the corner and outside the slice make up ``target`` of all draws.

It prints suggested constants (rounded to 4 significant digits), the fractions they produce, and
the fractions the world's current constants produce. Hard-code the constants in the world module
with a comment quoting the command and the fractions. :func:`calibrate` is importable.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from macro_data.worlds import get_world
from macro_data.worlds.sampling import draw_range


def _round_sig(x: float, sig: int = 4) -> float:
    return float(f"{x:.{sig}g}")


def region_fractions(
    world, theta: np.ndarray, slice_threshold: float, persistence_threshold: float, volatility_threshold: float
) -> dict:
    """Fractions of ``theta`` in the slice and in the corner-outside-the-slice."""
    stat = world.slice_statistic(theta)
    in_slice = stat > slice_threshold if world.slice_rule.direction == "above" else stat < slice_threshold
    pers, vol = world.corner_statistics(theta)
    corner = (pers > persistence_threshold) & (vol > volatility_threshold) & ~in_slice
    return {"slice": float(in_slice.mean()), "corner": float(corner.mean())}


def calibrate(name: str, n: int = 400_000, seed: int = 0, target: float = 0.025) -> dict:
    world = get_world(name)
    draws = draw_range(world, seed, 0, n, 1)
    theta = draws.theta
    stat = world.slice_statistic(theta)
    above = world.slice_rule.direction == "above"
    slice_thr = _round_sig(float(np.quantile(stat, 1.0 - target if above else target)))
    in_slice = stat > slice_thr if above else stat < slice_thr
    pers, vol = world.corner_statistics(theta)

    def corner_fraction(q: float) -> tuple[float, float, float]:
        a = _round_sig(float(np.quantile(pers, 1.0 - q)))
        b = _round_sig(float(np.quantile(vol, 1.0 - q)))
        return float(((pers > a) & (vol > b) & ~in_slice).mean()), a, b

    lo, hi = target, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if corner_fraction(mid)[0] < target:
            lo = mid
        else:
            hi = mid
    frac, a, b = corner_fraction(0.5 * (lo + hi))
    current = region_fractions(
        world,
        theta,
        world.slice_rule.threshold,
        world.corner_rule.persistence_threshold,
        world.corner_rule.volatility_threshold,
    )
    return {
        "world": name,
        "n": n,
        "seed": seed,
        "target": target,
        "rejections_per_valid_draw": float(draws.rejections.mean()),
        "suggested": {
            "slice_threshold": slice_thr,
            "slice_direction": world.slice_rule.direction,
            "slice_fraction": float(in_slice.mean()),
            "corner_persistence_threshold": a,
            "corner_volatility_threshold": b,
            "corner_marginal_tail": 0.5 * (lo + hi),
            "corner_fraction": frac,
        },
        "current": {
            "slice_threshold": world.slice_rule.threshold,
            "corner_persistence_threshold": world.corner_rule.persistence_threshold,
            "corner_volatility_threshold": world.corner_rule.volatility_threshold,
            "slice_fraction": current["slice"],
            "corner_fraction": current["corner"],
        },
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("world")
    ap.add_argument("--n", type=int, default=400_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=0.025)
    args = ap.parse_args(argv)
    print(json.dumps(calibrate(args.world, args.n, args.seed, args.target), indent=2))


if __name__ == "__main__":
    main()
