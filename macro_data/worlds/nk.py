"""nk: the three-equation New Keynesian model (``docs/worlds.md``, section "nk").

Variables are quarterly fractions, deviations from the zero-inflation steady state::

    x[t]  = E x[t+1] - (1/sigma) (i[t] - E pi[t+1] - rn[t])                      (IS curve)
    pi[t] = beta E pi[t+1] + kappa x[t] + u[t]                                     (Phillips curve)
    i[t]  = rho_i i[t-1] + (1 - rho_i) (phi_pi pi[t] + phi_y x[t]) + v[t]          (Taylor rule)
    v[t]  = rho_m v[t-1] + sigma_m eps_m[t]      (monetary)
    rn[t] = rho_r rn[t-1] + sigma_r eps_r[t]     (demand / natural rate)
    u[t]  = rho_u u[t-1] + sigma_u eps_u[t]      (cost-push)

Shocks, in order: ``monetary``, ``demand``, ``cost_push``. Canonical observables:
``output = 100 x``, ``inflation = 400 pi``, ``rate = 400 i``.

Solution. With the predetermined state ``k[t] = (i[t-1], v[t], rn[t], u[t])`` (the exogenous
states already include the period-``t`` innovation) and the jumps ``(x[t], pi[t])``, the model is
``A E_t z[t+1] = B z[t]`` in ``z = [k; x, pi]`` (:func:`structural_matrices`). The solution is

    (x[t], pi[t]) = F k[t],      i[t] = Taylor rule,      k[t+1] = P k[t] + (0, sigma * eps[t+1]).

It is computed in two exact steps that together equal the Blanchard-Kahn solution of the full
six-variable system (the tests check this against :func:`macro_data.worlds.linear_re.solve_re`
on the full system, which uses a batched eigen-decomposition):

1. the endogenous block ``(i[t-1]; x[t], pi[t])`` has one predetermined variable and two jumps.
   Its generalized eigenvalues are the roots of the cubic ``g(l) = sigma det(B - l A)``::

       g(l) = sigma (rho_i - l) (1 - l) (1 - beta l) - kappa l (rho_i - l) - l (c_x (1 - beta l) + c_pi kappa)

   (:func:`characteristic_cubic`; ``c_x = (1 - rho_i) phi_y``, ``c_pi = (1 - rho_i) phi_pi``).
   Blanchard-Kahn: the block is determinate iff exactly one root lies inside the unit circle and
   two outside, none within ``1e-8`` of it. A single root inside is real (complex roots come in
   pairs of equal modulus), so then ``g(-1)`` and ``g(1)`` have opposite signs; it is found in
   ``[-1, 1]`` by bisection and safeguarded Newton steps until ``g`` is within its rounding error,
   and the other two roots are those of the quadratic left by dividing it out
   (:func:`endogenous_root`). The root is ``p = P[i, i]`` and, from the IS
   and Phillips curves with ``x = a i[t-1]``, ``pi = b i[t-1]``, ``i[t] = p i[t-1]``::

       a = F_xi  = -p (1 - beta p) / (sigma (1 - p) (1 - beta p) - kappa p),      b = F_pii = kappa a / (1 - beta p)

   A zero denominator (the Blanchard-Kahn rank condition failing) marks the draw not determinate.
   Element-wise arithmetic on ``(n,)`` vectors, about ten times faster than a batched 3x3
   eigen-decomposition (0.03 s against 0.41 s per 100,000 draws), which matters because every
   draw is solved twice (validation, then simulation);
2. the columns of ``F`` for the AR(1) states follow by undetermined coefficients: for a state
   with persistence ``rho`` and coefficients ``f = (f_x, f_pi)``, ``d = c_x f_x + c_pi f_pi + [monetary]``
   is its coefficient in ``i[t]`` and, with ``alpha = F_xi + (F_pii - 1)/sigma`` and
   ``gamma = beta F_pii``::

       (1 - rho) f_x - (rho/sigma) f_pi - alpha d = [demand]/sigma
       (1 - beta rho) f_pi - kappa f_x  - gamma d = [cost_push]

   a 2x2 system solved element-wise (Cramer's rule). It could only be singular if ``rho`` were
   one of the unstable roots (modulus > 1), impossible for ``rho < 1``; a non-finite result
   would mark the draw not determinate.

Simulation and IRFs loop over time only; every operation is element-wise over draws, so draw
``i`` gives bit-identical numbers whatever batch it is computed in. The rate is computed from the
Taylor rule each period (not from ``P``), the same arithmetic the zlb world uses when the bound
is slack, which is what makes zlb equal nk bit for bit on paths where the bound never binds.
"""

from __future__ import annotations

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
from macro_data.worlds.statespace import each_sample

