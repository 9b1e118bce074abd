"""Direct whole-chunk I/O against Zarr itself: the same bytes on disk, the same values read back."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from macro_data.errors import StorageError
from macro_data.storage.arrays import ARRAY_CONFIG, create_array
from macro_data.storage.chunks import ChunkIO


def pair(tmp_path, shape, dtype, chunk=10):
    arrays = []
    for name in ("by_zarr", "direct"):
        g = zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="w")
        dims = ("sample", *[f"d{k}" for k in range(len(shape) - 1)])
        arrays.append(create_array(g, "x", shape, dtype, dims, chunk, 3, {}).with_config(ARRAY_CONFIG))
    return arrays


@pytest.mark.parametrize("shape, dtype", [((47, 6, 3), np.float32), ((47,), np.int8), ((47, 5), np.bool_)])
def test_chunks_written_directly_are_the_bytes_zarr_writes(tmp_path, shape, dtype):
    rng = np.random.default_rng(0)
    values = (rng.standard_normal(shape) * 3).astype(dtype)
    by_zarr, direct = pair(tmp_path, shape, dtype)
    by_zarr[:] = values
    io = ChunkIO.for_array(direct)
    assert io is not None
    files = io.write(0, values[:40])  # four whole chunks
    direct[40:] = values[40:]  # the padded last chunk goes through Zarr
    assert len(files) == 4
    chunk_files = sorted(
        p.relative_to(io.folder) for p in io.folder.rglob("*") if p.is_file() and p.name != "zarr.json"
    )
    assert chunk_files == [io.path(k).relative_to(io.folder) for k in range(5)]  # Zarr's own chunk keys
    for k in range(5):
        a = tmp_path / "by_zarr.zarr" / "x" / io.path(k).relative_to(io.folder)
        assert a.read_bytes() == io.path(k).read_bytes(), k
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "direct.zarr"))["x"][:], values)
    # reads: any range, across chunk edges and into the padded last chunk
    for lo, hi in [(0, 47), (3, 27), (40, 47), (10, 20), (5, 5)]:
        np.testing.assert_array_equal(io.read(lo, hi), values[lo:hi])


def test_only_whole_chunks_and_local_stores(tmp_path):
    _, direct = pair(tmp_path, (47, 2), np.float32)
    io = ChunkIO.for_array(direct)
    assert io.whole(0, 40) and io.whole(10, 30) and not io.whole(0, 47) and not io.whole(5, 15)
    with pytest.raises(StorageError, match=r"rows \[40, 47\) are not whole chunks of 10"):
        io.write(40, np.zeros((7, 2), np.float32))
    with pytest.raises(StorageError, match=r"rows \[0, 48\) outside \[0, 47\)"):
        io.read(0, 48)
    in_memory = zarr.create_array(zarr.storage.MemoryStore(), shape=(10, 2), chunks=(5, 2), dtype="f4")
    assert ChunkIO.for_array(in_memory) is None
    g = zarr.open_group(str(tmp_path / "two_axes.zarr"), mode="w")
    assert ChunkIO.for_array(g.create_array("y", shape=(10, 4), chunks=(5, 2), dtype="f4")) is None
    # codec chains other than bytes -> blosc -> crc32c go through Zarr
    other = g.create_array("z", shape=(10, 4), chunks=(5, 4), dtype="f4", compressors=[zarr.codecs.ZstdCodec()])
    assert ChunkIO.for_array(other) is None
    no_crc = g.create_array(
        "w",
        shape=(10, 4),
        chunks=(5, 4),
        dtype="f4",
        compressors=[zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")],
    )
    assert ChunkIO.for_array(no_crc) is None


def test_the_fallback_switch_sends_everything_through_zarr(tmp_path, monkeypatch):
    _, direct = pair(tmp_path, (30, 4), np.float32)
    assert ChunkIO.for_array(direct) is not None
    monkeypatch.setenv("MACRO_DATA_DIRECT_CHUNKS", "0")
    assert ChunkIO.for_array(direct) is None


def test_a_corrupted_or_missing_chunk_is_an_error_naming_array_and_chunk(tmp_path):
    _, direct = pair(tmp_path, (30, 4), np.float32)
    io = ChunkIO.for_array(direct)
    io.write(0, np.arange(120, dtype=np.float32).reshape(30, 4))
    path = io.path(1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=r"array '.*x': chunk 1 .* cannot be decoded: .*checksum"):
        io.read(0, 30)
    np.testing.assert_array_equal(io.read(0, 10), np.arange(40, dtype=np.float32).reshape(10, 4))
    io.path(2).unlink()
    with pytest.raises(StorageError, match=r"chunk 2 cannot be read"):
        io.read(20, 30)


def test_start_writeback_is_best_effort(tmp_path):
    from macro_data.storage.locations import start_writeback

    f = tmp_path / "data.bin"
    f.write_bytes(b"x" * 100_000)
    start_writeback([f, tmp_path / "gone.bin", tmp_path])  # a missing file and a folder are skipped
    assert f.read_bytes() == b"x" * 100_000


def test_a_failed_write_returns_only_after_every_chunk_write_and_never_recreates_a_removed_folder(tmp_path):
    import shutil
    import time

    _, direct = pair(tmp_path, (80, 4), np.float32)
    io = ChunkIO.for_array(direct)
    io.path(3).mkdir(parents=True)  # chunk 3's file name is taken by a folder: its rename fails
    (io.path(3) / "x").write_text("blocks the rename")
    with pytest.raises(OSError):
        io.write(0, np.ones((80, 4), np.float32))
    written = sorted(p for p in io.folder.rglob("*") if p.is_file())
    time.sleep(0.3)
    assert sorted(p for p in io.folder.rglob("*") if p.is_file()) == written  # nothing still in flight
    assert all(io.path(k).is_file() for k in (0, 1, 2, 4, 5, 6, 7))
    shutil.rmtree(io.folder)  # e.g. a failed stage removed its staging area
    with pytest.raises(StorageError, match="is gone"):
        io.write(0, np.ones((10, 4), np.float32))
    assert not io.folder.exists()
