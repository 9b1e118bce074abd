"""Zarr v3 arrays as macro_data writes them: chunked along samples, compressed, checksummed, hashed.

Codecs: bytes (little-endian) -> Blosc LZ4 with byte shuffle -> crc32c, so a corrupted chunk fails
to decode instead of returning wrong numbers. Simulated float32 data compress little with any codec
(zstd at level 3 with bitshuffle stores 90.5 % of the bytes, LZ4 with byte shuffle 92.7 %), and
LZ4 encodes 3.4 times and decodes 1.8 times as fast, which every stage, check and training epoch
reading the arrays pays (docs/benchmarks.md, "Chunk codec"). Floats are stored as float32 with
fill value NaN, so a missing chunk reads as NaN and is caught by the no-NaN integrity check.

Content hash (``sha256-segments-256/v1``): SHA-256 over the concatenated SHA-256 digests of
consecutive 256-sample segments of the decoded array (rows ``[256 k, 256 k + 256)`` along the
sample axis; bytes in C order, little-endian, in the stored dtype, bool as one byte 0/1; the last
segment may be shorter). It does not depend on chunking or compression, so two stores with the
same numbers have the same hash, and disjoint regions can be hashed by different workers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as cf_wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from macro_data.errors import StorageError
from macro_data.hashing import (  # noqa: F401 - the hash definition, re-exported for the writers' callers
    HASH_ALGORITHM,
    HASH_DESCRIPTION,
    HASH_SEGMENT,
    combine_digests,
    hash_blocks,
    segment_digests,
)
from macro_data.storage.chunks import ChunkIO, SharedThreads
from macro_data.storage.locations import start_writeback

IO_THREADS = 8  # process-wide threads for background reads and writes (see io_pool)
READ_ROWS = 16 * HASH_SEGMENT  # samples per read when hashing/streaming an existing array


# Every chunk is written, even one equal to the fill value: it saves Zarr a scan of each chunk, and a
# chunk that really is all NaN is then stored (and caught by the integrity checks) rather than absent.
ARRAY_CONFIG = {"write_empty_chunks": True}


def codecs(clevel: int) -> list:
    return [BloscCodec(cname="lz4", clevel=clevel, shuffle="shuffle"), Crc32cCodec()]


def storage_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    return np.dtype("<f4") if dtype.kind == "f" else dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype


def _fill_value(dtype: np.dtype) -> Any:
    return np.float32("nan") if dtype.kind == "f" else (False if dtype.kind == "b" else 0)


@dataclass
class ArraySummary:
    """What a person (and the manifest) needs to know about a written array."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    dimension_names: tuple[str, ...]
    sha256: str
    nbytes: int  # decoded size
    stored_bytes: int  # bytes on disk

    @property
    def compression_ratio(self) -> float:
        return self.nbytes / self.stored_bytes if self.stored_bytes else float("nan")

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "dimension_names": list(self.dimension_names),
            "sha256": self.sha256,
            "nbytes": self.nbytes,
            "stored_bytes": self.stored_bytes,
        }


def directory_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


# Chunk files named c.<i>.0.0 side by side rather than nested c/<i>/0/0: arrays are chunked along samples
# only, so nesting made two folders per chunk, and every publish (which hard-links the arrays it keeps into
# a new group and removes the old one) created, fsynced and removed them all.
CHUNK_KEY_ENCODING = {"name": "default", "separator": "."}


def create_array(
    group: zarr.Group,
    name: str,
    shape: Sequence[int],
    dtype: Any,
    dimension_names: Sequence[str],
    chunk_samples: int,
    clevel: int,
    attributes: dict | None = None,
) -> zarr.Array:
    """An empty array chunked along samples only, with the standard codecs."""
    dtype = storage_dtype(dtype)
    shape = tuple(int(s) for s in shape)
    return group.create_array(
        name,
        shape=shape,
        chunks=(max(1, min(int(chunk_samples), shape[0])), *shape[1:]),
        dtype=dtype,
        compressors=codecs(clevel),
        dimension_names=tuple(dimension_names),
        attributes=attributes or {},
        fill_value=_fill_value(dtype),
        chunk_key_encoding=CHUNK_KEY_ENCODING,
    )


