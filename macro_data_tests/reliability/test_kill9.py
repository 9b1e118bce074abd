"""kill -9 at seeded points of every stage: the previous good version survives, readers never see
debris, and re-running gives exactly what an uninterrupted run gives.

Each trial starts from a copy of a good dataset built from recipe A and kills a rebuild of one
stage of world nk at a seeded point (see ``victim.POINTS``), in one of two ways, alternating:

* **replace**: the stage is rebuilt from recipe B (another seed, so every array changes) with
  ``replace``, so it writes into the version's replacement area. The published version must stay
  entirely A's; in the replacement area the stage's arrays are absent or entirely B's, never a
  mix or a partial array; a clean re-run (and, for the manifest, the swap) must give B's hashes.
* **in place**: the stage is rebuilt from recipe A with ``force``: the published arrays must
  hash to A's after the kill (a partial or mixed publish would not) and after a re-run.

Every trial also leaves no staging debris once re-run. A separate test kills multi-region stages
part-way and checks that the next run resumes from the last completed region, hash-identical.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import zarr

from macro_data.compute import ComputeConfig
from macro_data.pipeline import manifest, world_arrays, world_draws, world_splits
from macro_data.pipeline.common import RunInfo
from macro_data.recipes import load_recipe
from macro_data.storage.arrays import content_hash
from macro_data_tests.conftest import write_recipe

pytestmark = pytest.mark.slow
TRIALS_PER_STAGE = 20
WORLD = "nk"
STAGE_FNS = {
    "world_draws": world_draws.build_world_draws,
    "world_arrays": world_arrays.build_world_arrays,
    "world_splits": world_splits.build_world_splits,
}
STAGE_ARRAYS = {
    "world_draws": world_draws.output_arrays(WORLD),
    "world_arrays": world_arrays.output_arrays(WORLD),
    "world_splits": world_splits.output_arrays(WORLD),
}
# Points that lie on each stage's path, and how many calls of the wrapped function a run makes at most
POINTS = {
    "world_draws": ["drawing", "chunk-write", "mid-chunk-write", "stamp", "before-exchange", "after-exchange"],
    "world_arrays": ["simulating", "chunk-write", "mid-chunk-write", "stamp", "before-exchange", "after-exchange"],
    "world_splits": ["chunk-write", "mid-chunk-write", "stamp", "before-exchange", "after-exchange"],
    "dataset_manifest": ["manifest-build", "manifest-replace"],
}
MAX_K = {
    "drawing": 3,
    "simulating": 3,
    "chunk-write": 9,
    "mid-chunk-write": 9,
    "stamp": 1,
    "before-exchange": 1,
    "after-exchange": 1,
    "manifest-build": 1,
    "manifest-replace": 1,
}


def _stage_hashes(dataset: Path, stage: str) -> dict[str, str]:
    g = zarr.open_group(str(dataset / f"{WORLD}.zarr"), mode="r")
    return {n: content_hash(g[n]) for n in STAGE_ARRAYS[stage] if g[n].ndim and g[n].dtype.kind != "T"}


def _build(recipe, root, stages=("world_draws", "world_arrays", "world_splits"), with_manifest=True):
    for s in stages:
        STAGE_FNS[s](recipe, WORLD, root)
    if with_manifest:
        manifest.build_manifest(recipe, root)


def _replacement(root: Path) -> Path:
    return root / "tiny" / ".replace" / "0.1.0"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("kill9")
    kw = dict(n=700, worlds=(WORLD,), T=12, H=3, storage={"chunk_samples": 128, "clevel": 1})
    path_a = write_recipe(base / "a", seed=7, **kw)
    path_b = write_recipe(base / "b", seed=8, **kw)
    a, b = load_recipe(path_a), load_recipe(path_b)
    _build(a, base / "templateA")
    _build(b, base / "refB")
    replace = RunInfo(replace=True)
    # Starting points: B's draws being built as A's replacement (for killing B's arrays/splits), all of
    # B's stages built as the replacement (for killing B's manifest and the swap).
    shutil.copytree(base / "templateA", base / "templateA_drawsB")
    world_draws.build_world_draws(b, WORLD, base / "templateA_drawsB", replace)
    shutil.copytree(base / "templateA", base / "templateA_stagesB")
    for s in STAGE_FNS.values():
        s(b, WORLD, base / "templateA_stagesB", replace)
    ds = lambda root: root / "tiny" / "0.1.0"  # noqa: E731
    return {
        "a": a,
        "b": b,
        "path_a": path_a,
        "path_b": path_b,
        "base": base,
        "ds": ds,
        "old": {s: _stage_hashes(ds(base / "templateA"), s) for s in STAGE_FNS},
        "new": {s: _stage_hashes(ds(base / "refB"), s) for s in STAGE_FNS},
        "manifest_old": (ds(base / "templateA") / "manifest.json").read_text(),
        "manifest_new_hashes": json.loads((ds(base / "refB") / "manifest.json").read_text())["worlds"][WORLD]["arrays"],
    }


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen(
        [sys.executable, "-m", "macro_data_tests.reliability.victim"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    yield proc
    proc.stdin.close()
    proc.wait(timeout=30)


def _trial(server, spec: dict) -> dict:
    server.stdin.write(json.dumps(spec) + "\n")
    server.stdin.flush()
    return json.loads(server.stdout.readline())


def _reader_view_is_clean(dataset: Path) -> None:
    visible = {p.name for p in dataset.iterdir() if not p.name.startswith(".")}
    assert visible <= {"manifest.json", "recipe.json", "README.md", f"{WORLD}.zarr"}, visible
    group = {p.name for p in (dataset / f"{WORLD}.zarr").iterdir()}
    expected = {n for names in STAGE_ARRAYS.values() for n in names} | {"zarr.json"}
    assert group <= expected, group - expected


@pytest.mark.parametrize("stage", ["world_draws", "world_arrays", "world_splits", "dataset_manifest"])
def test_kill9_trials(setup, server, tmp_path, stage):
    rng = random.Random(f"kill9-{stage}")
    template = {
        "world_draws": "templateA",
        "world_arrays": "templateA_drawsB",
        "world_splits": "templateA_drawsB",
        "dataset_manifest": "templateA_stagesB",
    }[stage]
    outcomes = {"killed": 0, "finished": 0}
    for trial in range(TRIALS_PER_STAGE):
        point = rng.choice(POINTS[stage])
        k = rng.randint(1, MAX_K[point])
        replacing = trial % 2 == 0
        root = tmp_path / f"t{trial}"
        shutil.copytree(setup["base"] / (template if replacing else "templateA"), root)
        dataset = setup["ds"](root)
        recipe_path, recipe = (setup["path_b"], setup["b"]) if replacing else (setup["path_a"], setup["a"])
        spec = {"stage": stage, "world": WORLD, "recipe": str(recipe_path), "root": str(root), "point": point, "k": k}
        result = _trial(server, {**spec, "replace": replacing, "force": not replacing})
        assert result in ({"signal": 9}, {"exit": 0}), (point, k, result)
        outcomes["killed" if result.get("signal") == 9 else "finished"] += 1
        _reader_view_is_clean(dataset)
        if stage == "dataset_manifest":
            text = (dataset / "manifest.json").read_text()
            json.loads(text)  # always a whole, parseable manifest
            swapped = replacing and not _replacement(root).exists()
            if replacing and not swapped:
                assert text == setup["manifest_old"], f"the published manifest changed before the swap ({point} #{k})"
            manifest.build_manifest(recipe, root, replace=replacing)
            got = {
                k2: v["sha256"]
                for k2, v in json.loads((dataset / "manifest.json").read_text())["worlds"][WORLD]["arrays"].items()
            }
            want = (
                setup["manifest_new_hashes"]
                if replacing
                else json.loads(setup["manifest_old"])["worlds"][WORLD]["arrays"]
            )
            assert got == {k2: v["sha256"] for k2, v in want.items()}
        elif replacing:
            assert _stage_hashes(dataset, stage) == setup["old"][stage], f"published version touched ({point} #{k})"
            shadow = _replacement(root)
            present = (shadow / f"{WORLD}.zarr").is_dir() and set(STAGE_ARRAYS[stage]) <= {
                p.name for p in (shadow / f"{WORLD}.zarr").iterdir()
            }
            if present:
                assert _stage_hashes(shadow, stage) == setup["new"][stage], f"mixed or partial after {point} #{k}"
            STAGE_FNS[stage](recipe, WORLD, root, RunInfo(replace=True))  # re-run, uninterrupted
            assert _stage_hashes(shadow, stage) == setup["new"][stage]
            assert _stage_hashes(dataset, stage) == setup["old"][stage]
        else:
            assert _stage_hashes(dataset, stage) == setup["old"][stage], f"mixed or partial after {point} #{k}"
            STAGE_FNS[stage](recipe, WORLD, root, RunInfo(force=True))
            assert _stage_hashes(dataset, stage) == setup["old"][stage]
        for folder in (dataset, _replacement(root)):
            staging = folder / ".staging" / WORLD
            leftovers = [p.name for p in staging.iterdir()] if staging.exists() else []
            assert leftovers == [], leftovers
        shutil.rmtree(root)
    assert outcomes["killed"] >= TRIALS_PER_STAGE // 2, outcomes  # most trials really were killed
    print(f"{stage}: {outcomes}")


RESUME_TRIALS = 6


@pytest.mark.parametrize("stage", ["world_draws", "world_arrays"])
def test_a_killed_stage_resumes_from_its_last_completed_region(setup, server, tmp_path, stage):
    """Multi-region stages killed after k completed regions: the next run keeps those regions and
    computes only the rest; the result is hash-identical to an uninterrupted run."""
    kw = dict(n=4096, worlds=(WORLD,), T=12, H=3, storage={"chunk_samples": 128, "clevel": 1})
    path = write_recipe(tmp_path / "r", seed=11, **kw)
    recipe = load_recipe(path)
    reference = tmp_path / "reference"
    _build(recipe, reference, with_manifest=False)
    want = _stage_hashes(setup["ds"](reference), stage)
    compute = ComputeConfig(region_samples=512)  # 8 regions
    rng = random.Random(f"resume-{stage}")
    resumed = []
    for trial in range(RESUME_TRIALS):
        root = tmp_path / f"t{trial}"
        if stage == "world_arrays":
            world_draws.build_world_draws(recipe, WORLD, root)
        k = rng.randint(1, 7)
        spec = {
            "stage": stage,
            "world": WORLD,
            "recipe": str(path),
            "root": str(root),
            "point": "region-done",
            "k": k,
            "region_samples": 512,
        }
        assert _trial(server, spec) == {"signal": 9}
        if stage == "world_arrays":  # a job runs the draws first: up to date, they leave the arrays' area alone
            assert world_draws.build_world_draws(recipe, WORLD, root).up_to_date
        result = STAGE_FNS[stage](recipe, WORLD, root, RunInfo(compute=compute))
        assert result.resumed_samples == 512 * k, (k, result.resumed_samples)  # every completed region kept
        assert _stage_hashes(setup["ds"](root), stage) == want
        assert [p.name for p in (setup["ds"](root) / ".staging" / WORLD).iterdir()] == []
        resumed.append(result.resumed_samples)
        shutil.rmtree(root)
    print(f"{stage}: resumed samples per trial {resumed}")
