"""Batched linear algebra shared by the state-space worlds (lss, var, switching).

The worlds solve, for every draw at once,

* the distributed-lag recursion ``x[t] = sum_{l=1..p} A_l x[t-l] + u[t]`` from ``x[t<0] = 0``
  (lss: ``p = 1``; var: ``p = 4`` with zero padding), with ``u[t] = B eps[t]``;
* the regime-switching recursion ``x[t] = A_{r[t]} x[t-1] + B_{r[t]} eps[t]``;
* the observation ``y[t] = C x[t]``;
* impulse responses as the same recursion driven by ``u[0] = B`` (columns = shocks), i.e. the
  moving-average coefficients ``Psi_h B`` (``C A^h B`` for ``p = 1``);
* second moments: the second-moment operator of a Markov-switching system and its stationary
  point, and the discrete Lyapunov equation ``S = A S A' + Q`` as its one-regime case.

Layout: the recursions keep the sample axis **last** (``(..., n)``) and multiply matrices by
explicit elementwise products ``M[:, b] * x[b]`` summed in an order fixed by the matrix shape
alone (sequential, or the halving tree of :func:`macro_data.worlds.recursions.tree_rows`). Each
sample's result is then produced by the same sequence of IEEE operations whatever the batch size
(the time recursions run compiled, in :mod:`macro_data.worlds.recursions`); matmul/einsum/
reductions are avoided because their summation order (BLAS kernels, pairwise summation,
contraction paths) may depend on array sizes and memory layout. LAPACK calls (``eigvals``,
``qr``, ``solve``) run one matrix at a time, so they are batch-independent as well.
"""

from __future__ import annotations

import itertools

import numpy as np

ROW_CHUNK = 1024  # samples per pass of the time recursions (cache-sized working set)


# ---- layout -------------------------------------------------------------------------------
def samples_last(x: np.ndarray) -> np.ndarray:
    """``(n, ...)`` -> contiguous ``(..., n)``.

    Parameters
    ----------
    x : ndarray, shape (n, ...)

    Returns
    -------
    ndarray, shape (..., n)
        C-contiguous copy (the sample axis moved last).
    """
    return np.ascontiguousarray(np.moveaxis(x, 0, -1))


def samples_first(x: np.ndarray) -> np.ndarray:
    """``(..., n)`` -> contiguous ``(n, ...)``.

    Parameters
    ----------
    x : ndarray, shape (..., n)

    Returns
    -------
    ndarray, shape (n, ...)
        C-contiguous copy (the sample axis moved first).
    """
    return np.ascontiguousarray(np.moveaxis(x, -1, 0))


def each_sample(x, n: int) -> np.ndarray:
    """``x`` with its last (sample) axis broadcast to ``n`` (a scalar becomes ``(n,)``), as a contiguous
    float64 array: the per-sample arguments of the compiled recursions
    (:mod:`macro_data.worlds.recursions`), e.g. an observation matrix ``(q, k, 1)`` shared by all samples.

    Parameters
    ----------
    x : array_like, shape (..., n) or (..., 1)
    n : int

    Returns
    -------
    ndarray of float64, shape (..., n)
    """
    x = np.asarray(x, dtype=np.float64)
    return np.ascontiguousarray(np.broadcast_to(x, (*x.shape[:-1], n)))


