"""The compiled time recursions against the numpy formulation they replaced, bit for bit, and
against closed forms.

The numpy functions below are the worlds' former code: one numpy call per period and term,
products ``M[:, c] * v[c]`` summed by a fixed halving tree. The compiled kernels must make the
same IEEE operations in the same order, so every stored trajectory and IRF stays bit-identical;
a fused multiply-add, a reassociated sum or a different tree would show up here.
"""

from __future__ import annotations

import numpy as np
import pytest

from macro_data.worlds.statespace import (
    irfs_lags,
    lag_recursion,
    samples_first,
    samples_last,
    simulate_lags,
    simulate_switching,
    stacked_lags,
)


# ---- the numpy formulation --------------------------------------------------------------------------
def _sum_columns(prod: np.ndarray, out: np.ndarray, add: bool = False) -> None:
    w = prod.shape[1]
    while w > 1:
        h = w // 2
        np.add(prod[:, :h], prod[:, h : 2 * h], out=prod[:, :h])
        if w % 2:
            prod[:, 0] += prod[:, 2 * h]
        w = h
    if add:
        out += prod[:, 0]
    else:
        out[...] = prod[:, 0]


def numpy_lag_recursion(coefs, u):
    p, k = coefs.shape[0], coefs.shape[1]
    T, _, m, n = u.shape
    M = stacked_lags(coefs)[:, :, None, :]
    X = np.zeros((T + p, k, m, n))
    prod = np.empty((k, p * k, m, n))
    for t in range(T):
        np.multiply(M, X[t : t + p].reshape(1, p * k, m, n), out=prod)
        acc = X[t + p]
        acc[...] = u[t]
        _sum_columns(prod, acc, add=True)
    return X[p:]


def numpy_simulate_lags(coefs, B, C, eps, history=None):
    p, k = coefs.shape[0], coefs.shape[1]
    n, T, S = eps.shape
    e = samples_last(eps)
    M = stacked_lags(coefs)
    X = np.zeros((T + p, k, n))
    if history is not None:
        X[:p] = history
    prodA = np.empty((k, p * k, n))
    prodB = np.empty((k, S, n))
    if C is not None:
        y = np.empty((T, C.shape[0], n))
        prodC = np.empty((C.shape[0], k, n))
    for t in range(T):
        np.multiply(M, X[t : t + p].reshape(1, p * k, n), out=prodA)
        np.multiply(B, e[t, None], out=prodB)
        acc = X[t + p]
        _sum_columns(prodB, acc)
        _sum_columns(prodA, acc, add=True)
        if C is not None:
            np.multiply(C, acc[None], out=prodC)
            _sum_columns(prodC, y[t])
    return samples_first(X[p:] if C is None else y)


def numpy_simulate_switching(A, B, C, eps, regime):
    k = A.shape[1]
    n, T, S = eps.shape
    e, r = samples_last(eps), samples_last(regime)
    x = np.zeros((k, n))
    y = np.empty((T, C.shape[0], n))
    prodA, prodB, prodC = np.empty((k, k, n)), np.empty((k, S, n)), np.empty((C.shape[0], k, n))
    for t in range(T):
        At, Bt = A[0], B[0]
        for j in range(1, A.shape[0]):
            At = np.where(r[t] == j, A[j], At)
            Bt = np.where(r[t] == j, B[j], Bt)
        np.multiply(At, x[None], out=prodA)
        np.multiply(Bt, e[t, None], out=prodB)
        _sum_columns(prodB, x)
        _sum_columns(prodA, x, add=True)
        np.multiply(C, x[None], out=prodC)
        _sum_columns(prodC, y[t])
    return samples_first(y)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    same_layout = a.shape == b.shape and a.dtype == b.dtype == np.float64
    return same_layout and np.array_equal(a.view(np.uint64), b.view(np.uint64))


# (p, k, S, q): lag orders 1-4 (var pads to 4), state sizes 1-5 (lss), odd and even tree widths
SHAPES = [(1, 1, 1, 1), (1, 3, 3, 3), (1, 5, 2, 3), (2, 2, 3, 4), (3, 3, 3, 3), (4, 3, 3, 0), (2, 5, 1, 2)]


