"""Train/val/test and extrapolation splits, per world, deterministic given the seed.

Algorithm ``heldout-regions-then-uniform/v1`` (``docs/worlds.md``, "Splits"):

1. ``test_extrapolation_slice``: every draw whose slice statistic is beyond the world's fixed
   threshold (:attr:`World.slice_rule`).
2. ``test_extrapolation_corner``: every remaining draw whose persistence *and* volatility
   summaries are both above the world's fixed thresholds (:attr:`World.corner_rule`).
3. Every other draw by one uniform ``u`` from the ``split`` stream of its block (seeding
   algorithm in :mod:`macro_data.worlds.sampling`): ``train`` if ``u < 0.80/0.95``, ``val`` if
   ``u < 0.90/0.95``, else ``test_interpolation``, i.e. 80 / 10 / 5 % of the total rescaled to
   the 95 % pool.

Labels depend only on the sample's own theta and uniform, so they are prefix-stable when a
dataset grows, and the held-out regions can never leak into train or val.
"""

from __future__ import annotations

import hashlib

import numpy as np

from macro_data.worlds.base import World

ALGORITHM = "heldout-regions-then-uniform/v1"
LABELS: dict[str, int] = {
    "train": 0,
    "val": 1,
    "test_interpolation": 2,
    "test_extrapolation_slice": 3,
    "test_extrapolation_corner": 4,
}
NAMES = {v: k for k, v in LABELS.items()}
TARGET_FRACTIONS = {
    "train": 0.80,
    "val": 0.10,
    "test_interpolation": 0.05,
    "test_extrapolation_slice": 0.025,
    "test_extrapolation_corner": 0.025,
}
_POOL = TARGET_FRACTIONS["train"] + TARGET_FRACTIONS["val"] + TARGET_FRACTIONS["test_interpolation"]
TRAIN_CUT = TARGET_FRACTIONS["train"] / _POOL
VAL_CUT = (TARGET_FRACTIONS["train"] + TARGET_FRACTIONS["val"]) / _POOL
HELD_OUT = ("test_extrapolation_slice", "test_extrapolation_corner")


def in_slice(world: World, theta: np.ndarray) -> np.ndarray:
    rule = world.slice_rule
    stat = world.slice_statistic(theta)
    return stat > rule.threshold if rule.direction == "above" else stat < rule.threshold


def in_corner(world: World, theta: np.ndarray) -> np.ndarray:
    rule = world.corner_rule
    persistence, volatility = world.corner_statistics(theta)
    return (persistence > rule.persistence_threshold) & (volatility > rule.volatility_threshold)


def regions(world: World, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(in_slice, in_corner)`` bool ``(n,)``: the held-out regions, the corner without the slice."""
    slice_ = in_slice(world, theta)
    return slice_, in_corner(world, theta) & ~slice_


def assign(
    world: World, theta: np.ndarray, uniforms: np.ndarray, held_out: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Split labels ``(n,) int8`` from theta ``(n, P)`` and one uniform per sample; ``held_out``: the
    :func:`regions` of ``theta`` if already computed (the corner statistics cost seconds per 100,000 draws
    for some worlds)."""
    labels = np.where(
        uniforms < TRAIN_CUT, LABELS["train"], np.where(uniforms < VAL_CUT, LABELS["val"], LABELS["test_interpolation"])
    ).astype(np.int8)
    slice_, corner = regions(world, theta) if held_out is None else held_out
    labels[corner] = LABELS["test_extrapolation_corner"]
    labels[slice_] = LABELS["test_extrapolation_slice"]  # the slice takes precedence
    return labels


def index_set_hash(indices: np.ndarray) -> str:
    """SHA-256 of the sorted sample indices as little-endian int64."""
    return hashlib.sha256(np.sort(np.asarray(indices, dtype="<i8")).tobytes()).hexdigest()


class SplitTally:
    """Streams over label chunks and accumulates counts and index-set hashes per split."""

    def __init__(self) -> None:
        self.counts = {name: 0 for name in LABELS}
        self._hashes = {name: hashlib.sha256() for name in LABELS}
        self.n = 0

    def add(self, start: int, labels: np.ndarray) -> None:
        # indices arrive in increasing order, so hashing chunk by chunk equals hashing the sorted set
        idx = np.arange(start, start + labels.shape[0], dtype="<i8")
        for name, value in LABELS.items():
            sel = idx[labels == value]
            self.counts[name] += int(sel.shape[0])
            self._hashes[name].update(sel.tobytes())
        self.n += int(labels.shape[0])

    def summary(self, world: World, seed: int) -> dict[str, dict]:
        out = {}
        for name, value in LABELS.items():
            entry = {
                "label": value,
                "count": self.counts[name],
                "fraction": self.counts[name] / self.n if self.n else 0.0,
                "target_fraction": TARGET_FRACTIONS[name],
                "algorithm": ALGORITHM,
                "seed": seed,
                "index_hash": self._hashes[name].hexdigest(),
                "index_hash_algorithm": "sha256 of sorted sample indices as little-endian int64",
            }
            if name == "test_extrapolation_slice":
                r = world.slice_rule
                entry.update(statistic=r.statistic, threshold=r.threshold, direction=r.direction, rule=r.description)
            elif name == "test_extrapolation_corner":
                r = world.corner_rule
                entry.update(
                    statistic=f"{r.persistence} and {r.volatility}",
                    threshold={r.persistence: r.persistence_threshold, r.volatility: r.volatility_threshold},
                    direction="above",
                    rule=r.description,
                )
            else:
                lo = {"train": 0.0, "val": TRAIN_CUT, "test_interpolation": VAL_CUT}[name]
                hi = {"train": TRAIN_CUT, "val": VAL_CUT, "test_interpolation": 1.0}[name]
                entry.update(
                    statistic="split uniform u of the sample (seeding stream 'split')",
                    threshold={"u_low": lo, "u_high": hi},
                    direction="between",
                    rule="draws outside both held-out regions, assigned by u",
                )
            out[name] = entry
        return out
