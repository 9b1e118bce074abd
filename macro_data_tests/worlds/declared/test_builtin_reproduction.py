"""nk and rbc written as model files reproduce the built-in worlds (same theta, same innovations).

The built-ins solve by different routes (nk: the closed-form characteristic cubic; rbc: static
block substituted by hand, then a batched eigen-decomposition), so agreement to 1e-9 checks the
declared-world parser, canonical form, solver and simulation end to end.

Timing of ``rbc_declared.yaml`` (as in the built-in rbc): ``k[t]`` is capital at the start of
``t``, ``k[t] = (1-delta) k[t-1] + delta inv[t-1]`` (predetermined); ``er[t] = E_t r[t+1]`` is an
auxiliary variable for the canonical rate ``400 E_t r[t+1]``; inflation ``400 (c[t] - c[t-1])``
uses a lagged variable in an observable, with ``c[-1] = 0``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from macro_data.worlds import get_world
from macro_data.worlds.declared import load_world_file
from macro_data.worlds.sampling import draw_range

DATA = Path(__file__).resolve().parent / "data"
T, H = 120, 40
TOL = 1e-9


def relative_error(a: np.ndarray, b: np.ndarray, series_axes: tuple[int, ...]) -> float:
    """Largest ``max |a - b| / max |b|`` over the series (the max taken over ``series_axes``)."""
    scale = np.max(np.abs(b), axis=series_axes, keepdims=True)
    assert np.all(scale > 0)
    return float(np.max(np.abs(a - b) / scale))


def draws(builtin, n=600):
    """Prior draws of the built-in plus its bound corners and defaults (float32 values)."""
    d = draw_range(builtin, 99, 0, n, T)
    lows = [p.low for p in builtin.parameters]
    highs = [p.high for p in builtin.parameters]
    defaults = [p.default for p in builtin.parameters]
    extra = np.array([lows, highs, defaults], dtype=np.float32).astype(np.float64)
    theta = np.concatenate([d.theta, extra])
    shocks = np.concatenate(
        [d.shocks, np.random.default_rng(1).standard_normal((3, T, len(builtin.shocks))).astype(np.float32)]
    )
    return theta, shocks


@pytest.mark.parametrize("world_id", ["nk", "rbc"])
def test_declared_model_reproduces_builtin(world_id):
    builtin = get_world(world_id)
    declared = load_world_file(DATA / f"{world_id}_declared.yaml")
    assert declared.parameter_names == builtin.parameter_names
    assert [(p.low, p.high, p.default) for p in declared.parameters] == [
        (p.low, p.high, p.default) for p in builtin.parameters
    ]
    assert declared.shocks == builtin.shocks
    assert [o.name for o in declared.extras] == [o.name for o in builtin.extras]
    theta, shocks = draws(builtin)
    ref = builtin.simulate(theta, shocks)
    got = declared.simulate(theta, shocks)
    errors = {"trajectories": relative_error(got.trajectories, ref.trajectories, (1,))}
    if builtin.extras:
        errors["extras"] = relative_error(got.extras, ref.extras, (1,))
        ref_irfs, got_irfs = builtin.irfs_all(theta, H), declared.irfs_all(theta, H)
    else:
        ref_irfs, got_irfs = builtin.irfs(theta, H), declared.irfs(theta, H)
    errors["irfs"] = relative_error(got_irfs, ref_irfs, (2,))
    np.testing.assert_array_equal(declared.irfs(theta, H), got_irfs[..., :3])
    assert max(errors.values()) < TOL, errors


def nk_stress_draws(n: int) -> np.ndarray:
    """nk parameters beyond the bounds: phi_pi from 0.2 to 2 (indeterminate below roughly 1) and
    rho_i up to 1.3 (explosive rate dynamics), the rest inside."""
    nk = get_world("nk")
    rng = np.random.default_rng(5)
    theta = nk.propose(rng, n, nk.resolve_priors())
    theta[:, nk.index("phi_pi")] = rng.uniform(0.2, 2.0, n)
    theta[:, nk.index("phi_y")] = rng.uniform(0.0, 0.3, n)
    theta[:, nk.index("rho_i")] = rng.uniform(0.0, 1.3, n)
    return theta.astype(np.float32).astype(np.float64)


def test_rejection_matches_builtin_nk():
    nk = get_world("nk")
    declared = load_world_file(DATA / "nk_declared.yaml")
    theta = nk_stress_draws(4000)
    ref = nk.is_valid(theta)
    got = declared.is_valid(theta)
    assert 0.2 < ref.mean() < 0.8  # both determinate and non-determinate draws occur
    np.testing.assert_array_equal(got, ref)
    problems = declared.solution(theta).policy.problem[~got]
    assert set(np.unique(problems)) == {4}  # all are Blanchard-Kahn count failures
    n_unstable = declared.solution(theta).policy.n_unstable[~got]
    assert (n_unstable < 2).any() and (n_unstable > 2).any()  # indeterminate and explosive draws
    # and the valid ones (outside the bounds, so past the public bounds check) agree in their responses
    ok = np.flatnonzero(ref)[:200]
    assert relative_error(declared._irfs(theta[ok], 12), nk._irfs(theta[ok], 12), (2,)) < TOL


def test_rejection_matches_builtin_rbc():
    rbc = get_world("rbc")
    declared = load_world_file(DATA / "rbc_declared.yaml")
    rng = np.random.default_rng(8)
    theta = rbc.propose(rng, 500, rbc.resolve_priors())
    theta[:, rbc.index("rho_a")] = rng.uniform(0.5, 1.1, 500)  # explosive technology above 1
    theta = theta.astype(np.float32).astype(np.float64)
    ref = rbc.is_valid(theta)
    assert 0.3 < ref.mean() < 0.95
    np.testing.assert_array_equal(declared.is_valid(theta), ref)
