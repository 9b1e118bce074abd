"""Parameter normalization against closed forms written out here (spec bounds, uniform moments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import macro_data.read as mdr


@pytest.fixture(scope="module")
def ds(read_dataset):
    return mdr.open_dataset(read_dataset)


def test_uniform_moments_closed_form():
    assert mdr.uniform_moments(0.0, 1.0) == pytest.approx((0.5, 1 / math.sqrt(12)))
    # discrete uniform on {3, 4, 5}: variance ((5 - 3 + 1)^2 - 1) / 12 = 2/3
    assert mdr.discrete_uniform_moments(3, 5) == pytest.approx((4.0, math.sqrt(2 / 3)))
    assert mdr.discrete_uniform_moments(1, 4) == pytest.approx((2.5, math.sqrt(np.var([1, 2, 3, 4]))))


def test_rbc_prior_z_scores(ds):
    norm = ds["rbc"].normalizer()
    # rbc spec bounds (docs/worlds.md), written out independently of the code
    spec = {
        "beta": (0.985, 0.995),
        "alpha": (0.25, 0.40),
        "delta": (0.02, 0.03),
        "nu": (0.5, 3.0),
        "gamma": (1.0, 3.0),
        "rho_a": (0.0, 0.99),
        "sigma_a": (0.005, 0.02),
        "rho_b": (0.0, 0.95),
        "sigma_b": (0.005, 0.02),
    }
    assert norm.names == tuple(spec)
    for j, (lo, hi) in enumerate(spec.values()):
        assert norm.mean[j] == pytest.approx((lo + hi) / 2, rel=1e-12)
        assert norm.sd[j] == pytest.approx((hi - lo) / math.sqrt(12), rel=1e-12)
    assert norm.normalized.all()
    theta = ds["rbc"]["theta"].read()
    z = norm.normalize(theta)
    assert np.all(np.abs(z) <= math.sqrt(3) + 1e-5)
    # rbc rejects no draw, so z is standard uniform-ish: mean 0 and sd 1 up to sampling error (n = 900)
    assert np.all(np.abs(z.mean(axis=0)) < 0.15) and np.all(np.abs(z.std(axis=0) - 1) < 0.1)
    np.testing.assert_allclose(norm.denormalize(z), theta, rtol=1e-12)
    np.testing.assert_allclose(norm.normalize(theta[None, :5]), z[None, :5])  # leading axes broadcast


def test_prior_override_versus_parameter_bounds(ds):
    j = ds["nk"].parameter_names.index("phi_pi")
    prior = ds["nk"].normalizer(bounds="prior")
    spec = ds["nk"].normalizer(bounds="parameters")
    assert (prior.mean[j], prior.sd[j]) == pytest.approx((2.1, 1.8 / math.sqrt(12)))  # recipe: [1.2, 3.0]
    assert (spec.mean[j], spec.sd[j]) == pytest.approx((2.275, 2.45 / math.sqrt(12)))  # spec: [1.05, 3.5]
    k = ds["nk"].parameter_names.index("kappa")
    assert prior.mean[k] == spec.mean[k] == pytest.approx(0.255)
    assert "prior" in prior.rules[j] and "parameter bounds" in spec.rules[j]


def test_integer_and_derived_parameters(ds):
    lss = ds["lss"]
    norm = lss.normalizer()
    kinds = dict(zip(norm.names, norm.kinds))
    assert kinds["n_state"] == "integer" and "derived" in kinds.values()
    theta = lss["theta"].read().astype(np.float64)
    z = norm.normalize(theta)
    j = norm.names.index("n_state")
    np.testing.assert_allclose(z[:, j], (theta[:, j] - 4.0) / math.sqrt(2 / 3))
    assert set(np.round(z[:, j], 6)) <= {round(-1 / math.sqrt(2 / 3), 6), 0.0, round(1 / math.sqrt(2 / 3), 6)}
    derived = [i for i, k in enumerate(norm.kinds) if k == "derived"]
    assert not norm.normalized[derived].any()
    np.testing.assert_array_equal(z[:, derived], theta[:, derived])  # identity: no statistics invented
    # standardizing derived parameters by statistics computed from the data
    moments = lss.theta_moments(None)
    stats = lss.normalizer(derived=moments)
    zs = stats.normalize(theta)
    ref_mean, ref_sd = theta.mean(axis=0), theta.std(axis=0, ddof=1)
    for i in derived:
        if ref_sd[i] > 0:
            np.testing.assert_allclose(zs[:, i], (theta[:, i] - ref_mean[i]) / ref_sd[i], rtol=1e-9, atol=1e-9)
    assert stats.normalized[derived].all()
    d = stats.as_dict()
    assert d["parameters"][j]["name"] == "n_state" and d["parameters"][j]["sd"] == pytest.approx(math.sqrt(2 / 3))


def test_normalizer_errors(ds):
    with pytest.raises(mdr.ReadArgumentError, match="bounds: 'both' is not one of prior, parameters"):
        ds["nk"].normalizer(bounds="both")
    with pytest.raises(mdr.ReadArgumentError, match="derived: world 'nk' has no parameter 'A_0_0'"):
        ds["nk"].normalizer(derived={"A_0_0": (0.0, 1.0)})
    with pytest.raises(mdr.ReadArgumentError, match="derived: 'data'"):
        ds["nk"].normalizer(derived="data")
    with pytest.raises(mdr.ReadArgumentError, match=r"world 'nk': theta must have 12 parameters .* got shape \(4, 9\)"):
        ds["nk"].normalizer().normalize(np.zeros((4, 9)))
