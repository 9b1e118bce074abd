"""World.free_path: the path with zero innovations from a given state (the state entering period 0).

Checked against independent routes for every linear world (lss, var, nk, rbc, every declared world
of the catalog and the declared test models):

* continuation: simulating a burn-in ``eps_b`` and then zero innovations, the last ``T`` periods
  equal the free path from the state :meth:`World._state_path` gives after the burn-in;
* superposition (the convolution identity of a linear world): simulating ``eps_b`` then ``eps``, the
  last ``T`` periods equal the free path plus the simulation of ``eps`` from the steady state, and
  plus the convolution of the IRFs with ``eps``;
* linearity in the state, zero state -> zero path, batch independence, float32 = float64 rounded;
* the checks: state shape, dtype and finiteness, T, and the nonlinear worlds (switching, zlb),
  which do not implement it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from macro_data.errors import WorldError
from macro_data.worlds import get_world, world_ids
from macro_data.worlds.declared import load_world_file
from macro_data.worlds.sampling import draw_range

B, T, N = 13, 17, 64  # burn-in, stored periods, samples (T odd: crosses the kernels' 8-period blocks)
TOL = 1e-10  # relative to the sample's largest |value| on the path
DATA = Path(__file__).resolve().parent / "declared" / "data"
TEST_MODELS = tuple(f"file:{p.name}" for p in sorted(DATA.glob("*.yaml")))
LINEAR = tuple(w for w in world_ids() if get_world(w).linear) + TEST_MODELS


def _world(key: str):
    return load_world_file(DATA / key[5:]) if key.startswith("file:") else get_world(key)


def _draws(world, seed: int = 11, n: int = N):
    d = draw_range(world, seed, 0, n, B + T)
    theta = world.check_theta(d.theta)
    eps = d.shocks.astype(np.float64)
    return theta, eps[:, :B], eps[:, B:]


def _rel(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> float:
    """Largest |a - b| relative to each sample's scale ``(n,)``."""
    return float((np.abs(a - b).reshape(a.shape[0], -1).max(axis=1) / scale).max())


def _state_after(world, theta, eps_b, eps_after):
    """The float64 simulation of ``[eps_b, eps_after]`` and the state entering period ``B``."""
    full_eps = np.concatenate([eps_b, eps_after], axis=1)
    full = world.simulate(theta, full_eps)
    return full, world._state_path(theta, full_eps, {}, full)[:, B]


def test_the_linear_worlds_implement_it_and_the_nonlinear_ones_do_not():
    for w in world_ids():
        world = get_world(w)
        assert world.has_free_path == world.linear, w
    assert {"lss", "var", "nk", "rbc", "nk_habit", "rbc_iac"} <= set(LINEAR)
    assert not ({"switching", "zlb"} & set(LINEAR))


@pytest.mark.parametrize("key", LINEAR)
def test_free_path_continues_the_simulation_with_zero_innovations(key):
    world = _world(key)
    theta, eps_b, _ = _draws(world)
    S = len(world.shocks)
    full, state = _state_after(world, theta, eps_b, np.zeros((N, T, S)))
    assert state.shape == (N, len(world.state_variables)) and np.abs(state).max() > 0
    free = world.free_path(theta, state, T)
    assert free.shape == (N, T, 3) and free.dtype == np.float64
    scale = np.abs(full.trajectories).max(axis=(1, 2))
    err = _rel(free, full.trajectories[:, B:], scale)
    print(f"{key}: continuation max relative error {err:.3g}")
    assert err < TOL, f"{key}: {err:.3g}"
    # and the state the free path starts from is the state its own path is at: one period on
    state1 = world._state_path(theta, np.concatenate([eps_b, np.zeros((N, T, S))], axis=1), {}, full)[:, B + 1]
    err1 = _rel(world.free_path(theta, state1, T - 1), free[:, 1:], scale)
    assert err1 < TOL, f"{key}: {err1:.3g}"


@pytest.mark.parametrize("key", LINEAR)
def test_superposition_free_path_plus_the_response_to_the_innovations(key):
    world = _world(key)
    theta, eps_b, eps = _draws(world, seed=5)
    full, state = _state_after(world, theta, eps_b, eps)
    free = world.free_path(theta, state, T)
    from_zero = world.simulate(theta, eps).trajectories
    scale = np.abs(full.trajectories).max(axis=(1, 2))
    err = _rel(full.trajectories[:, B:], free + from_zero, scale)
    # the convolution identity the recipes' burn-in validation checks
    irfs = world.irfs(theta, T - 1)  # (n, S, T, 3)
    conv = np.zeros((N, T, 3))
    for h in range(T):
        conv[:, h:] += np.einsum("njk,ntj->ntk", irfs[:, :, h], eps[:, : T - h])
    err_conv = _rel(full.trajectories[:, B:], free + conv, scale)
    print(f"{key}: superposition {err:.3g}, convolution {err_conv:.3g}")
    assert err < TOL, f"{key}: {err:.3g}"
    assert err_conv < TOL, f"{key}: {err_conv:.3g}"


