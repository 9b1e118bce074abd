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

from macro_data.recent import Recent
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


def _compute_regions(world: World, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    slice_ = in_slice(world, theta)
    return slice_, in_corner(world, theta) & ~slice_


class RegionMemo:
    """The held-out regions of recently seen theta segments (``SEGMENT`` rows), keyed by their bytes.

    A world run labels a world (``world_splits``) and then checks the labels by recomputing the
    regions from the same stored theta, in the same process; the corner statistics cost seconds per
    100,000 draws for var, lss and switching (a linear system per draw). The regions are a pure
    function of a draw's parameters (each draw's statistics are computed on their own, so the batch
    does not matter: see the chunk-size tests), so the check gets the identical arrays from here.
    A segment whose bytes differ (other data, a damaged row left out) is a miss and is computed.
    Segments start at the caller's row 0: the stage's regions and the check's reads start at
    multiples of ``SEGMENT`` samples, so their segments coincide."""

    SEGMENT = 256

    def __init__(self, max_segments: int = 4096):  # 1,048,576 draws, about 0.5 MB of flags
        self._segments: Recent[tuple[np.ndarray, np.ndarray]] = Recent(max_segments)

    def regions(self, world: World, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        n, seg = theta.shape[0], self.SEGMENT
        if n == 0:
            return _compute_regions(world, theta)
        # the world object itself (not its name) is in the key: declared worlds may share a name
        keys = [(world, theta.shape[1:], hashlib.sha256(theta[lo : lo + seg]).digest()) for lo in range(0, n, seg)]
        found = [self._segments.get(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            rows = np.concatenate([np.arange(i * seg, min(n, (i + 1) * seg)) for i in missing])
            slice_, corner = _compute_regions(world, theta if len(missing) == len(keys) else theta[rows])
            at = 0
            for i in missing:
                size = min(n, (i + 1) * seg) - i * seg
                found[i] = (slice_[at : at + size].copy(), corner[at : at + size].copy())
                at += size
                self._segments.put(keys[i], found[i])
        return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


MEMO = RegionMemo()


def regions(world: World, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(in_slice, in_corner)`` bool ``(n,)``: the held-out regions, the corner without the slice
    (remembered per segment of theta, see :class:`RegionMemo`)."""
    return MEMO.regions(world, theta)


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
