"""Batched linear rational-expectations solver (Blanchard-Kahn via left eigenvectors).

Model, for every draw ``d`` of a batch::

    A E_t z[t+1] = B z[t],      z = [k; u],

``k`` (the first ``n_pre`` entries) predetermined, ``u`` (the other ``n_jump = m - n_pre``)
jumps. With ``A`` invertible, ``E_t z[t+1] = M z[t]`` with ``M = A^{-1} B``. For every
eigenvalue ``lambda`` of ``M`` with ``|lambda| > 1`` and left eigenvector ``w``
(``w' M = lambda w'``), ``w' E_t z[t+j] = lambda^j w' z[t]``, so a bounded solution needs
``w' z[t] = 0``. Stacking the unstable left eigenvectors ``W = [W_k, W_u]``::

    u[t]       = F k[t],     F = -W_u^{-1} W_k
    E_t k[t+1] = P k[t],     P = M_kk + M_ku F

Blanchard-Kahn: the solution is unique and stable ("determinate") iff the number of unstable
roots equals ``n_jump``, no root lies within ``tol`` of the unit circle, and ``W_u`` is
invertible (rank condition). Draws failing this get ``determinate=False`` and NaN ``F``/``P``;
the solver never raises for them because rejection sampling relies on the flag.

Everything is batched over the leading axis: one ``np.linalg.eig`` / ``np.linalg.solve`` call
for all draws (LAPACK per matrix, so each draw's result does not depend on the batch it is in).
Small matrix products use :func:`bmatmul`, an explicit multiply-accumulate over the inner
dimension, because ``np.matmul``/``einsum`` may pick BLAS or a different summation order
depending on the batch's size and memory layout, which would break bit-identity across batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from macro_data.errors import WorldError

# Rank condition: W_u counts as singular below this reciprocal condition number.
RCOND_MIN = 1e-10


@dataclass
class RESolution:
    F: np.ndarray  # (n, m - n_pre, n_pre): jumps u[t] = F k[t]
    P: np.ndarray  # (n, n_pre, n_pre): E_t k[t+1] = P k[t]  (the world adds its own shock loading)
    determinate: np.ndarray  # (n,) bool: unique stable solution (Blanchard-Kahn count met, no root near 1)
    n_unstable: np.ndarray  # (n,) int: eigenvalues with modulus > 1


def bmatmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``a @ b`` over the last two axes, summing the inner dimension in a fixed order.

    Element-wise numpy arithmetic only, so row ``d`` of the result is bit-identical whatever the
    batch size or memory layout (``np.matmul`` may switch between BLAS and its own loop).

    Parameters
    ----------
    a : array_like, shape (..., p, q)
    b : array_like, shape (..., q, r)
        Leading axes broadcast against each other.

    Returns
    -------
    ndarray, shape (..., p, r)

    Raises
    ------
    ValueError
        If the inner dimensions ``q`` differ.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"bmatmul: inner dimensions differ: {a.shape} @ {b.shape}")
    out = a[..., :, 0:1] * b[..., 0:1, :]
    for j in range(1, a.shape[-1]):
        out = out + a[..., :, j : j + 1] * b[..., j : j + 1, :]
    return out


def solve_re(A: np.ndarray, B: np.ndarray, n_pre: int, *, tol: float = 1e-8) -> RESolution:
    """Batched model ``A E_t z[t+1] = B z[t]``, ``z = [k (first n_pre, predetermined); u (jumps)]``.

    ``A``, ``B``: ``(n, m, m)`` float64 with ``A`` invertible for every draw (a draw whose ``A``
    is numerically singular is reported as not determinate). Returns :class:`RESolution` with
    real ``F (n, m - n_pre, n_pre)`` and ``P (n, n_pre, n_pre)``; rows that are not determinate
    (wrong number of unstable roots, a root with ``| |lambda| - 1 | <= tol``, or a singular
    ``W_u``) hold NaN and ``determinate=False``.

    Parameters
    ----------
    A, B : array_like, shape (n, m, m)
        The structural matrices of every draw (converted to float64), finite.
    n_pre : int
        Number of predetermined variables, ``0 <= n_pre <= m``.
    tol : float, optional
        Distance of a root's modulus from 1 below which the draw is not determinate.

    Returns
    -------
    RESolution
        ``F (n, m - n_pre, n_pre)``, ``P (n, n_pre, n_pre)`` float64, ``determinate (n,)`` bool and
        ``n_unstable (n,)`` int64.

    Raises
    ------
    WorldError
        If ``A`` and ``B`` are not both ``(n, m, m)``, ``n_pre`` is not an integer in ``[0, m]``, or
        a draw's ``A`` or ``B`` is not finite. Indeterminate draws never raise.
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if A.ndim != 3 or A.shape[1] != A.shape[2] or B.shape != A.shape:
        raise WorldError(f"solve_re: A and B must both have shape (n, m, m); got {A.shape} and {B.shape}")
    n, m, _ = A.shape
    if isinstance(n_pre, bool) or not isinstance(n_pre, (int, np.integer)) or not 0 <= n_pre <= m:
        raise WorldError(f"solve_re: n_pre must be an integer in [0, {m}]; got {n_pre!r}")
    n_pre = int(n_pre)
    n_jump = m - n_pre
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        d = int(np.flatnonzero(~(np.isfinite(A).all(axis=(1, 2)) & np.isfinite(B).all(axis=(1, 2))))[0])
        raise WorldError(f"solve_re: A or B of draw {d} is not finite")

    F = np.full((n, n_jump, n_pre), np.nan)
    P = np.full((n, n_pre, n_pre), np.nan)
    if n == 0:
        return RESolution(F, P, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64))

    # A singular A would make LAPACK raise for the whole batch; such draws get A = I and are
    # flagged afterwards.
    try:
        M = np.linalg.solve(A, B)
        a_ok = np.all(np.isfinite(M), axis=(1, 2))
    except np.linalg.LinAlgError:
        a_ok = 1.0 / np.linalg.cond(A) > RCOND_MIN
        M = np.linalg.solve(np.where(a_ok[:, None, None], A, np.eye(m)), B)
    M = np.where(a_ok[:, None, None], M, 0.0)

    # Right eigenvectors of M' are the left eigenvectors of M.
    lam, V = np.linalg.eig(np.swapaxes(M, 1, 2))
    lam = lam.astype(np.complex128)
    V = V.astype(np.complex128)
    mod = np.abs(lam)
    n_unstable = np.sum(mod > 1.0, axis=1)
    determinate = a_ok & (n_unstable == n_jump) & np.all(np.abs(mod - 1.0) > tol, axis=1)

    if determinate.any() and n_jump == 0:
        P[determinate] = M[determinate]
    elif determinate.any():
        # For a determinate draw the n_jump largest moduli are exactly the unstable roots, and
        # complex pairs (equal moduli) are never split. Stable sort keeps ties deterministic.
        order = np.argsort(-mod, axis=1, kind="stable")[:, :n_jump]
        W = np.take_along_axis(V, order[:, None, :], axis=2)  # (n, m, n_jump): columns are w
        W = np.swapaxes(W, 1, 2)  # (n, n_jump, m): rows are w'
        Wk, Wu = W[:, :, :n_pre], W[:, :, n_pre:]
        # Rank condition of Blanchard-Kahn: W_u must be invertible.
        sv = np.linalg.svd(Wu, compute_uv=False)
        wu_ok = sv[:, -1] > RCOND_MIN * sv[:, 0]
        determinate &= wu_ok
        Wu_use = np.where(determinate[:, None, None], Wu, np.eye(n_jump))
        Fc = -np.linalg.solve(Wu_use, Wk)
        Fr = Fc.real
        Pr = M[:, :n_pre, :n_pre] + bmatmul(M[:, :n_pre, n_pre:], Fr)
        F[determinate] = Fr[determinate]
        P[determinate] = Pr[determinate]
    return RESolution(F=F, P=P, determinate=determinate, n_unstable=n_unstable.astype(np.int64))


__all__ = ["RESolution", "bmatmul", "solve_re", "RCOND_MIN"]