# ---- matrix products, samples last ------------------------------------------------------------
def matmul_first(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``Z[i] = X[i] @ Y[i]`` for ``X (n, a, b)``, ``Y (n, b, c)`` (samples first), summing in order b = 0, 1, ...

    Parameters
    ----------
    X : ndarray, shape (n, a, b)
    Y : ndarray, shape (n, b, c)

    Returns
    -------
    ndarray, shape (n, a, c)
    """
    Z = X[:, :, 0, None] * Y[:, None, 0, :]
    for b in range(1, X.shape[2]):
        Z += X[:, :, b, None] * Y[:, None, b, :]
    return Z


def observe(C: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``y[t] = C x[t]`` for ``C (q, k, n)`` (or ``(q, k, 1)``) and ``x (T, k, m, n)`` -> ``(T, q, m, n)``.

    Parameters
    ----------
    C : ndarray, shape (q, k, n) or (q, k, 1)
        Observation matrices, samples last (``1``: shared by every sample).
    x : ndarray, shape (T, k, m, n)
        States; ``m`` columns driven together.

    Returns
    -------
    ndarray of float64, shape (T, q, m, n)
    """
    T, k, m, n = x.shape
    y = np.empty((T, C.shape[0], m, n))
    tmp = np.empty_like(y)
    np.multiply(C[None, :, 0, None, :], x[:, None, 0], out=y)
    for b in range(1, k):
        np.multiply(C[None, :, b, None, :], x[:, None, b], out=tmp)
        y += tmp
    return y


def stacked_lags(coefs: np.ndarray) -> np.ndarray:
    """``coefs (p, k, k, n)`` -> ``M (k, p k, n)`` with row ``a`` = ``[A_p[a, :], .., A_1[a, :]]``.

    Lag ``p`` comes first so that ``M`` multiplies the history ``x[t-p], .., x[t-1]`` stored as a
    contiguous slice of a time-major buffer (no per-step copy).

    Parameters
    ----------
    coefs : ndarray, shape (p, k, k, n)
        ``A_1 .. A_p``, samples last.

    Returns
    -------
    ndarray, shape (k, p * k, n)
        C-contiguous.
    """
    p, k, _, n = coefs.shape
    return np.ascontiguousarray(coefs[::-1].transpose(1, 0, 2, 3).reshape(k, p * k, n))


def lag_recursion(coefs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``x[t] = u[t] + sum_{l=1..p} A_l x[t-l]`` from ``x[t<0] = 0``.

    ``coefs (p, k, k, n)`` holds ``A_1 .. A_p``; ``u (T, k, m, n)`` (``m`` = columns driven
    together, one per shock for IRFs). Returns ``x (T, k, m, n)``. Each step adds to ``u[t]`` the
    products ``A_l[:, b] x[t-l][b]`` (``l = p..1``, ``b = 0..k-1``) summed by the fixed tree of
    :func:`macro_data.worlds.recursions.tree_rows`.

    Parameters
    ----------
    coefs : ndarray, shape (p, k, k, n)
        ``A_1 .. A_p``, samples last.
    u : ndarray, shape (T, k, m, n)
        Driving terms.

    Returns
    -------
    ndarray of float64, shape (T, k, m, n)
        The states ``x[0] .. x[T-1]``.
    """
    from macro_data.worlds import recursions  # numba: imported by the processes that simulate

    p, k = coefs.shape[0], coefs.shape[1]
    T, _, m, n = u.shape
    X = np.zeros((m, T + p, k, n))  # X[:, t + p] = x[t]; the first p periods are the zero pre-sample
    recursions.lag_responses(stacked_lags(coefs), np.ascontiguousarray(np.moveaxis(u, 2, 0), dtype=np.float64), X)
    return np.moveaxis(X[:, p:], 0, 2)


def simulate_lags(
    coefs: np.ndarray, B: np.ndarray, C: np.ndarray | None, eps: np.ndarray, history: np.ndarray | None = None
) -> np.ndarray:
    """Trajectories ``(n, T, q)`` of ``x[t] = sum_{l=1..p} A_l x[t-l] + B eps[t]``, ``y = C x`` from ``x[t<0] = 0``
    (or from the given ``history``).

    ``coefs (p, k, k, n)``, ``B (k, S, n)``, ``C (q, k, n)`` (``None``: ``y = x``), ``eps (n, T, S)``.
    Per step: ``x[t] = (sum_j B[:, j] eps[t, j]) + (sum_{l, b} A_l[:, b] x[t-l][b])`` and
    ``y[t] = sum_b C[:, b] x[t][b]``, each sum by the fixed tree of
    :func:`macro_data.worlds.recursions.tree_rows` (compiled: :func:`~macro_data.worlds.recursions.lag_paths`).

    Parameters
    ----------
    coefs : ndarray, shape (p, k, k, n)
        Lag matrices ``A_1 .. A_p``, samples last.
    B : ndarray, shape (k, S, n)
        Shock loadings.
    C : ndarray, shape (q, k, n) or (q, k, 1), or None
        Observation matrices; ``None``: the states themselves are returned (``q = k``).
    eps : ndarray, shape (n, T, S)
        Innovations, samples first.
    history : ndarray, shape (p, k, n), optional
        The pre-sample ``x[-p] .. x[-1]`` (``history[i] = x[i - p]``), samples last; ``None``: zeros
        (the steady state).

    Returns
    -------
    ndarray of float64, shape (n, T, q)
    """
    from macro_data.worlds import recursions  # numba: imported by the processes that simulate

    p, k = coefs.shape[0], coefs.shape[1]
    n, T, _ = eps.shape
    X = np.zeros((T + p, k, n))
    if history is not None:
        X[:p] = history
    C = np.zeros((0, k, n)) if C is None else each_sample(C, n)
    y = np.empty((T, C.shape[0], n))
    B = np.ascontiguousarray(B, dtype=np.float64)
    recursions.lag_paths(stacked_lags(coefs), B, C, samples_last(np.asarray(eps, dtype=np.float64)), X, y)
    return samples_first(X[p:] if C.shape[0] == 0 else y)


def simulate_switching(A: np.ndarray, B: np.ndarray, C: np.ndarray, eps: np.ndarray, regime: np.ndarray) -> np.ndarray:
    """Trajectories ``(n, T, q)`` of ``x[t] = A_{r[t]} x[t-1] + B_{r[t]} eps[t]``, ``y = C x``, ``x[-1] = 0``.

    ``A (R, k, k, n)``, ``B (R, k, S, n)``, ``C (q, k, n)`` or ``(q, k, 1)``, ``eps (n, T, S)``,
    ``regime (n, T)`` integers in ``0..R-1``. Same fixed summation order as :func:`simulate_lags`
    (compiled: :func:`~macro_data.worlds.recursions.switching_paths`).

    Parameters
    ----------
    A : ndarray, shape (R, k, k, n)
        Transition matrix of each regime, samples last.
    B : ndarray, shape (R, k, S, n)
        Shock loadings of each regime.
    C : ndarray, shape (q, k, n) or (q, k, 1)
        Observation matrices (the same in every regime).
    eps : ndarray, shape (n, T, S)
        Innovations, samples first.
    regime : ndarray of int, shape (n, T)
        The regime ``r[t]`` of each sample and period.

    Returns
    -------
    ndarray of float64, shape (n, T, q)
    """
    from macro_data.worlds import recursions  # numba: imported by the processes that simulate

    n, T, _ = eps.shape
    y = np.empty((T, C.shape[0], n))
    recursions.switching_paths(
        np.ascontiguousarray(A, dtype=np.float64),
        np.ascontiguousarray(B, dtype=np.float64),
        each_sample(C, n),
        samples_last(np.asarray(eps, dtype=np.float64)),
        samples_last(np.asarray(regime, dtype=np.int64)),
        y,
    )
    return samples_first(y)


def irfs_lags(coefs: np.ndarray, B: np.ndarray, C: np.ndarray | None, H: int) -> np.ndarray:
    """IRFs ``(n, S, H+1, q)``: ``y_h = C Psi_h B`` with ``Psi_0 = I``, ``Psi_h = sum_l A_l Psi_{h-l}``.

    Parameters
    ----------
    coefs : ndarray, shape (p, k, k, n)
        Lag matrices ``A_1 .. A_p``, samples last.
    B : ndarray, shape (k, S, n)
        Shock loadings (the impact of a one-unit innovation of each shock).
    C : ndarray, shape (q, k, n) or (q, k, 1), or None
        Observation matrices; ``None``: responses of the states (``q = k``).
    H : int
        Last horizon, ``>= 0``.

    Returns
    -------
    ndarray of float64, shape (n, S, H + 1, q)
        ``[i, j, h, a]``: response of observable ``a`` at horizon ``h`` to shock ``j`` of sample ``i``.
    """
    k, S, n = B.shape
    u = np.zeros((H + 1, k, S, n))
    u[0] = B
    x = lag_recursion(coefs, u)
    y = x if C is None else observe(C, x)  # (H+1, q, S, n)
    return np.ascontiguousarray(y.transpose(3, 2, 0, 1))


# ---- random matrices and spectra -----------------------------------------------------------------
def haar_orthogonal(G: np.ndarray) -> np.ndarray:
    """Haar-distributed orthogonal matrices from standard-normal ``G (n, k, k)``.

    ``G = QR`` with the signs fixed so that ``diag(R) > 0`` (Mezzadri 2007), which makes ``Q``
    uniform on O(k) rather than biased by the QR convention.

    Parameters
    ----------
    G : ndarray, shape (n, k, k)
        Independent standard normals.

    Returns
    -------
    ndarray of float64, shape (n, k, k)
        Orthogonal matrices.
    """
    Q, R = np.linalg.qr(G)
    d = np.sign(np.diagonal(R, axis1=-2, axis2=-1))
    d[d == 0] = 1.0
    return Q * d[:, None, :]


def spectral_radius(M: np.ndarray) -> np.ndarray:
    """``max |eig(M)|`` for ``M (n, k, k)`` (one LAPACK call per matrix).

    Parameters
    ----------
    M : ndarray, shape (n, k, k)

    Returns
    -------
    ndarray of float64, shape (n,)
        Empty for ``n = 0``.
    """
    if M.shape[0] == 0:
        return np.zeros(0)
    return np.max(np.abs(np.linalg.eigvals(M)), axis=-1)


def companion(coefs: np.ndarray) -> np.ndarray:
    """Companion matrices ``(n, k p, k p)`` of ``coefs (n, p, k, k)`` = ``A_1 .. A_p``.

    ``F = [[A_1, A_2, .., A_p], [I, 0, .., 0], .., [0, .., I, 0]]``; the VAR(p) is stable iff the
    spectral radius of ``F`` is below one, and scaling ``A_l`` by ``c^l`` scales every eigenvalue of
    ``F`` by ``c``.

    Parameters
    ----------
    coefs : ndarray, shape (n, p, k, k)
        ``A_1 .. A_p`` of each draw, samples first.

    Returns
    -------
    ndarray of float64, shape (n, k * p, k * p)
    """
    n, p, k, _ = coefs.shape
    F = np.zeros((n, k * p, k * p))
    F[:, :k, :] = coefs.transpose(0, 2, 1, 3).reshape(n, k, k * p)
    if p > 1:
        F[:, k:, : k * (p - 1)] = np.eye(k * (p - 1))
    return F


def companion_spectral_radius(coefs: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Spectral radius of each draw's companion matrix using only its first ``order[i]`` lags.

    ``coefs (n, p_max, k, k)``; draws are grouped by lag order so a VAR(1) costs a ``k x k``
    eigenproblem, not a ``k p_max`` one. Group membership does not change a draw's result.

    Parameters
    ----------
    coefs : ndarray, shape (n, p_max, k, k)
        Lag matrices, samples first.
    order : array_like of int, shape (n,)
        Lag order of each draw, ``1 .. p_max``.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    order = np.asarray(order).astype(int)
    out = np.full(coefs.shape[0], np.nan)
    for p in np.unique(order):
        idx = np.flatnonzero(order == p)
        out[idx] = spectral_radius(companion(coefs[idx, :p]))
    return out


def characteristic_polynomial(coefs: np.ndarray) -> np.ndarray:
    """``det(z^p I - A_1 z^(p-1) - .. - A_p)`` for ``coefs (n, p, k, k)``: ``(n, k p + 1)``, highest power first.

    Its roots are the eigenvalues of the companion matrix. Computed by the Leibniz formula with
    polynomial entries (``k!`` terms; ``k = 3`` here), exactly monic.

    Parameters
    ----------
    coefs : ndarray, shape (n, p, k, k)
        ``A_1 .. A_p`` of each draw.

    Returns
    -------
    ndarray of float64, shape (n, k * p + 1)
        Coefficients, highest power first; column 0 is 1.
    """
    from macro_data.worlds.recursions import leibniz_determinants  # numba: imported by the processes that draw

    n, p, k, _ = coefs.shape
    E = np.zeros((n, k, k, p + 1))  # E[:, a, b, l] = coefficient of z^(p-l) in entry (a, b)
    E[:, :, :, 1:] = -coefs.transpose(0, 2, 3, 1)
    E[:, np.arange(k), np.arange(k), 0] = 1.0
    perms = np.array(list(itertools.permutations(range(k))), dtype=np.int64).reshape(-1, k)
    inversions = [sum(q[a] > q[b] for a in range(k) for b in range(a + 1, k)) for q in perms]
    signs = np.array([-1.0 if v % 2 else 1.0 for v in inversions])
    det = np.zeros((n, k * p + 1))
    leibniz_determinants(E, perms, signs, det)
    return det


def roots_inside(poly: np.ndarray, radius: np.ndarray | float) -> np.ndarray:
    """``(n,) bool``: every root of the monic ``poly (n, d+1)`` (highest power first) has ``|z| < radius``.

    Schur-Cohn test by the step-down (Levinson) recursion on ``f(R z) / R^d = z^d + sum_i a_i z^(d-i)``:
    reflection coefficient ``k = a_d``, then ``a_i <- (a_i - k a_(j-i)) / (1 - k^2)``; all roots lie
    strictly inside the circle iff every ``|k| < 1``. Elementwise over draws, so cheap and
    batch-independent; an eigenvalue-free check of stability.

    Parameters
    ----------
    poly : ndarray, shape (n, d + 1)
        Monic polynomials, highest power first (e.g. :func:`characteristic_polynomial`).
    radius : float or ndarray, shape (n,)
        Radius of the circle, ``> 0``.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    from macro_data.worlds.recursions import schur_cohn  # numba: imported by the processes that draw

    n = poly.shape[0]
    ok = np.empty(n, dtype=bool)
    R = np.ascontiguousarray(np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,)))
    schur_cohn(np.ascontiguousarray(poly, dtype=np.float64), R, ok)
    return ok


