"""The batched solver against closed forms and an independent per-draw QZ (Klein) reference."""

from __future__ import annotations

import numpy as np
import pytest

from macro_data.worlds.declared import solver
from macro_data.worlds.declared.solver import (
    BK_COUNT,
    BK_RANK,
    NO_CONVERGENCE,
    NON_FINITE,
    OK,
    STATIC_SINGULAR,
    sign_function,
    solve_lre,
)
from macro_data.worlds.declared.structure import StructurallySingular, Structure, analyze
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
    # a static variable s whose own coefficient is zero in draw 1: its coefficient block is singular.
    A, B, C, D = np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), np.ones((2, 3, 1))
    B[:, 0, 0] = 1.0
    C[:, 0, 0] = -0.5  # x = 0.5 x(-1) + e
    B[:, 1, 1] = 1.0
    A[:, 1, 1] = -0.5  # u = 0.5 u(+1) + ...
    B[:, 2, 2] = [1.0, 0.0]  # s = ... (draw 1: s drops out of its equation)
    B[:, 2, 0] = -1.0
    pol = solve_lre(A, B, C, D, Structure(3, lead=(1,), lag=(0,)))
    assert pol.problem.tolist() == [OK, STATIC_SINGULAR]


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


def test_accuracy_is_relative_to_the_terms_or_to_the_coefficients_when_the_policy_is_zero():
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(3, 4, 4)), rng.normal(size=(3, 4, 4))
    # No lag enters any equation (C = 0): the exact policy is P = 0. A solver's rounding noise in it
    # leaves terms of that size, whose sum is no smaller: relative to the terms alone, the exact
    # answer would fail; relative to the coefficients, it is at rounding level.
    C = np.zeros((3, 4, 4))
    P = np.zeros((3, 4, 4))
    P[:, :, 1] = 1e-17 * rng.normal(size=(3, 4))
    assert solver.accurate((A @ P @ P, B @ P, C), (A, B, C)).all()
    # an error well above rounding is caught all the same
    P[:, :, 1] = 1e-10
    assert not solver.accurate((A @ P @ P, B @ P, C), (A, B, C)).any()
    # a non-zero policy: rounding-level residuals pass, a residual of 1e-6 of the terms fails
    T1, T2 = rng.normal(size=(3, 4, 4)), rng.normal(size=(3, 4, 4))
    for noise, expected in ((1e-13, True), (1e-6, False)):
        T3 = -(T1 + T2) * (1 + noise)
        assert (solver.accurate((T1, T2, T3), (A, B, C)) == expected).all()


def test_empty_batch_and_no_dynamics():
    A, B, C, D, st = cagan(np.zeros(0), np.zeros(0), np.zeros(0))
    pol = solve_lre(A, B, C, D, st)
    assert pol.P.shape == (0, 2, 1) and pol.valid.shape == (0,)
    # purely static: x = 2 e
    pol = solve_lre(
        np.zeros((1, 1, 1)),
        np.ones((1, 1, 1)),
        np.zeros((1, 1, 1)),
        -2.0 * np.ones((1, 1, 1)),
        Structure(1, lead=(), lag=()),
    )
    assert pol.valid[0] and pol.P.shape == (1, 1, 0) and pol.Q[0, 0, 0] == 2.0


def test_problem_texts_cover_every_code():
    assert set(solver.PROBLEMS) == set(range(len(solver.PROBLEMS)))
    assert BK_RANK in solver.PROBLEMS


def exogenous_models(rng, k):
    """Random 10-variable, 3-shock models with a core and exogenous blocks of every kind.

    Core (0..4): 0 static, 1 and 2 forward, 3 backward, 4 mixed. Exogenous: 5 AR(1); (6, 7) an AR(2)
    pair (7 = 6(-1)); 8 depends on 5 (a downstream block); 9 static, a function of 6 and 8. The core
    reads the exogenous variables at t, t-1 and t+1 (e.g. E_t x5[t+1]).
    """
    n, S = 10, 3
    A, C = np.zeros((k, n, n)), np.zeros((k, n, n))
    B = np.zeros((k, n, n))
    D = np.zeros((k, n, S))
    B[:, :5, :5] = rng.standard_normal((k, 5, 5)) + 3.0 * np.eye(5)
    A[:, :5][:, :, [1, 2, 4]] = rng.standard_normal((k, 5, 3))
    C[:, :5][:, :, [3, 4]] = 0.6 * rng.standard_normal((k, 5, 2))
    B[:, :5][:, :, [5, 8, 9]] = rng.standard_normal((k, 5, 3))  # current exogenous values
    A[:, :5][:, :, [5]] = rng.standard_normal((k, 5, 1))  # an expected exogenous value
    C[:, :5][:, :, [6, 7]] = 0.3 * rng.standard_normal((k, 5, 2))  # lagged exogenous values
    D[:, :5, 2] = rng.standard_normal((k, 5))  # a shock hitting the core directly
    eye = np.arange(5, 10)
    B[:, eye, eye] = 1.0
    C[:, 5, 5] = -rng.uniform(-0.9, 0.9, k)
    D[:, 5, 0] = -1.0
    r1, r2 = rng.uniform(-0.9, 0.9, k), rng.uniform(-0.9, 0.9, k)
    C[:, 6, 6], C[:, 6, 7] = -(r1 + r2), r1 * r2  # roots r1, r2
    D[:, 6, 1] = -1.0
    C[:, 7, 6] = -1.0
    C[:, 8, 8] = -rng.uniform(-0.9, 0.9, k)
    C[:, 8, 5] = -rng.standard_normal(k)
    B[:, 8, 5] = -rng.standard_normal(k)
    B[:, 9, 6], B[:, 9, 8] = -rng.standard_normal(k), -rng.standard_normal(k)
    return A, B, C, D


