"""Whole chunks of local Zarr v3 arrays, encoded and written (or read and decoded) on the calling thread.

Zarr's array API runs every chunk through its asyncio event loop: a task per chunk, thread hops
for the codecs and for the file write, and the checksum computed on the loop thread itself. That
loop holds the GIL often, and competes for it with the thread that simulates the next batch:
while 100,000 nk-sized trajectories were written through it, a thread doing small numpy
operations managed about 290,000 per second, against 550,000 with the writes done here.

:class:`ChunkIO` encodes and decodes whole chunks itself, from the array's metadata document
(``zarr.json``, as the Zarr v3 specification defines it) with the codec libraries Zarr itself
uses (numcodecs' Blosc and google-crc32c), through their public APIs only. It knows exactly one
codec chain, the one :mod:`macro_data.storage.arrays` creates: ``bytes`` (little-endian) ->
``blosc`` -> ``crc32c``. The bytes on disk are those Zarr writes (tested against every supported
Zarr), and Zarr reads them back through its public API. Files are written like Zarr's local
store does: a temporary file renamed over the chunk (:func:`macro_data.files.atomic_write`).

Anything else falls back to Zarr's own array API (:meth:`ChunkIO.for_array` returns ``None``):
stores that are not local folders, other codecs, chunk grids or key encodings, arrays chunked along
more than their first axis, and chunks that are not whole (Zarr pads the last, partial one).
``MACRO_DATA_DIRECT_CHUNKS=0`` in the environment forces the fallback everywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import google_crc32c
import numcodecs
import numpy as np
import zarr

from macro_data.errors import StorageError
from macro_data.files import atomic_write

CODEC_THREADS = max(1, os.cpu_count() or 1)  # chunks of one batch are encoded in parallel (codecs release the GIL)
BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


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


def direct_chunks_enabled() -> bool:
    """``MACRO_DATA_DIRECT_CHUNKS=0`` sends every chunk through Zarr's array API."""
    return os.environ.get("MACRO_DATA_DIRECT_CHUNKS", "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class ChunkCodec:
    """The one codec chain written directly: ``bytes`` (little-endian) -> ``blosc`` -> ``crc32c``."""

    dtype: np.dtype  # little-endian storage dtype
    blosc: dict  # the blosc codec's configuration, as in zarr.json

    @classmethod
    def from_metadata(cls, meta: dict) -> ChunkCodec | None:
        """The codec of a ``zarr.json`` document, or ``None`` if its chain is not the known one."""
        codecs = meta.get("codecs")
        try:
            dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        except (KeyError, TypeError):
            return None
        if dtype.kind not in "fiub" or not isinstance(codecs, list) or len(codecs) != 3:
            return None
        first, blosc, crc = codecs
        if first.get("name") != "bytes" or (first.get("configuration") or {}).get("endian", "little") != "little":
            return None
        if crc.get("name") != "crc32c" or crc.get("configuration"):
            return None
        config = blosc.get("configuration") or {}
        if blosc.get("name") != "blosc" or config.get("shuffle") not in BLOSC_SHUFFLE or "typesize" not in config:
            return None
        return cls(dtype, config)

    def _blosc(self) -> numcodecs.Blosc:
        c = self.blosc
        return numcodecs.Blosc(
            cname=c["cname"],
            clevel=int(c["clevel"]),
            shuffle=BLOSC_SHUFFLE[c["shuffle"]],
            blocksize=int(c.get("blocksize", 0)),
            typesize=int(c["typesize"]),
        )

    def encode(self, rows: np.ndarray) -> bytes:
        raw = np.ascontiguousarray(rows, dtype=self.dtype).reshape(-1).view(np.uint8)
        compressed = self._blosc().encode(raw)
        return bytes(compressed) + google_crc32c.value(compressed).to_bytes(4, "little")

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """The chunk's values; ``ValueError`` on a checksum mismatch or a chunk of the wrong size."""
        view = np.frombuffer(data, dtype=np.uint8)
        if view.size < 4:
            raise ValueError(f"{view.size} bytes, shorter than the crc32c checksum")
        body, stored = view[:-4], view[-4:].tobytes()
        if google_crc32c.value(body).to_bytes(4, "little") != stored:
            raise ValueError("stored and computed crc32c checksum do not match")
        raw = self._blosc().decode(body)
        values = np.frombuffer(raw, dtype=self.dtype)
        if values.size != int(np.prod(shape)):
            raise ValueError(f"{values.size} values decoded, expected {int(np.prod(shape))} for shape {shape}")
        return values.reshape(shape)


def direct_layout(meta: Mapping, shape: tuple[int, ...]) -> tuple[ChunkCodec, int, str] | None:
    """``(codec, rows per chunk, chunk key separator)`` of the Zarr v3 array described by ``meta`` (its
    ``zarr.json``) with ``shape``, where whole chunks can be read and written directly; else ``None``
    (the direct path is switched off, or the layout or codecs are not the ones handled here)."""
    if not direct_chunks_enabled() or meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
        return None
    grid = meta.get("chunk_grid") or {}
    keys = meta.get("chunk_key_encoding") or {}
    chunk_shape = tuple((grid.get("configuration") or {}).get("chunk_shape") or ())
    separator = (keys.get("configuration") or {}).get("separator", "/")
    if (
        not shape
        or grid.get("name") != "regular"
        or len(chunk_shape) != len(shape)
        or tuple(chunk_shape[1:]) != tuple(shape[1:])
        or keys.get("name") != "default"
        or separator not in ("/", ".")
    ):
        return None
    codec = ChunkCodec.from_metadata(dict(meta))
    return None if codec is None else (codec, int(chunk_shape[0]), separator)


class ChunkIO:
    """Whole-chunk reads and writes of one local array, bypassing Zarr's event loop."""

    def __init__(self, name: str, folder: Path, shape: tuple[int, ...], chunk: int, codec: ChunkCodec, separator: str):
        self.name = name
        self.folder = folder
        self.shape = shape
        self.chunk = chunk
        self.n = shape[0]
        self.codec = codec
        self.separator = separator
        self.rest = (0,) * (len(shape) - 1)

    @classmethod
    def for_array(cls, array: zarr.Array) -> ChunkIO | None:
        """The direct path for ``array``, or ``None`` where Zarr's own API must be used (see module doc)."""
        if not direct_chunks_enabled() or not isinstance(array.store, zarr.storage.LocalStore):
            return None
        folder = Path(str(array.store.root)) / array.path
        try:
            meta = json.loads((folder / "zarr.json").read_bytes())
        except (OSError, ValueError):
            return None
        shape = tuple(int(s) for s in meta.get("shape", ()))
        layout = direct_layout(meta, shape)
        if layout is None:
            return None
        codec, chunk, separator = layout
        return cls(array.name, folder, shape, chunk, codec, separator)

    def path(self, index: int) -> Path:
        """The file of chunk ``index`` (the specification's default chunk key encoding)."""
        return self.folder / self.separator.join(["c", *map(str, (index, *self.rest))])

    def whole(self, lo: int, hi: int) -> bool:
        """Do rows ``lo .. hi - 1`` cover whole chunks only (never the padded last one)?"""
        return lo % self.chunk == 0 and hi % self.chunk == 0 and hi <= self.n - self.n % self.chunk

    # ---- writing ------------------------------------------------------------------------------
    def write_chunk(self, index: int, rows: np.ndarray) -> Path:
        path = self.path(index)
        data = self.codec.encode(rows)
        if not (self.folder / "zarr.json").is_file():  # never recreate a staging area removed under us
            raise StorageError(f"array {self.name!r}: its folder {self.folder} is gone; chunk {index} not written")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, durable=False, make_parents=False)  # the stage syncs at publish
        return path

    def write(self, lo: int, rows: np.ndarray) -> list[Path]:
        """Rows ``lo .. lo + len(rows) - 1``, whole chunks (see :meth:`whole`); returns the files written."""
        hi = lo + rows.shape[0]
        if not self.whole(lo, hi):
            raise StorageError(f"array {self.name!r}: rows [{lo}, {hi}) are not whole chunks of {self.chunk}")
        first = lo // self.chunk
        futures = [
            codec_pool().submit(self.write_chunk, first + k, rows[k * self.chunk : (k + 1) * self.chunk])
            for k in range((hi - lo) // self.chunk)
        ]
        # Every write finishes (or fails) before this returns or raises, so a failed stage that
        # removes its staging area never races a chunk write still in flight.
        wait(futures)
        return [f.result() for f in futures]

    # ---- reading ------------------------------------------------------------------------------
    def read_chunk(self, index: int) -> np.ndarray:
        """Chunk ``index`` decoded; the padded last chunk comes back at its full chunk length."""
        path = self.path(index)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"array {self.name!r}: chunk {index} cannot be read: {exc}") from exc
        try:
            return self.codec.decode(data, (self.chunk, *self.shape[1:]))
        except Exception as exc:
            raise StorageError(f"array {self.name!r}: chunk {index} ({path}) cannot be decoded: {exc}") from exc

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo .. hi - 1`` (any range within the array), decoded from the chunks that hold them."""
        if not 0 <= lo <= hi <= self.n:
            raise StorageError(f"array {self.name!r}: rows [{lo}, {hi}) outside [0, {self.n})")
        out = np.empty((hi - lo, *self.shape[1:]), dtype=self.codec.dtype)
        first, last = lo // self.chunk, -(-hi // self.chunk) if hi > lo else lo // self.chunk

        def fill(index: int) -> None:
            a, b = max(lo, index * self.chunk), min(hi, (index + 1) * self.chunk)
            out[a - lo : b - lo] = self.read_chunk(index)[a - index * self.chunk : b - index * self.chunk]

        list(codec_pool().map(fill, range(first, last)))
        return out