# ---- second moments -------------------------------------------------------------------------------
def second_moment_operator(A: np.ndarray, P: np.ndarray) -> np.ndarray:
    """The second-moment operator of ``x[t] = A_{r[t]} x[t-1] + ...`` with regime transition ``P``.

    ``A (n, R, k, k)``, ``P (n, R, R)`` with ``P[i, j] = Pr(r[t] = j | r[t-1] = i)``. With
    ``Q_j(t) = E[x[t] x[t]' 1{r[t] = j}]`` and row-major ``vec``,
    ``vec Q_j(t) = sum_i P[i, j] (A_j kron A_j) vec Q_i(t-1) + (innovation term)``, so the operator is
    the ``(R k^2) x (R k^2)`` block matrix with block ``(j, i) = P[i, j] (A_j kron A_j)``. The system
    is mean-square stable iff its spectral radius is below one (Costa, Fragoso and Marques 2005).

    Parameters
    ----------
    A : ndarray, shape (n, R, k, k)
        Transition matrix of each regime, samples first.
    P : ndarray, shape (n, R, R)
        Regime transition probabilities, rows summing to one.

    Returns
    -------
    ndarray of float64, shape (n, R * k * k, R * k * k)
    """
    n, R, k, _ = A.shape
    flat = A.reshape(n, R, k * k)
    outer = flat[:, :, :, None] * flat[:, :, None, :]  # [(a, c), (b, d)] = A_ac A_bd
    kron = outer.reshape(n, R, k, k, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, R, k * k, k * k)
    T = np.empty((n, R, k * k, R, k * k))
    for j in range(R):
        for i in range(R):
            np.multiply(P[:, i, j, None, None], kron[:, j], out=T[:, j, :, i, :])
    return T.reshape(n, R * k * k, R * k * k)


