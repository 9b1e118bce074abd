"""Burn-in through the asset graph: a Dagster build with ``burn_in: B`` whose asset checks and validation
pass; trajectories equal the last T periods of a B + T simulation re-derived here from the seed;
``initial_state`` is the state after the burn-in and makes a linear world's convolution identity hold;
the start is stationary (closed-form moments); chunk-size independence, prefix stability, and the
checks catch a wrong ``initial_state``."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import numpy as np
import pytest
import zarr

from macro_data import schemas
from macro_data.errors import StorageError
from macro_data.read import open_dataset
from macro_data.recipes import load_recipe
from macro_data.validation.identities import check_identities
from macro_data.validation.reproducibility import check_simulation
from macro_data.validation.spec import spec_from_manifest
from macro_data.worlds import get_world
from macro_data.worlds.sampling import BLOCK_SIZE, block_rng
from macro_data_tests.conftest import build_dataset, build_world, write_recipe

WORLDS = ("lss", "var", "nk", "rbc", "switching", "zlb")
B = 30
N = 300
CHECKS: list = []


@pytest.fixture(scope="module")
def burned(tmp_path_factory, instance):
    base = tmp_path_factory.mktemp("burn")
    recipe = write_recipe(base, n=N, worlds=WORLDS, burn_in=B, irfs={"states": 2})
    root = base / "root"
    for w in WORLDS:
        CHECKS.extend(build_world(instance, recipe, root, w).get_asset_check_evaluations())
    build_dataset(instance, recipe, root)
    return recipe, root, root / "tiny" / "0.1.0"


def _group(dataset_dir, world, mode="r"):
    return zarr.open_group(str(dataset_dir / f"{world}.zarr"), mode=mode)


def _burn_eps(world, seed, n, periods):
    """The burn-in innovations as docs/worlds.md states them: standard_normal((256, B, S)) per block from
    the block's burn_in stream, rounded to float32."""
    blocks = -(-n // BLOCK_SIZE)
    eps = [
        block_rng(seed, world, b, "burn_in").standard_normal((BLOCK_SIZE, periods, len(world.shocks)))
        for b in range(blocks)
    ]
    return np.concatenate(eps)[:n].astype(np.float32)


def test_checks_and_validation_pass_and_the_manifest_describes_the_burn_in(burned):
    _, _, dataset_dir = burned
    errors = [e for e in CHECKS if e.severity == dg.AssetCheckSeverity.ERROR]
    assert {e.check_name for e in errors} >= {"consistency", "reproducibility"}
    failed = [(e.asset_key.to_user_string(), e.check_name, e.metadata) for e in errors if not e.passed]
    assert not failed, failed
    report = json.loads((dataset_dir / "validation_report.json").read_text())
    assert report["status"] == "pass", report.get("summary")
    assert "initial_state" in json.dumps(report)  # compared by reproducibility.simulation
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    assert schemas.errors("manifest", manifest) == []
    assert "initial_state" in manifest["conventions"]["time"]
    for w in WORLDS:
        world, entry = get_world(w), manifest["worlds"][w]
        assert entry["burn_in"]["periods"] == B
        assert [v["name"] for v in entry["burn_in"]["state_variables"]] == [v.name for v in world.state_variables]
        assert "initial_state" in entry["arrays"]
        g = _group(dataset_dir, w)
        x0 = g["initial_state"]
        assert x0.shape == (N, len(world.state_variables)) and x0.dtype == np.float32
        assert list(x0.metadata.dimension_names) == ["sample", "state_var"]
        assert x0.attrs["burn_in"] == B and len(x0.attrs["units"]) == len(world.state_variables)
        assert "initial_state" in g["trajectories"].attrs["description"]


def test_identity_from_initial_state_is_what_validation_applied(burned):
    _, _, dataset_dir = burned
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    for w in ("lss", "var", "nk", "rbc"):
        r = check_identities(spec_from_manifest(manifest, w, dataset_dir))
        assert r.passed, r.message
        assert "from initial_state" in r.message and r.figures["burn_in"]["max_abs_free_path"] > 0.01, r.figures


@pytest.mark.parametrize("w", WORLDS)
def test_trajectories_are_the_last_T_periods_of_a_B_plus_T_simulation(burned, w):
    """Re-derived here from the seed's streams and the stored inputs: the burn-in innovations, and for
    switching the regime chain of B + T periods from the metadata stream."""
    recipe, _, dataset_dir = burned
    world, seed = get_world(w), load_recipe(recipe).seed
    g = _group(dataset_dir, w)
    theta = g["theta"][:].astype(np.float64)
    eps = np.concatenate([_burn_eps(world, seed, N, B), g["shocks"][:]], axis=1)
    meta = {}
    if "regime" in g:  # one chain of B + T periods per sample from its block's metadata stream
        parts = []
        for b in range(-(-N // BLOCK_SIZE)):
            lo, hi = b * BLOCK_SIZE, min((b + 1) * BLOCK_SIZE, N)
            th = np.concatenate([theta[lo:hi], np.repeat(theta[hi - 1 : hi], BLOCK_SIZE - (hi - lo), 0)])
            parts.append(world.draw_metadata(block_rng(seed, world, b, "metadata"), th, B + 24)["regime"][: hi - lo])
        meta = {"regime": np.concatenate(parts)}
        np.testing.assert_array_equal(meta["regime"][:, B:], g["regime"][:])
    sim = world.simulate(theta, eps, meta, dtype=np.float32)
    np.testing.assert_array_equal(sim.trajectories[:, B:], g["trajectories"][:])
    # and the burn-in mattered: from the steady state the trajectories differ
    plain = world.simulate(theta, g["shocks"][:], {k: v[:, B:] for k, v in meta.items()}, dtype=np.float32)
    assert np.abs(plain.trajectories - g["trajectories"][:]).max() > 1e-3


def test_initial_state_is_the_state_after_the_burn_in(burned):
    """Read against the full simulation, not the worlds' own state code: nk's rate_lag is the rate of period
    B - 1 and var's lags are the observables of periods B - 1 .. B - 4."""
    recipe, _, dataset_dir = burned
    seed = load_recipe(recipe).seed
    for w in ("nk", "var"):
        world = get_world(w)
        g = _group(dataset_dir, w)
        theta = g["theta"][:].astype(np.float64)
        eps = np.concatenate([_burn_eps(world, seed, N, B), g["shocks"][:]], axis=1)
        y = world.simulate(theta, eps).trajectories
        x0 = g["initial_state"][:]
        names = list(g["state_var"][:])
        if w == "nk":
            np.testing.assert_array_equal(x0[:, names.index("rate_lag")], y[:, B - 1, 2].astype(np.float32))
        else:
            for lag in range(1, 5):
                for k, o in enumerate(("output", "inflation", "rate")):
                    col = names.index(f"{o}_lag{lag}")
                    np.testing.assert_array_equal(x0[:, col], y[:, B - lag, k].astype(np.float32))


def test_a_long_burn_in_starts_from_the_stationary_distribution(tmp_path, instance):
    """lss: E[y[0] y[0]'] equals the closed-form stationary covariance Gamma_0 after B = 300 periods
    (per draw, y[0]^2 / Gamma_0 has mean 1), while from the steady state it is far below."""
    world = get_world("lss")
    n = 2000
    means = {}
    for b in (0, 300):
        recipe = write_recipe(tmp_path / str(b), n=n, worlds=("lss",), burn_in=b, T=2, H=1)
        build_world(instance, recipe, tmp_path / str(b) / "root", "lss")
        g = _group(tmp_path / str(b) / "root" / "tiny" / "0.1.0", "lss")
        theta = g["theta"][:].astype(np.float64)
        G0, _ = world.stationary_moments(theta)
        y0 = g["trajectories"][:, 0].astype(np.float64)
        means[b] = (y0**2 / np.diagonal(G0, axis1=1, axis2=2)).mean(axis=0)
    # sd of a mean of n chi-square(1) values: sqrt(2 / n) = 0.032; 5 of them
    np.testing.assert_allclose(means[300], 1.0, atol=5 * np.sqrt(2 / n))
    assert (means[0] < 0.8).all(), means


def test_burn_in_arrays_do_not_depend_on_chunking_or_the_sample_count(tmp_path, instance, burned):
    _, _, dataset_dir = burned
    recipe = write_recipe(
        tmp_path, n=700, worlds=WORLDS, burn_in=B, irfs={"states": 2}, storage={"chunk_samples": 37, "clevel": 5}
    )
    for w in ("switching", "zlb", "nk"):
        build_world(instance, recipe, tmp_path / "root", w)
        a, b = _group(dataset_dir, w), _group(tmp_path / "root" / "tiny" / "0.1.0", w)
        names = ["trajectories", "initial_state", "irfs_state", "states", "state_dates"]
        names += [m for m in ("regime", "binding", "at_bound", "state_regime") if m in a]
        for name in names:
            np.testing.assert_array_equal(a[name][:], b[name][:N], err_msg=f"{w} {name}")


def test_validation_catches_a_wrong_initial_state(tmp_path, burned):
    _, _, dataset_dir = burned
    copy = tmp_path / "copy"
    shutil.copytree(dataset_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    g = _group(copy, "nk", mode="r+")
    x0 = g["initial_state"][:]
    x0[:, 1] += 1.0  # monetary_lag one annualized point off in every sample
    g["initial_state"][:] = x0
    spec = spec_from_manifest(manifest, "nk", copy)
    identity = check_identities(spec)
    assert not identity.passed and "free_path(initial_state)" in identity.message, identity.message
    resim = check_simulation(spec)
    assert not resim.passed and "initial_state" in resim.message, resim.message


def test_regimes_drawn_without_the_burn_in_are_refused(tmp_path, instance, burned):
    """world_arrays re-draws the regime chain of B + T periods; stored regimes that are not its last T
    (here: draws of a recipe without burn-in) are an error naming the array, not a silent mix."""
    from macro_data.pipeline.world_arrays import burn_in_metadata

    _, _, dataset_dir = burned
    g = _group(dataset_dir, "switching")
    world = get_world("switching")
    stored = {"regime": g["regime"][0:100]}
    out = burn_in_metadata(world, 7, g, stored, 0, 100, B, 24)
    assert out["regime"].shape == (100, B)
    wrong = {"regime": 1 - stored["regime"]}
    with pytest.raises(StorageError, match="stored 'regime' of samples 0..99 is not the chain drawn with burn_in 30"):
        burn_in_metadata(world, 7, g, wrong, 0, 100, B, 24)


def test_the_reader_labels_initial_state(burned):
    _, root, _ = burned
    ds = open_dataset(root / "tiny" / "0.1.0")
    x0 = ds["nk"].arrays["initial_state"]
    assert x0.dims == ("sample", "state_var")
    assert x0.coords["state_var"] == tuple(v.name for v in get_world("nk").state_variables)
    np.testing.assert_array_equal(x0[:10], _group(root / "tiny" / "0.1.0", "nk")["initial_state"][:10])
