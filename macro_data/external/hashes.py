"""SHA-256 of files and streams (the only hash the registry uses)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


def file_sha256(path: Path) -> tuple[str, int]:
    """``(hex digest, size in bytes)`` of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(SHA256_RE.match(value))
