"""Content hashes: one definition shared by the writers (storage) and the reader (no Zarr writer, no worlds).

Array content hash (``sha256-segments-256/v1``): SHA-256 over the concatenated SHA-256 digests of
consecutive 256-sample segments of the decoded array (rows ``[256 k, 256 k + 256)`` along the
first axis; bytes in C order, little-endian, in the stored dtype, bool as one byte 0/1; the last
segment may be shorter). It does not depend on chunking or compression, so two stores with the
same numbers have the same hash, and disjoint regions can be hashed by different workers.

Recipe hash: SHA-256 of the recipe's canonical JSON (sorted keys, no insignificant white space,
UTF-8), see :func:`canonical_json`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

HASH_SEGMENT = 256
HASH_ALGORITHM = "sha256-segments-256/v1"
HASH_DESCRIPTION = (
    "SHA-256 over the concatenated SHA-256 digests of consecutive 256-sample segments of the "
    "decoded array (C order, little-endian, stored dtype, bool as one byte; the last segment may "
    "be shorter); independent of chunking and compression"
)


def segment_digests(rows: np.ndarray) -> list[bytes]:
    """SHA-256 digests of consecutive :data:`HASH_SEGMENT`-row segments (``rows`` starts on a segment)."""
    rows = np.ascontiguousarray(rows)  # hashed through the buffer protocol, without a copy
    return [hashlib.sha256(rows[i : i + HASH_SEGMENT]).digest() for i in range(0, rows.shape[0], HASH_SEGMENT)]


def combine_digests(digests: Sequence[bytes]) -> str:
    """The content hash from the segment digests, in sample order."""
    h = hashlib.sha256()
    for d in digests:
        h.update(d)
    return h.hexdigest()


class SegmentHasher:
    """The content hash of an array fed as consecutive row blocks of any lengths, in sample order
    (rows are carried over to the next block until a :data:`HASH_SEGMENT` segment is complete)."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.digests: list[bytes] = []
        self._carry: np.ndarray | None = None

    def update(self, block: np.ndarray) -> None:
        rows = np.ascontiguousarray(block, dtype=self.dtype)
        if self._carry is not None:
            rows = np.concatenate([self._carry, rows])
            self._carry = None
        whole = rows.shape[0] - rows.shape[0] % HASH_SEGMENT
        self.digests += segment_digests(rows[:whole])
        if whole < rows.shape[0]:
            self._carry = rows[whole:].copy()

    def hexdigest(self) -> str:
        digests = self.digests + (segment_digests(self._carry) if self._carry is not None else [])
        return combine_digests(digests)


def hash_blocks(blocks: Iterable[np.ndarray], dtype: np.dtype) -> str:
    """The content hash of an array given as consecutive row blocks, each (but the last) a whole
    number of segments long, cast to the little-endian storage ``dtype``."""
    digests: list[bytes] = []
    for block in blocks:
        digests += segment_digests(np.ascontiguousarray(block, dtype=dtype))
    return combine_digests(digests)


def canonical_json(doc: Any) -> bytes:
    """The byte form of a JSON document that is hashed: sorted keys, no insignificant white space, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