@pytest.mark.parametrize("p,k,S,q", SHAPES)
def test_lag_paths_equal_the_numpy_recursion_bit_for_bit(p, k, S, q):
    rng = np.random.default_rng(100 * p + 10 * k + S)
    n, T = 301, 40
    coefs = rng.standard_normal((p, k, k, n)) * 0.35
    B = rng.standard_normal((k, S, n))
    eps = rng.standard_normal((n, T, S))
    C = rng.standard_normal((q, k, n)) if q else None
    history = rng.standard_normal((p, k, n))
    for h in (None, history):
        assert same_bits(simulate_lags(coefs, B, C, eps, h), numpy_simulate_lags(coefs, B, C, eps, h))
    if q:  # an observation matrix shared by every sample
        shared = rng.standard_normal((q, k, 1))
        assert same_bits(simulate_lags(coefs, B, shared, eps), numpy_simulate_lags(coefs, B, shared, eps))
    u = np.zeros((9, k, S, n))
    u[0], u[3] = B, -2.0 * B
    assert same_bits(np.ascontiguousarray(lag_recursion(coefs, u)), numpy_lag_recursion(coefs, u))


def test_lag_paths_carry_nan_inf_and_signed_zeros_as_numpy_does():
    rng = np.random.default_rng(5)
    p, k, S, n, T = 2, 3, 3, 64, 12
    coefs = rng.standard_normal((p, k, k, n)) * 0.3
    B = rng.standard_normal((k, S, n))
    B[:, :, 0] = -0.0
    coefs[:, :, :, 1] = -0.0
    eps = rng.standard_normal((n, T, S))
    eps[2, 3, 1] = np.nan
    eps[3, 0, 0] = np.inf
    eps[4] = -0.0
    C = rng.standard_normal((3, k, n))
    with np.errstate(invalid="ignore"):  # inf - inf in the numpy formulation
        assert same_bits(simulate_lags(coefs, B, C, eps), numpy_simulate_lags(coefs, B, C, eps))
        assert same_bits(simulate_lags(coefs, B, None, eps), numpy_simulate_lags(coefs, B, None, eps))


@pytest.mark.parametrize("k,S,q,R", [(3, 3, 3, 2), (2, 1, 1, 3), (4, 2, 3, 2)])
def test_switching_paths_equal_the_numpy_recursion_bit_for_bit(k, S, q, R):
    rng = np.random.default_rng(k + 10 * S + 100 * R)
    n, T = 257, 30
    A = rng.standard_normal((R, k, k, n)) * 0.4
    B = rng.standard_normal((R, k, S, n))
    eps = rng.standard_normal((n, T, S))
    regime = rng.integers(0, R, (n, T))
    regime[0, :5] = R + 3  # outside the regimes: both formulations read regime 0's matrices
    for C in (rng.standard_normal((q, k, n)), rng.standard_normal((q, k, 1))):
        got = simulate_switching(A, B, C, eps, regime)
        assert same_bits(got, numpy_simulate_switching(A, B, C, eps, regime))


def test_results_do_not_depend_on_the_batch():
    rng = np.random.default_rng(11)
    p, k, S, n, T = 4, 3, 3, 200, 25
    coefs = rng.standard_normal((p, k, k, n)) * 0.3
    B = rng.standard_normal((k, S, n))
    eps = rng.standard_normal((n, T, S))
    whole = simulate_lags(coefs, B, None, eps)
    part = simulate_lags(coefs[..., 37:90], B[..., 37:90], None, eps[37:90])
    assert same_bits(whole[37:90], part)
    whole_irfs = irfs_lags(coefs, B, None, 10)
    assert same_bits(whole_irfs[5:6], irfs_lags(coefs[..., 5:6], B[..., 5:6], None, 10))