# ---------------------------------------------------------------------------------------------
# Parameters (spec table; order is the theta column order)
# ---------------------------------------------------------------------------------------------
NK_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("beta", "1 (per quarter)", "discount factor", 0.985, 0.995, 0.99),
    Parameter("sigma", "1", "inverse intertemporal elasticity of substitution (IS-curve slope 1/sigma)", 0.5, 2.5, 1.0),
    Parameter(
        "kappa", "1", "slope of the Phillips curve (response of quarterly inflation to the output gap)", 0.01, 0.5, 0.1
    ),
    Parameter("phi_pi", "1", "long-run Taylor-rule response to quarterly inflation", 1.05, 3.5, 1.5),
    Parameter(
        "phi_y", "1", "long-run Taylor-rule response to the output gap (quarterly rate per unit gap)", 0.0, 1.0, 0.125
    ),
    Parameter("rho_i", "1 (per quarter)", "interest-rate smoothing", 0.0, 0.9, 0.8),
    Parameter("rho_m", "1 (per quarter)", "AR(1) coefficient of the monetary shock v", 0.0, 0.9, 0.5),
    Parameter("rho_r", "1 (per quarter)", "AR(1) coefficient of the demand (natural-rate) shock rn", 0.0, 0.95, 0.5),
    Parameter("rho_u", "1 (per quarter)", "AR(1) coefficient of the cost-push shock u", 0.0, 0.9, 0.5),
    Parameter("sigma_m", "quarterly fraction", "sd of the monetary innovation (into v)", 0.001, 0.01, 0.0025),
    Parameter("sigma_r", "quarterly fraction", "sd of the demand innovation (into rn)", 0.005, 0.02, 0.01),
    Parameter("sigma_u", "quarterly fraction", "sd of the cost-push innovation (into u)", 0.001, 0.01, 0.0025),
)
NK_SHOCKS: tuple[str, ...] = ("monetary", "demand", "cost_push")
N_NK = len(NK_PARAMETERS)
_IDX = {p.name: j for j, p in enumerate(NK_PARAMETERS)}

# ---------------------------------------------------------------------------------------------
# Split constants. Every in-bounds draw is determinate (phi_pi >= 1.05 > 1 and phi_y >= 0 satisfy
# the Taylor principle; 0 rejections in 400,000 draws), so the valid prior is the uniform box and
# the fractions have closed forms; the Monte Carlo check is
# ``python benchmarks/calibrate_splits.py nk --n 400000 --seed 0``.
# ---------------------------------------------------------------------------------------------
# Slice: phi_pi > 3.5 - 0.025 * 2.45. Closed form 0.025; Monte Carlo 0.02547.
SLICE_THRESHOLD = 3.43875
# Corner among draws outside the slice: persistence = max(rho_i, rho_m, rho_r, rho_u) > 0.8735 and
# volatility = max(sigma_m / 0.01, sigma_r / 0.02, sigma_u / 0.01) > 0.9522 (largest innovation sd
# as a fraction of its upper bound); tails balanced by Monte Carlo bisection. Closed form
# 0.15938 * 0.16054 * 0.975 = 0.02495; Monte Carlo 0.02502.
CORNER_PERSISTENCE_THRESHOLD = 0.8735
CORNER_VOLATILITY_THRESHOLD = 0.9522

SIGMA_HIGH = np.array([0.01, 0.02, 0.01])  # upper bounds of sigma_m, sigma_r, sigma_u


def persistence_statistic(theta: np.ndarray) -> np.ndarray:
    """``max(rho_i, rho_m, rho_r, rho_u)`` (works for nk and zlb theta: the nk columns come first).

    Parameters
    ----------
    theta : ndarray, shape (n, P)
        nk or zlb parameter vectors.

    Returns
    -------
    ndarray, shape (n,)
        The largest AR(1) coefficient, the corner rule's persistence.
    """
    return np.max(theta[:, [_IDX["rho_i"], _IDX["rho_m"], _IDX["rho_r"], _IDX["rho_u"]]], axis=1)


def volatility_statistic(theta: np.ndarray) -> np.ndarray:
    """``max(sigma_m / 0.01, sigma_r / 0.02, sigma_u / 0.01)``: the largest sd relative to its bound.

    Parameters
    ----------
    theta : ndarray, shape (n, P)
        nk or zlb parameter vectors.

    Returns
    -------
    ndarray of float64, shape (n,)
        Dimensionless, in ``[0, 1]`` for draws within bounds; the corner rule's volatility.
    """
    return np.max(theta[:, [_IDX["sigma_m"], _IDX["sigma_r"], _IDX["sigma_u"]]] / SIGMA_HIGH, axis=1)


