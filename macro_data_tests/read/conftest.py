"""Real datasets on disk for the reading API, built by the pipeline's plain stage functions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
import zarr

import macro_data.read as mdr
from macro_data.pipeline import world_arrays, world_draws, world_splits, world_stats
from macro_data.pipeline.manifest import build_manifest
from macro_data.recipes import load_recipe

# nk gets a narrowed prior so "prior" and "parameters" normalization differ; lss has integer and derived
# parameters. Training tests use nk and rbc (splits with every label).
READ_WORLDS = {
    "nk": {"n_samples": 1000, "priors": {"phi_pi": {"low": 1.2, "high": 3.0}}},
    "rbc": {"n_samples": 900},
    "lss": {"n_samples": 300},
}
T, H, CHUNK = 32, 6, 100


def build_plain(
    folder: Path,
    worlds: dict,
    T: int,
    H: int,
    chunk: int,
    name: str = "readtest",
    seed: int = 11,
    stats: bool = False,
) -> Path:
    """Write a recipe, run world_draws/world_arrays/world_splits (and world_stats with ``stats``) per world
    and the manifest; the dataset folder."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": name,
        "version": "0.1.0",
        "seed": seed,
        "T": T,
        "H": H,
        "worlds": worlds,
        "storage": {"chunk_samples": chunk, "clevel": 1},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    recipe = load_recipe(path)
    root = folder / "root"
    for w in recipe.world_ids:
        world_draws.build_world_draws(recipe, w, root)
        world_arrays.build_world_arrays(recipe, w, root)
        world_splits.build_world_splits(recipe, w, root)
        if stats:
            world_stats.build_world_stats(recipe, w, root)
    build_manifest(recipe, root)
    return Path(recipe.dataset_dir(root))


@pytest.fixture(scope="session")
def read_dataset(tmp_path_factory) -> Path:
    """nk (1000), rbc (900), lss (300) samples, T=32, H=6, chunks of 100 samples; the dataset folder."""
    return build_plain(tmp_path_factory.mktemp("read"), READ_WORLDS, T, H, CHUNK)


@pytest.fixture(scope="session")
def stats_dataset(tmp_path_factory) -> Path:
    """The same worlds and layout as ``read_dataset``, built with the world_stats stage (train-split moments)."""
    return build_plain(tmp_path_factory.mktemp("readstats"), READ_WORLDS, T, H, CHUNK, name="readstats", stats=True)


@pytest.fixture
def dataset_copy(read_dataset, tmp_path) -> Path:
    """A private copy of the dataset folder, free to corrupt."""
    dst = tmp_path / "copy"
    shutil.copytree(read_dataset, dst)
    return dst


@pytest.fixture(scope="module")
def ds(stats_dataset):
    """The dataset with stored statistics, opened (test modules with another dataset define their own)."""
    return mdr.open_dataset(stats_dataset)


@pytest.fixture(scope="module")
def ref(stats_dataset):
    """Every array of every world of ``stats_dataset`` read directly with zarr: the reference."""
    return {
        (w, a): zarr.open_array(str(stats_dataset / f"{w}.zarr" / a), mode="r")[...]
        for w in READ_WORLDS
        for a in ("theta", "shocks", "trajectories", "irfs", "split")
    }
