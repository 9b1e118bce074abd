"""OccBin for the zlb world, one draw at a time in compiled code (numba).

The model is the nk model of :mod:`macro_data.worlds.nk` with the rule
``i[t] = max(ib, rho_i i[t-1] + c_x x[t] + c_pi pi[t] + v[t])``, ``ib = -r_ss / 400``. Each
period ``t``, given the state ``k = (i[t-1], v[t], rn[t], u[t])`` (exogenous states including
``eps[t]``), OccBin (Guerrieri and Iacoviello 2015) solves the perfect-foresight path
``h = 0, 1, ...`` that expects no future innovations (``s[h] = rho^h s[0]``) for a guessed set
``S`` of binding periods, verifies the guess, and keeps the path's period-0 values.

Path of a guess ``S`` with last binding period ``l`` (regime-by-regime backward recursion):
after ``l`` the path is the nk solution, ``(x, pi)[l+1] = F (i[l], s[l+1])``. Going back from
``h = l`` to ``0``, each period's jumps are affine in ``i[h-1]``, ``x[h] = ax[h] i[h-1] + bx[h]``,
``pi[h] = ap[h] i[h-1] + bp[h]``, given next period's rules (primes)::

    binding:  i = ib,  x = (ax' ib + bx') - (ib - (ap' ib + bp') - rn[h]) / sigma,
              pi = beta (ap' ib + bp') + kappa x + u[h]                     (ax = ap = 0)
    slack:    alpha = ax' - (1 - ap') / sigma,  gamma = beta ap' + kappa alpha,
              x = alpha i + bx' + (bp' + rn[h]) / sigma,  pi = gamma i + beta bp' + kappa (...) + u[h],
              i = (rho_i i[h-1] + c_x x + c_pi pi + v[h]) solved for i: divide by
              D = 1 - c_x alpha - c_pi gamma

then a forward pass from ``i[-1]`` gives the path, and the shadow rate: in binding periods
``rho_i i[h-1] + c_x x[h] + c_pi pi[h] + v[h]`` (the rule's value on the solved path), in slack
ones the rate itself (the rule holds there).

Verification (OccBin's update): a binding period stays binding while its shadow rate is at most
``ib + BIND_TOL``; a slack period up to ``l`` becomes binding when its rate is below ``ib``; after
``l`` the unconstrained continuation from ``(ib, rho^(l+1) s[0])`` is checked over ``LOOKAHEAD``
quarters, and its violations join the next guess. The period's first guess is last period's
verified one shifted by a quarter (none at ``t = 0``). The guess "no binding period" is the nk
path; it is verified when its rates (period 0 the nk step's own rate) never fall below ``ib``, so
a period where the bound never threatens is computed by exactly the nk arithmetic.

Unconstrained rates ``h`` quarters ahead are ``C[h] . k`` with ``C[0] = R`` (the nk rate
loadings), ``C_i[h] = p C_i[h-1]`` and ``C_c[h] = R_c C_i[h-1] + rho_c C_c[h-1]``; a lower
bound of their minimum (each state's term at its own worst horizon, less a rounding margin of
``MARGIN`` times their magnitude) skips the check where no rate can be below ``ib``. The bound
only skips work: a check that runs computes every rate of its range exactly.

Every draw's numbers come from its own inputs by the same scalar arithmetic, whatever the
batch. Compiled without fast-math, so each operation is one IEEE double operation in the order
written (LLVM neither fuses multiply-adds nor reassociates without fast-math flags) and there are
no library calls (exp, log, BLAS) whose results could vary: the numbers are those of the code
run as plain Python (``NUMBA_DISABLE_JIT=1``), which ``test_zlb`` checks bit for bit.
"""

from __future__ import annotations

import numpy as np

from macro_data.worlds.compiled import compiled

# status codes of simulate_draws (status[0]); status[1] = draw, status[2] = period
OK, NON_FINITE, BEYOND, NOT_VERIFIED = 0, 1, 2, 3

NEAR = 24  # quarters of a continuation always checked exactly when the lower bound cannot exclude a violation
MARGIN = 1e-12  # relative rounding margin of the lower bound (see the module docstring)

# columns of the per-draw parameter table (:func:`parameter_table`)
RHO, SD, FX, FPI = 0, 3, 6, 10
RHO_I, C_X, C_PI, IB, BETA, SIGMA, KAPPA, P, R, R_SS = 14, 15, 16, 17, 18, 19, 20, 21, 22, 26
N_PAR = 27


def parameter_table(sol, r_ss: np.ndarray) -> np.ndarray:
    """``(m, N_PAR)`` float64: per draw the nk coefficients the kernel reads, ``ib`` and ``r_ss``.

    Parameters
    ----------
    sol : macro_data.worlds.nk.NKSolution
        The draws' unconstrained solution.
    r_ss : ndarray, shape (m,)
        Steady-state policy rate, annualized percent.
    """
    cols = [
        *sol.rho,
        *sol.sd,
        *sol.Fx,
        *sol.Fpi,
        sol.rho_i,
        sol.c_x,
        sol.c_pi,
        -r_ss / 400.0,
        sol.beta,
        sol.sigma,
        sol.kappa,
        sol.p,
        *sol.rate_loadings(),
        r_ss,
    ]
    return np.ascontiguousarray(np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1))


