"""Shared fixtures: tiny recipes on disk and Dagster runs through the real code location."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from macro_data.worlds import WORLD_IDS

# `python -m pytest` is the fast default: tests marked slow (whole builds through subprocesses, the
# wheel, browsers, databases, fault injection) are deselected unless MACRO_DATA_TESTS=all or an
# explicit -m expression asks for them. CI runs them all.
RUN_ALL = "MACRO_DATA_TESTS"


def _run_slow(config) -> bool:
    return os.environ.get(RUN_ALL) == "all" or bool(config.getoption("markexpr"))


def pytest_report_header(config):
    if not _run_slow(config):
        return f"slow tests deselected (run everything with {RUN_ALL}=all)"


def pytest_collection_modifyitems(config, items):
    if _run_slow(config):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


TINY = {"name": "tiny", "version": "0.1.0", "seed": 7, "T": 24, "H": 8, "storage": {"chunk_samples": 100, "clevel": 1}}


def write_recipe(folder: Path, n: int = 300, worlds=WORLD_IDS, **changes) -> Path:
    doc = {**TINY, **changes, "worlds": {w: {"n_samples": n} for w in worlds}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{doc['name']}-{n}-{doc['storage']['chunk_samples']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_config(recipe: Path, root: Path, **storage) -> dict:
    """Run config of the build jobs; ``storage``: further storage resource settings (force, replace)."""
    return {
        "resources": {
            "recipe": {"config": {"recipe": str(recipe)}},
            "storage": {"config": {"root": str(root), **storage}},
        }
    }


def build_world(instance, recipe: Path, root: Path, world: str, raise_on_error: bool = True, **storage):
    from macro_data import defs

    return defs.resolve_job_def("build_world").execute_in_process(
        instance=instance,
        partition_key=world,
        run_config=run_config(recipe, root, **storage),
        raise_on_error=raise_on_error,
    )


def build_dataset(instance, recipe: Path, root: Path, raise_on_error: bool = True):
    from macro_data import defs

    return defs.resolve_job_def("build_dataset_files").execute_in_process(
        instance=instance, run_config=run_config(recipe, root), raise_on_error=raise_on_error
    )


@contextlib.contextmanager
def s3_server(bucket: str) -> Iterator[str]:
    """An S3-compatible server (moto) on 127.0.0.1 holding the empty ``bucket``, with the environment
    (credentials, ``MACRO_DATA_S3_ENDPOINT``) pointing at it while the block runs; yields
    ``s3://<bucket>/datasets``. Callers skip first when moto or s3fs is missing."""
    from moto.server import ThreadedMotoServer

    from macro_data.storage import locations

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MACRO_DATA_S3_ENDPOINT": f"http://{host}:{port}",
    }
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            fs, _ = locations.filesystem(f"s3://{bucket}")
            fs.mkdir(bucket)
            yield f"s3://{bucket}/datasets"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, instance):
    """All six worlds, 300 samples, T=24, H=8, built through Dagster; returns (recipe path, root, dataset dir)."""
    base = tmp_path_factory.mktemp("tiny")
    recipe = write_recipe(base)
    root = base / "root"
    for w in WORLD_IDS:
        build_world(instance, recipe, root, w)
    build_dataset(instance, recipe, root)
    return recipe, root, root / "tiny" / "0.1.0"
