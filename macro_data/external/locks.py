"""File locks keyed by sha256: one download per object, across threads and processes.

A lock is a ``filelock.FileLock`` on ``<root>/external/locks/<key>.lock``. Each call opens its own
lock object (its own file descriptor), so threads of one process exclude each other as processes
do. The wait is bounded; callers re-check the cache after acquiring, which is what turns
six concurrent fetches into one download and five cache hits.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import filelock

from macro_data.external.errors import LockTimeoutError
from macro_data.files import file_lock

DEFAULT_LOCK_TIMEOUT_S = 1800.0
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


@contextlib.contextmanager
def hold(lock_dir: Path, key: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT_S, what: str = "") -> Iterator[bool]:
    """Hold the lock ``<lock_dir>/<key>.lock``; yields True when another holder made us wait."""
    if not _KEY_RE.match(key):
        raise ValueError(f"bad lock key {key!r}")
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{key}.lock"
    lock = file_lock(path)
    waited = False
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        waited = True
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise LockTimeoutError(
                f"{what or key}: another process held {path} for more than {timeout:g} s; if no fetch is running "
                f"(a crashed process releases its lock automatically), retry, or raise the lock timeout"
            ) from None
    try:
        yield waited
    finally:
        lock.release()
