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
  the rate loadings) skips the exact check for most periods.
* Other guesses: with the rule ``i = ib`` on ``S`` and the Taylor rule elsewhere, and the nk
  solution after the last binding period, the path is linear in the state. It is computed in
  the equivalent anticipated-shock form (Holden 2016): known shocks ``delta[h]`` added to the
  Taylor rule on ``S``, chosen so that ``i[h] = ib`` there. Their rate responses are
  ``L U delta`` with ``L[h, j] = p^(h-j)`` and ``U[j, d] = b[d-j]`` triangular Toeplitz
  (``p`` the endogenous root, ``b`` from the nk solution; see :class:`_Chunk`); a single
  binding spell ``[s0, e]`` (every guess seen in practice) is solved with the inverses of the
  two factors plus a rank-one correction, any other guess with a dense solve. The tests check
  this against the regime-by-regime backward recursion and against an independent stacked
  solve with the bound.
* Update (OccBin's rule): a binding period stays binding while its shadow rate is at or below
  ``ib`` (``delta >= -BIND_TOL``), a slack period becomes binding when its rate is below ``ib``
  (checked up to the spell and then on the unconstrained continuation over ``LOOKAHEAD``
  quarters). Stop when the guess repeats.

Limits, failing loudly (:class:`WorldError`) rather than silently: at most :data:`MAX_GUESSES`
rounds of guesses per period, binding periods only at ``h <`` :data:`MAX_BINDING_HORIZON`, and
singular or non-finite paths raise.

Everything is vectorized across draws, and each draw's numbers are computed by the same
element-wise arithmetic whatever batch it is in (:func:`simulate_occbin`):

* Each draw runs on its own clock. Every pass of the loop takes one step for each draw not yet
  done: the nk step of its next period (on whole arrays while most draws take one), and, for
  the draws whose bound check fails or that carry a binding guess, one round of guess and
  verify. A draw needing many rounds holds up no other draw, so the number of passes is about
  the largest per-draw count of periods plus extra rounds, not the sum over periods of the
  largest round count.
* A guess is kept as its first and last binding period and their count (one spell; a scattered
  guess also keeps its dense row). One-spell guesses are solved per bucket (:data:`BUCKETS`),
  buckets of 8 periods or more in groups on the longest bucket of the group: their sums then
  run over zero terms beyond the bucket, which leaves numpy's sums of 8 or more terms unchanged
  (8-way pairwise blocks; ``test_zlb`` checks this property). The continuations of all guesses
  solved in a pass and the nk paths of the "no binding period" guesses are checked in one call;
  the latter's violations are solved in the next pass, as the same round.
* Exact path rates are computed where a lower bound (each state's term at its own worst
  horizon) cannot exclude a violation: over the first :data:`EXACT` quarters, the next ones up
  to :data:`NEAR` only where that bound minus a margin for rounding (:data:`MARGIN`) is below
  ``ib``, the rest of :data:`LOOKAHEAD` only where the bound over it is. A bound is only ever
  used to skip rates that could not be below ``ib`` as computed, so the checks equal the
  exact ones.

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
    LastFew,
    MetadataField,
    Observable,
    Parameter,
    Priors,
    Simulation,
    SliceRule,
    World,
)
from macro_data.worlds.linear_re import bmatmul
from macro_data.worlds.nk import NKSolution, exog_step, jumps, taylor

# ---------------------------------------------------------------------------------------------
# Algorithm constants (recorded in design_notes)
# ---------------------------------------------------------------------------------------------
LOOKAHEAD = 256  # quarters of unconstrained continuation checked after the last binding period
MAX_BINDING_HORIZON = 256  # binding periods may be guessed only at h < this (= largest of BUCKETS)
MAX_GUESSES = 50  # guess-and-verify iterations per period
BIND_TOL = 1e-12  # a binding period stays binding while shadow <= ib + BIND_TOL (quarterly units)
NEAR = 24  # quarters checked exactly first when a path might violate the bound (speed only)
ZLB_CHUNK = 4096  # max draws per chunk (speed only; every per-draw computation is element-wise)
# Speed only: a group of fewer than DEFER_ROWS guesses of anticipated spells waits a pass unless one
# of its draws is within DEFER_LAG periods of the slowest draw (few calls, no longer critical path).
DEFER_ROWS = 32
DEFER_LAG = 8

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


BUCKETS = (4, 8, 16, 32, 64, 128, 256)  # path lengths on which guesses are solved (see _solve_guess)
assert MAX_BINDING_HORIZON <= BUCKETS[-1] <= LOOKAHEAD
FN_CLASSES = (4, 16, 32)  # longest bucket of each group of spells starting now (speed only)
KEEP = 32  # horizons of the rate loadings stored per draw (later ones are recomputed)
EXACT = 4  # horizons whose rates are computed whenever a path might violate the bound
# Relative margin of the bound over [EXACT, NEAR): a computed rate and the computed bound each differ
# from their exact values by at most 4.5e-16 x sum_c |k_c| max_h |C_c[h]| (four products, three sums).
MARGIN = 1e-12

# columns of _Chunk.par (per-draw scalars of the nk step)
_RHO, _SD, _FX, _FPI, _RHO_I, _C_X, _C_PI, _IB, _LO, _HI = 0, 3, 6, 10, 14, 15, 16, 17, 18, 22


class _Params:
    """Per-draw scalars of some draws, from one row gather of :attr:`_Chunk.par`: the attributes
    the nk kernels read (``rho``, ``sd``, ``Fx``, ``Fpi``, ``rho_i``, ``c_x``, ``c_pi``), ``ib`` and
    the extremes of the rate loadings over the horizon (``lo``, ``hi``, ``(4, k)``)."""

    def __init__(self, P: np.ndarray):
        c = P.T
        self.rho, self.sd = tuple(c[_RHO : _RHO + 3]), tuple(c[_SD : _SD + 3])
        self.Fx, self.Fpi = tuple(c[_FX : _FX + 4]), tuple(c[_FPI : _FPI + 4])
        self.rho_i, self.c_x, self.c_pi, self.ib = c[_RHO_I], c[_C_X], c[_C_PI], c[_IB]
        self.lo, self.hi = c[_LO : _LO + 4], c[_HI : _HI + 4]


