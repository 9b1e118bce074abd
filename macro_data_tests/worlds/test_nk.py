"""nk against closed forms, an independent stacked perfect-foresight solver and its own contract."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from macro_data.errors import WorldError
from macro_data.worlds import get_world
from macro_data.worlds.linear_re import solve_re
from macro_data.worlds.nk import WORLD, characteristic_cubic, endogenous_root, solve, structural_matrices
from macro_data.worlds.sampling import draw_range

NAMES = WORLD.parameter_names
DEFAULT = np.array([p.default for p in WORLD.parameters])


def with_(base: np.ndarray, **kw) -> np.ndarray:
    th = np.array(base, dtype=np.float64).copy()
    for k, v in kw.items():
        th[..., NAMES.index(k)] = v
    return th


# ------------------------------------------------------------------------------------------------
# Independent reference: the perfect-foresight path of the structural equations, stacked over a
# long horizon and solved as one sparse linear system (terminal condition x[N] = pi[N] = 0).
# Optionally with binding periods S where the rule is replaced by i = ib (used by test_zlb).
# ------------------------------------------------------------------------------------------------
def pf_path(th, i_lag, v, rn, u, S=None, ib=0.0, N=None):
    """Model-unit paths ``(x, pi, i, shadow)`` for exogenous paths ``v, rn, u`` (length ``N``)."""
    beta, sig, kap, phpi, phy, rhoi = th[:6]
    N = len(v) if N is None else N
    S = np.zeros(N, dtype=bool) if S is None else S
    cx, cp = (1 - rhoi) * phy, (1 - rhoi) * phpi
    rows, cols, vals = [], [], []
    b = np.zeros(3 * N)

    def add(r, c, x):
        rows.append(r)
        cols.append(c)
        vals.append(x)

    for t in range(N):
        X, P, I = 3 * t, 3 * t + 1, 3 * t + 2
        # IS: x - x' + (i - pi')/sigma = rn/sigma
        add(X, X, 1.0)
        add(X, I, 1.0 / sig)
        if t + 1 < N:
            add(X, X + 3, -1.0)
            add(X, P + 3, -1.0 / sig)
        b[X] = rn[t] / sig
        # PC: pi - beta pi' - kappa x = u
        add(P, P, 1.0)
        add(P, X, -kap)
        if t + 1 < N:
            add(P, P + 3, -beta)
        b[P] = u[t]
        # rule or bound
        add(I, I, 1.0)
        if S[t]:
            b[I] = ib
        else:
            add(I, X, -cx)
            add(I, P, -cp)
            if t > 0:
                add(I, I - 3, -rhoi)
            else:
                b[I] += rhoi * i_lag
            b[I] += v[t]
    A = sp.csc_matrix((vals, (rows, cols)), shape=(3 * N, 3 * N))
    z = spl.spsolve(A, b).reshape(N, 3)
    x, pi, i = z[:, 0], z[:, 1], z[:, 2]
    ilag = np.concatenate([[i_lag], i[:-1]])
    shadow = rhoi * ilag + cx * x + cp * pi + v
    return x, pi, i, shadow


def exog_decay(th, s0, N):
    """AR(1) paths without future innovations from period-0 values ``s0 = (v, rn, u)``."""
    h = np.arange(N)
    return tuple(s0[c] * th[6 + c] ** h for c in range(3))


# ------------------------------------------------------------------------------------------------
def test_monetary_irf_gali_closed_form():
    rng = np.random.default_rng(0)
    thetas = [with_(DEFAULT, rho_i=0.0)]
    lows = np.array([p.low for p in WORLD.parameters])
    highs = np.array([p.high for p in WORLD.parameters])
    for _ in range(5):
        thetas.append(with_(lows + (highs - lows) * rng.random(len(NAMES)), rho_i=0.0))
    theta = np.array(thetas)
    H = 12
    irf = WORLD.irfs(theta, H)
    for k, th in enumerate(theta):
        beta, sig, kap, phpi, phy, _, rhom = th[:7]
        L = 1.0 / ((1 - beta * rhom) * (sig * (1 - rhom) + phy) + kap * (phpi - rhom))
        v = th[NAMES.index("sigma_m")] * rhom ** np.arange(H + 1)
        x = -(1 - beta * rhom) * L * v
        pi = -kap * L * v
        i = phpi * pi + phy * x + v
        np.testing.assert_allclose(irf[k, 0, :, 0], 100 * x, rtol=0, atol=1e-8)
        np.testing.assert_allclose(irf[k, 0, :, 1], 400 * pi, rtol=0, atol=1e-8)
        np.testing.assert_allclose(irf[k, 0, :, 2], 400 * i, rtol=0, atol=1e-8)


def test_irfs_with_smoothing_match_stacked_perfect_foresight():
    theta = np.concatenate([DEFAULT[None], draw_range(WORLD, 3, 0, 6, 1).theta])
    H, N = 40, 700
    irf = WORLD.irfs(theta, H)
    for k, th in enumerate(theta):
        for j in range(3):
            s0 = np.zeros(3)
            s0[j] = th[9 + j]
            x, pi, i, _ = pf_path(th, 0.0, *exog_decay(th, s0, N))
            ref = np.stack([100 * x, 400 * pi, 400 * i], axis=1)[: H + 1]
            scale = np.abs(ref).max(axis=0)
            np.testing.assert_allclose(irf[k, j], ref, rtol=0, atol=1e-6 * scale.max())
            # relative per series where it matters
            assert np.all(np.abs(irf[k, j] - ref) <= 1e-6 * scale + 1e-12)


def test_fast_solution_equals_full_blanchard_kahn():
    theta = draw_range(WORLD, 4, 0, 300, 1).theta
    s = solve(theta)
    full = solve_re(*structural_matrices(theta), 4)
    assert full.determinate.all() and s.determinate.all()
    np.testing.assert_allclose(np.stack(s.Fx, axis=1), full.F[:, 0, :], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(np.stack(s.Fpi, axis=1), full.F[:, 1, :], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(s.p, full.P[:, 0, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.stack(s.rate_loadings(), axis=1), full.P[:, 0, :], rtol=1e-9, atol=1e-11)


def test_characteristic_cubic_roots_match_numpy_roots():
    # In and far out of bounds (phi_pi below 1, rho_i 0 or near 1): the root the closed form
    # finds and its determinacy flag, against numpy's companion-matrix roots of the same cubic,
    # and the cubic against det(B - l A) of the endogenous block.
    rng = np.random.default_rng(11)
    n = 3000
    low = np.array([p.low for p in WORLD.parameters])
    high = np.array([p.high for p in WORLD.parameters])
    th = low + (high - low) * rng.random((n, len(low)))
    th[: n // 2, NAMES.index("phi_pi")] = rng.uniform(0.0, 1.6, n // 2)
    th[:, NAMES.index("rho_i")] = rng.choice([0.0, 0.3, 0.9, 0.99], n)
    beta, sig, kap, phpi, phy, rhoi = th[:, :6].T
    c = characteristic_cubic(beta, sig, kap, rhoi, (1 - rhoi) * phy, (1 - rhoi) * phpi)
    p, det = endogenous_root(c)
    A, B = structural_matrices(th)
    endo = [0, 4, 5]
    lam = 0.37
    np.testing.assert_allclose(
        sig * np.linalg.det(B[:, endo][:, :, endo] - lam * A[:, endo][:, :, endo]),
        ((c[0] * lam + c[1]) * lam + c[2]) * lam + c[3],
        rtol=1e-12,
        atol=1e-14,
    )
    checked = 0
    for i in range(n):
        roots = np.roots([c[0][i], c[1][i], c[2][i], c[3][i]])
        mod = np.abs(roots)
        if np.min(np.abs(mod - 1)) < 1e-6:
            continue  # too close to the unit circle for two methods to agree on the count
        assert det[i] == (np.sum(mod < 1) == 1), (i, roots)
        if det[i]:
            assert abs(p[i] - roots[np.argmin(mod)].real) <= 1e-13
            checked += 1
    assert checked > 1000 and (~det).sum() > 500
    # rho_i = 0: the endogenous root is exactly zero (no lagged rate in the model)
    assert np.all(p[det & (rhoi == 0.0)] == 0.0)


def test_endogenous_root_counts_roots_inside_the_unit_circle():
    # Cubics built from known roots (a real root and a real or complex pair, anywhere in |l| < 2):
    # determinate iff exactly one root inside the unit circle, and then that root is returned.
    rng = np.random.default_rng(12)
    n = 4000
    r0 = rng.uniform(-1.9, 1.9, n)
    mod, ang = rng.uniform(0.05, 1.9, n), rng.uniform(0, np.pi, n)
    pair_complex = rng.random(n) < 0.5
    r1 = np.where(pair_complex, mod * np.exp(1j * ang), rng.uniform(-1.9, 1.9, n))
    r2 = np.where(pair_complex, np.conj(r1), rng.uniform(-1.9, 1.9, n))
    roots = np.stack([r0, r1, r2], axis=1)
    scale = rng.uniform(0.3, 3.0, n) * rng.choice([-1, 1], n)
    coef = np.array([np.poly(r).real * k for r, k in zip(roots, scale)])  # (n, 4), highest power first
    p, det = endogenous_root(tuple(coef.T))
    m = np.abs(roots)
    clear = np.min(np.abs(m - 1), axis=1) > 1e-6
    expected = np.sum(m < 1, axis=1) == 1
    np.testing.assert_array_equal(det[clear], expected[clear])
    assert expected.sum() > 1000 and (~expected).sum() > 1000 and (np.sum(m < 1, axis=1) == 3).sum() > 100
    stable = roots[np.arange(n), np.argmin(m, axis=1)].real
    assert np.all(np.abs(p - stable)[det] <= 1e-12)


def test_convolution_identity():
    n, H = 40, 45
    d = draw_range(WORLD, 5, 0, n, H + 1)
    traj = WORLD.simulate(d.theta, d.shocks).trajectories
    irf = WORLD.irfs(d.theta, H)
    rec = np.zeros_like(traj)
    for t in range(H + 1):
        for h in range(t + 1):
            rec[:, t] += (irf[:, :, h, :] * d.shocks[:, t - h, :, None]).sum(axis=1)
    np.testing.assert_allclose(traj, rec, rtol=0, atol=1e-9)


def test_steady_state_start_and_zero_shocks():
    d = draw_range(WORLD, 6, 0, 5, 10)
    sim = WORLD.simulate(d.theta, np.zeros_like(d.shocks))
    assert np.all(sim.trajectories == 0.0)
    one = np.zeros_like(d.shocks)
    one[:, 0, 1] = 1.0
    # a single +1 sd demand innovation at t = 0 traces out the demand IRF
    np.testing.assert_array_equal(WORLD.simulate(d.theta, one).trajectories, WORLD.irfs(d.theta, 9)[:, 1])


def test_determinacy_matches_taylor_principle():
    # Woodford (2003): with rho_i in [0, 1) and nonnegative responses the model is determinate iff
    # phi_pi + (1 - beta) phi_y / kappa > 1. Bounds are bypassed on purpose (is_valid only).
    rng = np.random.default_rng(7)
    n = 4000
    th = np.tile(DEFAULT, (n, 1))
    th[:, NAMES.index("phi_pi")] = rng.uniform(0.0, 1.6, n)
    th[:, NAMES.index("phi_y")] = rng.uniform(0.0, 0.3, n)
    th[:, NAMES.index("kappa")] = rng.uniform(0.01, 0.5, n)
    th[:, NAMES.index("beta")] = rng.uniform(0.985, 0.995, n)
    th[:, NAMES.index("rho_i")] = rng.choice([0.0, 0.5, 0.9], n)
    lhs = th[:, 3] + (1 - th[:, 0]) * th[:, 4] / th[:, 2]
    clear = np.abs(lhs - 1) > 1e-3
    ok = WORLD.is_valid(th)
    assert (ok[clear] == (lhs[clear] > 1)).all()
    assert (~ok).sum() > 100 and ok.sum() > 100
    # phi_pi < 1 without smoothing or output response: indeterminate, and never accepted by valid()
    bad = with_(DEFAULT, phi_pi=0.8, rho_i=0.0, phi_y=0.0)[None]
    assert not WORLD.is_valid(bad)[0]
    assert not WORLD.valid(bad)[0]


def test_every_drawn_theta_is_valid_and_in_bounds():
    d = draw_range(WORLD, 8, 0, 600, 1)
    assert WORLD.within_bounds(d.theta).all()
    assert WORLD.is_valid(d.theta).all()
    assert np.array_equal(d.theta, d.theta.astype(np.float32).astype(np.float64))


@pytest.fixture(scope="module")
def full_batch():
    n_total, T, H = 1100, 30, 12  # crosses the 1024-draw simulation chunk
    full = draw_range(WORLD, 9, 0, n_total, T)
    return n_total, T, H, full, WORLD.simulate(full.theta, full.shocks).trajectories, WORLD.irfs(full.theta, H)


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_batch_independence(size, full_batch):
    n_total, T, H, full, sim, irf = full_batch
    for start in (0, 1023 - size // 2, n_total - size):
        start = max(0, min(start, n_total - size))
        part = draw_range(WORLD, 9, start, start + size, T)
        np.testing.assert_array_equal(part.theta, full.theta[start : start + size])
        np.testing.assert_array_equal(part.shocks, full.shocks[start : start + size])
        np.testing.assert_array_equal(WORLD.simulate(part.theta, part.shocks).trajectories, sim[start : start + size])
        np.testing.assert_array_equal(WORLD.irfs(part.theta, H), irf[start : start + size])


def test_bad_input_names_world_parameter_value():
    th = DEFAULT[None].copy()
    eps = np.zeros((1, 5, 3))
    with pytest.raises(WorldError, match=r"'nk'.*shape \(n, 12\)"):
        WORLD.simulate(th[:, :11], eps)
    with pytest.raises(WorldError, match=r"'nk'.*'phi_pi'.*5\.0.*outside"):
        WORLD.simulate(with_(th, phi_pi=5.0), eps)
    with pytest.raises(WorldError, match=r"'nk'.*'kappa'.*not finite"):
        WORLD.irfs(with_(th, kappa=np.nan), 4)
    with pytest.raises(WorldError, match=r"'nk'.*eps must have shape"):
        WORLD.simulate(th, np.zeros((1, 5, 2)))
    bad = eps.copy()
    bad[0, 2, 1] = np.inf
    with pytest.raises(WorldError, match=r"'nk'.*'demand'.*t=2"):
        WORLD.simulate(th, bad)
    with pytest.raises(WorldError, match="horizon"):
        WORLD.irfs(th, -1)


def test_splits_hold_about_two_and_a_half_percent():
    world = get_world("nk")
    theta = draw_range(world, 2024, 0, 20000, 1).theta
    stat = world.slice_statistic(theta)
    in_slice = stat > world.slice_rule.threshold
    pers, vol = world.corner_statistics(theta)
    corner = (
        (pers > world.corner_rule.persistence_threshold) & (vol > world.corner_rule.volatility_threshold) & ~in_slice
    )
    assert abs(in_slice.mean() - 0.025) < 0.007
    assert abs(corner.mean() - 0.025) < 0.007
    # the statistics are the documented functions of theta
    np.testing.assert_array_equal(stat, theta[:, NAMES.index("phi_pi")])
    np.testing.assert_array_equal(pers, theta[:, [5, 6, 7, 8]].max(axis=1))
    np.testing.assert_allclose(vol, (theta[:, [9, 10, 11]] / [0.01, 0.02, 0.01]).max(axis=1))


def test_simulation_kernel_refuses_an_output_it_cannot_fill_in_place():
    from macro_data.worlds.nk import simulate_unconstrained

    d = draw_range(WORLD, 3, 0, 4, 10)
    sol = solve(d.theta)
    strided = np.empty((4, 3, 10)).transpose(0, 2, 1)  # right shape, but its rows are not contiguous
    with pytest.raises(ValueError, match="C-contiguous rows"):
        simulate_unconstrained(sol, d.shocks, strided)
    whole = simulate_unconstrained(sol, d.shocks)
    np.testing.assert_array_equal(
        simulate_unconstrained(sol, d.shocks, np.empty((4, 10, 3), np.float32)), whole.astype(np.float32)
    )
