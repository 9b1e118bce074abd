"""zlb: equality with nk off the bound, and OccBin periods against an independent bounded solve."""

from __future__ import annotations

import numpy as np
import pytest

from macro_data.errors import WorldError
from macro_data.worlds import get_world, zlb
from macro_data.worlds.nk import WORLD as NK
from macro_data.worlds.nk import jumps as nk_jumps
from macro_data.worlds.nk import solve as nk_solve
from macro_data.worlds.nk import taylor as nk_taylor
from macro_data.worlds.sampling import draw_range
from macro_data.worlds.zlb import WORLD
from macro_data_tests.worlds.test_nk import pf_path

NAMES = WORLD.parameter_names
DEFAULT = np.array([p.default for p in WORLD.parameters])
R_SS = NAMES.index("r_ss")


def with_(base: np.ndarray, **kw) -> np.ndarray:
    th = np.array(base, dtype=np.float64).copy()
    for k, v in kw.items():
        th[..., NAMES.index(k)] = v
    return th


def narrow(**ranges) -> dict:
    return WORLD.resolve_priors({k: {"low": lo, "high": hi} for k, (lo, hi) in ranges.items()})


def states_from_shocks(th: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Exogenous states ``(T, 3)`` from the stored innovations, by the AR(1) laws."""
    s = np.zeros(3)
    out = np.empty((eps.shape[0], 3))
    for t in range(eps.shape[0]):
        s = th[6:9] * s + th[9:12] * eps[t]
        out[t] = s
    return out


def bounded_solutions(th, i_lag, s0, N=300, s_max=2, e_max=40, tol=1e-10):
    """Every perfect-foresight path with the bound, among 'no binding' and single spells [s, e].

    Each candidate is solved as one stacked sparse system and kept if it satisfies the
    complementarity conditions: shadow <= ib on the spell, i >= ib elsewhere.
    """
    ib = -th[R_SS] / 400.0
    exo = tuple(s0[c] * th[6 + c] ** np.arange(N) for c in range(3))
    found = []
    candidates = [None] + [(s, e) for s in range(s_max + 1) for e in range(s, s + e_max)]
    for cand in candidates:
        S = np.zeros(N, dtype=bool)
        if cand is not None:
            S[cand[0] : cand[1] + 1] = True
        x, pi, i, sh = pf_path(th, i_lag, *exo, S=S, ib=ib)
        scale = tol * max(1.0, np.abs(i).max())
        if np.all(sh[S] <= ib + scale) and np.all(i[~S] >= ib - scale):
            found.append((cand, x, pi, i, sh))
    return found


# ------------------------------------------------------------------------------------------------
def test_paths_that_never_bind_equal_nk_exactly():
    pri = narrow(r_ss=(3.5, 4.0), sigma_r=(0.005, 0.0055), sigma_m=(0.001, 0.002), sigma_u=(0.001, 0.002))
    d = draw_range(WORLD, 11, 0, 300, 60, pri)
    sim = WORLD.simulate(d.theta, d.shocks)
    b = sim.metadata["binding"]
    assert b.dtype == bool and b.shape == (300, 60)
    free = ~b.any(axis=1)
    assert 30 < free.sum() < 300  # both kinds present
    ref = NK.simulate(d.theta[:, :R_SS], d.shocks).trajectories
    np.testing.assert_array_equal(sim.trajectories[free], ref[free])
    np.testing.assert_array_equal(sim.extras[free, :, 0], sim.trajectories[free, :, 2])
    # IRFs of draws whose +1 sd responses never reach the bound equal nk's too
    irf = WORLD.irfs(d.theta, 20)
    irf_nk = NK.irfs(d.theta[:, :R_SS], 20)
    slack = (irf_nk[:, :, :, 2] > -d.theta[:, R_SS, None, None]).all(axis=(1, 2))
    assert slack.sum() > 100
    np.testing.assert_array_equal(irf[slack], irf_nk[slack])


def test_rate_respects_the_bound_and_shadow_rate():
    d = draw_range(WORLD, 12, 0, 200, 80)
    sim = WORLD.simulate(d.theta, d.shocks)
    rate, shadow, b = sim.trajectories[:, :, 2], sim.extras[:, :, 0], sim.metadata["binding"]
    r_ss = d.theta[:, R_SS, None]
    assert b.mean() > 0.05
    assert np.all(rate >= -r_ss - 1e-9 * r_ss)
    assert np.all(rate[b] == -np.broadcast_to(r_ss, b.shape)[b])
    assert np.all(shadow[b] <= -np.broadcast_to(r_ss, b.shape)[b] + 1e-9)
    np.testing.assert_array_equal(shadow[~b], rate[~b])
    assert np.isfinite(sim.trajectories).all()


def test_simulated_periods_equal_independent_bounded_solve():
    # Moderate draws (flat Phillips curve) so the paths stay in a numerically sane range.
    pri = narrow(r_ss=(0.5, 1.5), kappa=(0.01, 0.05), sigma=(1.5, 2.5), rho_r=(0.3, 0.8))
    d = draw_range(WORLD, 13, 0, 40, 30, pri)
    sim = WORLD.simulate(d.theta, d.shocks)
    traj, shadow, b = sim.trajectories, sim.extras[:, :, 0], sim.metadata["binding"]
    rng = np.random.default_rng(0)
    picks = []
    bind_idx = np.argwhere(b)
    # periods where the bound binds, and slack periods right before a binding one (some of them
    # slack only because agents expect the bound to bind later: the anticipation case)
    for k in rng.choice(len(bind_idx), 5, replace=False):
        picks.append(tuple(bind_idx[k]))
    before = np.argwhere(~b[:, :-1] & b[:, 1:])
    for k in rng.choice(len(before), 6, replace=False):
        picks.append(tuple(before[k]))
    kinds = []
    for i, t in picks:
        th = d.theta[i]
        s = states_from_shocks(th, d.shocks[i])
        i_lag = traj[i, t - 1, 2] / 400.0 if t > 0 else 0.0
        sols = bounded_solutions(th, i_lag, s[t])
        assert len(sols) == 1, f"expected a unique bounded path for draw {i}, t={t}: {[c[0] for c in sols]}"
        cand, x, pi, ii, sh = sols[0]
        kinds.append("none" if cand is None else ("now" if cand[0] == 0 else "later"))
        got = traj[i, t]
        want = np.array([100 * x[0], 400 * pi[0], 400 * ii[0]])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(want).max()))
        np.testing.assert_allclose(shadow[i, t], 400 * sh[0], rtol=1e-6, atol=1e-6)
        assert b[i, t] == (kinds[-1] == "now")
    assert kinds.count("now") >= 5, kinds


@pytest.mark.parametrize("r_ss, shock", [(1.0, -1.0), (2.0, -2.0)])
def test_anticipated_binding_spell(r_ss, shock):
    # Strong smoothing: after a negative demand shock the rate falls slowly, so the bound is
    # expected to bind from next quarter on. The current period is slack but already differs
    # from nk because agents anticipate the binding spell.
    th = with_(DEFAULT, r_ss=r_ss, kappa=0.02, sigma=2.0, rho_i=0.8, rho_r=0.9)
    eps = np.zeros((1, 1, 3))
    eps[0, 0, 1] = shock
    sim = WORLD.simulate(th[None], eps)
    sols = bounded_solutions(th, 0.0, states_from_shocks(th, eps[0])[0])
    assert len(sols) == 1
    cand, x, pi, ii, sh = sols[0]
    assert cand is not None and cand[0] == 1
    assert not sim.metadata["binding"][0, 0]
    want = np.array([100 * x[0], 400 * pi[0], 400 * ii[0]])
    np.testing.assert_allclose(sim.trajectories[0, 0], want, rtol=1e-8, atol=1e-9)
    nk = NK.simulate(th[None, :R_SS], eps).trajectories[0, 0]
    assert abs(nk[0] - want[0]) > 0.1  # anticipation matters


def test_binding_irf_equals_independent_bounded_path():
    # A persistent monetary shock lowers the nominal rate (inflation falls a lot), into the bound.
    th = with_(
        DEFAULT,
        beta=0.9868,
        sigma=1.0763,
        kappa=0.3268,
        phi_pi=1.2442,
        phi_y=0.1771,
        rho_i=0.037,
        rho_m=0.8126,
        sigma_m=0.0086,
        r_ss=2.0861,
    )
    H = 30
    nk_rate = NK.irfs(th[None, :R_SS], H)[0, 0, :, 2]
    assert nk_rate.min() < -th[R_SS]  # the unconstrained response would breach the bound
    irf = WORLD.irfs(th[None], H)[0, 0]
    sols = bounded_solutions(th, 0.0, np.array([th[9], 0.0, 0.0]))
    assert len(sols) == 1
    cand, x, pi, ii, _ = sols[0]
    assert cand is not None and cand[0] == 0
    want = np.stack([100 * x, 400 * pi, 400 * ii], axis=1)[: H + 1]
    np.testing.assert_allclose(irf, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    assert irf[:, 2].min() >= -th[R_SS] - 1e-12
    assert (irf[: cand[1] + 1, 2] == -th[R_SS]).all()


def test_low_rate_recession_binds_and_deepens_the_fall():
    th = with_(DEFAULT, r_ss=0.5)[None]
    eps = np.zeros((1, 20, 3))
    eps[0, :4, 1] = -2.0
    z = WORLD.simulate(th, eps)
    n = NK.simulate(th[:, :R_SS], eps).trajectories
    assert z.metadata["binding"].any()
    assert z.trajectories[0, :, 0].min() < n[0, :, 0].min() - 0.1
    assert n[0, :, 2].min() < -0.5 and z.trajectories[0, :, 2].min() >= -0.5


@pytest.fixture(scope="module")
def full_batch():
    T, H = 40, 10
    full = draw_range(WORLD, 14, 0, 1000, T)
    return T, H, WORLD.simulate(full.theta, full.shocks), WORLD.irfs(full.theta, H)


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_batch_independence(size, full_batch):
    T, H, sim, irf = full_batch
    assert sim.metadata["binding"].any()
    for start in (0, 500, 1000 - size):
        start = max(0, min(start, 1000 - size))
        sl = slice(start, start + size)
        part = draw_range(WORLD, 14, start, start + size, T)
        got = WORLD.simulate(part.theta, part.shocks)
        np.testing.assert_array_equal(got.trajectories, sim.trajectories[sl])
        np.testing.assert_array_equal(got.extras, sim.extras[sl])
        np.testing.assert_array_equal(got.metadata["binding"], sim.metadata["binding"][sl])
        np.testing.assert_array_equal(WORLD.irfs(part.theta, H), irf[sl])
        if size == 1000:
            break


def test_failures_are_loud(monkeypatch):
    th = with_(DEFAULT, r_ss=0.5)[None]
    eps = np.zeros((1, 12, 3))
    eps[0, :4, 1] = -2.5
    monkeypatch.setattr(zlb, "MAX_GUESSES", 1)
    with pytest.raises(WorldError, match=r"'zlb'.*not verified after MAX_GUESSES=1"):
        WORLD.simulate(th, eps)
    monkeypatch.setattr(zlb, "MAX_GUESSES", 50)
    monkeypatch.setattr(zlb, "MAX_BINDING_HORIZON", 2)
    with pytest.raises(WorldError, match=r"'zlb'.*MAX_BINDING_HORIZON"):
        WORLD.simulate(th, eps)


def test_bad_input():
    th = DEFAULT[None].copy()
    with pytest.raises(WorldError, match=r"'zlb'.*'r_ss'.*0\.3.*outside"):
        WORLD.simulate(with_(th, r_ss=0.3), np.zeros((1, 4, 3)))
    with pytest.raises(WorldError, match=r"'zlb'.*shape \(n, 13\)"):
        WORLD.irfs(th[:, :12], 3)
    with pytest.raises(WorldError, match=r"'zlb'.*'cost_push'"):
        bad = np.zeros((1, 4, 3))
        bad[0, 1, 2] = np.nan
        WORLD.simulate(th, bad)


def test_splits_hold_about_two_and_a_half_percent():
    world = get_world("zlb")
    assert world.describe()["metadata"][0]["stage"] == "simulation"
    theta = draw_range(world, 2025, 0, 20000, 1).theta
    in_slice = world.slice_statistic(theta) < world.slice_rule.threshold
    pers, vol = world.corner_statistics(theta)
    corner = (
        (pers > world.corner_rule.persistence_threshold) & (vol > world.corner_rule.volatility_threshold) & ~in_slice
    )
    assert world.slice_rule.direction == "below"
    assert abs(in_slice.mean() - 0.025) < 0.007
    assert abs(corner.mean() - 0.025) < 0.007
    np.testing.assert_array_equal(world.slice_statistic(theta), theta[:, R_SS])


def _theta(**overrides):
    values = {p.name: p.default for p in WORLD.parameters}
    values.update(overrides)
    return np.array([[values[p.name] for p in WORLD.parameters]])


def test_validity_rule_is_the_eggertsson_woodford_condition():
    # (1 - mu)(1 - beta mu) > mu kappa / sigma with mu = max(rho_m, rho_r, rho_u), checked by hand
    ok = _theta(rho_m=0.5, rho_r=0.5, rho_u=0.5, kappa=0.1, sigma=1.0, beta=0.99)  # 0.2525 > 0.05
    bad = _theta(rho_m=0.5, rho_r=0.9, rho_u=0.5, kappa=0.1, sigma=1.0, beta=0.99)  # 0.0109 < 0.09
    edge_u = _theta(rho_m=0.0, rho_r=0.0, rho_u=0.9, kappa=0.1, sigma=1.0, beta=0.99)  # cost-push counts too
    assert WORLD.is_valid(ok)[0] and not WORLD.is_valid(bad)[0] and not WORLD.is_valid(edge_u)[0]
    assert NK.is_valid(bad[:, :12])[0]  # determinate as nk: the rule is about the bound only


def test_rejected_draws_explode_at_the_bound_and_valid_draws_do_not():
    # A rejected draw hit by a persistent negative demand shock: the deflationary spiral the rule excludes.
    bad = _theta(rho_r=0.95, kappa=0.3, sigma=0.6, r_ss=1.0)
    eps = np.zeros((1, 60, 3))
    eps[0, 0, 1] = -3.0
    assert np.abs(WORLD.simulate(bad, eps).trajectories).max() > 1e3
    # Valid draws from the production sampler stay on a sane scale over long random paths.
    d = draw_range(WORLD, 11, 0, 768, 200)
    assert d.rejections.sum() > 0.3 * 768  # the rule bites under the uniform prior (about 57 % of proposals)
    y = np.abs(WORLD.simulate(d.theta, d.shocks, {}).trajectories)
    assert y.max() < 1e3, y.max()


# ------------------------------------------------------------------------------------------------
# The compiled kernel (macro_data.worlds.occbin)
# ------------------------------------------------------------------------------------------------
def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


def test_draw_order_does_not_change_any_draw():
    d = draw_range(WORLD, 24, 0, 300, 60, narrow(r_ss=(0.5, 1.5)))
    ref = WORLD.simulate(d.theta, d.shocks)
    assert ref.metadata["binding"].mean() > 0.2
    perm = np.random.default_rng(3).permutation(300)
    got = WORLD.simulate(d.theta[perm], d.shocks[perm])
    assert np.array_equal(_bits(got.trajectories), _bits(ref.trajectories[perm]))
    assert np.array_equal(_bits(got.extras), _bits(ref.extras[perm]))
    np.testing.assert_array_equal(got.metadata["binding"], ref.metadata["binding"][perm])


_INTERPRETED = """
import sys, numpy as np
from macro_data.worlds.sampling import draw_range
from macro_data.worlds.zlb import WORLD
pri = WORLD.resolve_priors({"r_ss": {"low": 0.5, "high": 1.0}})
d = draw_range(WORLD, 31, 0, 12, 40, pri)
s = WORLD.simulate(d.theta, d.shocks)
np.savez(sys.argv[1], traj=s.trajectories, shadow=s.extras, binding=s.metadata["binding"])
"""


def test_compiled_kernel_computes_exactly_the_arithmetic_written(tmp_path):
    # The same kernel run as plain Python (NUMBA_DISABLE_JIT=1: IEEE double operations in the order
    # written) and compiled: equal bit for bit, so compilation adds no fused multiply-add and no
    # reassociation, and the numbers do not depend on the machine's instruction set.
    import os
    import subprocess
    import sys

    out = tmp_path / "interpreted.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run([sys.executable, "-c", _INTERPRETED, str(out)], check=True, env=env, timeout=600)
    want = np.load(out)
    d = draw_range(WORLD, 31, 0, 12, 40, narrow(r_ss=(0.5, 1.0)))
    got = WORLD.simulate(d.theta, d.shocks)
    assert want["binding"].mean() > 0.1
    assert np.array_equal(_bits(got.trajectories), _bits(want["traj"]))
    assert np.array_equal(_bits(got.extras), _bits(want["shadow"]))
    np.testing.assert_array_equal(got.metadata["binding"], want["binding"])


@pytest.mark.parametrize("pattern", [[0, 1, 2, 3, 4], [2, 3, 4, 5], [0, 1, 4, 5, 6], [1, 3], [0]])
def test_guess_path_matches_stacked_solve(pattern):
    # The path of one guessed regime sequence (any pattern, including ones OccBin rarely meets)
    # against the stacked sparse solve of the same regime sequence.
    from macro_data.worlds import occbin

    d = draw_range(WORLD, 15, 0, 6, 1, narrow(kappa=(0.01, 0.1), r_ss=(0.5, 1.0)))
    th = d.theta
    par = occbin.parameter_table(nk_solve(th), th[:, R_SS].copy())
    S = np.zeros(16, dtype=bool)
    S[pattern] = True
    il, s0 = -0.001, np.array([-0.002, -0.01, 0.001])
    N = 300
    for j in range(th.shape[0]):
        work, path, k_end = np.empty((18, 7)), np.empty((17, 4)), np.empty(4)
        occbin._solve(par[j], il, s0, S, pattern[-1], work, path, k_end)
        exo = tuple(s0[c] * th[j, 6 + c] ** np.arange(N) for c in range(3))
        SS = np.zeros(N, dtype=bool)
        SS[pattern] = True
        rx, rpi, ri, rsh = pf_path(th[j], il, *exo, S=SS, ib=par[j, occbin.IB])
        n = pattern[-1] + 1
        np.testing.assert_allclose(path[:n, 0], rx[:n], rtol=1e-7, atol=1e-11)
        np.testing.assert_allclose(path[:n, 1], rpi[:n], rtol=1e-7, atol=1e-11)
        np.testing.assert_allclose(path[:n, 2], ri[:n], rtol=1e-7, atol=1e-11)
        np.testing.assert_allclose(path[:n, 3], rsh[:n], rtol=1e-7, atol=1e-11)
        # the continuation's state: the bound, and the exogenous states one period after the spell
        assert k_end[0] == par[j, occbin.IB]
        np.testing.assert_allclose(k_end[1:], [e[n] for e in exo], rtol=1e-12)


def test_violation_checks_find_every_rate_below_the_bound():
    # Unconstrained paths from states around the bound, rolled forward with the nk kernels (not the
    # kernel's rate loadings): the check marks exactly the quarters whose rate is below ib, away
    # from exact ties within rounding.
    from macro_data.worlds import occbin
    from macro_data.worlds.nk import exog_step as nk_exog

    n, L = 300, zlb.LOOKAHEAD
    # persistent draws, so that some paths stay below the bound beyond NEAR quarters
    d = draw_range(WORLD, 23, 0, n, 1, narrow(r_ss=(0.5, 1.0), rho_i=(0.7, 0.9), rho_r=(0.7, 0.9)))
    sol = nk_solve(d.theta)
    par = occbin.parameter_table(sol, d.theta[:, R_SS].copy())
    rng = np.random.default_rng(23)
    zero = np.zeros(n)
    checked = hits = far = 0
    for scale in (0.3, 1.0, 3.0, 30.0):
        K = scale * np.stack(
            [-0.004 * rng.random(n), -0.004 * rng.random(n), -0.02 * rng.random(n), 0.002 * rng.normal(size=n)]
        )
        K[0] = np.where(rng.random(n) < 0.5, par[:, occbin.IB], K[0])
        rates = np.empty((L, n))
        il, v, rn, u = K
        for h in range(L):
            if h:
                v, rn, u = nk_exog(sol, v, rn, u, zero, zero, zero)
            x, pi = nk_jumps(sol, il, v, rn, u)
            il = nk_taylor(sol, il, x, pi, v)
            rates[h] = il
        ib = par[:, occbin.IB]
        C, ext = np.empty((L, 4)), np.empty((5, 4))
        for j in range(n):
            occbin._loadings(par[j], L, C, ext)
            V = np.zeros(L + 8, dtype=bool)
            count, last = occbin._violations(K[:, j].copy(), np.nan, C, ext, ib[j], L, V, 3)
            want = rates[:, j] < ib[j]
            clear = np.abs(rates[:, j] - ib[j]) > 1e-12 * np.abs(K[:, j]).sum()
            assert np.array_equal(V[3 : 3 + L][clear], want[clear])
            assert count == V.sum() and not V[:3].any() and not V[3 + L :].any()
            assert last == (3 + np.flatnonzero(V[3:])[-1] if count else -1)
            checked += 1
            hits += bool(count)
            far += bool(V[3 + occbin.NEAR :].any())
    assert checked == 4 * n and hits > 100 and far > 20, (hits, far)
