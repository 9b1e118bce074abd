"""Concurrent runs of one partition, and disk errors part-way through a write."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import zarr

from macro_data.errors import StorageError
from macro_data.pipeline import world_arrays, world_draws, world_splits
from macro_data.recipes import load_recipe
from macro_data.storage.arrays import content_hash
from macro_data.storage.locations import stored_bytes
from macro_data_tests.conftest import write_recipe
from macro_data_tests.reliability.small_disk import run_stage_on_small_disk

pytestmark = pytest.mark.slow
WORLD = "nk"
CONCURRENT_TRIALS = 10

RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from macro_data.errors import MacroDataError
    from macro_data.recipes import load_recipe
    from macro_data.pipeline import world_draws, world_arrays, world_splits
    recipe, root, go = load_recipe(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.001)
    try:
        for fn in (world_draws.build_world_draws, world_arrays.build_world_arrays, world_splits.build_world_splits):
            fn(recipe, "nk", root)
    except MacroDataError as exc:
        sys.exit(f"{type(exc).__name__}: {exc}")
""")


def _hashes(dataset: Path, names) -> dict:
    g = zarr.open_group(str(dataset / f"{WORLD}.zarr"), mode="r")
    return {n: content_hash(g[n]) for n in names}


@pytest.fixture(scope="module")
def recipes(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    kw = dict(n=2000, worlds=(WORLD,), T=16, H=4, storage={"chunk_samples": 256, "clevel": 1})
    paths = [write_recipe(base / "a", seed=7, **kw), write_recipe(base / "b", seed=8, **kw)]
    refs = []
    for i, p in enumerate(paths):
        r = load_recipe(p)
        for fn in (world_draws.build_world_draws, world_arrays.build_world_arrays, world_splits.build_world_splits):
            fn(r, WORLD, base / f"ref{i}")
        ds = base / f"ref{i}" / "tiny" / "0.1.0"
        refs.append(
            {
                stage: _hashes(ds, names)
                for stage, names in (
                    ("draws", ["theta", "shocks"]),
                    ("arrays", ["trajectories", "irfs"]),
                    ("splits", ["split"]),
                )
            }
        )
    return paths, refs


def test_two_runs_of_the_same_partition_leave_one_intact_version_per_stage(tmp_path, recipes):
    paths, refs = recipes
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    outcomes = []
    for trial in range(CONCURRENT_TRIALS):
        root = tmp_path / f"t{trial}"
        go = tmp_path / f"go{trial}"
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), str(p), str(root), str(go)], stderr=subprocess.PIPE, text=True
            )
            for p in paths
        ]
        time.sleep(1.5)  # both imported and waiting
        go.touch()
        codes = [p.wait(timeout=120) for p in procs]
        errors = [p.stderr.read() for p in procs]
        ds = root / "tiny" / "0.1.0"
        # two recipes for one version: the first to record its recipe builds, the other is refused with
        # the release error (naming the field that differs) before it writes anything
        assert sorted(codes) == [0, 1], (codes, [e[-2000:] for e in errors])
        loser = errors[codes.index(1)]
        assert "ReleaseError" in loser and "fields that differ: seed:" in loser, loser[-2000:]
        got = {
            stage: _hashes(ds, names)
            for stage, names in (
                ("draws", ["theta", "shocks"]),
                ("arrays", ["trajectories", "irfs"]),
                ("splits", ["split"]),
            )
        }
        for stage in got:  # never a mix of the two runs inside a stage's arrays
            assert got[stage] in (refs[0][stage], refs[1][stage]), (trial, stage)
        g = zarr.open_group(str(ds / f"{WORLD}.zarr"), mode="r")
        draws_version = g["theta"].attrs["macro_data"]["data_version"]
        consistent = all(
            g[n].attrs["macro_data"]["upstream"]["world_draws"]["data_version"] == draws_version
            for n in ("trajectories", "split")
        )
        assert consistent
        winner = codes.index(0)
        assert all(got[stage] == refs[winner][stage] for stage in got)
        outcomes.append(tuple(codes))
    print(f"concurrent trials (exit codes of the runs of recipes A and B): {outcomes}")


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.95])
@pytest.mark.parametrize("stage", ["world_draws", "world_arrays"])
def test_disk_full_part_way_keeps_previous_version_and_names_the_path(tmp_path, recipes, fraction, stage):
    """A forced rebuild of a published stage runs out of disk: the published arrays stay whole."""
    paths, refs = recipes
    owned = world_draws.output_arrays(WORLD) if stage == "world_draws" else world_arrays.output_arrays(WORLD)
    ref = paths[0].parent.parent / "ref0" / "tiny" / "0.1.0" / f"{WORLD}.zarr"
    total = sum(stored_bytes(str(ref / n)) for n in owned)
    free = int(fraction * total)  # the disk fills this far into the stage's writes
    a = load_recipe(paths[0])
    root = tmp_path / "root"
    for fn in (world_draws.build_world_draws, world_arrays.build_world_arrays):
        fn(a, WORLD, root)
    names = ["trajectories", "irfs"] if stage == "world_arrays" else ["theta", "shocks"]
    before = _hashes(root / "tiny" / "0.1.0", names)
    seen = run_stage_on_small_disk(tmp_path, root, free, stage, paths[0], WORLD, force=True)
    assert seen["error"] is not None, "the stage succeeded on a full disk"
    assert "No space left on device" in seen["error"] and seen["dataset"] in seen["error"], seen["error"]
    assert {n: seen["hashes"][n] for n in names} == before
    assert seen["staging"] == []


def test_unwritable_staging_area_fails_clearly(tmp_path, recipes):
    paths, _ = recipes
    a = load_recipe(paths[0])
    ds = tmp_path / "root" / "tiny" / "0.1.0"
    ds.mkdir(parents=True)
    (ds / ".staging").write_text("not a folder")  # like a read-only or broken mount: mkdir fails
    with pytest.raises(StorageError, match=r"cannot create the staging area .*\.staging"):
        world_draws.build_world_draws(a, WORLD, tmp_path / "root")
    assert not (ds / f"{WORLD}.zarr").exists()


def test_write_errors_are_reported_with_world_and_region(tmp_path, recipes):
    paths, _ = recipes
    seen = run_stage_on_small_disk(tmp_path, tmp_path / "empty", 50_000, "world_draws", paths[0], WORLD)
    assert "world_draws region [0, " in seen["error"] and "'nk'" in seen["error"], seen["error"]
    assert json.dumps(seen["error"])  # a plain message, printable in the UI
