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


@pytest.mark.parametrize("pattern", [[0, 1, 2, 3, 4], [2, 3, 4, 5], [0, 1, 4, 5, 6], [1, 3]])
def test_guess_solver_matches_stacked_solve(pattern):
    # The path of one guessed regime sequence (any pattern, including ones OccBin rarely meets)
    # against the stacked sparse solve of the same regime sequence.
    d = draw_range(WORLD, 15, 0, 6, 1, narrow(kappa=(0.01, 0.1), r_ss=(0.5, 1.0)))
    th = d.theta
    sol = nk_solve(th)
    ch = zlb._Chunk(sol, th[:, R_SS].copy())
    rows = np.arange(th.shape[0])
    il = np.full(rows.size, -0.001)
    s0 = (np.full(rows.size, -0.002), np.full(rows.size, -0.01), np.full(rows.size, 0.001))
    x, pi = nk_jumps(sol, il, *s0)
    sh = nk_taylor(sol, il, x, pi, s0[0])
    S = np.zeros((rows.size, 8), dtype=bool)
    S[:, pattern] = True
    if pattern[0] == 0 and pattern == list(range(len(pattern))):
        _, x0, pi0, sh0 = zlb._solve_from_now(ch, rows, (il,) + s0, (x, pi, sh), np.full(rows.size, pattern[-1]), 8)
        i0 = ch.ib.copy()
    else:
        _, x0, pi0, i0, sh0 = zlb._solve_guess(ch, rows, (il,) + s0, (x, pi, sh), S, 8)
    for j in rows:
        N = 300
        SS = np.zeros(N, dtype=bool)
        SS[pattern] = True
        ex = tuple(s0[c][j] * th[j, 6 + c] ** np.arange(N) for c in range(3))
        rx, rpi, ri, rsh = pf_path(th[j], il[j], *ex, S=SS, ib=ch.ib[j])
        np.testing.assert_allclose(
            [x0[j], pi0[j], i0[j], sh0[j]], [rx[0], rpi[0], ri[0], rsh[0]], rtol=1e-7, atol=1e-11
        )


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
# The fast paths of simulate_occbin against the general ones (bit for bit)
# ------------------------------------------------------------------------------------------------
def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


def test_numpy_sums_of_8_or_more_terms_ignore_trailing_zero_terms():
    # simulate_occbin solves guesses of buckets >= 8 on a longer bucket: their sums then run over
    # extra zero terms (of either sign), which must leave numpy's sums unchanged, sign of zero included.
    rng = np.random.default_rng(5)
    for k in (1, 3, 200):
        for s in (8, 16, 32, 64, 128):
            for W in (16, 32, 64, 128, 256):
                if W <= s:
                    continue
                a = rng.normal(size=(k, s, s)) * 10.0 ** rng.integers(-9, 9, size=(k, s, s))
                a[rng.random(a.shape) < 0.3] = 0.0
                a[rng.random(a.shape) < 0.1] = -0.0
                last = np.where(rng.random((k, s, W - s)) < 0.5, 0.0, -0.0)
                rows = np.where(rng.random((k, W - s, s)) < 0.5, 0.0, -0.0)
                assert np.array_equal(_bits(a.sum(axis=2)), _bits(np.concatenate([a, last], axis=2).sum(axis=2)))
                assert np.array_equal(_bits(a.sum(axis=1)), _bits(np.concatenate([a, rows], axis=1).sum(axis=1)))


def test_rowsum_equals_numpy_sums_bit_for_bit():
    # zlb._rowsum writes out numpy's sums of fewer than 8 terms (added one by one onto +0.0); if a
    # numpy version changed that order or the sign of zero sums, this test (not the hashes) says so.
    rng = np.random.default_rng(6)
    for shape in ((300, 1), (300, 3), (50, 2, 4), (40, 4, 4), (20, 7, 7), (30, 2, 8), (10, 16, 16)):
        a = rng.normal(size=shape) * 10.0 ** rng.integers(-9, 9, size=shape)
        a[rng.random(shape) < 0.3] = 0.0
        a[rng.random(shape) < 0.3] = -0.0
        assert np.array_equal(_bits(zlb._rowsum(a)), _bits(a.sum(axis=-1)))