def test_closed_forms():
    """``p = 1``: ``y[t] = C sum_{s <= t} A^(t-s) B eps[s]`` and IRFs ``C A^h B``; a VAR(2) through
    its companion matrix."""
    rng = np.random.default_rng(3)
    k, S, q, n, T, H = 3, 2, 2, 5, 15, 8
    A = rng.standard_normal((n, k, k)) * 0.3
    B = rng.standard_normal((n, k, S))
    C = rng.standard_normal((n, q, k))
    eps = rng.standard_normal((n, T, S))
    y = simulate_lags(samples_last(A)[None], samples_last(B), samples_last(C), eps)
    irfs = irfs_lags(samples_last(A)[None], samples_last(B), samples_last(C), H)
    for i in range(n):
        x = np.zeros(k)
        for t in range(T):
            x = A[i] @ x + B[i] @ eps[i, t]
            np.testing.assert_allclose(y[i, t], C[i] @ x, rtol=1e-12, atol=1e-12)
        for h in range(H + 1):
            np.testing.assert_allclose(
                irfs[i, :, h], (C[i] @ np.linalg.matrix_power(A[i], h) @ B[i]).T, rtol=1e-12, atol=1e-12
            )
    A1, A2 = rng.standard_normal((2, n, k, k)) * 0.3
    coefs = np.stack([samples_last(A1), samples_last(A2)])
    paths = simulate_lags(coefs, samples_last(B), None, eps)
    for i in range(n):
        F = np.block([[A1[i], A2[i]], [np.eye(k), np.zeros((k, k))]])
        z = np.zeros(2 * k)
        for t in range(T):
            z = F @ z + np.concatenate([B[i] @ eps[i, t], np.zeros(k)])
            np.testing.assert_allclose(paths[i, t], z[:k], rtol=1e-12, atol=1e-12)


def test_nk_paths_equal_the_elementwise_numpy_laws_bit_for_bit():
    """nk's compiled paths, free paths and IRFs against its numpy laws (exog_step, jumps, taylor), run
    over all draws at once, period by period."""
    from macro_data.worlds import nk
    from macro_data.worlds.sampling import draw_range

    d = draw_range(nk.WORLD, 7, 0, 600, 30)
    s = nk.solve(d.theta)
    n, T = 600, 30

    def numpy_paths(start, eps):
        i, v, rn, u = (np.array(x) for x in start)
        y = np.empty((eps.shape[0], eps.shape[1], 3))
        for t in range(eps.shape[1]):
            v, rn, u = nk.exog_step(s, v, rn, u, eps[:, t, 0], eps[:, t, 1], eps[:, t, 2])
            x, pi = nk.jumps(s, i, v, rn, u)
            i = nk.taylor(s, i, x, pi, v)
            y[:, t] = np.stack([x * 100.0, pi * 400.0, i * 400.0], axis=1)
        return y

    for eps in (d.shocks, d.shocks.astype(np.float32)):
        assert same_bits(nk.simulate_unconstrained(s, eps), numpy_paths(np.zeros((4, n)), eps))
    rounded = nk.simulate_unconstrained(s, d.shocks, np.empty((n, T, 3), dtype=np.float32))
    assert np.array_equal(rounded, numpy_paths(np.zeros((4, n)), d.shocks).astype(np.float32))
    state = np.random.default_rng(2).standard_normal((n, 4))
    free = numpy_paths(state.T / 400.0, np.zeros((n, T, 3)))
    assert same_bits(nk.free_unconstrained(s, state, T), free)
    irfs = nk.irfs_unconstrained(s, 12)
    for j in range(3):
        impulse = np.zeros((n, 13, 3))
        impulse[:, 0, j] = 1.0
        assert same_bits(np.ascontiguousarray(irfs[:, j]), numpy_paths(np.zeros((4, n)), impulse))


def test_rbc_states_equal_the_numpy_recursion_bit_for_bit():
    from macro_data.worlds.recursions import rbc_states

    rng = np.random.default_rng(9)
    T, m = 50, 333
    rho_a, rho_b, p_a, p_b, p_k = rng.uniform(-1, 1, (5, m))
    shock_a, shock_b = rng.standard_normal((2, T, m))
    a, b, k = np.empty((T, m)), np.empty((T, m)), np.empty((T + 1, m))
    a[0], b[0], k[0] = shock_a[0], shock_b[0], rng.standard_normal(m)
    want_a, want_b, want_k = a.copy(), b.copy(), k.copy()
    for t in range(T):
        if t > 0:
            want_a[t] = rho_a * want_a[t - 1] + shock_a[t]
            want_b[t] = rho_b * want_b[t - 1] + shock_b[t]
        want_k[t + 1] = p_a * want_a[t] + p_b * want_b[t] + p_k * want_k[t]
    rbc_states(rho_a, rho_b, p_a, p_b, p_k, shock_a, shock_b, a, b, k)
    assert same_bits(a, want_a) and same_bits(b, want_b) and same_bits(k, want_k)


