"""What a stage knows about each 256-sample segment of its arrays, kept beside the data.

The content hash of an array (``sha256-segments-256/v1``) is the SHA-256 of its segments'
SHA-256 digests, so keeping the digests lets a later build reuse a prefix of the array (growth
from a published version, resume after a crash) without decoding and hashing it again. Counts
that add up over samples (rejected draws, binding periods) are kept per segment for the same
reason: the totals of any segment-aligned prefix are known.

On disk: ``<array folder>/segments.json`` (Zarr ignores files it does not know)::

    {"algorithm": "sha256-segments-256/v1", "segment": 256, "n": <samples>,
     "digests": "<64 hex characters per segment, in sample order>",
     "counts": {"<name>": [<int per segment>, ...]}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from macro_data.storage import locations
from macro_data.storage.arrays import HASH_ALGORITHM, HASH_SEGMENT

FILE = "segments.json"


@dataclass
class Segments:
    """Digests (and additive counts) of consecutive :data:`HASH_SEGMENT`-sample segments."""

    n: int
    digests: list[bytes]
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def prefix(self, stop: int) -> Segments:
        """The segments of samples ``0 .. stop - 1`` (``stop`` on a segment boundary)."""
        if stop % HASH_SEGMENT and stop != self.n:
            raise ValueError(f"prefix [0, {stop}) does not end on a {HASH_SEGMENT}-sample segment")
        k = -(-stop // HASH_SEGMENT)
        return Segments(stop, self.digests[:k], {name: c[:k] for name, c in self.counts.items()})

    def to_json(self) -> bytes:
        doc = {
            "algorithm": HASH_ALGORITHM,
            "segment": HASH_SEGMENT,
            "n": self.n,
            "digests": b"".join(self.digests).hex(),
            "counts": {name: [int(x) for x in c] for name, c in sorted(self.counts.items())},
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Segments:
        doc = json.loads(raw)
        if doc.get("algorithm") != HASH_ALGORITHM or doc.get("segment") != HASH_SEGMENT:
            raise ValueError(f"segments recorded with {doc.get('algorithm')!r}/{doc.get('segment')!r}")
        blob = bytes.fromhex(doc["digests"])
        digests = [blob[i : i + 32] for i in range(0, len(blob), 32)]
        n = int(doc["n"])
        if len(digests) != -(-n // HASH_SEGMENT):
            raise ValueError(f"{len(digests)} digests recorded for {n} samples")
        counts = {name: np.asarray(c, dtype=np.int64) for name, c in (doc.get("counts") or {}).items()}
        return cls(n, digests, counts)


def write(array_location: str, segments: Segments) -> None:
    """Record ``segments`` beside the array at ``array_location`` (a folder or an object prefix)."""
    locations.write_bytes_atomic(locations.join(array_location, FILE), segments.to_json())


def read(array_location: str) -> Segments | None:
    """The recorded segments of an array, or ``None`` if there are none (or they do not parse)."""
    path = locations.join(array_location, FILE)
    try:
        if not locations.exists(path):
            return None
        return Segments.from_json(locations.read_bytes(path))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def per_segment(values: np.ndarray, start: int) -> np.ndarray:
    """Sums of ``values`` (one per sample, from sample ``start``, a segment boundary) per segment."""
    if start % HASH_SEGMENT:
        raise ValueError(f"sample {start} is not on a {HASH_SEGMENT}-sample segment boundary")
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.add.reduceat(values, np.arange(0, values.shape[0], HASH_SEGMENT))