def test_upper_toeplitz_products_without_matrices_equal_the_matrix_products():
    rng = np.random.default_rng(8)
    for s in (1, 2, 3, 4, 5, 7, 8, 16):
        seq = rng.normal(size=(400, s)) * 10.0 ** rng.integers(-9, 9, size=(400, s))
        x = rng.normal(size=(400, s)) * 10.0 ** rng.integers(-9, 9, size=(400, s))
        for a in (seq, x):
            a[rng.random(a.shape) < 0.3] = 0.0
            a[rng.random(a.shape) < 0.3] = -0.0
        want = zlb._tmul(zlb._toeplitz(seq, s, upper=True), x)
        assert np.array_equal(_bits(zlb._upper_tmul(seq, x)), _bits(want))


def test_part_bounds_and_rho_powers_equal_the_direct_computations():
    # both are table lookups standing in for reductions and np.power (speed only)
    rng = np.random.default_rng(7)
    for s in range(1, 17):
        P = rng.random((500, s)) < 0.3
        n = np.count_nonzero(P, axis=1)
        want = (np.where(n > 0, P.argmax(axis=1), -1), np.where(n > 0, s - 1 - P[:, ::-1].argmax(axis=1), -1), n)
        for got, w in zip(zlb._part_bounds(P), want):
            np.testing.assert_array_equal(got, w)
    ch, *_ = _chunk_and_states()
    rows = np.arange(ch.r_ss.size)
    for n in (rng.integers(0, zlb.KEEP + 1, rows.size), rng.integers(0, 300, rows.size)):
        assert np.array_equal(_bits(ch.rho_pow(rows, n)), _bits(ch.rho[:, rows] ** n))


def _chunk_and_states(n=60, seed=21):
    d = draw_range(WORLD, seed, 0, n, 1, narrow(r_ss=(0.5, 1.0)))
    th = d.theta
    sol = nk_solve(th)
    ch = zlb._Chunk(sol, th[:, R_SS].copy())
    rng = np.random.default_rng(seed)
    k0 = np.stack([-0.004 * rng.random(n), -0.004 * rng.random(n), -0.02 * rng.random(n), 0.002 * rng.normal(size=n)])
    x, pi = nk_jumps(sol, *k0)
    sh = nk_taylor(sol, k0[0], x, pi, k0[1])
    return ch, np.arange(n), k0, (x, pi, sh), rng


@pytest.mark.parametrize("s, W", [(8, 16), (8, 32), (16, 32), (32, 64), (64, 256)])
def test_spells_solved_on_a_longer_bucket_are_unchanged(s, W):
    ch, rows, k0, z0, rng = _chunk_and_states()
    ib, p = ch.ib[rows], ch.sol.p[rows]
    # spells from now, [0, e]
    e = rng.integers(0, s, rows.size)
    on, delta = zlb._from_now_delta(ch, rows, k0, z0[2], e, s, ib, p)
    onW, deltaW = zlb._from_now_delta(ch, rows, k0, z0[2], e, W, ib, p)
    assert np.array_equal(_bits(delta), _bits(deltaW[:, :s])) and not onW[:, s:].any()
    for a, b in zip(zlb._jump_corrections(ch, rows, z0, delta, s), zlb._jump_corrections(ch, rows, z0, deltaW, W)):
        assert np.array_equal(_bits(a), _bits(b))
    # spells starting later, [f, l]
    f = rng.integers(1, s, rows.size)
    l = np.minimum(f + rng.integers(0, s, rows.size), s - 1)
    d, i, part = zlb._later_core(ch, rows, k0, z0[2], f, l, s, ib, p)
    dW, iW, partW = zlb._later_core(ch, rows, k0, z0[2], f, l, W, ib, p)
    assert np.array_equal(_bits(d), _bits(dW[:, :s]))
    assert np.array_equal(_bits(i), _bits(iW[:, :s]))
    assert np.array_equal(part, partW[:, :s])


