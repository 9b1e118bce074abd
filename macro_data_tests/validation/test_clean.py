"""A clean dataset passes every check; the report document is complete, schema-valid and scored right."""

from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import pytest
import zarr

from macro_data import paths
from macro_data.compute import default_workers
from macro_data.validation.dataset import POOL_MIN_BYTES, decoded_bytes, validate_dataset, workers
from macro_data.validation.report import ReportError, build_report, headline, summary_text, validate_report
from macro_data.validation.results import GROUPS
from macro_data.worlds import WORLD_IDS, get_world

EXPECTED_PER_WORLD = {
    "integrity.draws",
    "integrity.arrays",
    "integrity.splits",
    "consistency.theta",
    "consistency.splits",
    "consistency.manifest",
    "consistency.train_stats",
    "reproducibility.draws",
    "reproducibility.simulation",
    "identities.model",
    "statistics.stationarity",
    "statistics.scale",
    "statistics.irf_decay",
    "statistics.rejections",
    "statistics.splits",
    "realism.us_moments",
}


@pytest.fixture(scope="module")
def validation(clean_dir, external_root):
    return validate_dataset(clean_dir, external_root=external_root)


@pytest.fixture(scope="module")
def doc(validation):
    return build_report(validation, run_id="test", code_version="test")


def test_every_check_runs_for_every_world(validation):
    for w in WORLD_IDS:
        names = {r.name for r in validation.for_world(w)}
        extra = {"statistics.zlb_binding"} if w == "zlb" else {"statistics.regimes"} if w == "switching" else set()
        assert names == EXPECTED_PER_WORLD | extra, w
    assert [r.name for r in validation.for_world(None)] == ["consistency.dataset"]


def test_clean_dataset_passes_error_and_statistics_checks(validation):
    for r in validation.results:
        if r.group != "realism":
            assert r.status == "pass", f"{r.world} {r.name}: {r.message}"


def test_a_small_dataset_is_validated_in_this_process_and_a_large_one_in_workers(clean_dir):
    manifest = json.loads((clean_dir / "manifest.json").read_text())
    worlds = list(manifest["worlds"])
    decoded = sum(
        zarr.open_array(clean_dir / spec["path"], mode="r").nbytes
        for w in worlds
        for spec in manifest["worlds"][w]["arrays"].values()
    )
    assert decoded_bytes(manifest, worlds) == decoded < POOL_MIN_BYTES
    assert workers(manifest, worlds) == 1
    assert workers(manifest, worlds, jobs=3) == 3
    large = copy.deepcopy(manifest)  # the same worlds with a thousand times the samples
    for w in worlds:
        for spec in large["worlds"][w]["arrays"].values():
            spec["shape"][0] *= 1000
    assert decoded_bytes(large, worlds) >= POOL_MIN_BYTES
    assert workers(large, worlds) == default_workers()
    theta = large["worlds"]["nk"]["arrays"]["theta"]
    with_theta = decoded_bytes(large, ["nk"])
    theta_bytes = int(np.prod(theta["shape"])) * np.dtype(theta["dtype"]).itemsize
    del theta["shape"]  # an entry the checks will reject counts nothing here
    assert decoded_bytes(large, ["nk"]) == with_theta - theta_bytes


def test_realism_compares_every_moment_with_real_data(validation):
    """Realism ran (not skipped) on the verified data; its figures hold the US value and its rank."""
    from macro_data.external import real_data

    for w in WORLD_IDS:
        r = next(r for r in validation.for_world(w) if r.group == "realism")
        assert r.status in ("pass", "warn"), r.message
        moments = r.figures["moments"]
        assert set(moments) == {"output", "inflation", "rate"}
        for ms in moments.values():
            for m in ("sd", "autocorr1"):
                assert 0.0 <= ms[m]["rank"] <= 100.0
        # the US value is the external layer's moment of the real table, not a number of ours
        assert moments["rate"]["sd"]["real"] == pytest.approx(validation.real.moments["rate"]["sd"])
    series = np.array(validation.real.series["rate"])
    assert validation.real.moments["rate"]["autocorr1"] == pytest.approx(real_data.autocorr1(series))
    assert validation.real.moments["rate"]["sd"] == pytest.approx(np.std(series, ddof=1))


def test_realism_rank_is_the_share_of_world_draws_below_the_us_value(validation, clean_dir):
    """Recompute one rank from the stored trajectories with numpy, independently of the module."""
    import zarr

    traj = zarr.open_array(str(clean_dir / "nk.zarr" / "trajectories"), mode="r")[:].astype(np.float64)
    sd = traj[:, :, 0].std(axis=1, ddof=1)
    us = validation.real.moments["output"]["sd"]
    r = next(r for r in validation.for_world("nk") if r.group == "realism")
    assert r.figures["moments"]["output"]["sd"]["rank"] == pytest.approx(100.0 * np.mean(sd < us))


