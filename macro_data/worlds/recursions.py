"""The worlds' time recursions, compiled (numba): those of :mod:`macro_data.worlds.statespace`
(lss, var, switching), switching's expected IRFs, rbc's state recursion and observables, and nk's
unconstrained paths; and var's stability test (its characteristic polynomial and Schur-Cohn recursion).

Each function makes, for every sample, exactly the IEEE double operations of the numpy
formulation it replaced, in the same order: the state-space products ``M[a, c] * v[c]`` summed by
the fixed halving tree of :func:`tree_rows` (the innovation term first, the lag term added to it),
the other sums left to right, as each docstring states. Only the loops differ: one pass over the
periods with no temporaries and no numpy call per period (the numpy version made about 90,000
calls per 100,000 lss samples). Compiled without fast-math (see :mod:`macro_data.worlds.compiled`);
the tests compare every function with the numpy formulation, bit for bit.

Shapes are in each function's docstring. The state-space recursions keep the layout of
:mod:`macro_data.worlds.statespace` (parameters samples last, ``(..., n)``, periods first), so
their innermost loops run over contiguous samples; the per-draw kernels loop over draws outside.
"""

from __future__ import annotations

import numpy as np

from macro_data.worlds.compiled import compiled


@compiled
def tree_rows(P, w):
    """``P[0] = sum_c P[c]`` over rows ``c < w`` by the halving tree: rows ``c`` and ``c + w//2``
    added, an odd last row folded into row 0, until one row is left (overwrites ``P``). The order
    depends on ``w`` only; the innermost loop runs over samples."""
    n = P.shape[1]
    while w > 1:
        h = w // 2
        for c in range(h):
            for i in range(n):
                P[c, i] = P[c, i] + P[c + h, i]
        if w % 2:
            for i in range(n):
                P[0, i] = P[0, i] + P[2 * h, i]
        w = h


@compiled
def dot_rows(U, V, P):
    """``P[0] = sum_c U[c] * V[c]`` over the rows of ``U, V (w, n)``, summed by :func:`tree_rows`
    with its first level done as the products are made (``U[c] V[c] + U[c + h] V[c + h]``, then
    an odd last product added to row 0): the same operations, half the stores. ``P`` has at least
    ``max(w // 2, 1)`` rows."""
    w, n = V.shape
    h = w // 2
    for c in range(h):
        for i in range(n):
            P[c, i] = U[c, i] * V[c, i] + U[c + h, i] * V[c + h, i]
    if w % 2:
        for i in range(n):
            last = U[2 * h, i] * V[2 * h, i]
            P[0, i] = P[0, i] + last if h else last
    tree_rows(P, max(h, 1))


