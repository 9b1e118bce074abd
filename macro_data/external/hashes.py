"""SHA-256 of files (the only hash the registry uses)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> tuple[str, int]:
    """The SHA-256 and size of a file, read once.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    tuple of (str, int)
        The hex digest and the number of bytes hashed (the size, read from the same pass rather
        than from a separate ``stat``, so the two always describe the same bytes).
    """
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return digest.hexdigest(), f.tell()
