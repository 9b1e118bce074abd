"""rbc: the log-linearized real business cycle model (``docs/worlds.md``, section "rbc").

Household utility ``E sum beta^t b[t] (C^(1-gamma)/(1-gamma) - chi N^(1+1/nu)/(1+1/nu))``,
technology ``Y = A K^alpha N^(1-alpha)``, ``K' = (1-delta) K + I``, ``Y = C + I``.
Steady state: ``Rk = 1/beta - 1 + delta``, ``K/Y = alpha/Rk``, ``I/Y = delta K/Y``, ``C/Y = 1 - I/Y``.
In log deviations (``k[t]`` is capital at the start of ``t``, predetermined)::

    y[t]   = a[t] + alpha k[t] + (1-alpha) n[t]
    gamma c[t] + n[t]/nu = y[t] - n[t]                              (labour supply = MPL)
    k[t+1] = (1-delta) k[t] + delta inv[t]
    y[t]   = (C/Y) c[t] + (I/Y) inv[t]
    r[t+1] = (1 - beta (1-delta)) (y[t+1] - k[t+1])                 (gross return on capital)
    gamma E c[t+1] - gamma c[t] = E r[t+1] + E b[t+1] - b[t]        (Euler)
    a[t] = rho_a a[t-1] + sigma_a eps_a[t];   b[t] = rho_b b[t-1] + sigma_b eps_b[t]

Shocks, in order: ``technology`` (``eps_a``), ``preference`` (``eps_b``).

Reduction (how it is solved). The static block is substituted out: with
``phi = (1-alpha)/(alpha + 1/nu)``,

    n   = (a + alpha k - gamma c) / (alpha + 1/nu)
    y   = (1+phi) a + alpha (1+phi) k - gamma phi c
    inv = (y - (C/Y) c) / (I/Y)

which leaves ``A E_t z[t+1] = B z[t]`` in ``z = [a, b, k; c]`` (three predetermined, one jump)::

    rows a, b:  E a' = rho_a a,  E b' = rho_b b
    row k:      k' = (1-delta) k + delta inv(a, k, c)
    row Euler:  gamma c' - R (y'(a', k', c') - k') - b' = gamma c - b,   R = 1 - beta (1-delta)

The lead matrix ``A`` is the identity except for the Euler row, whose ``c'`` coefficient is
``gamma (1 + R phi) > 0``, so ``A`` is invertible for every admissible draw. The shared batched
solver (:func:`macro_data.worlds.linear_re.solve_re`) returns the saddle-path policy
``c[t] = F [a, b, k][t]`` and the determinacy flag; a draw is valid iff the solution is unique
(exactly one unstable root for the one jump). The state then moves as

    a[t] = rho_a a[t-1] + sigma_a eps_a[t],  b[t] = rho_b b[t-1] + sigma_b eps_b[t],
    k[t+1] = p_a a[t] + p_b b[t] + p_k k[t],   [p_a, p_b, p_k] = B_k,abk + B_k,c F,

and every observable is recovered from the state by the static block above. The exogenous rows
use ``rho_a``, ``rho_b`` exactly and the capital row is rebuilt from ``B`` and ``F`` (this is the
solver's ``P`` row in exact arithmetic), so the accumulation identity holds to rounding.

Observables (a documented design choice, since the RBC has no money):

* ``output`` = ``100 y[t]``;
* ``inflation`` = ``400 (c[t] - c[t-1])`` (annualized consumption growth), with ``c[-1] = 0``
  (the steady state), so ``inflation[0] = 400 c[0]``;
* ``rate`` = ``400 E_t r[t+1]`` (annualized ex-ante gross return on capital, deviation), where
  ``E_t r[t+1] = R (E_t y[t+1] - k[t+1])`` and ``E_t y[t+1]`` applies the static block to
  ``(rho_a a[t], rho_b b[t], k[t+1])``;
* extras ``consumption`` = ``100 c``, ``investment`` = ``100 inv``, ``hours`` = ``100 n``,
  ``capital`` = ``100 k[t]`` (capital at the start of ``t``; ``capital[0] = 0``).

Splits (calibrated once; see :data:`SLICE_THRESHOLD`, :data:`CORNER_PERSISTENCE_THRESHOLD`,
:data:`CORNER_VOLATILITY_THRESHOLD`): every draw inside the bounds has a unique saddle path
(no rejections were seen in 10^6 prior draws), so the prior mass of valid draws is the uniform
prior itself and the thresholds follow in closed form; a Monte Carlo check confirmed them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from macro_data.errors import WorldError
from macro_data.worlds.base import (
    CornerRule,
    LastFew,
    Observable,
    Parameter,
    Priors,
    Simulation,
    SliceRule,
    World,
)
from macro_data.worlds.linear_re import solve_re
from macro_data.worlds.statespace import each_sample

# Slice: rho_a ~ U(0, 0.99); P(rho_a > 0.965) = 0.025 / 0.99 = 0.02525. Monte Carlo over 10^6
# prior proposals (numpy default_rng(0), float32-rounded, all 10^6 valid by world.valid): 0.02523.
SLICE_THRESHOLD = 0.965
# Corner, among draws outside the slice: max(rho_a, rho_b) > 0.875 and max(sigma_a, sigma_b) > 0.0188.
# Closed form (independent uniforms): P(rho_a <= 0.965) - 0.875^2 / (0.99 * 0.95) = 0.16069 for the
# persistence part, 1 - ((0.0188 - 0.005) / 0.015)^2 = 0.1536 for the volatility part, jointly
# 0.02468 of the prior mass; the two tails were balanced (~0.16 each). Monte Carlo over 10^6 valid
# prior proposals (same run): 0.02478.
CORNER_PERSISTENCE_THRESHOLD = 0.875
CORNER_VOLATILITY_THRESHOLD = 0.0188

_N_PRE = 3  # predetermined: a, b, k; jump: c
_CHUNK = 256  # samples per simulation pass (a cache size, not a seeding constant)


@dataclass
class _Solved:
    """Per-draw coefficients of the solved model, each ``(n,)`` (broadcast against ``(T, n)``)."""

    rho_a: np.ndarray
    rho_b: np.ndarray
    sigma_a: np.ndarray
    sigma_b: np.ndarray
    alpha: np.ndarray
    gamma: np.ndarray
    delta: np.ndarray
    labour: np.ndarray  # 1 / (alpha + 1/nu)
    c_y: np.ndarray  # C/Y
    i_y: np.ndarray  # I/Y
    R: np.ndarray  # 1 - beta (1 - delta)
    f_a: np.ndarray  # c = f_a a + f_b b + f_k k
    f_b: np.ndarray
    f_k: np.ndarray
    p_a: np.ndarray  # k' = p_a a + p_b b + p_k k
    p_b: np.ndarray
    p_k: np.ndarray

    def rows(self, lo: int, hi: int) -> _Solved:
        return _Solved(**{k: v[lo:hi] for k, v in vars(self).items()})

    def tiled(self, reps: int) -> _Solved:
        return _Solved(**{k: np.tile(v, reps) for k, v in vars(self).items()})


def steady_state(theta: np.ndarray) -> dict[str, np.ndarray]:
    """Steady-state ratios of the spec, each ``(n,)``: ``Rk``, ``K_Y``, ``I_Y``, ``C_Y`` and
    ``R = 1 - beta (1 - delta)`` (the elasticity of the gross return to ``y - k``).

    Parameters
    ----------
    theta : array_like, shape (n, 9)
        rbc parameter vectors (``beta``, ``alpha``, ``delta`` first).

    Returns
    -------
    dict of str to ndarray of float64, shape (n,)
        ``Rk`` (rental rate, per quarter), ``K_Y`` (capital over quarterly output), ``I_Y``, ``C_Y``
        (shares of output) and ``R``.

    Raises
    ------
    WorldError
        If ``theta`` is not ``(n, 9)``.
    """
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 2 or theta.shape[1] != 9:
        raise WorldError(f"world 'rbc': theta must have shape (n, 9); got shape {theta.shape}")
    beta, alpha, delta = theta[:, 0], theta[:, 1], theta[:, 2]
    rk = 1.0 / beta - 1.0 + delta
    k_y = alpha / rk
    i_y = delta * k_y
    return {"Rk": rk, "K_Y": k_y, "I_Y": i_y, "C_Y": 1.0 - i_y, "R": 1.0 - beta * (1.0 - delta)}


class RBC(World):
    name = "rbc"
    description = (
        "Log-linearized real business cycle model (CRRA consumption, Frisch labour supply, "
        "Cobb-Douglas technology, capital accumulation) with AR(1) technology and "
        "preference shocks, solved for its unique saddle path."
    )
    parameters = (
        Parameter("beta", "quarterly factor", "discount factor", 0.985, 0.995, 0.99),
        Parameter("alpha", "share", "capital share in Y = A K^alpha N^(1-alpha)", 0.25, 0.40, 0.33),
        Parameter("delta", "quarterly fraction", "depreciation rate of capital", 0.02, 0.03, 0.025),
        Parameter("nu", "elasticity", "Frisch elasticity of labour supply", 0.5, 3.0, 1.0),
        Parameter("gamma", "coefficient", "relative risk aversion (CRRA) of consumption", 1.0, 3.0, 1.0),
        Parameter("rho_a", "AR(1) coefficient", "persistence of technology a[t]", 0.0, 0.99, 0.95),
        Parameter(
            "sigma_a", "log points per quarter", "standard deviation of the technology innovation", 0.005, 0.02, 0.007
        ),
        Parameter("rho_b", "AR(1) coefficient", "persistence of the preference shifter b[t]", 0.0, 0.95, 0.5),
        Parameter(
            "sigma_b", "log points per quarter", "standard deviation of the preference innovation", 0.005, 0.02, 0.01
        ),
    )
    shocks = ("technology", "preference")
    observables = (
        Observable("output", "percent", "100 x y[t], log deviation of output from its steady state"),
        Observable(
            "inflation",
            "annualized percentage points",
            "RBC has no money: 400 x (c[t] - c[t-1]), annualized consumption growth (deviation), "
            "with c[-1] = 0 (steady state)",
        ),
        Observable(
            "rate",
            "annualized percentage points",
            "400 x E_t r[t+1], annualized ex-ante gross real return on capital (deviation), "
            "r[t+1] = (1 - beta (1 - delta)) (y[t+1] - k[t+1])",
        ),
    )
    extras = (
        Observable("consumption", "percent", "100 x c[t], log deviation of consumption"),
        Observable("investment", "percent", "100 x inv[t], log deviation of investment"),
        Observable("hours", "percent", "100 x n[t], log deviation of hours worked"),
        Observable(
            "capital",
            "percent",
            "100 x k[t], log deviation of capital at the start of period t (predetermined; k[0] = 0)",
        ),
    )
    state_variables = (
        Observable("technology_lag", "percent", "100 a[t-1], the technology process"),
        Observable("preference_lag", "percent", "100 b[t-1], the preference process"),
        Observable("capital", "percent", "100 k[t], capital at the start of t (chosen in t-1, predetermined)"),
        Observable("consumption_lag", "percent", "100 c[t-1] (the inflation observable is consumption growth)"),
    )
    slice_rule = SliceRule(
        "rho_a",
        SLICE_THRESHOLD,
        "above",
        "technology persistence rho_a > 0.965: 2.525 % of the prior mass in closed form "
        "(rho_a ~ U(0, 0.99), every in-bounds draw valid); Monte Carlo 10^6 valid draws: 2.523 %",
    )
    corner_rule = CornerRule(
        "max(rho_a, rho_b)",
        CORNER_PERSISTENCE_THRESHOLD,
        "max(sigma_a, sigma_b)",
        CORNER_VOLATILITY_THRESHOLD,
        "outside the slice, largest shock persistence max(rho_a, rho_b) > 0.875 and largest innovation "
        "scale max(sigma_a, sigma_b) > 0.0188: 2.468 % of the prior mass in closed form "
        "(tails 16.07 % x 15.36 %, independent); Monte Carlo 10^6 valid draws: 2.478 %",
    )
    design_notes = (
        "Canonical mapping (RBC has no money): output = 100 y; inflation = 400 (c[t] - c[t-1]) "
        "(annualized consumption growth) with c[-1] = 0, so inflation[0] = 400 c[0]; rate = 400 E_t r[t+1] "
        "(annualized ex-ante gross return on capital).",
        "Extras consumption, investment, hours, capital are 100 x log deviations; capital is k[t], capital "
        "at the start of period t (predetermined, so capital[0] = 0).",
        "Solution: static variables (y, n, inv, r) substituted out; A E z[t+1] = B z[t] with z = [a, b, k; c] "
        "solved by the shared batched solver macro_data.worlds.linear_re.solve_re; valid iff determinate "
        "(unique saddle path). Exogenous rows use rho_a, rho_b exactly; the capital row is B_k + B_kc F.",
        "The preference shifter b multiplies the whole period utility, so it enters only the Euler "
        "equation (labour supply is unaffected), exactly as in the spec's equations.",
        "Splits: slice rho_a > 0.965; corner max(rho_a, rho_b) > 0.875 and max(sigma_a, sigma_b) > 0.0188 "
        "(persistence and volatility of the two shock processes); thresholds from the closed-form prior "
        "mass (every in-bounds draw is valid) and checked by Monte Carlo.",
    )

    # ---- drawing and validity ---------------------------------------------------------------
    def propose(self, rng: np.random.Generator, n: int, priors: Priors) -> np.ndarray:
        return self.propose_independent(rng, n, priors)

    # The model and its reduction are defined (A invertible, steady state positive) on this domain.
    _DOMAIN = {
        "beta": (0.0, 1.0, "0 < beta < 1"),
        "alpha": (0.0, 1.0, "0 < alpha < 1"),
        "delta": (0.0, 1.0, "0 < delta <= 1"),
        "nu": (0.0, np.inf, "nu > 0"),
        "gamma": (0.0, np.inf, "gamma > 0"),
    }

    def _domain_violations(self, theta: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
        """``(parameter, rule, (n,) bool violated)`` for each domain rule of the model."""
        out = []
        with np.errstate(invalid="ignore"):
            for name, (lo, hi, rule) in self._DOMAIN.items():
                v = theta[:, self.index(name)]
                ok = (v > lo) & ((v <= hi) if name == "delta" else (v < hi))
                out.append((name, rule, ~ok))
            for name in ("sigma_a", "sigma_b"):
                out.append((name, f"{name} >= 0", ~(theta[:, self.index(name)] >= 0)))
            for name in ("rho_a", "rho_b"):
                out.append((name, f"{name} finite", ~np.isfinite(theta[:, self.index(name)])))
        return out

    def _admissible(self, theta: np.ndarray) -> np.ndarray:
        ok = np.ones(theta.shape[0], dtype=bool)
        for _, _, bad in self._domain_violations(theta):
            ok &= ~bad
        return ok

    def _checked_array(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta)
        P = len(self.parameters)
        if (
            theta.ndim != 2
            or theta.shape[1] != P
            or not np.issubdtype(theta.dtype, np.number)
            or np.iscomplexobj(theta)
        ):
            raise WorldError(
                f"world {self.name!r}: theta must be a real array of shape (n, {P}) "
                f"[{', '.join(self.parameter_names)}]; got shape {theta.shape}, dtype {theta.dtype}"
            )
        return theta.astype(np.float64)

    def system(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The reduced system ``A E_t z[t+1] = B z[t]``, ``z = [a, b, k, c]``: ``A, B (n, 4, 4)``.

        Meaningful for admissible draws (see :meth:`is_valid`); no bounds check here.
        """
        theta = self._checked_array(theta)
        beta, alpha, delta, nu, gamma, rho_a, _, rho_b, _ = theta.T
        ss = steady_state(theta)
        R, c_y, i_y = ss["R"], ss["C_Y"], ss["I_Y"]
        phi = (1.0 - alpha) / (alpha + 1.0 / nu)
        n = theta.shape[0]
        A = np.zeros((n, 4, 4))
        B = np.zeros((n, 4, 4))
        A[:, 0, 0] = A[:, 1, 1] = A[:, 2, 2] = 1.0
        B[:, 0, 0] = rho_a
        B[:, 1, 1] = rho_b
        # k' = (1-delta) k + (delta / (I/Y)) (y - (C/Y) c), y = (1+phi) a + alpha (1+phi) k - gamma phi c
        d = delta / i_y
        B[:, 2, 0] = d * (1.0 + phi)
        B[:, 2, 2] = (1.0 - delta) + d * alpha * (1.0 + phi)
        B[:, 2, 3] = -d * (gamma * phi + c_y)
        # Euler: gamma c' - R (y' - k') - b' = gamma c - b
        A[:, 3, 0] = -R * (1.0 + phi)
        A[:, 3, 1] = -1.0
        A[:, 3, 2] = -R * (alpha * (1.0 + phi) - 1.0)
        A[:, 3, 3] = gamma * (1.0 + R * phi)
        B[:, 3, 1] = -1.0
        B[:, 3, 3] = gamma
        return A, B

    def is_valid(self, theta: np.ndarray) -> np.ndarray:
        """Admissible (model defined) and determinate: exactly one unstable root for the one jump."""
        theta = self._checked_array(theta)
        ok = self._admissible(theta)
        if ok.any():
            A, B = self.system(theta[ok])
            ok[ok] = self._solve_re(A, B).determinate
        return ok

    @staticmethod
    def _solve_re(A: np.ndarray, B: np.ndarray):
        return solve_re(A, B, _N_PRE)

    # ---- solution -----------------------------------------------------------------------------
    @functools.cached_property
    def _solutions(self) -> LastFew:
        return LastFew(size=4)

    def solve(self, theta: np.ndarray) -> _Solved:
        """Saddle-path coefficients of in-bounds draws; :class:`WorldError` if a draw has none. The
        last few batches' solutions are kept (shared, not to be modified): simulating a batch and
        its impulse responses then solves it once."""
        return self._solutions.get(self._checked_array(theta), self._solve)

    def _solve(self, theta: np.ndarray) -> _Solved:  # theta: checked by solve, float64
        for name, rule, bad in self._domain_violations(theta):
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise WorldError(
                    f"world {self.name!r}: parameter {name!r} of draw {i} is "
                    f"{theta[i, self.index(name)]!r}, outside the model's domain ({rule})"
                )
        A, B = self.system(theta)
        sol = self._solve_re(A, B)
        if not np.all(sol.determinate):
            i = int(np.flatnonzero(~sol.determinate)[0])
            raise WorldError(
                f"world {self.name!r}: draw {i} has no unique saddle-path solution "
                f"({int(sol.n_unstable[i])} unstable roots for 1 jump variable): "
                + ", ".join(f"{p}={v!r}" for p, v in zip(self.parameter_names, theta[i].tolist()))
            )
        beta, alpha, delta, nu, gamma, rho_a, sigma_a, rho_b, sigma_b = theta.T
        ss = steady_state(theta)
        f_a, f_b, f_k = sol.F[:, 0, 0], sol.F[:, 0, 1], sol.F[:, 0, 2]
        b_kc = B[:, 2, 3]
        return _Solved(
            rho_a=rho_a,
            rho_b=rho_b,
            sigma_a=sigma_a,
            sigma_b=sigma_b,
            alpha=alpha,
            gamma=gamma,
            delta=delta,
            labour=1.0 / (alpha + 1.0 / nu),
            c_y=ss["C_Y"],
            i_y=ss["I_Y"],
            R=ss["R"],
            f_a=f_a,
            f_b=f_b,
            f_k=f_k,
            p_a=B[:, 2, 0] + b_kc * f_a,
            p_b=b_kc * f_b,
            p_k=B[:, 2, 2] + b_kc * f_k,
        )

    def _paths(
        self,
        s: _Solved,
        shock_a: np.ndarray,
        shock_b: np.ndarray,
        start: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
        head: np.ndarray | None = None,
        tail: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Observables from the steady state, given scaled innovations ``sigma eps`` as ``(T, m)``
        arrays, or from ``start = (a[-1], b[-1], k[0], c[-1])`` (model units, each ``(m,)``) if given:
        ``head (m, T, 3)`` [output, inflation, rate] and ``tail (m, T, 4)`` [consumption, investment,
        hours, capital], written into ``head`` and ``tail`` (C-contiguous float64) when given. The
        states follow :func:`~macro_data.worlds.recursions.rbc_states`, the static block and the
        observables :func:`~macro_data.worlds.recursions.rbc_observables`."""
        T, m = shock_a.shape
        a = np.empty((T, m))
        b = np.empty((T, m))
        k = np.empty((T + 1, m))
        if start is None:
            k[0] = 0.0
            a[0] = shock_a[0]
            b[0] = shock_b[0]
        else:
            k[0] = start[2]
            a[0] = s.rho_a * start[0] + shock_a[0]
            b[0] = s.rho_b * start[1] + shock_b[0]
        # numba: imported by the processes that simulate
        from macro_data.worlds.recursions import rbc_observables, rbc_states

        coefs = (each_sample(v, m) for v in (s.rho_a, s.rho_b, s.p_a, s.p_b, s.p_k))
        shocks = (np.ascontiguousarray(x, dtype=np.float64) for x in (shock_a, shock_b))
        rbc_states(*coefs, *shocks, a, b, k)
        head = np.empty((m, T, 3)) if head is None else head
        tail = np.empty((m, T, 4)) if tail is None else tail
        c_prev = np.zeros(m) if start is None else each_sample(start[3], m)  # c[-1]: zero at the steady state
        static = (s.f_a, s.f_b, s.f_k, s.alpha, s.gamma, s.labour, s.c_y, s.i_y, s.R, s.rho_a, s.rho_b)
        rbc_observables(*(each_sample(v, m) for v in static), a, b, k, c_prev, head, tail)
        return head, tail

    def _simulate(self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray]) -> Simulation:
        s = self.solve(theta)
        n, T, _ = eps.shape
        traj = np.empty((n, T, 3))
        extras = np.empty((n, T, 4))
        # Fixed-size column chunks keep the (T, chunk) work arrays in cache; every operation is
        # element-wise per sample, so the chunking never changes a sample's numbers.
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            sc = s.rows(lo, hi)
            shock_a = np.ascontiguousarray(eps[lo:hi, :, 0].T) * sc.sigma_a
            shock_b = np.ascontiguousarray(eps[lo:hi, :, 1].T) * sc.sigma_b
            self._paths(sc, shock_a, shock_b, head=traj[lo:hi], tail=extras[lo:hi])
        return Simulation(trajectories=traj, extras=extras)

    def _state_path(self, theta, eps, metadata, sim) -> np.ndarray:
        th = np.asarray(theta, dtype=np.float64)
        n, T, _ = eps.shape
        out = np.zeros((n, T, 4))
        a, b = np.zeros(n), np.zeros(n)
        cols = [th[:, self.index(k)] for k in ("rho_a", "sigma_a", "rho_b", "sigma_b")]
        for t in range(T - 1):
            a = cols[0] * a + cols[1] * eps[:, t, 0]
            b = cols[2] * b + cols[3] * eps[:, t, 1]
            out[:, t + 1, 0] = 100.0 * a
            out[:, t + 1, 1] = 100.0 * b
        out[:, :, 2] = sim.extras[:, :, 3]
        out[:, 1:, 3] = sim.extras[:, :-1, 0]
        return out

    def _free_path(self, theta: np.ndarray, state: np.ndarray, T: int) -> np.ndarray:
        """The path with zero innovations from the state entering period 0.

        From ``(a[-1], b[-1], k[0], c[-1])`` the shocks decay, ``a[t] = rho_a^(t+1) a[-1]``,
        ``b[t] = rho_b^(t+1) b[-1]``, capital follows ``k[t+1] = p_a a[t] + p_b b[t] + p_k k[t]``, and
        the observables are the static block of the state as in :meth:`_simulate`; the inflation
        observable of period 0 is ``400 (c[0] - c[-1])``.

        Parameters
        ----------
        theta : ndarray of float64, shape (n, 9)
            Checked parameter vectors.
        state : ndarray of float64, shape (n, 4)
            ``(technology_lag, preference_lag, capital, consumption_lag)`` = ``100 (a[-1], b[-1], k[0],
            c[-1])``, percent (:attr:`state_variables`).
        T : int
            Number of periods, ``>= 1``.

        Returns
        -------
        ndarray of float64, shape (n, T, 3)
            Output (percent), inflation and rate (annualized percentage points).

        Raises
        ------
        WorldError
            If a draw has no unique saddle-path solution.
        """
        s = self.solve(theta)
        n = theta.shape[0]
        traj = np.empty((n, T, 3))
        zeros = np.zeros((T, min(n, _CHUNK)))
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            start = tuple(np.ascontiguousarray(state[lo:hi, j]) / 100.0 for j in range(4))
            z = zeros[:, : hi - lo]
            self._paths(s.rows(lo, hi), z, z, start, head=traj[lo:hi])
        return traj

    def _irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        return self.irfs_all(theta, H, checked=True)[..., :3]

    def irfs_all(self, theta: np.ndarray, H: int, *, checked: bool = False) -> np.ndarray:
        """IRFs of the canonical observables and the extras, ``(n, 2, H + 1, 7)``
        (last axis: output, inflation, rate, consumption, investment, hours, capital)."""
        if not checked:
            theta = self.check_theta(theta)
            H = self.check_horizon(H, self.name)
        s = self.solve(theta)
        n = theta.shape[0]
        result = np.empty((n, 2, H + 1, 7))
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            m = hi - lo
            sc = s.rows(lo, hi).tiled(2)  # columns [technology impulse; preference impulse]
            shock_a = np.zeros((H + 1, 2 * m))
            shock_b = np.zeros((H + 1, 2 * m))
            shock_a[0, :m] = sc.sigma_a[:m]
            shock_b[0, m:] = sc.sigma_b[m:]
            head, tail = self._paths(sc, shock_a, shock_b)  # (2m, H + 1, 3), (2m, H + 1, 4)
            result[lo:hi, :, :, :3] = head.reshape(2, m, H + 1, 3).transpose(1, 0, 2, 3)
            result[lo:hi, :, :, 3:] = tail.reshape(2, m, H + 1, 4).transpose(1, 0, 2, 3)
        return result

    # ---- splits -------------------------------------------------------------------------------
    def slice_statistic(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(theta, dtype=np.float64)[:, self.index("rho_a")]

    def corner_statistics(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.asarray(theta, dtype=np.float64)
        persistence = np.maximum(theta[:, self.index("rho_a")], theta[:, self.index("rho_b")])
        volatility = np.maximum(theta[:, self.index("sigma_a")], theta[:, self.index("sigma_b")])
        return persistence, volatility


WORLD = RBC()
