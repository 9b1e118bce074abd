"""Batched solution of linear rational-expectations models (many parameter draws at once).

Canonical form, for every draw (``n`` equations in ``n`` variables ``z``, ``S`` shocks)::

    A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0

with the steady state at zero. The unique stable (Blanchard-Kahn) solution is the policy

    z[t] = P z_L[t-1] + Q eps[t]

where ``z_L`` are the *lagged* variables (those with a non-zero column of ``C`` somewhere in the
model). Variables are classified once per model from the structure of the equations: *static*
(no lead and no lag), *lead* ``F`` (appear as ``x(+1)``), *lag* ``L`` (appear as ``x(-1)``);
*mixed* variables are in both ``F`` and ``L``.

Method (every step batched over draws; per-draw LAPACK calls and element-wise numpy only):

1. **Static elimination** (as in Dynare). With the QR factorization ``B_S = Q [R; 0]`` of the
   current-period columns of the static variables, the last ``n - n_S`` rows of ``Q' (A, B, C, D)``
   are free of static variables: a square *dynamic* system. A singular ``R`` (static variables not
   determined) marks the draw invalid.
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
   ``X <- (mu X + (mu X)^{-1}) / 2`` (``mu = sqrt(|X^{-1}|_F / |X|_F)`` while the step is
   large) converges quadratically to ``sign(N)``, and ``Pi = (I + sign(N)) / 2`` is the spectral
   projector onto the unstable right deflating subspace. It needs no eigenvectors, so repeated or
   defective roots (lag chains, several infinite roots) are no problem. Each draw stops when its
   own relative step falls below :data:`SIGN_CONVERGED`; a draw that has not converged after
   :data:`SIGN_MAX_STEPS` steps has a root on (or numerically on) the unit circle and is invalid.
4. **Blanchard-Kahn.** The number of unstable roots is ``trace(Pi)``; it must equal ``n_F`` (one
   per jump). A bounded solution lies in the stable subspace, ``Pi w = 0``, i.e.
   ``Pi_F z_F[t] = -Pi_L z_L[t-1]``: with the QR factorization ``Pi_F = Q_u R_u``,
   ``F = -R_u^{-1} Q_u' Pi_L``. ``Pi_F`` must have full column rank (the rank condition; it is
   equivalent to Klein's ``Z11`` being invertible). The state transition ``P_L`` solves the
   consistent system ``Dm [I; F] P_L = Em [I; F]`` (QR again).
5. **The full policy.** ``P`` has rows ``P_L`` for lagged variables and ``F`` for the other lead
   variables; the static rows solve ``B_S P_S = -(A_F F_L P_L + B_dyn P_dyn + C_L)`` with the QR of
   step 1. The shock loading solves ``(B + A_F P_F S_L) Q = -D`` (the impact matrix; ``S_L``
   selects ``z_L[t]`` from ``z[t]``).
6. **Verification.** The residual of the deterministic equations ``A P P_L + B P + C_L`` must be
   at rounding level relative to the size of its terms; otherwise the draw is invalid.

Draws failing any step get ``valid = False``, NaN policies and a problem code
(:data:`PROBLEMS`); the solver never raises for them, since rejection sampling relies on the flag.
Matrix products use :func:`macro_data.worlds.linear_re.bmatmul` (a fixed summation order) and
LAPACK runs one matrix at a time, so a draw's result does not depend on the batch it is in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from macro_data.worlds.linear_re import bmatmul

RCOND_MIN = 1e-10  # triangular factors with |r_ii| below this times the largest count as singular
SIGN_MAX_STEPS = 80
SIGN_SCALED_UNTIL = 1e-2  # norm scaling while the relative Newton step exceeds this
SIGN_CONVERGED = 1e-9  # quadratic convergence: the iterate after such a step is at rounding level
TRACE_TOL = 1e-6  # trace(Pi) must be this close to an integer
RESIDUAL_TOL = 1e-9  # relative residual of the solved equations

OK, NON_FINITE, STATIC_SINGULAR, NO_CONVERGENCE, BK_COUNT, BK_RANK, IMPACT_SINGULAR, INACCURATE = range(8)
PROBLEMS = {
    OK: "unique stable solution",
    NON_FINITE: "a coefficient is not finite for this draw (e.g. the log of a negative number or a division by zero)",
    STATIC_SINGULAR: "the static variables are not determined (their current-period coefficients are singular)",
    NO_CONVERGENCE: "no unique stable solution: a root on or numerically on the unit circle, or a singular model",
    BK_COUNT: "no unique stable solution: the number of unstable roots differs from the number of "
              "forward-looking variables (Blanchard-Kahn)",
    BK_RANK: "no unique stable solution: the Blanchard-Kahn rank condition fails",
    IMPACT_SINGULAR: "the impact matrix of the shocks is singular",
    INACCURATE: "the solution does not satisfy the equations to rounding accuracy",
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
        if self.problem[i] == BK_COUNT:
            text += f" ({int(self.n_unstable[i])} unstable roots)"
        return text


@dataclass(frozen=True)
class Structure:
    """Which variables lead, lag, or neither (fixed per model, from the equations' structure)."""

    n: int
    lead: tuple[int, ...]
    lag: tuple[int, ...]

    @property
    def static(self) -> tuple[int, ...]:
        s = set(self.lead) | set(self.lag)
        return tuple(v for v in range(self.n) if v not in s)

    @property
    def dynamic(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.lead) | set(self.lag)))