class _Chunk:
    """Per-draw constants of one chunk of draws.

    * ``C[h] = R P^h``: the unconstrained rate ``h`` quarters ahead per unit of each state of
      ``k = (i[t-1], v, rn, u)``. Its extremes over ``h < LOOKAHEAD``, over ``EXACT <= h < NEAR``
      (``_mid``) and over ``h >= NEAR`` (``_far``) are in ``par``; the first :data:`KEEP` horizons
      are stored draw-major, ``Cn (m, KEEP, 4)``, and later ones recomputed by the same recursion
      for the few draws that need them.
    * Anticipated policy shocks: adding known shocks ``delta[d]`` to the Taylor rule moves the
      jumps by ``(dx, dpi)[h] = F_i di[h-1] + sum_{d >= h} Theta[d - h] delta[d]`` with
      ``Theta[j] = Phi_g^j Phi_d``, and the rate by ``di[h] = p di[h-1] + sum_{d >= h} b[d - h] delta[d]``,
      ``b[j] = c . Theta[j] + [j = 0]``, ``c = (c_x, c_pi)``. So the rate responses are
      ``di = L U delta`` with ``L[h, j] = p^(h-j)`` (lower-triangular Toeplitz) and
      ``U[j, d] = b[d-j]`` (upper-triangular Toeplitz); ``binv`` holds the coefficients of
      ``U^{-1}`` (the power-series inverse of ``b``; ``b[0] = 1/D != 0``). These tables are
      stored draw-major ``(m, j)`` and built up to the longest bucket used so far (:meth:`tables`).
    * ``par (m, 26)`` and ``bounds (m, 29)``: per-draw scalars (the nk coefficients, ``ib`` and
      the extremes of ``C``), each gathered for a group of draws in one call.
    """

    def __init__(self, sol: NKSolution, r_ss: np.ndarray):
        self.sol = sol
        self.r_ss = r_ss
        self.ib = -r_ss / 400.0
        m = r_ss.shape[0]
        self.R = np.stack(sol.rate_loadings())
        self.rho = np.stack(sol.rho)
        # C[h] along h with its running extremes; the first KEEP horizons are kept
        near = np.empty((KEEP, 4, m))
        c = near[0]
        c[:] = self.R
        lo, hi = c.copy(), c.copy()
        for h in range(1, LOOKAHEAD):
            nxt = near[h] if h < KEEP else np.empty((4, m))
            _loadings_step(c, nxt, self.R, sol.p, self.rho)
            if h == NEAR:
                lo_far, hi_far = nxt.copy(), nxt.copy()
            elif h > NEAR:
                np.minimum(lo_far, nxt, out=lo_far)
                np.maximum(hi_far, nxt, out=hi_far)
            np.minimum(lo, nxt, out=lo)
            np.maximum(hi, nxt, out=hi)
            c = nxt
        self.Cn = np.ascontiguousarray(near.transpose(2, 0, 1))
        self.CnT = self.Cn.transpose(0, 2, 1)  # (m, 4, KEEP) view, cut into contiguous ranges by take()
        lo_mid, hi_mid = near[EXACT:NEAR].min(axis=0), near[EXACT:NEAR].max(axis=0)
        self.lo, self.hi = lo, hi
        self.par = np.concatenate(
            [
                self.rho,
                np.stack(sol.sd),
                np.stack(sol.Fx),
                np.stack(sol.Fpi),
                np.stack([sol.rho_i, sol.c_x, sol.c_pi, self.ib]),
                lo,
                hi,
            ]
        ).T.copy()
        # for the violation checks: ib, the extremes of C over all, the middle and the far horizons,
        # and max |C| over the middle ones
        self.bounds = np.concatenate(
            [self.ib[None], lo, lo_mid, lo_far, hi, hi_mid, hi_far, np.maximum(-lo_mid, hi_mid)]
        ).T.copy()
        self.L = 0
        self._cuts: dict[tuple[str, int, int], np.ndarray] = {}
        # rho_c ** n for n <= KEEP, flat (3, m (KEEP + 1)): computed by the same np.power on contiguous
        # arrays as the powers it replaces, so a lookup gives the same values (speed only)
        n = np.tile(np.arange(KEEP + 1), m)
        self._rho_pow = np.stack([np.power(np.repeat(r, KEEP + 1), n) for r in self.rho])
        self.tables(KEEP)

    def rho_pow(self, rows: np.ndarray, n: np.ndarray) -> np.ndarray:
        """``(3, k)``: ``rho[:, rows] ** n`` for integers ``0 <= n``, bit for bit."""
        if n.size and n.max() <= KEEP:
            return np.take(self._rho_pow, rows * (KEEP + 1) + n, axis=1)
        return self.rho[:, rows] ** n

    def take(self, name: str, rows: np.ndarray, h0: int, h1: int) -> np.ndarray:
        """Horizons ``h0 .. h1 - 1`` of the table ``name`` (``Cn``, ``CnT``, ``theta``, ``b``, ``binv``,
        ``ppow``) for the draws ``rows``: the same values as ``table[rows, ..., h0:h1]``. Ranges within
        :data:`KEEP` are kept as contiguous copies (about 20 MB for 4096 draws) and gathered with
        ``np.take``, several times faster than indexing rows and a range of columns at once (speed only)."""
        table = getattr(self, name)
        if h1 > KEEP:
            return table[rows, h0:h1] if name == "Cn" else table[rows, ..., h0:h1]
        key = (name, h0, h1)
        cut = self._cuts.get(key)
        if cut is None:
            cut = self._cuts[key] = np.ascontiguousarray(table[:, h0:h1] if name == "Cn" else table[..., h0:h1])
        return np.take(cut, rows, axis=0)

    def tables(self, s: int) -> None:
        """Build ``theta``, ``b``, ``binv``, ``ppow`` up to at least ``s`` horizons."""
        if s <= self.L:
            return
        L = max(s, 2 * self.L)
        sol = self.sol
        m = sol.p.shape[0]
        # One backward step of the rule with next-period rule F_i: g = Phi_g g' + Phi_d delta, from
        # dqx = g'x + g'pi/sigma, dqpi = kappa dqx + beta g'pi, dnum = c_x dqx + c_pi dqpi + delta,
        # dgx = (alpha/D) dnum + dqx, dgpi = (ci/D) dnum + dqpi (the nk step of the zlb docstring).
        invs = 1.0 / sol.sigma
        alpha = sol.Fx[0] + (sol.Fpi[0] - 1.0) * invs
        ci = sol.beta * sol.Fpi[0] + sol.kappa * alpha
        D = 1.0 - sol.c_x * alpha - sol.c_pi * ci
        ad, cd = alpha / D, ci / D
        n_x = sol.c_x + sol.c_pi * sol.kappa
        n_p = sol.c_x * invs + sol.c_pi * (sol.kappa * invs + sol.beta)
        g11, g12 = ad * n_x + 1.0, ad * n_p + invs
        g21, g22 = cd * n_x + sol.kappa, cd * n_p + sol.kappa * invs + sol.beta
        theta = np.empty((L, 2, m))
        theta[0, 0], theta[0, 1] = ad, cd
        for j in range(1, L):
            tx, tp = theta[j - 1, 0], theta[j - 1, 1]
            theta[j, 0] = g11 * tx + g12 * tp
            theta[j, 1] = g21 * tx + g22 * tp
        b = sol.c_x * theta[:, 0] + sol.c_pi * theta[:, 1]
        b[0] += 1.0
        # sum_j b[j] z^j = N(z) / det(I - z Phi_g) with N of degree 2, so the coefficients of its
        # inverse det(I - z Phi_g) / N(z) follow a three-term recursion.
        d1 = -(g11 + g22)
        d2 = g11 * g22 - g12 * g21
        n0 = 1.0 + sol.c_x * ad + sol.c_pi * cd
        n1 = d1 + sol.c_x * (g12 * cd - g22 * ad) + sol.c_pi * (g21 * ad - g11 * cd)
        n2 = d2
        binv = np.empty((L, m))
        binv[0] = 1.0 / n0
        binv[1] = (d1 - n1 * binv[0]) / n0
        binv[2] = (d2 - n1 * binv[1] - n2 * binv[0]) / n0
        for j in range(3, L):
            binv[j] = -(n1 * binv[j - 1] + n2 * binv[j - 2]) / n0
        ppow = np.empty((L, m))
        ppow[0] = 1.0
        for j in range(1, L):
            ppow[j] = ppow[j - 1] * sol.p
        # stored draw-major: a draw's first s coefficients are one contiguous gather
        self.theta = np.ascontiguousarray(theta.transpose(2, 1, 0))  # (m, 2, L)
        self.b, self.binv, self.ppow = (np.ascontiguousarray(a.T) for a in (b, binv, ppow))
        self.L = L
        self._cuts = {}


