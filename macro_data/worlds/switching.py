"""switching: a two-regime Markov-switching linear model.

Equations (state ``s = (x, pi, i)``: output gap, quarterly inflation and quarterly interest rate
as fractions, deviations from steady state; two shocks ``demand``, ``cost_push``)::

    s[t] = A_{r[t]} s[t-1] + B_{r[t]} eps[t],      s[-1] = 0
    y[t] = C s[t],      C = diag(100, 400, 400)
    A_r  = rho_r * A_SHAPE,      B_r = sigma_r * B_SHAPE
    Pr(r[t] = j | r[t-1] = i) = P[i, j],   P = [[p00, 1 - p00], [1 - p11, p11]]
    r[0] ~ stationary distribution  pi = ((1 - p11), (1 - p00)) / (2 - p00 - p11)

``C`` is the canonical mapping of the spec (output = 100 x, inflation = 400 pi, rate = 400 i), so
the observables are in percent and annualized percentage points. The fixed matrices::

    A_SHAPE = [[1.0, 0.0, 0.0],      B_SHAPE = [[1.0, -0.5],
               [0.1, 0.8, 0.0],                 [0.1,  0.3],
               [0.2, 0.3, 0.5]]                 [0.1,  0.1]]

``A_SHAPE`` is lower triangular with eigenvalues (1, 0.8, 0.5): the output gap is the most
persistent state, inflation responds to the lagged gap, the rate to lagged gap and inflation
(a smoothed policy rule). Its spectral radius is exactly 1, so ``A_r`` has spectral radius
``rho_r`` (regime 0 calm: ``rho_0`` in 0.3-0.8, ``sigma_0`` in 0.005-0.02; regime 1 turbulent:
``rho_1`` in 0.7-0.95, ``sigma_1`` in 0.02-0.05). A demand shock raises the gap, inflation and the
rate; a cost-push shock raises inflation and lowers the gap. Measured stationary standard
deviations of the observables (20,000 draws): median 5.1, 10-90 % range 3.2-9.0, 1-99 % range
2.3-15.4 (percent / annualized pp).

Mean-square stability: the second-moment operator has blocks ``(j, i) = P[i, j] (A_j kron A_j) =
P[i, j] rho_j^2 (A_SHAPE kron A_SHAPE)``, i.e. it is ``M kron K`` with ``M[j, i] = P[i, j] rho_j^2``
and ``K = A_SHAPE kron A_SHAPE``. Its spectral radius is ``rho(M) rho(K) = rho(M)`` (``rho(K) = 1``);
``is_valid`` requires ``rho(M) < 1`` (closed-form Perron root of the 2 x 2 ``M``). Because every
column sum of ``M`` is at most ``max(rho_0, rho_1)^2 < 1``, every draw inside the bounds is
mean-square stable; the check guards theta supplied from outside.

Regimes: drawn in :meth:`draw_metadata` from the block's metadata stream as
``u = rng.random((n, T))``: ``r[0] = 1`` iff ``u[:, 0] < pi_1``; ``r[t] = 1`` iff ``u[:, t] < p11``
when ``r[t-1] = 1`` and iff ``u[:, t] < 1 - p00`` when ``r[t-1] = 0``. Stored as ``regime`` (int8).

IRFs: the exact expected response over regime paths, ``r[0]`` from ``pi``: with
``m_j(h) = E[s_h 1{r_h = j}]``, ``m_j(0) = pi_j B_j e_k`` and
``m_j(h) = A_j sum_i P[i, j] m_i(h - 1)``; ``irfs[k, h] = C sum_j m_j(h)`` (no Monte Carlo).

Splits: slice ``max(p00, p11) > 0.97774`` (2.5 % of the prior); corner from the exact stationary
moments (solve ``(I - T) vec Q = q`` for ``Q_j = E[s s' 1{r = j}]``): persistence = mean
first-order autocorrelation of the three observables, volatility = their mean standard deviation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from macro_data.errors import WorldError
from macro_data.worlds.base import (
    CornerRule,
    MetadataField,
    Observable,
    Parameter,
    Priors,
    Simulation,
    SliceRule,
    World,
)
from macro_data.worlds.statespace import (
    autocorrelation_and_sd,
    by_rows,
    chunked,
    matmul_first,
    samples_last,
    simulate_switching,
    stationary_second_moments,
)

A_SHAPE = np.array([[1.0, 0.0, 0.0], [0.1, 0.8, 0.0], [0.2, 0.3, 0.5]])
B_SHAPE = np.array([[1.0, -0.5], [0.1, 0.3], [0.1, 0.1]])
C_OBS = np.diag([100.0, 400.0, 400.0])
K = 3
R = 2

# Slice: p00, p11 iid U(0.8, 0.98) and every draw is valid, so P(max > t) = 1 - ((t - 0.8)/0.18)^2
# = 0.025 at t = 0.8 + 0.18 sqrt(0.975) = 0.97774; Monte Carlo of 200,000 draws (seed 20240601) gave 0.0248.
SLICE_THRESHOLD = 0.97774
# Corner thresholds: Monte Carlo of 200,000 valid draws (seed 20240601), equal tail
# probabilities of both statistics among draws outside the slice, scaled so the joint region
# holds 2.5 % of all draws (marginal tails 4.5 % each; measured joint 2.499 %); thresholds rounded to 4 digits.
CORNER_PERSISTENCE = 0.9153
CORNER_VOLATILITY = 10.62


class Switching(World):
    name = "switching"
    description = (
        "Two-regime Markov-switching linear model s[t] = A_r s[t-1] + B_r eps[t], y = C s, "
        "calm and turbulent regimes, exact regime-averaged IRFs."
    )
    parameters = (
        Parameter("rho_0", "1", "spectral radius of A_0 (calm regime)", 0.3, 0.8, None),
        Parameter(
            "sigma_0",
            "quarterly fraction",
            "innovation scale of the calm regime (B_0 = sigma_0 B_SHAPE)",
            0.005,
            0.02,
            None,
        ),
        Parameter("rho_1", "1", "spectral radius of A_1 (turbulent regime)", 0.7, 0.95, None),
        Parameter(
            "sigma_1",
            "quarterly fraction",
            "innovation scale of the turbulent regime (B_1 = sigma_1 B_SHAPE)",
            0.02,
            0.05,
            None,
        ),
        Parameter("p00", "probability", "Pr(calm next quarter | calm now)", 0.8, 0.98, None),
        Parameter("p11", "probability", "Pr(turbulent next quarter | turbulent now)", 0.8, 0.98, None),
    )
    shocks = ("demand", "cost_push")
    metadata_fields = (
        MetadataField(
            "regime", "int8", "regime r[t] (0 calm, 1 turbulent), r[0] from the stationary distribution", stage="draws"
        ),
    )
    linear = False
    slice_rule = SliceRule(
        "max(p00, p11)",
        SLICE_THRESHOLD,
        "above",
        "most persistent regime, max(p00, p11) > 0.97774: 2.5 % of the prior in closed form "
        "(p00, p11 iid U(0.8, 0.98), every draw valid); Monte Carlo 200,000 draws: 2.48 %",
    )
    corner_rule = CornerRule(
        "mean_i autocorr1(y_i)",
        CORNER_PERSISTENCE,
        "mean_i sd(y_i)",
        CORNER_VOLATILITY,
        "outside the slice, mean over output, inflation, rate of the stationary lag-1 autocorrelation "
        "> 0.9153 and of the stationary standard deviation > 10.62, both exact from the second moments of "
        "the switching system (regimes ergodic); Monte Carlo 200,000 draws: 2.50 %",
    )
    design_notes = (
        "State s = (output gap, quarterly inflation, quarterly rate) as fractions; C = diag(100, 400, 400) "
        "is the canonical mapping (percent, annualized pp).",
        "A_r = rho_r * A_SHAPE, A_SHAPE = [[1, 0, 0], [0.1, 0.8, 0], [0.2, 0.3, 0.5]] (spectral radius 1); "
        "B_r = sigma_r * B_SHAPE, B_SHAPE = [[1, -0.5], [0.1, 0.3], [0.1, 0.1]] (shocks demand, cost_push).",
        "Mean-square stability: spectral radius of M = diag(rho_0^2, rho_1^2) P' (equal to that of the full "
        "second-moment operator since rho(A_SHAPE kron A_SHAPE) = 1) must be below 1; always true inside "
        "the bounds.",
        "Regime path: u = rng.random((n, T)) from the metadata stream; r[0] = [u0 < pi_1]; "
        "r[t] = [u_t < p11] if r[t-1] = 1 else [u_t < 1 - p00].",
        "IRFs: exact expectation over regime paths with r[0] from the stationary distribution.",
        "linear = False: trajectories depend on the regime path, so the convolution identity with the "
        "(expected) IRFs does not hold path by path.",
    )

    # ---- pieces -----------------------------------------------------------------------------------
    @staticmethod
    def _cols(theta: np.ndarray):
        th = np.asarray(theta, dtype=np.float64)
        return th[:, 0], th[:, 1], th[:, 2], th[:, 3], th[:, 4], th[:, 5]

    def transition(self, theta: np.ndarray) -> np.ndarray:
        """``P (n, 2, 2)``, ``P[i, j] = Pr(r[t] = j | r[t-1] = i)``."""
        *_, p00, p11 = self._cols(theta)
        return np.stack([np.stack([p00, 1 - p00], -1), np.stack([1 - p11, p11], -1)], 1)

    def stationary(self, theta: np.ndarray) -> np.ndarray:
        """Stationary regime distribution ``(n, 2)``."""
        *_, p00, p11 = self._cols(theta)
        d = 2.0 - p00 - p11
        return np.stack([(1.0 - p11) / d, (1.0 - p00) / d], -1)

    def regime_matrices(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A (n, 2, 3, 3)`` and ``B (n, 2, 3, 2)`` per regime."""
        rho0, sig0, rho1, sig1, _, _ = self._cols(theta)
        A = np.stack([rho0, rho1], 1)[:, :, None, None] * A_SHAPE
        B = np.stack([sig0, sig1], 1)[:, :, None, None] * B_SHAPE
        return A, B

    def mss_radius(self, theta: np.ndarray) -> np.ndarray:
        """Spectral radius of the second-moment operator (closed form, see module docs)."""
        rho0, _, rho1, _, p00, p11 = self._cols(theta)
        a, d = p00 * rho0**2, p11 * rho1**2
        det = rho0**2 * rho1**2 * (p00 + p11 - 1.0)
        tr = a + d
        return 0.5 * (tr + np.sqrt(np.maximum(tr * tr - 4.0 * det, 0.0)))

    # ---- draws ------------------------------------------------------------------------------------
    def propose(self, rng: np.random.Generator, n: int, priors: Priors) -> np.ndarray:
        return self.propose_independent(rng, n, priors)

    def is_valid(self, theta: np.ndarray) -> np.ndarray:
        rho0, sig0, rho1, sig1, p00, p11 = self._cols(theta)
        ok = (p00 >= 0) & (p00 <= 1) & (p11 >= 0) & (p11 <= 1) & (p00 + p11 < 2)
        ok &= (rho0 >= 0) & (rho1 >= 0) & (sig0 > 0) & (sig1 > 0)
        return ok & (self.mss_radius(theta) < 1.0)

    def draw_metadata(self, rng: np.random.Generator, theta: np.ndarray, T: int) -> dict[str, np.ndarray]:
        n = theta.shape[0]
        u = rng.random((n, T))
        *_, p00, p11 = self._cols(theta)
        pi1 = self.stationary(theta)[:, 1]
        r = np.empty((n, T), dtype=np.int8)
        r[:, 0] = u[:, 0] < pi1
        for t in range(1, T):
            r[:, t] = np.where(r[:, t - 1] == 1, u[:, t] < p11, u[:, t] < 1.0 - p00)
        return {"regime": r}

    # ---- science ----------------------------------------------------------------------------------
    def _regimes(self, metadata: Mapping[str, np.ndarray]) -> np.ndarray:
        r = np.asarray(metadata["regime"])
        bad = ~np.isin(r, (0, 1))
        if bad.any():
            i, t = np.argwhere(bad)[0]
            raise WorldError(
                f"world {self.name!r}: metadata 'regime' of draw {i} at t={t} is {r[i, t]!r}; "
                "regimes must be 0 (calm) or 1 (turbulent)"
            )
        return r.astype(np.intp)

    def _simulate(self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray]) -> Simulation:
        r = self._regimes(metadata)
        A, B = self.regime_matrices(theta)
        traj = by_rows(
            lambda lo, hi: simulate_switching(
                samples_last(A[lo:hi]), samples_last(B[lo:hi]), C_OBS[:, :, None], eps[lo:hi], r[lo:hi]
            ),
            theta.shape[0],
        )
        return Simulation(trajectories=traj)

    def _irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        return by_rows(lambda lo, hi: self._expected_irfs(theta[lo:hi], H), theta.shape[0])

    def _expected_irfs(self, theta: np.ndarray, H: int, pi: np.ndarray | None = None) -> np.ndarray:
        """Expected responses with the impact regime distributed as ``pi (2, n)`` (default: stationary)."""
        from macro_data.worlds.recursions import expected_responses  # numba: imported by the processes that simulate

        A, B = self.regime_matrices(theta)
        P = samples_last(self.transition(theta))  # (2, 2, n)
        pi = samples_last(self.stationary(theta)) if pi is None else pi  # (2, n)
        m0 = np.moveaxis(B, 0, -1) * pi[:, None, None, :]  # m_j(0) = pi_j B_j, (2, 3, S, n)
        out = np.empty((theta.shape[0], B.shape[-1], H + 1, C_OBS.shape[0]))
        expected_responses(np.ascontiguousarray(np.moveaxis(A, 0, -1)), P, np.ascontiguousarray(m0), C_OBS, out)
        return out

    # ---- state-dependent IRFs (docs/worlds.md) ----------------------------------------------------------
    # x[t] = A_r[t] x[t-1] + B_r[t] eps[t] is linear in x[t-1] on every regime path and the regimes are
    # exogenous (independent of eps and x), so shocked minus baseline cancels x[t-1] path by path: the
    # response depends on the state only through the regime in force at t.
    state_variables = tuple(
        Observable(f"s_{a}", "model units", f"x[t-1][{a}] (observable {a} is {int(C_OBS[a, a])} x[a])")
        for a in range(K)
    )
    state_labels = (
        MetadataField(
            "state_regime", "int8", "the regime r[t] in force at the state date t (0 calm, 1 turbulent)", "simulation"
        ),
    )

    def conditional_irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        """``(n, 2, S, H + 1, 3)``: the expected IRFs given the regime in force at impact (0, then 1)."""
        n = theta.shape[0]
        parts = []
        for r in range(R):
            pi = np.zeros((R, n))
            pi[r] = 1.0
            parts.append(by_rows(lambda lo, hi, pi=pi: self._expected_irfs(theta[lo:hi], H, pi[:, lo:hi]), n))
        return np.stack(parts, axis=1)

    def _state_path(self, theta, eps, metadata, sim) -> np.ndarray:
        r = self._regimes(metadata)
        A, B = self.regime_matrices(theta)
        eye = np.eye(K)[:, :, None]
        x = by_rows(
            lambda lo, hi: simulate_switching(
                samples_last(A[lo:hi]), samples_last(B[lo:hi]), eye, eps[lo:hi], r[lo:hi]
            ),
            theta.shape[0],
        )
        out = np.zeros_like(x)
        out[:, 1:] = x[:, :-1]
        return out

    def _state_irfs(self, theta, eps, metadata, sim, dates, H) -> np.ndarray:
        cond = self.conditional_irfs(theta, H)  # (n, 2, S, H + 1, 3)
        regime = self._regimes(metadata)[np.arange(dates.shape[0])[:, None], dates]  # (n, K)
        return cond[np.arange(dates.shape[0])[:, None], regime]

    def label_states(self, theta, metadata, sim, dates) -> dict[str, np.ndarray]:
        r = np.asarray(metadata["regime"])
        return {"state_regime": r[np.arange(dates.shape[0])[:, None], dates].astype(np.int8)}

    # ---- splits -----------------------------------------------------------------------------------
    def slice_statistic(self, theta: np.ndarray) -> np.ndarray:
        *_, p00, p11 = self._cols(theta)
        return np.maximum(p00, p11)

    def stationary_moments(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Gamma_0, Gamma_1)`` of ``y``: ``E[y y']`` and ``E[y_t y_{t-1}']`` under the ergodic distribution."""
        A, B = self.regime_matrices(theta)
        P = self.transition(theta)
        pi = self.stationary(theta)
        BBt = matmul_first(B.reshape(-1, K, B.shape[-1]), B.reshape(-1, K, B.shape[-1]).transpose(0, 2, 1))
        Q = stationary_second_moments(A, P, pi, BBt.reshape(A.shape))
        n = A.shape[0]
        C = np.broadcast_to(C_OBS, (n, K, K))
        S0 = Q[:, 0] + Q[:, 1]
        # E[s_t s_{t-1}'] = sum_j A_j sum_i P[i, j] Q_i
        S1 = np.zeros_like(S0)
        for j in range(R):
            S1 += matmul_first(A[:, j], P[:, 0, j, None, None] * Q[:, 0] + P[:, 1, j, None, None] * Q[:, 1])
        G0 = matmul_first(matmul_first(C, S0), C.transpose(0, 2, 1))
        G1 = matmul_first(matmul_first(C, S1), C.transpose(0, 2, 1))
        return G0, G1

    def corner_statistics(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return chunked(lambda th: autocorrelation_and_sd(*self.stationary_moments(th)), np.asarray(theta))


WORLD = Switching()