def stationary_second_moments(A: np.ndarray, P: np.ndarray, pi: np.ndarray, BBt: np.ndarray) -> np.ndarray:
    """Stationary ``Q_j = E[x x' 1{r = j}]``, ``(n, R, k, k)``, of a mean-square stable switching system.

    Solves ``(I - T) vec Q = q`` with ``T`` from :func:`second_moment_operator` and
    ``q_j = pi_j vec(B_j B_j')`` (``pi`` the stationary regime distribution ``(n, R)``,
    ``BBt (n, R, k, k)``). With one regime this is the discrete Lyapunov equation
    ``S = A S A' + B B'``.

    Parameters
    ----------
    A : ndarray, shape (n, R, k, k)
        Transition matrix of each regime.
    P : ndarray, shape (n, R, R)
        Regime transition probabilities.
    pi : ndarray, shape (n, R)
        Stationary regime distribution.
    BBt : ndarray, shape (n, R, k, k)
        ``B_j B_j'`` of each regime.

    Returns
    -------
    ndarray of float64, shape (n, R, k, k)

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``I - T`` is exactly singular for some draw (not mean-square stable).
    """
    n, R, k, _ = A.shape
    T = second_moment_operator(A, P)
    q = (pi[:, :, None, None] * BBt).reshape(n, R * k * k, 1)
    M = np.eye(R * k * k) - T
    return np.linalg.solve(M, q).reshape(n, R, k, k)


