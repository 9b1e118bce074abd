"""var: a stable VAR(p) in the canonical observables.

Equation (three variables ``y = (output, inflation, rate)``, lag order ``p`` in {1, 2, 3, 4},
three shocks ``e1, e2, e3``)::

    y[t] = A_1 y[t-1] + ... + A_p y[t-p] + L eps[t],     y[t<0] = 0

``L`` is lower triangular with a positive diagonal (Cholesky identification: shock ``j`` is
column ``j`` of ``L``). The variables are the canonical observables themselves and are read as
already in canonical units: output in percent, inflation and rate in annualized percentage
points (``sigma_scale`` is in the same units). Measured stationary standard deviations (20,000
draws): median 1.7, 10-90 % range 0.6-3.8, 1-99 % range 0.3-8.4.

Draw (``propose``; one fixed sequence of random numbers whose length depends on ``n`` only, the
padded maximum ``p = 4`` is always drawn and masked):

1. ``p``, ``rho_max``, ``sigma_scale`` by :meth:`World.propose_independent`
   (``rng.random((n, 3))``).
2. Raw coefficients ``rng.standard_normal((n, 4, 3, 3))``: entries of raw ``A_l`` are iid
   ``N(0, 1/l^2)`` (Minnesota-style decay with the lag), set to zero for ``l > p``.
3. ``L``: ``rng.random((n, 3))`` gives the raw diagonal ``U(0.5, 1.5)``,
   ``rng.standard_normal((n, 3))`` the raw strictly-lower entries ``N(0, 0.5^2)`` (order
   ``L_1_0, L_2_0, L_2_1``); ``L = sigma_scale * raw``.
4. Scaling: with ``r`` the spectral radius of the raw companion matrix (eigenvalues, one LAPACK
   call per matrix, grouped by ``p``) and ``c = rho_max / r``, ``A_l <- c^l A_l``; every
   companion eigenvalue is multiplied by ``c``, so the spectral radius becomes ``rho_max``. A raw
   draw with ``r < 1e-8`` (a measure-zero event) is returned as NaN and so rejected.

Float32: theta is rounded to float32 before validation and simulation; the rounding moves the
companion eigenvalues by roughly ``cond * 6e-8`` (median 7e-9, largest seen 2.5e-6 in 50,000
draws). ``is_valid`` works on the rounded values: it requires every root of the characteristic
polynomial ``det(z^4 I - A_1 z^3 - .. - A_4)`` (= companion eigenvalues, plus zeros for ``p < 4``)
inside the unit circle (stability) and inside the circle of radius ``rho_max + RHO_TOL`` but not
all inside radius ``rho_max - RHO_TOL`` (so the stored ``rho_max`` is the spectral radius within
``RHO_TOL = 1e-5``), using Schur-Cohn tests rather than a second eigenvalue computation; it also
requires zero padding beyond ``p`` and a positive diagonal of ``L``.

IRFs: ``irfs[j, h] = Psi_h L e_j`` with ``Psi_0 = I``, ``Psi_h = sum_{l=1..min(h,p)} A_l Psi_{h-l}``.
Simulation and IRFs run each draw's own VAR(p) recursion (draws grouped by ``p``), skipping the
padded lags.
Splits: slice ``rho_max > 0.968``; corner from the exact stationary autocovariances (Yule-Walker
equations solved as one linear system): persistence = mean first-order autocorrelation of the
three variables, volatility = their mean unconditional standard deviation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from macro_data.worlds.base import CornerRule, Observable, Parameter, Priors, Simulation, SliceRule, World
from macro_data.worlds.statespace import (
    autocorrelation_and_sd,
    by_rows,
    characteristic_polynomial,
    chunked,
    companion_spectral_radius,
    irfs_lags,
    matmul_first,
    roots_inside,
    samples_last,
    simulate_lags,
)

P_MAX = 4
K = 3
RHO_TOL = 1e-5
L_NAMES = tuple(f"L_{i}_{j}" for i in range(K) for j in range(i + 1))  # row-major lower triangle
_L_ROWS = np.array([i for i in range(K) for j in range(i + 1)])
_L_COLS = np.array([j for i in range(K) for j in range(i + 1)])

# Slice: rho_max ~ U(0.5, 0.98) and (almost) every proposal is valid, so P(rho_max > 0.968) =
# 0.012/0.48 = 0.025; a Monte Carlo check of 200,000 draws (seed 20240601) gave 0.0251.
SLICE_THRESHOLD = 0.968
# Corner thresholds: Monte Carlo of 200,000 valid draws (seed 20240601), equal tail
# probabilities of both statistics among draws outside the slice, scaled so the joint region
# holds 2.5 % of all draws (marginal tails 10.4 % each; measured joint 2.500 %); thresholds rounded to 4 digits.
CORNER_PERSISTENCE = 0.4325
CORNER_VOLATILITY = 3.468

_REDUCED_FORM = "Reduced-form: a variable of the VAR, read directly in canonical units."


def _params() -> tuple[Parameter, ...]:
    params = [
        Parameter("p", "lags", "lag order", 1, 4, None, kind="integer", prior="uniform on {1, 2, 3, 4}"),
        Parameter("rho_max", "1", "spectral radius of the companion matrix", 0.5, 0.98, None),
        Parameter("sigma_scale", "percent", "innovation scale: L = sigma_scale * raw Cholesky factor", 0.2, 2.0, None),
    ]
    for lag in range(1, P_MAX + 1):
        for i in range(K):
            for j in range(K):
                params.append(
                    Parameter(
                        f"A{lag}_{i}_{j}",
                        "1",
                        f"coefficient of variable {j} at lag {lag} in equation {i} (zero for lags beyond p)",
                        kind="derived",
                        prior=f"N(0, 1/{lag}^2) raw, times c^{lag} with c = rho_max / raw spectral radius",
                    )
                )
    for name, i, j in zip(L_NAMES, _L_ROWS, _L_COLS):
        prior = "sigma_scale * U(0.5, 1.5)" if i == j else "sigma_scale * N(0, 0.25)"
        params.append(
            Parameter(
                name,
                "percent",
                f"impact of shock e{j + 1} on variable {i} (Cholesky factor, lower triangle)",
                kind="derived",
                prior=prior,
            )
        )
    return tuple(params)


class VAR(World):
    name = "var"
    description = (
        "Stable VAR(p) in the canonical observables, y[t] = sum_l A_l y[t-l] + L eps[t], "
        "companion spectral radius rho_max, Cholesky-identified shocks."
    )
    parameters = _params()
    shocks = ("e1", "e2", "e3")
    observables = (
        Observable("output", "percent", "VAR variable 0. " + _REDUCED_FORM),
        Observable("inflation", "annualized percentage points", "VAR variable 1. " + _REDUCED_FORM),
        Observable("rate", "annualized percentage points", "VAR variable 2. " + _REDUCED_FORM),
    )
    linear = True
    state_variables = tuple(
        Observable(f"{o}_lag{lag}", "observable units", f"{o}[t-{lag}] (lags beyond the draw's p do not enter)")
        for lag in range(1, P_MAX + 1)
        for o in ("output", "inflation", "rate")
    )
    slice_rule = SliceRule(
        "rho_max",
        SLICE_THRESHOLD,
        "above",
        "companion spectral radius above 0.968: 2.5 % of the U(0.5, 0.98) prior in closed form (every "
        "proposal valid); Monte Carlo 200,000 draws: 2.51 %",
    )
    corner_rule = CornerRule(
        "mean_i autocorr1(y_i)",
        CORNER_PERSISTENCE,
        "mean_i sd(y_i)",
        CORNER_VOLATILITY,
        "outside the slice, mean over output, inflation, rate of the stationary lag-1 autocorrelation "
        "> 0.4325 and of the stationary standard deviation > 3.468, both exact from the Yule-Walker "
        "equations; Monte Carlo 200,000 draws: 2.50 %",
    )
    design_notes = (
        "Raw A_l entries iid N(0, 1/l^2) (lags beyond p zero); scaled by c^l, c = rho_max / raw companion "
        "spectral radius.",
        "L = sigma_scale * raw, raw diagonal U(0.5, 1.5), raw strictly-lower entries N(0, 0.25).",
        "Padding: theta always holds A1..A4 (3x3 each); lags beyond p are exactly zero.",
        f"Float32: theta is rounded to float32 before validation; is_valid requires the companion spectral "
        f"radius of the rounded coefficients below 1 and within {RHO_TOL} of rho_max (Schur-Cohn tests on the "
        "characteristic polynomial).",
        "Variables are the canonical observables, read directly in canonical units (percent / annualized pp).",
    )

    _iA = 3
    _iL = _iA + P_MAX * K * K

    # ---- theta layout -------------------------------------------------------------------------
    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``coefs (n, 4, 3, 3)`` (``A_1 .. A_4``) and ``L (n, 3, 3)`` from theta."""
        n = theta.shape[0]
        coefs = theta[:, self._iA : self._iL].reshape(n, P_MAX, K, K)
        L = np.zeros((n, K, K))
        L[:, _L_ROWS, _L_COLS] = theta[:, self._iL :]
        return coefs, L

    # ---- draws ------------------------------------------------------------------------------------
    def propose(self, rng: np.random.Generator, n: int, priors: Priors) -> np.ndarray:
        theta = self.propose_independent(rng, n, priors)
        raw = rng.standard_normal((n, P_MAX, K, K))
        diag_u = rng.random((n, K))
        lower_z = rng.standard_normal((n, K))

        p = theta[:, 0].astype(int)
        rho = theta[:, 1].astype(np.float32).astype(np.float64)  # the value that will be stored
        lags = np.arange(1, P_MAX + 1)
        raw = raw / lags[None, :, None, None] * (lags[None, :] <= p[:, None])[:, :, None, None]
        r = companion_spectral_radius(raw, p)
        degenerate = ~(r >= 1e-8)
        c = rho / np.where(degenerate, 1.0, r)
        coefs = np.empty_like(raw)
        cl = c.copy()
        for lag in range(P_MAX):  # A_l <- c^l A_l
            coefs[:, lag] = raw[:, lag] * cl[:, None, None]
            cl = cl * c
        Lraw = np.zeros((n, K, K))
        Lraw[:, np.arange(K), np.arange(K)] = 0.5 + diag_u
        Lraw[:, [1, 2, 2], [0, 0, 1]] = 0.5 * lower_z
        L = theta[:, 2, None, None] * Lraw
        theta[:, self._iA : self._iL] = coefs.reshape(n, -1)
        theta[:, self._iL :] = L[:, _L_ROWS, _L_COLS]
        theta[degenerate] = np.nan
        return theta

    def is_valid(self, theta: np.ndarray) -> np.ndarray:
        coefs, L = self.unpack(theta)
        p = theta[:, 0].astype(int)
        lags = np.arange(1, P_MAX + 1)
        beyond = lags[None, :] > p[:, None]
        ok = ~np.any(coefs * beyond[:, :, None, None] != 0, axis=(1, 2, 3))
        ok &= np.all(np.diagonal(L, axis1=1, axis2=2) > 0, axis=1)
        # Stability and |spectral radius - rho_max| <= RHO_TOL, by Schur-Cohn tests on the
        # characteristic polynomial (no eigenvalues: cheap, and independent of propose's eigvals).
        poly = characteristic_polynomial(coefs)
        rho = theta[:, 1]
        ok &= roots_inside(poly, 1.0) & roots_inside(poly, rho + RHO_TOL)
        low = rho - RHO_TOL
        ok &= (low <= 0) | ~roots_inside(poly, np.where(low > 0, low, 1.0))
        return ok

    # ---- science ----------------------------------------------------------------------------------
    def _simulate(self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray]) -> Simulation:
        coefs, L = self.unpack(theta)
        traj = np.empty((theta.shape[0], eps.shape[1], K))
        for p, idx in self._by_lag_order(theta):
            Ap, Lp, ep = coefs[idx, :p], L[idx], eps[idx]
            traj[idx] = by_rows(
                lambda lo, hi: simulate_lags(samples_last(Ap[lo:hi]), samples_last(Lp[lo:hi]), None, ep[lo:hi]),
                idx.size,
            )
        return Simulation(trajectories=traj)

    def _irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        coefs, L = self.unpack(theta)
        out = np.empty((theta.shape[0], K, H + 1, K))
        for p, idx in self._by_lag_order(theta):
            Ap, Lp = coefs[idx, :p], L[idx]
            out[idx] = by_rows(
                lambda lo, hi: irfs_lags(samples_last(Ap[lo:hi]), samples_last(Lp[lo:hi]), None, H), idx.size
            )
        return out

    def _state_path(self, theta, eps, metadata, sim) -> np.ndarray:
        y = sim.trajectories
        out = np.zeros((y.shape[0], y.shape[1], P_MAX, K))
        for lag in range(1, P_MAX + 1):
            out[:, lag:, lag - 1] = y[:, :-lag]
        return out.reshape(y.shape[0], y.shape[1], P_MAX * K)

    def _free_path(self, theta: np.ndarray, state: np.ndarray, T: int) -> np.ndarray:
        """The path with zero innovations from the lags ``y[-1] .. y[-4]``::

            y[t] = A_1 y[t-1] + ... + A_p y[t-p],   t = 0 .. T-1

        (the VAR's own recursion with ``L eps[t] = 0``), so ``y[t]`` is the first block of
        ``F^(t+1) (y[-1]; ..; y[-p])`` with ``F`` the companion matrix.

        Parameters
        ----------
        theta : ndarray of float64, shape (n, P)
            Checked parameter vectors.
        state : ndarray of float64, shape (n, 12)
            ``(y[-1], y[-2], y[-3], y[-4])``, each ``(output, inflation, rate)`` (:attr:`state_variables`
            ``<observable>_lag<l>``); lags beyond a draw's ``p`` do not enter.
        T : int
            Number of periods, ``>= 1``.

        Returns
        -------
        ndarray of float64, shape (n, T, 3)
            The canonical observables (the VAR's variables), each draw by its own VAR(p) recursion.
        """
        coefs, _ = self.unpack(theta)
        lags = state.reshape(state.shape[0], P_MAX, K)  # lags[:, l - 1] = y[-l]
        traj = np.empty((theta.shape[0], T, K))
        for p, idx in self._by_lag_order(theta):
            Ap, hp = coefs[idx, :p], lags[idx, :p][:, ::-1]  # hp[:, i] = y[i - p]
            traj[idx] = by_rows(
                lambda lo, hi: simulate_lags(
                    samples_last(Ap[lo:hi]),
                    np.zeros((K, 1, hi - lo)),
                    None,
                    np.zeros((hi - lo, T, 1)),
                    samples_last(hp[lo:hi]),
                ),
                idx.size,
            )
        return traj

    @staticmethod
    def _by_lag_order(theta: np.ndarray):
        """``(p, indices)`` per lag order: each draw runs its own VAR(p) recursion (no padded lags),
        which depends on the draw alone, never on the batch."""
        p = theta[:, 0].astype(int)
        for value in np.unique(p):
            yield int(value), np.flatnonzero(p == value)

    # ---- splits -----------------------------------------------------------------------------------
    def slice_statistic(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(theta, dtype=np.float64)[:, 1].copy()

    def autocovariances(self, theta: np.ndarray) -> np.ndarray:
        """Stationary ``Gamma_k = E[y_t y_{t-k}']`` for ``k = 0..4``, ``(n, 5, 3, 3)``.

        For a draw of lag order ``p``, solves the Yule-Walker equations
        ``Gamma_0 = sum_{l<=p} A_l Gamma_l' + L L'`` and ``Gamma_k = sum_{l<=p} A_l Gamma_{k-l}``
        (``Gamma_{-m} = Gamma_m'``), ``k = 1..p``, as one ``9 (p + 1)``-unknown linear system (row-major
        vec of each block; the equations for ``k <= p`` involve no ``Gamma`` beyond ``p``), then
        continues ``Gamma_k = sum_l A_l Gamma_{k-l}`` up to ``k = 4``. Draws are grouped by lag order,
        so a VAR(1) solves 18 unknowns instead of the 45 of a system padded to four lags.
        """
        theta = np.asarray(theta, dtype=np.float64)
        coefs, L = self.unpack(theta)
        LLt = matmul_first(L, L.transpose(0, 2, 1))
        G = np.empty((theta.shape[0], P_MAX + 1, K, K))
        for p, idx in self._by_lag_order(theta):
            A = coefs[idx, :p]
            G[idx, : p + 1] = _yule_walker(A, LLt[idx])
            for k in range(p + 1, P_MAX + 1):
                G[idx, k] = sum(matmul_first(A[:, lag - 1], G[idx, k - lag]) for lag in range(1, p + 1))
        return G

    def corner_statistics(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def stats(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            G = self.autocovariances(th)
            return autocorrelation_and_sd(G[:, 0], G[:, 1])

        return chunked(stats, np.asarray(theta))


def _yule_walker(A: np.ndarray, LLt: np.ndarray) -> np.ndarray:
    """``Gamma_0 .. Gamma_p`` ``(n, p + 1, K, K)`` of VAR(p) draws with lags ``A (n, p, K, K)`` and
    innovation covariance ``LLt (n, K, K)`` (see :meth:`VAR.autocovariances`)."""
    n, p = A.shape[:2]
    B = K * K
    N = (p + 1) * B
    M = np.broadcast_to(np.eye(N), (n, N, N)).copy()
    a, b, c = (g.ravel() for g in np.meshgrid(np.arange(K), np.arange(K), np.arange(K), indexing="ij"))
    for k in range(p + 1):
        rows = B * k + K * a + b
        for lag in range(1, p + 1):
            m = k - lag
            # (A X)_ab = sum_c A_ac X_cb; (A X')_ab = sum_c A_ac X_bc
            cols = B * m + K * c + b if m >= 0 else B * (-m) + K * b + c
            M[:, rows, cols] -= A[:, lag - 1, a, c]
    rhs = np.zeros((n, N, 1))
    rhs[:, :B, 0] = LLt.reshape(n, B)
    return np.linalg.solve(M, rhs).reshape(n, p + 1, K, K)


WORLD = VAR()
