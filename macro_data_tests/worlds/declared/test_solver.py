"""The batched solver against closed forms and an independent per-draw QZ (Klein) reference."""

from __future__ import annotations

import numpy as np
import pytest

from macro_data.worlds.declared import solver
from macro_data.worlds.declared.solver import (BK_COUNT, BK_RANK, NON_FINITE, NO_CONVERGENCE, OK, STATIC_SINGULAR,
                                               Structure, sign_function, solve_lre)
from macro_data_tests.worlds.declared.klein_reference import klein


def cagan(rho, a, sd):
    """k = rho k(-1) + sd e;  u = a u(+1) + k.  Closed form: u = k / (1 - a rho) (variables [k, u])."""
    n = len(rho)
    A, B, C, D = np.zeros((n, 2, 2)), np.zeros((n, 2, 2)), np.zeros((n, 2, 2)), np.zeros((n, 2, 1))
    B[:, 0, 0] = 1.0
    C[:, 0, 0] = -rho
    D[:, 0, 0] = -sd
    B[:, 1, 1] = 1.0
    A[:, 1, 1] = -a
    B[:, 1, 0] = -1.0
    return A, B, C, D, Structure(2, lead=(1,), lag=(0,))


def test_closed_form():
    rho = np.linspace(0.0, 0.95, 7)
    a = np.full(7, 0.6)
    sd = np.linspace(0.5, 2.0, 7)
    pol = solve_lre(*cagan(rho, a, sd))
    assert pol.valid.all() and (pol.n_unstable == 1).all() and pol.lagged == (0,)
    np.testing.assert_allclose(pol.P[:, 0, 0], rho, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(pol.P[:, 1, 0], rho / (1 - a * rho), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pol.Q[:, 0, 0], sd, rtol=1e-13)
    np.testing.assert_allclose(pol.Q[:, 1, 0], sd / (1 - a * rho), rtol=1e-12)


def test_indeterminate_explosive_and_unit_root_are_flagged():
    # a > 1: no unstable root for the jump (indeterminate); rho > 1: two unstable roots;
    # rho = 1: a unit root (the sign iteration cannot converge).
    rho = np.array([0.5, 0.5, 1.2, 1.0])
    a = np.array([0.5, 1.5, 0.5, 0.5])
    pol = solve_lre(*cagan(rho, a, np.ones(4)))
    assert pol.valid.tolist() == [True, False, False, False]
    assert pol.problem.tolist() == [OK, BK_COUNT, BK_COUNT, NO_CONVERGENCE]
    assert pol.n_unstable.tolist()[:3] == [1, 0, 2]
    assert np.isnan(pol.P[1:]).all() and np.isnan(pol.Q[1:]).all()
    assert "2 unstable roots" in pol.describe_problem(2)


def test_rank_condition_failure():
    # k = 2 k(-1) + e explodes on its own; u = 2 E_t u[t+1] has the stable root 0.5. One unstable
    # root for one jump, so the count is met, but the unstable direction has no jump component.
    A, B, C, D = np.zeros((1, 2, 2)), np.eye(2)[None].copy(), np.zeros((1, 2, 2)), np.zeros((1, 2, 1))
    C[0, 0, 0] = -2.0
    D[0, 0, 0] = -1.0
    A[0, 1, 1] = -2.0
    pol = solve_lre(A, B, C, D, Structure(2, lead=(1,), lag=(0,)))
    assert pol.n_unstable[0] == 1
    assert pol.problem[0] == BK_RANK and not pol.valid[0]
    assert klein(A[0], B[0], C[0], D[0])[0] is None  # the reference agrees: no unique stable solution


def test_non_finite_and_singular_static_block():
    A, B, C, D, st = cagan(np.array([0.5, 0.5]), np.array([0.5, np.nan]), np.ones(2))
    assert solve_lre(A, B, C, D, st).problem.tolist() == [OK, NON_FINITE]
    # a static variable s with s = 0*s + x: its coefficient block is zero.
    n = 2
    A, B, C, D = np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), np.ones((2, 3, 1))
    B[:, 0, 0] = 1.0
    C[:, 0, 0] = -0.5  # x = 0.5 x(-1) + e
    B[:, 1, 1] = 1.0
    A[:, 1, 1] = -0.5  # u = 0.5 u(+1) + ...
    B[:, 2, 2] = [1.0, 0.0]  # s = ... (draw 1: s drops out of its equation)
    B[:, 2, 0] = -1.0
    pol = solve_lre(A, B, C, D, Structure(3, lead=(1,), lag=(0,)))
    assert pol.problem.tolist() == [OK, STATIC_SINGULAR]
    del n


