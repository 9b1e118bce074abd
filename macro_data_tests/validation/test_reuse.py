"""The build's report reuses the world checks its world runs computed, and never trusts a result
whose key (data, code, environment) no longer matches; from scratch is the default elsewhere."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import zarr

from macro_data.storage.arrays import content_hash
from macro_data.validation import reuse
from macro_data.validation.dataset import REPORT_HTML, REPORT_JSON, validate_dataset
from macro_data.validation.report import all_checks, build_report, validate_report
from macro_data_tests.conftest import build_dataset, build_world, write_recipe

WORLDS = ("lss", "nk")
ALWAYS_NOW = {"consistency.manifest", "realism.us_moments"}


@pytest.fixture(scope="module")
def built(tmp_path_factory, instance):
    """Two worlds and the dataset run, through Dagster: the report is the build's own."""
    base = tmp_path_factory.mktemp("reuse")
    recipe = write_recipe(base, n=200, worlds=WORLDS)
    root = base / "root"
    for w in WORLDS:
        build_world(instance, recipe, root, w)
    build_dataset(instance, recipe, root)
    return root / "tiny" / "0.1.0"


@pytest.fixture
def copy(built, tmp_path):
    """A private copy (file times kept, as the key needs) to corrupt."""
    dest = tmp_path / "root" / "tiny" / "0.1.0"
    shutil.copytree(built, dest, ignore=shutil.ignore_patterns(".staging", ".locks"))
    return dest


def outcome(checks) -> dict:
    return {(c["world"], c["name"]): c["status"] for c in checks}


def origin(doc, world, name) -> dict:
    return next(c for c in all_checks(doc) if c["world"] == world and c["name"] == name)["origin"]


def test_build_report_reuses_the_asset_checks_and_agrees_with_a_scratch_run(built):
    doc = json.loads((built / REPORT_JSON).read_text())
    validate_report(doc)
    for w in WORLDS:
        stored = {p.stem for p in (built / reuse.FOLDER / w).glob("*.json")}
        assert stored == set(reuse.UNITS)  # every unit persisted by the world run's asset checks
        checks = doc["worlds"][w]["checks"]
        for c in checks:
            o = c["origin"]
            if c["name"] in ALWAYS_NOW:
                assert o["computed"] == "now", c["name"]
            else:
                assert o["computed"] == "reused", c["name"]
                assert o["by"].startswith("asset check ") and o["run_id"] and o["computed_at"]
    assert all(c["origin"]["computed"] == "now" for c in doc["dataset_checks"])
    html = (built / REPORT_HTML).read_text()
    assert "reused: asset check world_arrays / integrity" in html
    scratch = build_report(validate_dataset(built, jobs=1, persist=False))  # default: nothing reused
    validate_report(scratch)
    assert all(c["origin"]["computed"] == "now" for c in all_checks(scratch))
    assert outcome(all_checks(scratch)) == outcome(all_checks(doc))
    assert (scratch["status"], scratch["summary"], scratch["score"]) == (doc["status"], doc["summary"], doc["score"])
    assert doc["summary"]["fail"] == 0


def test_unchanged_copy_is_reused(copy):
    doc = build_report(validate_dataset(copy, jobs=1, reuse=True, persist=False))
    assert origin(doc, "nk", "integrity.arrays")["computed"] == "reused"
    assert origin(doc, "nk", "reproducibility.simulation")["computed"] == "reused"


def test_a_rewritten_chunk_is_recomputed_and_fails(copy):
    chunk = max((copy / "nk.zarr" / "trajectories").glob("c.*"), key=os.path.getsize)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    doc = build_report(validate_dataset(copy, jobs=1, reuse=True, persist=False))
    assert origin(doc, "nk", "integrity.arrays")["computed"] == "now"
    assert outcome(all_checks(doc))[("nk", "integrity.arrays")] == "fail"
    assert origin(doc, "nk", "integrity.draws")["computed"] == "reused"  # the draws did not change
    assert origin(doc, "lss", "integrity.arrays")["computed"] == "reused"


def test_an_array_rewritten_with_its_hash_updated_is_recomputed_and_fails(copy):
    """As a stage rerun with different code would leave it: new values, a matching recorded hash."""
    theta = zarr.open_array(str(copy / "lss.zarr" / "theta"), mode="r+")
    theta[...] = np.asarray(theta[...]) * np.float32(1.001)
    theta.attrs["sha256"] = content_hash(theta)
    doc = build_report(validate_dataset(copy, jobs=1, reuse=True, persist=False))
    assert origin(doc, "lss", "reproducibility.draws")["computed"] == "now"
    assert outcome(all_checks(doc))[("lss", "reproducibility.draws")] == "fail"
    assert origin(doc, "lss", "integrity.draws")["computed"] == "now"
    assert origin(doc, "nk", "reproducibility.draws")["computed"] == "reused"