def numpy_rbc_observables(co, a, b, k, c_prev):
    """rbc's former numpy code: the static block on ``(T, m)`` arrays, the observables ``(7, T, m)``."""
    f_a, f_b, f_k, alpha, gamma, labour, c_y, i_y, R, rho_a, rho_b = co

    def static(a, b, k):
        c = f_a * a + f_b * b + f_k * k
        n = (a + alpha * k - gamma * c) * labour
        y = a + alpha * k + (1.0 - alpha) * n
        inv = (y - c_y * c) / i_y
        return c, n, y, inv

    T = a.shape[0]
    kt, k1 = k[:T], k[1:]
    out = np.empty((7, T, a.shape[1]))
    c, n, y, inv = static(a, b, kt)
    _, _, ey1, _ = static(rho_a * a, rho_b * b, k1)
    np.multiply(100.0, y, out=out[0])
    out[1, 0] = c[0] if c_prev is None else c[0] - c_prev
    np.subtract(c[1:], c[:-1], out=out[1, 1:])
    out[1] *= 400.0
    np.subtract(ey1, k1, out=out[2])
    out[2] *= R
    out[2] *= 400.0
    np.multiply(100.0, c, out=out[3])
    np.multiply(100.0, inv, out=out[4])
    np.multiply(100.0, n, out=out[5])
    np.multiply(100.0, kt, out=out[6])
    return out


@pytest.mark.parametrize("from_state", [False, True])
def test_rbc_observables_equal_the_numpy_static_block_bit_for_bit(from_state):
    """Output, inflation, rate and the extras from the states, as the numpy code made them: sums left
    to right, ``a + alpha k`` shared, inflation ``(c[t] - c[t-1]) 400`` with ``c[-1]`` zero from the
    steady state (``c[0] 400`` in the numpy code) or given; NaN, infinities and signed zeros kept."""
    from macro_data.worlds.recursions import rbc_observables

    rng = np.random.default_rng(12)
    T, m = 40, 301
    co = list(rng.uniform(-2, 2, (11, m)))
    co[7] = rng.uniform(0.1, 0.4, m)  # i_y: a divisor, as in the model (zero and NaN rows below)
    a, b = rng.standard_normal((2, T, m))
    k = rng.standard_normal((T + 1, m))
    a[0, :4] = [np.nan, np.inf, -0.0, 0.0]
    b[3, 4:8] = [-np.inf, -0.0, np.nan, 1e308]
    k[0, 8:10] = [-0.0, np.nan]
    k[5, 10] = np.inf
    co[7][11], co[7][12] = 0.0, np.nan
    c_prev = rng.standard_normal(m) if from_state else None
    head, tail = np.empty((m, T, 3)), np.empty((m, T, 4))
    with np.errstate(all="ignore"):
        want = numpy_rbc_observables(co, a, b, k, c_prev)
    rbc_observables(*co, a, b, k, np.zeros(m) if c_prev is None else c_prev, head, tail)
    assert same_bits(head, want[:3].transpose(2, 1, 0))
    assert same_bits(tail, want[3:].transpose(2, 1, 0))
    assert np.isnan(head[0]).any() and np.isinf(tail).any()
    assert tail[8, 0, 3] == 0.0 and np.signbit(tail[8, 0, 3])  # 100 k[0] of a -0.0 capital


