"""switching: two-regime Markov-switching model. References are computed here independently:
explicit per-sample loops, enumeration of all regime paths, Monte Carlo over regime paths,
the second-moment operator built with np.kron, and regime-path statistics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from macro_data import splits
from macro_data.errors import WorldError
from macro_data.worlds import get_world
from macro_data.worlds.sampling import draw_range
from macro_data.worlds.switching import A_SHAPE, B_SHAPE, C_OBS

W = get_world("switching")
SEED = 31
NAMES = ("rho_0", "sigma_0", "rho_1", "sigma_1", "p00", "p11")


def theta_of(**kw):
    base = dict(rho_0=0.6, sigma_0=0.01, rho_1=0.9, sigma_1=0.03, p00=0.9, p11=0.8)
    base.update(kw)
    return np.array([[base[k] for k in NAMES]])


def model(row):
    rho0, s0, rho1, s1, p00, p11 = row
    A = [rho0 * A_SHAPE, rho1 * A_SHAPE]
    B = [s0 * B_SHAPE, s1 * B_SHAPE]
    P = np.array([[p00, 1 - p00], [1 - p11, p11]])
    pi = np.array([1 - p11, 1 - p00]) / (2 - p00 - p11)
    return A, B, P, pi


def kron_operator(row):
    A, _, P, _ = model(row)
    return np.block([[P[i, j] * np.kron(A[j], A[j]) for i in range(2)] for j in range(2)])


@pytest.fixture(scope="module")
def draws():
    return draw_range(W, SEED, 0, 512, 40)


def test_draws_valid_in_bounds_and_mean_square_stable(draws):
    th = draws.theta
    assert W.parameter_names == NAMES
    assert np.all(W.valid(th)) and np.all(W.within_bounds(th))
    radius = np.array([np.max(np.abs(np.linalg.eigvals(kron_operator(r)))) for r in th[:100]])
    np.testing.assert_allclose(W.mss_radius(th[:100]), radius, rtol=1e-10)
    assert radius.max() < 1
    r = draws.metadata["regime"]
    assert r.dtype == np.int8 and r.shape == (512, 40) and set(np.unique(r)) == {0, 1}


def test_mean_square_stability_check():
    # turbulent regime explosive on its own but short-lived: stable in mean square
    ok = theta_of(rho_1=1.05, p11=0.3, p00=0.95)
    # explosive and persistent: unstable
    bad = theta_of(rho_1=1.1, p11=0.98)
    for row, expect in [(ok, True), (bad, False)]:
        radius = np.max(np.abs(np.linalg.eigvals(kron_operator(row[0]))))
        assert (radius < 1) == expect
        np.testing.assert_allclose(W.mss_radius(row), radius, rtol=1e-10)
        assert W.is_valid(row)[0] == expect
    assert not W.valid(bad)[0]  # and outside the bounds anyway


def test_simulation_equals_explicit_loop(draws):
    d = draws.slice(0, 6)
    traj = W.simulate(d.theta, d.shocks, d.metadata).trajectories
    for i, row in enumerate(d.theta):
        A, B, _, _ = model(row)
        r = d.metadata["regime"][i]
        s = np.zeros(3)
        for t in range(d.shocks.shape[1]):
            s = A[r[t]] @ s + B[r[t]] @ d.shocks[i, t]
            np.testing.assert_allclose(traj[i, t], C_OBS @ s, rtol=1e-10, atol=1e-13)


def test_irfs_equal_enumeration_over_regime_paths(draws):
    H = 6
    th = draws.theta[:5]
    irf = W.irfs(th, H)
    assert irf.shape == (5, 2, H + 1, 3)
    for i, row in enumerate(th):
        A, B, P, pi = model(row)
        ref = np.zeros((2, H + 1, 3))
        for path in itertools.product((0, 1), repeat=H + 1):
            prob = pi[path[0]] * np.prod([P[path[h - 1], path[h]] for h in range(1, H + 1)])
            s = B[path[0]]  # (3, shocks): impact of each unit innovation
            for h in range(H + 1):
                if h:
                    s = A[path[h]] @ s
                ref[:, h] += prob * (C_OBS @ s).T
        np.testing.assert_allclose(irf[i], ref, rtol=1e-10, atol=1e-12)


def test_irfs_agree_with_monte_carlo_over_regime_paths():
    """Average response over 20,000 simulated regime paths; tolerance 5 Monte Carlo standard errors."""
    row = theta_of(p00=0.85, p11=0.82)
    n, H = 20_000, 15
    theta = np.repeat(row, n, axis=0)
    regime = W.draw_metadata(np.random.default_rng(5), theta, H + 1)["regime"]
    exact = W.irfs(row, H)[0]
    for k in range(2):
        eps = np.zeros((n, H + 1, 2))
        eps[:, 0, k] = 1.0
        y = W.simulate(theta, eps, {"regime": regime}).trajectories
        mean, se = y.mean(0), y.std(0, ddof=1) / np.sqrt(n)
        assert np.all(np.abs(mean - exact[k]) <= 5 * se + 1e-12), np.max(np.abs(mean - exact[k]) / se)
    # the expectation over regimes differs from the response under either regime held fixed
    A, B, _, _ = model(row[0])
    for j in range(2):
        fixed = C_OBS @ np.linalg.matrix_power(A[j], 5) @ B[j][:, 0]
        assert np.max(np.abs(exact[0, 5] - fixed)) > 0.05 * np.max(np.abs(fixed))


def test_regime_durations_match_transition_matrix():
    row = theta_of(p00=0.9, p11=0.8)
    n, T = 100, 2000
    r = W.draw_metadata(np.random.default_rng(8), np.repeat(row, n, axis=0), T)["regime"].astype(int)
    pi1 = 0.1 / 0.3
    share = r.mean()
    assert abs(share - pi1) < 0.02
    prev, nxt = r[:, :-1].ravel(), r[:, 1:].ravel()
    p00_hat = np.mean(nxt[prev == 0] == 0)
    p11_hat = np.mean(nxt[prev == 1] == 1)
    assert abs(p00_hat - 0.9) < 0.005 and abs(p11_hat - 0.8) < 0.008
    # mean spell length = time spent in a regime / number of spells of it (1/(1 - p_ii))
    starts = np.concatenate([np.ones((n, 1), bool), r[:, 1:] != r[:, :-1]], axis=1)
    for regime, p_stay in [(0, 0.9), (1, 0.8)]:
        spells = np.sum(starts & (r == regime))
        mean_len = np.sum(r == regime) / spells
        assert abs(mean_len / (1 / (1 - p_stay)) - 1) < 0.05, (regime, mean_len)
    # r[0] from the stationary distribution
    r0 = W.draw_metadata(np.random.default_rng(9), np.repeat(row, 40_000, axis=0), 1)["regime"][:, 0]
    assert abs(r0.mean() - pi1) < 4 * np.sqrt(pi1 * (1 - pi1) / 40_000)


def test_stationary_moments_match_simulation():
    """Exact second moments (corner statistics) vs time averages of long simulations; 5 s.e."""
    row = theta_of()
    reps, T, burn = 300, 1200, 200
    theta = np.repeat(row, reps, axis=0)
    rng = np.random.default_rng(17)
    regime = W.draw_metadata(rng, theta, T)["regime"]
    y = W.simulate(theta, rng.standard_normal((reps, T, 2)), {"regime": regime}).trajectories[:, burn:]
    G0, G1 = W.stationary_moments(row)
    for stat, ref in [(np.mean(y**2, axis=1), np.diag(G0[0])), (np.mean(y[:, 1:] * y[:, :-1], axis=1), np.diag(G1[0]))]:
        mean, se = stat.mean(0), stat.std(0, ddof=1) / np.sqrt(reps)
        assert np.all(np.abs(mean - ref) < 5 * se), (mean, ref, se)


@pytest.mark.parametrize("i", [0, 300, 517])
def test_sample_identical_across_batch_sizes(i):
    T, H = 30, 12
    results = []
    for start, stop in [(i, i + 1), (max(0, i - 3), max(0, i - 3) + 7), (0, 1000)]:
        d = draw_range(W, SEED, start, stop, T)
        j = i - start
        sim = W.simulate(d.theta, d.shocks, d.metadata).trajectories
        irf = W.irfs(d.theta, H)
        results.append((d.theta[j].tobytes(), d.metadata["regime"][j].tobytes(), sim[j].tobytes(), irf[j].tobytes()))
    assert results[0] == results[1] == results[2]


def test_bad_input_names_world_field_value(draws):
    d = draws.slice(0, 2)
    with pytest.raises(WorldError, match=r"'switching'.*'regime'"):
        W.simulate(d.theta, d.shocks)
    bad = d.metadata["regime"].copy()
    bad[1, 4] = 2
    with pytest.raises(WorldError, match=r"'switching'.*'regime'.*draw 1 at t=4.*2"):
        W.simulate(d.theta, d.shocks, {"regime": bad})
    th = d.theta.copy()
    th[0, 4] = 0.99
    with pytest.raises(WorldError, match=r"'switching'.*'p00'.*0\.99"):
        W.irfs(th, 4)


def test_split_regions_hold_about_2_5_percent():
    th = draw_range(W, 2024, 0, 20_000, 1).theta
    in_slice = splits.in_slice(W, th)
    corner = splits.in_corner(W, th) & ~in_slice
    assert abs(in_slice.mean() - 0.025) < 0.007, in_slice.mean()
    assert abs(corner.mean() - 0.025) < 0.007, corner.mean()
