"""Whole chunks of local Zarr v3 arrays, encoded and written (or read and decoded) on the calling thread.

Zarr's array API runs every chunk through its asyncio event loop: a task per chunk, thread hops
for the codecs and for the file write, and the checksum computed on the loop thread itself. That
loop holds the GIL often, and competes for it with the thread that simulates the next batch:
while 100,000 nk-sized trajectories were written through it, a thread doing small numpy
operations managed about 290,000 per second, against 550,000 with the writes done here.

:class:`ChunkIO` sends a chunk through the array's own codec chain instead (the same codec objects
in the same order as Zarr's pipeline, through Zarr's ``SupportsSyncCodec`` protocol), so the
bytes on disk are exactly those Zarr writes (tested against Zarr), including the crc32c checksum,
which is verified on every read. Files are written like Zarr's local store does: a temporary file
renamed over the chunk. Only local stores, arrays chunked along their first axis alone and chunks
that are whole (Zarr pads the last, partial one) qualify; :meth:`ChunkIO.for_array` returns
``None`` otherwise and the caller goes through Zarr.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Lock

import numpy as np
import zarr
from zarr.abc.codec import SupportsSyncCodec
from zarr.core.buffer import default_buffer_prototype

from macro_data.errors import StorageError

CODEC_THREADS = max(1, os.cpu_count() or 1)  # chunks of one batch are encoded in parallel (codecs release the GIL)


class SharedThreads:
    """A process-wide thread pool, started on first use and kept: ``pool()`` returns it."""

    def __init__(self, size: int, name: str):
        self.size, self.name = size, name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = Lock()

    def __call__(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.size, thread_name_prefix=self.name)
            return self._pool


# Threads that encode or decode the chunks of one call in parallel. Their tasks never wait on
# others, so the I/O threads that call them cannot deadlock on them.
codec_pool = SharedThreads(CODEC_THREADS, "macro-data-codec")


def write_file(path: Path, data) -> None:
    """Like Zarr's local store: a temporary file beside ``path``, renamed over it once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ChunkIO:
    """Whole-chunk reads and writes of one local array, bypassing Zarr's event loop."""

    def __init__(self, array: zarr.Array, folder: Path):
        self.array = array
        self.folder = folder
        self.chunk = array.chunks[0]
        self.n = array.shape[0]
        self.codecs = list(array.metadata.codecs)
        self.rest = (0,) * (array.ndim - 1)
        spec = array.metadata.get_chunk_spec((0, *self.rest), array.config, default_buffer_prototype())
        self.specs = []  # the spec each codec sees, in encoding order
        for codec in self.codecs:
            self.specs.append(spec)
            spec = codec.resolve_metadata(spec)

    @classmethod
    def for_array(cls, array: zarr.Array) -> "ChunkIO | None":
        root = getattr(array.store, "root", None)  # local stores only (fsspec stores have no root folder)
        if root is None or getattr(array.metadata, "zarr_format", None) != 3:
            return None
        if tuple(array.chunks[1:]) != tuple(array.shape[1:]):
            return None
        if not all(isinstance(c, SupportsSyncCodec) for c in array.metadata.codecs):
            return None
        return cls(array, Path(str(root)) / array.path)

    def path(self, index: int) -> Path:
        return self.folder / self.array.metadata.encode_chunk_key((index, *self.rest))

    def whole(self, lo: int, hi: int) -> bool:
        """Do rows ``lo .. hi - 1`` cover whole chunks only (never the padded last one)?"""
        return lo % self.chunk == 0 and hi % self.chunk == 0 and hi <= self.n - self.n % self.chunk

    # ---- writing ------------------------------------------------------------------------------
    def encode(self, rows: np.ndarray):
        """The stored bytes of one whole chunk."""
        buf = self.specs[0].prototype.nd_buffer.from_numpy_array(np.ascontiguousarray(rows, dtype=self.array.dtype))
        for codec, spec in zip(self.codecs, self.specs):
            buf = codec._encode_sync(buf, spec)
        return buf.as_buffer_like()

    def write_chunk(self, index: int, rows: np.ndarray) -> Path:
        path = self.path(index)
        write_file(path, self.encode(rows))
        return path

    def write(self, lo: int, rows: np.ndarray) -> list[Path]:
        """Rows ``lo .. lo + len(rows) - 1``, whole chunks (see :meth:`whole`); returns the files written."""
        hi = lo + rows.shape[0]
        if not self.whole(lo, hi):
            raise StorageError(f"array {self.array.name!r}: rows [{lo}, {hi}) are not whole chunks of {self.chunk}")
        first = lo // self.chunk
        parts = [(first + k, rows[k * self.chunk:(k + 1) * self.chunk]) for k in range((hi - lo) // self.chunk)]
        return list(codec_pool().map(lambda p: self.write_chunk(*p), parts))

    # ---- reading ------------------------------------------------------------------------------
    def decode(self, index: int, data: bytes) -> np.ndarray:
        buf = self.specs[-1].prototype.buffer.from_bytes(data)
        try:
            for codec, spec in zip(reversed(self.codecs), reversed(self.specs)):
                buf = codec._decode_sync(buf, spec)
        except Exception as exc:
            raise StorageError(f"array {self.array.name!r}: chunk {index} ({self.path(index)}) cannot be decoded: "
                               f"{exc}") from exc
        return buf.as_numpy_array().reshape(self.specs[0].shape)

    def read_chunk(self, index: int) -> np.ndarray:
        try:
            data = self.path(index).read_bytes()
        except OSError as exc:
            raise StorageError(f"array {self.array.name!r}: chunk {index} cannot be read: {exc}") from exc
        return self.decode(index, data)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo .. hi - 1`` (any range within the array), decoded from the chunks that hold them."""
        if not 0 <= lo <= hi <= self.n:
            raise StorageError(f"array {self.array.name!r}: rows [{lo}, {hi}) outside [0, {self.n})")
        out = np.empty((hi - lo, *self.array.shape[1:]), dtype=self.array.dtype)
        first, last = lo // self.chunk, -(-hi // self.chunk) if hi > lo else lo // self.chunk

        def fill(index: int) -> None:
            a, b = max(lo, index * self.chunk), min(hi, (index + 1) * self.chunk)
            out[a - lo:b - lo] = self.read_chunk(index)[a - index * self.chunk:b - index * self.chunk]

        list(codec_pool().map(fill, range(first, last)))
        return out