def test_silent_bit_rot_is_what_reuse_does_not_see_and_scratch_does(copy):
    """The documented limit: bytes changed with the file's size and time kept (as media rot would)."""
    chunk = max((copy / "nk.zarr" / "trajectories").glob("c.*"), key=os.path.getsize)
    st = chunk.stat()
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns))
    reused = build_report(validate_dataset(copy, jobs=1, reuse=True, persist=False))
    assert origin(reused, "nk", "integrity.arrays")["computed"] == "reused"
    scratch = build_report(validate_dataset(copy, jobs=1, persist=False))
    assert outcome(all_checks(scratch))[("nk", "integrity.arrays")] == "fail"


def _rewrite(path, change):
    doc = json.loads(path.read_text())
    change(doc)
    doc["key_sha256"] = reuse.digest(doc["key"])
    path.write_text(json.dumps(doc))


def _fail(doc):
    for r in doc["results"]:
        r["passed"], r["status"], r["message"] = False, "fail", "planted"


def test_a_result_of_another_code_version_is_ignored(copy):
    path = copy / reuse.FOLDER / "nk" / "integrity.arrays.json"

    def other_code(doc):
        _fail(doc)
        doc["key"]["code_version"] = "world_checks-000000000000"

    _rewrite(path, other_code)
    doc = build_report(validate_dataset(copy, jobs=1, reuse=True, persist=False))
    assert origin(doc, "nk", "integrity.arrays")["computed"] == "now"
    assert outcome(all_checks(doc))[("nk", "integrity.arrays")] == "pass"


def test_a_matching_result_is_taken_as_stored_even_when_failing(copy):
    """The reuse is real (what is stored under the current key is reported, pass or fail)."""
    _rewrite(copy / reuse.FOLDER / "nk" / "identities.model.json", _fail)
    doc = build_report(validate_dataset(copy, jobs=1, reuse=True, persist=False))
    assert outcome(all_checks(doc))[("nk", "identities.model")] == "fail"
    assert origin(doc, "nk", "identities.model")["computed"] == "reused"


def test_unreadable_or_missing_results_are_recomputed_and_rewritten(copy):
    (copy / reuse.FOLDER / "nk" / "consistency.theta.json").write_text("{not json")
    (copy / reuse.FOLDER / "nk" / "consistency.splits.json").unlink()
    doc = build_report(validate_dataset(copy, jobs=1, reuse=True))
    for name in ("consistency.theta", "consistency.splits"):
        assert origin(doc, "nk", name)["computed"] == "now"
        assert outcome(all_checks(doc))[("nk", name)] == "pass"
    again = build_report(validate_dataset(copy, jobs=1, reuse=True, persist=False))
    assert origin(again, "nk", "consistency.theta")["computed"] == "reused"
    assert origin(again, "nk", "consistency.theta")["by"] == "validation report"


def test_a_manifest_that_disagrees_with_the_store_is_not_covered_by_a_reused_result(copy):
    """Integrity computed before the manifest existed is reused only if the manifest lists the store's hashes."""
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["worlds"]["nk"]["arrays"]["trajectories"]["sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    doc = build_report(validate_dataset(copy, jobs=1, reuse=True, persist=False))
    assert origin(doc, "nk", "integrity.arrays")["computed"] == "now"
    assert outcome(all_checks(doc))[("nk", "integrity.arrays")] == "fail"


def test_fully_reusable_worlds_run_in_process_and_the_others_in_workers_in_manifest_order(copy):
    chunk = max((copy / "nk.zarr" / "trajectories").glob("c.*"), key=os.path.getsize)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    v = validate_dataset(copy, jobs=2, reuse=True, persist=False)
    assert [r.world for r in v.results if r.world] == sorted(
        (r.world for r in v.results if r.world), key=list(v.manifest["worlds"]).index
    )
    doc = build_report(v)
    assert origin(doc, "nk", "integrity.arrays")["computed"] == "now"
    assert outcome(all_checks(doc))[("nk", "integrity.arrays")] == "fail"
    assert origin(doc, "lss", "integrity.arrays")["computed"] == "reused"
