"""Prior families: inverse CDFs against scipy.stats, the uniform family unchanged, recipe errors naming the
field, and the seeding guarantees (determinism, chunk independence, prefix stability) with families."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy import stats

from macro_data.errors import RecipeError, WorldError
from macro_data.recipes import load_recipe
from macro_data.worlds import get_world
from macro_data.worlds.priors import Prior, PriorSet
from macro_data.worlds.sampling import BLOCK_SIZE, block_rng, draw_range

LO, HI = 0.5, 2.5
CASES = [
    (Prior(LO, HI), stats.uniform(LO, HI - LO)),
    (Prior(LO, HI, "loguniform"), stats.loguniform(LO, HI)),
    (
        Prior(LO, HI, "normal", (("mean", 1.0), ("sd", 0.4))),
        stats.truncnorm((LO - 1.0) / 0.4, (HI - 1.0) / 0.4, loc=1.0, scale=0.4),
    ),
    # both bounds far in the upper tail: the inverse CDF must stay accurate there
    (
        Prior(LO, HI, "normal", (("mean", -2.0), ("sd", 0.5))),
        stats.truncnorm((LO + 2.0) / 0.5, (HI + 2.0) / 0.5, loc=-2.0, scale=0.5),
    ),
    (Prior(LO, HI, "beta", (("a", 2.0), ("b", 5.0))), stats.beta(2.0, 5.0, loc=LO, scale=HI - LO)),
]


@pytest.mark.parametrize("prior,reference", CASES, ids=lambda c: getattr(c, "family", ""))
def test_families_match_scipy(prior, reference):
    u = np.random.default_rng(0).random(20_000)
    x = prior.ppf(u)
    assert x.min() >= LO and x.max() <= HI
    # inverse CDF against the reference's, and the sample against the reference by KS
    grid = np.linspace(0.001, 0.999, 999)
    np.testing.assert_allclose(prior.ppf(grid), reference.ppf(grid), rtol=1e-7, atol=1e-9)
    assert stats.kstest(x, reference.cdf).pvalue > 1e-3
    xs = np.linspace(LO + 1e-6, HI - 1e-6, 101)
    np.testing.assert_allclose(prior.cdf(xs), reference.cdf(xs), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(prior.pdf(xs), reference.pdf(xs), rtol=1e-7, atol=1e-10)


def test_fixed_family():
    p = Prior(LO, HI, "fixed", (("value", 0.99),))
    np.testing.assert_array_equal(p.ppf(np.array([0.0, 0.5, 0.9])), [0.99, 0.99, 0.99])
    assert p.as_dict() == {"low": LO, "high": HI, "distribution": "fixed", "value": 0.99}


@pytest.mark.parametrize("world_id", ["nk", "var", "lss", "rbc", "switching", "zlb"])
def test_uniform_family_draws_exactly_as_before(world_id):
    """The default priors give the linear map of ``rng.random((n, n_drawn))`` bit for bit."""
    world = get_world(world_id)
    theta = world.propose_independent(block_rng(3, world, 2, "theta"), BLOCK_SIZE, world.resolve_priors())
    drawn = [p for p in world.parameters if p.kind in ("uniform", "integer")]
    u = block_rng(3, world, 2, "theta").random((BLOCK_SIZE, len(drawn)))
    for k, p in enumerate(drawn):
        col = theta[:, world.index(p.name)]
        if p.kind == "uniform":
            np.testing.assert_array_equal(col, p.low + (p.high - p.low) * u[:, k])
        else:
            lo, hi = int(np.ceil(p.low)), int(np.floor(p.high))
            np.testing.assert_array_equal(col, lo + np.minimum(np.floor(u[:, k] * (hi - lo + 1)), hi - lo))


FAMILIES = {
    "sigma": {"family": "loguniform", "low": 0.5, "high": 2.5},
    "beta": {"family": "fixed", "value": 0.99},
    "kappa": {"family": "beta", "a": 2.0, "b": 3.0},
    "phi_pi": {"family": "normal", "mean": 1.5, "sd": 0.5, "high": 3.0},
}


def test_families_in_a_world_draw():
    world = get_world("nk")
    priors = world.resolve_priors(FAMILIES)
    assert priors.families["sigma"] == "loguniform" and priors["phi_pi"] == (1.05, 3.0)
    d = draw_range(world, 11, 0, 4000, 2, priors)
    col = {k: d.theta[:, world.index(k)] for k in FAMILIES}
    assert (col["beta"] == np.float32(0.99)).all()
    for name in ("sigma", "kappa", "phi_pi"):
        p = priors.prior(name)
        assert col[name].min() >= p.low and col[name].max() <= p.high
        assert stats.kstest(col[name], p.cdf).pvalue > 1e-3, name
    # other parameters are drawn exactly as without the families (one uniform per drawn parameter)
    plain = draw_range(world, 11, 0, 4000, 2)
    other = world.index("rho_i")
    np.testing.assert_array_equal(d.theta[:, other], plain.theta[:, other])


def test_families_are_chunk_independent_and_prefix_stable():
    world = get_world("zlb")  # rejects draws: the rounds must still be per block
    priors = world.resolve_priors({"sigma": FAMILIES["sigma"], "rho_r": {"family": "beta", "a": 2, "b": 2}})
    whole = draw_range(world, 4, 0, 3 * BLOCK_SIZE, 3, priors)
    again = draw_range(world, 4, 0, 3 * BLOCK_SIZE, 3, priors)
    np.testing.assert_array_equal(whole.theta, again.theta)
    part = draw_range(world, 4, BLOCK_SIZE + 7, 2 * BLOCK_SIZE + 100, 3, priors)
    np.testing.assert_array_equal(part.theta, whole.theta[BLOCK_SIZE + 7 : 2 * BLOCK_SIZE + 100])
    longer = draw_range(world, 4, 0, 5 * BLOCK_SIZE, 3, priors)
    np.testing.assert_array_equal(longer.theta[: 3 * BLOCK_SIZE], whole.theta)


def test_prior_set_round_trips_through_the_manifest_form():
    priors = get_world("nk").resolve_priors(FAMILIES)
    back = PriorSet.from_manifest(priors.as_manifest())
    assert back.priors() == priors.priors()
    assert dict(back) == dict(priors)


def _recipe(tmp_path, priors, **top):
    doc = {"name": "t", "version": "0.1.0", "seed": 1, "T": 4, "H": 2, **top}
    doc["worlds"] = {"nk": {"n_samples": 5, "priors": priors}, "var": {"n_samples": 5}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    "priors,needles",
    [
        ({"sigma": {"family": "normal", "sd": 1.0}}, ["worlds/nk/priors/sigma", "'mean' is a required property"]),
        ({"sigma": {"family": "beta", "a": 1.0, "b": 2.0, "mean": 1}}, ["worlds/nk/priors/sigma", "'mean' is not one"]),
        ({"sigma": {"family": "cauchy"}}, ["worlds/nk/priors/sigma/family"]),
        ({"sigma": {"mean": 1.0}}, ["worlds/nk/priors/sigma", "'mean' is not one"]),
        ({"sigma": {"family": "beta", "a": 0, "b": 2}}, ["worlds/nk/priors/sigma/a"]),
        ({"phi_y": {"family": "loguniform"}}, ["worlds/nk/priors", "'phi_y'", "positive bounds"]),
        ({"beta": {"family": "fixed", "value": 0.5}}, ["worlds/nk/priors", "'beta'", "outside the bounds"]),
        ({"sigma": {"family": "normal", "mean": 50.0, "sd": 0.1}}, ["worlds/nk/priors", "'sigma'", "mass"]),
    ],
)
def test_bad_priors_name_the_field(tmp_path, priors, needles):
    with pytest.raises(RecipeError) as err:
        load_recipe(_recipe(tmp_path, priors))
    for needle in needles:
        assert needle in str(err.value)


def test_families_of_derived_and_integer_parameters_are_refused():
    with pytest.raises(WorldError, match="'A1_0_0'.*derived.*independently drawn"):
        get_world("var").resolve_priors({"A1_0_0": {"family": "normal", "mean": 0, "sd": 1}})
    with pytest.raises(WorldError, match="'p' is .*integer parameter.*'uniform' or 'fixed'"):
        get_world("var").resolve_priors({"p": {"family": "beta", "a": 2, "b": 2}})
    with pytest.raises(WorldError, match="must be an integer"):
        get_world("var").resolve_priors({"p": {"family": "fixed", "value": 2.5}})
    fixed = get_world("var").resolve_priors({"p": {"family": "fixed", "value": 2}})
    d = draw_range(get_world("var"), 1, 0, 300, 2, fixed)
    assert (d.theta[:, get_world("var").index("p")] == 2).all()


def test_the_default_family_written_out_keeps_the_hash(tmp_path):
    plain = load_recipe(_recipe(tmp_path, {"sigma": {"low": 0.6, "high": 2.0}}))
    explicit = load_recipe(_recipe(tmp_path, {"sigma": {"family": "uniform", "low": 0.6, "high": 2.0}}))
    other = load_recipe(_recipe(tmp_path, {"sigma": {"family": "loguniform", "low": 0.6, "high": 2.0}}))
    assert plain.sha256 == explicit.sha256 != other.sha256
    assert other.world("nk").priors.prior("sigma").family == "loguniform"
