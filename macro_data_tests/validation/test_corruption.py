"""Datasets corrupted on purpose: the right check fails, with a message naming what and where.

Each test damages a private copy of the tiny dataset (built through the Dagster assets) the way a
disk, a careless edit or a forger would, validates the damaged world, and checks that the check
responsible fails while the other worlds stay clean.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from macro_data import splits
from macro_data.storage.arrays import content_hash
from macro_data.validation.dataset import read_manifest, validate_world
from macro_data.validation.realism import load_real_data
from macro_data.validation.reproducibility import subset_indices
from macro_data.validation.spec import spec_from_manifest
from macro_data.worlds import get_world

pytestmark = pytest.mark.slow  # a built dataset damaged many ways and validated each time


def validate(dataset_dir, world):
    manifest, _ = read_manifest(dataset_dir)
    spec = spec_from_manifest(manifest, world, dataset_dir)
    real, reason = load_real_data(dataset_dir.parent.parent)  # no external data here: realism is skipped
    return {r.name: r for r in validate_world(spec, real, reason)}


def assert_fails(results, name, *fragments):
    r = results[name]
    assert r.status == "fail", f"{name} should fail, got {r.status}: {r.message}"
    for f in fragments:
        assert f in r.message, f"{name}: {f!r} not in message {r.message!r}"


def open_r(dataset_dir, world, array):
    return zarr.open_array(str(dataset_dir / f"{world}.zarr" / array), mode="r+")


@pytest.fixture(scope="module")
def clean_results(clean_dir):
    """Checks that pass on the clean copy of each world used below (the baseline)."""
    out = {}
    for w in ("nk", "rbc", "var", "lss", "switching", "zlb"):
        out[w] = validate(clean_dir, w)
    return out


def test_baseline_error_level_checks_pass(clean_results):
    for w, results in clean_results.items():
        for name, r in results.items():
            if r.severity == "error":
                assert r.status == "pass", f"{w} {name}: {r.message}"


def test_flipped_byte_in_a_chunk(dataset_copy):
    chunk = dataset_copy / "nk.zarr" / "theta" / "c.1.0"  # samples 100-199 (chunks of 100)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))
    r = validate(dataset_copy, "nk")
    assert_fails(r, "integrity.draws", "array 'theta'", "samples 100-199", "does not decode", "checksum")
    assert r["integrity.draws"].figures["undecodable_chunks"] == 1
    assert r["integrity.arrays"].status == "pass" and r["integrity.splits"].status == "pass"


def test_nan_written_into_trajectories(dataset_copy):
    arr = open_r(dataset_copy, "rbc", "trajectories")
    arr[37, 5, 1] = np.nan
    r = validate(dataset_copy, "rbc")
    assert_fails(
        r, "integrity.arrays", "array 'trajectories'", "1 non-finite", "sample=37, time=5, observable=1", "content hash"
    )
    assert r["integrity.arrays"].figures["nonfinite_values"] == 1
    assert r["integrity.draws"].status == "pass"


def test_theta_out_of_bounds(dataset_copy):
    world = get_world("nk")
    arr = open_r(dataset_copy, "nk", "theta")
    arr[12, world.index("phi_pi")] = 5.0
    r = validate(dataset_copy, "nk")
    assert_fails(
        r,
        "consistency.theta",
        "1 of 300 parameter draws are outside their parameter bounds",
        "sample 12",
        "'phi_pi' = 5",
        "[1.05, 3.5]",
    )
    assert r["consistency.theta"].figures["out_of_bounds"] == 1


def test_sample_moved_from_slice_into_train(dataset_copy):
    arr = open_r(dataset_copy, "nk", "split")
    labels = arr[:]
    i = int(np.flatnonzero(labels == splits.LABELS["test_extrapolation_slice"])[0])
    arr[i] = splits.LABELS["train"]
    r = validate(dataset_copy, "nk")
    assert_fails(
        r,
        "consistency.splits",
        "held-out region leak: 1 samples",
        "labelled train",
        f"sample {i} is labelled train but lies in the held-out slice region",
        "phi_pi",
    )
    assert r["consistency.splits"].figures["leaks_into_pool"]["train"] == 1
    # the recorded index hashes no longer match either, and the content hash changed
    assert "index hash" in r["consistency.splits"].message
    assert_fails(r, "integrity.splits", "content hash")


def test_manifest_hash_edited(dataset_copy):
    path = dataset_copy / "manifest.json"
    doc = json.loads(path.read_text())
    doc["worlds"]["var"]["arrays"]["irfs"]["sha256"] = "0" * 64
    path.write_text(json.dumps(doc))
    r = validate(dataset_copy, "var")
    assert_fails(r, "integrity.arrays", "array 'irfs'", "differs from the manifest's 0000000000000000")
    assert_fails(r, "consistency.manifest", "array 'irfs': the manifest's sha256 is 0000")
    assert r["integrity.draws"].status == "pass"


def test_array_truncated(dataset_copy):
    arr = open_r(dataset_copy, "lss", "trajectories")
    arr.resize((250, *arr.shape[1:]))
    r = validate(dataset_copy, "lss")
    assert_fails(r, "integrity.arrays", "array 'trajectories' has shape [250, 24, 3], expected [300, 24, 3]")
    assert_fails(r, "consistency.manifest", "array 'trajectories': the manifest's shape is [300, 24, 3]")


def test_chunk_file_cut_short(dataset_copy):
    chunk = dataset_copy / "switching.zarr" / "shocks" / "c.2.0.0"
    chunk.write_bytes(chunk.read_bytes()[:-40])
    r = validate(dataset_copy, "switching")
    assert_fails(r, "integrity.draws", "array 'shocks'", "samples 200-299", "does not decode")


def test_missing_chunk_is_not_read_as_train(dataset_copy):
    (dataset_copy / "rbc.zarr" / "split" / "c.2").unlink()
    r = validate(dataset_copy, "rbc")
    assert_fails(r, "integrity.splits", "1 of 3 chunks are missing")


def test_tampered_shock_is_a_resimulation_mismatch(dataset_copy, clean_dir):
    manifest, _ = read_manifest(dataset_copy)
    idx = int(subset_indices(spec_from_manifest(manifest, "nk", dataset_copy))[3])
    arr = open_r(dataset_copy, "nk", "shocks")
    arr[idx, 0, 1] = arr[idx, 0, 1] + 0.5
    r = validate(dataset_copy, "nk")
    assert_fails(
        r, "reproducibility.draws", "shocks: 1 of 64 re-simulated samples differ", f"first: sample {idx} at (0, 1)"
    )
    assert r["reproducibility.draws"].figures["mismatching_samples"] == {"theta": 0, "shocks": 1}
    # the stored shock no longer produces the stored trajectory: the convolution identity breaks too
    assert_fails(r, "identities.model", "convolution identity: 1 of 64 samples violate", f"sample {idx}")
    # outputs re-simulated from the seed still equal the stored (untouched) outputs
    assert r["reproducibility.simulation"].status == "pass"


def test_tampered_trajectory_with_forged_hashes(dataset_copy):
    """Even with every hash rewritten to match, re-simulation from the seed exposes the change."""
    manifest, _ = read_manifest(dataset_copy)
    idx = int(subset_indices(spec_from_manifest(manifest, "zlb", dataset_copy))[0])
    arr = open_r(dataset_copy, "zlb", "trajectories")
    arr[idx, 3, 0] = arr[idx, 3, 0] + np.float32(1e-3)
    digest = content_hash(arr)
    arr.attrs["sha256"] = digest
    manifest["worlds"]["zlb"]["arrays"]["trajectories"]["sha256"] = digest
    (dataset_copy / "manifest.json").write_text(json.dumps(manifest))
    r = validate(dataset_copy, "zlb")
    assert r["integrity.arrays"].status == "pass" and r["consistency.manifest"].status == "pass"
    assert_fails(
        r,
        "reproducibility.simulation",
        "trajectories: 1 of 64 re-simulated samples differ",
        f"first: sample {idx} at (3, 0)",
    )


def test_regime_label_out_of_range(dataset_copy):
    arr = open_r(dataset_copy, "switching", "regime")
    arr[5, 7] = 3
    r = validate(dataset_copy, "switching")
    assert_fails(r, "identities.model", "regime labels: 1 values outside {0, 1}", "sample 5, t=7: 3")


def test_zlb_rate_below_its_bound(dataset_copy):
    world = get_world("zlb")
    r_ss = float(zarr.open_array(str(dataset_copy / "zlb.zarr" / "theta"), mode="r")[20, world.index("r_ss")])
    arr = open_r(dataset_copy, "zlb", "trajectories")
    arr[20, 4, 2] = -r_ss - 0.25
    r = validate(dataset_copy, "zlb")
    assert_fails(r, "identities.model", "periods with the rate below its bound -r_ss", "sample 20, t=4")


def test_deleted_chunk_fails_checks_without_crashing_the_validation(dataset_copy):
    """A missing theta chunk reads as NaN; the model code that splits need then cannot run on those rows."""
    (dataset_copy / "var.zarr" / "theta" / "c.0.0").unlink()
    r = validate(dataset_copy, "var")
    assert_fails(r, "integrity.draws", "array 'theta': 1 of 3 chunks are missing", "non-finite")
    assert_fails(r, "consistency.splits", "100 samples have non-finite parameters")
    assert_fails(r, "consistency.theta", "100 of 300 parameter draws are outside their parameter bounds")
    assert len(r) >= 15  # every check still produced a result
