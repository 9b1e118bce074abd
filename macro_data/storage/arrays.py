"""Zarr v3 arrays as macro_data writes them: chunked along samples, compressed, checksummed, hashed.

Codecs: bytes (little-endian) -> Blosc zstd with bitshuffle -> crc32c, so a corrupted chunk fails
to decode instead of returning wrong numbers. Floats are stored as float32 with fill value NaN,
so a missing chunk reads as NaN and is caught by the no-NaN integrity check.

Content hash (``sha256-c-order-le/v1``): SHA-256 of the decoded array's bytes in C order,
little-endian, in its stored dtype (bool as one byte 0/1). It does not depend on chunking or
compression, so two stores with the same numbers have the same hash.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from macro_data.errors import StorageError

HASH_ALGORITHM = "sha256-c-order-le/v1"
HASH_DESCRIPTION = ("SHA-256 of the decoded array's bytes in C (row-major) order, little-endian, "
                    "in the stored dtype (bool as one byte 0/1); independent of chunking and compression")
READ_ROWS = 4096  # samples per read when hashing/streaming an existing array


def codecs(clevel: int) -> list:
    return [BloscCodec(cname="zstd", clevel=clevel, shuffle="bitshuffle"), Crc32cCodec()]


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
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "dimension_names": list(self.dimension_names), "sha256": self.sha256,
                "nbytes": self.nbytes, "stored_bytes": self.stored_bytes}


def directory_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


class ChunkedArrayWriter:
    """Append rows (along the sample axis) in order; whole chunks are written as they fill.

    Memory holds at most one chunk plus the batch being appended, whatever the array's length.
    The content hash is computed on the fly from the exact bytes stored.
    """

    def __init__(self, group: zarr.Group, name: str, shape: Sequence[int], dtype: Any,
                 dimension_names: Sequence[str], chunk_samples: int, clevel: int, attributes: dict | None = None):
        self.dtype = storage_dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.chunk = max(1, min(int(chunk_samples), self.shape[0]))
        self.array = group.create_array(
            name, shape=self.shape, chunks=(self.chunk, *self.shape[1:]), dtype=self.dtype,
            compressors=codecs(clevel), dimension_names=tuple(dimension_names),
            attributes=attributes or {}, fill_value=_fill_value(self.dtype))
        self.name = name
        self.dimension_names = tuple(dimension_names)
        self.path = Path(str(group.store.root)) / group.path / name if hasattr(group.store, "root") else None
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._written = 0
        self._hash = hashlib.sha256()

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.shape[1:]:
            raise StorageError(f"array {self.name!r}: appended rows have shape {rows.shape[1:]}, expected {self.shape[1:]}")
        if self._written + self._pending_rows + rows.shape[0] > self.shape[0]:
            raise StorageError(f"array {self.name!r}: more rows appended than its length {self.shape[0]}")
        self._hash.update(rows.tobytes())
        self._pending.append(rows)
        self._pending_rows += rows.shape[0]
        while self._pending_rows >= self.chunk:
            self._flush(self.chunk)

    def _flush(self, n: int) -> None:
        buf = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self.array[self._written: self._written + n] = buf[:n]
        self._written += n
        rest = buf[n:]
        self._pending = [rest] if rest.shape[0] else []
        self._pending_rows = rest.shape[0]

    def close(self) -> ArraySummary:
        if self._pending_rows:
            self._flush(self._pending_rows)
        if self._written != self.shape[0]:
            raise StorageError(f"array {self.name!r}: {self._written} rows written, expected {self.shape[0]}")
        digest = self._hash.hexdigest()
        self.array.attrs.update({"sha256": digest, "hash_algorithm": HASH_ALGORITHM})
        stored = directory_bytes(self.path) if self.path is not None else 0
        return ArraySummary(self.name, self.shape, self.dtype.name, self.dimension_names, digest,
                            int(np.prod(self.shape)) * self.dtype.itemsize, stored)


def write_small_array(group: zarr.Group, name: str, data: np.ndarray, dimension_names: Sequence[str],
                      clevel: int, attributes: dict | None = None) -> None:
    """A coordinate or other small array written in one piece (one chunk)."""
    data = np.asarray(data)
    if data.dtype.kind == "U":  # labels: variable-length UTF-8 strings
        arr = group.create_array(name, shape=data.shape, dtype=str, dimension_names=tuple(dimension_names),
                                 attributes=attributes or {})
        arr[...] = data
        return
    w = ChunkedArrayWriter(group, name, data.shape, data.dtype, dimension_names, max(1, data.shape[0]), clevel, attributes)
    w.append(data)
    w.close()


def iter_rows(array: zarr.Array, rows: int = READ_ROWS, start: int = 0, stop: int | None = None):
    """Yield ``(lo, block)`` slabs of ``rows`` samples, decoded, in order."""
    stop = array.shape[0] if stop is None else stop
    for lo in range(start, stop, rows):
        yield lo, array[lo: min(lo + rows, stop)]


def content_hash(array: zarr.Array, rows: int = READ_ROWS) -> str:
    """Recompute the content hash by decoding every chunk (raises if a chunk fails its checksum)."""
    h = hashlib.sha256()
    dtype = storage_dtype(array.dtype)
    for _, block in iter_rows(array, rows):
        h.update(np.ascontiguousarray(block, dtype=dtype).tobytes())
    return h.hexdigest()
