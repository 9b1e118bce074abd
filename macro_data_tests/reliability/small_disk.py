"""A real full disk: a stage runs in a child process on a tmpfs of a given free size.

The child runs in its own user and mount namespace (``unshare --user --map-root-user --mount``), so
no privileges are needed and nothing is patched: the kernel itself answers ENOSPC, to Zarr's writes
and to ours alike. Where namespaces are not available the tests skip, saying why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import json, shutil, subprocess, sys
    from pathlib import Path
    src, mount, free, stage, recipe_path, world, force = sys.argv[1:8]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mount], check=True)
    root = Path(mount) / "root"
    if Path(src).exists():
        shutil.copytree(src, root)
    size = shutil.disk_usage(mount).used + int(free)
    subprocess.run(["mount", "-o", f"remount,size={size}", mount], check=True)
    from macro_data.errors import MacroDataError
    from macro_data.pipeline import world_arrays, world_draws
    from macro_data.pipeline.common import RunInfo
    from macro_data.recipes import load_recipe
    from macro_data.storage.arrays import content_hash
    import zarr
    fn = {"world_draws": world_draws.build_world_draws, "world_arrays": world_arrays.build_world_arrays}[stage]
    out = {"root": str(root)}
    try:
        fn(load_recipe(recipe_path), world, root, RunInfo(force=force == "force"))
        out["error"] = None
    except MacroDataError as exc:
        out["error"] = str(exc)
    ds = next(root.glob("*/*"), None)
    if ds is not None and (ds / f"{world}.zarr").exists():
        g = zarr.open_group(str(ds / f"{world}.zarr"), mode="r")
        out["hashes"] = {n: content_hash(g[n]) for n in g.array_keys() if g[n].dtype.kind in "fiub"}
        out["staging"] = sorted(p.name for p in (ds / ".staging" / world).iterdir())
        out["dataset"] = str(ds)
    print(json.dumps(out))
""")


def namespaces_available() -> str | None:
    """``None`` if a child can mount a tmpfs in its own namespaces, else why not."""
    if shutil.which("unshare") is None:
        return "the unshare command is not installed"
    probe = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs -o size=1m tmpfs /mnt 2>&1 || mount -t tmpfs -o size=1m tmpfs /tmp 2>&1",
        ],
        capture_output=True,
        text=True,
    )
    return (
        None if probe.returncode == 0 else f"no user/mount namespaces here ({(probe.stderr or probe.stdout).strip()})"
    )


def run_stage_on_small_disk(
    tmp_path: Path, root: Path, free_bytes: int, stage: str, recipe: Path, world: str, force: bool = False
) -> dict:
    """Copy ``root`` onto a tmpfs with ``free_bytes`` left, run ``stage`` there (``force``: even if the
    published stage is up to date); what the child saw."""
    why = namespaces_available()
    if why:
        pytest.skip(f"a real full disk needs a private tmpfs: {why}")
    mount = tmp_path / "small_disk"
    mount.mkdir()
    script = tmp_path / "small_disk_child.py"
    script.write_text(CHILD)
    proc = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            sys.executable,
            str(script),
            str(root),
            str(mount),
            str(free_bytes),
            stage,
            str(recipe),
            world,
            "force" if force else "no-force",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
