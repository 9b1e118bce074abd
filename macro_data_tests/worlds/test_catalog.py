"""The catalog of worlds: built-ins, model files (local and shipped), entry points; broken files fail
only their own world; the code location loads with them and shows them as partitions."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from macro_data import paths
from macro_data.errors import RecipeError, WorldError, WorldFileError
from macro_data.recipes import parse_recipe
from macro_data.versioning import code_version, for_world
from macro_data.worlds import WORLD_IDS, get_world, world_ids
from macro_data.worlds.catalog import ENTRY_POINT_GROUP, catalog

SHIPPED = Path(str(paths.packaged("worlds")))


@pytest.fixture
def local_worlds(tmp_path, monkeypatch):
    folder = tmp_path / "worlds"
    folder.mkdir()
    monkeypatch.setenv("MACRO_DATA_WORLDS", str(folder))
    return folder


def _same(text: str) -> str:
    return text


def _copy_as(folder: Path, source: str, world: str, edit=_same) -> Path:
    text = (SHIPPED / f"{source}.yaml").read_text()
    text = text.replace(f"world: {source}", f"world: {world}", 1)
    edited = edit(text)
    assert edit is _same or edited != text, "the edit must change the file"
    path = folder / f"{world}.yaml"
    path.write_text(edited)
    return path


def test_builtins_come_first_then_the_shipped_model_files():
    ids = world_ids()
    assert ids[:6] == WORLD_IDS
    assert {"nk_habit", "rbc_iac"} <= set(ids[6:])
    assert catalog().sources["nk_habit"].kind == "model file"
    assert get_world("nk_habit").model_sha256 == hashlib.sha256((SHIPPED / "nk_habit.yaml").read_bytes()).hexdigest()


def test_a_new_model_file_appears_without_code_change(local_worlds):
    assert "nk_habit2" not in world_ids()
    _copy_as(local_worlds, "nk_habit", "nk_habit2")
    assert "nk_habit2" in world_ids()
    assert get_world("nk_habit2").name == "nk_habit2"
    assert "nk_habit" in world_ids()  # the shipped files are still there


def test_a_broken_file_fails_only_its_world(local_worlds):
    _copy_as(local_worlds, "nk_habit", "broken", lambda t: t.replace("kappa*x + u", "kappa*x +* u"))
    (local_worlds / "Bad-Name.yaml").write_text("world: x\n")
    ids = world_ids()
    assert "broken" in ids and "Bad-Name" in ids
    with pytest.raises(WorldFileError) as err:
        get_world("broken")
    message = str(err.value)
    assert "broken.yaml" in message and "line" in message
    with pytest.raises(WorldError, match="not a world id"):
        get_world("Bad-Name")
    assert get_world("nk").name == "nk" and get_world("nk_habit").name == "nk_habit"
    recipe = {"name": "r", "version": "0.1.0", "seed": 1, "T": 10, "H": 4, "worlds": {"broken": {"n_samples": 10}}}
    with pytest.raises(RecipeError, match=r"worlds/broken.*broken\.yaml"):
        parse_recipe(recipe)


def test_unknown_worlds_are_refused_with_the_list(local_worlds):
    recipe = {"name": "r", "version": "0.1.0", "seed": 1, "T": 10, "H": 4, "worlds": {"nope": {"n_samples": 10}}}
    with pytest.raises(RecipeError, match=r"unknown world 'nope'.*nk_habit"):
        parse_recipe(recipe)


def test_a_file_named_like_a_built_in_is_ignored_and_reported(local_worlds):
    _copy_as(local_worlds, "nk_habit", "nk")
    cat = catalog()
    assert cat.sources["nk"].kind == "builtin"
    assert any("nk.yaml" in c and "built-in" in c for c in cat.conflicts)
    for w in WORLD_IDS:  # get_world answers a built-in id without the catalog: the same instance
        assert get_world(w) is cat.get(w)
    assert type(get_world("nk")).__module__ == "macro_data.worlds.nk"


def test_editing_a_model_file_changes_only_that_worlds_code_version(local_worlds):
    path = _copy_as(local_worlds, "nk_habit", "habit_local")
    before = for_world(code_version("world_draws"), get_world("habit_local"))
    builtin = for_world(code_version("world_draws"), get_world("nk"))
    text = path.read_text()
    path.write_text(text.replace("sigma:   {low: 0.5", "sigma:   {low: 0.6"))
    assert path.read_text() != text
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    after = for_world(code_version("world_draws"), get_world("habit_local"))
    assert before != after and after.startswith(code_version("world_draws") + "+habit_local-")
    assert builtin == code_version("world_draws") == for_world(code_version("world_draws"), get_world("nk"))


ENTRY_POINT_WORLD = '''
"""A Python world registered by another distribution: the built-in lss world under another name."""
import copy

from macro_data.worlds.lss import WORLD as _LSS


def make():
    world = copy.copy(_LSS)
    world.name = "plugin_lss"
    return world
'''


def _distribution(folder: Path, names: dict[str, str]) -> Path:
    """A minimal installed distribution (a module and a dist-info with entry points) under ``folder``."""
    (folder / "plugin_worlds.py").write_text(ENTRY_POINT_WORLD)
    info = folder / "plugin_worlds-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-worlds\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in names.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    return folder


def test_worlds_registered_through_entry_points(tmp_path):
    site = _distribution(tmp_path, {"plugin_lss": "plugin_worlds:make", "wrong_name": "plugin_worlds:make"})
    script = textwrap.dedent(
        """
        import json, sys
        from macro_data.worlds import get_world, world_ids
        from macro_data.worlds.catalog import catalog
        w = get_world("plugin_lss")
        try:
            get_world("wrong_name")
            wrong = "loaded"
        except Exception as exc:
            wrong = str(exc)
        print(json.dumps({"ids": list(world_ids()), "source": catalog().sources["plugin_lss"].kind, "wrong": wrong}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert "plugin_lss" in doc["ids"] and doc["source"] == "entry point"
    assert "names a world called 'plugin_lss'" in doc["wrong"]


def test_a_distribution_installed_or_removed_while_running_is_seen(tmp_path, monkeypatch):
    """The entry-point scan is cached per sys.path state: installing a distribution (a new dist-info
    folder changes its folder's mtime) or changing sys.path brings its worlds in or out."""
    from macro_data.worlds.catalog import catalog

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert "plugin_lss" not in catalog().worlds
    _distribution(site, {"plugin_lss": "plugin_worlds:make"})
    os.utime(site, ns=(time.time_ns() + 10**9,) * 2)  # coarse file-system clocks: make the change visible
    assert catalog().sources["plugin_lss"].kind == "entry point"
    monkeypatch.undo()
    assert "plugin_lss" not in catalog().worlds


def test_the_code_location_loads_with_a_broken_file_and_partitions_follow_the_catalog(local_worlds, tmp_path):
    _copy_as(local_worlds, "nk_habit", "habit_copy")
    _copy_as(local_worlds, "nk_habit", "broken", lambda t: t.replace("equations:", "equations: [x = (\nnope:"))
    recipe = tmp_path / "r.json"
    recipe.write_text(
        json.dumps(
            {"name": "r", "version": "0.1.0", "seed": 1, "T": 12, "H": 4, "worlds": {"broken": {"n_samples": 10}}}
        )
    )
    script = textwrap.dedent(
        """
        import json, sys
        import dagster as dg
        from macro_data.orchestration.definitions import defs
        keys = defs.resolve_assets_def("world_draws").partitions_def.get_partition_keys()
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def("build_world").execute_in_process(
                instance=instance, partition_key="broken", raise_on_error=False,
                run_config={"resources": {"recipe": {"config": {"recipe": sys.argv[1]}},
                                          "storage": {"config": {"root": sys.argv[2]}}}},
            )
            failures = [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]
        print(json.dumps({"keys": keys, "success": result.success, "failures": failures}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(recipe), str(tmp_path / "root")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path / "home")},
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["keys"][:6] == list(WORLD_IDS) and {"habit_copy", "broken", "nk_habit"} <= set(doc["keys"])
    assert not doc["success"]
    assert any("broken.yaml" in m and "line" in m for m in doc["failures"]), doc["failures"]
    assert not (tmp_path / "root" / "r").exists() or not any((tmp_path / "root" / "r").rglob("*.zarr"))
