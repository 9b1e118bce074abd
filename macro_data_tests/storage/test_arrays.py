"""Chunked writing, content hashes and checksums of Zarr arrays, on real stores on disk."""

import hashlib

import numpy as np
import pytest
import zarr

from macro_data.errors import StorageError
from macro_data.storage.arrays import ChunkedArrayWriter, content_hash


def _segment_hash(a):
    """The documented algorithm, written out independently: sha256 over sha256 of 256-row segments."""
    return hashlib.sha256(
        b"".join(hashlib.sha256(a[i : i + 256].tobytes()).digest() for i in range(0, a.shape[0], 256))
    ).hexdigest()


def _write(tmp_path, data, chunk, batches, name="x"):
    g = zarr.open_group(str(tmp_path / f"g{chunk}.zarr"), mode="w")
    w = ChunkedArrayWriter(g, name, data.shape, data.dtype, [f"d{i}" for i in range(data.ndim)], chunk, 3)
    lo = 0
    for b in batches:
        w.append(data[lo : lo + b])
        lo += b
    assert lo == data.shape[0]
    return g, w.close()


@pytest.mark.parametrize("chunk,batches", [(7, [5, 5, 5, 5, 3]), (10, [23]), (100, [1] * 23), (3, [10, 13])])
def test_round_trip_and_hash_independent_of_chunking(tmp_path, chunk, batches):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((23, 4, 3))
    g, summary = _write(tmp_path, data, chunk, batches)
    stored = g["x"][:]
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, data.astype(np.float32))
    expected = _segment_hash(data.astype("<f4"))
    assert summary.sha256 == expected
    assert content_hash(g["x"], rows=5) == expected
    assert g["x"].attrs["sha256"] == expected
    assert tuple(g["x"].metadata.dimension_names) == ("d0", "d1", "d2")
    assert summary.stored_bytes > 0


@pytest.mark.parametrize("chunk,batches", [(256, [600, 400]), (300, [1000]), (1000, [7] * 142 + [6])])
def test_multi_segment_hash(tmp_path, chunk, batches):
    data = np.random.default_rng(3).standard_normal((1000, 3))
    g, summary = _write(tmp_path, data, chunk, batches)
    assert summary.sha256 == _segment_hash(data.astype("<f4")) == content_hash(g["x"], rows=512)


def test_regions_written_separately_give_the_whole_array_hash(tmp_path):
    from macro_data.storage.arrays import RegionWriter, combine_digests, create_array

    data = np.random.default_rng(4).standard_normal((1000, 2))
    g = zarr.open_group(str(tmp_path / "r.zarr"), mode="w")
    arr = create_array(g, "x", data.shape, data.dtype, ["a", "b"], 128, 1)
    digests = {}
    for a, b in [(512, 1000), (0, 512)]:  # out of order, as parallel workers would
        w = RegionWriter(arr, a, b)
        w.append(data[a:b])
        digests[a] = w.close()
    assert combine_digests(digests[0] + digests[512]) == _segment_hash(data.astype("<f4"))
    np.testing.assert_array_equal(arr[:], data.astype(np.float32))
    with pytest.raises(StorageError, match="not aligned"):
        RegionWriter(arr, 100, 228)


def test_bool_and_int8(tmp_path):
    data = np.array([True, False, True, True])
    g, s = _write(tmp_path, data, 3, [4])
    np.testing.assert_array_equal(g["x"][:], data)
    assert s.sha256 == hashlib.sha256(hashlib.sha256(bytes([1, 0, 1, 1])).digest()).hexdigest()


def test_flipped_byte_is_detected(tmp_path):
    data = np.random.default_rng(1).standard_normal((50, 8))
    g, _ = _write(tmp_path, data, 10, [50])
    chunk = tmp_path / "g10.zarr" / "x" / "c.2.0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chunk.write_bytes(bytes(raw))
    with pytest.raises(Exception, match="checksum"):
        zarr.open_array(str(tmp_path / "g10.zarr" / "x"))[:]


def test_missing_chunk_reads_as_nan(tmp_path):
    data = np.random.default_rng(2).standard_normal((30, 2))
    _write(tmp_path, data, 10, [30])
    (tmp_path / "g10.zarr" / "x" / "c.1.0").unlink()
    back = zarr.open_array(str(tmp_path / "g10.zarr" / "x"))[:]
    assert np.isnan(back[10:20]).all() and not np.isnan(back[:10]).any()