def test_structure_finds_the_exogenous_blocks():
    A, B, C, D = exogenous_models(np.random.default_rng(0), 1)
    nz = tuple(frozenset(zip(*np.nonzero(M[0]))) for M in (A, B, C))
    st = analyze(10, nz)
    blocks = [tuple(vs) for vs, _ in st.exogenous_blocks]
    assert sorted(blocks) == [(5,), (6, 7), (8,), (9,)]
    order = {b: i for i, b in enumerate(blocks)}
    assert order[(5,)] < order[(8,)] < order[(9,)] and order[(6, 7)] < order[(9,)]  # upstream first
    assert st.exogenous_upstream[order[(9,)]] == {order[(5,)], order[(6, 7)], order[(8,)]}
    assert st.exogenous == (5, 6, 7, 8, 9) and st.lead == (1, 2, 4, 5) and st.lag == (3, 4, 5, 6, 7, 8)
    # the core is what remains; restricting renumbers it
    core = st.restricted([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
    assert core.lead == (1, 2, 4) and core.lag == (3, 4) and core.static == (0,)


def test_structurally_singular_models_are_detected():
    # equations 0 and 1 both involve only x (variable 0); y (variable 1) is left undetermined
    nz = (frozenset(), frozenset({(0, 0), (1, 0), (2, 2)}), frozenset({(1, 0), (2, 1)}))
    with pytest.raises(StructurallySingular) as info:
        analyze(3, nz)
    assert info.value.equations == [0, 1] and info.value.variables == [0]


def test_exogenous_split_matches_klein():
    rng = np.random.default_rng(11)
    A, B, C, D = exogenous_models(rng, 300)
    nz = tuple(frozenset(zip(*np.nonzero(M.any(axis=0)))) for M in (A, B, C))
    st = analyze(10, nz)
    assert st.exogenous == (5, 6, 7, 8, 9)
    pol = solve_lre(A, B, C, D, st)
    dense = solve_lre(A, B, C, D, Structure(10, st.lead, st.lag))  # no split, no sparsity
    valid = 0
    worst = 0.0
    for d in range(A.shape[0]):
        ref, roots = klein(A[d], B[d], C[d], D[d])
        if np.any(np.abs(roots - 1.0) < 1e-6):
            continue
        assert pol.valid[d] == (ref is not None) == dense.valid[d], (d, pol.problem[d], dense.problem[d])
        if ref is None:
            continue
        valid += 1
        F, Q = ref
        scale = max(np.abs(F).max(), np.abs(Q).max())
        err = max(np.abs(pol.P[d] - F[:, list(st.lag)]).max(), np.abs(pol.Q[d] - Q).max()) / scale
        worst = max(worst, err)
        assert np.allclose(pol.P[d], dense.P[d], rtol=1e-8, atol=1e-10 * scale)
    assert 40 < valid < 290
    assert worst < 1e-9, worst


def test_explosive_exogenous_process_is_rejected():
    A, B, C, D = exogenous_models(np.random.default_rng(2), 4)
    C[:, 5, 5] = [-0.5, -1.0, -1.2, -(1 - 1e-10)]  # x5 = rho x5(-1): rho 0.5, 1 (unit root), 1.2, just below 1
    nz = tuple(frozenset(zip(*np.nonzero(M.any(axis=0)))) for M in (A, B, C))
    pol = solve_lre(A, B, C, D, analyze(10, nz))
    assert pol.problem[1:].tolist() == [solver.EXOGENOUS_UNSTABLE] * 3
    assert pol.n_unstable[2] >= 1
