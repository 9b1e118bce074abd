"""Re-simulation across environments: bit for bit where the numerics agree, a stated tolerance where not.

The tiny dataset is recomputed here in the environment that built it; "another environment" is
recorded by rewriting the fingerprint a stage stored with its arrays (as if the data came from a
machine with another BLAS). A float32 one-ulp change must fail in the same environment and pass
across environments; a real error (1 % of the sample's scale) must fail in both.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from macro_data import environment
from macro_data.validation import reproducibility
from macro_data.validation.dataset import read_manifest
from macro_data.validation.spec import spec_from_manifest

WORLD = "nk"


def _spec(dataset):
    manifest, _ = read_manifest(dataset)
    return spec_from_manifest(manifest, WORLD, dataset)


def _nudge(dataset, name: str, sample: int, how) -> None:
    array = zarr.open_array(str(dataset / f"{WORLD}.zarr" / name), mode="r+")
    row = np.asarray(array[sample : sample + 1])
    array[sample : sample + 1] = how(row)


def _record_other_environment(dataset, name: str) -> None:
    array = zarr.open_array(str(dataset / f"{WORLD}.zarr" / name), mode="r+")
    prov = dict(array.attrs["macro_data"])
    env = dict(prov["environment"])
    env["packages"] = {**env["packages"], "numpy": "0.0-elsewhere"}
    prov["environment"] = env
    array.attrs["macro_data"] = prov


def one_ulp(row):
    out = row.copy()
    flat = out.reshape(-1)
    k = int(np.argmax(np.abs(flat)))
    flat[k] = np.nextafter(flat[k], np.float32(np.inf))
    return out


def one_percent(row):
    out = row.copy()
    flat = out.reshape(-1)
    k = int(np.argmax(np.abs(flat)))
    flat[k] += np.float32(0.01) * np.abs(flat[k])
    return out


def _simulation_check(dataset):
    spec = _spec(dataset)
    drawn = reproducibility.redraw(spec, reproducibility.subset_indices(spec))
    return reproducibility.check_simulation(spec, drawn, reproducibility.resimulate(spec, drawn))


def test_the_builder_and_the_validator_agree_on_the_environment(clean_dir):
    stored = zarr.open_array(str(clean_dir / f"{WORLD}.zarr" / "trajectories"), mode="r").attrs["macro_data"]
    assert environment.numerically_equal(stored["environment"], environment.fingerprint())
    r = _simulation_check(clean_dir)
    assert r.status == "pass" and r.inputs["comparison"].startswith("bit-identical")


@pytest.mark.parametrize(
    "other_environment, change, passes",
    [
        (False, one_ulp, False),  # same numerics: one float32 ulp is a difference
        (True, one_ulp, True),  # another BLAS may legitimately differ in the last bit
        (True, one_percent, False),  # a real error fails whatever the environment
        (False, one_percent, False),
    ],
)
def test_cross_environment_tolerance_never_passes_a_wrong_sample(dataset_copy, other_environment, change, passes):
    sample = int(reproducibility.subset_indices(_spec(dataset_copy))[0])
    _nudge(dataset_copy, "trajectories", sample, change)
    if other_environment:
        _record_other_environment(dataset_copy, "trajectories")
    r = _simulation_check(dataset_copy)
    assert (r.status == "pass") is passes, r.message
    if other_environment:
        assert "another environment" in r.inputs["comparison"]
        assert any("packages.numpy" in d for d in r.inputs["environment_differences"])
    if passes:
        assert r.figures["samples_within_tolerance"]["trajectories"] == 1
    else:
        assert r.figures["mismatching_samples"]["trajectories"] == 1


def test_draws_tolerate_float_bits_but_compare_flags_exactly_across_environments(dataset_copy):
    world = "switching"
    array = zarr.open_array(str(dataset_copy / f"{world}.zarr" / "theta"), mode="r+")
    prov = dict(array.attrs["macro_data"])
    prov["environment"] = {**prov["environment"], "cpu": "another CPU model"}
    array.attrs["macro_data"] = prov
    manifest, _ = read_manifest(dataset_copy)
    spec = spec_from_manifest(manifest, world, dataset_copy)
    sample = int(reproducibility.subset_indices(spec)[0])
    theta = zarr.open_array(str(dataset_copy / f"{world}.zarr" / "theta"), mode="r+")
    theta[sample : sample + 1] = one_ulp(np.asarray(theta[sample : sample + 1]))
    assert reproducibility.check_draws(spec).status == "pass"  # a float draw within tolerance
    regime = zarr.open_array(str(dataset_copy / f"{world}.zarr" / "regime"), mode="r+")
    row = np.asarray(regime[sample : sample + 1])
    row[0, 0] = 1 - row[0, 0]
    regime[sample : sample + 1] = row
    r = reproducibility.check_draws(spec)
    assert r.status == "fail" and r.figures["mismatching_samples"]["regime"] == 1, r.message