def test_wrong_row_count_is_an_error(tmp_path):
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    w = ChunkedArrayWriter(g, "x", (10, 2), np.float64, ("a", "b"), 4, 3)
    w.append(np.zeros((6, 2)))
    with pytest.raises(StorageError, match="6 rows written to region"):
        w.close()
    with pytest.raises(StorageError, match="more rows appended"):
        w.append(np.zeros((5, 2)))
    with pytest.raises(StorageError, match="shape"):
        w.append(np.zeros((1, 3)))


@pytest.mark.parametrize("chunk,batches", [(100, [37, 250, 13, 700]), (256, [1000]), (7, [1] * 50 + [950])])
def test_background_writer_stores_and_hashes_what_it_was_given(tmp_path, chunk, batches):
    from macro_data.storage.arrays import combine_digests, create_array, region_writers

    data = np.random.default_rng(5).standard_normal((1000, 3))
    g = zarr.open_group(str(tmp_path / "bg.zarr"), mode="w")
    create_array(g, "x", data.shape, data.dtype, ["a", "b"], chunk, 1)
    with region_writers(g, ["x"], 0, 1000) as writers:
        lo = 0
        for b in batches:
            writers["x"].append(data[lo : lo + b])
            lo += b
        digests = writers["x"].close()
    np.testing.assert_array_equal(g["x"][:], data.astype(np.float32))
    assert combine_digests(digests) == _segment_hash(data.astype("<f4"))


def test_background_write_error_reaches_the_caller(tmp_path):
    from macro_data.storage.arrays import create_array, region_writers

    g = zarr.open_group(str(tmp_path / "err.zarr"), mode="w")
    create_array(g, "x", (400, 2), np.float64, ["a", "b"], 100, 1)
    (tmp_path / "err.zarr" / "x" / "c.1.0").mkdir()  # a folder where a chunk file belongs
    with pytest.raises(OSError):
        with region_writers(g, ["x"], 0, 400) as writers:
            for _ in range(0, 400, 100):  # the failure happens on the writer's thread
                writers["x"].append(np.ones((100, 2)))
            writers["x"].close()


def test_a_failing_region_waits_for_its_write_in_flight(tmp_path):
    from macro_data.storage.arrays import create_array, region_writers

    g = zarr.open_group(str(tmp_path / "abort.zarr"), mode="w")
    n = 200_000  # big enough that encoding takes far longer than raising does
    create_array(g, "x", (n, 50), np.float64, ["a", "b"], 10_000, 9)
    data = np.random.default_rng(6).standard_normal((n, 50))
    with pytest.raises(RuntimeError, match="region failed"):
        with region_writers(g, ["x"], 0, n) as writers:
            writers["x"].append(data)
            in_flight = writers["x"]._future
            raise RuntimeError("region failed")
    # the staging area may be removed right after this: nothing may still be writing into it
    assert in_flight is not None and in_flight.done()


def test_read_ahead_keeps_order_and_raises_the_loaders_error():
    from macro_data.storage.arrays import read_ahead

    assert list(read_ahead(lambda i=i: i * i for i in range(7))) == [i * i for i in range(7)]

    def bad():
        raise ValueError("corrupt chunk")

    got = []
    with pytest.raises(ValueError, match="corrupt chunk"):
        for v in read_ahead([lambda: 1, bad, lambda: 3]):
            got.append(v)
    assert got == [1]


def test_crc32c_checksums_run_compiled_code():
    """Every chunk is checksummed with crc32c; google-crc32c silently falls back to pure Python when its
    extension does not load (1.5.0 needs setuptools' pkg_resources, absent from a fresh environment),
    which made the whole suite twice as slow. The lower bound admits only versions that load it."""
    import google_crc32c

    assert google_crc32c.implementation == "c"


@pytest.mark.parametrize("cuts", [[], [1], [255, 256, 300], [100, 612, 1000], list(range(7, 1100, 97))])
@pytest.mark.parametrize("dtype", ["float32", "bool", "int8"])
def test_segment_hasher_equals_the_hash_of_whole_segments(cuts, dtype):
    from macro_data.hashing import SegmentHasher, hash_blocks

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((1100, 3, 2)) * 3).astype(dtype)
    whole = hash_blocks([x[i : i + 512] for i in range(0, len(x), 512)], np.dtype(dtype))
    hasher = SegmentHasher(np.dtype(dtype))
    for lo, hi in zip([0, *cuts], [*cuts, len(x)]):
        hasher.update(x[lo:hi])
    assert hasher.hexdigest() == whole
    empty = SegmentHasher(np.dtype(dtype))
    assert empty.hexdigest() == hash_blocks([], np.dtype(dtype))
