"""zlb: the nk model with a zero lower bound on the policy rate, solved by OccBin.

Same equations, parameters (first 12 theta columns) and shocks as :mod:`macro_data.worlds.nk`,
plus ``r_ss`` (steady-state nominal rate, annualized percent). The level of the policy rate is
``r_ss + 400 i[t] >= 0``, so with ``ib = -r_ss / 400`` the Taylor rule becomes::

    i[t] = max(ib, rho_i i[t-1] + (1 - rho_i) (phi_pi pi[t] + phi_y x[t]) + v[t])

and the IS and Phillips curves hold with expectations that know the bound.

Method: the piecewise-linear perfect-foresight solution (OccBin, Guerrieri and Iacoviello 2015).
Each period ``t``, given the state ``k = (i[t-1], v[t], rn[t], u[t])`` (the exogenous states
already include ``eps[t]``), the path ``h = 0, 1, ...`` that expects no future innovations
(``s[h] = rho^h s[0]``) is solved for a guessed set ``S`` of binding periods, the guess is
verified, and the period-``t`` values of the verified path are the simulated values.

* Initial guess: last period's verified binding periods shifted by one quarter (as in the
  original OccBin code: "consistent with expecting no additional shocks"); at ``t = 0`` and
  after a slack period, no binding period.
* Guess ``S = {}``: the path is the nk solution. If its rate never falls below ``ib`` over
  :data:`LOOKAHEAD` quarters the guess is verified and the period is computed by exactly the nk
  arithmetic, so paths on which the bound never binds equal nk bit for bit. A lower bound on
  the path's minimum (each state's term ``C[h] k`` at its own worst horizon, ``C[h] = R P^h``
  the rate loadings, less a rounding margin) skips the exact check for most periods.
* Other guesses: with the rule ``i = ib`` on ``S`` and the Taylor rule elsewhere, and the nk
  solution after the last binding period, the path follows from OccBin's regime-by-regime
  backward recursion: each period's jumps are affine in ``i[h-1]``, with coefficients computed
  from the last binding period back to ``h = 0``, then a forward pass from ``i[t-1]``
  (:mod:`macro_data.worlds.occbin` gives the formulas). The tests check it against an
  independent stacked solve with the bound.
* Update (OccBin's rule): a binding period stays binding while its shadow rate is at or below
  ``ib + BIND_TOL``, a slack period becomes binding when its rate is below ``ib`` (checked up to
  the last binding period and then on the unconstrained continuation over ``LOOKAHEAD``
  quarters). Stop when the guess repeats.

Limits, failing loudly (:class:`WorldError`) rather than silently: at most :data:`MAX_GUESSES`
rounds of guesses per period, binding periods only at ``h <`` :data:`MAX_BINDING_HORIZON`, and
non-finite paths raise.

Each draw is simulated on its own, one period after another, in compiled code
(:func:`macro_data.worlds.occbin.simulate_draws`, numba without fast-math): its numbers depend
on its own parameters and innovations only, by the same IEEE double operations in the order the
code writes them, whatever the batch and the machine (``test_zlb`` runs the kernel interpreted
and compiled and compares the bits).

Validity (a documented choice the spec leaves open): the spec requires a unique stable (bounded)
solution. At a fixed rate the model's backward dynamics are explosive (growth factor per quarter
of expected spell = the largest root of ``[[1, 1/sigma], [kappa, beta + kappa/sigma]]``, up to
~2.6 in this prior), and when the shock that holds the rate at the bound is persistent enough, no
bounded equilibrium exists: the Eggertsson-Woodford (2003) condition for a bounded solution while
a shock of persistence ``mu`` keeps the bound binding is

    (1 - mu) (1 - beta mu) > mu kappa / sigma.

A draw is valid iff its nk part is determinate and this holds for ``mu = max(rho_m, rho_r, rho_u)``
(any of the three shocks can push the rate to the bound). Under the uniform prior about 57 % of
raw draws fail it and are redrawn (the manifest records the rate). Without the rule, 13 % of
samples reach |y| > 1000 (up to 1e19, the "deflationary black hole"); with it none did in 3,072
draws x 200 quarters (p99 of a sample's sd: 11 % output, 25 pp inflation, 13 pp rate).

Outputs: canonical ``output = 100 x``, ``inflation = 400 pi``, ``rate = 400 i`` (the constrained
rate as a deviation from steady state, so ``rate >= -r_ss``; in binding periods it is set to
exactly ``-r_ss``). Extra ``shadow_rate`` = 400 x the unconstrained Taylor-rule value
``rho_i i[t-1] + (1 - rho_i)(phi_pi pi[t] + phi_y x[t]) + v[t]`` evaluated on the solved path
(equal to ``rate`` when the bound is slack). Metadata ``binding[t]`` = the bound binds in period
``t``. IRFs: ``y_shocked - y_baseline`` for a +1 sd innovation at ``h = 0`` from the steady
state with this same OccBin solution; the baseline is the steady state itself (zero, and the
bound is slack there since ``r_ss > 0``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from macro_data.errors import WorldError
from macro_data.worlds import nk
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
from macro_data.worlds.nk import NKSolution

# ---------------------------------------------------------------------------------------------
# Algorithm constants (recorded in design_notes)
# ---------------------------------------------------------------------------------------------
LOOKAHEAD = 256  # quarters of unconstrained continuation checked after the last binding period
MAX_BINDING_HORIZON = 256  # binding periods may be guessed only at h < this
MAX_GUESSES = 50  # guess-and-verify iterations per period
BIND_TOL = 1e-12  # a binding period stays binding while shadow <= ib + BIND_TOL (quarterly units)

# ---------------------------------------------------------------------------------------------
# Split constants, calibrated on the valid prior (the uniform box cut by the validity rule):
# ``python benchmarks/calibrate_splits.py zlb --n 200000 --seed 0``.
# ---------------------------------------------------------------------------------------------
# Slice: r_ss < 0.5 + 0.025 * 3.5 (lowest steady-state rates; r_ss is independent of validity).
# Closed form 0.025; Monte Carlo 0.02472.
SLICE_THRESHOLD = 0.5875
# Corner: the nk statistics; the validity rule removes most persistent shocks, so the persistence
# threshold is lower than nk's. Monte Carlo 0.02500 (marginal tails 16.0 %).
CORNER_PERSISTENCE_THRESHOLD = 0.7948
CORNER_VOLATILITY_THRESHOLD = 0.9524


def bounded_at_the_bound(theta: np.ndarray) -> np.ndarray:
    """``(n,) bool``: the Eggertsson-Woodford condition ``(1 - mu)(1 - beta mu) > mu kappa / sigma``,
    ``mu = max(rho_m, rho_r, rho_u)``: a bounded equilibrium exists while a shock of that persistence
    holds the rate at the bound (see the module docstring).

    Parameters
    ----------
    theta : array_like, shape (n, P)
        zlb (or nk) parameter vectors.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    th = np.asarray(theta, dtype=np.float64)
    names = [p.name for p in nk.NK_PARAMETERS]
    col = {n: th[:, names.index(n)] for n in ("beta", "sigma", "kappa", "rho_m", "rho_r", "rho_u")}
    mu = np.maximum(np.maximum(col["rho_m"], col["rho_r"]), col["rho_u"])
    return (1.0 - mu) * (1.0 - col["beta"] * mu) > mu * col["kappa"] / col["sigma"]