# ---------------------------------------------------------------------------------------------
# Structural matrices and the solution
# ---------------------------------------------------------------------------------------------
def structural_matrices(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)``, each ``(n, 6, 6)``: ``A E_t z[t+1] = B z[t]``, ``z = [i(t-1), v, rn, u; x, pi]``, ``n_pre = 4``.

    Rows: Taylor rule (defines ``i[t]``, the first entry of ``k[t+1]``), the three AR(1) laws (in
    expectation), the IS curve ``E x' + E pi'/sigma - i[t]/sigma = x - rn/sigma``, the Phillips
    curve ``beta E pi' = pi - kappa x - u``. Only the first 12 columns of ``theta`` are read.

    Parameters
    ----------
    theta : array_like, shape (n, P)
        nk (or zlb) parameter vectors, ``P >= 12``.

    Returns
    -------
    A, B : ndarray of float64, shape (n, 6, 6)
        The inputs of :func:`macro_data.worlds.linear_re.solve_re` with ``n_pre = 4``.
    """
    th = np.asarray(theta, dtype=np.float64)
    n = th.shape[0]
    beta, sig, kap, phpi, phy, rhoi, rhom, rhor, rhou = (th[:, j] for j in range(9))
    A = np.zeros((n, 6, 6))
    B = np.zeros((n, 6, 6))
    for j in range(4):
        A[:, j, j] = 1.0
    B[:, 0, 0] = rhoi
    B[:, 0, 1] = 1.0
    B[:, 0, 4] = (1.0 - rhoi) * phy
    B[:, 0, 5] = (1.0 - rhoi) * phpi
    B[:, 1, 1] = rhom
    B[:, 2, 2] = rhor
    B[:, 3, 3] = rhou
    A[:, 4, 0] = -1.0 / sig
    A[:, 4, 4] = 1.0
    A[:, 4, 5] = 1.0 / sig
    B[:, 4, 4] = 1.0
    B[:, 4, 2] = -1.0 / sig
    A[:, 5, 5] = beta
    B[:, 5, 5] = 1.0
    B[:, 5, 4] = -kap
    B[:, 5, 3] = -1.0
    return A, B


@dataclass
class NKSolution:
    """Per-draw coefficients, each ``(n,)`` float64. NaN where ``determinate`` is False.

    ``Fx[c]``, ``Fpi[c]`` for ``c`` in ``(i, v, rn, u)``: ``x[t] = sum_c Fx[c] k_c[t]``.
    ``p``: the endogenous root, ``i[t] = p i[t-1] + ...`` on the unconstrained path.
    """

    beta: np.ndarray
    sigma: np.ndarray
    kappa: np.ndarray
    rho_i: np.ndarray
    c_x: np.ndarray  # (1 - rho_i) phi_y
    c_pi: np.ndarray  # (1 - rho_i) phi_pi
    rho: tuple[np.ndarray, np.ndarray, np.ndarray]  # rho_m, rho_r, rho_u
    sd: tuple[np.ndarray, np.ndarray, np.ndarray]  # sigma_m, sigma_r, sigma_u
    Fx: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    Fpi: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    p: np.ndarray
    determinate: np.ndarray

    def rate_loadings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``R`` with ``i[t] = sum_c R[c] k_c[t]`` on the unconstrained path (``R[0] = p``)."""
        r = [self.rho_i + self.c_x * self.Fx[0] + self.c_pi * self.Fpi[0]]
        for c in (1, 2, 3):
            r.append(self.c_x * self.Fx[c] + self.c_pi * self.Fpi[c] + (1.0 if c == 1 else 0.0))
        return tuple(r)

    def take(self, idx) -> NKSolution:
        def t(a):
            return a[idx]

        return NKSolution(
            t(self.beta),
            t(self.sigma),
            t(self.kappa),
            t(self.rho_i),
            t(self.c_x),
            t(self.c_pi),
            tuple(map(t, self.rho)),
            tuple(map(t, self.sd)),
            tuple(map(t, self.Fx)),
            tuple(map(t, self.Fpi)),
            t(self.p),
            t(self.determinate),
        )


# Blanchard-Kahn margin around the unit circle (the same as linear_re.solve_re's default).
UNIT_ROOT_TOL = 1e-8
# Root finding on [-1, 1]: a few bisection halvings isolate the root, then Newton steps, replaced by
# a false-position step whenever Newton would leave the bracket; a draw stops as soon as its step
# no longer moves it, so its result does not depend on the batch. The tests check the roots
# against numpy's polynomial roots.
BISECTIONS = 8
MAX_STEPS = 60
EPS = np.finfo(np.float64).eps


