"""Tests of the rbc world against references that do not reuse its solution method.

The main reference is the perfect-foresight path of the spec's ORIGINAL equations (y, c, n,
inv, k, r all kept as unknowns, no substitution, no eigen-decomposition), stacked over a long
horizon with the steady state as terminal condition and solved as one sparse linear system.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
import scipy.sparse.linalg

from macro_data.errors import WorldError
from macro_data.worlds import get_world
from macro_data.worlds.rbc import WORLD, steady_state
from macro_data.worlds.sampling import draw_range

NAMES = ("beta", "alpha", "delta", "nu", "gamma", "rho_a", "sigma_a", "rho_b", "sigma_b")
BOUNDS = {
    "beta": (0.985, 0.995),
    "alpha": (0.25, 0.40),
    "delta": (0.02, 0.03),
    "nu": (0.5, 3.0),
    "gamma": (1.0, 3.0),
    "rho_a": (0.0, 0.99),
    "sigma_a": (0.005, 0.02),
    "rho_b": (0.0, 0.95),
    "sigma_b": (0.005, 0.02),
}
DEFAULTS = {
    "beta": 0.99,
    "alpha": 0.33,
    "delta": 0.025,
    "nu": 1.0,
    "gamma": 1.0,
    "rho_a": 0.95,
    "sigma_a": 0.007,
    "rho_b": 0.5,
    "sigma_b": 0.01,
}
OBS = ("output", "inflation", "rate", "consumption", "investment", "hours", "capital")


def theta_of(**kw) -> np.ndarray:
    d = dict(DEFAULTS, **kw)
    return np.array([[d[n] for n in NAMES]])


def test_world_description_matches_spec():
    assert get_world("rbc") is WORLD
    assert WORLD.parameter_names == NAMES
    for p in WORLD.parameters:
        assert (p.low, p.high) == BOUNDS[p.name]
        assert p.default == DEFAULTS[p.name]
    assert WORLD.shocks == ("technology", "preference")
    assert [o.name for o in WORLD.observables] == ["output", "inflation", "rate"]
    assert [o.name for o in WORLD.extras] == ["consumption", "investment", "hours", "capital"]
    assert WORLD.describe()["design_notes"]


# ---- independent reference: perfect foresight on the original equations --------------------
def perfect_foresight_irf(th: dict, shock: int, H: int, T: int = 800) -> dict[str, np.ndarray]:
    """Response to a +1 sd innovation at t = 0 from the original (non-reduced) spec equations.

    Unknowns per period t = 0..T-1: y, c, n, inv, k, r (r[t] = realized gross return in t).
    With no further innovations, E_t x[t+1] = x[t+1]; terminal condition c[T] = r[T] = 0.
    """
    beta, alpha, delta, nu, gamma = (th[k] for k in ("beta", "alpha", "delta", "nu", "gamma"))
    rk = 1 / beta - 1 + delta
    i_y = delta * alpha / rk
    c_y = 1 - i_y
    R = 1 - beta * (1 - delta)
    t = np.arange(T + 1)
    a = (th["sigma_a"] if shock == 0 else 0.0) * th["rho_a"] ** t
    b = (th["sigma_b"] if shock == 1 else 0.0) * th["rho_b"] ** t
    Y, C, N, I, K, Rr = range(6)
    rows, cols, vals = [], [], []
    rhs = np.zeros(6 * T)

    def put(eq, t_, var, v):
        rows.append(6 * t_ + eq)
        cols.append(6 * t_ + var if var < 6 else var)
        vals.append(v)

    for s in range(T):
        # production: y - alpha k - (1-alpha) n = a
        put(0, s, Y, 1.0), put(0, s, K, -alpha), put(0, s, N, -(1 - alpha))
        rhs[6 * s + 0] = a[s]
        # labour supply = MPL: gamma c + n/nu - y + n = 0
        put(1, s, C, gamma), put(1, s, N, 1 / nu + 1), put(1, s, Y, -1.0)
        # capital: k[s] = (1-delta) k[s-1] + delta inv[s-1]; k[0] = 0
        put(2, s, K, 1.0)
        if s > 0:
            rows += [6 * s + 2, 6 * s + 2]
            cols += [6 * (s - 1) + K, 6 * (s - 1) + I]
            vals += [-(1 - delta), -delta]
        # resources: y = C/Y c + I/Y inv
        put(3, s, Y, 1.0), put(3, s, C, -c_y), put(3, s, I, -i_y)
        # return: r = R (y - k)
        put(4, s, Rr, 1.0), put(4, s, Y, -R), put(4, s, K, R)
        # Euler: gamma c[s+1] - gamma c[s] - r[s+1] = b[s+1] - b[s]
        put(5, s, C, -gamma)
        if s + 1 < T:
            rows += [6 * s + 5, 6 * s + 5]
            cols += [6 * (s + 1) + C, 6 * (s + 1) + Rr]
            vals += [gamma, -1.0]
        rhs[6 * s + 5] = b[s + 1] - b[s]
    M = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(6 * T, 6 * T))
    x = scipy.sparse.linalg.spsolve(M, rhs).reshape(T, 6)
    c = x[:, C]
    return {
        "output": 100 * x[: H + 1, Y],
        "inflation": 400 * np.diff(np.concatenate([[0.0], c]))[: H + 1],
        "rate": 400 * x[1 : H + 2, Rr],
        "consumption": 100 * c[: H + 1],
        "investment": 100 * x[: H + 1, I],
        "hours": 100 * x[: H + 1, N],
        "capital": 100 * x[: H + 1, K],
    }


def reference_draws() -> list[dict]:
    lows = {k: v[0] for k, v in BOUNDS.items()}
    highs = {k: v[1] for k, v in BOUNDS.items()}
    draws = [
        dict(DEFAULTS),
        lows,
        highs,
        dict(DEFAULTS, beta=0.995, delta=0.02, rho_a=0.99, gamma=3.0, nu=0.5, alpha=0.4, rho_b=0.95),
    ]
    rng = np.random.default_rng(11)
    for _ in range(4):
        draws.append({k: float(lo + (hi - lo) * rng.random()) for k, (lo, hi) in BOUNDS.items()})
    return draws


def test_irfs_equal_perfect_foresight_of_original_equations():
    H = 40
    draws = reference_draws()
    theta = np.array([[d[n] for n in NAMES] for d in draws])
    canonical = WORLD.irfs(theta, H)
    full = WORLD.irfs_all(theta, H)
    assert canonical.shape == (len(draws), 2, H + 1, 3)
    np.testing.assert_array_equal(canonical, full[..., :3])
    worst = 0.0
    for i, d in enumerate(draws):
        for j in range(2):
            ref = perfect_foresight_irf(d, j, H)
            for o, name in enumerate(OBS):
                scale = np.max(np.abs(ref[name]))
                assert scale > 1e-6, (i, j, name)  # every series actually responds
                err = np.max(np.abs(full[i, j, :, o] - ref[name])) / scale
                worst = max(worst, err)
                assert err < 1e-6, f"draw {i} shock {j} {name}: relative error {err:.2e}"
    assert worst < 1e-6


def test_simulated_impulse_equals_perfect_foresight():
    """simulate() itself (not only irfs) against the reference, extras included."""
    d = reference_draws()[3]
    theta = np.array([[d[n] for n in NAMES]])
    T = 30
    for j in range(2):
        eps = np.zeros((1, T, 2))
        eps[0, 0, j] = 1.0
        sim = WORLD.simulate(theta, eps)
        ref = perfect_foresight_irf(d, j, T - 1)
        got = np.concatenate([sim.trajectories, sim.extras], axis=-1)[0]
        for o, name in enumerate(OBS):
            np.testing.assert_allclose(got[:, o], ref[name], rtol=0, atol=1e-6 * np.max(np.abs(ref[name])))


# ---- steady state and closed forms ---------------------------------------------------------
def test_steady_state_ratios():
    ss = steady_state(theta_of())
    rk = 1 / 0.99 - 1 + 0.025
    assert ss["Rk"][0] == pytest.approx(0.0351010101, rel=1e-9)
    assert ss["K_Y"][0] == pytest.approx(0.33 / rk, rel=1e-12)
    assert ss["I_Y"][0] == pytest.approx(0.025 * 0.33 / rk, rel=1e-12)
    assert ss["C_Y"][0] == pytest.approx(1 - 0.025 * 0.33 / rk, rel=1e-12)
    assert ss["R"][0] == pytest.approx(1 - 0.99 * 0.975, rel=1e-12)

    # Nonlinear steady state of the model in levels (chi = 1), solved numerically.
    rng = np.random.default_rng(3)
    for _ in range(5):
        th = {k: lo + (hi - lo) * rng.random() for k, (lo, hi) in BOUNDS.items()}
        beta, alpha, delta, nu, gamma = (th[k] for k in ("beta", "alpha", "delta", "nu", "gamma"))

        def equations(logx):
            K, N, C = np.exp(logx)
            Y = K**alpha * N ** (1 - alpha)
            return [
                beta * (alpha * Y / K + 1 - delta) - 1,  # Euler
                np.log(N ** (1 / nu)) - np.log(C**-gamma * (1 - alpha) * Y / N),  # labour
                (C + delta * K) / Y - 1,
            ]  # resources

        sol = scipy.optimize.fsolve(equations, np.log([10.0, 0.3, 0.8]), xtol=1e-13, full_output=True)
        assert sol[2] == 1
        K, N, C = np.exp(sol[0])
        Y = K**alpha * N ** (1 - alpha)
        got = steady_state(np.array([[th[n] for n in NAMES]]))
        assert got["K_Y"][0] == pytest.approx(K / Y, rel=1e-9)
        assert got["I_Y"][0] == pytest.approx(delta * K / Y, rel=1e-9)
        assert got["C_Y"][0] == pytest.approx(C / Y, rel=1e-9)
        # R is the elasticity of the gross return alpha Y/K + 1 - delta to Y/K at the steady state
        h = 1e-6
        gross = lambda s: alpha * (Y / K) * np.exp(s) + 1 - delta  # noqa: E731
        elasticity = (np.log(gross(h)) - np.log(gross(-h))) / (2 * h)
        assert got["R"][0] == pytest.approx(elasticity, rel=1e-7)


@pytest.mark.parametrize("shock", [0, 1])
def test_impact_response_satisfies_static_labour_market(shock):
    """At h = 0, k[0] = 0 and the static equations pin y0 and n0 down given c0 = inflation[0]/400."""
    rng = np.random.default_rng(5)
    theta = np.array([[lo + (hi - lo) * rng.random() for lo, hi in (BOUNDS[n] for n in NAMES)] for _ in range(20)])
    ir = WORLD.irfs_all(theta, 0)[:, shock, 0]
    th = {n: theta[:, k] for k, n in enumerate(NAMES)}
    c0 = ir[:, 1] / 400
    np.testing.assert_allclose(ir[:, 3] / 100, c0, rtol=1e-12)
    a0 = th["sigma_a"] if shock == 0 else 0.0 * th["sigma_a"]
    # gamma c + n/nu = y - n and y = a + (1-alpha) n  =>  n = (a - gamma c) / (alpha + 1/nu)
    n0 = (a0 - th["gamma"] * c0) / (th["alpha"] + 1 / th["nu"])
    y0 = a0 + (1 - th["alpha"]) * n0
    np.testing.assert_allclose(ir[:, 5] / 100, n0, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ir[:, 0] / 100, y0, rtol=1e-10, atol=1e-14)
    assert np.all(ir[:, 6] == 0)  # capital is predetermined
    if shock == 0:
        assert np.all(ir[:, 0] > 0) and np.all(ir[:, 3] > 0)  # technology raises output and consumption
    else:
        assert np.all(ir[:, 3] > 0) and np.all(ir[:, 4] < 0)  # preference shock: c up, investment down


# ---- linear-world identity ------------------------------------------------------------------
def test_convolution_identity():
    H = 40
    d = draw_range(WORLD, 123, 0, 60, H + 1)
    sim = WORLD.simulate(d.theta, d.shocks)
    ir = WORLD.irfs_all(d.theta, H)
    full = np.concatenate([sim.trajectories, sim.extras], axis=-1)
    recon = np.zeros_like(full)
    for t in range(H + 1):
        for h in range(t + 1):
            for j in range(2):
                recon[:, t] += ir[:, j, h] * d.shocks[:, t - h, j][:, None]
    np.testing.assert_allclose(full, recon, rtol=0, atol=1e-9)
    assert np.std(sim.trajectories) > 0.1  # non-trivial scale


# ---- validity -------------------------------------------------------------------------------
def test_drawn_theta_valid_and_in_bounds():
    d = draw_range(WORLD, 9, 0, 600, 1)
    for k, n in enumerate(NAMES):
        lo, hi = BOUNDS[n]
        assert np.all(d.theta[:, k] >= np.float32(lo)) and np.all(d.theta[:, k] <= np.float32(hi))
    assert WORLD.valid(d.theta).all()
    assert WORLD.is_valid(d.theta).all()
    assert np.all(d.theta == d.theta.astype(np.float32))


def test_every_vertex_of_the_prior_box_is_determinate():
    """Underpins the split calibration: every in-bounds draw has a unique saddle path."""
    theta = np.array(list(itertools.product(*(BOUNDS[n] for n in NAMES))), dtype=np.float64)
    assert theta.shape == (512, 9)
    assert WORLD.valid(theta).all()


def test_draws_without_saddle_path_are_flagged():
    bad = np.concatenate(
        [
            theta_of(rho_a=1.05),  # explosive technology: two unstable roots, one jump -> no stable solution
            theta_of(rho_b=-1.2),  # explosive preference shifter
            theta_of(rho_a=1.0),  # unit root: not a unique stable solution
            theta_of(gamma=0.0),  # lead matrix singular: model undefined
            theta_of(nu=-1.0),
            theta_of(beta=1.2),
            theta_of(rho_a=float("nan")),
        ]
    )
    assert not WORLD.is_valid(bad).any()
    assert not WORLD.valid(bad).any()
    mixed = np.concatenate([theta_of(), bad[:1], theta_of(rho_a=0.2)])
    assert WORLD.is_valid(mixed).tolist() == [True, False, True]
    with pytest.raises(WorldError, match=r"'rbc'.*saddle"):
        WORLD.solve(bad[:1])


# ---- determinism across batch sizes ---------------------------------------------------------
def test_sample_identical_across_batch_sizes():
    T, H, seed = 25, 12, 77
    big = draw_range(WORLD, seed, 0, 1000, T)
    sim_big = WORLD.simulate(big.theta, big.shocks)
    irf_big = WORLD.irfs(big.theta, H)
    for i in (0, 1, 255, 256, 517, 999):
        one = draw_range(WORLD, seed, i, i + 1, T)
        np.testing.assert_array_equal(one.theta[0], big.theta[i])
        np.testing.assert_array_equal(one.shocks[0], big.shocks[i])
        s1 = WORLD.simulate(one.theta, one.shocks)
        assert np.array_equal(s1.trajectories[0], sim_big.trajectories[i])
        assert np.array_equal(s1.extras[0], sim_big.extras[i])
        assert np.array_equal(WORLD.irfs(one.theta, H)[0], irf_big[i])
    for start in (0, 250, 993):
        seven = draw_range(WORLD, seed, start, start + 7, T)
        np.testing.assert_array_equal(seven.theta, big.theta[start : start + 7])
        s7 = WORLD.simulate(seven.theta, seven.shocks)
        assert np.array_equal(s7.trajectories, sim_big.trajectories[start : start + 7])
        assert np.array_equal(s7.extras, sim_big.extras[start : start + 7])
        assert np.array_equal(WORLD.irfs(seven.theta, H), irf_big[start : start + 7])
    # non-contiguous views of the same rows give the same numbers
    idx = np.arange(3, 1000, 97)
    sv = WORLD.simulate(big.theta[idx], big.shocks[idx])
    assert np.array_equal(sv.trajectories, sim_big.trajectories[idx])


# ---- splits ---------------------------------------------------------------------------------
def test_split_thresholds_hold_about_2_5_percent():
    rho_hi = BOUNDS["rho_a"][1]
    sl, cr = WORLD.slice_rule, WORLD.corner_rule
    assert sl.statistic == "rho_a" and sl.direction == "above"
    # closed form under the uniform prior (every in-bounds draw is valid)
    p_slice = (rho_hi - sl.threshold) / rho_hi
    p_pers = (sl.threshold / rho_hi) - cr.persistence_threshold**2 / (rho_hi * BOUNDS["rho_b"][1])
    lo, hi = BOUNDS["sigma_a"]
    p_vol = 1 - ((cr.volatility_threshold - lo) / (hi - lo)) ** 2
    assert abs(p_slice - 0.025) < 0.002 and abs(p_pers * p_vol - 0.025) < 0.002

    d = draw_range(WORLD, 20240611, 0, 20000, 1)
    in_slice = WORLD.slice_statistic(d.theta) > sl.threshold
    pers, vol = WORLD.corner_statistics(d.theta)
    np.testing.assert_array_equal(pers, np.maximum(d.theta[:, 5], d.theta[:, 7]))
    np.testing.assert_array_equal(vol, np.maximum(d.theta[:, 6], d.theta[:, 8]))
    in_corner = ~in_slice & (pers > cr.persistence_threshold) & (vol > cr.volatility_threshold)
    assert abs(in_slice.mean() - 0.025) < 0.007, in_slice.mean()
    assert abs(in_corner.mean() - 0.025) < 0.007, in_corner.mean()


# ---- bad input ------------------------------------------------------------------------------
def test_bad_input_raises_world_error():
    with pytest.raises(WorldError, match=r"'rbc'.*'gamma'.*3\.5"):
        WORLD.simulate(theta_of(gamma=3.5), np.zeros((1, 5, 2)))
    with pytest.raises(WorldError, match=r"'rbc'.*'rho_a'.*nan"):
        WORLD.irfs(theta_of(rho_a=float("nan")), 5)
    with pytest.raises(WorldError, match=r"'rbc'.*'sigma_b'.*0\.001"):
        WORLD.irfs(theta_of(sigma_b=0.001), 5)
    with pytest.raises(WorldError, match=r"'rbc'.*shape"):
        WORLD.simulate(np.zeros((1, 8)), np.zeros((1, 5, 2)))
    with pytest.raises(WorldError, match=r"'rbc'.*eps"):
        WORLD.simulate(theta_of(), np.zeros((1, 5, 3)))
    eps = np.zeros((1, 5, 2))
    eps[0, 2, 1] = np.inf
    with pytest.raises(WorldError, match=r"'rbc'.*'preference'"):
        WORLD.simulate(theta_of(), eps)
    with pytest.raises(WorldError, match=r"'rbc'.*horizon"):
        WORLD.irfs(theta_of(), -1)
    with pytest.raises(WorldError, match=r"'rbc'.*shape"):
        WORLD.is_valid(np.zeros(9))
    with pytest.raises(WorldError, match=r"'rbc'.*'gamma'"):
        WORLD.solve(theta_of(gamma=0.0))