class RegionWriter:
    """Appends rows ``start .. stop - 1`` of an existing array in order, writing whole chunks as they fill.

    ``start`` must be on a chunk and a hash-segment boundary, and ``stop`` on a chunk boundary or the
    array's end, so disjoint regions never share a chunk and can be written by different workers.
    Whole chunks are written in one call so that Zarr encodes and stores them concurrently. Segment
    digests are computed from the exact bytes stored.

    ``background=True``: hashing, encoding and writing of one append run on an I/O thread
    (:func:`io_pool`) while the caller computes the next rows (that work releases the GIL); the next
    append first waits for it, so one batch at most is in flight and its order is kept. An error
    there is raised by the next ``append`` or by ``close``. A
    caller that fails midway calls :meth:`abort` (or uses :func:`region_writers`) so that nothing is
    still writing when its staging area is removed.
    """

    def __init__(self, array: zarr.Array, start: int = 0, stop: int | None = None, background: bool = False):
        self.array = array.with_config(ARRAY_CONFIG)
        self.n = array.shape[0]
        self.start, self.stop = start, self.n if stop is None else stop
        self.chunk = array.chunks[0]
        self.dtype = storage_dtype(array.dtype)
        if (
            self.start % self.chunk
            or self.start % HASH_SEGMENT
            or not (0 <= self.start <= self.stop <= self.n)
            or (self.stop % self.chunk and self.stop != self.n)
        ):
            raise StorageError(
                f"array {array.name!r}: region [{self.start}, {self.stop}) is not aligned to its chunks "
                f"({self.chunk} samples) and hash segments ({HASH_SEGMENT})"
            )
        self._appended = 0
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._written = self.start
        self._hash_carry = np.empty((0, *array.shape[1:]), dtype=self.dtype)
        self.digests: list[bytes] = []
        self._background = background
        self._future: Future | None = None
        self._chunks = ChunkIO.for_array(self.array)

    def append(self, rows: np.ndarray) -> None:
        """Queue the next rows. In the background mode the writer may read ``rows`` until ``close``:
        the caller hands them over and does not modify them afterwards."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.array.shape[1:]:
            raise StorageError(
                f"array {self.array.name!r}: appended rows have shape {rows.shape[1:]}, expected {self.array.shape[1:]}"
            )
        if self.start + self._appended + rows.shape[0] > self.stop:
            raise StorageError(
                f"array {self.array.name!r}: more rows appended than its region [{self.start}, {self.stop})"
            )
        self._appended += rows.shape[0]
        if not self._background:
            self._take(rows)
            return
        self._wait()  # raises the background error, if any
        self._future = io_pool().submit(self._take, rows)

    def _take(self, rows: np.ndarray) -> None:
        # Copies only the rows that complete a partial chunk; whole chunks are written from ``rows``.
        self._hash(rows)
        if self._pending_rows:
            need = self.chunk - self._pending_rows
            if rows.shape[0] < need:
                self._pending.append(rows.copy())
                self._pending_rows += rows.shape[0]
                return
            self._write(np.concatenate([*self._pending, rows[:need]]))
            self._pending, self._pending_rows = [], 0
            rows = rows[need:]
        whole = rows.shape[0] - rows.shape[0] % self.chunk
        if whole:
            self._write(rows[:whole])
        if rows.shape[0] > whole:  # a copy of the partial chunk, so that the batch itself can be freed
            self._pending, self._pending_rows = [rows[whole:].copy()], rows.shape[0] - whole

    def _hash(self, rows: np.ndarray) -> None:
        if self._hash_carry.shape[0]:
            need = HASH_SEGMENT - self._hash_carry.shape[0]
            if rows.shape[0] < need:
                self._hash_carry = np.concatenate([self._hash_carry, rows])
                return
            self.digests += segment_digests(np.concatenate([self._hash_carry, rows[:need]]))
            rows = rows[need:]
        whole = rows.shape[0] - rows.shape[0] % HASH_SEGMENT
        self.digests += segment_digests(rows[:whole])
        self._hash_carry = rows[whole:].copy()

    def _write(self, rows: np.ndarray) -> None:
        """Whole chunks (or the region's tail) in one call. On a local disk whole chunks are encoded
        and written directly (:mod:`macro_data.storage.chunks`, the bytes Zarr would write) and
        their writeback starts at once; anything else goes through Zarr, which encodes and stores
        the chunks of one call concurrently."""
        lo, hi = self._written, self._written + rows.shape[0]
        if self._chunks is not None and self._chunks.whole(lo, hi):
            start_writeback(self._chunks.write(lo, rows))
        else:
            self.array[lo:hi] = rows
        self._written = hi

    def _wait(self) -> None:
        if self._future is not None:
            future, self._future = self._future, None
            future.result()

    def close(self) -> list[bytes]:
        """Finish the queued writes and flush the tail; the region's segment digests in order."""
        self._wait()
        if self._pending_rows:
            self._write(np.concatenate(self._pending))
            self._pending, self._pending_rows = [], 0
        if self._written != self.stop:
            raise StorageError(
                f"array {self.array.name!r}: {self._written - self.start} rows written to region "
                f"[{self.start}, {self.stop}), expected {self.stop - self.start}"
            )
        if self._hash_carry.shape[0]:
            self.digests += segment_digests(self._hash_carry)
            self._hash_carry = self._hash_carry[:0]
        return self.digests

    def abort(self) -> None:
        """Wait for the append in flight, if any (its error is dropped: the region has failed)."""
        if self._future is not None and not self._future.cancel():
            cf_wait([self._future])
        self._future = None


@contextlib.contextmanager
def region_writers(group: zarr.Group, names: Sequence[str], start: int, stop: int) -> Iterator[dict[str, RegionWriter]]:
    """Background :class:`RegionWriter` s of ``names`` over one region; all aborted if the block raises."""
    writers = {name: RegionWriter(group[name], start, stop, background=True) for name in names}
    try:
        yield writers
    except BaseException:
        for w in writers.values():
            w.abort()
        raise


# The process's background I/O threads, started once and kept, sharing malloc arenas
# (macro_data.memory): a new thread per region would each take a fresh arena, and the batch
# buffers freed there stay mapped, so a process's memory would creep up with the number of
# regions. Tasks never wait for one another.
io_pool = SharedThreads(IO_THREADS, "macro-data-io")


def read_ahead(loaders: Iterable[Callable[[], Any]]) -> Iterator[Any]:
    """``loader()`` for each loader in order; while the caller works on one value the next one loads
    on an I/O thread (decoding releases the GIL), so reading overlaps computing."""
    it = iter(loaders)
    first = next(it, None)
    future = io_pool().submit(first) if first is not None else None
    try:
        while future is not None:
            value = future.result()
            nxt = next(it, None)
            future = io_pool().submit(nxt) if nxt is not None else None
            yield value
    finally:
        if future is not None and not future.cancel():
            cf_wait([future])


def summarize(array: zarr.Array, digests: Sequence[bytes], stored_bytes: int) -> ArraySummary:
    """Record the content hash in the array's attributes and describe it."""
    digest = combine_digests(digests)
    array.attrs.update({"sha256": digest, "hash_algorithm": HASH_ALGORITHM})
    return describe(array, digest, stored_bytes)


def describe(array: zarr.Array, digest: str, stored_bytes: int) -> ArraySummary:
    """The :class:`ArraySummary` of ``array`` whose content hash is ``digest``."""
    dtype = storage_dtype(array.dtype)
    return ArraySummary(
        array.basename,
        tuple(array.shape),
        dtype.name,
        tuple(array.metadata.dimension_names or ()),
        digest,
        int(np.prod(array.shape)) * dtype.itemsize,
        stored_bytes,
    )


class ChunkedArrayWriter:
    """A whole array written in one stream: :func:`create_array` + :class:`RegionWriter` over all rows."""

    def __init__(self, group: zarr.Group, name: str, *args: Any, **kwargs: Any):
        """The arguments of :func:`create_array`."""
        self.array = create_array(group, name, *args, **kwargs)
        self.writer = RegionWriter(self.array)
        root = getattr(group.store, "root", None)
        self.path = Path(str(root)) / group.path / name if root is not None else None

    def append(self, rows: np.ndarray) -> None:
        self.writer.append(rows)

    def close(self) -> ArraySummary:
        digests = self.writer.close()
        return summarize(self.array, digests, directory_bytes(self.path) if self.path is not None else 0)


def write_small_array(
    group: zarr.Group,
    name: str,
    data: np.ndarray,
    dimension_names: Sequence[str],
    clevel: int,
    attributes: dict | None = None,
) -> None:
    """A coordinate or other small array written in one piece (one chunk)."""
    data = np.asarray(data)
    if data.dtype.kind == "U":  # labels: variable-length UTF-8 strings
        arr = group.create_array(
            name, shape=data.shape, dtype=str, dimension_names=tuple(dimension_names), attributes=attributes or {}
        )
        arr[...] = data
        return
    w = ChunkedArrayWriter(
        group, name, data.shape, data.dtype, dimension_names, max(1, data.shape[0]), clevel, attributes
    )
    w.append(data)
    w.close()


def read_rows(array: zarr.Array, zarr_on_error: bool = False) -> Callable[[int, int], np.ndarray]:
    """``read(lo, hi)``: rows ``lo .. hi - 1`` of ``array``, decoded directly from its chunk files where
    the store is local (:mod:`macro_data.storage.chunks`), through Zarr otherwise (and by slicing
    for an in-memory array).

    A direct read raises on a missing or damaged chunk. With ``zarr_on_error`` such a read is
    repeated through Zarr's API, so a check sees what any Zarr reader sees: a missing chunk as the
    fill value (NaN), a damaged one as Zarr's error."""
    chunks = ChunkIO.for_array(array) if isinstance(array, zarr.Array) else None
    if chunks is None:
        return lambda lo, hi: array[lo:hi]
    if not zarr_on_error:
        return chunks.read

    def read(lo: int, hi: int) -> np.ndarray:
        try:
            return chunks.read(lo, hi)
        except StorageError:
            return array[lo:hi]

    return read


def iter_rows(
    array: zarr.Array, rows: int = READ_ROWS, start: int = 0, stop: int | None = None, zarr_on_error: bool = False
):
    """Yield ``(lo, block)`` slabs of ``rows`` samples, decoded (as :func:`read_rows` does), in order."""
    stop = array.shape[0] if stop is None else stop
    read = read_rows(array, zarr_on_error)
    for lo in range(start, stop, rows):
        yield lo, read(lo, min(lo + rows, stop))


def content_hash(array: zarr.Array, rows: int = READ_ROWS) -> str:
    """Recompute the content hash by decoding every chunk (raises if a chunk fails its checksum)."""
    rows = max(HASH_SEGMENT, rows - rows % HASH_SEGMENT)
    blocks = (block for _, block in iter_rows(array, rows, zarr_on_error=True))
    return hash_blocks(blocks, storage_dtype(array.dtype))
