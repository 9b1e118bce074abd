"""var: stable VAR(p). References are computed here independently (moving-average recursion,
companion eigenvalues, scipy's Lyapunov solver, explicit convolution sums, Monte Carlo)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_discrete_lyapunov

from macro_data import splits
from macro_data.errors import WorldError
from macro_data.worlds import get_world
from macro_data.worlds.sampling import BLOCK_SIZE, draw_range

W = get_world("var")
SEED = 21


@pytest.fixture(scope="module")
def draws():
    return draw_range(W, SEED, 0, 1024, 60)


def unpack(row):
    p = int(row[0])
    A = [row[3 + 9 * l : 12 + 9 * l].reshape(3, 3) for l in range(4)]
    lt = row[39:45]
    L = np.array([[lt[0], 0, 0], [lt[1], lt[2], 0], [lt[3], lt[4], lt[5]]])
    return p, A, L


def companion(A, p):
    F = np.zeros((3 * p, 3 * p))
    F[:3] = np.hstack(A[:p])
    F[3:, :-3] = np.eye(3 * (p - 1))
    return F


def test_layout_names():
    names = W.parameter_names
    assert names[:3] == ("p", "rho_max", "sigma_scale")
    assert names[3] == "A1_0_0" and names[3 + 9 + 3] == "A2_1_0" and names[38] == "A4_2_2"
    assert names[39:] == ("L_0_0", "L_1_0", "L_1_1", "L_2_0", "L_2_1", "L_2_2")
    kinds = {p.name: p.kind for p in W.parameters}
    assert kinds["p"] == "integer" and kinds["sigma_scale"] == "uniform" and kinds["A3_2_1"] == "derived"


def test_draws_valid_in_bounds_padded(draws):
    th = draws.theta
    assert np.all(W.valid(th)) and np.all(W.within_bounds(th))
    assert set(np.unique(th[:, 0])) == {1.0, 2.0, 3.0, 4.0}
    for row in th:
        p, A, L = unpack(row)
        assert all(np.all(A[l] == 0) for l in range(p, 4))
        assert np.any(A[p - 1] != 0)
        assert np.all(np.diag(L) > 0)
        # L = sigma_scale * raw with raw diagonal in [0.5, 1.5]
        assert np.all(np.diag(L) >= 0.5 * row[2] * (1 - 1e-6)) and np.all(np.diag(L) <= 1.5 * row[2] * (1 + 1e-6))


def test_rho_max_is_companion_spectral_radius(draws):
    dev = np.array(
        [
            abs(np.max(np.abs(np.linalg.eigvals(companion(A, p)))) - row[1])
            for row in draws.theta
            for p, A, _ in [unpack(row)]
        ]
    )
    # float32 rounding of the coefficients moves eigenvalues by ~cond * 6e-8
    assert np.median(dev) < 1e-7
    assert dev.max() < 1e-5


def test_irfs_equal_moving_average_times_cholesky(draws):
    th = draws.theta[:60]
    H = 25
    irf = W.irfs(th, H)
    assert irf.shape == (60, 3, H + 1, 3)
    for i, row in enumerate(th):
        p, A, L = unpack(row)
        Psi = [np.eye(3)]
        for h in range(1, H + 1):
            Psi.append(sum(A[l - 1] @ Psi[h - l] for l in range(1, min(h, p) + 1)))
        for h in range(H + 1):
            np.testing.assert_allclose(irf[i, :, h, :], (Psi[h] @ L).T, rtol=1e-10, atol=1e-12)


def test_convolution_identity(draws):
    d = draws.slice(0, 64)
    T = d.shocks.shape[1]
    traj = W.simulate(d.theta, d.shocks).trajectories
    irf = W.irfs(d.theta, T - 1)
    recon = np.zeros_like(traj)
    for t in range(T):
        for h in range(t + 1):
            recon[:, t] += np.sum(irf[:, :, h, :] * d.shocks[:, t - h, :, None], axis=1)
    assert np.max(np.abs(recon - traj)) < 1e-9
    assert np.max(np.abs(traj)) > 0.1


def test_simulation_equals_direct_recursion(draws):
    d = draws.slice(0, 8)
    traj = W.simulate(d.theta, d.shocks).trajectories
    for i, row in enumerate(d.theta):
        p, A, L = unpack(row)
        y = np.zeros((d.shocks.shape[1], 3))
        for t in range(y.shape[0]):
            y[t] = L @ d.shocks[i, t] + sum(A[l - 1] @ y[t - l] for l in range(1, p + 1) if t - l >= 0)
        np.testing.assert_allclose(traj[i], y, rtol=1e-10, atol=1e-12)


def test_unconditional_variance_matches_lyapunov():
    """Time-averaged y^2 over replicated simulations vs the companion-form Lyapunov solution.

    Tolerance: 5 standard errors from the spread of independent per-replicate averages.
    """
    th = draw_range(W, 6, 0, 256, 1).theta
    pick = [int(np.argmax(th[:, 1])), int(np.argmin(th[:, 1])), int(np.flatnonzero(th[:, 0] == 4)[0])]
    rng = np.random.default_rng(321)
    reps, T, burn = 300, 1500, 500
    for i in pick:
        p, A, L = unpack(th[i])
        F = companion(A, p)
        Q = np.zeros_like(F)
        Q[:3, :3] = L @ L.T
        S = solve_discrete_lyapunov(F, Q)
        ref = np.diag(S[:3, :3])
        theta = np.repeat(th[i : i + 1], reps, axis=0)
        y = W.simulate(theta, rng.standard_normal((reps, T, 3))).trajectories[:, burn:]
        per_rep = np.mean(y**2, axis=1)
        mean, se = per_rep.mean(0), per_rep.std(0, ddof=1) / np.sqrt(reps)
        assert np.all(np.abs(mean - ref) < 5 * se), (th[i, :2], mean, ref, se)
        # exact autocovariances used for the corner statistic agree with scipy
        G = W.autocovariances(th[i : i + 1])[0]
        np.testing.assert_allclose(G[0], S[:3, :3], rtol=1e-9, atol=1e-12)
        if p > 1:
            np.testing.assert_allclose(G[1], S[:3, 3:6], rtol=1e-9, atol=1e-12)  # E[y_t y_{t-1}']
        else:
            np.testing.assert_allclose(G[1], A[0] @ S, rtol=1e-9, atol=1e-12)


def test_autocovariances_of_every_lag_order_match_the_companion_lyapunov_solution():
    """Gamma_k = (F^k S)[:3, :3] with S = F S F' + Q, the companion form's stationary covariance
    (scipy), for k = 0..4 and draws of each lag order (grouped into systems of their own size)."""
    th = draw_range(W, 11, 0, 512, 1).theta
    picks = [int(np.flatnonzero(th[:, 0] == p)[j]) for p in (1, 2, 3, 4) for j in (0, 1)]
    G = W.autocovariances(th[picks])  # one call: all lag orders in one batch
    for row, i in enumerate(picks):
        p, A, L = unpack(th[i])
        F = companion(A, p)
        Q = np.zeros_like(F)
        Q[:3, :3] = L @ L.T
        S = solve_discrete_lyapunov(F, Q)
        for k in range(5):
            ref = (np.linalg.matrix_power(F, k) @ S)[:3, :3]
            np.testing.assert_allclose(G[row, k], ref, rtol=1e-8, atol=1e-10 * np.abs(S).max(), err_msg=f"p={p} k={k}")


@pytest.mark.parametrize("i", [0, 300, 517])
def test_sample_identical_across_batch_sizes(i):
    T, H = 30, 12
    results = []
    for start, stop in [(i, i + 1), (max(0, i - 3), max(0, i - 3) + 7), (0, 1000)]:
        d = draw_range(W, SEED, start, stop, T)
        j = i - start
        sim = W.simulate(d.theta, d.shocks).trajectories
        irf = W.irfs(d.theta, H)
        stats = W.corner_statistics(d.theta)
        results.append(
            (d.theta[j].tobytes(), sim[j].tobytes(), irf[j].tobytes(), stats[0][j].tobytes(), stats[1][j].tobytes())
        )
    assert results[0] == results[1] == results[2]


def test_propose_consumes_random_numbers_independent_of_p():
    states = []
    for low, high in [(1, 1.5), (3.5, 4)]:
        priors = W.resolve_priors({"p": {"low": low, "high": high}})
        rng = np.random.default_rng(7)
        th = W.propose(rng, BLOCK_SIZE, priors)
        assert np.all(th[:, 0] == (1 if low == 1 else 4))
        states.append(rng.bit_generator.state)
    assert states[0] == states[1]


def test_is_valid_rejects_broken_theta(draws):
    row = next(r for r in draws.theta if r[0] == 2)[None].copy()
    assert W.is_valid(row)[0]
    c = 1.03 / row[0, 1]
    explosive = row.copy()
    explosive[0, 3:12] *= c
    explosive[0, 12:21] *= c * c  # companion spectral radius 1.03
    assert not W.is_valid(explosive)[0]
    inconsistent = row.copy()
    inconsistent[0, 1] -= 0.01
    assert not W.is_valid(inconsistent)[0]
    padded = row.copy()
    padded[0, 3 + 27] = 0.1  # A4 entry while p = 2
    assert not W.is_valid(padded)[0]
    neg = row.copy()
    neg[0, 39] = -neg[0, 39]
    assert not W.is_valid(neg)[0]


def test_is_valid_agrees_with_companion_eigenvalues(draws):
    """The world's eigenvalue-free (Schur-Cohn) check against eigenvalues computed here, near its edges."""
    rows, expected = [], []
    for row in draws.theta[:150]:
        p, A, _ = unpack(row)
        r = np.max(np.abs(np.linalg.eigvals(companion(A, p))))
        for delta in (-3e-5, -8e-6, 0.0, 8e-6, 3e-5):  # rho_max tolerance is 1e-5
            shifted = row.copy()
            shifted[1] = r + delta
            rows.append(shifted)
            expected.append(abs(delta) <= 1e-5)
        for target in (0.9999, 1.0001):  # rescale to a spectral radius just inside / outside 1
            c = target / r
            scaled = row.copy()
            for lag in range(4):
                scaled[3 + 9 * lag : 12 + 9 * lag] *= c ** (lag + 1)
            scaled[1] = target
            rows.append(scaled)
            expected.append(target < 1)
    assert np.array_equal(W.is_valid(np.array(rows)), np.array(expected))


def test_bad_input_names_world_parameter_value(draws):
    th = draws.theta[:2].copy()
    bad = th.copy()
    bad[0, 2] = 2.5
    with pytest.raises(WorldError, match=r"'var'.*'sigma_scale'.*2\.5"):
        W.simulate(bad, draws.shocks[:2])
    bad = th.copy()
    bad[1, 0] = 5
    with pytest.raises(WorldError, match=r"'var'.*'p'.*5"):
        W.irfs(bad, 3)
    with pytest.raises(WorldError, match=r"'var'.*eps must have shape"):
        W.simulate(th, draws.shocks[:2, :, :2])


def test_split_regions_hold_about_2_5_percent():
    th = draw_range(W, 2024, 0, 20_000, 1).theta
    in_slice = splits.in_slice(W, th)
    corner = splits.in_corner(W, th) & ~in_slice
    assert abs(in_slice.mean() - 0.025) < 0.007, in_slice.mean()
    assert abs(corner.mean() - 0.025) < 0.007, corner.mean()