@compiled
def lag_paths(M, B, C, e, X, y):
    """``x[t] = B eps[t] + M (x[t-p]; ..; x[t-1])`` and ``y[t] = C x[t]``, in place.

    ``M (k, p k, n)`` (row ``a`` = ``[A_p[a], .., A_1[a]]``), ``B (k, S, n)``, ``e (T, S, n)``,
    ``X (T + p, k, n)`` with the pre-sample in ``X[:p]`` (``X[t + p] = x[t]`` is written),
    ``C (q, k, n)`` and ``y (T, q, n)`` (``q = 0``: no observation).
    """
    k, pk, n = M.shape
    p = pk // k
    PA = np.empty((max(pk // 2, 1), n))
    PB = np.empty((max(B.shape[1] // 2, 1), n))
    PC = np.empty((max(k // 2, 1), n))
    for t in range(e.shape[0]):
        lags = X[t : t + p].reshape(pk, n)
        for a in range(k):
            dot_rows(B[a], e[t], PB)
            dot_rows(M[a], lags, PA)
            for i in range(n):
                X[t + p, a, i] = PB[0, i] + PA[0, i]
        for a in range(C.shape[0]):
            dot_rows(C[a], X[t + p], PC)
            for i in range(n):
                y[t, a, i] = PC[0, i]


@compiled
def lag_responses(M, u, X):
    """``x[t] = u[t] + M (x[t-p]; ..; x[t-1])`` from ``X[:, :p] = 0``, in place, for each column.

    ``M (k, p k, n)``, ``u (m, T, k, n)`` (``m`` columns, e.g. one per shock), ``X (m, T + p, k, n)``.
    """
    k, pk, n = M.shape
    p = pk // k
    m, T = u.shape[0], u.shape[1]
    PA = np.empty((max(pk // 2, 1), n))
    for j in range(m):
        for t in range(T):
            lags = X[j, t : t + p].reshape(pk, n)
            for a in range(k):
                dot_rows(M[a], lags, PA)
                for i in range(n):
                    X[j, t + p, a, i] = u[j, t, a, i] + PA[0, i]


@compiled
def switching_paths(A, B, C, e, r, y):
    """``x[t] = B_r eps[t] + A_r x[t-1]`` with ``r = r[t]``, ``x[-1] = 0``, and ``y[t] = C x[t]``.

    ``A (R, k, k, n)``, ``B (R, k, S, n)``, ``C (q, k, n)``, ``e (T, S, n)``, ``r (T, n)``,
    ``y (T, q, n)`` written. A regime outside ``1 .. R-1`` reads regime 0's matrices, as the
    numpy selection did.
    """
    R, k, _, n = A.shape
    S = B.shape[2]
    x = np.zeros((k, n))
    xn = np.empty((k, n))
    At = np.empty((k, k, n))
    Bt = np.empty((k, S, n))
    PA = np.empty((max(k // 2, 1), n))
    PB = np.empty((max(S // 2, 1), n))
    for t in range(e.shape[0]):
        for a in range(k):  # each sample's matrices for its regime at t
            for b in range(k):
                for i in range(n):
                    At[a, b, i] = A[r[t, i] if 1 <= r[t, i] < R else 0, a, b, i]
            for s in range(S):
                for i in range(n):
                    Bt[a, s, i] = B[r[t, i] if 1 <= r[t, i] < R else 0, a, s, i]
        for a in range(k):
            dot_rows(Bt[a], e[t], PB)
            dot_rows(At[a], x, PA)
            for i in range(n):
                xn[a, i] = PB[0, i] + PA[0, i]
        for a in range(k):  # explicit loops: a slice assignment here took numba about 6 s more to compile
            for i in range(n):
                x[a, i] = xn[a, i]
        for a in range(C.shape[0]):
            dot_rows(C[a], x, PA)
            for i in range(n):
                y[t, a, i] = PA[0, i]


@compiled
def rbc_states(rho_a, rho_b, p_a, p_b, p_k, shock_a, shock_b, a, b, k):
    """rbc's states, in place: ``a[t] = rho_a a[t-1] + shock_a[t]`` (likewise ``b``) for ``t >= 1``
    (``a[0]``, ``b[0]`` and ``k[0]`` given) and ``k[t+1] = (p_a a[t] + p_b b[t]) + p_k k[t]``.

    Coefficients ``(m,)``; ``shock_a, shock_b, a, b (T, m)``; ``k (T + 1, m)``.
    """
    T, m = shock_a.shape
    for t in range(T):
        if t > 0:
            for i in range(m):
                a[t, i] = rho_a[i] * a[t - 1, i] + shock_a[t, i]
                b[t, i] = rho_b[i] * b[t - 1, i] + shock_b[t, i]
        for i in range(m):
            k[t + 1, i] = (p_a[i] * a[t, i] + p_b[i] * b[t, i]) + p_k[i] * k[t, i]


@compiled
def rbc_observables(f_a, f_b, f_k, alpha, gamma, labour, c_y, i_y, R, rho_a, rho_b, a, b, k, c_prev, head, tail):
    """rbc's observables from its states, one sample at a time, written samples first. The static
    block at a state ``(a, b, k)``::

        c = (f_a a + f_b b) + f_k k,   n = ((a + alpha k) - gamma c) labour,
        y = (a + alpha k) + (1 - alpha) n,   inv = (y - c_y c) / i_y

    at ``(a[t], b[t], k[t])`` gives ``c, n, y, inv`` and at ``(rho_a a[t], rho_b b[t], k[t+1])`` the
    expected output ``ey``. ``head[j, t] = (100 y, (c[t] - c[t-1]) 400, ((ey - k[t+1]) R) 400)`` with
    ``c[-1] = c_prev[j]`` (zero from the steady state); ``tail[j, t] = 100 (c, inv, n, k[t])``.

    Coefficients and ``c_prev`` ``(m,)``; ``a, b (T, m)``, ``k (T + 1, m)`` (:func:`rbc_states`);
    ``head (m, T, 3)``, ``tail (m, T, 4)``.
    """
    T, m = a.shape
    for j in range(m):
        c_last = c_prev[j]
        fa, fb, fk, al, ga, la = f_a[j], f_b[j], f_k[j], alpha[j], gamma[j], labour[j]
        for t in range(T):
            at, bt, kt, k1 = a[t, j], b[t, j], k[t, j], k[t + 1, j]
            c = (fa * at + fb * bt) + fk * kt
            ak = at + al * kt
            n = (ak - ga * c) * la
            y = ak + (1.0 - al) * n
            inv = (y - c_y[j] * c) / i_y[j]
            ea = rho_a[j] * at
            ec = (fa * ea + fb * (rho_b[j] * bt)) + fk * k1
            eak = ea + al * k1
            ey = eak + (1.0 - al) * ((eak - ga * ec) * la)
            head[j, t, 0] = 100.0 * y
            head[j, t, 1] = (c - c_last) * 400.0
            head[j, t, 2] = ((ey - k1) * R[j]) * 400.0
            tail[j, t, 0] = 100.0 * c
            tail[j, t, 1] = 100.0 * inv
            tail[j, t, 2] = 100.0 * n
            tail[j, t, 3] = 100.0 * kt
            c_last = c


@compiled
def nk_paths(rho, sd, Fx, Fpi, rho_i, c_x, c_pi, start, eps, out):
    """nk's unconstrained paths in canonical units, one sample at a time, in place::

        v = rho_m v + sd_m e_m,   rn = rho_r rn + sd_r e_r,   u = rho_u u + sd_u e_u
        x = Fx_i i + Fx_v v + Fx_rn rn + Fx_u u,   pi = (the same with Fpi)
        i = rho_i i + c_x x + c_pi pi + v,   out[t] = (100 x, 400 pi, 400 i)

    (sums left to right, as :func:`macro_data.worlds.nk.exog_step`, ``jumps`` and ``taylor``).
    ``rho, sd (3, m)``, ``Fx, Fpi (4, m)``, ``rho_i, c_x, c_pi (m,)``; ``start (4, m)`` is
    ``(i, v, rn, u)`` entering period 0 (model units); ``eps (m, T, 3)``; ``out (m, T, 3)``
    (float64, or float32: each value rounded once).
    """
    m, T, _ = eps.shape
    for j in range(m):
        i, v, rn, u = start[0, j], start[1, j], start[2, j], start[3, j]
        for t in range(T):
            v = rho[0, j] * v + sd[0, j] * eps[j, t, 0]
            rn = rho[1, j] * rn + sd[1, j] * eps[j, t, 1]
            u = rho[2, j] * u + sd[2, j] * eps[j, t, 2]
            x = Fx[0, j] * i + Fx[1, j] * v + Fx[2, j] * rn + Fx[3, j] * u
            pi = Fpi[0, j] * i + Fpi[1, j] * v + Fpi[2, j] * rn + Fpi[3, j] * u
            i = rho_i[j] * i + c_x[j] * x + c_pi[j] * pi + v
            out[j, t, 0] = x * 100.0
            out[j, t, 1] = pi * 400.0
            out[j, t, 2] = i * 400.0


@compiled
def expected_responses(A, P, m0, C, out):
    """switching's expected IRFs, one draw at a time, into ``out (n, S, H + 1, q)``::

        m_j(0) = pi_j B_j (given as m0),   m_j(h) = A_j sum_i P[i, j] m_i(h-1)
        x(h) = sum_j m_j(h),   out[:, :, h] = C x(h)

    Sums over regimes run left to right, products ``A_j Y`` and ``C x`` over their inner index in
    order (the numpy formulation's ``matmul_last`` and ``observe``). ``A (R, k, k, n)``,
    ``P (R, R, n)`` (``P[i, j] = Pr(j | i)``), ``m0 (R, k, S, n)``, ``C (q, k)``.
    """
    R, k, _, n = A.shape
    S = m0.shape[2]
    H1 = out.shape[2]
    q = C.shape[0]
    m = np.empty((R, k, S))
    mixed = np.empty((R, k, S))
    x = np.empty((k, S))
    for i in range(n):
        for h in range(H1):
            if h == 0:
                for r in range(R):
                    for a in range(k):
                        for s in range(S):
                            m[r, a, s] = m0[r, a, s, i]
            else:
                for j in range(R):
                    for a in range(k):
                        for s in range(S):
                            acc = P[0, j, i] * m[0, a, s]
                            for r in range(1, R):
                                acc = acc + P[r, j, i] * m[r, a, s]
                            mixed[j, a, s] = acc
                for j in range(R):
                    for a in range(k):
                        for s in range(S):
                            acc = A[j, a, 0, i] * mixed[j, 0, s]
                            for b in range(1, k):
                                acc = acc + A[j, a, b, i] * mixed[j, b, s]
                            m[j, a, s] = acc
            for a in range(k):
                for s in range(S):
                    acc = m[0, a, s]
                    for r in range(1, R):
                        acc = acc + m[r, a, s]
                    x[a, s] = acc
            for c in range(q):
                for s in range(S):
                    acc = C[c, 0] * x[0, s]
                    for b in range(1, k):
                        acc = acc + C[c, b] * x[b, s]
                    out[i, s, h, c] = acc


@compiled
def leibniz_determinants(E, perms, signs, det):
    """``det[i] += sum_q signs[q] prod_a E[i, a, perms[q, a]]`` with polynomial entries, in place.

    ``E (n, k, k, p + 1)``: each entry's coefficients, highest power first; ``perms (P, k)`` the
    permutations of ``0 .. k-1`` and ``signs (P,)`` theirs; ``det (n, k p + 1)`` (zeros on entry).
    A product ``a b`` of polynomials adds ``a[u] b[v]`` into coefficient ``u + v`` for ``u`` then
    ``v`` ascending, from zeros; the terms are added to ``det`` in the order of ``perms``.
    """
    n, k, _, p1 = E.shape
    D = det.shape[1]
    term = np.empty(D)
    prod = np.empty(D)
    for i in range(n):
        for q in range(perms.shape[0]):
            length = p1
            for c in range(p1):
                term[c] = E[i, 0, perms[q, 0], c]
            for a in range(1, k):
                grown = length + p1 - 1
                for c in range(grown):
                    prod[c] = 0.0
                for u in range(length):
                    for v in range(p1):
                        prod[u + v] = prod[u + v] + term[u] * E[i, a, perms[q, a], v]
                for c in range(grown):
                    term[c] = prod[c]
                length = grown
            for c in range(D):
                det[i, c] = det[i, c] + signs[q] * term[c]


@compiled
def schur_cohn(poly, radius, ok):
    """``ok[i]``: every root of the monic ``poly[i]`` (highest power first) has ``|z| < radius[i]``.

    The step-down recursion on ``a_c = poly[c + 1] / R^(c+1)`` (powers by repeated multiplication):
    reflection coefficient ``k = a_(j-1)``, then ``a_c <- (a_c - k a_(j-2-c)) / (1 - k^2)`` for
    ``j = d .. 1``; inside iff every ``|k| < 1`` (a NaN fails).
    """
    n, d1 = poly.shape
    d = d1 - 1
    a = np.empty(d)
    head = np.empty(d)
    for i in range(n):
        R = radius[i]
        power = R
        for c in range(d):
            a[c] = poly[i, c + 1] / power
            power = power * R
        inside = True
        for j in range(d, 0, -1):
            k = a[j - 1]
            if not abs(k) < 1.0:
                inside = False
                break
            denom = 1.0 - k * k
            for c in range(j - 1):
                head[c] = a[c]
            for c in range(j - 1):
                a[c] = (head[c] - k * head[j - 2 - c]) / denom
        ok[i] = inside