def characteristic_cubic(beta, sig, kap, rhoi, c_x, c_pi) -> tuple[np.ndarray, ...]:
    """Coefficients ``(c3, c2, c1, c0)`` of ``g(l) = c3 l^3 + c2 l^2 + c1 l + c0`` (module docstring).

    Parameters
    ----------
    beta, sig, kap, rhoi : ndarray, shape (n,)
        Discount factor, ``sigma``, ``kappa`` and ``rho_i`` of each draw.
    c_x, c_pi : ndarray, shape (n,)
        ``(1 - rho_i) phi_y`` and ``(1 - rho_i) phi_pi``.

    Returns
    -------
    tuple of 4 ndarray, each shape (n,)
        ``(c3, c2, c1, c0)``, highest power first.
    """
    c3 = -sig * beta
    c2 = sig * (1.0 + beta + beta * rhoi) + kap + beta * c_x
    c1 = -sig * (1.0 + rhoi * (1.0 + beta)) - kap * rhoi - c_x - kap * c_pi
    c0 = sig * rhoi
    return c3, c2, c1, c0


def _horner(c: tuple[np.ndarray, ...], x: np.ndarray) -> np.ndarray:
    return ((c[0] * x + c[1]) * x + c[2]) * x + c[3]


def endogenous_root(c: tuple[np.ndarray, ...], tol: float = UNIT_ROOT_TOL) -> tuple[np.ndarray, np.ndarray]:
    """``(p, determinate)`` for the cubics ``c`` (each coefficient ``(n,)``).

    ``determinate``: exactly one root with ``|l| < 1 - tol``, the other two with ``|l| > 1 + tol``.
    ``p``: that root (where not determinate, whatever the search gave). Element-wise arithmetic
    only, so each draw's result does not depend on its batch.

    Parameters
    ----------
    c : tuple of 4 ndarray, each shape (n,)
        ``(c3, c2, c1, c0)`` of :func:`characteristic_cubic`.
    tol : float, optional
        Margin around the unit circle.

    Returns
    -------
    p : ndarray of float64, shape (n,)
    determinate : ndarray of bool, shape (n,)
    """
    c3, c2, c1, c0 = c
    n = c3.shape[0]
    lo, hi = np.full(n, -1.0), np.full(n, 1.0)
    g_lo, g_hi = _horner(c, lo), _horner(c, hi)
    s_lo = np.sign(g_lo)
    bracket = s_lo * np.sign(g_hi) < 0

    def narrow(x, g):  # keep the sign change inside [lo, hi]
        right = np.sign(g) == s_lo
        return np.where(right, x, lo), np.where(right, g, g_lo), np.where(right, hi, x), np.where(right, g_hi, g)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(BISECTIONS):
            x = 0.5 * (lo + hi)
            lo, g_lo, hi, g_hi = narrow(x, _horner(c, x))
        x = lo - g_lo * (hi - lo) / (g_hi - g_lo)
        active = bracket.copy()
        for _ in range(MAX_STEPS):
            if not active.any():
                break
            g = _horner(c, x)
            lo, g_lo, hi, g_hi = narrow(x, g)
            # Take this step and stop where g(x) is within the rounding error of evaluating it:
            # further steps would only wander inside that noise.
            ax = np.abs(x)
            settled = np.abs(g) <= 2.0 * EPS * (((np.abs(c3) * ax + np.abs(c2)) * ax + np.abs(c1)) * ax + np.abs(c0))
            newton = x - g / ((3.0 * c3 * x + 2.0 * c2) * x + c1)
            false_position = lo - g_lo * (hi - lo) / (g_hi - g_lo)
            step = np.where(g == 0.0, x, np.where((newton >= lo) & (newton <= hi), newton, false_position))
            settled |= np.abs(step - x) <= 2.0 * np.spacing(np.abs(step))
            x = np.where(active, step, x)
            active &= ~settled
        # The two other roots: those of g(l) / (l - x) = c3 l^2 + e1 l + e0.
        e1 = c2 + c3 * x
        e0 = c1 + e1 * x
        disc = e1 * e1 - 4.0 * c3 * e0
        q = -0.5 * (e1 + np.copysign(np.sqrt(np.abs(disc)), e1))
        real_small = np.minimum(np.abs(q / c3), np.abs(e0 / q))  # real pair: roots q / c3 and e0 / q
        complex_mod = np.sqrt(np.abs(e0 / c3))  # complex pair: modulus^2 = e0 / c3
        others = np.where(disc >= 0.0, real_small, complex_mod)
    determinate = bracket & (c3 != 0.0) & (np.abs(x) < 1.0 - tol) & (others > 1.0 + tol)
    return x, determinate


