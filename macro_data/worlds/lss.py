"""lss: a random stable linear state space.

Equations (``k = n_state`` in {3, 4, 5}, three shocks ``e1, e2, e3``)::

    s[t] = A s[t-1] + B eps[t],      s[-1] = 0
    y[t] = C s[t]                    (no measurement noise)
    A    = V diag(lambda) V'         (V random orthogonal, so A is symmetric)

``y = (output, inflation, rate)`` are the canonical observables. lss is a reduced-form world:
``C`` maps the latent state directly into canonical units (output in percent, inflation and rate
in annualized percentage points); the state itself has percent-like units.

Draw (``propose``; one fixed sequence of random numbers whose length depends on ``n`` only, the
padded maximum ``k = 5`` is always drawn and masked):

1. ``n_state``, ``rho_max`` by :meth:`World.propose_independent` (``rng.random((n, 2))``).
2. ``u = rng.random((n, 5))``: ``lambda_0 = rho_max``, ``lambda_i = rho_max * u_i`` for
   ``0 < i < k`` (eigenvalues in ``[0, rho_max]``, the largest equal to ``rho_max``).
3. ``G = rng.standard_normal((n, 5, 5))``: ``V`` is the Haar-orthogonal factor of the top-left
   ``k x k`` block (QR with positive ``diag(R)``).
4. ``B`` (5x3) and ``Cr`` (3x5) from ``rng.standard_normal``: ``B`` entries are iid ``N(0, 1)``
   (percent per sd of innovation) on the first ``k`` rows; each row of ``C`` is a uniformly random
   unit vector in R^k, ``C_i = Cr_i / |Cr_i|``. **Scale rule**: with ``E[B B'] = 3 I`` and unit-norm
   rows of ``C``, ``E var(y_i) = 3 * mean_i 1 / (1 - lambda_i^2)`` (about 3.3 at ``rho_max = 0.5``,
   21 at ``rho_max = 0.98``); no draw-dependent normalisation is applied. Measured stationary
   standard deviations of the observables (20,000 draws): median 2.0, 10-90 % range 1.0-3.5,
   1-99 % range 0.5-6.1 (percent / annualized pp), the 1-10 scale of the spec.
5. Entries beyond ``n_state`` are exactly zero (``A`` rows/columns, ``B`` rows, ``C`` columns).

``A`` is formed as ``(M + M')/2`` with ``M = V diag(lambda) V'``, so it is exactly symmetric in
float64 and stays exactly symmetric after the float32 rounding of theta. Its eigenvalues then
equal ``lambda`` up to the rounding: by Weyl's inequality ``|delta lambda| <= ||delta A||_F <=
5 * 2^-24 * max|A_ij| < 3e-7``. ``is_valid`` checks, on the values as given: zero padding, exact
symmetry, every eigenvalue in ``[-EIG_TOL, rho_max + EIG_TOL]`` with the largest within
``EIG_TOL = 1e-6`` of ``rho_max`` (so the stored ``rho_max`` is the spectral radius to float32
precision), and spectral radius below one (stability).

IRFs: ``irfs[j, h] = C A^h B e_j`` (innovations are in sd units, so ``B`` already carries the
shock scale). Simulation and IRFs run each draw on its own ``n_state x n_state`` system (draws
grouped by ``n_state``), skipping the padded zeros. Splits: the slice is ``rho_max > 0.968``;
the corner uses the exact stationary moments of ``y`` (discrete Lyapunov equation
``S = A S A' + B B'``): persistence = mean first-order autocorrelation of the three observables,
volatility = mean unconditional standard deviation (percent).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from macro_data.worlds.base import CornerRule, Observable, Parameter, Priors, Simulation, SliceRule, World
from macro_data.worlds.state_irfs import lagged
from macro_data.worlds.statespace import (
    autocorrelation_and_sd,
    by_rows,
    chunked,
    haar_orthogonal,
    irfs_lags,
    matmul_first,
    samples_last,
    simulate_lags,
    stationary_second_moments,
)

K_MAX = 5
N_SHOCKS = 3
N_OBS = 3
EIG_TOL = 1e-6

# Slice: rho_max ~ U(0.5, 0.98) and every proposal is valid, so P(rho_max > 0.968) = 0.012/0.48
# = 0.025 exactly; a Monte Carlo check of 200,000 draws (seed 20240601) gave 0.0255.
SLICE_THRESHOLD = 0.968
# Corner thresholds: Monte Carlo of 200,000 valid draws (seed 20240601), equal tail
# probabilities of both statistics among draws outside the slice, scaled so the joint region
# holds 2.5 % of all draws (marginal tails 5.3 % each; measured joint 2.500 %); thresholds rounded to 4 digits.
CORNER_PERSISTENCE = 0.8255
CORNER_VOLATILITY = 3.545

_REDUCED_FORM = (
    "Reduced-form observable in canonical units: the world's state-space model "
    "produces it directly (no structural model behind it)."
)


def _entry_params() -> tuple[Parameter, ...]:
    params = []
    for i in range(K_MAX):
        for j in range(K_MAX):
            params.append(
                Parameter(
                    f"A_{i}_{j}",
                    "1",
                    f"transition matrix entry A[{i}, {j}] (symmetric; zero beyond n_state)",
                    kind="derived",
                    prior="A = V diag(lambda) V', see module docs",
                )
            )
    for i in range(K_MAX):
        for j in range(N_SHOCKS):
            params.append(
                Parameter(
                    f"B_{i}_{j}",
                    "percent per sd",
                    f"shock loading B[{i}, {j}] of innovation e{j + 1} on state {i} (zero beyond n_state)",
                    kind="derived",
                    prior="iid N(0, 1) before padding",
                )
            )
    for i in range(N_OBS):
        for j in range(K_MAX):
            params.append(
                Parameter(
                    f"C_{i}_{j}",
                    "canonical unit per state unit",
                    f"observation matrix entry C[{i}, {j}] (zero beyond n_state)",
                    kind="derived",
                    prior="each row a uniform random unit vector in R^n_state",
                )
            )
    return tuple(params)


class LSS(World):
    name = "lss"
    description = (
        "Random stable linear state space s[t] = A s[t-1] + B eps[t], y[t] = C s[t], "
        "A = V diag(lambda) V' with random orthogonal V and eigenvalues in [0, rho_max]."
    )
    parameters = (
        Parameter("n_state", "count", "state dimension", 3, 5, None, kind="integer", prior="uniform on {3, 4, 5}"),
        Parameter("rho_max", "1", "largest eigenvalue (= spectral radius) of A", 0.5, 0.98, None),
    ) + _entry_params()
    shocks = ("e1", "e2", "e3")
    observables = (
        Observable("output", "percent", "y[0] = (C s)[0]. " + _REDUCED_FORM),
        Observable("inflation", "annualized percentage points", "y[1] = (C s)[1]. " + _REDUCED_FORM),
        Observable("rate", "annualized percentage points", "y[2] = (C s)[2]. " + _REDUCED_FORM),
    )
    linear = True
    state_variables = tuple(
        Observable(f"s_{a}", "state units", f"s[t-1][{a}], entry {a} of the latent state (zero beyond n_state)")
        for a in range(K_MAX)
    )
    slice_rule = SliceRule(
        "rho_max",
        SLICE_THRESHOLD,
        "above",
        "largest eigenvalue of A above 0.968: 2.5 % of the U(0.5, 0.98) prior in closed form (every "
        "proposal valid); Monte Carlo 200,000 draws: 2.55 %",
    )
    corner_rule = CornerRule(
        "mean_i autocorr1(y_i)",
        CORNER_PERSISTENCE,
        "mean_i sd(y_i)",
        CORNER_VOLATILITY,
        "outside the slice, mean over output, inflation, rate of the stationary lag-1 autocorrelation "
        "> 0.8255 and of the stationary standard deviation (percent) > 3.545, both exact from the Lyapunov "
        "equation S = A S A' + B B'; Monte Carlo 200,000 draws: 2.50 %",
    )
    design_notes = (
        "lambda_0 = rho_max, lambda_i = rho_max * U(0, 1) for 0 < i < n_state; V Haar orthogonal (QR of a "
        "standard-normal matrix with positive diag(R)); A = (M + M')/2, M = V diag(lambda) V', exactly symmetric.",
        "Scale rule: B iid N(0, 1) (percent per sd), rows of C uniform random unit vectors; no per-draw "
        "normalisation; stationary sd of the observables: median 2.0, 10-90 % range 1.0-3.5 (20,000 draws).",
        "Padding: theta always holds 5x5 A, 5x3 B, 3x5 C; entries beyond n_state are exactly zero.",
        "Float32: theta is rounded to float32 before validation; rho_max equals the largest eigenvalue of "
        "the rounded A within 1e-6 (Weyl bound < 3e-7), checked by is_valid.",
        "Observables are reduced-form: y = C s is read directly as output (percent), inflation and rate "
        "(annualized percentage points).",
    )

    # ---- theta layout -------------------------------------------------------------------------
    _iA = 2
    _iB = _iA + K_MAX * K_MAX
    _iC = _iB + K_MAX * N_SHOCKS

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``A (n, 5, 5)``, ``B (n, 5, 3)``, ``C (n, 3, 5)`` from theta."""
        n = theta.shape[0]
        A = theta[:, self._iA : self._iB].reshape(n, K_MAX, K_MAX)
        B = theta[:, self._iB : self._iC].reshape(n, K_MAX, N_SHOCKS)
        C = theta[:, self._iC :].reshape(n, N_OBS, K_MAX)
        return A, B, C

    @staticmethod
    def state_mask(n_state: np.ndarray) -> np.ndarray:
        """``(n, 5)`` bool: which state indices are in use."""
        return np.arange(K_MAX)[None, :] < np.asarray(n_state)[:, None]

    # ---- draws ------------------------------------------------------------------------------------
    def propose(self, rng: np.random.Generator, n: int, priors: Priors) -> np.ndarray:
        theta = self.propose_independent(rng, n, priors)
        u = rng.random((n, K_MAX))
        G = rng.standard_normal((n, K_MAX, K_MAX))
        Braw = rng.standard_normal((n, K_MAX, N_SHOCKS))
        Craw = rng.standard_normal((n, N_OBS, K_MAX))

        k = theta[:, 0].astype(int)
        rho = theta[:, 1].astype(np.float32).astype(np.float64)  # the value that will be stored
        mask = self.state_mask(k)
        lam = rho[:, None] * u
        lam[:, 0] = rho
        lam[~mask] = 0.0
        # Embedding the k x k block in an identity keeps QR block-diagonal: V = diag(V_k, I).
        outer = mask[:, :, None] & mask[:, None, :]
        G = np.where(outer, G, np.eye(K_MAX))
        V = haar_orthogonal(G) * outer
        M = matmul_first(V * lam[:, None, :], V.transpose(0, 2, 1))
        A = 0.5 * (M + M.transpose(0, 2, 1))
        A[~outer] = 0.0
        B = Braw * mask[:, :, None]
        Cm = Craw * mask[:, None, :]
        C = Cm / np.sqrt(matmul_first(Cm, Cm.transpose(0, 2, 1)).diagonal(axis1=1, axis2=2))[:, :, None]
        theta[:, self._iA : self._iB] = A.reshape(n, -1)
        theta[:, self._iB : self._iC] = B.reshape(n, -1)
        theta[:, self._iC :] = C.reshape(n, -1)
        return theta

    def is_valid(self, theta: np.ndarray) -> np.ndarray:
        A, B, C = self.unpack(theta)
        k = theta[:, 0].astype(int)
        rho = theta[:, 1]
        mask = self.state_mask(k)
        outer = mask[:, :, None] & mask[:, None, :]
        ok = ~np.any(np.where(outer, 0.0, A) != 0, axis=(1, 2))
        ok &= ~np.any(np.where(mask[:, :, None], 0.0, B) != 0, axis=(1, 2))
        ok &= ~np.any(np.where(mask[:, None, :], 0.0, C) != 0, axis=(1, 2))
        ok &= np.all(A == A.transpose(0, 2, 1), axis=(1, 2))
        if ok.any():
            lam = np.linalg.eigvalsh(A[ok])  # ascending; padding contributes exact zeros
            top, bottom = lam[:, -1], lam[:, 0]
            good = (np.abs(top - rho[ok]) <= EIG_TOL) & (bottom >= -EIG_TOL)
            good &= np.maximum(np.abs(top), np.abs(bottom)) < 1.0
            ok[ok] = good
        return ok

    # ---- science ----------------------------------------------------------------------------------
    def _simulate(self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray]) -> Simulation:
        A, B, C = self.unpack(theta)
        traj = np.empty((theta.shape[0], eps.shape[1], N_OBS))
        for k, idx in self._by_state_dimension(theta):
            Ak, Bk, Ck, ek = A[idx, :k, :k], B[idx, :k], C[idx, :, :k], eps[idx]
            traj[idx] = by_rows(
                lambda lo, hi: simulate_lags(
                    samples_last(Ak[lo:hi])[None], samples_last(Bk[lo:hi]), samples_last(Ck[lo:hi]), ek[lo:hi]
                ),
                idx.size,
            )
        return Simulation(trajectories=traj)

    def _irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        A, B, C = self.unpack(theta)
        out = np.empty((theta.shape[0], N_SHOCKS, H + 1, N_OBS))
        for k, idx in self._by_state_dimension(theta):
            Ak, Bk, Ck = A[idx, :k, :k], B[idx, :k], C[idx, :, :k]
            out[idx] = by_rows(
                lambda lo, hi: irfs_lags(
                    samples_last(Ak[lo:hi])[None], samples_last(Bk[lo:hi]), samples_last(Ck[lo:hi]), H
                ),
                idx.size,
            )
        return out

    def _state_path(self, theta, eps, metadata, sim) -> np.ndarray:
        A, B, _ = self.unpack(theta)
        x = np.zeros((theta.shape[0], eps.shape[1], K_MAX))
        for k, idx in self._by_state_dimension(theta):
            Ak, Bk, ek = A[idx, :k, :k], B[idx, :k], eps[idx]
            x[idx, :, :k] = by_rows(
                lambda lo, hi: simulate_lags(samples_last(Ak[lo:hi])[None], samples_last(Bk[lo:hi]), None, ek[lo:hi]),
                idx.size,
            )
        return lagged(x)

    def _free_path(self, theta: np.ndarray, state: np.ndarray, T: int) -> np.ndarray:
        """The path with zero innovations from the lagged state ``s[-1]``::

            s[t] = A s[t-1],    y[t] = C s[t],    so    y[t] = C A^(t+1) s[-1],   t = 0 .. T-1

        Parameters
        ----------
        theta : ndarray of float64, shape (n, P)
            Checked parameter vectors.
        state : ndarray of float64, shape (n, 5)
            ``s[-1]``, the latent state entering period 0 (:attr:`state_variables` ``s_0 .. s_4``);
            entries beyond a draw's ``n_state`` do not enter.
        T : int
            Number of periods, ``>= 1``.

        Returns
        -------
        ndarray of float64, shape (n, T, 3)
            The canonical observables, each draw computed on its own ``n_state x n_state`` system by
            the recursion of :meth:`_simulate` (so, from the state :meth:`_state_path` gives, the same
            numbers as simulating on with zero innovations).
        """
        A, _, C = self.unpack(theta)
        traj = np.empty((theta.shape[0], T, N_OBS))
        for k, idx in self._by_state_dimension(theta):
            Ak, Ck, sk = A[idx, :k, :k], C[idx, :, :k], state[idx, :k]
            traj[idx] = by_rows(
                lambda lo, hi: simulate_lags(
                    samples_last(Ak[lo:hi])[None],
                    np.zeros((k, 1, hi - lo)),
                    samples_last(Ck[lo:hi]),
                    np.zeros((hi - lo, T, 1)),
                    samples_last(sk[lo:hi])[None],
                ),
                idx.size,
            )
        return traj

    @staticmethod
    def _by_state_dimension(theta: np.ndarray):
        """``(k, indices)`` per state dimension: each draw is computed on its own ``k x k`` system
        (no padded zeros), which depends on the draw alone, never on the batch."""
        k = theta[:, 0].astype(int)
        for value in np.unique(k):
            yield int(value), np.flatnonzero(k == value)

    # ---- splits -----------------------------------------------------------------------------------
    def slice_statistic(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(theta, dtype=np.float64)[:, 1].copy()

    def stationary_moments(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Gamma_0, Gamma_1)`` of ``y``: ``E[y y']`` and ``E[y_t y_{t-1}']``, each ``(n, 3, 3)``, from
        ``S = A S A' + B B'`` solved on each draw's own ``n_state x n_state`` system (``k^2`` unknowns;
        draws grouped by ``n_state``), ``Gamma_0 = C S C'``, ``Gamma_1 = C A S C'``."""
        theta = np.asarray(theta, dtype=np.float64)
        A, B, C = self.unpack(theta)
        G0, G1 = np.empty((theta.shape[0], N_OBS, N_OBS)), np.empty((theta.shape[0], N_OBS, N_OBS))
        for k, idx in self._by_state_dimension(theta):
            Ak, Bk, Ck = A[idx, :k, :k], B[idx, :k], C[idx, :, :k]
            m = idx.size
            BBt = matmul_first(Bk, Bk.transpose(0, 2, 1))
            S = stationary_second_moments(Ak[:, None], np.ones((m, 1, 1)), np.ones((m, 1)), BBt[:, None])[:, 0]
            Ct = Ck.transpose(0, 2, 1)
            G0[idx] = matmul_first(matmul_first(Ck, S), Ct)
            G1[idx] = matmul_first(matmul_first(Ck, Ak), matmul_first(S, Ct))
        return G0, G1

    def corner_statistics(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return chunked(lambda th: autocorrelation_and_sd(*self.stationary_moments(th)), np.asarray(theta))


WORLD = LSS()
