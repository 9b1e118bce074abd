"""lss: random stable linear state space. References are computed here independently
(matrix powers, scipy's Lyapunov solver, explicit convolution sums, fresh Monte Carlo)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_discrete_lyapunov

from macro_data import splits
from macro_data.errors import WorldError
from macro_data.worlds import get_world
from macro_data.worlds.sampling import BLOCK_SIZE, draw_range

W = get_world("lss")
SEED = 11


@pytest.fixture(scope="module")
def draws():
    return draw_range(W, SEED, 0, 1024, 60)


def matrices(theta_row):
    k = int(theta_row[0])
    A = theta_row[2:27].reshape(5, 5)
    B = theta_row[27:42].reshape(5, 3)
    C = theta_row[42:57].reshape(3, 5)
    return k, A, B, C


def test_layout_names():
    names = W.parameter_names
    assert names[:2] == ("n_state", "rho_max")
    assert names[2] == "A_0_0" and names[2 + 5 * 0 + 1] == "A_0_1" and names[26] == "A_4_4"
    assert names[27] == "B_0_0" and names[27 + 2 * 3] == "B_2_0"
    assert names[42] == "C_0_0" and names[42 + 5 + 3] == "C_1_3"
    kinds = {p.name: p.kind for p in W.parameters}
    assert kinds["n_state"] == "integer" and kinds["rho_max"] == "uniform" and kinds["A_1_2"] == "derived"


def test_draws_valid_in_bounds_padded_and_symmetric(draws):
    th = draws.theta
    assert np.all(W.valid(th)) and np.all(W.within_bounds(th))
    assert set(np.unique(th[:, 0])) == {3.0, 4.0, 5.0}
    assert np.array_equal(th, th.astype(np.float32).astype(np.float64))  # stored precision
    for row in th[:200]:
        k, A, B, C = matrices(row)
        assert np.all(A[k:] == 0) and np.all(A[:, k:] == 0) and np.all(B[k:] == 0) and np.all(C[:, k:] == 0)
        assert np.array_equal(A, A.T)
        # rows of C are unit vectors (up to float32 rounding)
        assert np.allclose(np.linalg.norm(C, axis=1), 1.0, atol=1e-6)


def test_rho_max_is_spectral_radius_to_float32_precision(draws):
    th = draws.theta
    dev = []
    for row in th:
        k, A, _, _ = matrices(row)
        lam = np.linalg.eigvals(A[:k, :k])  # general solver, independent of the world's eigvalsh
        dev.append(abs(np.max(np.abs(lam)) - row[1]))
        # eigenvalues in [0, rho_max] up to the float32 rounding of A (Weyl bound < 3e-7)
        assert lam.real.min() >= -1e-6 and np.abs(lam.imag).max() < 1e-6
    dev = np.array(dev)
    assert dev.max() < 1e-6
    assert np.all(np.max(np.abs(np.linalg.eigvals(th[:, 2:27].reshape(-1, 5, 5))), axis=1) < 1)


def test_irfs_equal_closed_form(draws):
    th = draws.theta[:40]
    H = 30
    irf = W.irfs(th, H)
    assert irf.shape == (40, 3, H + 1, 3)
    for i, row in enumerate(th):
        _, A, B, C = matrices(row)
        for h in range(H + 1):
            ref = C @ np.linalg.matrix_power(A, h) @ B  # (obs, shock)
            np.testing.assert_allclose(irf[i, :, h, :], ref.T, rtol=1e-10, atol=1e-12)


def test_convolution_identity(draws):
    d = draws.slice(0, 64)
    T = d.shocks.shape[1]
    H = T - 1
    traj = W.simulate(d.theta, d.shocks).trajectories
    irf = W.irfs(d.theta, H)
    recon = np.zeros_like(traj)
    for t in range(T):
        for h in range(t + 1):
            recon[:, t] += np.sum(irf[:, :, h, :] * d.shocks[:, t - h, :, None], axis=1)
    assert np.max(np.abs(recon - traj)) < 1e-9
    assert np.max(np.abs(traj)) > 0.1  # not trivially zero


def test_unconditional_variance_matches_lyapunov():
    """Time-averaged y^2 over replicated simulations vs C S C' with S = A S A' + B B' (scipy).

    Tolerance: 5 standard errors, estimated from the spread of the per-replicate averages
    (replicates are independent), plus nothing else.
    """
    th = draw_range(W, 5, 0, 256, 1).theta
    pick = [int(np.argmax(th[:, 1])), int(np.argmin(th[:, 1])), 0]
    rng = np.random.default_rng(123)
    reps, T, burn = 300, 1500, 500
    for i in pick:
        _, A, B, C = matrices(th[i])
        S = solve_discrete_lyapunov(A, B @ B.T)
        ref = np.diag(C @ S @ C.T)
        theta = np.repeat(th[i : i + 1], reps, axis=0)
        y = W.simulate(theta, rng.standard_normal((reps, T, 3))).trajectories[:, burn:]
        per_rep = np.mean(y**2, axis=1)  # (reps, 3)
        mean, se = per_rep.mean(0), per_rep.std(0, ddof=1) / np.sqrt(reps)
        assert np.all(np.abs(mean - ref) < 5 * se), (th[i, 1], mean, ref, se)
        # the exact moments used for the corner statistic agree with scipy
        G0, G1 = W.stationary_moments(th[i : i + 1])
        np.testing.assert_allclose(G0[0], C @ S @ C.T, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(G1[0], C @ A @ S @ C.T, rtol=1e-9, atol=1e-12)


def test_stationary_moments_of_every_state_dimension_match_scipy():
    """Gamma_0 = C S C' and Gamma_1 = C A S C' with S = A S A' + B B' (scipy) for draws of each
    n_state in one batch (the draws are grouped into systems of their own size)."""
    th = draw_range(W, 13, 0, 512, 1).theta
    picks = [int(np.flatnonzero(th[:, 0] == k)[j]) for k in (3, 4, 5) for j in (0, 1)]
    G0, G1 = W.stationary_moments(th[picks])
    for row, i in enumerate(picks):
        _, A, B, C = matrices(th[i])
        S = solve_discrete_lyapunov(A, B @ B.T)
        np.testing.assert_allclose(G0[row], C @ S @ C.T, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(G1[row], C @ A @ S @ C.T, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("i", [0, 300, 517])
def test_sample_identical_across_batch_sizes(i):
    T, H = 30, 12
    results = []
    for start, stop in [(i, i + 1), (max(0, i - 3), max(0, i - 3) + 7), (0, 1000)]:
        d = draw_range(W, SEED, start, stop, T)
        j = i - start
        sim = W.simulate(d.theta, d.shocks).trajectories
        irf = W.irfs(d.theta, H)
        results.append((d.theta[j].tobytes(), d.shocks[j].tobytes(), sim[j].tobytes(), irf[j].tobytes()))
    assert results[0] == results[1] == results[2]


def test_propose_consumes_random_numbers_independent_of_n_state():
    states = []
    for low, high in [(3, 3.5), (4.5, 5)]:
        priors = W.resolve_priors({"n_state": {"low": low, "high": high}})
        rng = np.random.default_rng(99)
        th = W.propose(rng, BLOCK_SIZE, priors)
        assert np.all(th[:, 0] == (3 if low == 3 else 5))
        states.append(rng.bit_generator.state)
    assert states[0] == states[1]


def test_is_valid_rejects_broken_theta(draws):
    base = draws.theta[:1].copy()
    k = int(base[0, 0])
    assert W.is_valid(base)[0]
    unstable = base.copy()
    unstable[0, 2:27] *= 1.03 / base[0, 1]  # spectral radius 1.03
    assert not W.is_valid(unstable)[0]
    inconsistent = base.copy()
    inconsistent[0, 1] = base[0, 1] - 0.01
    assert not W.is_valid(inconsistent)[0]
    asym = base.copy()
    asym[0, 2 + 1] += 0.01  # A[0, 1] only
    assert not W.is_valid(asym)[0]
    if k < 5:
        pad = base.copy()
        pad[0, 27 + 3 * 4] = 0.5  # B[4, 0] beyond n_state
        assert not W.is_valid(pad)[0]


def test_bad_input_names_world_parameter_value(draws):
    th = draws.theta[:2].copy()
    with pytest.raises(WorldError, match=r"'lss'.*shape"):
        W.simulate(th[:, :10], draws.shocks[:2])
    bad = th.copy()
    bad[1, 1] = 0.99
    with pytest.raises(WorldError, match=r"'lss'.*'rho_max'.*0\.99"):
        W.irfs(bad, 5)
    bad = th.copy()
    bad[0, 0] = 3.5
    with pytest.raises(WorldError, match=r"'lss'.*'n_state'.*3\.5"):
        W.simulate(bad, draws.shocks[:2])
    bad = th.copy()
    bad[0, 30] = np.nan
    with pytest.raises(WorldError, match=r"'lss'.*'B_1_0'.*nan"):
        W.simulate(bad, draws.shocks[:2])
    eps = draws.shocks[:2].copy()
    eps[1, 3, 2] = np.inf
    with pytest.raises(WorldError, match=r"'lss'.*'e3'.*inf"):
        W.simulate(th, eps)
    with pytest.raises(WorldError, match=r"'lss'.*horizon"):
        W.irfs(th, -1)


def test_split_regions_hold_about_2_5_percent():
    th = draw_range(W, 2024, 0, 20_000, 1).theta
    in_slice = splits.in_slice(W, th)
    corner = splits.in_corner(W, th) & ~in_slice
    assert abs(in_slice.mean() - 0.025) < 0.007, in_slice.mean()
    assert abs(corner.mean() - 0.025) < 0.007, corner.mean()