@compiled
def _loadings(par, lookahead, C, ext):
    """Fill ``C (lookahead, 4)`` with the rate loadings and ``ext (5, 4)`` with their extremes:
    min and max over all horizons, min and max over ``h >= NEAR``, max ``|C|``."""
    p = par[P]
    for c in range(4):
        C[0, c] = par[R + c]
    for h in range(1, lookahead):
        ci = C[h - 1, 0]
        C[h, 0] = ci * p
        for c in range(1, 4):
            C[h, c] = ci * par[R + c] + C[h - 1, c] * par[RHO + c - 1]
    for c in range(4):
        lo = hi = C[0, c]
        lof = hif = C[NEAR, c]
        for h in range(1, lookahead):
            z = C[h, c]
            lo = min(lo, z)
            hi = max(hi, z)
            if h > NEAR:
                lof = min(lof, z)
                hif = max(hif, z)
        ext[0, c], ext[1, c], ext[2, c], ext[3, c] = lo, hi, lof, hif
        ext[4, c] = max(-lo, hi)


@compiled
def _lower_bound(k, lo, hi):
    t = 0.0
    for c in range(4):
        t += min(k[c] * lo[c], k[c] * hi[c])
    return t


@compiled
def _violations(k, first_rate, C, ext, ib, lookahead, V, off):
    """Mark in ``V[off + h]`` the horizons ``h < lookahead`` whose unconstrained rate from ``k`` is
    below ``ib`` (``first_rate`` replaces the rate at ``h = 0`` unless NaN). Returns the number
    marked and the last position marked (-1 if none)."""
    scale = 0.0
    for c in range(4):
        scale += abs(k[c]) * ext[4, c]
    margin = MARGIN * scale
    have_first = not np.isnan(first_rate)
    if _lower_bound(k, ext[0], ext[1]) - margin >= ib and not (have_first and first_rate < ib):
        return 0, -1
    count, last = 0, -1
    far = _lower_bound(k, ext[2], ext[3]) - margin < ib
    end = lookahead if far else min(NEAR, lookahead)
    for h in range(end):
        if h == 0 and have_first:
            r = first_rate
        else:
            r = C[h, 0] * k[0] + C[h, 1] * k[1] + C[h, 2] * k[2] + C[h, 3] * k[3]
        if r < ib:
            V[off + h] = True
            count += 1
            last = off + h
    return count, last


@compiled
def _solve(par, il, s0, S, l, work, path, k_end):
    """Path of the guess ``S`` (last binding period ``l >= 0``) from ``i[-1] = il`` and exogenous
    states ``s0``: fills ``path[h] = (x, pi, i, shadow)`` for ``h <= l`` and ``k_end`` with the state
    ``(ib, s[l + 1])`` the unconstrained continuation starts from (``work`` is scratch, ``(l + 2, 7)``)."""
    sig, beta, kappa = par[SIGMA], par[BETA], par[KAPPA]
    rho_i, c_x, c_pi, ib = par[RHO_I], par[C_X], par[C_PI], par[IB]
    # exogenous path s[h] = rho s[h-1], h = 0 .. l + 1
    for c in range(3):
        work[0, 4 + c] = s0[c]
    for h in range(1, l + 2):
        for c in range(3):
            work[h, 4 + c] = par[RHO + c] * work[h - 1, 4 + c]
    n = l + 1
    # next period's rules (x, pi) = (ax, ap) i + (bx, bp); after l the nk solution
    ax, ap = par[FX], par[FPI]
    bx = par[FX + 1] * work[n, 4] + par[FX + 2] * work[n, 5] + par[FX + 3] * work[n, 6]
    bp = par[FPI + 1] * work[n, 4] + par[FPI + 2] * work[n, 5] + par[FPI + 3] * work[n, 6]
    # work[h] = (ax, bx, ap, bp) of period h, then (ai, bi) in path's columns
    for h in range(l, -1, -1):
        v, rn, u = work[h, 4], work[h, 5], work[h, 6]
        if S[h]:
            ex = ax * ib + bx
            ep = ap * ib + bp
            x = ex - (ib - ep - rn) / sig
            pi = beta * ep + kappa * x + u
            ax, bx, ap, bp = 0.0, x, 0.0, pi
            path[h, 0], path[h, 1] = 0.0, ib
        else:
            alpha = ax - (1.0 - ap) / sig
            bxx = bx + (bp + rn) / sig
            gam = beta * ap + kappa * alpha
            bpp = beta * bp + kappa * bxx + u
            D = 1.0 - c_x * alpha - c_pi * gam
            ai = rho_i / D
            bi = (c_x * bxx + c_pi * bpp + v) / D
            ax, bx, ap, bp = alpha * ai, alpha * bi + bxx, gam * ai, gam * bi + bpp
            path[h, 0], path[h, 1] = ai, bi
        work[h, 0], work[h, 1], work[h, 2], work[h, 3] = ax, bx, ap, bp
    prev = il
    for h in range(n):
        x = work[h, 0] * prev + work[h, 1]
        pi = work[h, 2] * prev + work[h, 3]
        if S[h]:
            i = ib
            path[h, 3] = rho_i * prev + c_x * x + c_pi * pi + work[h, 4]
        else:  # the rule holds: its value is the rate
            i = path[h, 0] * prev + path[h, 1]
            path[h, 3] = i
        path[h, 0], path[h, 1], path[h, 2] = x, pi, i
        prev = i
    k_end[0] = ib
    for c in range(3):
        k_end[1 + c] = work[n, 4 + c]


