"""Atomic publish of world groups: old or new, never a mix, never debris visible to readers."""

import os
import subprocess
import sys

import numpy as np
import pytest
import zarr

from macro_data.storage.arrays import ChunkedArrayWriter
from macro_data.storage.publish import WorldStore, _swap_by_renames, recover


def _stage_arrays(store, label, values: dict, attrs=None):
    with store.staging(label, attrs or {}) as g:
        for name, v in values.items():
            w = ChunkedArrayWriter(g, name, v.shape, v.dtype, ["sample"], 4, 1)
            w.append(v)
            w.close()
        store.publish(g, list(values), attrs or {"who": label})


def test_publish_replaces_only_owned_arrays(tmp_path):
    store = WorldStore(tmp_path, "nk")
    _stage_arrays(store, "a", {"theta": np.arange(10.0), "shocks": np.ones(10)})
    _stage_arrays(store, "b", {"split": np.zeros(10, dtype=np.int8)})
    _stage_arrays(store, "a", {"theta": np.arange(10.0) * 2})
    g = store.open()
    np.testing.assert_array_equal(g["theta"][:], np.arange(10.0) * 2)
    np.testing.assert_array_equal(g["shocks"][:], np.ones(10))
    np.testing.assert_array_equal(g["split"][:], np.zeros(10))
    assert store.array_names() == {"theta", "shocks", "split"}
    # nothing left in staging, and readers see only the group
    assert list((tmp_path / ".staging" / "nk").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", ".staging", "nk.zarr"]


def test_failure_before_publish_keeps_previous_version(tmp_path):
    store = WorldStore(tmp_path, "nk")
    _stage_arrays(store, "a", {"theta": np.arange(10.0)})
    with pytest.raises(RuntimeError):
        with store.staging("a", {}) as g:
            w = ChunkedArrayWriter(g, "theta", (10,), np.float64, ["sample"], 4, 1)
            w.append(np.full(6, 99.0))
            raise RuntimeError("disk full, say")
    np.testing.assert_array_equal(store.open()["theta"][:], np.arange(10.0))
    assert list((tmp_path / ".staging" / "nk").iterdir()) == []


def test_published_files_are_not_shared_with_a_later_write(tmp_path):
    """Hard links used for arrays other stages own must never let a later write change old data."""
    store = WorldStore(tmp_path, "nk")
    _stage_arrays(store, "a", {"theta": np.arange(10.0)})
    old = zarr.open_array(str(store.path / "theta"))
    inode_before = os.stat(store.path / "theta" / "c.0").st_ino
    _stage_arrays(store, "b", {"split": np.zeros(10, dtype=np.int8)})
    _stage_arrays(store, "a", {"theta": np.arange(10.0) + 5})
    assert os.stat(store.path / "theta" / "c.0").st_ino != inode_before
    np.testing.assert_array_equal(old[:], np.arange(10.0) + 5)  # path-based reads see the new version


def test_rename_pair_fallback_and_crash_recovery(tmp_path):
    store = WorldStore(tmp_path, "nk")
    _stage_arrays(store, "a", {"theta": np.arange(10.0)})
    # a crash after "target -> target.old" and before "new -> target": recover restores the old group
    os.rename(store.path, store.path.with_name("nk.zarr.old"))
    assert not store.path.exists()
    recover(store)
    np.testing.assert_array_equal(store.open()["theta"][:], np.arange(10.0))
    # the fallback swap itself
    new = tmp_path / "new.zarr"
    zarr.open_group(str(new), mode="w").create_array("theta", data=np.arange(3.0))
    _swap_by_renames(new, store.path)
    assert zarr.open_group(str(store.path))["theta"].shape == (3,)
    assert zarr.open_group(str(new))["theta"].shape == (10,)  # the old one, left for the caller to remove


def test_debris_of_dead_processes_is_cleaned(tmp_path):
    store = WorldStore(tmp_path, "nk")
    _stage_arrays(store, "a", {"theta": np.arange(4.0)})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    debris = store.staging_dir / f"stage.x-{socket.gethostname()}-{int(dead.stdout)}-deadbeef"
    debris.mkdir(parents=True)
    alive = store.staging_dir / f"stage.x-{socket.gethostname()}-{os.getpid()}-cafecafe"
    alive.mkdir()
    store.clean_debris()
    assert not debris.exists() and alive.exists()
