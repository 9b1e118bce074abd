"""The validation building blocks against independent references (closed forms, a second method)."""

from __future__ import annotations

import numpy as np
import pytest

from macro_data.validation import statistics
from macro_data.validation.identities import convolution
from macro_data.validation.realism import percentile_rank
from macro_data.validation.reproducibility import SUBSET_SIZE, subset_indices
from macro_data.validation.results import CheckResult, worst
from macro_data.validation.score import score
from macro_data.validation.spec import WorldSpec


def simulate_var1(rng, n, T, S=2):
    """y[t] = A y[t-1] + B eps[t] from y[-1] = 0, by recursion; IRFs A^h B by repeated products."""
    A = rng.uniform(-0.4, 0.4, (n, 3, 3))
    B = rng.normal(size=(n, 3, S))
    eps = rng.normal(size=(n, T, S))
    y = np.zeros((n, T, 3))
    state = np.zeros((n, 3))
    for t in range(T):
        state = (A @ state[:, :, None])[:, :, 0] + (B @ eps[:, t, :, None])[:, :, 0]
        y[:, t] = state
    H = T - 1
    irfs = np.zeros((n, S, H + 1, 3))
    P = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    for h in range(H + 1):
        irfs[:, :, h, :] = np.transpose(P @ B, (0, 2, 1))
        P = A @ P
    return irfs, eps, y


def test_convolution_equals_an_independent_recursion():
    irfs, eps, y = simulate_var1(np.random.default_rng(0), n=5, T=12)
    conv, scale = convolution(irfs, eps)
    np.testing.assert_allclose(conv, y, rtol=1e-12, atol=1e-12)
    assert (scale >= np.abs(conv) - 1e-12).all()


def test_convolution_detects_a_one_period_timing_error():
    irfs, eps, y = simulate_var1(np.random.default_rng(1), n=5, T=12)
    lagged = np.concatenate([np.zeros_like(eps[:, :1]), eps[:, :-1]], axis=1)  # y driven by eps[t-1]
    conv, scale = convolution(irfs, lagged)
    assert (np.abs(conv - y) / (scale + np.abs(y))).max() > 1e-2


def test_path_moments_match_numpy_and_the_real_data_estimator():
    from macro_data.external.real_data import autocorr1

    x = np.random.default_rng(2).normal(size=(4, 50, 3)).cumsum(axis=1)
    sd, ac = statistics.path_moments(x)
    np.testing.assert_allclose(sd, x.std(axis=1, ddof=1), rtol=1e-12)
    ref = np.array([[autocorr1(x[i, :, k]) for k in range(3)] for i in range(4)])
    np.testing.assert_allclose(ac, ref, rtol=1e-12)