ZLB_PARAMETERS: tuple[Parameter, ...] = nk.NK_PARAMETERS + (
    Parameter(
        "r_ss",
        "annualized percent",
        "steady-state nominal policy rate; the rate level r_ss + 400 i may not fall below zero",
        0.5,
        4.0,
        2.0,
    ),
)
_R_SS = len(nk.NK_PARAMETERS)


def simulate_occbin(sol: NKSolution, r_ss: np.ndarray, eps: np.ndarray):
    """OccBin simulation: ``eps (m, T, 3)`` -> ``(traj (m, T, 3), shadow (m, T), binding (m, T))``.

    One draw at a time in compiled code (:mod:`macro_data.worlds.occbin`, which states the method).

    Parameters
    ----------
    sol : NKSolution
        The draws' unconstrained nk solution, coefficients ``(m,)``.
    r_ss : ndarray, shape (m,)
        Steady-state policy rate, annualized percent.
    eps : ndarray, shape (m, T, 3)
        Standard-normal innovations of the monetary, natural-rate and cost-push shocks.

    Returns
    -------
    traj : ndarray of float64, shape (m, T, 3)
        Output (percent), inflation and the constrained rate (annualized percentage points).
    shadow : ndarray of float64, shape (m, T)
        The shadow (unconstrained Taylor-rule) rate, annualized percentage points.
    binding : ndarray of bool, shape (m, T)
        Whether the bound binds.

    Raises
    ------
    WorldError
        A guessed path that is not finite, a binding period ``MAX_BINDING_HORIZON`` or more
        quarters ahead, or a draw not verified after ``MAX_GUESSES`` rounds of guesses.
    """
    # numba costs about 0.4 s to import: only processes that simulate pay it
    from macro_data.worlds import occbin

    m, T, _ = eps.shape
    par = occbin.parameter_table(sol, np.asarray(r_ss, dtype=np.float64))
    traj = np.empty((m, T, 3))
    shadow = np.empty((m, T))
    binding = np.zeros((m, T), dtype=bool)
    status = np.zeros(3, dtype=np.int64)
    occbin.simulate_draws(
        par,
        np.ascontiguousarray(eps, dtype=np.float64),
        LOOKAHEAD,
        MAX_BINDING_HORIZON,
        MAX_GUESSES,
        BIND_TOL,
        traj,
        shadow,
        binding,
        status,
    )
    code, j, t = (int(c) for c in status)
    if code != occbin.OK:
        where = f"world 'zlb': OccBin at t={t}, draw {j} (r_ss={float(r_ss[j]):.6g})"
        what = {
            occbin.NON_FINITE: "singular or non-finite path for a guess of binding periods",
            occbin.BEYOND: f"the bound would bind {MAX_BINDING_HORIZON} or more quarters ahead "
            f"(MAX_BINDING_HORIZON={MAX_BINDING_HORIZON})",
            occbin.NOT_VERIFIED: f"not verified after MAX_GUESSES={MAX_GUESSES} rounds of guesses",
        }[code]
        raise WorldError(f"{where}: {what}")
    return traj, shadow, binding


