"""The recipe language end to end: a dataset built with prior families, a Sobol design and measurement noise
records them in its manifest and passes validation (which redraws the Sobol design and re-derives the
noise), whose distribution test catches draws that do not follow the recorded prior; everything is
chunk-size independent and prefix-stable."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pytest
import yaml
import zarr
from scipy import stats

from macro_data import schemas
from macro_data.validation.consistency import check_theta
from macro_data.validation.dataset import validate_dataset
from macro_data.validation.spec import spec_from_manifest
from macro_data.worlds import get_world
from macro_data.worlds.priors import PriorSet
from macro_data_tests.conftest import TINY, build_dataset, build_world

PRIORS = {
    "nk": {
        "sigma": {"family": "loguniform", "low": 0.5, "high": 2.5},
        "beta": {"family": "fixed", "value": 0.99},
        "kappa": {"family": "beta", "a": 2.0, "b": 3.0},
        "phi_pi": {"family": "normal", "mean": 1.5, "sd": 0.5},
    },
    "var": {"rho_max": {"family": "beta", "a": 3.0, "b": 1.5}, "p": {"family": "fixed", "value": 2}},
}
N = 1500


NOISE = {"output": 0.5, "inflation": 0.2}  # top level: every world; var overrides it
VAR_NOISE = {"rate": 1.0}


def write(folder, chunk=100, n=N, **top):
    doc = {**TINY, "storage": {"chunk_samples": chunk, "clevel": 1}, "T": 12, "H": 4, "noise": NOISE, **top}
    doc["worlds"] = {w: {"n_samples": n, "priors": p} for w, p in PRIORS.items()}
    doc["worlds"]["var"]["noise"] = VAR_NOISE
    doc["worlds"]["nk"]["design"] = "sobol"  # var keeps the random design
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


CHECKS: list = []  # the Dagster asset check evaluations of the module's dataset


def build(instance, recipe, root, worlds=tuple(PRIORS), dataset=True):
    for w in worlds:
        CHECKS.extend(build_world(instance, recipe, root, w).get_asset_check_evaluations())
    if dataset:
        build_dataset(instance, recipe, root)
    return root / "tiny" / "0.1.0"


@pytest.fixture(scope="module")
def families_dataset(tmp_path_factory, instance):
    base = tmp_path_factory.mktemp("families")
    return build(instance, write(base), base / "root")


def test_the_asset_checks_pass(families_dataset):
    names = {e.check_name for e in CHECKS}
    assert len(names) >= 3, names
    # error-level checks (warning-level ones, e.g. realism without external data, may not pass here)
    errors = [e for e in CHECKS if e.severity == dg.AssetCheckSeverity.ERROR]
    assert {e.check_name for e in errors} >= {"consistency", "reproducibility"}, names
    failed = [(e.asset_key.to_user_string(), e.check_name, e.metadata) for e in errors if not e.passed]
    assert not failed, failed


def test_manifest_records_each_prior(families_dataset):
    manifest = json.loads((families_dataset / "manifest.json").read_text())
    assert not schemas.errors("manifest", manifest)
    nk = manifest["worlds"]["nk"]["priors"]
    assert nk["sigma"] == {"low": 0.5, "high": 2.5, "distribution": "loguniform"}
    assert nk["beta"] == {"low": 0.985, "high": 0.995, "distribution": "fixed", "value": 0.99}
    assert nk["phi_pi"] == {"low": 1.05, "high": 3.5, "distribution": "normal", "mean": 1.5, "sd": 0.5}
    assert nk["rho_i"] == {"low": 0.0, "high": 0.9, "distribution": "uniform"}
    assert manifest["worlds"]["var"]["priors"]["p"]["distribution"] == "fixed"
    assert manifest["worlds"]["nk"]["design"] == "sobol" and "design" not in manifest["worlds"]["var"]


def test_draws_follow_their_families(families_dataset):
    g = zarr.open_group(str(families_dataset / "nk.zarr"), mode="r")
    theta = g["theta"][:].astype(np.float64)
    nk = get_world("nk")
    assert (theta[:, nk.index("beta")] == np.float32(0.99)).all()
    ref = {
        "sigma": stats.loguniform(0.5, 2.5),
        "kappa": stats.beta(2.0, 3.0, loc=0.01, scale=0.49),
        "phi_pi": stats.truncnorm((1.05 - 1.5) / 0.5, (3.5 - 1.5) / 0.5, loc=1.5, scale=0.5),
    }
    for name, dist in ref.items():
        assert stats.kstest(theta[:, nk.index(name)], dist.cdf).pvalue > 1e-3, name
    v = zarr.open_group(str(families_dataset / "var.zarr"), mode="r")["theta"][:]
    assert (v[:, get_world("var").index("p")] == 2).all()


def test_validation_passes_and_tests_the_families(families_dataset):
    v = validate_dataset(families_dataset, external_root=None)
    bad = [r for r in v.results if not r.passed and not r.skipped and r.severity == "error"]
    assert not bad, [(r.name, r.world, r.message) for r in bad]
    theta = next(r for r in v.results if r.name == "consistency.theta" and r.world == "nk")
    assert set(theta.figures["prior_ks"]) >= {"sigma", "kappa", "phi_pi", "rho_i"}
    assert "beta" not in theta.figures["prior_ks"]  # fixed: checked exactly
    assert max(theta.figures["prior_ks"].values()) < theta.figures["prior_ks_tolerance"]


def test_draws_against_another_prior_fail(families_dataset):
    manifest = json.loads((families_dataset / "manifest.json").read_text())
    spec = spec_from_manifest(manifest, "nk", families_dataset)
    priors = spec.priors.as_manifest()
    priors["sigma"] = {"low": 0.5, "high": 2.5, "distribution": "uniform"}  # the data are loguniform
    priors["beta"] = {"low": 0.985, "high": 0.995, "distribution": "fixed", "value": 0.995}
    spec.priors = PriorSet.from_manifest(priors)
    r = check_theta(spec)
    assert not r.passed
    assert "'sigma'" in r.message and "Kolmogorov-Smirnov" in r.message
    assert r.figures["outside_priors"] == N  # every draw has beta = 0.99, not the 0.995 claimed


def test_observed_is_trajectories_plus_the_recorded_noise(families_dataset):
    manifest = json.loads((families_dataset / "manifest.json").read_text())
    assert manifest["worlds"]["nk"]["noise"] == {"output": 0.5, "inflation": 0.2, "rate": 0.0}
    assert manifest["worlds"]["var"]["noise"] == {"output": 0.0, "inflation": 0.0, "rate": 1.0}
    assert "observed" in manifest["worlds"]["nk"]["arrays"]
    for w, sd in (("nk", [0.5, 0.2, 0.0]), ("var", [0.0, 0.0, 1.0])):
        g = zarr.open_group(str(families_dataset / f"{w}.zarr"), mode="r")
        obs, traj = g["observed"], g["trajectories"]
        assert obs.shape == traj.shape and obs.dtype == np.float32
        assert list(obs.metadata.dimension_names) == ["sample", "time", "observable"]
        assert obs.attrs["units"] == traj.attrs["units"]
        r = obs[:].astype(np.float64) - traj[:].astype(np.float64)
        for j, s in enumerate(sd):
            if s == 0:
                assert (r[..., j] == 0).all()
            else:  # Gaussian with the recorded sd (independent reference: scipy's KS test)
                assert stats.kstest(r[..., j].ravel() / s, "norm").pvalue > 1e-3
    v = validate_dataset(families_dataset, external_root=None)
    ident = next(r for r in v.results if r.name == "identities.model" and r.world == "nk")
    assert ident.passed and abs(ident.figures["noise"]["output"]["sd_z"] - 1) < 0.02
    sim = next(r for r in v.results if r.name == "reproducibility.simulation" and r.world == "nk")
    assert sim.passed and sim.figures["mismatching_samples"]["observed"] == 0


def test_without_noise_there_is_no_observed_array(tmp_path):
    from macro_data.recipes import load_recipe

    path = write(tmp_path, noise={})
    doc = yaml.safe_load(path.read_text())
    del doc["worlds"]["var"]["noise"]
    path.write_text(yaml.safe_dump(doc))
    recipe = load_recipe(path)
    from macro_data.pipeline import world_arrays

    assert "observed" not in world_arrays.data_arrays("nk", recipe.world("nk"))
    assert "noise" not in recipe.document["worlds"]["nk"]


def test_other_chunking_and_a_longer_dataset_give_the_same_samples(families_dataset, tmp_path, instance):
    """Chunk-size independence and prefix stability of everything, the observed array included."""
    longer = build(instance, write(tmp_path, chunk=37, n=N + 700), tmp_path / "root", dataset=False)
    for w in PRIORS:
        a = zarr.open_group(str(families_dataset / f"{w}.zarr"), mode="r")
        b = zarr.open_group(str(longer / f"{w}.zarr"), mode="r")
        for name in ("theta", "shocks", "trajectories", "observed", "split"):
            np.testing.assert_array_equal(a[name][:], b[name][:N], err_msg=f"{w} {name}")


def test_the_reader_serves_observed(families_dataset):
    import macro_data.read as mdr

    ds = mdr.open_dataset(families_dataset)
    observed = ds["nk"].arrays["observed"]
    assert observed.dims == ("sample", "time", "observable") and observed.units["output"] == "percent"
    stored = zarr.open_group(str(families_dataset / "nk.zarr"), mode="r")["observed"]
    np.testing.assert_array_equal(observed[:10], stored[:10])
    view = ds.training_view("train", batch_size=64, seed=0, arrays=("theta", "observed"), seq_len=6, worlds=["nk"])
    world, batch = next(iter(view.iter(epoch=0)))
    assert world == "nk" and batch["observed"].shape == (64, 6, 3)
    start, index = int(batch["start"][0]), int(batch["index"][0])
    np.testing.assert_array_equal(batch["observed"][0], stored[index, start : start + 6])
