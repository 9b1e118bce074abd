"""DeclaredWorld as a World: seeding, validity and rejection, dtypes, identities, splits, provenance."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from macro_data import schemas, splits
from macro_data.errors import WorldError
from macro_data.worlds.base import stable_key, to_float32_precision
from macro_data.worlds.declared import DeclaredWorld, load_world_file
from macro_data.worlds.declared.world import corner_tail_mass
from macro_data.worlds.sampling import BLOCK_SIZE, block_rng, draw_range

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "datasets" / "worlds").glob("*.yaml"))
DATA = Path(__file__).resolve().parent / "data"

# A model whose bounds include indeterminate draws (phi < 1), with an extra observable using a lag.
WIDE = """\
world: {name}
description: Forward-looking test model with indeterminate draws
variables: [x, pi, v]
shocks: [e, f]
parameters:
  beta:  {{low: 0.9, high: 0.99}}
  kappa: {{low: 0.05, high: 0.5}}
  phi:   {{low: 0.2, high: 2.5}}
  rho:   {{low: 0.0, high: 0.9}}
  sd:    {{low: 0.001, high: 0.01}}
equations:
  - x = x(+1) - (phi*pi - pi(+1)) + v + sd*f
  - pi = beta*pi(+1) + kappa*x
  - v = rho*v(-1) + sd*e
observables:
  output:    {{expr: 100*x, unit: percent}}
  inflation: {{expr: 400*pi, unit: annualized percentage points}}
  rate:      {{expr: 400*phi*pi, unit: annualized percentage points}}
  growth:    {{expr: 100*(x - x(-1)), unit: percent}}
splits:
  slice:  {{parameter: phi, side: {side}}}
  corner: {{parameters: [{corner}], sides: [{sides}]}}