@compiled
def simulate_draws(par, eps, lookahead, max_binding, max_guesses, bind_tol, traj, shadow, binding, status):
    """OccBin simulation of every draw: ``par (m, N_PAR)``, ``eps (m, T, 3)`` -> ``traj (m, T, 3)``
    (output, inflation, rate; canonical units), ``shadow (m, T)``, ``binding (m, T)``.

    Stops at the first failure with ``status = (code, draw, period)``: ``NON_FINITE`` (a guessed
    path not finite), ``BEYOND`` (the bound would bind ``max_binding`` or more quarters ahead) or
    ``NOT_VERIFIED`` (no guess verified after ``max_guesses`` rounds).
    """
    m, T = eps.shape[0], eps.shape[1]
    G = max_binding
    W = 2 * G + lookahead + 2
    C = np.empty((lookahead, 4))
    ext = np.empty((5, 4))
    S = np.zeros(W, dtype=np.bool_)  # the guess
    N = np.zeros(W, dtype=np.bool_)  # the next guess
    work = np.empty((G + 2, 7))
    path = np.empty((G + 1, 4))
    k = np.empty(4)  # the state of period t
    k_end = np.empty(4)  # the state after a guess's last binding period
    for d in range(m):
        pr = par[d]
        _loadings(pr, lookahead, C, ext)
        ib = pr[IB]
        il = v = rn = u = 0.0
        S[:] = False
        l = -1  # last binding period of the guess (-1: none)
        for t in range(T):
            v = pr[RHO] * v + pr[SD] * eps[d, t, 0]
            rn = pr[RHO + 1] * rn + pr[SD + 1] * eps[d, t, 1]
            u = pr[RHO + 2] * u + pr[SD + 2] * eps[d, t, 2]
            zx = pr[FX] * il + pr[FX + 1] * v + pr[FX + 2] * rn + pr[FX + 3] * u
            zpi = pr[FPI] * il + pr[FPI + 1] * v + pr[FPI + 2] * rn + pr[FPI + 3] * u
            zsh = pr[RHO_I] * il + pr[C_X] * zx + pr[C_PI] * zpi + v
            k[0], k[1], k[2], k[3] = il, v, rn, u
            x0, pi0, i0, sh0, bind = zx, zpi, zsh, zsh, False
            rounds = 0
            while True:
                if l < 0:
                    # guess "no binding period": the nk path
                    cnt, last = _violations(k, zsh, C, ext, ib, lookahead, S, 0)
                    if cnt == 0:
                        break
                    if last >= G:
                        status[0], status[1], status[2] = BEYOND, d, t
                        return
                    l = last
                    continue
                _solve(pr, il, k[1:], S, l, work, path, k_end)
                if not np.isfinite(path[: l + 1]).all():
                    status[0], status[1], status[2] = NON_FINITE, d, t
                    return
                nl = -1
                for h in range(l + 1):
                    nb = path[h, 3] <= ib + bind_tol if S[h] else path[h, 2] < ib
                    N[h] = nb
                    if nb:
                        nl = h
                # the unconstrained continuation after l
                N[l + 1 : l + 1 + lookahead] = False
                cnt, last = _violations(k_end, np.nan, C, ext, ib, lookahead, N, l + 1)
                if cnt:
                    nl = last
                if nl >= G:
                    status[0], status[1], status[2] = BEYOND, d, t
                    return
                rounds += 1
                same = True
                for h in range(max(l, nl) + 1):
                    if N[h] != S[h]:
                        same = False
                        break
                if same:
                    x0, pi0, i0, sh0, bind = path[0, 0], path[0, 1], path[0, 2], path[0, 3], S[0]
                    break
                if rounds >= max_guesses:
                    status[0], status[1], status[2] = NOT_VERIFIED, d, t
                    return
                for h in range(max(l, nl) + 1):
                    S[h] = N[h]
                l = nl
            traj[d, t, 0] = x0 * 100.0
            traj[d, t, 1] = pi0 * 400.0
            traj[d, t, 2] = -pr[R_SS] if bind else i0 * 400.0
            shadow[d, t] = sh0 * 400.0
            binding[d, t] = bind
            il = i0
            # next period's first guess: this one shifted by a quarter
            if l >= 0:
                for h in range(l):
                    S[h] = S[h + 1]
                S[l] = False
                l -= 1
                while l >= 0 and not S[l]:
                    l -= 1