def _loadings_step(c: np.ndarray, out: np.ndarray, R: np.ndarray, p: np.ndarray, rho: np.ndarray) -> None:
    """``C[h]`` from ``C[h-1]`` (both ``(4, k)``):
    ``C_i[h] = p C_i[h-1]``, ``C_c[h] = R_c C_i[h-1] + rho_c C_c[h-1]``."""
    np.multiply(c[0], p, out=out[0])
    np.multiply(c[0], R[1:], out=out[1:])
    out[1:] += c[1:] * rho


def _lower_bound(K: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A lower bound of ``min_h C[h] . K`` for states ``K (4, k)`` and the extremes ``lo``, ``hi``
    (``(..., 4, k)``) of ``C`` over ranges of horizons: each state's term at its own worst horizon,
    summed in state order."""
    t = np.minimum(K * lo, K * hi)
    return ((t[..., 0, :] + t[..., 1, :]) + t[..., 2, :]) + t[..., 3, :]


def _rates(ch: _Chunk, rows: np.ndarray, k, h0: int, h1: int) -> np.ndarray:
    """Unconstrained rates ``(h1 - h0, len(rows))`` at horizons ``h0 .. h1 - 1`` from states ``k``
    (four ``(len(rows),)`` arrays), horizon-major."""
    if h1 <= KEEP:
        C = ch.take("Cn", rows, h0, h1).transpose(2, 1, 0)
    else:
        C = np.empty((h1, 4, rows.size))
        C[0] = ch.R[:, rows]
        R, p, rho = C[0], ch.sol.p[rows], ch.rho[:, rows]
        for h in range(1, h1):
            _loadings_step(C[h - 1], C[h], R, p, rho)
        C = C[h0:].transpose(1, 0, 2)
    return C[0] * k[0] + C[1] * k[1] + C[2] * k[2] + C[3] * k[3]


def _path_rates(ch: _Chunk, rows: np.ndarray, k, s: int) -> np.ndarray:
    """Unconstrained rates ``(len(rows), s)`` over the first ``s`` horizons, C-contiguous."""
    if s > KEEP:
        return np.ascontiguousarray(_rates(ch, rows, k, 0, s).T)
    # the same element-wise sum as _rates, computed draw-major (no transposed copy)
    C = ch.take("CnT", rows, 0, s)
    return C[:, 0] * k[0][:, None] + C[:, 1] * k[1][:, None] + C[:, 2] * k[2][:, None] + C[:, 3] * k[3][:, None]


def _gather(ch: _Chunk, name: str, rows: np.ndarray, s: int) -> np.ndarray:
    """``(k, s)`` C-contiguous: the first ``s`` coefficients of the draws ``rows`` of a table ``(m, L)``."""
    return ch.take(name, rows, 0, s)


_LAGS: dict[tuple[int, bool], tuple[np.ndarray, np.ndarray]] = {}


def _toeplitz(seq: np.ndarray, s: int, upper: bool) -> np.ndarray:
    """``(k, s, s)`` triangular Toeplitz matrices from ``seq (k, >= s)``: ``T[r, c] = seq[c - r]`` (upper,
    ``c >= r``) or ``seq[r - c]`` (lower, ``r >= c``), zero elsewhere."""
    key = (s, upper)
    if key not in _LAGS:
        r = np.arange(s)[:, None]
        c = np.arange(s)[None, :]
        lag = (c - r) if upper else (r - c)
        _LAGS[key] = (np.maximum(lag, 0), lag >= 0)
    lag, tri = _LAGS[key]
    return np.where(tri, seq[:, lag], 0.0)


def _rowsum(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=-1)``, bit for bit. Below 8 terms numpy adds them one by one onto ``+0.0``
    (``test_zlb`` checks this); written out as whole-array additions, which for the short rows of
    the 4-period bucket is several times faster than numpy's reduction over a tiny inner axis."""
    n = a.shape[-1]
    if n >= 8:
        return a.sum(axis=-1)
    out = a[..., 0] + 0.0
    for j in range(1, n):
        out += a[..., j]
    return out


def _upper_tmul(seq: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``_tmul(_toeplitz(seq, s, upper=True), x)`` bit for bit, without forming the matrices when
    ``s < 8``: row ``h`` adds ``seq[j] x[h + j]`` for ``j = 0, 1, ...`` onto ``+0.0`` in the order of
    :func:`_rowsum`. Its other terms are zeros of either sign, which leave a sum started at ``+0.0``
    unchanged; a non-finite ``x`` makes the first row non-finite either way (the caller raises)."""
    s = x.shape[1]
    if s >= 8:
        return _tmul(_toeplitz(seq, s, upper=True), x)
    out = seq[:, :1] * x + 0.0
    for j in range(1, s):
        out[:, : s - j] += seq[:, j : j + 1] * x[:, j:]
    return out


def _tmul(T: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``T @ x`` for ``T (k, s, s)``, ``x (k, s)``, summed in a fixed order per row."""
    return _rowsum(T * x[:, None, :])


class _Violations:
    """Where unconstrained paths fall below the bound within ``LOOKAHEAD`` quarters (see
    :func:`_violations`): ``hit``, the positions of the paths that do, and for each of them the
    ``first`` and ``last`` violation and their ``count``; :meth:`dense` gives the full pattern."""

    def __init__(self, hit, first, last, count, near, far_pos, far):
        self.hit, self.first, self.last, self.count = hit, first, last, count
        self._near, self._far_pos, self._far = near, far_pos, far

    def dense(self, sel=slice(None)) -> np.ndarray:
        """``(k, LOOKAHEAD)`` bool patterns of the hits ``sel``."""
        idx = np.arange(self.hit.size)[sel]
        V = np.zeros((idx.size, LOOKAHEAD), dtype=bool)
        V[:, :NEAR] = self._near[:, idx].T
        if self._far_pos.size:
            pos = np.searchsorted(idx, self._far_pos)
            inside = (pos < idx.size) & (idx[np.minimum(pos, idx.size - 1)] == self._far_pos)
            V[pos[inside], NEAR:] = self._far[:, inside].T
        return V


def _violations(ch: _Chunk, rows: np.ndarray, k, first_rate=None):
    """:class:`_Violations` of the unconstrained paths from states ``k`` (four ``(len(rows),)`` arrays
    or one ``(4, len(rows))``) of the draws ``rows``.

    ``first_rate`` replaces the path's period-0 rate where it is not NaN (the nk kernel's own value,
    so that a verified no-binding period is exactly the nk period). Exact rates are computed only
    where a lower bound (each state's term at its own worst horizon) cannot exclude a violation:
    first the next :data:`NEAR` quarters, and the rest of the horizon only if the bound over the
    rest cannot exclude it either.
    """
    B = np.take(ch.bounds, rows, axis=0).T
    K = k if isinstance(k, np.ndarray) else np.stack(k)
    ib = B[0]
    # the bounds over all horizons, over [EXACT, NEAR) and over [NEAR, LOOKAHEAD), at once
    lb = _lower_bound(K, B[1:13].reshape(3, 4, -1), B[13:25].reshape(3, 4, -1))
    need = lb[0] < ib
    if first_rate is not None:
        need |= first_rate < ib
    w = np.flatnonzero(need)
    none = np.zeros(0, dtype=np.intp)
    if not w.size:
        return _Violations(none, none, none, none, np.zeros((NEAR, 0), dtype=bool), none, None)
    rw = rows[w]
    Kw = K[:, w]
    ibw = ib[w]
    near = _rates(ch, rw, Kw, 0, EXACT)
    if first_rate is not None:
        fr = first_rate[w]
        np.copyto(near[0], fr, where=~np.isnan(fr))
    vn = np.zeros((NEAR, w.size), dtype=bool)
    np.less(near, ibw, out=vn[:EXACT])
    # h in [EXACT, NEAR): the computed rates are >= ib wherever the bound minus its rounding margin
    # is; elsewhere they are computed
    scale = (np.abs(Kw) * B[25:29, w]).sum(axis=0)
    mid = np.flatnonzero(lb[1, w] - MARGIN * scale < ibw)
    if mid.size:
        vn[EXACT:, mid] = _rates(ch, rw[mid], Kw[:, mid], EXACT, NEAR) < ibw[mid]
    anyn = vn.any(axis=0)
    far = np.flatnonzero(lb[2, w] < ibw)
    vf = None
    if far.size:
        vf = _rates(ch, rw[far], Kw[:, far], NEAR, LOOKAHEAD) < ibw[far]
        anyf = vf.any(axis=0)
        far, vf = far[anyf], vf[:, anyf]
    hit = anyn.copy()
    hit[far] = True
    h = np.flatnonzero(hit)
    vn = vn[:, h]
    first = np.argmax(vn, axis=0)
    last = NEAR - 1 - np.argmax(vn[::-1], axis=0)
    count = np.count_nonzero(vn, axis=0)
    far_pos = np.searchsorted(h, far)
    if far.size:
        nf = ~anyn[far]
        first[far_pos[nf]] = NEAR + np.argmax(vf[:, nf], axis=0)
        last[far_pos] = LOOKAHEAD - 1 - np.argmax(vf[::-1], axis=0)
        count[far_pos] += np.count_nonzero(vf, axis=0)
    return _Violations(w[h], first, last, count, vn, far_pos, vf)


def _solve_guess(
    ch: _Chunk, rows: np.ndarray, k0: tuple[np.ndarray, ...], z0: tuple[np.ndarray, ...], S: np.ndarray, s: int
):
    """The perfect-foresight path of draws ``rows`` for guesses ``S (k, s)`` (binding periods < s).

    Solved in anticipated-shock form, the same piecewise-linear system as OccBin's
    regime-by-regime backward recursion (Holden 2016): the Taylor rule gets known shocks
    ``delta[h]`` on the guessed binding periods, chosen so that ``i[h] = ib`` there, i.e.
    ``(L U)_SS delta_S = ib - i_unc_S``; then ``i = i_unc + L U delta`` and ``shadow = i - delta``.
    A guess that is one spell ``[s0, e]`` is solved with the triangular Toeplitz factors:
    ``(L U)_SS = L_22 U_22 + a w'`` with ``a[h] = p^(h - s0)`` and ``w[d] = sum_{j < s0} p^(s0 - j) b[d - j]``
    (the periods before the spell enter through the single state ``i[s0 - 1]``), so ``delta``
    follows from ``U_22^{-1} L_22^{-1}`` and Sherman-Morrison. Other guesses use a dense solve.
    ``z0 = (x, pi, i)``: the unconstrained period-0 values.
    Returns ``(new_guess (k, s + LOOKAHEAD), x0, pi0, i0, shadow0)``.
    """
    ch.tables(s)
    k = rows.size
    ib = ch.ib[rows][:, None]
    i_unc = _path_rates(ch, rows, k0, s)
    i_unc[:, 0] = z0[2]
    p = ch.sol.p[rows][:, None]
    Lm = _toeplitz(_gather(ch, "ppow", rows, s), s, upper=False)
    Um = _toeplitz(_gather(ch, "b", rows, s), s, upper=True)
    hh = np.arange(s)[None, :]
    first = np.argmax(S, axis=1)[:, None]
    last = (s - 1 - np.argmax(S[:, ::-1], axis=1))[:, None]
    spell = (hh >= first) & (hh <= last)
    one = (S == spell).all(axis=1)
    delta = np.zeros((k, s))
    r = np.where(S, ib - i_unc, 0.0)
    q = np.flatnonzero(one)
    if q.size:
        Sq = S[q]
        Binv = _toeplitz(_gather(ch, "binv", rows[q], s), s, upper=True)

        def m_inv(y):  # (L_22 U_22)^{-1} y on the spell: L_22^{-1} is bidiagonal.
            w = y.copy()
            w[:, 1:] -= p[q] * np.where(Sq[:, :-1], y[:, :-1], 0.0)
            return np.where(Sq, _tmul(Binv, np.where(Sq, w, 0.0)), 0.0)

        d_r = m_inv(r[q])
        fq = first[q]
        before = hh < fq
        if before.any():
            # rank-one term of the periods before the spell
            ppq = _gather(ch, "ppow", rows[q], s)
            a = np.where(Sq, np.take_along_axis(ppq, np.clip(hh - fq, 0, s - 1), axis=1), 0.0)
            wts = np.where(before, np.take_along_axis(ppq, np.clip(fq - hh, 0, s - 1), axis=1), 0.0)  # p^(s0-j)
            w = np.where(Sq, (wts[:, :, None] * Um[q]).sum(axis=1), 0.0)
            d_a = m_inv(a)
            coef = (w * d_r).sum(axis=1) / (1.0 + (w * d_a).sum(axis=1))
            d_r = d_r - d_a * coef[:, None]
        delta[q] = d_r
    g = np.flatnonzero(~one)
    if g.size:
        Sg = S[g]
        A = np.where(Sg[:, :, None] & Sg[:, None, :], bmatmul(Lm[g], Um[g]), np.eye(s))
        delta[g] = np.linalg.solve(A, r[g][:, :, None])[:, :, 0]
    if not np.isfinite(delta).all():
        raise FloatingPointError
    i = i_unc + _tmul(Lm, _tmul(Um, delta))
    i = np.where(S, ib, i)
    new = np.zeros((k, s + LOOKAHEAD), dtype=bool)
    new[:, :s] = (S & (delta >= -BIND_TOL)) | (~S & (i < ib))
    # Unconstrained continuation from period s: state (i[s-1], rho^s s_0).
    k_s = (i[:, s - 1],) + tuple(k0[c + 1] * ch.sol.rho[c][rows] ** s for c in range(3))
    viol = _violations(ch, rows, k_s)
    new[viol.hit, s:] = viol.dense()
    x0, pi0 = _jump_corrections(ch, rows, z0, delta, s)
    return new, x0, pi0, i[:, 0], i[:, 0] - delta[:, 0]


def _jump_corrections(ch: _Chunk, rows: np.ndarray, z0, delta: np.ndarray, s: int):
    """Period-0 ``(x, pi)``: the unconstrained values plus the responses to the shocks ``delta (k, s)``."""
    th = _rowsum(ch.take("theta", rows, 0, s) * delta[:, None, :])
    return z0[0] + th[:, 0], z0[1] + th[:, 1]


def _from_now_delta(
    ch: _Chunk, rows: np.ndarray, k0, shadow: np.ndarray, e: np.ndarray, s: int, ib: np.ndarray, p: np.ndarray
):
    """Shocks ``delta (k, s)`` holding the rate at the bound on the spells ``[0, e]`` (``e < s``) and
    the spell mask ``on``: ``L U delta = ib - i_unc`` there and ``L^{-1}`` is bidiagonal, so
    ``delta = U^{-1} L^{-1} r`` (``U^{-1}`` triangular Toeplitz, coefficients ``binv``)."""
    ch.tables(s)
    on = np.arange(s)[None, :] <= e[:, None]
    i_unc = _path_rates(ch, rows, k0, s)
    i_unc[:, 0] = shadow
    # r = ib - i_unc and w = L^{-1} r on the spell (elsewhere unused: masked below)
    w = ib[:, None] - i_unc
    w[:, 1:] -= p[:, None] * w[:, :-1]
    # rows h > e sum only zero terms, so they are +0.0 like the masked values
    delta = _upper_tmul(_gather(ch, "binv", rows, s), np.where(on, w, 0.0))
    if not np.isfinite(delta).all():
        raise FloatingPointError
    return on, delta


def _spell_end_state(ch: _Chunk, rows: np.ndarray, k0, e: np.ndarray):
    """The state after the spells ``[0, e]``: ``(ib, rho^(e+1) s_0)``."""
    rho_n = ch.rho_pow(rows, e + 1)
    return ch.ib[rows], k0[1] * rho_n[0], k0[2] * rho_n[1], k0[3] * rho_n[2]


def _solve_from_now(
    ch: _Chunk, rows: np.ndarray, k0: tuple[np.ndarray, ...], z0: tuple[np.ndarray, ...], e: np.ndarray, s: int
):
    """Guesses that are one spell ``[0, e]`` (``e < s``): the common case, solved without dense algebra.

    ``delta`` from :func:`_from_now_delta`; after ``e`` the path is the unconstrained one from the
    state ``(ib, rho^(e+1) s_0)``. Returns ``(new_guess (k, s + LOOKAHEAD), x0, pi0, shadow0)``
    (:func:`simulate_occbin` takes the same steps, keeping the guess compact).
    """
    ib = ch.ib[rows]
    on, delta = _from_now_delta(ch, rows, k0, z0[2], e, s, ib, ch.sol.p[rows])
    new = np.zeros((rows.size, s + LOOKAHEAD), dtype=bool)
    new[:, :s] = on & (delta >= -BIND_TOL)
    viol = _violations(ch, rows, _spell_end_state(ch, rows, k0, e))
    if viol.hit.size:
        new[viol.hit[:, None], e[viol.hit, None] + 1 + np.arange(LOOKAHEAD)[None, :]] = viol.dense()
    x0, pi0 = _jump_corrections(ch, rows, z0, delta, s)
    return new, x0, pi0, ib - delta[:, 0]


def _compact(S: np.ndarray):
    """``(first, last, count)`` of the binding periods of the guesses ``S (k, W)`` (-1, -1, 0 if none)."""
    W = S.shape[1]
    anyb = S.any(axis=1)
    first = np.where(anyb, np.argmax(S, axis=1), -1)
    last = np.where(anyb, W - 1 - np.argmax(S[:, ::-1], axis=1), -1)
    return first, last, np.count_nonzero(S, axis=1)


def _later_core(
    ch: _Chunk,
    rows: np.ndarray,
    k0,
    shadow: np.ndarray,
    f: np.ndarray,
    l: np.ndarray,
    s: int,
    ib: np.ndarray,
    p: np.ndarray,
):
    """Guesses that are one spell ``[f, l]`` starting later (``1 <= f <= l < s``): the one-spell steps
    of :func:`_solve_guess`. Returns ``(delta, i, part)``: the shocks, the rate path ``(k, s)`` and
    the next guess on ``h < s``."""
    ch.tables(s)
    ib = ib[:, None]
    p = p[:, None]
    i_unc = _path_rates(ch, rows, k0, s)
    i_unc[:, 0] = shadow
    ppow = _gather(ch, "ppow", rows, s)
    Lm = _toeplitz(ppow, s, upper=False)
    Um = _toeplitz(_gather(ch, "b", rows, s), s, upper=True)
    Binv = _toeplitz(_gather(ch, "binv", rows, s), s, upper=True)
    hh = np.arange(s)[None, :]
    fq = f[:, None]
    S = (hh >= fq) & (hh <= l[:, None])
    r = np.where(S, ib - i_unc, 0.0)

    def m_inv(y):  # (L_22 U_22)^{-1} y on the spell: L_22^{-1} is bidiagonal.
        w = y.copy()
        w[:, 1:] -= p * np.where(S[:, :-1], y[:, :-1], 0.0)
        return np.where(S, _tmul(Binv, np.where(S, w, 0.0)), 0.0)

    d_r = m_inv(r)
    a = np.where(S, np.take_along_axis(ppow, np.clip(hh - fq, 0, s - 1), axis=1), 0.0)
    wts = np.where(hh < fq, np.take_along_axis(ppow, np.clip(fq - hh, 0, s - 1), axis=1), 0.0)
    w = np.where(S, (wts[:, :, None] * Um).sum(axis=1), 0.0)
    d_a = m_inv(a)
    coef = (w * d_r).sum(axis=1) / (1.0 + (w * d_a).sum(axis=1))
    delta = d_r - d_a * coef[:, None]
    if not np.isfinite(delta).all():
        raise FloatingPointError
    i = i_unc + _tmul(Lm, _tmul(Um, delta))
    i = np.where(S, ib, i)
    return delta, i, (S & (delta >= -BIND_TOL)) | (~S & (i < ib))


_BITS = (np.arange(256)[:, None] >> np.arange(8)) & 1  # the 8 bits of each byte value, lowest first
# first and last set bit and their count per byte value (-1, -1, 0 for none)
_ANY = _BITS.any(axis=1)
_BYTE_BOUNDS = np.stack(
    [np.where(_ANY, _BITS.argmax(axis=1), -1), np.where(_ANY, 7 - _BITS[:, ::-1].argmax(axis=1), -1), _BITS.sum(axis=1)]
).astype(np.intp)


def _part_bounds(part: np.ndarray):
    """``(first, last, count)`` of the binding periods of ``part (k, s)`` (first, last: -1 if none)."""
    s = part.shape[1]
    if s <= 8:
        # one byte per row: a table lookup instead of three reductions over a short axis (speed only)
        b = _BYTE_BOUNDS[:, np.packbits(part, axis=1, bitorder="little")[:, 0]]
        return b[0], b[1], b[2]
    n = np.count_nonzero(part, axis=1)
    return (
        np.where(n > 0, np.argmax(part, axis=1), -1),
        np.where(n > 0, s - 1 - np.argmax(part[:, ::-1], axis=1), -1),
        n,
    )


def simulate_occbin(
    sol: NKSolution, r_ss: np.ndarray, eps: np.ndarray, labels: np.ndarray | None = None, chunk: _Chunk | None = None
):
    """OccBin simulation of one chunk: ``eps (m, T, 3)`` -> ``(traj (m, T, 3), shadow (m, T), binding (m, T))``.

    ``labels``: the batch index of each draw (for error messages only); ``chunk``: the draws'
    precomputed constants, if already built.

    Each draw runs on its own clock. Every pass of the loop takes, for each draw not yet done,
    the nk step of its next period if it has none in progress, then one solve of the guesses in
    progress (per kind and group of buckets; a small group of anticipated spells may wait a pass
    for more draws), then checks the unconstrained paths of all of them at once: the
    continuations of the solved guesses and the nk paths of the guesses "no binding period"
    (whose violations, if any, are solved in the next pass, as the same round). A draw that needs
    many rounds does not hold up the others; there are about as many passes as the largest
    per-draw count of periods plus extra rounds. The outputs are filled period-major.

    A draw's guess is kept as its first and last binding period and their count; only a guess
    that is not one contiguous spell (rare) also keeps its dense row.

    Parameters
    ----------
    sol : NKSolution
        The draws' unconstrained nk solution, coefficients ``(m,)``.
    r_ss : ndarray, shape (m,)
        Steady-state policy rate, annualized percent.
    eps : ndarray, shape (m, T, 3)
        Standard-normal innovations of the monetary, natural-rate and cost-push shocks.
    labels : ndarray of int, shape (m,), optional
        Batch index of each draw, for messages; ``0 .. m - 1`` if ``None``.
    chunk : _Chunk, optional
        The draws' precomputed constants; built from ``sol`` and ``r_ss`` if ``None``.

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
        A guessed path that is singular or not finite, a binding period ``MAX_BINDING_HORIZON`` or
        more quarters ahead, or a draw not verified after ``MAX_GUESSES`` rounds of guesses.
    """
    m, T, _ = eps.shape
    ch = _Chunk(sol, r_ss) if chunk is None else chunk
    G = MAX_BINDING_HORIZON
    max_rounds = MAX_GUESSES
    labels = np.arange(m) if labels is None else labels
    traj = np.empty((T * m, 3))
    shadow = np.empty(T * m)
    binding = np.zeros(T * m, dtype=bool)
    eps = np.ascontiguousarray(eps.transpose(1, 0, 2)).reshape(T * m, 3)
    t = np.zeros(m, dtype=np.intp)
    # per draw: the state (i[t-1], v, rn, u) of period t and its nk values (x, pi, rate)
    st = np.zeros((7, m))
    il, v, rn, u, zx, zpi, zsh = st
    # the current guess (during guess and verify) or the carried one (between periods)
    first = np.full(m, -1, dtype=np.intp)
    last = np.full(m, -1, dtype=np.intp)
    count = np.zeros(m, dtype=np.intp)
    dense = np.zeros((m, G), dtype=bool)  # rows of the guesses that are not one spell
    rounds = np.zeros(m, dtype=np.intp)
    occ = np.zeros(m, dtype=bool)
    buckets = np.asarray(BUCKETS)
    draws = np.arange(m)

    pending = []

    def emit(rows, x, pi, i, sh, bind):
        # the period's results of draws `rows`; written, and the draws advanced, once per pass
        pending.append((rows, x, pi, i, sh, np.broadcast_to(bind, rows.shape)))

    def flush():
        rows, x, pi, i, sh, bind = (np.concatenate(a) for a in zip(*pending)) if len(pending) > 1 else pending[0]
        pending.clear()
        flat = t[rows] * m + rows
        o = np.empty((rows.size, 3))
        np.multiply(x, nk.SCALE[0], out=o[:, 0])
        np.multiply(pi, nk.SCALE[1], out=o[:, 1])
        np.multiply(i, nk.SCALE[2], out=o[:, 2])
        o[bind, 2] = -r_ss[rows[bind]]
        binding[flat] = bind
        traj[flat] = o
        shadow[flat] = sh * nk.SCALE[2]
        il[rows] = i
        t[rows] += 1

    def where_draw(j):
        return f"draw {int(labels[j])} (r_ss={ch.r_ss[j]:.6g})"

    def fail(rows, what):
        raise WorldError(
            f"world 'zlb': OccBin at t={int(t[rows[0]])}: {what} (one of draws {[int(labels[i]) for i in rows[:5]]})"
        )

    def beyond(rows, bad):
        # Guesses live on h < MAX_BINDING_HORIZON; a binding period beyond it is a loud failure.
        if bad.any():
            j = rows[int(np.flatnonzero(bad)[0])]
            raise WorldError(
                f"world 'zlb': OccBin at t={int(t[j])}, {where_draw(j)}: the bound would bind "
                f"{G} or more quarters ahead (MAX_BINDING_HORIZON={G})"
            )

    def solved(rows, ok):
        rounds[rows] += 1
        over = ~ok & (rounds[rows] >= max_rounds)
        if over.any():
            j = rows[over]
            raise WorldError(
                f"world 'zlb': OccBin at t={int(t[j[0]])}: {j.size} draw(s) not verified after "
                f"MAX_GUESSES={max_rounds} rounds of guesses (first: {where_draw(j[0])})"
            )

    def set_guess(rows, f, l, n, S=None):
        first[rows], last[rows], count[rows] = f, l, n
        sc = np.flatnonzero((n > 0) & (n != l - f + 1))
        if sc.size:
            dense[rows[sc]] = S(sc) if callable(S) else S[sc]

    def carry(rows):
        # the verified guess shifted by one quarter becomes next period's initial guess
        f, l, n = first[rows], last[rows], count[rows]
        sc = (n > 0) & (n != l - f + 1)
        first[rows] = np.where(l > 0, np.maximum(f - 1, 0), -1)
        last[rows] = np.where(l > 0, l - 1, -1)
        count[rows] = np.where(l > 0, np.where(f > 0, n, n - 1), 0)
        if sc.any():
            rs = rows[sc]
            S = np.zeros((rs.size, G), dtype=bool)
            S[:, :-1] = dense[rs, 1:]
            set_guess(rs, *_compact(S), S)

    while True:
        fm = ~occ & (t < T)
        F = np.flatnonzero(fm)
        if 4 * F.size >= m:
            # most draws take an nk step: computed on whole arrays, kept where the draw is fresh
            e = np.take(eps, np.minimum(t, T - 1) * m + draws, axis=0)
            vF, rnF, uF = exog_step(sol, v, rn, u, e[:, 0], e[:, 1], e[:, 2])
            x, pi = jumps(sol, il, vF, rnF, uF)
            sh = taylor(sol, il, x, pi, vF)
            lb = _lower_bound(np.stack((il, vF, rnF, uF)), ch.lo, ch.hi)
            cand = fm & ((first >= 0) | (sh < ch.ib) | (lb < ch.ib))
            np.copyto(st[1:], np.stack((vF, rnF, uF, x, pi, sh)), where=fm)
            occ |= cand
            rounds[cand] = 0
            q = np.flatnonzero(fm & ~cand)
            if q.size:
                emit(q, x[q], pi[q], sh[q], sh[q], False)
        elif F.size:
            pr = _Params(np.take(ch.par, F, axis=0))
            e = np.take(eps, t[F] * m + F, axis=0)
            ilF, vF, rnF, uF = st[:4, F]
            vF, rnF, uF = exog_step(pr, vF, rnF, uF, e[:, 0], e[:, 1], e[:, 2])
            x, pi = jumps(pr, ilF, vF, rnF, uF)
            sh = taylor(pr, ilF, x, pi, vF)
            lb = _lower_bound(np.stack((ilF, vF, rnF, uF)), pr.lo, pr.hi)
            st[1:, F] = np.stack((vF, rnF, uF, x, pi, sh))
            c = (first[F] >= 0) | (sh < pr.ib) | (lb < pr.ib)
            occ[F[c]] = True
            rounds[F[c]] = 0
            nc = ~c
            if nc.any():
                emit(F[nc], x[nc], pi[nc], sh[nc], sh[nc], False)
        A = np.flatnonzero(occ)
        if not A.size:
            if pending:
                flush()
            if not F.size:
                return (traj.reshape(T, m, 3).transpose(1, 0, 2), shadow.reshape(T, m).T, binding.reshape(T, m).T)
            continue
        done = []
        lag = np.where(t < T, t, T).min() + DEFER_LAG
        b = A[first[A] >= 0]
        one = count[b] == last[b] - first[b] + 1
        now = one & (first[b] == 0)
        # anticipated spells are rare: a small group of them waits for more, unless one of them
        # is among the slowest draws (speed only: each draw's numbers do not depend on its group)
        later = one & (first[b] > 0)
        if later.any():
            ql = b[later]
            if ql.size < DEFER_ROWS and t[ql].min() > lag:
                b, one, now = b[~later], one[~later], now[~later]
        size = buckets[np.searchsorted(buckets, last[b], side="right")]
        # solved guesses of one spell: rows, start of their unconstrained continuation, the next
        # guess before it (bounds), whether that equals the guess, period-0 values, binding now,
        # continuation state
        segs = []
        # One-spell guesses are solved in groups of buckets, each on its longest bucket: the sums
        # over a bucket of >= 8 periods do not change when padded with the zero terms of a longer
        # one (test_zlb checks this property of numpy's sums). Starting now: buckets 4 | 8, 16 |
        # 32 | longer (the O(s^2) work of padding stays small); starting later (rare): 4 | longer.
        klass = np.searchsorted(np.asarray(FN_CLASSES), size)
        for c in range(len(FN_CLASSES) + 1):
            sel = (klass == c) & now
            q = b[sel]
            if q.size:
                s = int(size[sel].max())
                Z = np.take(st, q, axis=1)
                e = last[q]
                ibq = ch.ib[q]
                try:
                    on, delta = _from_now_delta(ch, q, Z[:4], Z[6], e, s, ibq, ch.sol.p[q])
                except FloatingPointError:
                    fail(q, "non-finite path for a guessed binding spell")
                part = on & (delta >= -BIND_TOL)
                bounds = _part_bounds(part)
                x0, pi0 = _jump_corrections(ch, q, Z[4:6], delta, s)
                k_e = _spell_end_state(ch, q, Z[:4], e)
                e += 1
                segs.append(
                    (
                        q,
                        e,
                        part,
                        bounds,
                        bounds[2] == e,
                        x0,
                        pi0,
                        ibq,
                        ibq - delta[:, 0],
                        np.ones(q.size, dtype=bool),
                        k_e,
                    )
                )
        for sel in (size == BUCKETS[0], size > BUCKETS[0]):
            q = b[sel & one & ~now]
            if q.size:
                sq = size[sel & one & ~now]
                s = int(sq.max())
                Z = np.take(st, q, axis=1)
                try:
                    delta, i, part = _later_core(ch, q, Z[:4], Z[6], first[q], last[q], s, ch.ib[q], ch.sol.p[q])
                except FloatingPointError:
                    fail(q, "singular or non-finite path for a guess of binding periods")
                part &= np.arange(s) < sq[:, None]  # the next guess up to the row's own bucket
                bounds = _part_bounds(part)
                x0, pi0 = _jump_corrections(ch, q, Z[4:6], delta, s)
                same = (bounds[0] == first[q]) & (bounds[1] == last[q]) & (bounds[2] == count[q])
                # continuation from the end of the row's bucket: state (i[s-1], rho^s s_0)
                k_s = np.empty((4, q.size))
                k_s[0] = i[np.arange(q.size), sq - 1]
                np.multiply(Z[1:4], ch.rho_pow(q, sq), out=k_s[1:])
                segs.append(
                    (
                        q,
                        sq,
                        part,
                        bounds,
                        same,
                        x0,
                        pi0,
                        i[:, 0],
                        i[:, 0] - delta[:, 0],
                        np.zeros(q.size, dtype=bool),
                        k_s,
                    )
                )
        for s in np.unique(size[~one]):
            s = int(s)
            sel = size == s
            q = b[sel & ~one]
            if q.size:
                # guesses that are not one spell: the dense solve, checked on its own
                S = np.zeros((q.size, max(G, s)), dtype=bool)
                S[:, :G] = dense[q]
                Z = np.take(st, q, axis=1)
                try:
                    new, x0, pi0, i0, sh0 = _solve_guess(ch, q, Z[:4], Z[4:], S[:, :s], s)
                except (np.linalg.LinAlgError, FloatingPointError):
                    fail(q, "singular or non-finite path for a guess of binding periods")
                beyond(q, new[:, G:].any(axis=1))
                newS = new[:, :G]
                ok = (newS == S[:, :G]).all(axis=1)
                solved(q, ok)
                qo = np.flatnonzero(ok)
                if qo.size:
                    emit(q[qo], x0[qo], pi0[qo], i0[qo], sh0[qo], S[qo, 0])
                    done.append(q[qo])
                bad = np.flatnonzero(~ok)
                if bad.size:
                    set_guess(q[bad], *_compact(newS[bad]), newS[bad])
        # Guess "no binding period": the nk path, with the nk kernel's own period-0 rate. Verified
        # if it never violates the bound; otherwise its violations are the next guess.
        z = A[first[A] < 0]
        nq = sum(sg[0].size for sg in segs)
        rows = np.concatenate([sg[0] for sg in segs] + [z])
        K = np.concatenate([np.stack(sg[10]) for sg in segs] + [st[:4, z]], axis=1)
        first_rate = np.full(rows.size, np.nan)
        first_rate[nq:] = zsh[z]
        viol = _violations(ch, rows, K, first_rate)
        split = np.searchsorted(viol.hit, nq)
        if z.size:
            zh = viol.hit[split:] - nq
            ok = np.ones(z.size, dtype=bool)
            ok[zh] = False
            zo = z[ok]
            if zo.size:
                emit(zo, zx[zo], zpi[zo], zsh[zo], zsh[zo], False)
                done.append(zo)
            if zh.size:
                zl = viol.last[split:]
                beyond(z[zh], zl >= G)
                sub = np.arange(split, viol.hit.size)
                set_guess(
                    z[zh], viol.first[split:], zl, viol.count[split:], lambda sc, v=viol, s=sub: v.dense(s[sc])[:, :G]
                )
        if segs:
            q, shift, same, x0, pi0, i0, sh0, bind = (
                np.concatenate([sg[j] for sg in segs]) for j in (0, 1, 4, 5, 6, 7, 8, 9)
            )
            pf, pl, pn = (np.concatenate([sg[3][j] for sg in segs]) for j in range(3))
            vh = viol.hit[:split]
            vfirst, vlast, vcount = viol.first[:split], viol.last[:split], viol.count[:split]
            beyond(q, pl >= G)
            beyond(q[vh], shift[vh] + vlast >= G)
            ok = same.copy()
            ok[vh] = False
            solved(q, ok)
            qo = np.flatnonzero(ok)
            if qo.size:
                emit(q[qo], x0[qo], pi0[qo], i0[qo], sh0[qo], bind[qo])
                done.append(q[qo])
            bad = np.flatnonzero(~ok)
            if bad.size:
                # next guess: the part before the continuation and the continuation's violations
                f, l, n = pf.copy(), pl.copy(), pn.copy()
                f[vh] = np.where(pn[vh] > 0, pf[vh], shift[vh] + vfirst)
                l[vh] = shift[vh] + vlast
                n[vh] += vcount

                def rows_of(sc, bad=bad, segs=segs, shift=shift, vh=vh, viol=viol):
                    j = bad[sc]
                    S = np.zeros((j.size, int(shift[j].max()) + LOOKAHEAD), dtype=bool)
                    lo = 0
                    for sg in segs:
                        hi = lo + sg[0].size
                        inside = np.flatnonzero((j >= lo) & (j < hi))
                        S[inside, : sg[2].shape[1]] = sg[2][j[inside] - lo]
                        lo = hi
                    pos = np.searchsorted(vh, j)
                    hv = np.flatnonzero(vh[np.minimum(pos, vh.size - 1)] == j) if vh.size else pos[:0]
                    if hv.size:
                        S[hv[:, None], shift[j[hv], None] + np.arange(LOOKAHEAD)] = viol.dense(pos[hv])
                    return S[:, :G]

                set_guess(q[bad], f[bad], l[bad], n[bad], rows_of)
        if pending:
            flush()
        if done:
            done = np.concatenate(done)
            occ[done] = False
            carry(done)


# per-draw constants of the last chunk (about 40 MB for 4096 draws), shared by simulate and irfs
CHUNKS = LastFew(size=1)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``n`` draws in near-equal consecutive chunks of at most ``size`` (speed only)."""
    k = max(1, -(-n // size))
    edges = [round(j * n / k) for j in range(k + 1)]
    return [(edges[j], edges[j + 1]) for j in range(k) if edges[j + 1] > edges[j]]


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
        "the path of a guess is computed in anticipated-policy-shock form (Holden 2016), the same piecewise-"
        "linear system as OccBin's backward recursion",
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

    @staticmethod
    def _chunk(sol: NKSolution, theta: np.ndarray, lo: int, hi: int) -> _Chunk:
        """Per-draw constants of draws ``lo .. hi - 1``, shared by simulate and irfs of the same batch."""
        return CHUNKS.get(theta[lo:hi], lambda th: _Chunk(sol.take(slice(lo, hi)), th[:, _R_SS].copy()))

    def _simulate(self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray]) -> Simulation:
        sol = self._solution(theta)
        n, T, _ = eps.shape
        traj = np.empty((n, T, 3))
        shadow = np.empty((n, T, 1))
        binding = np.empty((n, T), dtype=bool)
        for lo, hi in _chunks(n, ZLB_CHUNK):
            chunk = self._chunk(sol, theta, lo, hi)
            tr, sh, b = simulate_occbin(chunk.sol, chunk.r_ss, eps[lo:hi], np.arange(lo, hi), chunk=chunk)
            traj[lo:hi], shadow[lo:hi, :, 0], binding[lo:hi] = tr, sh, b
        return Simulation(trajectories=traj, extras=shadow, metadata={"binding": binding})

    def _irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        sol = self._solution(theta)
        n = theta.shape[0]
        out = np.empty((n, 3, H + 1, 3))
        for lo, hi in _chunks(n, ZLB_CHUNK):
            chunk = self._chunk(sol, theta, lo, hi)  # shared by the three shock experiments
            for j in range(3):
                eps = np.zeros((hi - lo, H + 1, 3))
                eps[:, 0, j] = 1.0
                out[lo:hi, j], _, _ = simulate_occbin(chunk.sol, chunk.r_ss, eps, np.arange(lo, hi), chunk=chunk)
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
