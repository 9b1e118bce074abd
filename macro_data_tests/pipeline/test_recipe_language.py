"""The recipe language end to end: a dataset built with prior families records them in its manifest and
passes validation, whose distribution test catches draws that do not follow the recorded prior."""

from __future__ import annotations

import json

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


def write(folder, chunk=100, n=N, **top):
    doc = {**TINY, "storage": {"chunk_samples": chunk, "clevel": 1}, "T": 12, "H": 4, **top}
    doc["worlds"] = {w: {"n_samples": n, "priors": p} for w, p in PRIORS.items()}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def build(instance, recipe, root, worlds=tuple(PRIORS), dataset=True):
    for w in worlds:
        build_world(instance, recipe, root, w)
    if dataset:
        build_dataset(instance, recipe, root)
    return root / "tiny" / "0.1.0"


@pytest.fixture(scope="module")
def families_dataset(tmp_path_factory, instance):
    base = tmp_path_factory.mktemp("families")
    return build(instance, write(base), base / "root")


def test_manifest_records_each_prior(families_dataset):
    manifest = json.loads((families_dataset / "manifest.json").read_text())
    assert not schemas.errors("manifest", manifest)
    nk = manifest["worlds"]["nk"]["priors"]
    assert nk["sigma"] == {"low": 0.5, "high": 2.5, "distribution": "loguniform"}
    assert nk["beta"] == {"low": 0.985, "high": 0.995, "distribution": "fixed", "value": 0.99}
    assert nk["phi_pi"] == {"low": 1.05, "high": 3.5, "distribution": "normal", "mean": 1.5, "sd": 0.5}
    assert nk["rho_i"] == {"low": 0.0, "high": 0.9, "distribution": "uniform"}
    assert manifest["worlds"]["var"]["priors"]["p"]["distribution"] == "fixed"


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
