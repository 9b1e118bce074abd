"""Batched solution of linear rational-expectations models (many parameter draws at once).

Canonical form, for every draw (``n`` equations in ``n`` variables ``z``, ``S`` shocks)::

    A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0

with the steady state at zero. The unique stable (Blanchard-Kahn) solution is the policy

    z[t] = P z_L[t-1] + Q eps[t]

where ``z_L`` are the *lagged* variables (written ``x(-1)`` somewhere). The classes of variables
and the exogenous/core split come from the model's structure (:mod:`.structure`): *static* (no
lead, no lag), *lead* ``F``, *lag* ``L``, *mixed* (both); the *exogenous* part is the purely
backward blocks the rest of the model (the *core*) takes as given.

Method (every step batched over draws; per-draw LAPACK calls and element-wise numpy only):

0. **Exogenous part** (shock processes, their lags and static functions of them): no
   expectations, so ``x[t] = Px x_L[t-1] + Qx eps[t]`` with ``Px = -B_XX^{-1} C_XL``,
   ``Qx = -B_XX^{-1} D_X``; its transition ``Phi = Px[x_L]`` is block-triangular by blocks, and
   every root (eigenvalue of a diagonal block) must lie inside the unit circle by
   :data:`UNIT_ROOT_TOL`. Taking it out keeps the expensive pencil of step 3 small.
1. **Static elimination** in the core (as in Dynare). With ``B_S = Q [R; 0]`` the QR factorization
   of the current-period columns of the static variables, the last ``n - n_S`` rows of
   ``Q' (A, B, C)`` are free of static variables: a square *dynamic* system. A singular ``R``
   (static variables not determined) marks the draw invalid.
2. **First-order pencil** in ``w[t] = [z_L[t-1]; z_F[t]]`` (predetermined first, then jumps),
   of size ``m = n_L + n_F``::

       Dm E_t w[t+1] = Em w[t],   Dm = [[B_dL, A_dF], [I_mixed, 0]],   Em = -[[C_dL, B_d,fw], [0, -I_mixed]]

   (``d``: dynamic rows; ``fw``: lead variables that are not lagged; one identity row per mixed
   variable links its two copies). ``Dm`` may be singular (a forward variable whose lead appears in
   fewer equations than there are such variables): those generalized eigenvalues are infinite.
3. **Stable/unstable split by the matrix sign function** instead of a QZ decomposition, which
   numpy does not batch. The Cayley transform ``N = (Em + Dm)^{-1} (Em - Dm)`` maps a generalized
   eigenvalue ``l`` (``Em v = l Dm v``) to ``(l - 1) / (l + 1)``: inside the unit circle to the
   open left half-plane, outside (and infinite: ``+1``) to the right. The scaled Newton iteration
   ``X <- (mu X + (mu X)^{-1}) / 2`` (determinant scaling first, then
   ``mu = sqrt(|X^{-1}|_F / |X|_F)`` while the step is large) converges quadratically to
   ``sign(N)``, and ``Pi = (I + sign(N)) / 2`` is the spectral projector onto the unstable right
   deflating subspace. It needs no eigenvectors, so repeated or defective roots (lag chains,
   several infinite roots) are no problem. Each draw stops when its own relative step falls below
   :data:`SIGN_CONVERGED`; a draw that has not converged after :data:`SIGN_MAX_STEPS` steps has a
   root on (or numerically on) the unit circle and is invalid.
4. **Blanchard-Kahn.** The number of unstable roots is ``trace(Pi)``; it must equal ``n_F`` (one
   per jump). A bounded solution lies in the stable subspace, ``Pi w = 0``, i.e.
   ``Pi_F z_F[t] = -Pi_L z_L[t-1]``: with the QR factorization ``Pi_F = Q_u R_u``,
   ``F = -R_u^{-1} Q_u' Pi_L``. ``Pi_F`` must have full column rank (the rank condition; it is
   equivalent to Klein's ``Z11`` being invertible). The state transition ``P_L`` solves the
   consistent system ``Dm [I; F] P_L = Em [I; F]`` (QR again).
5. **The core policy.** Rows ``P_L`` for lagged variables and ``F`` for the other lead variables;
   the static rows solve ``B_S P_S = -(A_F F_L P_L + B_dyn P_dyn + C_L)`` with the QR of step 1.
   With ``M = B + A_F P_F S_L`` (the impact matrix; ``S_L`` selects ``z_L[t]`` from ``z[t]``), the
   loading on the exogenous state solves the Sylvester equation

       M Pzx + A Pzx Phi = -(A_ZX Px Phi + B_ZX Px + C_ZX)

   block by block of ``Phi`` (downstream blocks first; a Kronecker system per block), and the shock
   loading ``M Qz = -(A Pzx Qx_L + A_ZX Px Qx_L + B_ZX Qx + D_Z)``.
6. **Verification.** The residuals of the whole model, ``A P P_L + B P + C_L`` and
   ``A P_F Q_L + B Q + D``, must be at rounding level relative to the size of their terms, or
   below :data:`RESIDUAL_FLOOR` times the size of the coefficients (:func:`accurate`); otherwise
   the draw is invalid. The floor is for a policy that is exactly zero, as when no lag enters any
   equation for the draw: its terms are then rounding noise themselves, and so is their sum.

Draws failing any step get ``valid = False``, NaN policies and a problem code
(:data:`PROBLEMS`); the solver never raises for them, since rejection sampling relies on the flag.
Matrix products sum in a fixed order (:func:`macro_data.worlds.linear_re.bmatmul`, or over the
structural non-zeros only) and LAPACK runs one matrix at a time, so a draw's result does not
depend on the batch it is in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from macro_data.worlds.declared.structure import Structure
from macro_data.worlds.linear_re import bmatmul

RCOND_MIN = 1e-10  # triangular factors with |r_ii| below this times the largest count as singular
SIGN_MAX_STEPS = 80
SIGN_SCALED_UNTIL = 1e-2  # norm scaling while the relative Newton step exceeds this
SIGN_CONVERGED = 1e-9  # quadratic convergence: the iterate after such a step is at rounding level
TRACE_TOL = 1e-6  # trace(Pi) must be this close to an integer
RESIDUAL_TOL = 1e-9  # relative residual of the solved equations
RESIDUAL_FLOOR = 64 * np.finfo(np.float64).eps  # residual at rounding level of the coefficients themselves
UNIT_ROOT_TOL = 1e-8  # roots of the exogenous part must satisfy |l| < 1 - UNIT_ROOT_TOL

(
    OK,
    NON_FINITE,
    STATIC_SINGULAR,
    NO_CONVERGENCE,
    BK_COUNT,
    BK_RANK,
    IMPACT_SINGULAR,
    INACCURATE,
    EXOGENOUS_UNSTABLE,
) = range(9)
PROBLEMS = {
    OK: "unique stable solution",
    NON_FINITE: "a coefficient is not finite for this draw (e.g. the log of a negative number or a division by zero)",
    STATIC_SINGULAR: "the static variables are not determined (their current-period coefficients are singular)",
    NO_CONVERGENCE: "no unique stable solution: a root on or numerically on the unit circle, or a singular model",
    BK_COUNT: "no unique stable solution: the number of unstable roots differs from the number of "
    "forward-looking variables (Blanchard-Kahn)",
    BK_RANK: "no unique stable solution: the Blanchard-Kahn rank condition fails",
    IMPACT_SINGULAR: "the impact matrix of the shocks (or of the exogenous processes) is singular",
    INACCURATE: "the solution does not satisfy the equations to rounding accuracy",
    EXOGENOUS_UNSTABLE: "a purely backward-looking block (e.g. a shock process) has a root on or outside the "
    "unit circle",
}


@dataclass
class Policy:
    """``z[t] = P z_L[t-1] + Q eps[t]`` for every draw; NaN where ``valid`` is False."""

    P: np.ndarray  # (k, n, n_L)
    Q: np.ndarray  # (k, n, S)
    valid: np.ndarray  # (k,) bool
    problem: np.ndarray  # (k,) int8, a key of PROBLEMS
    n_unstable: np.ndarray  # (k,) int, unstable roots counted (-1 where not reached)
    lagged: tuple[int, ...]  # the variables z_L, in column order of P

    def describe_problem(self, i: int) -> str:
        text = PROBLEMS[int(self.problem[i])]
        if self.problem[i] in (BK_COUNT, EXOGENOUS_UNSTABLE):
            text += f" ({int(self.n_unstable[i])} unstable roots)"
        return text


def _frob(X: np.ndarray) -> np.ndarray:
    """Frobenius norm of each matrix of ``X (k, a, b)`` (per draw; reduces a contiguous row)."""
    X = np.ascontiguousarray(X)
    return np.sqrt(np.sum((X * X).reshape(X.shape[0], X.shape[1] * X.shape[2]), axis=1))


def accurate(terms: tuple[np.ndarray, ...], coefficients: tuple[np.ndarray, ...]) -> np.ndarray:
    """``(k,) bool``: the sum of ``terms`` (each ``(k, a, b)``) vanishes to rounding accuracy, relative to
    the terms (:data:`RESIDUAL_TOL`) or to the ``coefficients`` they are made of (:data:`RESIDUAL_FLOOR`).

    The second bound decides only when the terms are small next to the coefficients (below
    ``RESIDUAL_FLOOR / RESIDUAL_TOL``, about 1.4e-5, of their size), and then admits a residual at
    rounding level of the coefficients. That is the case of an exactly zero policy computed with
    rounding noise (say 1e-17): its terms are of that size, and their sum is no smaller, so a bound
    relative to the terms alone would reject the exact answer.
    """
    residual = _frob(sum(terms[1:], terms[0]))
    size = sum(_frob(t) for t in terms)
    scale = sum(_frob(c) for c in coefficients)
    return (residual <= RESIDUAL_TOL * size) | (residual <= RESIDUAL_FLOOR * scale)


def _regular(M: np.ndarray) -> np.ndarray:
    """``(k,) bool``: LAPACK's LU of ``M`` has no exactly zero pivot (so solve/inv will not raise)."""
    det = np.linalg.det(M)
    return np.isfinite(det) & (det != 0.0)


