"""Releases: immutable versions, replacement, idempotent re-runs, growth from a published version,
the dataset card, and the catalog commands (list, gc, remove)."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zarr

from macro_data.cli import main
from macro_data.pipeline import manifest, release, world_arrays, world_draws, world_splits
from macro_data.pipeline.common import RunInfo
from macro_data.recipes import load_recipe
from macro_data.storage.arrays import content_hash
from macro_data_tests.conftest import build_dataset, build_world, write_recipe

STAGES = (world_draws.build_world_draws, world_arrays.build_world_arrays, world_splits.build_world_splits)


def build(recipe_path: Path, root: Path, run: RunInfo | None = None, with_manifest: bool = True) -> dict:
    recipe = load_recipe(recipe_path)
    out = {}
    for w in recipe.world_ids:
        for fn in STAGES:
            out[(w, fn.__name__)] = fn(recipe, w, root, run)
    if with_manifest:
        out["manifest"] = manifest.build_manifest(recipe, root, replace=bool(run and run.replace))
    return out


def files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` (lock files aside) with its inode and modification time."""
    out = {}
    for p in folder.rglob("*"):
        if p.is_file() and ".locks" not in p.parts:
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_ino, st.st_mtime_ns)
    return out


def hashes(dataset: Path, world: str) -> dict[str, str]:
    g = zarr.open_group(str(dataset / f"{world}.zarr"), mode="r")
    return {n: content_hash(g[n]) for n in g.array_keys() if g[n].dtype.kind in "fiub"}


@pytest.fixture
def recipes(tmp_path):
    kw = dict(n=700, worlds=("nk", "switching"), T=16, H=4, storage={"chunk_samples": 256, "clevel": 1})
    return {
        "a": write_recipe(tmp_path / "a", seed=7, **kw),
        "b": write_recipe(tmp_path / "b", seed=8, **kw),
    }


def test_a_published_version_is_immutable(tmp_path, recipes):
    root = tmp_path / "root"
    build(recipes["a"], root)
    dataset = root / "tiny" / "0.1.0"
    before = files(dataset)
    for fn in STAGES:
        with pytest.raises(release.ReleaseError) as err:
            fn(load_recipe(recipes["b"]), "nk", root)
        assert "tiny@0.1.0" in str(err.value) and "fields that differ: seed: 7 -> 8" in str(err.value)
    with pytest.raises(release.ReleaseError, match="seed: 7 -> 8"):
        manifest.build_manifest(load_recipe(recipes["b"]), root)
    assert files(dataset) == before  # nothing written, nothing touched
    # the command line refuses before starting any run, with the same message and a non-zero exit; the
    # worker it started while reading the recipe is stopped, not left running
    children = set(multiprocessing.active_children())
    assert main(["build", "--recipe", str(recipes["b"]), "--root", str(root), "--worlds", "nk", "--jobs", "2"]) == 1
    assert files(dataset) == before
    assert set(multiprocessing.active_children()) <= children


def test_the_asset_fails_with_the_refusal(tmp_path, recipes, instance):
    root = tmp_path / "root"
    build_world(instance, recipes["a"], root, "nk")
    result = build_world(instance, recipes["b"], root, "nk", raise_on_error=False)
    assert not result.success
    text = " ".join(
        str(e.step_failure_data.user_failure_data.description) for e in result.all_events if e.is_step_failure
    )
    assert "was built from another recipe (fields that differ: seed: 7 -> 8)" in text


