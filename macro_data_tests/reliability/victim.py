"""Trial server for kill -9 fault injection (run as ``python -m macro_data_tests.reliability.victim``).

Reads one JSON trial per line on stdin: ``{"stage", "recipe", "root", "point", "k"}`` and optionally
``"replace"``, ``"force"`` (the build policies) and ``"region_samples"``. For each it
forks a child that arms a fault at ``point`` — the ``k``-th call of one function sends SIGKILL to
the child itself — and runs the stage. The parent answers one JSON line per trial:
``{"signal": 9}`` if the child was killed, ``{"exit": 0}`` if it finished before the k-th call.

Only imports happen before forking (no zarr I/O thread exists yet), so forking is safe. The
production code is not changed: faults are armed by wrapping functions in the child.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from macro_data.compute import ComputeConfig
from macro_data.pipeline import common, manifest, stage, world_arrays, world_draws, world_splits
from macro_data.recipes import load_recipe
from macro_data.storage import arrays, locations, publish

STAGES = {
    "world_draws": world_draws.build_world_draws,
    "world_arrays": world_arrays.build_world_arrays,
    "world_splits": world_splits.build_world_splits,
}


def _kill_on_call(owner, name: str, k: int, after: bool = False) -> None:
    original = getattr(owner, name)
    calls = [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == k and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        out = original(*args, **kwargs)
        if calls[0] == k and after:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(owner, name, wrapped)


# Where a fault can be armed: point -> (owner, function name, kill after the call instead of before)
POINTS = {
    "drawing": (world_draws, "draw_range", False),  # during draws
    "simulating": (world_arrays.get_world("nk").__class__, "simulate", False),  # during simulation (nk)
    "chunk-write": (arrays.RegionWriter, "_write", False),  # between chunk writes of the staging arrays
    "mid-chunk-write": (arrays.RegionWriter, "_write", True),  # right after a chunk write
    "stamp": (stage, "stamp", False),  # staging complete, before publish
    "region-done": (stage.Journal, "append", True),  # a region recorded as complete (resume point)
    "before-exchange": (publish, "exchange", False),  # new group assembled, not swapped in
    "after-exchange": (publish, "exchange", True),  # swapped in, old group not yet removed
    "manifest-replace": (locations.os, "replace", False),  # manifest temp file written, not renamed
    "manifest-build": (manifest, "validate_manifest", False),  # manifest document built, not written
}


def run_trial(trial: dict) -> None:
    owner, name, after = POINTS[trial["point"]]
    _kill_on_call(owner, name, int(trial["k"]), after)
    recipe = load_recipe(trial["recipe"])
    replace, force = bool(trial.get("replace")), bool(trial.get("force"))
    if trial["stage"] == "dataset_manifest":
        manifest.build_manifest(recipe, trial["root"], replace=replace, force=force)
    else:
        compute = ComputeConfig(region_samples=int(trial.get("region_samples", ComputeConfig.region_samples)))
        run = common.RunInfo(replace=replace, force=force, compute=compute)
        STAGES[trial["stage"]](recipe, trial["world"], trial["root"], run)


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        trial = json.loads(line)
        pid = os.fork()
        if pid == 0:  # child: run the stage with the fault armed
            try:
                run_trial(trial)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent via the exit code
                sys.stderr.write(f"trial raised {type(exc).__name__}: {exc}\n")
                os._exit(3)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        result = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.WEXITSTATUS(status)}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