"""


def wide(tmp_path, name="wide", side="high", corner="rho, sd", sides="high, low") -> DeclaredWorld:
    path = tmp_path / f"{name}.yaml"
    path.write_text(WIDE.format(name=name, side=side, corner=corner, sides=sides))
    return load_world_file(path)


@pytest.fixture(scope="module")
def worlds():
    return {p.stem: load_world_file(p) for p in SHIPPED + sorted(DATA.glob("*.yaml"))}


def test_shipped_models_load_and_are_sane(worlds):
    assert {p.stem for p in SHIPPED} >= {"nk_habit", "rbc_iac"}
    for p in SHIPPED:
        w = worlds[p.stem]
        assert w.name == p.stem and w.description and w.design_notes
        for par in w.parameters:
            assert par.unit and par.description and par.default is not None and par.low <= par.default <= par.high
        d = draw_range(w, 11, 0, 2048, 200)
        assert d.rejections.mean() < 0.05
        sim = w.simulate(d.theta, d.shocks)
        sd = sim.trajectories.std(axis=1)  # per draw and observable
        assert np.all(np.isfinite(sd)) and 0.5 < np.median(sd) < 20  # canonical units, order 1-10


def test_streams_are_keyed_by_the_world_name(tmp_path):
    w = wide(tmp_path)
    assert w.key == stable_key("wide")
    P, S, T = len(w.parameters), len(w.shocks), 6
    d = draw_range(w, 3, 0, BLOCK_SIZE, T)
    again = draw_range(w, 3, 0, BLOCK_SIZE, T)
    np.testing.assert_array_equal(d.theta, again.theta)
    np.testing.assert_array_equal(d.shocks, again.shocks)
    assert not np.array_equal(draw_range(w, 4, 0, BLOCK_SIZE, T).theta, d.theta)
    # the first rejection round, read directly from the algorithm's definition
    u = block_rng(3, w, 0, "theta").random((BLOCK_SIZE, P))
    lows = np.array([p.low for p in w.parameters])
    highs = np.array([p.high for p in w.parameters])
    first = to_float32_precision(lows + (highs - lows) * u)
    accepted = d.rejections == 0
    assert 0.1 < accepted.mean() < 1.0  # phi < 1 draws were rejected and redrawn
    np.testing.assert_array_equal(d.theta[accepted], first[accepted])
    assert not w.is_valid(first[~accepted]).any()
    assert w.valid(d.theta).all()
    np.testing.assert_array_equal(
        d.shocks, block_rng(3, w, 0, "shocks").standard_normal((BLOCK_SIZE, T, S)).astype(np.float32)
    )
    # the same model under another name draws from other streams
    other = wide(tmp_path, name="wide_copy")
    assert not np.array_equal(draw_range(other, 3, 0, BLOCK_SIZE, T).theta, d.theta)


def test_invalid_draws_are_refused_with_a_reason(tmp_path):
    w = wide(tmp_path)
    theta = np.array([[0.95, 0.2, 1.5, 0.5, 0.005], [0.95, 0.2, 0.5, 0.5, 0.005]])
    assert w.is_valid(theta).tolist() == [True, False]
    with pytest.raises(
        WorldError,
        match=r"world 'wide': draw 1 has no valid solution \(no unique stable solution: "
        r"the number of unstable roots .* \(1 unstable roots\)\): beta=0.95, ",
    ):
        w.simulate(theta, np.zeros((2, 5, 2)))
    with pytest.raises(WorldError, match="draw 1 has no valid solution"):
        w.irfs(theta, 4)
    with pytest.raises(WorldError, match="parameter 'phi' of draw 0 is 3.0, outside its bounds"):
        w.simulate(np.array([[0.95, 0.2, 3.0, 0.5, 0.005]]), np.zeros((1, 5, 2)))


@pytest.mark.parametrize("world_id", ["nk_habit", "rbc_iac", "rbc_declared"])
def test_float32_outputs_are_float64_rounded(worlds, world_id):
    w = worlds[world_id]
    d = draw_range(w, 21, 0, 300, 24)
    ref = w.simulate(d.theta, d.shocks.astype(np.float64))
    for eps in (d.shocks, d.shocks.astype(np.float64)):
        sim = w.simulate(d.theta, eps, dtype=np.float32)
        assert sim.trajectories.dtype == np.float32 and sim.extras.dtype == np.float32
        np.testing.assert_array_equal(sim.trajectories, ref.trajectories.astype(np.float32))
        np.testing.assert_array_equal(sim.extras, ref.extras.astype(np.float32))
        np.testing.assert_array_equal(w.simulate(d.theta, eps).trajectories, ref.trajectories)
    irfs = w.irfs(d.theta, 7, dtype=np.float32)
    assert irfs.dtype == np.float32
    np.testing.assert_array_equal(irfs, w.irfs(d.theta, 7).astype(np.float32))
    np.testing.assert_array_equal(w.irfs_all(d.theta, 7, dtype=np.float32), w.irfs_all(d.theta, 7).astype(np.float32))


@pytest.mark.parametrize("world_id", ["nk_habit", "rbc_iac", "nk_declared", "rbc_declared"])
def test_convolution_identity_with_extras(worlds, world_id):
    w = worlds[world_id]
    T = 30
    d = draw_range(w, 5, 0, 200, T)
    sim = w.simulate(d.theta, d.shocks)
    irfs = w.irfs_all(d.theta, T - 1)
    assert irfs.shape == (200, len(w.shocks), T, 3 + len(w.extras))
    np.testing.assert_array_equal(irfs[..., :3], w.irfs(d.theta, T - 1))
    eps = d.shocks.astype(np.float64)
    conv = np.zeros((200, T, irfs.shape[-1]))
    for t in range(T):
        for h in range(t + 1):
            conv[:, t] += np.einsum("nj,njo->no", eps[:, t - h], irfs[:, :, h])
    full = np.concatenate([sim.trajectories] + ([sim.extras] if w.extras else []), axis=2)
    scale = np.abs(full).max(axis=1, keepdims=True)
    assert np.max(np.abs(conv - full) / scale) < 1e-10


def test_samples_do_not_depend_on_their_batch(worlds, tmp_path):
    for w in (worlds["nk_habit"], worlds["rbc_iac"], wide(tmp_path)):
        d = draw_range(w, 8, 0, 300, 40)
        whole = w.simulate(d.theta, d.shocks)
        irfs = w.irfs_all(d.theta, 12)
        for lo, hi in ((17, 40), (0, 1), (299, 300)):
            part = w.simulate(d.theta[lo:hi], d.shocks[lo:hi])
            np.testing.assert_array_equal(part.trajectories, whole.trajectories[lo:hi])
            np.testing.assert_array_equal(part.extras, whole.extras[lo:hi])
            np.testing.assert_array_equal(w.irfs_all(d.theta[lo:hi], 12), irfs[lo:hi])


def test_observable_lags_start_from_the_steady_state(tmp_path):
    w = wide(tmp_path)
    theta = np.array([[0.95, 0.2, 1.5, 0.5, 0.005]])
    eps = np.zeros((1, 4, 2))
    eps[0, 0, 0] = 1.0
    sim = w.simulate(theta, eps)
    growth = sim.extras[0, :, 0]
    output = sim.trajectories[0, :, 0]
    np.testing.assert_allclose(growth, np.diff(np.concatenate([[0.0], output])), rtol=1e-12, atol=1e-15)


def test_split_thresholds_follow_the_rule(tmp_path):
    w = wide(tmp_path)
    # slice: phi ~ U(0.2, 2.5), high side: 2.5 - 0.025 * 2.3
    assert (w.slice_rule.statistic, w.slice_rule.direction) == ("phi", "above")
    assert w.slice_rule.threshold == pytest.approx(2.5 - 0.025 * 2.3, rel=1e-15)
    q = np.sqrt(0.025 / 0.975)
    assert w.corner_rule.persistence == "rho" and w.corner_rule.volatility == "-sd"
    assert w.corner_rule.persistence_threshold == pytest.approx(0.9 - q * 0.9, rel=1e-15)
    assert w.corner_rule.volatility_threshold == pytest.approx(-(0.001 + q * 0.009), rel=1e-15)
    theta = np.array([[0.95, 0.2, 1.5, 0.85, 0.0011], [0.95, 0.2, 1.5, 0.85, 0.009]])
    pers, vol = w.corner_statistics(theta)
    np.testing.assert_array_equal(pers, [0.85, 0.85])
    np.testing.assert_array_equal(vol, [-0.0011, -0.009])
    assert splits.in_corner(w, theta).tolist() == [True, False]
    low = wide(tmp_path, name="wide_low", side="low")
    assert low.slice_rule.direction == "below"
    assert low.slice_rule.threshold == pytest.approx(0.2 + 0.025 * 2.3, rel=1e-15)


@pytest.mark.parametrize(
    "side, corner, sides, q",
    [
        ("high", "rho, sd", "high, low", np.sqrt(0.025 / 0.975)),  # slice parameter not in the corner
        ("high", "phi, sd", "high, high", (0.025 + np.sqrt(0.025**2 + 0.1)) / 2),  # same parameter, same side
        ("low", "phi, rho", "high, high", np.sqrt(0.025)),  # same parameter, other side
    ],
)
def test_split_regions_hold_their_prior_mass(tmp_path, side, corner, sides, q):
    w = wide(tmp_path, side=side, corner=corner, sides=sides)
    c = [s.strip() for s in corner.split(",")]
    assert corner_tail_mass(
        w.model.splits.slice_parameter, side, tuple(c), tuple(s.strip() for s in sides.split(","))
    ) == pytest.approx(q, rel=1e-14)
    rng = np.random.default_rng(0)
    n = 400_000
    theta = w.propose(rng, n, w.resolve_priors())  # the uniform prior (validity aside)
    labels = splits.assign(w, theta, rng.random(n))
    slice_frac = np.mean(labels == splits.LABELS["test_extrapolation_slice"])
    corner_frac = np.mean(labels == splits.LABELS["test_extrapolation_corner"])
    assert abs(slice_frac - 0.025) < 0.0015 and abs(corner_frac - 0.025) < 0.0015, (slice_frac, corner_frac)


def test_describe_and_provenance(worlds):
    w = worlds["rbc_iac"]
    path = ROOT / "datasets" / "worlds" / "rbc_iac.yaml"
    desc = json.loads(json.dumps(w.describe()))  # JSON-serializable
    assert desc["name"] == "rbc_iac" and desc["linear"] is True
    assert desc["model"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == w.model_sha256
    assert desc["model"]["text"] == path.read_text() == w.model_text
    assert desc["model"]["equations"] == list(w.equations) and len(w.equations) == 9
    assert [o["name"] for o in desc["extras"]] == ["consumption", "investment", "hours", "capital", "tobins_q"]
    manifest = schemas.load("manifest")
    for p in desc["parameters"]:
        jsonschema.validate(p, {**manifest["$defs"]["parameter"], "$defs": manifest["$defs"]})
    for o in desc["observables"] + desc["extras"]:
        jsonschema.validate(o, manifest["$defs"]["named_unit"])
    assert any(w.model_sha256 in n for n in w.design_notes)
    # the code digest covers the model file: another file, another digest
    assert w.code_digest != worlds["nk_habit"].code_digest and w.code_version.startswith("rbc_iac-")


def test_variable_irfs_and_policy(worlds):
    w = worlds["nk_declared"]
    theta = np.array([[p.default for p in w.parameters]])
    pol = w.policy(theta)
    assert [w.system.variables[i] for i in pol.lagged] == ["i", "v", "rn", "u"]
    z = w.variable_irfs(theta, 5)  # (1, 3, 6, 6)
    obs = w.irfs(theta, 5)
    np.testing.assert_allclose(obs[0, :, :, 0], 100 * z[0, :, :, 0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(obs[0, :, :, 2], 400 * z[0, :, :, 2], rtol=1e-13, atol=1e-15)
    # monetary shock: v[h] = sigma_m rho_m^h
    sigma_m, rho_m = theta[0, w.index("sigma_m")], theta[0, w.index("rho_m")]
    np.testing.assert_allclose(z[0, 0, :, 3], sigma_m * rho_m ** np.arange(6), rtol=1e-13)


def test_non_finite_coefficients_make_a_draw_invalid(tmp_path):
    text = (
        WIDE.format(name="wide_sqrt", side="high", corner="rho, sd", sides="high, low")
        .replace("expr: 100*(x - x(-1))", "expr: 100*sqrt(rho - 0.3)*(x - x(-1))")
        .replace("v = rho*v(-1)", "v = log(rho + 0.5)*v(-1)")
    )
    path = tmp_path / "wide_sqrt.yaml"
    path.write_text(text)
    w = load_world_file(path)
    theta = np.array(
        [
            [0.95, 0.2, 1.5, 0.5, 0.005],  # fine
            [0.95, 0.2, 1.5, 0.1, 0.005],
        ]
    )  # sqrt(-0.2) in an observable
    assert w.is_valid(theta).tolist() == [True, False]
    with pytest.raises(WorldError, match="draw 1 has no valid solution \\(a coefficient is not finite"):
        w.simulate(theta, np.zeros((2, 3, 2)))
    # an equation coefficient: log(rho + 0.5) is fine on [0, 0.9]; outside the domain it is not
    A, B, C, D = w.system.matrices(np.array([[0.95, 0.2, 1.5, -0.6, 0.005]]))
    assert not np.isfinite(C).all()


@pytest.mark.parametrize(
    "path", [ROOT / "benchmarks" / "models" / "nk_large20.yaml", ROOT / "datasets" / "worlds" / "rbc_iac.yaml"]
)
def test_structured_kernels_equal_the_plain_recursion(path):
    """simulate/irfs (structured layout, exogenous supports, term-wise observables) against the
    plain recursion z[t] = P z_L[t-1] + Q eps[t], y[t] = G0 z[t] + G1 z[t-1] on every variable."""
    from macro_data.worlds.declared.simulation import experiment_groups

    w = load_world_file(path)
    grouped = len(experiment_groups(w.layout)) > 1
    assert grouped == (path.stem == "nk_large20")  # both IRF paths are exercised
    T, H = 25, 12
    d = draw_range(w, 17, 0, 64, T)
    pol = w.policy(d.theta)
    G0, G1 = w.system.observation(d.theta)
    L = list(pol.lagged)
    eps = d.shocks.astype(np.float64)
    n = len(w.system.variables)
    z_prev = np.zeros((64, n))
    y = np.empty((64, T, G0.shape[1]))
    for t in range(T):
        z = np.einsum("knl,kl->kn", pol.P, z_prev[:, L]) + np.einsum("kns,ks->kn", pol.Q, eps[:, t])
        y[:, t] = np.einsum("kqn,kn->kq", G0, z) + np.einsum("kqn,kn->kq", G1, z_prev)
        z_prev = z
    sim = w.simulate(d.theta, d.shocks)
    got = np.concatenate([sim.trajectories, sim.extras], axis=2)
    scale = np.abs(y).max(axis=1, keepdims=True)
    assert np.max(np.abs(got - y) / scale) < 1e-12
    z = w.variable_irfs(d.theta, H)  # (k, S, H+1, n)
    z_lag = np.concatenate([np.zeros_like(z[:, :, :1]), z[:, :, :-1]], axis=2)
    ref = np.einsum("kqn,kshn->kshq", G0, z) + np.einsum("kqn,kshn->kshq", G1, z_lag)
    irfs = w.irfs_all(d.theta, H)
    scale = np.abs(ref).max(axis=2, keepdims=True) + 1e-300
    assert np.max(np.abs(irfs - ref) / scale) < 1e-12


def test_twenty_variable_model_matches_the_qz_reference():
    from macro_data_tests.worlds.declared.klein_reference import klein

    w = load_world_file(ROOT / "benchmarks" / "models" / "nk_large20.yaml")
    theta = draw_range(w, 5, 0, 8, 1).theta
    pol = w.policy(theta)
    A, B, C, D = w.system.matrices(theta)
    for d in range(theta.shape[0]):
        (F, Q), _ = klein(A[d], B[d], C[d], D[d])
        scale = max(np.abs(F).max(), np.abs(Q).max())
        assert np.abs(pol.P[d] - F[:, list(pol.lagged)]).max() < 1e-9 * scale
        assert np.abs(pol.Q[d] - Q).max() < 1e-9 * scale


def test_a_world_pickles_as_its_file(worlds):
    import pickle

    w = worlds["nk_habit"]
    again = pickle.loads(pickle.dumps(w))
    assert isinstance(again, DeclaredWorld) and again is not w
    assert (again.name, again.model_sha256, again.code_digest) == (w.name, w.model_sha256, w.code_digest)
    d = draw_range(w, 3, 0, 50, 12)
    np.testing.assert_array_equal(
        again.simulate(d.theta, d.shocks).trajectories, w.simulate(d.theta, d.shocks).trajectories
    )