def test_replace_keeps_the_published_version_until_the_new_one_is_complete(tmp_path, recipes):
    root = tmp_path / "root"
    build(recipes["a"], root)
    dataset = root / "tiny" / "0.1.0"
    old = {w: hashes(dataset, w) for w in ("nk", "switching")}
    old_manifest = (dataset / "manifest.json").read_bytes()
    replace = RunInfo(replace=True)
    b = load_recipe(recipes["b"])
    for fn in STAGES:  # the worlds of B are built beside the version
        fn(b, "nk", root, replace)
    assert {w: hashes(dataset, w) for w in ("nk", "switching")} == old
    assert (dataset / "manifest.json").read_bytes() == old_manifest
    shadow = root / "tiny" / ".replace" / "0.1.0"
    assert (shadow / "nk.zarr").is_dir() and json.loads((shadow / "recipe.json").read_text())["recipe"]["seed"] == 8
    with pytest.raises(Exception, match="switching"):  # incomplete: the manifest refuses, nothing is swapped
        manifest.build_manifest(b, root, replace=True)
    assert (dataset / "manifest.json").read_bytes() == old_manifest
    for fn in STAGES:
        fn(b, "switching", root, replace)
    result = manifest.build_manifest(b, root, replace=True)
    assert result.location == str(dataset / "manifest.json")
    assert json.loads((dataset / "manifest.json").read_text())["recipe"]["seed"] == 8
    reference = tmp_path / "reference"
    build(recipes["b"], reference)
    ref = reference / "tiny" / "0.1.0"
    assert {w: hashes(dataset, w) for w in ("nk", "switching")} == {w: hashes(ref, w) for w in ("nk", "switching")}
    assert not shadow.exists()  # the old version is gone
    assert main(["validate", str(dataset)]) == 0


def test_replace_needs_a_published_version(tmp_path, recipes):
    with pytest.raises(release.ReleaseError, match="replace asked for, but no version is published"):
        world_draws.build_world_draws(load_recipe(recipes["a"]), "nk", tmp_path / "root", RunInfo(replace=True))
    assert not (tmp_path / "root" / "tiny").exists()


def test_a_rerun_of_the_same_recipe_is_up_to_date_and_writes_nothing(tmp_path, recipes):
    root = tmp_path / "root"
    build(recipes["a"], root)
    dataset = root / "tiny" / "0.1.0"
    before = files(dataset)
    again = build(recipes["a"], root)
    assert all(r.up_to_date for k, r in again.items() if k != "manifest") and again["manifest"].up_to_date
    assert files(dataset) == before
    published = hashes(dataset, "nk")
    forced = world_arrays.build_world_arrays(load_recipe(recipes["a"]), "nk", root, RunInfo(force=True))
    assert not forced.up_to_date and files(dataset) != before  # force rewrites
    assert hashes(dataset, "nk") == published  # the same numbers