class ZLB(World):
    name = "zlb"
    description = (
        "The nk three-equation New Keynesian model with a zero lower bound on the policy-rate level "
        "r_ss + 400 i, solved by the OccBin piecewise-linear perfect-foresight method."
    )
    parameters = ZLB_PARAMETERS
    shocks = nk.NK_SHOCKS
    extras = (
        Observable(
            "shadow_rate",
            "annualized percentage points",
            "400 x the unconstrained Taylor-rule value rho_i i[t-1] + (1-rho_i)(phi_pi pi[t] + "
            "phi_y x[t]) + v[t] on the solved path, deviation from steady state; equals rate "
            "when the bound is slack",
        ),
    )
    metadata_fields = (
        MetadataField(
            "binding",
            "bool",
            "the zero lower bound binds in period t (rate = -r_ss); the binding fraction of a sample is its mean",
            "simulation",
        ),
    )
    linear = False
    slice_rule = SliceRule(
        "r_ss",
        SLICE_THRESHOLD,
        "below",
        f"r_ss < {SLICE_THRESHOLD}: the lowest steady-state rates (bound closest); 2.5 % of the valid prior "
        "(closed form; Monte Carlo 0.02472 with 200,000 valid draws)",
    )
    corner_rule = CornerRule(
        "max(rho_i, rho_m, rho_r, rho_u)",
        CORNER_PERSISTENCE_THRESHOLD,
        "max(sigma_m/0.01, sigma_r/0.02, sigma_u/0.01)",
        CORNER_VOLATILITY_THRESHOLD,
        "jointly persistent and volatile draws outside the slice (nk's statistics, thresholds recalibrated on "
        "zlb's valid prior), 2.50 % of the valid prior (Monte Carlo, 200,000 valid draws)",
    )
    design_notes = nk.NK.design_notes[:4] + (
        f"OccBin (Guerrieri-Iacoviello 2015) each period: perfect-foresight path expecting no future "
        f"innovations, binding periods guessed and verified, initial guess = last period's verified binding "
        f"periods shifted by one; constants LOOKAHEAD={LOOKAHEAD} quarters of unconstrained path checked, "
        f"MAX_BINDING_HORIZON={MAX_BINDING_HORIZON}, MAX_GUESSES={MAX_GUESSES} rounds, BIND_TOL={BIND_TOL}; "
        f"exceeding a limit raises",
        "the path of a guess is computed by OccBin's regime-by-regime backward recursion (jumps affine in "
        "i[t-1] per period), one draw at a time in compiled code without fast-math",
        "rate = 400 i is the constrained rate deviation (>= -r_ss, exactly -r_ss when binding); shadow_rate = "
        "400 x the Taylor-rule value on the solved path; binding[t] = the bound binds in period t",
        "IRFs: +1 sd innovation at h = 0 from the steady state under OccBin minus the baseline (the steady "
        "state, where the bound is slack)",
        "valid iff the nk part is determinate and the Eggertsson-Woodford condition for a bounded solution at "
        "the bound holds, (1 - mu)(1 - beta mu) > mu kappa / sigma with mu = max(rho_m, rho_r, rho_u); about "
        "57 % of uniform raw draws fail it (without it 13 % of samples exceed |y| = 1000); r_ss does not "
        "affect validity",
        "under this prior the bound binds in ~27 % of simulated periods of valid draws",
    )

    def propose(self, rng: np.random.Generator, n: int, priors: Priors) -> np.ndarray:
        return self.propose_independent(rng, n, priors)

    def is_valid(self, theta: np.ndarray) -> np.ndarray:
        return nk.cached_solution(theta).determinate & bounded_at_the_bound(theta)

    def _solution(self, theta: np.ndarray) -> NKSolution:
        sol = nk.cached_solution(theta)
        nk.check_determinate(self, sol, theta)
        return sol

    def _simulate(self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray]) -> Simulation:
        sol = self._solution(theta)
        traj, shadow, binding = simulate_occbin(sol, theta[:, _R_SS], eps)
        return Simulation(trajectories=traj, extras=shadow[:, :, None], metadata={"binding": binding})

    def _irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        sol = self._solution(theta)
        n = theta.shape[0]
        out = np.empty((n, 3, H + 1, 3))
        for j in range(3):
            eps = np.zeros((n, H + 1, 3))
            eps[:, 0, j] = 1.0
            out[:, j], _, _ = simulate_occbin(sol, theta[:, _R_SS], eps)
        return out

    def slice_statistic(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(theta, dtype=np.float64)[:, _R_SS].copy()

    def corner_statistics(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        th = np.asarray(theta, dtype=np.float64)
        return nk.persistence_statistic(th), nk.volatility_statistic(th)

    # ---- state-dependent IRFs (docs/worlds.md): the generic re-simulation from the stored history ----
    NEAR_BOUND = 0.5  # annualized percent: a shadow-rate level below this at t-1 puts date t near the bound
    state_variables = nk.NK_STATE_VARIABLES
    state_labels = (
        MetadataField(
            "at_bound",
            "bool",
            "the bound binds in period t-1, the last period of the history: the state entering t is at the bound",
            "simulation",
        ),
    )

    def _state_path(self, theta, eps, metadata, sim) -> np.ndarray:
        sol = self._solution(theta)
        return nk.state_path(sol, np.asarray(eps, dtype=np.float64), sim.trajectories[:, :, 2])

    def focus_dates(self, theta: np.ndarray, sim: Simulation) -> np.ndarray:
        """Dates t whose state is at or near the bound: shadow-rate level r_ss + shadow_rate[t-1] < NEAR_BOUND."""
        level = np.asarray(theta, dtype=np.float64)[:, _R_SS, None] + sim.extras[:, :, 0]
        out = np.zeros(level.shape, dtype=bool)
        out[:, 1:] = level[:, :-1] < self.NEAR_BOUND
        return out

    def label_states(self, theta, metadata, sim, dates) -> dict[str, np.ndarray]:
        binding = sim.metadata["binding"]
        return {"at_bound": binding[np.arange(binding.shape[0])[:, None], dates - 1]}


WORLD = ZLB()