def test_switching_expected_irfs_equal_the_numpy_recursion_bit_for_bit():
    """The expected IRFs ``m_j(h) = A_j sum_i P[i, j] m_i(h-1)``, ``x = sum_j m_j``, ``y = C x``, as the
    numpy formulation computed them (products summed in order of the inner index)."""
    from macro_data.worlds import switching
    from macro_data.worlds.sampling import draw_range

    world = switching.WORLD
    d = draw_range(world, 3, 0, 500, 10)
    H = 15

    def matmul_last(X, Y):
        Z = X[:, 0, None, :] * Y[None, 0]
        for b in range(1, X.shape[1]):
            Z = Z + X[:, b, None, :] * Y[None, b]
        return Z

    def numpy_expected(theta, pi):
        A, B = world.regime_matrices(theta)
        P = samples_last(world.transition(theta))
        A_l = np.moveaxis(A, 0, -1)
        m = np.moveaxis(B, 0, -1) * pi[:, None, None, :]
        x = [m[0] + m[1]]
        for _ in range(H):
            mixed = [P[0, j] * m[0] + P[1, j] * m[1] for j in range(2)]
            m = np.stack([matmul_last(A_l[j], mixed[j]) for j in range(2)])
            x.append(m[0] + m[1])
        x = np.stack(x)  # (H + 1, 3, S, n)
        C = switching.C_OBS
        y = C[None, :, 0, None, None] * x[:, None, 0]
        for b in range(1, 3):
            y = y + C[None, :, b, None, None] * x[:, None, b]
        return np.ascontiguousarray(y.transpose(3, 2, 0, 1))

    stationary = samples_last(world.stationary(d.theta))
    assert same_bits(world.irfs(d.theta, H), numpy_expected(d.theta, stationary))
    conditional = world.conditional_irfs(d.theta, H)
    for r in range(2):
        pi = np.zeros((2, 500))
        pi[r] = 1.0
        assert same_bits(np.ascontiguousarray(conditional[:, r]), numpy_expected(d.theta, pi))


def numpy_characteristic_polynomial(coefs):
    import itertools

    n, p, k, _ = coefs.shape
    E = np.zeros((n, k, k, p + 1))
    E[:, :, :, 1:] = -coefs.transpose(0, 2, 3, 1)
    E[:, np.arange(k), np.arange(k), 0] = 1.0
    det = np.zeros((n, k * p + 1))
    for perm in itertools.permutations(range(k)):
        inversions = sum(perm[a] > perm[b] for a in range(k) for b in range(a + 1, k))
        term = E[:, 0, perm[0]]
        for a in range(1, k):
            b = E[:, a, perm[a]]
            out = np.zeros((n, term.shape[1] + b.shape[1] - 1))
            for i in range(term.shape[1]):
                out[:, i : i + b.shape[1]] += term[:, i, None] * b
            term = out
        det += (-1.0 if inversions % 2 else 1.0) * term
    return det


def numpy_roots_inside(poly, radius):
    n, d1 = poly.shape
    d = d1 - 1
    R = np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,))
    a = np.empty((n, d))
    Ri = R.copy()
    for i in range(d):
        a[:, i] = poly[:, i + 1] / Ri
        Ri = Ri * R
    ok = np.ones(n, dtype=bool)
    for j in range(d, 0, -1):
        k = a[:, j - 1]
        ok &= np.abs(k) < 1.0
        denom = np.where(ok, 1.0 - k * k, 1.0)
        head = a[:, : j - 1]
        a = (head - k[:, None] * head[:, ::-1]) / denom[:, None]
        a[~ok] = 0.0
    return ok


@pytest.mark.parametrize("p,k", [(1, 3), (2, 3), (4, 3), (2, 2), (1, 1)])
def test_var_stability_test_equals_the_numpy_formulation_and_the_eigenvalues(p, k):
    from macro_data.worlds.statespace import characteristic_polynomial, companion, roots_inside

    rng = np.random.default_rng(10 * p + k)
    n = 2000
    coefs = rng.standard_normal((n, p, k, k)) * rng.uniform(0.05, 0.7, (n, 1, 1, 1))
    coefs[0] = np.nan
    poly = characteristic_polynomial(coefs)
    with np.errstate(invalid="ignore"):
        assert same_bits(poly, numpy_characteristic_polynomial(coefs))
        radii = [1.0, 0.6, rng.uniform(0.2, 1.4, n)]
        for r in radii:
            assert np.array_equal(roots_inside(poly, r), numpy_roots_inside(poly, r))
    # an independent reference: the companion matrix's eigenvalues (away from the circle's edge)
    rho = np.abs(np.linalg.eigvals(companion(coefs[1:]))).max(axis=1)
    for r in (1.0, 0.6):
        clear = np.abs(rho - r) > 1e-6
        assert np.array_equal(roots_inside(poly[1:], r)[clear], (rho < r)[clear])
        assert not roots_inside(poly[:1], r)[0]  # NaN coefficients are never inside
