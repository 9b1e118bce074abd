"""Seeding and drawing: every random number of sample ``i`` of world ``w`` from ``(seed, w, i)``.

Algorithm ``block-seedsequence-pcg64/v1`` (recorded in the manifest with its constants):

* Samples are grouped in fixed blocks of ``BLOCK_SIZE = 256`` consecutive indices. The block
  size is a constant of the algorithm, never a batch or chunk size.
* Each block has one stream per purpose:
  ``PCG64(SeedSequence(seed, spawn_key=(world_key, block, purpose)))`` with ``world_key`` a
  32-bit number from SHA-256 of the world's name and ``purpose`` one of :data:`PURPOSES`.
  Different worlds, seeds, blocks and purposes therefore never share a stream.
* Within a block, draws are made for the whole block in a fixed order: parameters by rejection
  rounds (each round proposes all ``BLOCK_SIZE`` candidates; samples still without a valid draw
  take their candidate if it is valid), innovations as ``standard_normal((BLOCK_SIZE, T, S))``,
  per-period random inputs (e.g. regimes) from their own stream, split uniforms likewise.
* Computations always cover whole blocks, so a sample's values never depend on the batch size,
  the storage chunking, the number of workers or the execution order. Any range of samples is
  computed from the blocks that cover it and then sliced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from macro_data.errors import WorldError
from macro_data.worlds.base import World, to_float32_precision

ALGORITHM = "block-seedsequence-pcg64/v1"
BLOCK_SIZE = 256
BATCH_SAMPLES = 2048  # samples computed per step inside a pipeline region: bounds memory whatever the dataset size
PURPOSES = {"theta": 0, "shocks": 1, "metadata": 2, "split": 3, "subset": 4, "burn_in": 5, "state_dates": 6}
MAX_REJECTION_ROUNDS = 1000


def seeding_description() -> dict:
    """The seeding algorithm and its constants, for the manifest."""
    return {
        "algorithm": ALGORITHM,
        "block_size": BLOCK_SIZE,
        "bit_generator": "numpy PCG64",
        "stream_key": "SeedSequence(entropy=seed, spawn_key=(world_key, block_index, purpose))",
        "world_key": "first 4 bytes (big-endian) of sha256('macro_data/world/' + world name)",
        "purposes": dict(PURPOSES),
        "max_rejection_rounds": MAX_REJECTION_ROUNDS,
        "innovations": "standard_normal((block_size, T, n_shocks)) per block, rounded to float32",
        "parameters": "rejection rounds of block_size proposals per block; theta rounded to float32 before validation",
    }


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WorldError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def block_rng(seed: int, world: World, block: int, purpose: str) -> np.random.Generator:
    """The stream of one block and purpose."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(check_seed(seed), spawn_key=(world.key, int(block), PURPOSES[purpose])))
    )


