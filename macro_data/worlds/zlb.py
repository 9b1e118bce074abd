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

Everything is vectorized across draws: per period, all draws take the nk step, the draws whose
bound check fails (or that carry a binding guess) go through guess-and-verify together, grouped
by the length of their guess (:data:`BUCKETS`); each draw stops as soon as its own guess is
verified, so its numbers never depend on the other draws in the batch.

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
    holds the rate at the bound (see the module docstring)."""
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


def _swap_last_axes(a: np.ndarray, block: int = 256) -> np.ndarray:
    """``a`` with its last two axes swapped, as a new C-contiguous array, copied in blocks of the last
    axis (a plain transposed copy of these (h, draw) tables strides through memory ~9x slower)."""
    out = np.empty(a.shape[:-2] + (a.shape[-1], a.shape[-2]))
    for lo in range(0, a.shape[-1], block):
        out[..., lo : lo + block, :] = a[..., lo : lo + block].swapaxes(-1, -2)
    return out


class _Chunk:
    """Per-draw constants of one chunk of draws (all ``(m, ...)``).

    * ``C[c, :, h]``: the unconstrained rate ``h`` quarters ahead per unit of state ``c`` of
      ``k = (i[t-1], v, rn, u)``, ``C[h] = R P^h``; ``Cmin``/``Cmax``: its extremes over ``h``.
    * Anticipated policy shocks: adding known shocks ``delta[d]`` to the Taylor rule moves the
      jumps by ``(dx, dpi)[h] = F_i di[h-1] + sum_{d >= h} Theta[d - h] delta[d]`` with
      ``Theta[j] = Phi_g^j Phi_d``, and the rate by ``di[h] = p di[h-1] + sum_{d >= h} b[d - h] delta[d]``,
      ``b[j] = c . Theta[j] + [j = 0]``, ``c = (c_x, c_pi)``. So the rate responses are
      ``di = L U delta`` with ``L[h, j] = p^(h-j)`` (lower-triangular Toeplitz) and
      ``U[j, d] = b[d-j]`` (upper-triangular Toeplitz); ``binv`` holds the coefficients of
      ``U^{-1}`` (the power-series inverse of ``b``; ``b[0] = 1/D != 0``).
    """

    def __init__(self, sol: NKSolution, r_ss: np.ndarray):
        self.sol = sol
        self.r_ss = r_ss
        self.ib = -r_ss / 400.0
        m = r_ss.shape[0]
        R = sol.rate_loadings()
        C = np.empty((4, LOOKAHEAD, m))  # filled along h, stored as (4, m, LOOKAHEAD) below
        for c in range(4):
            C[c, 0] = R[c]
        for h in range(1, LOOKAHEAD):
            prev0 = C[0, h - 1]
            C[0, h] = prev0 * sol.p
            for c in (1, 2, 3):
                C[c, h] = prev0 * R[c] + C[c, h - 1] * sol.rho[c - 1]
        self.C = _swap_last_axes(C)
        self.Cmin = self.C.min(axis=2)  # (4, m)
        self.Cmax = self.C.max(axis=2)
        self.Cmin_far = self.C[:, :, NEAR:].min(axis=2)
        self.Cmax_far = self.C[:, :, NEAR:].max(axis=2)

        # One backward step of the rule with next-period rule F_i: g = Phi_g g' + Phi_d delta, from
        # dqx = g'x + g'pi/sigma, dqpi = kappa dqx + beta g'pi, dnum = c_x dqx + c_pi dqpi + delta,
        # dgx = (alpha/D) dnum + dqx, dgpi = (ci/D) dnum + dqpi (the nk step of the zlb docstring).
        L = BUCKETS[-1]
        invs = 1.0 / sol.sigma
        alpha = sol.Fx[0] + (sol.Fpi[0] - 1.0) * invs
        ci = sol.beta * sol.Fpi[0] + sol.kappa * alpha
        D = 1.0 - sol.c_x * alpha - sol.c_pi * ci
        ad, cd = alpha / D, ci / D
        n_x = sol.c_x + sol.c_pi * sol.kappa
        n_p = sol.c_x * invs + sol.c_pi * (sol.kappa * invs + sol.beta)
        g11, g12 = ad * n_x + 1.0, ad * n_p + invs
        g21, g22 = cd * n_x + sol.kappa, cd * n_p + sol.kappa * invs + sol.beta
        # recursions run along j on contiguous (L, m) rows, stored draw-major for gathering draws
        theta = np.empty((L, 2, m))
        theta[0, 0], theta[0, 1] = ad, cd
        for j in range(1, L):
            tx, tp = theta[j - 1, 0], theta[j - 1, 1]
            theta[j, 0] = g11 * tx + g12 * tp
            theta[j, 1] = g21 * tx + g22 * tp
        b = sol.c_x * theta[:, 0] + sol.c_pi * theta[:, 1]
        b[0] += 1.0
        self.theta = np.ascontiguousarray(theta.transpose(2, 0, 1))  # (m, L, 2)
        self.b = _swap_last_axes(b)
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
        self.binv = _swap_last_axes(binv)
        ppow = np.empty((L, m))
        ppow[0] = 1.0
        for j in range(1, L):
            ppow[j] = ppow[j - 1] * sol.p
        self.ppow = _swap_last_axes(ppow)

    def lower_bound(self, k: tuple[np.ndarray, ...], rows=slice(None), far: bool = False) -> np.ndarray:
        """A lower bound of ``min_h C[h] . k`` over the horizon (``far``: over ``h >= NEAR`` only),
        taking each state's term at its own worst horizon; ``rows`` selects the draws of ``k``."""
        lo, hi = (self.Cmin_far, self.Cmax_far) if far else (self.Cmin, self.Cmax)
        lb = np.minimum(k[0] * lo[0, rows], k[0] * hi[0, rows])
        for c in range(1, 4):
            lb = lb + np.minimum(k[c] * lo[c, rows], k[c] * hi[c, rows])
        return lb


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