def _solve(M: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``M^{-1} R`` per draw; NaN for draws whose ``M`` is exactly singular (numpy would raise for all)."""
    try:
        return np.linalg.solve(M, R)
    except np.linalg.LinAlgError:
        ok = _regular(M)
        X = np.linalg.solve(np.where(ok[:, None, None], M, np.eye(M.shape[-1])), R)
        X[~ok] = np.nan
        return X


def _inv(M: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(M)
    except np.linalg.LinAlgError:
        ok = _regular(M)
        X = np.linalg.inv(np.where(ok[:, None, None], M, np.eye(M.shape[-1])))
        X[~ok] = np.nan
        return X


def _eigvals(M: np.ndarray) -> np.ndarray:
    """Eigenvalues per draw; NaN for a draw whose QR algorithm fails (numpy would raise for all)."""
    try:
        return np.linalg.eigvals(M)
    except np.linalg.LinAlgError:
        out = np.full(M.shape[:2], np.nan, dtype=complex)
        for d in range(M.shape[0]):  # only after a failure: find the draw(s) at fault
            try:
                out[d] = np.linalg.eigvals(M[d])
            except np.linalg.LinAlgError:
                pass
        return out


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``a @ b`` in a fixed summation order (:func:`bmatmul`), also for empty inner dimensions."""
    if a.shape[-1] == 0 or 0 in a.shape or 0 in b.shape:
        return np.zeros(a.shape[:-1] + b.shape[-1:])
    return bmatmul(a, b)


def _mm_sparse_left(M: np.ndarray, support: list[list[int]], R: np.ndarray) -> np.ndarray:
    """``M @ R`` for ``M (k, a, b)`` whose column ``j`` is non-zero only in rows ``support[j]``,
    summed over ``j`` in order (element-wise, so batch-independent)."""
    out = np.zeros((M.shape[0], M.shape[1], R.shape[-1]))
    for j, rows in enumerate(support):
        if len(rows) == M.shape[1]:
            out += M[:, :, j, None] * R[:, None, j, :]
        elif rows:
            out[:, rows, :] += M[:, rows, j, None] * R[:, None, j, :]
    return out


def _mm_sparse_right(L: np.ndarray, R: np.ndarray, support: list[list[int]]) -> np.ndarray:
    """``L @ R`` for ``R (k, b, c)`` whose row ``j`` is non-zero only in columns ``support[j]``."""
    out = np.zeros((L.shape[0], L.shape[1], R.shape[-1]))
    for j, cols in enumerate(support):
        if len(cols) == R.shape[-1]:
            out += L[:, :, j, None] * R[:, None, j, :]
        elif cols:
            out[:, :, cols] += L[:, :, j, None] * R[:, None, j, cols]
    return out


def _T(X: np.ndarray) -> np.ndarray:
    return np.swapaxes(X, -1, -2)


def _triangular_ok(R: np.ndarray) -> np.ndarray:
    """``(k,) bool``: the square upper-triangular ``R`` is numerically non-singular."""
    if R.shape[-1] == 0:
        return np.ones(R.shape[0], dtype=bool)
    d = np.abs(np.diagonal(R, axis1=-2, axis2=-1))
    return np.isfinite(d).all(axis=1) & (d.min(axis=1) > RCOND_MIN * d.max(axis=1))


def _least_squares(M: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``X`` with ``M X = R`` for a consistent system with ``M (k, a, b)`` of full column rank ``b <= a``,
    by QR; and ``(k,) bool``: full column rank."""
    if M.shape[-1] == 0:
        return np.zeros(M.shape[:1] + (0, R.shape[-1])), np.ones(M.shape[0], dtype=bool)
    Qm, Rm = np.linalg.qr(M)
    ok = _triangular_ok(Rm)
    X = _solve(np.where(ok[:, None, None], Rm, np.eye(Rm.shape[-1])), _mm(_T(Qm), R))
    return X, ok


def sign_function(N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sign(N), converged)`` for ``N (k, m, m)`` by the scaled Newton iteration (module docstring).

    Each draw iterates until its own relative step is below :data:`SIGN_CONVERGED`, so its result
    does not depend on the other draws of the batch.
    """
    k, m, _ = N.shape
    X = np.array(N, dtype=np.float64, copy=True)
    converged = np.zeros(k, dtype=bool)
    scaled = np.ones(k, dtype=bool)
    active = np.flatnonzero(np.isfinite(X).all(axis=(1, 2)))
    with np.errstate(all="ignore"):
        for step_number in range(SIGN_MAX_STEPS):
            if active.size == 0:
                break
            whole = active.size == k  # no gather/scatter copies while every draw is still iterating
            Xa = X if whole else X[active]
            Xi = _inv(Xa)
            if step_number == 0:  # determinant scaling: centres the spectrum's geometric mean on 1
                mu = np.abs(np.linalg.det(Xa)) ** (-1.0 / m)
            else:  # Frobenius-norm scaling, which needs only the inverse at hand
                mu = np.where(scaled[active], np.sqrt(_frob(Xi) / _frob(Xa)), 1.0)
            mu = np.where(np.isfinite(mu) & (mu > 0), mu, 1.0)[:, None, None]
            Xn = 0.5 * (mu * Xa + Xi / mu)
            step = _frob(Xn - Xa) / _frob(Xn)
            if whole:
                X = Xn
            else:
                X[active] = Xn
            scaled[active[step <= SIGN_SCALED_UNTIL]] = False
            done = step <= SIGN_CONVERGED
            converged[active[done]] = True
            active = active[~done & np.isfinite(step)]
    return X, converged


class _Batch:
    """The draws still being solved (``idx`` into the whole batch) with their working arrays.

    :meth:`keep` gives the failing draws a problem code and narrows every array to the others,
    so each later step only sees draws that passed (and never depends on the others).
    """

    def __init__(self, problem: np.ndarray, n_unstable: np.ndarray, idx: np.ndarray, arrays: dict):
        self.problem, self.n_unstable, self.idx, self.w = problem, n_unstable, idx, arrays

    def __getitem__(self, key: str) -> np.ndarray:
        return self.w[key]

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        self.w[key] = value

    @property
    def size(self) -> int:
        return self.idx.size

    def keep(self, ok: np.ndarray, code: int) -> None:
        if ok.all():
            return
        self.problem[self.idx[~ok]] = code
        self.idx = self.idx[ok]
        for key in self.w:
            self.w[key] = self.w[key][ok]


def _exogenous(b: _Batch, st: Structure, X: list[int], EX: list[int], XL: list[int]) -> None:
    """Step 0: ``Px (k, nX, nXL)``, ``Qx (k, nX, S)``, ``Phi (k, nXL, nXL)``; roots inside the circle."""
    Bxx = b["B"][:, EX][:, :, X]
    Px, Qx = -_solve(Bxx, b["C"][:, EX][:, :, XL]), -_solve(Bxx, b["D"][:, EX])
    # exact zeros where the block structure puts them (LU pivoting may leave rounding noise there)
    support = st.exogenous_support()
    for i, v in enumerate(X):
        lagged, shocks = support[v]
        Px[:, i, [j for j, u in enumerate(XL) if u not in lagged]] = 0.0
        if shocks is not None:
            Qx[:, i, [s for s in range(Qx.shape[2]) if s not in shocks]] = 0.0
    b["Px"], b["Qx"] = Px, Qx
    b.keep(np.isfinite(b["Px"]).all(axis=(1, 2)) & np.isfinite(b["Qx"]).all(axis=(1, 2)), STATIC_SINGULAR)
    xpos = {v: i for i, v in enumerate(X)}
    b["Phi"] = b["Px"][:, [xpos[v] for v in XL], :]
    lpos = {v: j for j, v in enumerate(XL)}
    unstable = np.zeros(b.size, dtype=np.int64)
    margin_ok = np.ones(b.size, dtype=bool)
    for variables, _ in st.exogenous_blocks:  # Phi is block-triangular: its roots are the blocks' roots
        cols = [lpos[v] for v in variables if v in lpos]
        if not cols:
            continue
        block = b["Phi"][:, cols][:, :, cols]
        mod = np.abs(block[:, 0, 0]) if len(cols) == 1 else np.abs(_eigvals(block))
        mod = mod.reshape(b.size, -1)
        unstable += np.sum(mod >= 1.0, axis=1)
        margin_ok &= np.all(mod < 1.0 - UNIT_ROOT_TOL, axis=1)
    b.n_unstable[b.idx] = unstable
    b.keep(margin_ok, EXOGENOUS_UNSTABLE)


def _core(b: _Batch, st: Structure, prefix: str) -> None:
    """Steps 1-5 (without shocks) for the core subsystem ``b[prefix + "A"|"B"|"C"]`` with structure ``st``:
    sets ``b[prefix + "P"] (k, n, n_L)`` and the impact matrix ``b[prefix + "M"] (k, n, n)``."""
    A, B, C = (prefix + x for x in "ABC")
    n = st.n
    lead, lag = list(st.lead), list(st.lag)
    static, dynamic = list(st.static), list(st.dynamic)
    nL, nF, nS = len(lag), len(lead), len(static)
    mixed = [v for v in lead if v in lag]
    fw = [v for v in lead if v not in lag]
    a_lead = st.support(0, lead, "column")  # rows (equations) of each lead column of A
    b_dyn = st.support(1, dynamic, "column")

    # 1. Static elimination: the last n - n_S rows of Q' (A, B, C) are the dynamic system.
    if nS:
        Qs, Rs = np.linalg.qr(b[B][:, :, static], mode="complete")
        b["Qs"], b["R1"] = Qs, Rs[:, :nS, :]
        b.keep(_triangular_ok(b["R1"]), STATIC_SINGULAR)
        Qt2 = _T(b["Qs"])[:, nS:, :]
        # only the columns the pencil reads (leads of A, lags of C, dynamic columns of B),
        # skipping their structural zeros
        Ad = _mm_sparse_right(Qt2, b[A][:, :, lead], st.support(0, lead, "row"))
        Bd = _mm_sparse_right(Qt2, b[B][:, :, dynamic], st.support(1, dynamic, "row"))
        Cd = _mm_sparse_right(Qt2, b[C][:, :, lag], st.support(2, lag, "row"))
    else:
        Ad, Bd, Cd = b[A][:, :, lead], b[B][:, :, dynamic], b[C][:, :, lag]
    nd = n - nS
    col = {v: j for j, v in enumerate(dynamic)}  # column of a dynamic variable in Bd

    # 2. The pencil Dm E_t w[t+1] = Em w[t], w[t] = [z_L[t-1]; z_F[t]].
    m = nL + nF
    Dm = np.zeros((b.size, m, m))
    Em = np.zeros((b.size, m, m))
    Dm[:, :nd, :nL] = Bd[:, :, [col[v] for v in lag]]
    Dm[:, :nd, nL:] = Ad
    Em[:, :nd, :nL] = -Cd
    for v in fw:
        Em[:, :nd, nL + lead.index(v)] = -Bd[:, :, col[v]]
    for r, v in enumerate(mixed):
        Dm[:, nd + r, lag.index(v)] = 1.0
        Em[:, nd + r, nL + lead.index(v)] = 1.0
    b["Dm"], b["Em"] = Dm, Em

    # 3. Unstable projector Pi from the sign function of the Cayley transform; Blanchard-Kahn count.
    if m:
        sign, converged = sign_function(_solve(Em + Dm, Em - Dm))
        b["Pi"] = 0.5 * (np.eye(m) + sign)
        b.keep(converged, NO_CONVERGENCE)
        trace = np.trace(b["Pi"], axis1=1, axis2=2)
        count = np.rint(trace)
        integral = np.abs(trace - count) <= TRACE_TOL * m
        b.n_unstable[b.idx[integral]] += count[integral].astype(np.int64)
        b.keep(integral, NO_CONVERGENCE)
        b.keep(np.rint(np.trace(b["Pi"], axis1=1, axis2=2)) == nF, BK_COUNT)

    # 4. Jumps z_F[t] = F z_L[t-1] from Pi_F F = -Pi_L (rank condition), then P_L.
    if nF and nL:
        F, ok = _least_squares(b["Pi"][:, :, nL:], -b["Pi"][:, :, :nL])
        ok &= np.isfinite(F).all(axis=(1, 2))
    else:
        F, ok = np.zeros((b.size, nF, nL)), np.ones(b.size, dtype=bool)
    b["F"] = F
    b.keep(ok, BK_RANK)
    if nL:
        Dm, Em, F = b["Dm"], b["Em"], b["F"]  # Dm [I; F] and Em [I; F]
        DIF = Dm[:, :, :nL] + _mm(Dm[:, :, nL:], F) if nF else Dm
        EIF = Em[:, :, :nL] + _mm(Em[:, :, nL:], F) if nF else Em
        PL, ok = _least_squares(DIF, EIF)
        ok &= np.isfinite(PL).all(axis=(1, 2))
    else:
        PL, ok = np.zeros((b.size, 0, 0)), np.ones(b.size, dtype=bool)
    b["PL"] = PL
    b.keep(ok, BK_RANK)

    # 5. The core policy: lagged rows P_L, other lead rows F, static rows from the QR of B_S.
    P = np.zeros((b.size, n, nL))
    P[:, lag, :] = b["PL"]
    for v in fw:
        P[:, v, :] = b["F"][:, lead.index(v), :]
    if nS:
        lead_term = _mm_sparse_left(b[A][:, :, lead], a_lead, _mm(P[:, lead, :], b["PL"]))
        partial = lead_term + _mm_sparse_left(b[B][:, :, dynamic], b_dyn, P[:, dynamic, :]) + b[C][:, :, lag]
        rhs = _mm(_T(b["Qs"])[:, :nS, :], partial)
        P[:, static, :] = -_solve(b["R1"], rhs)
    impact = b[B].copy()
    impact[:, :, lag] += _mm_sparse_left(b[A][:, :, lead], a_lead, P[:, lead, :])
    b[prefix + "P"], b[prefix + "M"] = P, impact
    b.keep(np.isfinite(P).all(axis=(1, 2)), IMPACT_SINGULAR)
    for key in ("Qs", "R1", "Dm", "Em", "Pi", "F", "PL"):
        b.w.pop(key, None)


def _sylvester(b: _Batch, st: Structure, XL: list[int], R: np.ndarray) -> np.ndarray:
    """``Pzx`` with ``M Pzx + A_Z Pzx Phi = R``, block by block of the block-triangular ``Phi``.

    Column block ``i`` (the lagged variables of exogenous block ``i``) satisfies
    ``M X_i + A_Z X_i Phi_ii = R_i - A_Z sum_j X_j Phi_ji`` over the blocks ``j`` that depend on
    ``i``; solving downstream blocks first makes the right-hand side known. Each block is one
    Kronecker system ``(I kron M + Phi_ii' kron A_Z) vec(X_i) = vec(rhs)`` (column-major ``vec``).
    """
    M, Az, Phi = b["zM"], b["zA"], b["Phi"]
    nz = M.shape[1]
    lpos = {v: j for j, v in enumerate(XL)}
    columns = [[lpos[v] for v in variables if v in lpos] for variables, _ in st.exogenous_blocks]
    Pzx = np.zeros(R.shape)
    for i in reversed(range(len(columns))):  # downstream blocks first
        cols = columns[i]
        if not cols:
            continue
        rhs = R[:, :, cols]
        dependents = [j for j, up in enumerate(st.exogenous_upstream) if i in up]
        others = [c for j in dependents for c in columns[j]]
        if others:  # blocks that depend on this one are solved already: their terms are known
            rhs = rhs - _mm(Az, _mm(Pzx[:, :, others], Phi[:, others][:, :, cols]))
        nb = len(cols)
        phi = Phi[:, cols][:, :, cols]
        if nb == 1:
            x = _solve(M + phi[:, :, :1] * Az, rhs)
            Pzx[:, :, cols] = x
            continue
        K = np.empty((b.size, nz * nb, nz * nb))
        for p in range(nb):
            for q in range(nb):
                block = phi[:, q, p, None, None] * Az
                K[:, p * nz : (p + 1) * nz, q * nz : (q + 1) * nz] = block + M if p == q else block
        x = _solve(K, np.swapaxes(rhs, 1, 2).reshape(b.size, nb * nz, 1))
        Pzx[:, :, cols] = np.swapaxes(x.reshape(b.size, nb, nz), 1, 2)
    return Pzx


def solve_lre(A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray, structure: Structure) -> Policy:
    """Solve ``A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0`` for every draw (module docstring).

    Parameters
    ----------
    A, B, C : ndarray, shape (k, n, n)
        Coefficients on leads, current values and lags (rows: equations, columns: variables).
        Columns of ``A`` outside ``structure.lead`` and of ``C`` outside ``structure.lag`` must be
        zero, and entries outside ``structure.nonzeros`` (if given) too.
    D : ndarray, shape (k, n, S)
        Coefficients on the shocks.
    structure : Structure
        Variable classes, structural non-zeros and exogenous blocks (:func:`.structure.analyze`).

    Returns
    -------
    Policy
        ``P (k, n, n_L)``, ``Q (k, n, S)``, validity and a problem code per draw.
    """
    k, n, _ = B.shape
    S = D.shape[2]
    lag = list(structure.lag)
    X, EX = list(structure.exogenous), list(structure.exogenous_equations)
    Z = [v for v in range(n) if v not in set(X)]
    EZ = [e for e in range(n) if e not in set(EX)]
    XL, ZL = [v for v in lag if v in set(X)], [v for v in lag if v not in set(X)]

    problem = np.full(k, OK, dtype=np.int8)
    n_unstable = np.full(k, -1, dtype=np.int64)
    finite = (
        np.isfinite(A).all(axis=(1, 2))
        & np.isfinite(B).all(axis=(1, 2))
        & np.isfinite(C).all(axis=(1, 2))
        & np.isfinite(D).all(axis=(1, 2))
    )
    problem[~finite] = NON_FINITE
    idx = np.flatnonzero(finite)
    n_unstable[idx] = 0
    b = _Batch(problem, n_unstable, idx, {"A": A[idx], "B": B[idx], "C": C[idx], "D": D[idx]})

    with np.errstate(all="ignore"):
        if X:
            _exogenous(b, structure, X, EX, XL)
        core = structure.restricted(Z, EZ)
        if Z:
            b["zA"] = b["A"][:, EZ][:, :, Z]
            b["zB"] = b["B"][:, EZ][:, :, Z]
            b["zC"] = b["C"][:, EZ][:, :, Z]
            _core(b, core, "z")
            Dz = b["D"][:, EZ]
            if X:
                Az_x = b["A"][:, EZ][:, :, X]
                Bz_x = b["B"][:, EZ][:, :, X]
                Cz_x = b["C"][:, EZ][:, :, XL]
                Px, Qx, Phi = b["Px"], b["Qx"], b["Phi"]
                xpos = {v: i for i, v in enumerate(X)}
                QxL = Qx[:, [xpos[v] for v in XL], :]
                R = -(_mm(Az_x, _mm(Px, Phi)) + _mm(Bz_x, Px) + Cz_x)
                b["Pzx"] = _sylvester(b, structure, XL, R)
                expected = _mm(b["zA"], _mm(b["Pzx"], QxL)) + _mm(Az_x, _mm(Px, QxL))
                b["Qz"] = -_solve(b["zM"], expected + _mm(Bz_x, Qx) + Dz)
                b.keep(np.isfinite(b["Pzx"]).all(axis=(1, 2)) & np.isfinite(b["Qz"]).all(axis=(1, 2)), IMPACT_SINGULAR)
            else:
                b["Qz"] = -_solve(b["zM"], Dz)
                b.keep(np.isfinite(b["Qz"]).all(axis=(1, 2)), IMPACT_SINGULAR)

        # Assemble the whole policy: columns in the order of ``lag``.
        P = np.zeros((b.size, n, len(lag)))
        Q = np.zeros((b.size, n, S))
        cpos = {v: j for j, v in enumerate(lag)}
        if Z:
            zcols = [cpos[v] for v in ZL]
            P[np.ix_(np.arange(b.size), Z, zcols)] = b["zP"]
            Q[:, Z] = b["Qz"]
        if X:
            xcols = [cpos[v] for v in XL]
            P[np.ix_(np.arange(b.size), X, xcols)] = b["Px"]
            Q[:, X] = b["Qx"]
            if Z:
                P[np.ix_(np.arange(b.size), Z, xcols)] = b["Pzx"]
        b["P"], b["Q"] = P, Q

        # 6. Verification on the whole model: A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0.
        lead = list(structure.lead)
        a_lead = structure.support(0, lead, "column")
        b_all = structure.support(1, range(n), "column")
        A_, B_, C_, D_, P, Q = (b[key] for key in ("A", "B", "C", "D", "P", "Q"))
        PL = P[:, lag, :]
        terms = (
            _mm_sparse_left(A_[:, :, lead], a_lead, _mm(P[:, lead, :], PL)),
            _mm_sparse_left(B_, b_all, P),
            C_[:, :, lag],
        )
        shock_terms = (
            _mm_sparse_left(A_[:, :, lead], a_lead, _mm(P[:, lead, :], Q[:, lag, :])),
            _mm_sparse_left(B_, b_all, Q),
            D_,
        )
        b.keep(accurate(terms, (A_, B_, C_)) & accurate(shock_terms, (A_, B_, D_)), INACCURATE)

    P_out = np.full((k, n, len(lag)), np.nan)
    Q_out = np.full((k, n, S), np.nan)
    P_out[b.idx] = b["P"]
    Q_out[b.idx] = b["Q"]
    return Policy(P=P_out, Q=Q_out, valid=problem == OK, problem=problem, n_unstable=n_unstable, lagged=tuple(lag))


__all__ = ["PROBLEMS", "Policy", "Structure", "UNIT_ROOT_TOL", "accurate", "sign_function", "solve_lre"]