def blocks_covering(start: int, stop: int) -> range:
    if start < 0 or stop < start:
        raise WorldError(f"invalid sample range [{start}, {stop})")
    return range(start // BLOCK_SIZE, -(-stop // BLOCK_SIZE))


@dataclass
class Draws:
    """Random inputs of samples ``start .. start + n - 1``: theta float64 holding float32 values,
    shocks float32 (as stored)."""

    start: int
    theta: np.ndarray  # (n, P)
    shocks: np.ndarray  # (n, T, S)
    metadata: dict[str, np.ndarray] = field(default_factory=dict)  # stage="draws" fields (n, T)
    rejections: np.ndarray | None = None  # (n,) invalid proposals each sample drew before its valid one

    @property
    def n(self) -> int:
        return self.theta.shape[0]

    def slice(self, lo: int, hi: int) -> Draws:
        """Rows ``lo:hi`` (relative to this batch)."""
        return Draws(
            self.start + lo,
            self.theta[lo:hi],
            self.shocks[lo:hi],
            {k: v[lo:hi] for k, v in self.metadata.items()},
            None if self.rejections is None else self.rejections[lo:hi],
        )


def draw_theta_blocks(
    world: World, seed: int, blocks: range, priors: Mapping[str, tuple[float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Valid parameters of consecutive blocks by rejection: ``(theta, rejections)``, ``BLOCK_SIZE`` rows per block.

    Each block draws from its own stream exactly as if alone (one round of ``BLOCK_SIZE`` proposals
    while any of its samples lacks a valid draw); the candidates of all blocks still drawing are
    validated in one call, which is element-wise, so batching changes nothing but the speed.
    """
    rngs = [block_rng(seed, world, b, "theta") for b in blocks]
    n = len(blocks) * BLOCK_SIZE
    theta = np.full((n, len(world.parameters)), np.nan)
    rejections = np.zeros(n, dtype=np.int64)
    filled = np.zeros(n, dtype=bool)
    filled_by_block = filled.reshape(len(blocks), BLOCK_SIZE)  # a view
    drawing = np.arange(len(blocks))  # positions of the blocks with a sample still to fill
    for _ in range(MAX_REJECTION_ROUNDS):
        candidates = np.concatenate([to_float32_precision(world.propose(rngs[j], BLOCK_SIZE, priors)) for j in drawing])
        rows = (drawing[:, None] * BLOCK_SIZE + np.arange(BLOCK_SIZE)).ravel()
        todo = ~filled[rows]
        rows, candidates = rows[todo], candidates[todo]
        ok = world.valid(candidates)
        theta[rows[ok]] = candidates[ok]
        rejections[rows[~ok]] += 1
        filled[rows[ok]] = True
        drawing = drawing[~filled_by_block[drawing].all(axis=1)]
        if not drawing.size:
            return theta, rejections
    j = int(drawing[0])
    missing = int((~filled_by_block[j]).sum())
    raise WorldError(
        f"world {world.name!r}: {missing} samples of block {blocks[j]} found no valid "
        f"parameter draw in {MAX_REJECTION_ROUNDS} proposals each; the priors {dict(priors)} "
        f"may leave (almost) no valid region"
    )


def draw_range(
    world: World, seed: int, start: int, stop: int, T: int, priors: Mapping[str, tuple[float, float]] | None = None
) -> Draws:
    """Random inputs of samples ``start .. stop - 1``, computed from the whole blocks covering them.

    Innovations are drawn in float64 and kept in float32 (the stored precision; simulations
    convert them back exactly), written block by block into the batch's arrays.
    """
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise WorldError(f"world {world.name!r}: T must be a positive integer; got {T!r}")
    priors = world.resolve_priors(None) if priors is None else priors
    blocks = blocks_covering(start, stop)
    if len(blocks) == 0:
        raise WorldError(f"world {world.name!r}: empty sample range [{start}, {stop})")
    n, T = len(blocks) * BLOCK_SIZE, int(T)
    theta, rejections = draw_theta_blocks(world, seed, blocks, priors)
    shocks = np.empty((n, T, len(world.shocks)), dtype=np.float32)
    metadata: dict[str, list[np.ndarray]] = {}
    for j, b in enumerate(blocks):
        rows = slice(j * BLOCK_SIZE, (j + 1) * BLOCK_SIZE)
        shocks[rows] = block_rng(seed, world, b, "shocks").standard_normal((BLOCK_SIZE, T, len(world.shocks)))
        for k, v in world.draw_metadata(block_rng(seed, world, b, "metadata"), theta[rows], T).items():
            metadata.setdefault(k, []).append(v)
    whole = Draws(
        blocks.start * BLOCK_SIZE, theta, shocks, {k: np.concatenate(v) for k, v in metadata.items()}, rejections
    )
    return whole.slice(start - whole.start, stop - whole.start)


def split_uniforms(world: World, seed: int, start: int, stop: int) -> np.ndarray:
    """One uniform on [0, 1) per sample for split assignment, from the blocks' ``split`` streams."""
    blocks = blocks_covering(start, stop)
    u = np.concatenate([block_rng(seed, world, b, "split").random(BLOCK_SIZE) for b in blocks])
    offset = start - blocks.start * BLOCK_SIZE
    return u[offset : offset + (stop - start)]