def test_path_scan_equals_numpy_maxima_and_standard_deviations():
    """The sanity check's one-pass scan against numpy: maxima exactly (NaN propagated), sd to rounding."""
    rng = np.random.default_rng(3)
    y = (rng.normal(size=(64, 40, 3)).cumsum(axis=1) * 3.0 + 50.0).astype(np.float32)
    y[5, 33, 1] = np.nan  # in the last quarter: peak and late NaN, early not
    y[6, 2, 0] = -np.inf
    y[7] = -0.0
    n, T, k = y.shape
    peak, late, early, sd = np.empty(n), np.empty(n), np.empty(n), np.empty((n, k))
    with np.errstate(invalid="ignore"):
        statistics.path_scan(y, T - T // 4, T // 2, peak, late, early, sd)
    a = np.abs(y).reshape(n, -1).astype(np.float64)
    np.testing.assert_array_equal(peak, a.max(axis=1))
    np.testing.assert_array_equal(late, a[:, k * (T - T // 4) :].max(axis=1))
    np.testing.assert_array_equal(early, a[:, : k * (T // 2)].max(axis=1))
    assert np.isnan(peak[5]) and np.isnan(late[5]) and not np.isnan(early[5]) and peak[6] == np.inf
    finite = np.isfinite(y).all(axis=(1, 2))
    ref, _ = statistics.path_moments(y[finite])
    np.testing.assert_allclose(sd[finite], ref, rtol=1e-12)
    assert (sd[7] == 0).all()


def test_percentile_rank_closed_form():
    v = np.arange(100.0)
    assert percentile_rank(v, 49.5) == 50.0
    assert percentile_rank(v, 10.0) == 10.5  # 10 below, 1 tie counted half
    assert percentile_rank(v, -1.0) == 0.0 and percentile_rank(v, 1e9) == 100.0
    assert percentile_rank(np.array([np.nan, 1.0]), 2.0) == 100.0


def _spec(world, n, tmp_path, seed=7, T=24):
    return WorldSpec(world, n, T, 8, seed, {}, tmp_path, "0" * 64)


def test_subset_is_fixed_by_the_seed_and_differs_across_worlds(tmp_path):
    a = subset_indices(_spec("nk", 1000, tmp_path))
    assert len(a) == SUBSET_SIZE == 64 and len(np.unique(a)) == 64 and (np.diff(a) > 0).all()
    assert a.min() >= 0 and a.max() < 1000
    np.testing.assert_array_equal(a, subset_indices(_spec("nk", 1000, tmp_path)))
    assert not np.array_equal(a, subset_indices(_spec("rbc", 1000, tmp_path)))
    assert not np.array_equal(a, subset_indices(_spec("nk", 1000, tmp_path, seed=8)))
    np.testing.assert_array_equal(subset_indices(_spec("nk", 40, tmp_path)), np.arange(40))


def test_a_redraw_is_shared_by_later_calls_for_the_same_subset(tmp_path):
    from macro_data.recipes import load_recipe
    from macro_data.validation import reproducibility
    from macro_data.validation.spec import spec_from_recipe

    recipe = load_recipe("default")
    spec = spec_from_recipe(recipe, "switching", tmp_path, dataset_dir=tmp_path)
    idx = subset_indices(spec)[:5]
    first = reproducibility.redraw(spec, idx)
    assert first.error is None and not first.arrays["theta"].flags.writeable  # shared: read-only
    assert reproducibility.redraw(spec, idx) is first
    direct = reproducibility._redraw(spec, idx)  # what a fresh redraw gives
    assert direct.arrays.keys() == first.arrays.keys() and "regime" in first.arrays
    for name, values in direct.arrays.items():
        np.testing.assert_array_equal(first.arrays[name], values)
    other = reproducibility.redraw(spec, idx[:4])  # another subset, another seed: redrawn
    assert other is not first
    np.testing.assert_array_equal(other.arrays["theta"], first.arrays["theta"][:4])
    reseeded = spec_from_recipe(recipe, "switching", tmp_path, dataset_dir=tmp_path)
    reseeded.seed = spec.seed + 1
    assert not np.array_equal(reproducibility.redraw(reseeded, idx).arrays["theta"], first.arrays["theta"])


def markov_paths(rng, p00, p11, T):
    """Regime paths simulated here, independently of the switching world's own sampler."""
    n = p00.shape[0]
    pi1 = (1 - p00) / (2 - p00 - p11)
    r = np.zeros((n, T), dtype=np.int8)
    r[:, 0] = rng.random(n) < pi1
    for t in range(1, T):
        stay = np.where(r[:, t - 1] == 1, p11, p00)
        u = rng.random(n)
        r[:, t] = np.where(u < stay, r[:, t - 1], 1 - r[:, t - 1])
    return r


@pytest.mark.parametrize("swap, expect", [(False, "pass"), (True, "warn")])
def test_regime_durations_against_the_transition_probabilities(tmp_path, swap, expect):
    from macro_data.worlds import get_world

    world = get_world("switching")
    rng = np.random.default_rng(3)
    n, T = 2000, 40
    theta = np.zeros((n, len(world.parameters)))
    p00, p11 = rng.uniform(0.8, 0.98, n), rng.uniform(0.8, 0.85, n)
    theta[:, world.index("p00")], theta[:, world.index("p11")] = p00, p11
    regimes = markov_paths(rng, p11, p00, T) if swap else markov_paths(rng, p00, p11, T)
    r = statistics._regimes(_spec("switching", n, tmp_path, T=T), {"regime": regimes, "theta": theta}, 512)
    assert r.status == expect, r.message
    if expect == "pass":
        d = r.figures["mean_durations"]["calm"]
        assert d["observed"] == pytest.approx(1 / (1 - np.average(p00, weights=None)), rel=0.35)


def test_statistics_flag_an_explosive_path(tmp_path):
    """A unit-root-times-growth path is flagged; a stationary AR(1) from zero is not."""
    rng = np.random.default_rng(4)
    n, T = 200, 60
    y = np.zeros((n, T, 3))
    e = rng.normal(size=(n, T, 3))
    for t in range(T):
        y[:, t] = 0.9 * (y[:, t - 1] if t else 0) + e[:, t]
    group = {"trajectories": y}
    stat, scale = statistics._stationarity_and_scale(_spec("nk", n, tmp_path, T=T), group, 64)
    assert stat.status == "pass" and scale.status == "pass", (stat.message, scale.message)
    y[5] = y[5] * 1.25 ** np.arange(T)[:, None]
    stat, _ = statistics._stationarity_and_scale(_spec("nk", n, tmp_path, T=T), group, 64)
    assert stat.status == "warn" and "sample 5" in stat.message


def test_score_and_worst_status():
    def r(group, passed, skipped=False):
        return CheckResult("x.y", group, "nk", passed, "m", skipped=skipped)

    assert score([r("integrity", True), r("statistics", True)])["value"] == 100
    assert score([r("integrity", True), r("statistics", False)])["value"] == 70
    assert score([r("integrity", True), r("statistics", True), r("realism", False, skipped=True)])["value"] == 100
    assert score([r("integrity", False), r("integrity", True), r("statistics", True)])["value"] == 49  # 65 capped
    assert score([r("integrity", False), r("statistics", False)])["value"] == 0
    assert worst(["pass", "skipped", "warn"]) == "warn" and worst(["warn", "fail"]) == "fail" and worst([]) == "pass"
