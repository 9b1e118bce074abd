"""The code location loads, and its graph matches the reviewed snapshot.

Any change to asset keys, partitions, checks, groups or jobs changes
``snapshots/definitions.json``; regenerate it with ``MACRO_DATA_UPDATE_SNAPSHOTS=1 pytest
macro_data_tests/orchestration/test_definitions.py`` and review the diff.
"""

import json
import os
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        pdef = node.partitions_def
        if isinstance(pdef, dg.DynamicPartitionsDefinition):
            partitions = f"dynamic: {pdef.name}"  # keys live in the instance (added by a sensor)
        else:
            partitions = sorted(pdef.get_partition_keys()) if pdef is not None else None
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": partitions,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "has_description": bool(node.description),
            "has_code_version": bool(node.code_version),
        }
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    jobs = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    schedules = sorted(s.name for s in defs.schedules or [])
    sensors = sorted(s.name for s in defs.sensors or [])
    return {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_definitions_load_and_match_snapshot():
    import macro_data

    current = describe(macro_data.defs)
    for name, a in current["assets"].items():
        assert a["has_description"] and a["has_code_version"] and a["kinds"] and a["group"], name
    if os.environ.get("MACRO_DATA_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), "graph changed: regenerate and review the snapshot"


def test_world_partitions_follow_the_catalog():
    import macro_data
    from macro_data.worlds import world_ids

    graph = macro_data.defs.resolve_asset_graph()
    for name in ("world_draws", "world_arrays", "world_splits", "world_stats"):
        keys = graph.get(dg.AssetKey(name)).partitions_def.get_partition_keys()
        assert list(keys) == list(world_ids())
        assert list(keys)[:6] == ["lss", "var", "nk", "rbc", "switching", "zlb"] and "nk_habit" in keys


def test_loading_the_code_location_leaves_the_heavy_libraries_unimported():
    # Every Dagster process (UI, daemon, each run, `dagster asset materialize`) loads the code location:
    # scipy and numba load where a stage first uses them (about 1 s together).
    import subprocess
    import sys

    code = (
        "import sys, macro_data\n"
        "assert isinstance(macro_data.defs, __import__('dagster').Definitions)\n"
        "bad = sorted(m for m in ('scipy', 'numba') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
