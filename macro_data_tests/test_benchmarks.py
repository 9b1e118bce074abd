"""The benchmark commands still run end to end (on tiny sizes; their targets are not checked here).

A benchmark that breaks silently (an asset gains a resource, a function is renamed) would leave its
figures unreproducible; these runs catch that. Exit code 1 means "below target", which tiny sizes
are allowed to be; anything else is a crash.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, str(BENCH / args[0]), *args[1:]], capture_output=True, text=True, timeout=600)
    assert out.returncode in (0, 1), out.stderr[-3000:]
    return out.stdout


def test_worlds_benchmark_runs():
    out = _run("worlds.py", "--n", "300", "--T", "20", "--H", "4", "--worlds", "nk", "zlb")
    assert [line.split()[0] for line in out.splitlines()[2:4]] == ["nk", "zlb"], out


def test_worlds_benchmark_runs_declared_worlds():
    model = BENCH.parent / "datasets" / "worlds" / "nk_habit.yaml"
    out = _run(
        "worlds.py", "--n", "300", "--T", "20", "--H", "4", "--worlds", "--world-files", str(model), "--repeats", "2"
    )
    row = out.splitlines()[2].split()
    assert row[:3] == ["nk_habit", "(6", "var)"] and row[4] == "10,000", out


@pytest.mark.slow
def test_build_benchmark_runs():
    out = _run("build.py", "--sizes", "1500", "3000", "--repeats", "2")
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1500", "3000"))]
    assert [r[0] for r in rows] == ["1500", "3000"], out
    assert "ratio at 3,000 samples" in out, out
    assert out.count("runs: asset") == 2, out  # each size: the times of both repeats


@pytest.mark.parametrize("extra", [[], ["--dask-sizes", "1500"]])
def test_scale_benchmark_runs(extra):
    out = _run("scale.py", "--sizes", "1500", *(extra or ["--dask-sizes"]))
    assert "local" in out and ("dask" in out) == bool(extra), out


def test_split_calibration_runs():
    out = _run("calibrate_splits.py", "nk", "--n", "2048")
    assert "slice" in out.lower(), out


def test_codec_benchmark_runs():
    out = _run("codecs.py", "--samples", "1024", "--repeats", "1")
    rows = [line for line in out.splitlines() if "ms/MB" in line]
    assert len(rows) == 4 and rows[0].startswith("zstd + bitshuffle (before)") and "1.00x" in rows[0], out


def test_read_benchmark_runs():
    out = _run("read.py", "--sizes", "2500", "--map-items", "2500", "--small-cache", "16")
    assert "mixed view, regime A" in out and "map-style, 1024 MiB" in out and "map-style, 16 MiB" in out, out
    assert "slowest mixed view" in out and "peak RSS by size" in out, out


@pytest.mark.slow
def test_paper_benchmark_runs(tmp_path):
    recipe = tmp_path / "small.yaml"
    recipe.write_text(
        "name: small\nversion: 0.1.0\nseed: 7\nT: 24\nH: 8\nstorage: {chunk_samples: 100, clevel: 1}\n"
        "worlds: {nk: {n_samples: 300}, rbc: {n_samples: 300}}\n"
    )
    out = _run("paper.py", "--recipe", str(recipe))
    for line in ("raw limit:", "build:", "validation:", "peak memory:", "ratio build / raw:"):
        assert line in out, out
    assert "worlds nk" in out or "worlds rbc" in out, out


@pytest.mark.slow
def test_paper_benchmark_repeats_and_reports_medians(tmp_path):
    recipe = tmp_path / "small.yaml"
    recipe.write_text("name: small\nversion: 0.1.0\nseed: 7\nT: 24\nH: 8\nworlds: {nk: {n_samples: 200}}\n")
    out = _run("paper.py", "--recipe", str(recipe), "--repeat", "2")
    assert out.count("build: ") == 2 and out.count("raw limit: ") == 2, out
    assert "medians of 2 rounds: raw " in out, out


def test_paper_benchmark_verdict_is_on_each_recipes_targets():
    spec = importlib.util.spec_from_file_location("paper_benchmark", BENCH / "paper.py")
    paper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paper)
    fine = {"raw_s": 11.0, "build_s": 42.0, "ratio": 3.8, "validation_s": 0.3, "peak_mib": 1050.0}
    assert paper.verdict("paper", fine) == []
    assert paper.verdict("paper", {**fine, "ratio": 4.1}) == ["ratio 4.10 > 4"]
    assert paper.verdict("paper", {**fine, "build_s": 61.0}) == ["build 61.0 s > 60 s"]
    assert paper.verdict("paper", {**fine, "peak_mib": 1440.0}) == ["peak memory 1440 MiB >= 1.5 GB (1430.5 MiB)"]
    default = {**fine, "build_s": 11.9, "ratio": 5.0}  # the default recipe has no ratio target
    assert paper.verdict("default", default) == []
    assert paper.verdict("default", {**default, "build_s": 12.1}) == ["build 12.1 s > 12 s"]


@pytest.mark.slow
def test_fixed_cost_benchmark_runs():
    out = _run("fixed_cost.py", "--repeats", "1")
    assert "baseline: python -c 'import dagster'" in out, out
    rows = [line.split()[:2] for line in out.splitlines() if line.startswith(("macro-data build", "dagster asset"))]
    assert rows == [["macro-data", "build"], ["dagster", "asset"]], out