@pytest.mark.slow
def test_the_command_line_skips_what_is_up_to_date(tmp_path, recipes, capsys, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    root = tmp_path / "root"
    assert main(["build", "--recipe", str(recipes["a"]), "--root", str(root)]) == 0
    dataset = root / "tiny" / "0.1.0"
    before = files(dataset)
    capsys.readouterr()
    children = set(multiprocessing.active_children())
    assert main(["build", "--recipe", str(recipes["a"]), "--root", str(root), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "world nk: up to date" in out and "world switching: up to date" in out and "nothing to do" in out
    assert files(dataset) == before
    assert set(multiprocessing.active_children()) <= children  # the worker started early is stopped


def test_a_refused_build_never_leaves_its_early_worker_running(tmp_path, recipes, monkeypatch):
    # The worker started while the recipe is read is stopped and reaped before the command returns.
    # Joined from the command while the pool's own thread joined it too, it was left counted as
    # running after about one refusal in five, so the refusal is repeated.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    root = tmp_path / "root"
    build(recipes["a"], root)
    children = set(multiprocessing.active_children())
    for _ in range(20):
        assert main(["build", "--recipe", str(recipes["b"]), "--root", str(root), "--worlds", "nk", "--jobs", "2"]) == 1
        assert set(multiprocessing.active_children()) <= children


def test_a_refused_build_stops_only_its_own_worker(tmp_path, recipes, monkeypatch):
    # ``main`` called from Python: a child process of the caller's survives the build's stopping of
    # the worker it started while reading the recipe.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    root = tmp_path / "root"
    build(recipes["a"], root)
    own = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,), daemon=True)
    own.start()
    try:
        assert main(["build", "--recipe", str(recipes["b"]), "--root", str(root), "--worlds", "nk", "--jobs", "2"]) == 1
        assert own.is_alive()
    finally:
        own.terminate()
        own.join()


def test_a_build_in_the_callers_process_leaves_its_objects_to_the_collector(tmp_path, recipes, monkeypatch):
    # A worker process freezes its long-lived objects out of the collector's generations; with
    # ``--jobs 1`` the runs are in the caller's process, whose objects must stay collectable.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    frozen = gc.get_freeze_count()
    args = ["build", "--recipe", str(recipes["a"]), "--root", str(tmp_path / "root"), "--worlds", "nk", "--jobs", "1"]
    assert main(args) == 0
    assert gc.get_freeze_count() == frozen


def test_growth_reuses_the_published_prefix_and_equals_a_build_from_scratch(tmp_path):
    kw = dict(worlds=("nk", "switching"), T=16, H=4, storage={"chunk_samples": 256, "clevel": 1}, seed=5)
    small = write_recipe(tmp_path / "small", n=900, **kw)
    big = write_recipe(tmp_path / "big", n=2000, version="0.2.0", extends="tiny@0.1.0", **kw)
    found = write_recipe(tmp_path / "found", n=1500, version="0.3.0", **kw)  # no extends: the build finds a base
    root = tmp_path / "root"
    build(small, root)
    grown = build(big, root)
    assert {k: r.reused_samples for k, r in grown.items() if k != "manifest"} == {
        (w, fn.__name__): 768 for w in ("nk", "switching") for fn in STAGES
    }  # 900 rounded down to 3 chunks
    scratch = tmp_path / "scratch"
    build(write_recipe(tmp_path / "alone", n=2000, version="0.2.0", **kw), scratch)  # no base to grow from
    for w in ("nk", "switching"):
        assert hashes(root / "tiny" / "0.2.0", w) == hashes(scratch / "tiny" / "0.2.0", w)
    a = json.loads((root / "tiny" / "0.2.0" / "manifest.json").read_text())
    b = json.loads((scratch / "tiny" / "0.2.0" / "manifest.json").read_text())
    for w in ("nk", "switching"):
        assert (
            a["worlds"][w]["stats"] == b["worlds"][w]["stats"] and a["worlds"][w]["splits"] == b["worlds"][w]["splits"]
        )
        content = ("sha256", "shape", "dtype", "dimension_names")  # sizes differ by the provenance noting the reuse
        assert {n: {k: v[k] for k in content} for n, v in a["worlds"][w]["arrays"].items()} == {
            n: {k: v[k] for k in content} for n, v in b["worlds"][w]["arrays"].items()
        }
        assert (
            a["worlds"][w]["provenance"]["world_arrays"]["data_version"]
            == (b["worlds"][w]["provenance"]["world_arrays"]["data_version"])
        )
    auto = build(found, root)
    assert auto[("nk", "build_world_draws")].reused_samples == 1280  # from 0.2.0 (2000 samples): 1500 rounded down
    assert main(["validate", str(root / "tiny" / "0.3.0")]) == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seed": 6}, r"differs from it in more than the sample counts: seed: 5 -> 6"),
        ({"storage": {"chunk_samples": 128, "clevel": 1}}, r"storage settings differ .*chunk_samples: 256 -> 128"),
        ({"extends": "tiny@9.9.9"}, r"extends tiny@9.9.9, but no built version is recorded"),
    ],
)
def test_growth_refuses_a_base_that_differs_in_more_than_sample_counts(tmp_path, change, message):
    kw = dict(worlds=("nk",), T=16, H=4, storage={"chunk_samples": 256, "clevel": 1}, seed=5)
    root = tmp_path / "root"
    build(write_recipe(tmp_path / "small", n=600, **kw), root)
    bad = write_recipe(tmp_path / "bad", n=1000, version="0.2.0", **{**kw, "extends": "tiny@0.1.0", **change})
    with pytest.raises(release.ReleaseError, match=message):
        world_draws.build_world_draws(load_recipe(bad), "nk", root)
    assert not (root / "tiny" / "0.2.0" / "nk.zarr").exists()