def test_report_matches_its_schema_and_counts(doc):
    validate_report(doc)
    schema = json.loads(paths.schema_text("validation_report"))
    jsonschema.Draft202012Validator(schema).validate(doc)
    checks = [*doc["dataset_checks"], *(c for w in doc["worlds"].values() for c in w["checks"])]
    assert doc["summary"]["checks"] == len(checks)
    assert doc["summary"]["fail"] == 0 and doc["summary"]["skipped"] == 0
    assert set(doc["worlds"]) == set(WORLD_IDS)
    for e in doc["worlds"].values():
        assert set(e["groups"]) == set(GROUPS)
        assert e["summary"]["checks"] == len(e["checks"])
    assert doc["inputs"]["external_data"]["status"] == "used"
    prov = doc["provenance"]["worlds"]["nk"]
    assert set(prov["stages"]) == {"world_draws", "world_arrays", "world_splits", "world_stats"}
    assert all(len(h) == 64 for h in prov["arrays"].values())


def test_score_formula(doc):
    """score = round(100 (0.7 E + 0.3 W)), capped at 49 on any error-level failure (recomputed here)."""
    checks = [*doc["dataset_checks"], *(c for w in doc["worlds"].values() for c in w["checks"])]
    errors = [c for c in checks if c["severity"] == "error"]
    warns = [c for c in checks if c["severity"] == "warn" and c["status"] != "skipped"]
    e = sum(c["status"] == "pass" for c in errors) / len(errors)
    w = sum(c["status"] == "pass" for c in warns) / len(warns)
    assert doc["score"]["value"] == round(100 * (0.7 * e + 0.3 * w))
    assert doc["score"]["value"] >= 70 + 0  # no error-level failure: at least the error share


def test_score_capped_when_an_error_check_fails(validation):
    from macro_data.validation.results import CheckResult
    from macro_data.validation.score import score

    results = list(validation.results)
    assert score(results)["capped"] is False
    results.append(CheckResult("integrity.extra", "integrity", "nk", False, "broken"))
    s = score(results)
    assert s["capped"] is True and s["value"] <= 49


def test_schema_rejects_an_inconsistent_report(doc):
    bad = copy.deepcopy(doc)
    check = bad["worlds"]["nk"]["checks"][0]
    check["status"] = "pass"
    check["passed"] = False  # a pass that did not pass
    with pytest.raises(ReportError, match="passed"):
        validate_report(bad)
    bad = copy.deepcopy(doc)
    bad["worlds"]["nk"]["checks"][0]["severity"] = "warn"  # integrity is error-level
    with pytest.raises(ReportError):
        validate_report(bad)
    bad = copy.deepcopy(doc)
    bad["score"]["value"] = 101
    with pytest.raises(ReportError, match="score"):
        validate_report(bad)


def test_realism_skipped_without_external_data(clean_dir, tmp_path):
    v = validate_dataset(clean_dir, external_root=tmp_path)
    realism = [r for r in v.results if r.group == "realism"]
    assert len(realism) == len(WORLD_IDS)
    for r in realism:
        assert r.status == "skipped" and r.severity == "warn"
        assert r.message.startswith("skipped: no verified external data")
    doc = build_report(v)
    validate_report(doc)
    assert doc["summary"]["skipped"] == len(WORLD_IDS)
    # skipped checks are counted, never errors, and do not stop the rest from passing
    assert doc["status"] in ("pass", "warn")
    if doc["status"] == "pass":
        assert headline(doc) == f"PASSED ({len(WORLD_IDS)} checks skipped)"
    assert summary_text(doc).startswith(f"dataset tiny 0.1.0: {headline(doc)}, score")
    assert doc["inputs"]["external_data"]["status"] == "skipped"


def test_realism_skipped_when_the_cached_file_is_corrupt(clean_dir, tmp_path):
    from macro_data_tests.validation.conftest import place_real_data

    path = place_real_data(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"2009", b"2010", 1))
    v = validate_dataset(clean_dir, external_root=tmp_path)
    r = next(r for r in v.results if r.group == "realism")
    assert r.status == "skipped" and "sha256 mismatch" in r.message


def test_world_descriptions_in_manifest_match_code(clean_dir):
    doc = json.loads((clean_dir / "manifest.json").read_text())
    for w in WORLD_IDS:
        assert [p["name"] for p in doc["worlds"][w]["parameters"]] == list(get_world(w).parameter_names)