def _tmul(T: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``T @ x`` for ``T (k, s, s)``, ``x (k, s)``, summed in a fixed order per row."""
    return (T * x[:, None, :]).sum(axis=2)


def _path_rates(C: np.ndarray, k: tuple[np.ndarray, ...]) -> np.ndarray:
    """Unconstrained rates ``(m, H)`` from states ``k`` (four ``(m,)`` arrays); ``C`` is ``(4, m, H)``."""
    return C[0] * k[0][:, None] + C[1] * k[1][:, None] + C[2] * k[2][:, None] + C[3] * k[3][:, None]


def _violations(ch: _Chunk, rows: np.ndarray, k: tuple[np.ndarray, ...], first_rate=None) -> np.ndarray:
    """``(len(rows), LOOKAHEAD)`` bool: where the unconstrained path from states ``k`` falls below the bound.

    ``rows`` index the chunk's draws. ``first_rate`` replaces the path's period-0 rate (the nk
    kernel's own value, so that a verified no-binding period is exactly the nk period). Exact
    rates are computed only where a lower bound (each state's term at its own worst horizon)
    cannot exclude a violation: first the next :data:`NEAR` quarters, and the rest of the
    horizon only if the bound over the rest cannot exclude it either.
    """
    ib = ch.ib[rows]
    out = np.zeros((rows.size, LOOKAHEAD), dtype=bool)
    lb = ch.lower_bound(k, rows)
    need = lb < ib
    if first_rate is not None:
        need |= first_rate < ib
    w = np.flatnonzero(need)
    if w.size:
        rw = rows[w]
        kw = tuple(kc[w] for kc in k)
        near = _path_rates(ch.C[:, rw, :NEAR], kw)
        if first_rate is not None:
            near[:, 0] = first_rate[w]
        out[w, :NEAR] = near < ib[w, None]
        far = np.flatnonzero(ch.lower_bound(kw, rw, far=True) < ib[w])
        if far.size:
            out[w[far], NEAR:] = _path_rates(ch.C[:, rw[far], NEAR:], tuple(kc[far] for kc in kw)) < ib[w[far], None]
    return out


def _width(S: np.ndarray) -> int:
    """One past the last column of the guesses ``S`` that holds a binding period (0 if none)."""
    cols = np.flatnonzero(S.any(axis=0))
    return int(cols[-1]) + 1 if cols.size else 0


def _solve_guess(
    ch: _Chunk, rows: np.ndarray, k0: tuple[np.ndarray, ...], z0: tuple[np.ndarray, ...], S: np.ndarray, s: int
):
    """The perfect-foresight path of draws ``rows`` for guesses ``S (k, s)`` (binding periods < s).

    Solved in anticipated-shock form, the same piecewise-linear system as OccBin's
    regime-by-regime backward recursion (Holden 2016): the Taylor rule gets known shocks
    ``delta[h]`` on the guessed binding periods, chosen so that ``i[h] = ib`` there, i.e.
    ``(L U)_SS delta_S = ib - i_unc_S``; then ``i = i_unc + L U delta`` and ``shadow = i - delta``.
    A guess that is one spell ``[s0, e]`` (all guesses seen in practice) is solved with the
    triangular Toeplitz factors: ``(L U)_SS = L_22 U_22 + a w'`` with ``a[h] = p^(h - s0)`` and
    ``w[d] = sum_{j < s0} p^(s0 - j) b[d - j]`` (the periods before the spell enter through the
    single state ``i[s0 - 1]``), so ``delta`` follows from ``U_22^{-1} L_22^{-1}`` and Sherman-Morrison.
    Other guesses use a dense solve. ``z0 = (x, pi, i)``: the unconstrained period-0 values.
    Returns ``(new_guess (k, s + LOOKAHEAD), x0, pi0, i0, shadow0)``.
    """
    k = rows.size
    ib = ch.ib[rows][:, None]
    i_unc = _path_rates(ch.C[:, rows, :s], k0)
    i_unc[:, 0] = z0[2]
    p = ch.sol.p[rows][:, None]
    Lm = _toeplitz(ch.ppow[rows, :s], s, upper=False)
    Um = _toeplitz(ch.b[rows, :s], s, upper=True)
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
        Binv = _toeplitz(ch.binv[rows[q], :s], s, upper=True)

        def m_inv(y):  # (L_22 U_22)^{-1} y on the spell: L_22^{-1} is bidiagonal.
            w = y.copy()
            w[:, 1:] -= p[q] * np.where(Sq[:, :-1], y[:, :-1], 0.0)
            return np.where(Sq, _tmul(Binv, np.where(Sq, w, 0.0)), 0.0)

        d_r = m_inv(r[q])
        fq = first[q]
        before = hh < fq
        if before.any():
            # rank-one term of the periods before the spell
            ppq = ch.ppow[rows[q]]
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
    new[:, s:] = _violations(ch, rows, k_s)
    th = ch.theta[rows, :s]
    x0 = z0[0] + (th[:, :, 0] * delta).sum(axis=1)
    pi0 = z0[1] + (th[:, :, 1] * delta).sum(axis=1)
    return new, x0, pi0, i[:, 0], i[:, 0] - delta[:, 0]


def _solve_from_now(
    ch: _Chunk, rows: np.ndarray, k0: tuple[np.ndarray, ...], z0: tuple[np.ndarray, ...], e: np.ndarray, s: int
):
    """Guesses that are one spell ``[0, e]`` (``e < s``): the common case, solved without dense algebra.

    On the spell ``i = ib``, so ``L U delta = ib - i_unc`` there and ``L^{-1}`` is bidiagonal:
    ``delta = U^{-1} L^{-1} r`` (``U^{-1}`` is triangular Toeplitz, coefficients ``binv``). After ``e``
    the path is the unconstrained one from the state ``(ib, rho^(e+1) s_0)``.
    Returns ``(new_guess (k, s + LOOKAHEAD), x0, pi0, shadow0)``.
    """
    k = rows.size
    ib = ch.ib[rows]
    hh = np.arange(s)[None, :]
    on = hh <= e[:, None]
    i_unc = _path_rates(ch.C[:, rows, :s], k0)
    i_unc[:, 0] = z0[2]
    r = np.where(on, ib[:, None] - i_unc, 0.0)
    w = r.copy()
    w[:, 1:] -= ch.sol.p[rows][:, None] * r[:, :-1]
    delta = np.where(on, _tmul(_toeplitz(ch.binv[rows, :s], s, upper=True), np.where(on, w, 0.0)), 0.0)
    if not np.isfinite(delta).all():
        raise FloatingPointError
    new = np.zeros((k, s + LOOKAHEAD), dtype=bool)
    new[:, :s] = on & (delta >= -BIND_TOL)
    k_e = (ib,) + tuple(k0[c + 1] * ch.sol.rho[c][rows] ** (e + 1) for c in range(3))
    viol = _violations(ch, rows, k_e)
    vr = np.flatnonzero(viol.any(axis=1))  # usually none: the path after a spell rarely dips again
    if vr.size:
        new[vr[:, None], e[vr, None] + 1 + np.arange(LOOKAHEAD)[None, :]] = viol[vr]
    th = ch.theta[rows, :s]
    x0 = z0[0] + (th[:, :, 0] * delta).sum(axis=1)
    pi0 = z0[1] + (th[:, :, 1] * delta).sum(axis=1)
    return new, x0, pi0, ib - delta[:, 0]


def _occbin(
    ch: _Chunk,
    idx: np.ndarray,
    k0: tuple[np.ndarray, ...],
    z0: tuple[np.ndarray, ...],
    S: np.ndarray,
    t: int,
    labels: np.ndarray,
):
    """Guess and verify for the draws ``idx`` of the chunk at period ``t``.

    ``k0 = (i[t-1], v, rn, u)``: their state; ``z0 = (x, pi, i)``: the nk kernel's period-``t``
    values; ``S (len(idx), MAX_BINDING_HORIZON)``: initial guesses (last period's verified binding
    periods, shifted by one, as in the original OccBin code); ``labels``: the batch index of each
    draw of the chunk, for error messages. Returns ``(bind_any, x, pi, i, shadow, binding_now,
    S_verified)``; where ``bind_any`` is False the verified guess is "no binding period" and the
    nk values stand. Each round first checks the "no binding" guesses and immediately solves
    the guess they lead to, then solves every other guess; a draw stops when its guess repeats.
    """
    m = idx.shape[0]
    G = S.shape[1]
    S = S.copy()
    active = np.ones(m, dtype=bool)
    bind_any = np.zeros(m, dtype=bool)
    out = [np.zeros(m) for _ in range(4)] + [np.zeros(m, dtype=bool)]
    cols = np.arange(G)[None, :]

    def where_draw(j):
        return f"draw {int(labels[idx[j]])} (r_ss={ch.r_ss[idx[j]]:.6g})"

    def fail(a_rows, what):
        raise WorldError(
            f"world 'zlb': OccBin at t={t}: {what} (one of draws {[int(labels[i]) for i in idx[a_rows][:5]]})"
        )

    def fit(new, a_rows):
        # Guesses live on h < MAX_BINDING_HORIZON; a binding period beyond it is a loud failure.
        if new.shape[1] > G and new[:, G:].any():
            j = a_rows[int(np.flatnonzero(new[:, G:].any(axis=1))[0])]
            raise WorldError(
                f"world 'zlb': OccBin at t={t}, {where_draw(j)}: the bound would bind "
                f"{G} or more quarters ahead (MAX_BINDING_HORIZON={G})"
            )
        return new[:, :G]

    for _ in range(MAX_GUESSES):
        a = np.flatnonzero(active)
        if a.size == 0:
            return (bind_any,) + tuple(out) + (S,)
        Sa = S[a]
        done = np.zeros(a.size, dtype=bool)
        # Guess "no binding period": the nk path. Verified if it never violates the bound;
        # otherwise its violations are the next guess, solved in this same round.
        z = np.flatnonzero(~Sa.any(axis=1))
        if z.size:
            az = a[z]
            viol = _violations(ch, idx[az], tuple(kc[az] for kc in k0), z0[2][az])
            done[z] = ~viol.any(axis=1)
            Sa[z] = 0
            Sa[z, : min(G, LOOKAHEAD)] = fit(viol, az)
        newS = Sa.copy()
        res = np.zeros((4, a.size))
        # guesses are short: the row-wise scans run over the columns that hold any binding period
        w = _width(Sa)
        Sw = Sa[:, :w]
        any_b = Sw.any(axis=1)
        if w:
            last = np.where(any_b, w - 1 - np.argmax(Sw[:, ::-1], axis=1), -1)
            from_now = any_b & Sw[:, 0] & (Sw == (cols[:, :w] <= last[:, None])).all(axis=1)
        else:
            last, from_now = np.full(a.size, -1), any_b
        lo = -1
        for s in BUCKETS:
            in_b = any_b & (last > lo) & (last < s)
            lo = s - 1
            q = np.flatnonzero(in_b & from_now)
            if q.size:
                aq = a[q]
                try:
                    new, x0, p0, sh0 = _solve_from_now(
                        ch, idx[aq], tuple(kc[aq] for kc in k0), tuple(zc[aq] for zc in z0), last[q], s
                    )
                except FloatingPointError:
                    fail(aq, "non-finite path for a guessed binding spell")
                newS[q] = fit(new, aq)
                res[:, q] = x0, p0, ch.ib[idx[aq]], sh0
            q = np.flatnonzero(in_b & ~from_now)
            if q.size:
                aq = a[q]
                try:
                    new, x0, p0, i0, sh0 = _solve_guess(
                        ch, idx[aq], tuple(kc[aq] for kc in k0), tuple(zc[aq] for zc in z0), Sa[q, :s], s
                    )
                except (np.linalg.LinAlgError, FloatingPointError):
                    fail(aq, "singular or non-finite path for a guess of binding periods")
                newS[q] = fit(new, aq)
                res[:, q] = x0, p0, i0, sh0
        wd = max(w, _width(newS))
        done |= any_b & (newS[:, :wd] == Sa[:, :wd]).all(axis=1)
        if done.any():
            nb = done & any_b
            dn = a[nb]
            bind_any[dn] = True
            for c in range(4):
                out[c][dn] = res[c, nb]
            out[4][dn] = Sa[nb, 0]
            S[a[done]] = Sa[done]
            active[a[done]] = False
        S[a[~done]] = newS[~done]
    a = np.flatnonzero(active)
    raise WorldError(
        f"world 'zlb': OccBin at t={t}: {a.size} draw(s) not verified after MAX_GUESSES="
        f"{MAX_GUESSES} rounds of guesses (first: {where_draw(a[0])})"
    )


def simulate_occbin(
    sol: NKSolution, r_ss: np.ndarray, eps: np.ndarray, labels: np.ndarray | None = None, chunk: _Chunk | None = None
):
    """OccBin simulation of one chunk: ``eps (m, T, 3)`` -> ``(traj (m, T, 3), shadow (m, T), binding (m, T))``.

    ``labels``: the batch index of each draw (for error messages only); ``chunk``: the draws'
    precomputed constants, if already built.
    """
    m, T, _ = eps.shape
    ch = _Chunk(sol, r_ss) if chunk is None else chunk
    W = MAX_BINDING_HORIZON
    labels = np.arange(m) if labels is None else labels
    traj = np.empty((m, T, 3))
    shadow = np.empty((m, T))
    binding = np.zeros((m, T), dtype=bool)
    # verified binding periods of the previous period, shifted by one: kept only for the draws where
    # that is not empty (rows ``g_rows``, ascending), so the per-period cost follows the binding draws
    g_rows = np.empty(0, dtype=np.intp)
    g_vals = np.zeros((0, W), dtype=bool)
    il = np.zeros(m)
    v = np.zeros(m)
    rn = np.zeros(m)
    u = np.zeros(m)
    for t in range(T):
        e = eps[:, t, :]
        v, rn, u = exog_step(sol, v, rn, u, e[:, 0], e[:, 1], e[:, 2])
        x, pi = jumps(sol, il, v, rn, u)
        sh = taylor(sol, il, x, pi, v)
        i = sh
        carry = np.zeros(m, dtype=bool)
        carry[g_rows] = True
        cand = np.flatnonzero(carry | (sh < ch.ib) | (ch.lower_bound((il, v, rn, u)) < ch.ib))
        bind = None
        if cand.size:
            S0 = np.zeros((cand.size, W), dtype=bool)
            S0[np.searchsorted(cand, g_rows)] = g_vals
            res = _occbin(
                ch, cand, (il[cand], v[cand], rn[cand], u[cand]), (x[cand], pi[cand], sh[cand]), S0, t, labels
            )
            ok = res[0]
            sel = cand[ok]
            if sel.size:
                x, pi, i, sh = x.copy(), pi.copy(), i.copy(), sh.copy()
                x[sel], pi[sel], i[sel], sh[sel] = res[1][ok], res[2][ok], res[3][ok], res[4][ok]
                bind = sel[res[5][ok]]
                binding[bind, t] = True
            shifted = res[6][:, 1:]
            keep = shifted.any(axis=1)
            g_rows = cand[keep]
            g_vals = np.zeros((g_rows.size, W), dtype=bool)
            g_vals[:, :-1] = shifted[keep]
        else:
            g_rows, g_vals = g_rows[:0], g_vals[:0]
        il = i
        o = traj[:, t, :]
        nk.canonical(x, pi, i, o.T)
        if bind is not None:
            o[bind, 2] = -r_ss[bind]
        np.multiply(sh, nk.SCALE[2], out=shadow[:, t])
    return traj, shadow, binding


# per-draw constants of the last chunk (about 75 MB for 4096 draws), shared by simulate and irfs
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


WORLD = ZLB()
