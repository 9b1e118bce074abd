"""``macro-data validate PATH``: readable summary, report files, exit status for CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import zarr

from macro_data.cli import main
from macro_data.worlds import WORLD_IDS


def test_clean_dataset_exits_zero(dataset_copy, external_root, capsys):
    code = main(["validate", str(dataset_copy), "--external-root", str(external_root)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("dataset tiny 0.1.0: ")
    assert "0 failed" in out and "score" in out
    for w in WORLD_IDS:
        assert f"\n{w} " in out
    assert (dataset_copy / "validation_report.json").is_file() and (dataset_copy / "validation_report.html").is_file()
    doc = json.loads((dataset_copy / "validation_report.json").read_text())
    assert doc["summary"]["fail"] == 0 and doc["inputs"]["external_data"]["status"] == "used"


def test_corrupted_dataset_exits_non_zero_and_says_why(dataset_copy, capsys):
    arr = zarr.open_array(str(dataset_copy / "var.zarr" / "irfs"), mode="r+")
    arr[3, 0, 0, 0] = np.inf
    code = main(["validate", str(dataset_copy), "--no-write"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "var integrity.arrays" in out and "non-finite" in out and "sample=3" in out
    assert not (dataset_copy / "validation_report.json").exists()


def test_not_a_dataset_folder(tmp_path, capsys):
    code = main(["validate", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "manifest.json does not exist" in err and "dataset folder" in err


def test_strict_and_json(dataset_copy, tmp_path):
    """As CI runs it: a subprocess; --strict fails on the skipped realism check, --json prints the report."""
    script = Path(sys.executable).with_name("macro-data")  # the installed console script
    launcher = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import sys; from macro_data.cli import main; sys.exit(main())"]
    )
    cmd = [*launcher, "validate", str(dataset_copy), "--external-root", str(tmp_path), "--no-write", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["summary"]["skipped"] == len(WORLD_IDS)
    strict = subprocess.run(cmd + ["--strict"], capture_output=True, text=True, timeout=300)
    assert strict.returncode == 1