def random_models(rng, k, singular_lead_rows=False):
    """Random 6-variable, 2-shock models with every variable class (structure fixed, values random).

    Variables: 0 static, 1 and 2 forward only, 3 backward only, 4 mixed, 5 backward only.
    ``singular_lead_rows``: the two forward-only leads share one equation (so the lead block of
    the dynamic system is singular: infinite roots, as in an RBC with E_t r[t+1] and E_t c[t+1]).
    """
    n, S = 6, 2
    A = np.zeros((k, n, n))
    B = rng.standard_normal((k, n, n)) + 3.0 * np.eye(n)
    C = np.zeros((k, n, n))
    D = rng.standard_normal((k, n, S))
    if singular_lead_rows:
        A[:, 1, [1, 2, 4]] = rng.standard_normal((k, 3))
        A[:, 2, 4] = rng.standard_normal(k)
    else:
        A[:, :, [1, 2, 4]] = rng.standard_normal((k, n, 3))
    C[:, :, [3, 4, 5]] = 0.6 * rng.standard_normal((k, n, 3))
    return A, B, C, D, Structure(n, lead=(1, 2, 4), lag=(3, 4, 5))


@pytest.mark.parametrize("singular", [False, True])
def test_random_models_match_klein(singular):
    rng = np.random.default_rng(7 + singular)
    A, B, C, D, st = random_models(rng, 300, singular)
    pol = solve_lre(A, B, C, D, st)
    agree = valid = 0
    worst = 0.0
    for d in range(A.shape[0]):
        ref, roots = klein(A[d], B[d], C[d], D[d])
        if np.any(np.abs(roots - 1.0) < 1e-6):  # too close to the unit circle to classify robustly
            continue
        assert pol.valid[d] == (ref is not None), (d, pol.problem[d], np.sort(roots))
        agree += 1
        if ref is None:
            continue
        valid += 1
        F, Q = ref
        np.testing.assert_allclose(F[:, [0, 1, 2]], 0.0, atol=1e-9)  # non-lagged columns vanish
        scale = max(np.abs(F).max(), np.abs(Q).max())
        err = max(np.abs(pol.P[d] - F[:, list(st.lag)]).max(), np.abs(pol.Q[d] - Q).max()) / scale
        worst = max(worst, err)
    assert agree > 280 and 30 < valid < agree  # both outcomes occur
    assert worst < 1e-9, worst


def test_lag_chains_and_repeated_roots():
    """Defective zero roots (a chain of lags) and a repeated stable root: no eigenvectors needed."""
    # x = 0.9 x(-1) + e;  x1 = x(-1);  x2 = x1(-1);  y = 0.9 y(-1) + e (same root as x);
    # u = 0.5 u(+1) + x2 + y.
    n = 5
    A, B, C, D = np.zeros((1, n, n)), np.eye(n)[None].copy(), np.zeros((1, n, n)), np.zeros((1, n, 1))
    C[0, 0, 0] = -0.9
    D[0, 0, 0] = -1.0
    C[0, 1, 0] = -1.0
    C[0, 2, 1] = -1.0
    C[0, 3, 3] = -0.9
    D[0, 3, 0] = -1.0
    A[0, 4, 4] = -0.5
    B[0, 4, 2] = -1.0
    B[0, 4, 3] = -1.0
    st = Structure(n, lead=(4,), lag=(0, 1, 3))
    pol = solve_lre(A, B, C, D, st)
    assert pol.valid[0]
    (F, Q), _ = klein(A[0], B[0], C[0], D[0])
    np.testing.assert_allclose(pol.P[0], F[:, [0, 1, 3]], atol=1e-12)
    np.testing.assert_allclose(pol.Q[0], Q, atol=1e-12)


def test_batch_independence_bit_for_bit():
    rng = np.random.default_rng(3)
    A, B, C, D, st = random_models(rng, 64, singular_lead_rows=True)
    whole = solve_lre(A, B, C, D, st)
    assert 0 < whole.valid.sum() < 64
    for lo, hi in ((0, 1), (5, 6), (10, 37), (63, 64)):
        part = solve_lre(A[lo:hi], B[lo:hi], C[lo:hi], D[lo:hi], st)
        np.testing.assert_array_equal(part.P, whole.P[lo:hi])
        np.testing.assert_array_equal(part.Q, whole.Q[lo:hi])
        np.testing.assert_array_equal(part.problem, whole.problem[lo:hi])


def test_sign_function_of_a_known_matrix():
    rng = np.random.default_rng(0)
    V = rng.standard_normal((5, 4, 4))
    lam = np.array([-3.0, -0.2, 0.1, 7.0])
    N = V @ (lam[:, None] * np.linalg.inv(V))
    S, converged = sign_function(N)
    assert converged.all()
    expected = V @ (np.sign(lam)[:, None] * np.linalg.inv(V))
    np.testing.assert_allclose(S, expected, atol=1e-10)


def test_empty_batch_and_no_dynamics():
    A, B, C, D, st = cagan(np.zeros(0), np.zeros(0), np.zeros(0))
    pol = solve_lre(A, B, C, D, st)
    assert pol.P.shape == (0, 2, 1) and pol.valid.shape == (0,)
    # purely static: x = 2 e
    pol = solve_lre(np.zeros((1, 1, 1)), np.ones((1, 1, 1)), np.zeros((1, 1, 1)), -2.0 * np.ones((1, 1, 1)),
                    Structure(1, lead=(), lag=()))
    assert pol.valid[0] and pol.P.shape == (1, 1, 0) and pol.Q[0, 0, 0] == 2.0


def test_problem_texts_cover_every_code():
    assert set(solver.PROBLEMS) == set(range(len(solver.PROBLEMS)))
    assert BK_RANK in solver.PROBLEMS