def test_the_dataset_card_names_every_world_and_hash(tmp_path, recipes):
    root = tmp_path / "root"
    kw = dict(n=700, worlds=("nk", "switching"), T=16, H=4, storage={"chunk_samples": 256, "clevel": 1})
    cited = write_recipe(tmp_path / "c", seed=7, citation="Doe, J. (2026), Tiny worlds.", license="CC0-1.0", **kw)
    build(cited, root)
    dataset = root / "tiny" / "0.1.0"
    card = (dataset / "README.md").read_text()
    doc = json.loads((dataset / "manifest.json").read_text())
    assert card.startswith("# tiny 0.1.0")
    for w, entry in doc["worlds"].items():
        assert f"| {w} |" in card
        for name, spec in entry["arrays"].items():
            assert spec["sha256"] in card, (w, name)
    assert "License: CC0-1.0." in card and "Cite as: Doe, J. (2026), Tiny worlds." in card
    assert doc["recipe_sha256"] in card and "mdr.open_dataset(" in card
    assert doc["environment"]["python"] in card


def test_list_gc_and_remove(tmp_path, recipes, capsys):
    root = tmp_path / "root"
    build(recipes["a"], root)
    partial = write_recipe(
        tmp_path / "p", n=300, worlds=("nk", "switching"), version="0.5.0", storage={"chunk_samples": 256, "clevel": 1}
    )
    world_draws.build_world_draws(load_recipe(partial), "nk", root)
    assert main(["list", "--root", str(root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by = {f"{v['name']}@{v['version']}": v for v in doc["versions"]}
    assert by["tiny@0.1.0"]["status"] == "complete" and by["tiny@0.1.0"]["worlds"] == {"nk": 700, "switching": 700}
    assert by["tiny@0.5.0"]["status"] == "partial" and by["tiny@0.5.0"]["missing_worlds"] == ["switching"]
    assert by["tiny@0.1.0"]["bytes"] > 0 and by["tiny@0.1.0"]["validation"]["status"] == "none"
    # debris of a process that died: a staging area and a removal that was interrupted
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    import socket

    stale = root / "tiny" / "0.1.0" / ".staging" / "nk" / f"stage.world_arrays-{socket.gethostname()}-{pid}-abcd1234"
    stale.mkdir(parents=True)
    (stale / "junk").write_bytes(b"x" * 1000)
    assert main(["gc", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "staging" in out and str(stale) in out and "dry run" in out
    assert stale.exists()
    assert main(["gc", "--root", str(root), "--yes"]) == 0
    assert not stale.exists()
    # remove: refused without a terminal unless --yes
    assert main(["remove", "tiny@0.5.0", "--root", str(root)]) == 1
    assert "pass --yes" in capsys.readouterr().err
    assert main(["remove", "tiny@0.5.0", "--root", str(root), "--yes"]) == 0
    assert not (root / "tiny" / "0.5.0").exists()
    assert main(["remove", "tiny@0.9.0", "--root", str(root), "--yes"]) == 1
    assert "no dataset version tiny@0.9.0" in capsys.readouterr().err


def test_an_unwritable_root_is_a_clear_error(tmp_path, recipes):
    if os.geteuid() == 0:
        root = Path("/proc/macro_data_cannot_write_here")  # not writable even for root
    else:
        root = tmp_path / "ro"
        root.mkdir(mode=0o500)
    with pytest.raises(release.ReleaseError, match="cannot write into"):
        world_draws.build_world_draws(load_recipe(recipes["a"]), "nk", root)


@pytest.mark.slow
def test_the_dataset_job_through_dagster_reports_up_to_date(tmp_path, recipes, instance):
    root = tmp_path / "root"
    for w in ("nk", "switching"):
        build_world(instance, recipes["a"], root, w)
    build_dataset(instance, recipes["a"], root)
    result = build_world(instance, recipes["a"], root, "nk")
    mats = result.asset_materializations_for_node("world_draws")
    assert mats and mats[0].metadata["up_to_date"].value is True
