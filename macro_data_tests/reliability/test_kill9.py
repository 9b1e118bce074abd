"""kill -9 at seeded points of every stage: the previous good version survives, readers never see
debris, and re-running gives exactly what an uninterrupted run gives.

Each trial starts from a copy of a good dataset built from recipe A and rebuilds one stage of
world nk from recipe B (another seed, so every array changes), killing the process at a seeded
point (see ``victim.POINTS``). Afterwards the stage's arrays must be entirely A's (old, intact) or
entirely B's (new, complete) — never a mix or a partial array — then a clean re-run must reproduce
B's hashes and leave no staging debris.
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

from macro_data.pipeline import manifest, world_arrays, world_draws, world_splits
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


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("kill9")
    kw = dict(n=700, worlds=(WORLD,), T=12, H=3, storage={"chunk_samples": 128, "clevel": 1})
    path_a = write_recipe(base / "a", seed=7, **kw)
    path_b = write_recipe(base / "b", seed=8, **kw)
    a, b = load_recipe(path_a), load_recipe(path_b)
    _build(a, base / "templateA")
    _build(b, base / "refB")
    # Starting points: B's draws over A's dataset (for killing B's arrays/splits), all of B's stages over
    # A's manifest (for killing B's manifest).
    shutil.copytree(base / "templateA", base / "templateA_drawsB")
    _build(b, base / "templateA_drawsB", stages=("world_draws",), with_manifest=False)
    shutil.copytree(base / "templateA", base / "templateA_stagesB")
    _build(b, base / "templateA_stagesB", with_manifest=False)
    ds = lambda root: root / "tiny" / "0.1.0"  # noqa: E731
    return {
        "a": a,
        "b": b,
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
    assert visible <= {"manifest.json", f"{WORLD}.zarr"}, visible
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
        root = tmp_path / f"t{trial}"
        shutil.copytree(setup["base"] / template, root)
        dataset = setup["ds"](root)
        result = _trial(
            server,
            {"stage": stage, "world": WORLD, "recipe": str(setup["path_b"]), "root": str(root), "point": point, "k": k},
        )
        assert result in ({"signal": 9}, {"exit": 0}), (point, k, result)
        outcomes["killed" if result.get("signal") == 9 else "finished"] += 1
        _reader_view_is_clean(dataset)
        if stage == "dataset_manifest":
            text = (dataset / "manifest.json").read_text()
            doc = json.loads(text)  # always a whole, parseable manifest: the old one or the new one
            assert (
                text == setup["manifest_old"]
                or doc["worlds"][WORLD]["arrays"] == setup["manifest_new_hashes"]
                or {k2: v["sha256"] for k2, v in doc["worlds"][WORLD]["arrays"].items()}
                == {k2: v["sha256"] for k2, v in setup["manifest_new_hashes"].items()}
            )
            manifest.build_manifest(setup["b"], root)
            got = {
                k2: v["sha256"]
                for k2, v in json.loads((dataset / "manifest.json").read_text())["worlds"][WORLD]["arrays"].items()
            }
            assert got == {k2: v["sha256"] for k2, v in setup["manifest_new_hashes"].items()}
        else:
            after = _stage_hashes(dataset, stage)
            assert after in (setup["old"][stage], setup["new"][stage]), f"mixed or partial after {point} #{k}"
            STAGE_FNS[stage](setup["b"], WORLD, root)  # re-run, uninterrupted
            assert _stage_hashes(dataset, stage) == setup["new"][stage]
        staging = dataset / ".staging" / WORLD
        leftovers = [p.name for p in staging.iterdir()] if staging.exists() else []
        assert leftovers == [], leftovers
        shutil.rmtree(root)
    assert outcomes["killed"] >= TRIALS_PER_STAGE // 2, outcomes  # most trials really were killed
    print(f"{stage}: {outcomes}")
