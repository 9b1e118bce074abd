"""Every world's float32 outputs are its float64 outputs rounded once, from float32 or float64 innovations."""

from __future__ import annotations

import numpy as np
import pytest

from macro_data.errors import WorldError
from macro_data.worlds import WORLD_IDS, get_world
from macro_data.worlds.sampling import draw_range


@pytest.mark.parametrize("world_id", WORLD_IDS)
def test_float32_outputs_are_float64_outputs_rounded(world_id):
    world = get_world(world_id)
    d = draw_range(world, 21, 0, 300, 24)
    assert d.shocks.dtype == np.float32
    ref = world.simulate(d.theta, d.shocks.astype(np.float64), d.metadata)
    ref_irfs = world.irfs(d.theta, 7)
    for eps in (d.shocks, d.shocks.astype(np.float64)):
        sim = world.simulate(d.theta, eps, d.metadata, dtype=np.float32)
        assert sim.trajectories.dtype == np.float32
        np.testing.assert_array_equal(sim.trajectories, ref.trajectories.astype(np.float32))
        if world.extras:
            assert sim.extras.dtype == np.float32
            np.testing.assert_array_equal(sim.extras, ref.extras.astype(np.float32))
        for name, values in ref.metadata.items():
            np.testing.assert_array_equal(sim.metadata[name], values)
        # float32 innovations in, float64 out: the same numbers as from float64 innovations
        np.testing.assert_array_equal(world.simulate(d.theta, eps, d.metadata).trajectories, ref.trajectories)
    irfs = world.irfs(d.theta, 7, dtype=np.float32)
    assert irfs.dtype == np.float32
    np.testing.assert_array_equal(irfs, ref_irfs.astype(np.float32))


def test_other_output_dtypes_are_refused():
    world = get_world("nk")
    d = draw_range(world, 1, 0, 3, 5)
    for bad in (np.float16, np.int32, "complex128", "nonsense", None):
        with pytest.raises(WorldError, match="world 'nk': output dtype must be float64 or float32"):
            world.simulate(d.theta, d.shocks, dtype=bad)
        with pytest.raises(WorldError, match="output dtype must be float64 or float32"):
            world.irfs(d.theta, 3, dtype=bad)