@pytest.mark.parametrize("s", [4, 8, 16])
def test_later_spell_solve_equals_the_general_guess_solve(s):
    ch, rows, k0, z0, rng = _chunk_and_states(seed=22)
    f = rng.integers(1, s, rows.size)
    l = np.minimum(f + rng.integers(0, s, rows.size), s - 1)
    S = (np.arange(s) >= f[:, None]) & (np.arange(s) <= l[:, None])
    new, x0, pi0, i0, sh0 = zlb._solve_guess(ch, rows, k0, z0, S, s)
    delta, i, part = zlb._later_core(ch, rows, k0, z0[2], f, l, s, ch.ib[rows], ch.sol.p[rows])
    assert np.array_equal(part, new[:, :s])
    x, pi = zlb._jump_corrections(ch, rows, z0, delta, s)
    for a, b in ((x, x0), (pi, pi0), (i[:, 0], i0), (i[:, 0] - delta[:, 0], sh0)):
        assert np.array_equal(_bits(a), _bits(b))


def _violations_by_brute_force(ch, rows, K, first_rate):
    """The violation patterns with every rate computed wherever the bound over the whole horizon
    (and over h >= NEAR for those horizons) allows one, all loadings by the recursion."""
    eye = np.eye(4)[:, :, None] * np.ones(rows.size)
    C = np.stack([zlb._rates(ch, rows, eye[c], 0, zlb.LOOKAHEAD) for c in range(4)], axis=1)  # (h, 4, k)
    ib = ch.ib[rows]
    need = (zlb._lower_bound(K, C.min(axis=0), C.max(axis=0)) < ib) | (first_rate < ib)
    far = zlb._lower_bound(K, C[zlb.NEAR :].min(axis=0), C[zlb.NEAR :].max(axis=0)) < ib
    rates = zlb._rates(ch, rows, K, 0, zlb.LOOKAHEAD)
    rates[0] = np.where(np.isnan(first_rate), rates[0], first_rate)
    V = (rates < ib).T & need[:, None]
    V[:, zlb.NEAR :] &= far[:, None]
    return V


def test_violation_checks_equal_the_exact_rates():
    ch, rows, k0, z0, rng = _chunk_and_states(n=400, seed=23)
    # states around the bound: scaled nk states and states starting at the bound
    for scale in (0.3, 1.0, 3.0):
        K = k0 * scale
        K[0] = np.where(rng.random(rows.size) < 0.5, ch.ib[rows], K[0])
        first_rate = np.where(rng.random(rows.size) < 0.5, np.nan, z0[2] * scale)
        viol = zlb._violations(ch, rows, K, first_rate)
        want = _violations_by_brute_force(ch, rows, K, first_rate)
        hit = np.flatnonzero(want.any(axis=1))
        assert hit.size > 20
        np.testing.assert_array_equal(viol.hit, hit)
        np.testing.assert_array_equal(viol.dense(), want[hit])
        np.testing.assert_array_equal(viol.first, np.argmax(want[hit], axis=1))
        np.testing.assert_array_equal(viol.last, zlb.LOOKAHEAD - 1 - np.argmax(want[hit][:, ::-1], axis=1))
        np.testing.assert_array_equal(viol.count, want[hit].sum(axis=1))


def test_results_do_not_depend_on_the_chunking(monkeypatch):
    # Chunks of different sizes take different paths (whole-array or gathered nk steps, other
    # groups of guesses, deferred groups) for the same draws.
    d = draw_range(WORLD, 24, 0, 300, 60, narrow(r_ss=(0.5, 1.5)))
    ref = WORLD.simulate(d.theta, d.shocks)
    irf = WORLD.irfs(d.theta, 12)
    assert ref.metadata["binding"].mean() > 0.2
    monkeypatch.setattr(zlb, "ZLB_CHUNK", 37)
    zlb.CHUNKS.items = []
    got = WORLD.simulate(d.theta, d.shocks)
    np.testing.assert_array_equal(got.trajectories, ref.trajectories)
    np.testing.assert_array_equal(got.extras, ref.extras)
    np.testing.assert_array_equal(got.metadata["binding"], ref.metadata["binding"])
    np.testing.assert_array_equal(WORLD.irfs(d.theta, 12), irf)
