"""Everything a build publishes respects the umask, so a dataset in a shared folder is readable by the team."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from macro_data_tests.conftest import write_recipe

pytestmark = pytest.mark.slow


def build_with_umask(tmp_path: Path, umask: int) -> Path:
    recipe = write_recipe(tmp_path / "recipes", n=300, worlds=("nk", "switching"))
    root = tmp_path / "root"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "macro_data.cli", "build", "--recipe", str(recipe), "--root", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.umask(umask),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return root / "tiny" / "0.1.0"


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_published_files_and_folders_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    dataset = build_with_umask(tmp_path, umask)
    names = {p.name for p in dataset.iterdir()}
    assert {"manifest.json", "validation_report.json", "validation_report.html", "nk.zarr"} <= names
    wrong = []
    for dirpath, dirnames, filenames in os.walk(dataset):
        for d in dirnames:
            mode = stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode)
            wrong += [] if mode == dir_mode else [(os.path.join(dirpath, d), oct(mode))]
        for f in filenames:
            mode = stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode)
            wrong += [] if mode == file_mode else [(os.path.join(dirpath, f), oct(mode))]
    assert wrong == [], wrong[:10]