def solve(theta: np.ndarray) -> NKSolution:
    """Solve the nk model for every row of ``theta`` (first 12 columns in nk order); never raises
    for indeterminate rows (``determinate=False``, NaN coefficients).

    Parameters
    ----------
    theta : array_like, shape (n, P)
        nk (or zlb) parameter vectors, ``P >= 12``.

    Returns
    -------
    NKSolution
        Per-draw coefficients, each ``(n,)`` float64, and ``determinate (n,)`` bool.
    """
    th = np.asarray(theta, dtype=np.float64)[:, :N_NK].T.copy()  # (12, n): contiguous columns
    beta, sig, kap, phpi, phy, rhoi = th[:6]
    rho = (th[6], th[7], th[8])
    sd = (th[9], th[10], th[11])
    c_x = (1.0 - rhoi) * phy
    c_pi = (1.0 - rhoi) * phpi
    p, determinate = endogenous_root(characteristic_cubic(beta, sig, kap, rhoi, c_x, c_pi))
    with np.errstate(divide="ignore", invalid="ignore"):  # non-determinate rows: NaN below
        Fxi = -p * (1.0 - beta * p) / (sig * (1.0 - p) * (1.0 - beta * p) - kap * p)
        Fpii = kap * Fxi / (1.0 - beta * p)
        alpha = Fxi + (Fpii - 1.0) / sig
        gamma = beta * Fpii
        Fx = [Fxi]
        Fpi = [Fpii]
        for j in range(3):
            r = rho[j]
            a11 = (1.0 - r) - alpha * c_x
            a12 = -r / sig - alpha * c_pi
            a21 = -kap - gamma * c_x
            a22 = (1.0 - beta * r) - gamma * c_pi
            b1 = (1.0 / sig if j == 1 else 0.0) + (alpha if j == 0 else 0.0)
            b2 = (1.0 if j == 2 else 0.0) + (gamma if j == 0 else 0.0)
            det = a11 * a22 - a12 * a21
            Fx.append((b1 * a22 - a12 * b2) / det)
            Fpi.append((a11 * b2 - a21 * b1) / det)
        ok = determinate & np.all(np.isfinite(np.stack(Fx + Fpi)), axis=0)
    nan = np.where(ok, 1.0, np.nan)  # NaN coefficients where not determinate
    return NKSolution(
        beta, sig, kap, rhoi, c_x, c_pi, rho, sd, tuple(f * nan for f in Fx), tuple(f * nan for f in Fpi), p * nan, ok
    )


SOLUTIONS = LastFew(size=4)


def cached_solution(theta: np.ndarray) -> NKSolution:
    """:func:`solve` of the nk columns of ``theta`` (zlb's too), reusing the last few batches' solutions.

    Parameters
    ----------
    theta : array_like, shape (n, P)
        nk (or zlb) parameter vectors, ``P >= 12``.

    Returns
    -------
    NKSolution
        Shared with other callers of the same batch: do not modify it.
    """
    return SOLUTIONS.get(np.asarray(theta)[:, :N_NK], solve)


# ---------------------------------------------------------------------------------------------
# Element-wise kernels shared with zlb (same arithmetic => bit-identical results)
# ---------------------------------------------------------------------------------------------
def exog_step(s: NKSolution, v, rn, u, e_m, e_r, e_u):
    """AR(1) laws with the period's innovations (sd units).

    Parameters
    ----------
    s : NKSolution
        The draws' solution (:func:`solve`), coefficients ``(m,)``.
    v, rn, u : ndarray
        Last period's monetary, natural-rate and cost-push states.
    e_m, e_r, e_u : ndarray
        This period's standard-normal innovations (broadcast against the states).

    Returns
    -------
    tuple of 3 ndarray
        This period's ``(v, rn, u)``.
    """
    return (s.rho[0] * v + s.sd[0] * e_m, s.rho[1] * rn + s.sd[1] * e_r, s.rho[2] * u + s.sd[2] * e_u)


def jumps(s: NKSolution, il, v, rn, u):
    """Unconstrained ``x[t]``, ``pi[t]`` from the state ``(i[t-1], v[t], rn[t], u[t])``.

    Parameters
    ----------
    s : NKSolution
        The draws' solution (:func:`solve`), coefficients ``(m,)``.
    il, v, rn, u : ndarray
        The state, model (quarterly) units.

    Returns
    -------
    x, pi : ndarray
        Output gap and inflation, model units.
    """
    x = s.Fx[0] * il + s.Fx[1] * v + s.Fx[2] * rn + s.Fx[3] * u
    pi = s.Fpi[0] * il + s.Fpi[1] * v + s.Fpi[2] * rn + s.Fpi[3] * u
    return x, pi


def taylor(s: NKSolution, il, x, pi, v):
    """The (unconstrained) Taylor rule value ``rho_i i[t-1] + c_x x + c_pi pi + v``.

    Parameters
    ----------
    s : NKSolution
        The draws' solution (:func:`solve`), coefficients ``(m,)``.
    il, x, pi, v : ndarray
        Last period's rate and this period's output gap, inflation and monetary shock, model units.

    Returns
    -------
    ndarray
        ``i[t]``, model (quarterly) units.
    """
    return s.rho_i * il + s.c_x * x + s.c_pi * pi + v