def by_rows(fn, n: int, size: int = ROW_CHUNK) -> np.ndarray:
    """``concatenate([fn(lo, hi) for row ranges of at most size])``: keeps the per-step arrays of the
    recursions cache-sized (~2x faster than one 4096-sample pass). Rows are independent, so the
    result does not depend on ``size``.

    Parameters
    ----------
    fn : callable
        ``fn(lo, hi)`` returning an array whose first axis has ``hi - lo`` rows.
    n : int
        Number of rows.
    size : int, optional
        Rows per call.

    Returns
    -------
    ndarray
        The parts concatenated along the first axis, ``n`` rows.
    """
    return np.concatenate([fn(lo, min(n, lo + size)) for lo in range(0, max(n, 1), size)])


def chunked(fn, theta: np.ndarray, size: int = 2048) -> tuple[np.ndarray, ...]:
    """``fn(theta)`` (returning a tuple of per-draw arrays) applied to row chunks and concatenated.

    Bounds the memory of the per-draw linear systems; every draw's result is computed on its own,
    so chunking does not change it.

    Parameters
    ----------
    fn : callable
        ``fn(theta_rows)`` returning a tuple of arrays, each with one row per draw.
    theta : ndarray, shape (n, P)
        Parameter vectors.
    size : int, optional
        Draws per call.

    Returns
    -------
    tuple of ndarray
        The parts of each tuple entry concatenated along the first axis, ``n`` rows each.
    """
    parts = [fn(theta[i : i + size]) for i in range(0, max(theta.shape[0], 1), size)]
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))