def _frob(X: np.ndarray) -> np.ndarray:
    """Frobenius norm of each matrix of ``X (k, a, b)`` (per draw; reduces a contiguous row)."""
    X = np.ascontiguousarray(X)
    return np.sqrt(np.sum((X * X).reshape(X.shape[0], X.shape[1] * X.shape[2]), axis=1))


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


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``a @ b`` in a fixed summation order (:func:`bmatmul`), also for empty inner dimensions."""
    if a.shape[-1] == 0 or 0 in a.shape or 0 in b.shape:
        return np.zeros(a.shape[:-1] + b.shape[-1:])
    return bmatmul(a, b)


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


def solve_lre(A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray, structure: Structure) -> Policy:
    """Solve ``A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0`` for every draw (module docstring).

    Parameters
    ----------
    A, B, C : ndarray, shape (k, n, n)
        Coefficients on leads, current values and lags (rows: equations, columns: variables).
        Columns of ``A`` outside ``structure.lead`` and of ``C`` outside ``structure.lag`` must be zero.
    D : ndarray, shape (k, n, S)
        Coefficients on the shocks.
    structure : Structure
        The lead and lag variables of the model.

    Returns
    -------
    Policy
        ``P (k, n, n_L)``, ``Q (k, n, S)``, validity and a problem code per draw.
    """
    k, n, _ = B.shape
    S = D.shape[2]
    lead, lag = list(structure.lead), list(structure.lag)
    static, dynamic = list(structure.static), list(structure.dynamic)
    nL, nF, nS = len(lag), len(lead), len(static)
    mixed = [v for v in lead if v in lag]
    fw = [v for v in lead if v not in lag]

    P_out = np.full((k, n, nL), np.nan)
    Q_out = np.full((k, n, S), np.nan)
    problem = np.full(k, OK, dtype=np.int8)
    n_unstable = np.full(k, -1, dtype=np.int64)

    finite = np.isfinite(A).all(axis=(1, 2)) & np.isfinite(B).all(axis=(1, 2)) & np.isfinite(C).all(axis=(1, 2)) \
        & np.isfinite(D).all(axis=(1, 2))
    problem[~finite] = NON_FINITE
    idx = np.flatnonzero(finite)  # the draws still being solved
    w = {"A": A[idx], "B": B[idx], "C": C[idx], "D": D[idx]}  # their working arrays

    def keep(ok: np.ndarray, code: int) -> None:
        """Give the failing draws of ``idx`` the problem ``code``; narrow ``idx`` and ``w`` to the others."""
        nonlocal idx
        if ok.all():
            return
        problem[idx[~ok]] = code
        idx = idx[ok]
        for key in w:
            w[key] = w[key][ok]

    with np.errstate(all="ignore"):
        # 1. Static elimination: the last n - n_S rows of Q' (A, B, C) are the dynamic system.
        if nS:
            Qs, Rs = np.linalg.qr(w["B"][:, :, static], mode="complete")
            w["Qs"], w["R1"] = Qs, Rs[:, :nS, :]
            keep(_triangular_ok(w["R1"]), STATIC_SINGULAR)
            Qt2 = _T(w["Qs"])[:, nS:, :]
            Ad, Bd, Cd = _mm(Qt2, w["A"]), _mm(Qt2, w["B"]), _mm(Qt2, w["C"])
        else:
            Ad, Bd, Cd = w["A"], w["B"], w["C"]
        nd = n - nS

        # 2. The pencil Dm E_t w[t+1] = Em w[t], w[t] = [z_L[t-1]; z_F[t]].
        m = nL + nF
        kk = idx.size
        Dm = np.zeros((kk, m, m))
        Em = np.zeros((kk, m, m))
        Dm[:, :nd, :nL] = Bd[:, :, lag]
        Dm[:, :nd, nL:] = Ad[:, :, lead]
        Em[:, :nd, :nL] = -Cd[:, :, lag]
        for v in fw:
            Em[:, :nd, nL + lead.index(v)] = -Bd[:, :, v]
        for r, v in enumerate(mixed):
            Dm[:, nd + r, lag.index(v)] = 1.0
            Em[:, nd + r, nL + lead.index(v)] = 1.0
        w["Dm"], w["Em"] = Dm, Em

        # 3. Unstable projector Pi from the sign function of the Cayley transform; Blanchard-Kahn count.
        if m:
            sign, converged = sign_function(_solve(Em + Dm, Em - Dm))
            w["Pi"] = 0.5 * (np.eye(m) + sign)
            keep(converged, NO_CONVERGENCE)
            trace = np.trace(w["Pi"], axis1=1, axis2=2)
            count = np.rint(trace)
            integral = np.abs(trace - count) <= TRACE_TOL * m
            n_unstable[idx[integral]] = count[integral].astype(np.int64)
            keep(integral, NO_CONVERGENCE)
            keep(n_unstable[idx] == nF, BK_COUNT)
        else:
            n_unstable[idx] = 0

        # 4. Jumps z_F[t] = F z_L[t-1] from Pi_F F = -Pi_L (rank condition), then P_L.
        kk = idx.size
        if nF and nL:
            F, ok = _least_squares(w["Pi"][:, :, nL:], -w["Pi"][:, :, :nL])
            ok &= np.isfinite(F).all(axis=(1, 2))
        else:
            F, ok = np.zeros((kk, nF, nL)), np.ones(kk, dtype=bool)
        w["F"] = F
        keep(ok, BK_RANK)
        kk = idx.size
        if nL:
            Dm, Em, F = w["Dm"], w["Em"], w["F"]  # Dm [I; F] and Em [I; F]
            DIF = Dm[:, :, :nL] + _mm(Dm[:, :, nL:], F) if nF else Dm
            EIF = Em[:, :, :nL] + _mm(Em[:, :, nL:], F) if nF else Em
            PL, ok = _least_squares(DIF, EIF)
            ok &= np.isfinite(PL).all(axis=(1, 2))
        else:
            PL, ok = np.zeros((kk, 0, 0)), np.ones(kk, dtype=bool)
        w["PL"] = PL
        keep(ok, BK_RANK)

        # 5. The full policy: lagged rows P_L, other lead rows F, static rows from the QR of B_S;
        #    then the shock loading from the impact matrix.
        kk = idx.size
        P = np.zeros((kk, n, nL))
        P[:, lag, :] = w["PL"]
        for v in fw:
            P[:, v, :] = w["F"][:, lead.index(v), :]
        if nS:
            lead_term = _mm(w["A"][:, :, lead], _mm(P[:, lead, :], w["PL"]))
            partial = lead_term + _mm(w["B"], P) + w["C"][:, :, lag]  # static rows of P still zero
            rhs = _mm(_T(w["Qs"])[:, :nS, :], partial)
            P[:, static, :] = -_solve(w["R1"], rhs)
        impact = w["B"].copy()
        impact[:, :, lag] += _mm(w["A"][:, :, lead], P[:, lead, :])
        w["P"], w["Q"] = P, -_solve(impact, w["D"])
        keep(np.isfinite(w["Q"]).all(axis=(1, 2)) & np.isfinite(w["P"]).all(axis=(1, 2)), IMPACT_SINGULAR)

        # 6. Verification: A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0, both parts.
        A_, B_, C_, D_, P, Q, PL = (w[key] for key in ("A", "B", "C", "D", "P", "Q", "PL"))
        terms = (_mm(A_[:, :, lead], _mm(P[:, lead, :], PL)), _mm(B_, P), C_[:, :, lag])
        shock_terms = (_mm(A_[:, :, lead], _mm(P[:, lead, :], Q[:, lag, :])), _mm(B_, Q), D_)
        ok = np.ones(idx.size, dtype=bool)
        for parts in (terms, shock_terms):
            residual = _frob(parts[0] + parts[1] + parts[2])
            ok &= residual <= RESIDUAL_TOL * (_frob(parts[0]) + _frob(parts[1]) + _frob(parts[2]) + 1e-300)
        keep(ok, INACCURATE)

    P_out[idx] = w["P"]
    Q_out[idx] = w["Q"]
    return Policy(P=P_out, Q=Q_out, valid=problem == OK, problem=problem, n_unstable=n_unstable, lagged=tuple(lag))


def structure_of(lead: Sequence[int], lag: Sequence[int], n: int) -> Structure:
    """A :class:`Structure` with sorted, de-duplicated variable indices."""
    return Structure(n, tuple(sorted(set(lead))), tuple(sorted(set(lag))))


__all__ = ["PROBLEMS", "Policy", "Structure", "sign_function", "solve_lre", "structure_of"]
