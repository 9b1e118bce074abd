"""The wheel a user installs: built from this checkout, installed (not editable) in a fresh virtual
environment, and used from an empty folder, with the data coming from a real loopback server.

Checks that the schemas, recipes and registry travel inside the package, that the tests do not,
and that every front door works from the installed copy while nothing is written into
site-packages (defaults are relative to the working directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from macro_data import paths
from macro_data_tests.external.conftest import MACRODATA_COLUMNS, MACRODATA_SHA256, MACRODATA_SIZE, LoopbackServer

pytestmark = pytest.mark.slow
CHECKOUT = paths.source_checkout()


def run(cmd: list[str], cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Files below ``folder`` (bytecode caches aside) with size and modification time."""
    out = {}
    for p in folder.rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts:
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(python, bin folder, site-packages/macro_data)`` of a fresh venv holding the built wheel."""
    if CHECKOUT is None:
        pytest.skip("needs a source checkout to build the wheel from")
    base = tmp_path_factory.mktemp("wheel")
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(CHECKOUT)],
        base,
        dict(os.environ),
        timeout=600,
    )
    wheel = next((base / "dist").glob("macro_data-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("macro_data_tests")], "the tests must not ship in the wheel"
    for shipped in (
        "macro_data/data/schemas/manifest.schema.json",
        "macro_data/data/schemas/recipe.schema.json",
        "macro_data/data/recipes/default.yaml",
        "macro_data/data/recipes/paper.yaml",
        "macro_data/data/external.yaml",
    ):
        assert shipped in names, shipped
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # The versions of this environment, so the resolver reuses what is cached; a user gets the newest.
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    (base / "constraints.txt").write_text(
        "\n".join(line for line in frozen.splitlines() if "==" in line and not line.startswith("macro_data"))
    )
    run(
        [str(python), "-m", "pip", "install", "-q", "-c", str(base / "constraints.txt"), str(wheel)],
        base,
        dict(os.environ),
        timeout=900,
    )
    site = Path(
        run(
            [str(python), "-c", "import macro_data, os; print(os.path.dirname(macro_data.__file__))"],
            base,
            dict(os.environ),
        ).stdout.strip()
    )
    assert env_dir in site.parents, f"macro_data imported from {site}, not from the fresh environment"
    return python, env_dir / "bin", site


def test_the_installed_wheel_builds_validates_fetches_and_reads_from_an_empty_folder(installed, tmp_path):
    python, bin_dir, site = installed
    before = snapshot(site)
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MACRO_DATA_", "DAGSTER_HOME", "PYTHONPATH"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "version": "0.1.0",
                "seed": 3,
                "T": 24,
                "H": 6,
                "worlds": {"nk": {"n_samples": 300}, "switching": {"n_samples": 300}},
                "storage": {"chunk_samples": 100, "clevel": 1},
            }
        )
    )

    built = run(["macro-data", "build", "--recipe", str(recipe)], work, env)
    dataset = work / "datasets" / "build" / "tiny" / "0.1.0"
    assert str(dataset) in built.stdout and str(work / ".dagster_home") in built.stdout  # defaults, printed
    assert (dataset / "manifest.json").is_file() and (work / ".dagster_home").is_dir()
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["environment"]["packages"]["macro_data"] and manifest["package"]["git_commit"] == "unknown"

    checked = run(["macro-data", "validate", str(dataset)], work, env)
    assert "0 failed" in checked.stdout, checked.stdout[-2000:]

    # a shipped recipe by name resolves too (only resolved here: building it takes minutes)
    run(
        [
            str(python),
            "-c",
            "from macro_data.recipes import load_recipe; r = load_recipe('default'); "
            "assert r.name == 'default' and len(r.world_ids) == 6",
        ],
        work,
        env,
    )

    server = LoopbackServer()
    try:
        (work / "datasets" / "external.yaml").write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "datasets": [
                        {
                            "name": "us_macro_local",
                            "description": "US quarterly macro data",
                            "urls": [server.url("/ok/macrodata.csv")],
                            "filename": "macrodata.csv",
                            "sha256": MACRODATA_SHA256,
                            "size": MACRODATA_SIZE,
                            "format": "csv",
                            "csv": {"header_rows": 0},
                            "columns": list(MACRODATA_COLUMNS),
                            "license": "public domain",
                            "source": "statsmodels",
                        }
                    ],
                },
                sort_keys=False,
            )
        )
        fetched = run(["macro-data", "fetch"], work, {**env, "MACRO_DATA_ALLOW_HTTP_HOSTS": "127.0.0.1"})
        assert server.hits["/ok/macrodata.csv"] == 1, fetched.stdout
    finally:
        server.close()
    assert list((work / "datasets" / "build" / "external" / "objects").rglob("macrodata.csv"))

    dagster_env = {
        **env,
        "MACRO_DATA_ALLOW_HTTP_HOSTS": "127.0.0.1",
        "DAGSTER_HOME": str(work / ".dagster_home"),
        "MACRO_DATA_RECIPE": str(recipe),
        "MACRO_DATA_ROOT": str(work / "cli_root"),
    }
    run(
        [
            "dagster",
            "asset",
            "materialize",
            "-m",
            "macro_data",
            "--select",
            "world_draws,world_arrays,world_splits",
            "--partition",
            "nk",
        ],
        work,
        dagster_env,
    )
    assert (work / "cli_root" / "tiny" / "0.1.0" / "nk.zarr" / "split").is_dir()

    read = run(
        [
            str(python),
            "-c",
            "import macro_data.read as mdr, sys; ds = mdr.open_dataset(sys.argv[1], verify=True); "
            "x = ds['nk']['trajectories'][:5]; print(x.shape, ds['nk'].split_indices('train')[:3])",
            str(dataset),
        ],
        work,
        env,
    )
    assert "(5, 24, 3)" in read.stdout

    assert snapshot(site) == before, "something was written into site-packages"
    assert not (site / "datasets").exists() and not (site.parent / "datasets").exists()
