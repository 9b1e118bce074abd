"""solve_re against closed forms, constructed solutions and the model's own equations."""

from __future__ import annotations

import numpy as np
import pytest

from macro_data.errors import WorldError
from macro_data.worlds.linear_re import bmatmul, solve_re


def cagan(rho, a):
    """k[t+1] = rho k[t] (exogenous), u[t] = a E u[t+1] + k[t]; closed form u = k / (1 - a rho)."""
    n = len(rho)
    A = np.zeros((n, 2, 2))
    B = np.zeros((n, 2, 2))
    A[:, 0, 0] = 1.0
    B[:, 0, 0] = rho
    A[:, 1, 1] = a
    B[:, 1, 1] = 1.0
    B[:, 1, 0] = -1.0
    return A, B


def test_scalar_closed_form():
    rho = np.linspace(0.0, 0.95, 9)
    a = np.full(9, 0.6)
    sol = solve_re(*cagan(rho, a), 1)
    assert sol.determinate.all()
    assert (sol.n_unstable == 1).all()
    np.testing.assert_allclose(sol.F[:, 0, 0], 1.0 / (1.0 - a * rho), rtol=1e-13)
    np.testing.assert_allclose(sol.P[:, 0, 0], rho, rtol=1e-13, atol=1e-15)


def test_indeterminate_and_explosive_flagged():
    # a > 1: the jump's root 1/a is stable -> no unstable root -> indeterminate.
    # rho > 1: the predetermined root is unstable too -> two unstable roots -> no stable solution.
    # a = 1 / 1.0000000001: a root within tol of the unit circle.
    rho = np.array([0.5, 0.5, 1.2, 0.5])
    a = np.array([0.5, 1.5, 0.5, 1.0 / (1.0 + 1e-10)])
    sol = solve_re(*cagan(rho, a), 1)
    assert sol.determinate.tolist() == [True, False, False, False]
    assert sol.n_unstable.tolist()[:3] == [1, 0, 2]
    assert np.isnan(sol.F[1:]).all() and np.isnan(sol.P[1:]).all()
    assert np.isfinite(sol.F[0]).all()


def test_rank_condition_failure():
    # k explodes on its own (unstable root 2) and u is purely backward (stable root 0.5): the
    # count n_unstable == n_jump is met but the unstable left eigenvector has no jump component.
    A = np.eye(2)[None]
    B = np.array([[[2.0, 0.0], [0.0, 0.5]]])
    sol = solve_re(A, B, 1)
    assert sol.n_unstable[0] == 1
    assert not sol.determinate[0]
    assert np.isnan(sol.F).all()


def constructed(n, rng, complex_pairs=True):
    """Models built from a chosen solution: stable subspace span[I; F] with dynamics P."""
    n_pre, n_jump = 2, 2
    m = n_pre + n_jump

    def rot_block(r_lo, r_hi):
        r = rng.uniform(r_lo, r_hi, n)
        th = rng.uniform(0.2, 2.5, n)
        Q = rng.standard_normal((n, 2, 2)) + 2 * np.eye(2)
        R = np.zeros((n, 2, 2))
        R[:, 0, 0] = R[:, 1, 1] = r * np.cos(th)
        R[:, 0, 1] = -r * np.sin(th)
        R[:, 1, 0] = r * np.sin(th)
        return Q @ R @ np.linalg.inv(Q)

    P = rot_block(0.1, 0.9) if complex_pairs else np.diag([0.3, -0.7])[None] * np.ones((n, 1, 1))
    U = rot_block(1.2, 3.0)
    F = rng.standard_normal((n, n_jump, n_pre))
    X = rng.standard_normal((n, n_pre, n_jump))
    Y = rng.standard_normal((n, n_jump, n_jump)) + 3 * np.eye(2)
    V = np.zeros((n, m, m))
    V[:, :n_pre, :n_pre] = np.eye(n_pre)
    V[:, n_pre:, :n_pre] = F
    V[:, :n_pre, n_pre:] = X
    V[:, n_pre:, n_pre:] = Y
    D = np.zeros((n, m, m))
    D[:, :n_pre, :n_pre] = P
    D[:, n_pre:, n_pre:] = U
    M = V @ D @ np.linalg.inv(V)
    A = rng.standard_normal((n, m, m)) + 4 * np.eye(m)
    return A, A @ M, F, P


def test_constructed_solution_with_complex_roots():
    rng = np.random.default_rng(1)
    A, B, F, P = constructed(50, rng)
    sol = solve_re(A, B, 2)
    assert sol.determinate.all()
    assert sol.F.dtype == np.float64 and sol.P.dtype == np.float64
    np.testing.assert_allclose(sol.F, F, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(sol.P, P, rtol=1e-8, atol=1e-8)
    # And the model's own equations: A [P; F P] = B [I; F].
    lhs = A @ np.concatenate([sol.P, sol.F @ sol.P], axis=1)
    rhs = B @ np.concatenate([np.broadcast_to(np.eye(2), (50, 2, 2)), sol.F], axis=1)
    np.testing.assert_allclose(lhs, rhs, atol=1e-9)


def test_batch_independence_bit_identical():
    rng = np.random.default_rng(2)
    A, B, _, _ = constructed(1000, rng)
    # mix in non-determinate rows so the batches differ in composition
    B[::5] *= 3.0
    full = solve_re(A, B, 2)
    assert 0 < full.determinate.sum() < 1000
    for size in (1, 7):
        for start in (0, 3, 500, 993):
            part = solve_re(A[start : start + size], B[start : start + size], 2)
            np.testing.assert_array_equal(part.F, full.F[start : start + size])
            np.testing.assert_array_equal(part.P, full.P[start : start + size])
            np.testing.assert_array_equal(part.determinate, full.determinate[start : start + size])


def test_singular_A_is_flagged_not_raised():
    A, B = cagan(np.array([0.5, 0.5]), np.array([0.5, 0.0]))  # a = 0 makes A singular
    sol = solve_re(A, B, 1)
    assert sol.determinate.tolist() == [True, False]


def test_bad_input():
    A, B = cagan(np.array([0.5]), np.array([0.5]))
    with pytest.raises(WorldError, match="shape"):
        solve_re(A[0], B[0], 1)
    with pytest.raises(WorldError, match="shape"):
        solve_re(A, B[:, :1], 1)
    with pytest.raises(WorldError, match="n_pre"):
        solve_re(A, B, 3)
    Bn = B.copy()
    Bn[0, 1, 1] = np.nan
    with pytest.raises(WorldError, match="draw 0 is not finite"):
        solve_re(A, Bn, 1)


def test_bmatmul_matches_matmul():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 3, 4))
    b = rng.standard_normal((5, 4, 2))
    np.testing.assert_allclose(bmatmul(a, b), a @ b, rtol=1e-14, atol=1e-14)
