"""US macro table -> canonical observables and moments, checked against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.tsa.filters.hp_filter import hpfilter
from statsmodels.tsa.stattools import acf

from macro_data.external import real_data
from macro_data.external.real_data import (
    OBSERVABLES,
    autocorr1,
    canonical_observables,
    hp_filter,
    linear_detrend,
    moments,
    read_columns,
    summarize,
)

from .conftest import MACRODATA_SHA256, macrodata_path


@pytest.fixture(scope="module")
def cols():
    return read_columns(macrodata_path())


def test_columns_are_read_as_floats(cols):
    assert list(cols)[:3] == ["year", "quarter", "realgdp"] and cols["realgdp"].shape == (203,)
    assert cols["realgdp"][0] == 2710.349 and cols["tbilrate"][-1] == 0.12


def test_hp_filter_matches_statsmodels(cols):
    y = 100 * np.log(cols["realgdp"])
    trend, cycle = hp_filter(y, 1600.0)
    sm_cycle, sm_trend = hpfilter(y, lamb=1600)
    np.testing.assert_allclose(trend, sm_trend, rtol=0, atol=1e-8)
    np.testing.assert_allclose(cycle, sm_cycle, rtol=0, atol=1e-8)


def test_hp_filter_closed_forms():
    t = np.arange(50, dtype=float)
    line = 3.0 + 0.7 * t  # second differences vanish: the trend is the series itself
    np.testing.assert_allclose(hp_filter(line, 1600.0)[0], line, atol=1e-9)
    x = np.random.default_rng(0).standard_normal(40)
    np.testing.assert_allclose(hp_filter(x, 0.0)[0], x, atol=1e-12)  # lambda 0: no smoothing
    # first-order condition: cycle = lambda * D'D trend
    d = np.diff(np.eye(40), n=2, axis=0)
    trend, cycle = hp_filter(x, 100.0)
    np.testing.assert_allclose(cycle, 100.0 * d.T @ (d @ trend), atol=1e-9)


def test_linear_detrend_residual_is_orthogonal_to_constant_and_trend(cols):
    r = linear_detrend(100 * np.log(cols["realgdp"]))
    t = np.arange(r.size)
    assert abs(r.sum()) < 1e-8 and abs((r * t).sum()) < 1e-6


def test_inflation_equals_the_tables_own_infl_column(cols):
    obs = canonical_observables(cols)
    level = obs.values[:, 1] + obs.levels_mean["inflation"]
    np.testing.assert_allclose(level, cols["infl"][1:], atol=0.005 + 1e-9)  # the table rounds to 2 decimals
    np.testing.assert_allclose(obs.values[:, 2] + obs.levels_mean["rate"], cols["tbilrate"][1:], atol=1e-12)


def test_observables_shape_dates_and_methods(cols):
    obs = canonical_observables(cols)
    assert obs.values.shape == (202, 3) and obs.dates[0] == "1959Q2" and obs.dates[-1] == "2009Q3"
    assert abs(obs.values[:, 1].mean()) < 1e-12 and abs(obs.values[:, 2].mean()) < 1e-12
    growth = canonical_observables(cols, "growth").values[:, 0]
    expected = 100 * np.diff(np.log(cols["realgdp"]))
    np.testing.assert_allclose(growth, expected - expected.mean(), atol=1e-12)
    with pytest.raises(ValueError, match="output_method 'bk'"):
        canonical_observables(cols, "bk")


def test_moments_match_independent_formulas(cols):
    obs = canonical_observables(cols)
    m = moments(obs)
    for k, name in enumerate(OBSERVABLES):
        x = obs.values[:, k]
        assert m["observables"][name]["sd"] == pytest.approx(
            np.sqrt(((x - x.mean()) ** 2).sum() / (x.size - 1)), rel=1e-12
        )
        assert m["observables"][name]["autocorr1"] == pytest.approx(acf(x, nlags=1, fft=False)[1], rel=1e-10)
    np.testing.assert_allclose(np.diag(m["correlation"]), 1.0)
    assert autocorr1(np.array([1.0, -1.0, 1.0, -1.0])) == pytest.approx(-0.75)  # sum(d_t d_t-1)/sum(d^2) = -3/4


def test_summary_is_plausible_for_us_postwar_data():
    s = summarize(macrodata_path(), source_sha256=MACRODATA_SHA256)
    assert s["sample"] == {"start": "1959Q2", "end": "2009Q3", "quarters": 202}
    mo = s["moments"]["observables"]
    # well-known magnitudes: HP output gap sd ~1.5 %, persistent inflation and short rate
    assert 1.0 < mo["output"]["sd"] < 2.5 and 0.7 < mo["output"]["autocorr1"] < 0.95
    assert 2.0 < mo["inflation"]["sd"] < 4.5 and mo["inflation"]["autocorr1"] > 0.5
    assert 2.0 < mo["rate"]["sd"] < 4.5 and mo["rate"]["autocorr1"] > 0.9
    assert 3.0 < s["levels_mean"]["inflation"] < 5.0 and 4.0 < s["levels_mean"]["rate"] < 7.0
    assert s["source"] == {"name": real_data.SOURCE_ENTRY, "sha256": MACRODATA_SHA256}
    assert len(s["series"]["output"]) == 202 and len(s["summary_sha256"]) == 64