@pytest.mark.parametrize("key", LINEAR)
def test_linear_in_the_state_zero_at_the_steady_state_and_batch_independent(key):
    world = _world(key)
    theta, eps_b, _ = _draws(world, seed=2)
    V = len(world.state_variables)
    assert not world.free_path(theta, np.zeros((N, V)), T).any()
    _, s1 = _state_after(world, theta, eps_b, np.zeros((N, 1, len(world.shocks))))
    s2 = np.random.default_rng(0).standard_normal((N, V)) * np.abs(s1).max(axis=0)
    f1, f2 = world.free_path(theta, s1, T), world.free_path(theta, s2, T)
    f12 = world.free_path(theta, 2.0 * s1 - s2, T)
    scale = np.maximum(np.abs(f1).max(axis=(1, 2)), np.abs(f2).max(axis=(1, 2)))
    assert _rel(f12, 2.0 * f1 - f2, scale) < TOL
    for rows in ([0], [N - 1], [3, 7, 40], slice(10, 33)):
        np.testing.assert_array_equal(world.free_path(theta[rows], s2[rows], T), f2[rows])
    f32 = world.free_path(theta, s2, T, dtype=np.float32)
    assert f32.dtype == np.float32
    np.testing.assert_array_equal(f32, f2.astype(np.float32))
    # float32 states (as stored) are read exactly
    s32 = s2.astype(np.float32)
    np.testing.assert_array_equal(world.free_path(theta, s32, T), world.free_path(theta, s32.astype(np.float64), T))


def test_var_lags_beyond_the_lag_order_and_lss_states_beyond_n_state_do_not_enter():
    rng = np.random.default_rng(1)
    var = get_world("var")
    theta, _, _ = _draws(var)
    p = theta[:, 0].astype(int)
    state = rng.standard_normal((N, 12))
    noisy = state.copy().reshape(N, 4, 3)
    noisy[np.arange(4)[None, :] >= p[:, None]] = 99.0
    np.testing.assert_array_equal(var.free_path(theta, noisy.reshape(N, 12), T), var.free_path(theta, state, T))
    assert (p < 4).any()
    lss = get_world("lss")
    theta, _, _ = _draws(lss)
    k = theta[:, 0].astype(int)
    state = rng.standard_normal((N, 5))
    noisy = np.where(np.arange(5)[None, :] >= k[:, None], 99.0, state)
    np.testing.assert_array_equal(lss.free_path(theta, noisy, T), lss.free_path(theta, state, T))
    assert (k < 5).any()


@pytest.mark.parametrize("world_id", ["switching", "zlb"])
def test_nonlinear_worlds_do_not_implement_it(world_id):
    world = get_world(world_id)
    d = draw_range(world, 1, 0, 3, 5)
    with pytest.raises(WorldError, match=f"world '{world_id}' does not implement free_path"):
        world.free_path(d.theta, np.zeros((3, len(world.state_variables))), 5)


def test_bad_inputs_raise_world_errors_naming_the_world():
    world = get_world("nk")
    d = draw_range(world, 1, 0, 3, 5)
    ok = np.zeros((3, 4))
    for bad in (np.zeros((3, 5)), np.zeros((2, 4)), np.zeros(4), np.zeros((3, 4, 1))):
        with pytest.raises(WorldError, match=r"world 'nk': state must have shape \(3, 4\) \[rate_lag, "):
            world.free_path(d.theta, bad, 5)
    for value in (np.nan, np.inf, -np.inf):
        bad = ok.copy()
        bad[1, 2] = value
        with pytest.raises(WorldError, match="world 'nk': state variable 'demand_lag' of draw 1 is not finite"):
            world.free_path(d.theta, bad, 5)
    for bad in (ok.astype(complex), ok.astype(bool), np.full((3, 4), "a")):
        with pytest.raises(WorldError, match="world 'nk': state must be a real numeric array"):
            world.free_path(d.theta, bad, 5)
    for T_ in (0, -1, 2.0, True, None, "3"):
        with pytest.raises(WorldError, match="world 'nk': the number of periods T must be a positive integer"):
            world.free_path(d.theta, ok, T_)
    assert world.free_path(d.theta, ok, np.int64(2)).shape == (3, 2, 3)
    with pytest.raises(WorldError, match="world 'nk': theta must have shape"):
        world.free_path(d.theta[:, :3], ok, 5)
    with pytest.raises(WorldError, match="world 'nk': output dtype must be float64 or float32"):
        world.free_path(d.theta, ok, 5, dtype=np.int32)
    theta = d.theta.copy()
    theta[0, 0] = 2.0  # beta out of bounds
    with pytest.raises(WorldError, match="world 'nk': parameter 'beta' of draw 0"):
        world.free_path(theta, ok, 5)