def autocorrelation_and_sd(G0: np.ndarray, G1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean first-order autocorrelation and mean standard deviation of the observables.

    ``G0 = E[y_t y_t']``, ``G1 = E[y_t y_{t-1}']``, each ``(n, q, q)``; returns
    ``(mean_i G1_ii / G0_ii, mean_i sqrt(G0_ii))``, the corner summaries of the state-space worlds.

    Parameters
    ----------
    G0 : ndarray, shape (n, q, q)
        Contemporaneous second moments of the observables.
    G1 : ndarray, shape (n, q, q)
        First-order autocovariances.

    Returns
    -------
    autocorrelation : ndarray of float64, shape (n,)
        Mean over observables of the first-order autocorrelation.
    sd : ndarray of float64, shape (n,)
        Mean over observables of the standard deviation, in the observables' units.
    """
    q = G0.shape[1]
    g0 = np.diagonal(G0, axis1=1, axis2=2)
    g1 = np.diagonal(G1, axis1=1, axis2=2)
    rho = g1[:, 0] / g0[:, 0]
    sd = np.sqrt(g0[:, 0])
    for i in range(1, q):
        rho = rho + g1[:, i] / g0[:, i]
        sd = sd + np.sqrt(g0[:, i])
    return rho / q, sd / q