# Draws are processed in chunks of this many samples (a speed constant only: every draw is
# computed on its own, so results do not depend on it).
CHUNK = 2048
SCALE = (100.0, 400.0, 400.0)  # model units -> canonical: output 100 x, inflation 400 pi, rate 400 i


def check_determinate(world: World, sol: NKSolution, theta: np.ndarray) -> None:
    """Raise naming the first draw of ``theta`` whose model has no unique stable solution.

    Parameters
    ----------
    world : World
        The world (its name and parameters go into the message).
    sol : NKSolution
        The solution of ``theta``.
    theta : ndarray, shape (n, P)
        The parameter vectors.

    Raises
    ------
    WorldError
        If any draw is not determinate; the message lists that draw's parameter values.
    """
    if not sol.determinate.all():
        i = int(np.flatnonzero(~sol.determinate)[0])
        vals = ", ".join(f"{p.name}={theta[i, j]:.6g}" for j, p in enumerate(world.parameters))
        raise WorldError(f"world {world.name!r}: draw {i} is indeterminate (no unique stable solution): {vals}")


def simulate_unconstrained(s: NKSolution, eps: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Canonical trajectories ``(m, T, 3)`` from the steady state for innovations ``eps (m, T, 3)``
    (float32 or float64), written into ``out`` (float64 or float32: rounded once) if given.

    Each draw runs period after period in compiled code
    (:func:`macro_data.worlds.recursions.nk_paths`), with the arithmetic of :func:`exog_step`,
    :func:`jumps` and :func:`taylor`.

    Parameters
    ----------
    s : NKSolution
        The draws' solution (:func:`solve`), coefficients ``(m,)``.
    eps : ndarray, shape (m, T, 3)
        Standard-normal innovations of the monetary, natural-rate and cost-push shocks.
    out : ndarray, shape (m, T, 3), optional
        Destination whose rows are C-contiguous; a new float64 array if ``None``.

    Returns
    -------
    ndarray, shape (m, T, 3)
        ``out``: output (percent), inflation and rate (annualized percentage points).

    Raises
    ------
    ValueError
        If ``out`` has the wrong shape or its rows are not C-contiguous.
    """
    m, T, _ = eps.shape
    out = np.empty((m, T, 3)) if out is None else out
    if out.shape != (m, T, 3) or not out[:1].flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous rows of shape {(m, T, 3)}; got shape {out.shape}")
    return _compiled_paths(s, np.zeros((4, m)), eps, out)


def _compiled_paths(s: NKSolution, start: np.ndarray, eps: np.ndarray, out: np.ndarray) -> np.ndarray:
    """:func:`macro_data.worlds.recursions.nk_paths` on ``s``'s coefficients, into ``out`` (returned)."""
    from macro_data.worlds.recursions import nk_paths  # numba: imported by the processes that simulate

    m = eps.shape[0]
    target = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
    nk_paths(
        *(each_sample(np.stack(rows), m) for rows in (s.rho, s.sd, s.Fx, s.Fpi)),
        *(each_sample(c, m) for c in (s.rho_i, s.c_x, s.c_pi)),
        np.ascontiguousarray(start, dtype=np.float64),
        np.ascontiguousarray(eps),
        target,
    )
    if target is not out:
        out[...] = target
    return out


def free_unconstrained(s: NKSolution, state: np.ndarray, T: int) -> np.ndarray:
    """Canonical trajectories ``(m, T, 3)`` with zero innovations from the state entering period 0.

    ``state (m, 4)`` is ``(400 i[-1], 400 v[-1], 400 rn[-1], 400 u[-1])`` (:data:`NK_STATE_VARIABLES`);
    each period runs the recursion of :func:`simulate_unconstrained` with zero innovations::

        v[t] = rho_m v[t-1],  rn[t] = rho_r rn[t-1],  u[t] = rho_u u[t-1]
        (x[t], pi[t]) = F (i[t-1], v[t], rn[t], u[t]),   i[t] = rho_i i[t-1] + c_x x[t] + c_pi pi[t] + v[t]

    Parameters
    ----------
    s : NKSolution
        The draws' solution (:func:`solve`), coefficients ``(m,)``.
    state : ndarray of float64, shape (m, 4)
        The state entering period 0, annualized percentage points.
    T : int
        Number of periods, ``>= 1``.

    Returns
    -------
    ndarray of float64, shape (m, T, 3)
        Output (percent), inflation and rate (annualized percentage points).
    """
    m = state.shape[0]
    start = np.ascontiguousarray(state.T) / SCALE[2]  # model (quarterly) units
    return _compiled_paths(s, start, np.zeros((m, T, 3)), np.empty((m, T, 3)))


def irfs_unconstrained(s: NKSolution, H: int, out: np.ndarray | None = None) -> np.ndarray:
    """``(m, 3 shocks, H + 1, 3)``: +1 sd innovation ``j`` at ``h = 0`` from the steady state,
    written into ``out`` (float64 or float32) if given.

    Each experiment is the recursion of :func:`simulate_unconstrained` with innovations that are
    one for shock ``j`` at ``h = 0`` and zero otherwise.

    Parameters
    ----------
    s : NKSolution
        The draws' solution (:func:`solve`), coefficients ``(m,)``.
    H : int
        Last horizon, ``>= 0``.
    out : ndarray, shape (m, 3, H + 1, 3), optional
        Destination; a new float64 array if ``None``.

    Returns
    -------
    ndarray, shape (m, 3, H + 1, 3)
        ``out``: ``[i, j, h, k]`` is observable ``k``'s response at ``h`` to shock ``j``, canonical units.
    """
    m = s.p.shape[0]
    out = np.empty((m, 3, H + 1, 3)) if out is None else out
    eps = np.zeros((3, m, H + 1, 3))  # experiment j: innovation 1 to shock j at h = 0
    for j in range(3):
        eps[j, :, 0, j] = 1.0
    tiled = s.take(np.tile(np.arange(m), 3))  # the draws' coefficients once per experiment
    y = _compiled_paths(tiled, np.zeros((4, 3 * m)), eps.reshape(3 * m, H + 1, 3), np.empty((3 * m, H + 1, 3)))
    np.copyto(out, y.reshape(3, m, H + 1, 3).transpose(1, 0, 2, 3), casting="same_kind")
    return out


def chunked(fn, out: np.ndarray) -> np.ndarray:
    """``fn(lo, hi, out[lo:hi])`` on consecutive chunks of draws, each filling its rows of ``out``.

    Parameters
    ----------
    fn : callable
        ``fn(lo, hi, rows)`` writing draws ``lo .. hi - 1`` into ``rows``.
    out : ndarray, shape (n, ...)
        The destination; chunks of :data:`CHUNK` draws.

    Returns
    -------
    ndarray
        ``out``.
    """
    for lo in range(0, out.shape[0], CHUNK):
        hi = min(lo + CHUNK, out.shape[0])
        fn(lo, hi, out[lo:hi])
    return out


NK_STATE_VARIABLES = (
    Observable("rate_lag", "annualized percentage points", "the rate of period t-1, 400 i[t-1] (canonical rate[t-1])"),
    Observable("monetary_lag", "annualized percentage points", "400 v[t-1], the monetary-policy shock process"),
    Observable("demand_lag", "annualized percentage points", "400 rn[t-1], the natural-rate (demand) process"),
    Observable("cost_push_lag", "annualized percentage points", "400 u[t-1], the cost-push process"),
)


def state_path(s: NKSolution, eps: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """The state entering each period ``(n, T, 4)``: ``(rate[t-1], 400 v[t-1], 400 rn[t-1], 400 u[t-1])``,
    the shock processes recomputed from ``eps (n, T, 3)`` by their AR(1) laws, ``rate (n, T)`` the simulated
    canonical rate (zlb: the constrained rate)."""
    n, T, _ = eps.shape
    out = np.zeros((n, T, 4))
    out[:, 1:, 0] = rate[:, :-1]
    v, rn, u = np.zeros(n), np.zeros(n), np.zeros(n)
    for t in range(T - 1):
        v, rn, u = exog_step(s, v, rn, u, eps[:, t, 0], eps[:, t, 1], eps[:, t, 2])
        out[:, t + 1, 1] = 400.0 * v
        out[:, t + 1, 2] = 400.0 * rn
        out[:, t + 1, 3] = 400.0 * u
    return out


class NK(World):
    name = "nk"
    description = (
        "Three-equation New Keynesian model (IS curve, Phillips curve, Taylor rule with smoothing) "
        "with AR(1) monetary, demand and cost-push shocks; linear rational expectations solved by "
        "Blanchard-Kahn on the closed-form characteristic cubic of the endogenous block."
    )
    parameters = NK_PARAMETERS
    shocks = NK_SHOCKS
    linear = True
    state_variables = NK_STATE_VARIABLES
    slice_rule = SliceRule(
        "phi_pi",
        SLICE_THRESHOLD,
        "above",
        f"phi_pi > {SLICE_THRESHOLD}: the most hawkish inflation response; 2.5 % of the valid prior "
        "(closed form; Monte Carlo 0.02547 with 400,000 draws)",
    )
    corner_rule = CornerRule(
        "max(rho_i, rho_m, rho_r, rho_u)",
        CORNER_PERSISTENCE_THRESHOLD,
        "max(sigma_m/0.01, sigma_r/0.02, sigma_u/0.01)",
        CORNER_VOLATILITY_THRESHOLD,
        "jointly persistent and volatile draws outside the slice: 2.49 % of the valid prior (closed form; "
        "Monte Carlo 0.02502 with 400,000 draws; the two marginal tails balanced at ~16 %)",
    )
    design_notes = (
        "state k[t] = (i[t-1], v[t], rn[t], u[t]); jumps (x[t], pi[t]); the exogenous states include the "
        "period-t innovation, i.e. eps[t] moves v[t], rn[t], u[t] and hence y[t]",
        "solution: Blanchard-Kahn on the endogenous block (i[t-1]; x, pi): its characteristic cubic "
        "sigma det(B - l A) in closed form, the one root inside the unit circle by bisection and Newton, the other "
        "two from the quadratic left; AR(1) loadings by undetermined coefficients; equal to the full 6-variable "
        "Blanchard-Kahn solution by batched eigen-decomposition to 1e-9 (tested). The closed form replaces the "
        "eigen-decomposition the spec calls the fast route because it is about ten times faster",
        "valid iff determinate (unique stable solution); with phi_pi >= 1.05 and phi_y >= 0 every in-bounds "
        "draw satisfies the Taylor principle, so rejections are not expected",
        "output = 100 x is the output gap (the model's only output concept), as the spec's mapping says",
        "the rate is computed from the Taylor rule each period; IRFs are +1 sd innovations from the steady "
        "state and equal the MA coefficients times sigma_j",
    )

    def propose(self, rng: np.random.Generator, n: int, priors: Priors) -> np.ndarray:
        return self.propose_independent(rng, n, priors)

    def is_valid(self, theta: np.ndarray) -> np.ndarray:
        return cached_solution(theta).determinate.copy()

    def solution(self, theta: np.ndarray) -> NKSolution:
        """The (cached) solution of already-checked ``theta``."""
        return cached_solution(theta)

    def _simulate(self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray]) -> Simulation:
        return self._simulate_as(theta, eps, metadata, np.dtype(np.float64))

    def _simulate_as(self, theta, eps, metadata, dtype) -> Simulation:
        sol = self.solution(theta)
        check_determinate(self, sol, theta)
        n, T, _ = eps.shape
        traj = chunked(
            lambda lo, hi, out: simulate_unconstrained(sol.take(slice(lo, hi)), eps[lo:hi], out),
            np.empty((n, T, 3), dtype=dtype),
        )
        return Simulation(trajectories=traj)

    def _irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        return self._irfs_as(theta, H, np.dtype(np.float64))

    def _irfs_as(self, theta, H, dtype) -> np.ndarray:
        sol = self.solution(theta)
        check_determinate(self, sol, theta)
        return chunked(
            lambda lo, hi, out: irfs_unconstrained(sol.take(slice(lo, hi)), H, out),
            np.empty((theta.shape[0], 3, H + 1, 3), dtype=dtype),
        )

    def _state_path(self, theta, eps, metadata, sim) -> np.ndarray:
        return state_path(self.solution(theta), np.asarray(eps, dtype=np.float64), sim.trajectories[:, :, 2])

    def _free_path(self, theta: np.ndarray, state: np.ndarray, T: int) -> np.ndarray:
        """The path with zero innovations from the state entering period 0 (:func:`free_unconstrained`).

        With ``k[t] = (i[t-1], v[t], rn[t], u[t])`` and zero innovations the shock processes decay,
        ``v[t] = rho_m^(t+1) v[-1]`` (likewise ``rn``, ``u``), and ``(x[t], pi[t]) = F k[t]``,
        ``i[t] = rho_i i[t-1] + c_x x[t] + c_pi pi[t] + v[t]`` (the Taylor rule, as in :meth:`_simulate`).

        Parameters
        ----------
        theta : ndarray of float64, shape (n, P)
            Checked parameter vectors.
        state : ndarray of float64, shape (n, 4)
            ``(rate_lag, monetary_lag, demand_lag, cost_push_lag)`` = ``400 (i[-1], v[-1], rn[-1], u[-1])``,
            annualized percentage points (:attr:`state_variables`).
        T : int
            Number of periods, ``>= 1``.

        Returns
        -------
        ndarray of float64, shape (n, T, 3)
            ``100 x``, ``400 pi``, ``400 i``.

        Raises
        ------
        WorldError
            If a draw is indeterminate.
        """
        sol = self.solution(theta)
        check_determinate(self, sol, theta)
        return chunked(
            lambda lo, hi, out: np.copyto(out, free_unconstrained(sol.take(slice(lo, hi)), state[lo:hi], T)),
            np.empty((theta.shape[0], T, 3)),
        )

    def slice_statistic(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(theta, dtype=np.float64)[:, _IDX["phi_pi"]].copy()

    def corner_statistics(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        th = np.asarray(theta, dtype=np.float64)
        return persistence_statistic(th), volatility_statistic(th)


WORLD = NK()
