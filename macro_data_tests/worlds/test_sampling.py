"""The seeding algorithm against a direct, one-block-at-a-time reading of its definition."""

from __future__ import annotations

import numpy as np
import pytest

from macro_data.errors import WorldError
from macro_data.worlds import get_world
from macro_data.worlds.base import to_float32_precision
from macro_data.worlds.sampling import BLOCK_SIZE, MAX_REJECTION_ROUNDS, block_rng, draw_range, draw_theta_blocks


def one_block(world, seed, block, priors):
    """The documented rejection rounds of one block, drawn alone."""
    rng = block_rng(seed, world, block, "theta")
    theta = np.full((BLOCK_SIZE, len(world.parameters)), np.nan)
    rejections = np.zeros(BLOCK_SIZE, dtype=np.int64)
    for _ in range(MAX_REJECTION_ROUNDS):
        candidates = to_float32_precision(world.propose(rng, BLOCK_SIZE, priors))
        for i in range(BLOCK_SIZE):
            if np.isnan(theta[i, 0]):
                if world.valid(candidates[i : i + 1])[0]:
                    theta[i] = candidates[i]
                else:
                    rejections[i] += 1
        if not np.isnan(theta[:, 0]).any():
            return theta, rejections
    raise AssertionError("reference ran out of rounds")


def test_blocks_drawn_together_equal_blocks_drawn_alone():
    # zlb rejects about a quarter of its proposals, so blocks need different numbers of rounds.
    world = get_world("zlb")
    priors = world.resolve_priors(None)
    theta, rejections = draw_theta_blocks(world, 5, range(3, 7), priors)
    assert rejections.sum() > 100
    for j, b in enumerate(range(3, 7)):
        ref_theta, ref_rej = one_block(world, 5, b, priors)
        rows = slice(j * BLOCK_SIZE, (j + 1) * BLOCK_SIZE)
        np.testing.assert_array_equal(theta[rows], ref_theta)
        np.testing.assert_array_equal(rejections[rows], ref_rej)
    # and any sub-range of samples is the same slice of them
    d = draw_range(world, 5, 3 * BLOCK_SIZE + 17, 6 * BLOCK_SIZE + 3, 4)
    np.testing.assert_array_equal(d.theta, theta[17 : 3 * BLOCK_SIZE + 3])


def test_no_valid_region_names_world_block_and_priors(monkeypatch):
    world = get_world("nk")
    monkeypatch.setattr("macro_data.worlds.sampling.MAX_REJECTION_ROUNDS", 3)
    monkeypatch.setattr(type(world), "is_valid", lambda self, theta: theta[:, 0] < 0)  # never valid
    with pytest.raises(
        WorldError,
        match=r"world 'nk': 256 samples of block 4 found no valid parameter draw in 3 "
        r"proposals each; the priors .*beta",
    ):
        draw_theta_blocks(world, 1, range(4, 6), world.resolve_priors(None))
