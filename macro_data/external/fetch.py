"""Fetch one registry entry (or all), verify it, and record its provenance.

:func:`fetch_entry` guarantees that the path it returns holds exactly the pinned bytes:

1. the entry must be pinned (else :class:`UnpinnedError`: run ``macro-data pin``);
2. under the object's lock (keyed by sha256, bounded wait), the cache is checked again: a hit is
   re-hashed, a corrupt file is quarantined; a hit after waiting for another fetcher is ``waited``;
3. on a miss (and not offline) the file is downloaded into a ``.part`` file (see :mod:`.http`),
   archives have their listed members extracted and verified, CSVs are schema-checked, and only
   then is the file renamed into place;
4. one provenance line is appended (also on failure, with ``ok: false``).

Offline mode (``MACRO_DATA_OFFLINE=1`` or ``offline=True``) serves verified cache hits only and
otherwise fails listing the missing entries with their hashes and where to side-load them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import macro_data.external.archives as archives
import macro_data.external.locks as locks
import macro_data.external.provenance as provenance
from macro_data.external.cache import Cache
from macro_data.external.errors import (
    DownloadError,
    ExternalDataError,
    OfflineError,
    SchemaCheckError,
    VerificationError,
)
from macro_data.external.http import Attempt, HttpPolicy, Transfer, download
from macro_data.external.registry import Entry, Registry
from macro_data.external.tabular import TableReport, check_table
from macro_data.files import atomic_file

OFFLINE_ENV = "MACRO_DATA_OFFLINE"
_TRUE = {"1", "true", "yes", "on"}


def offline_from_env() -> bool:
    """True when ``$MACRO_DATA_OFFLINE`` is 1, true, yes or on (any case)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in _TRUE


def _delivered(attribute: str, doc: str) -> property:
    """A :class:`FetchResult` attribute read from the attempt that delivered the bytes (None for a cache hit)."""
    return property(lambda self: getattr(self.transfer.delivered, attribute) if self.transfer else None, doc=doc)


@dataclass
class FetchResult:
    """A verified file (and its verified members) plus what happened to get it."""

    name: str
    entry_sha256: str
    cache: str  # hit | downloaded | waited
    path: Path
    sha256: str
    size: int
    transfer: Transfer | None = None  # the download; None for a cache hit
    members: list[archives.MemberReport] = field(default_factory=list)
    members_dir: Path | None = None
    tables: dict[str, TableReport] = field(default_factory=dict)
    quarantined: list[str] = field(default_factory=list)
    seconds: float = 0.0
    record: dict = field(default_factory=dict)

    url = _delivered("url", "The registry URL (primary or mirror) that delivered the bytes.")
    final_url = _delivered("final_url", "The URL that answered, after redirects.")
    mirror_index = _delivered("mirror_index", "The position of ``url`` in the entry's URLs.")
    http_status = _delivered("status", "The HTTP status of the answer (200).")
    etag = _delivered("etag", "The answer's ETag header.")
    last_modified = _delivered("last_modified", "The answer's Last-Modified header.")

    @property
    def redirects(self) -> list[str]:
        """The redirect hops followed from ``url`` (empty for a cache hit)."""
        return self.transfer.delivered.redirects if self.transfer else []

    @property
    def attempts(self) -> list[Attempt]:
        """Every request of the download, failed ones included (empty for a cache hit)."""
        return self.transfer.attempts if self.transfer else []

    @property
    def table(self) -> TableReport | None:
        """The main table: the CSV itself, or the first CSV member of an archive."""
        return next(iter(self.tables.values()), None)

    def member_path(self, member: str) -> Path:
        if self.members_dir is None:
            raise KeyError(member)
        return self.members_dir / member


def _side_load_hint(entry: Entry, cache: Cache) -> str:
    return (
        f"{entry.name}: sha256 {entry.sha256}, {entry.size} bytes -> copy the file to "
        f"{cache.object_path(entry)} or run `macro-data register {entry.name} PATH`"
    )


def offline_error(entries: list[Entry], cache: Cache) -> OfflineError:
    lines = "\n  ".join(_side_load_hint(e, cache) for e in entries)
    return OfflineError(
        f"offline mode ({OFFLINE_ENV}=1 or offline=True): {len(entries)} entr"
        f"{'y is' if len(entries) == 1 else 'ies are'} not in the verified cache:\n  {lines}"
    )


def _checked_tables(entry: Entry, cache: Cache, file: Path, where: str) -> dict[str, TableReport]:
    """The schema checks of a verified file (a CSV, or an archive's CSV members); raises when one fails."""
    if entry.is_csv:
        tables = {entry.filename: check_table(file, entry.format, entry.csv, entry.columns)}
    else:
        members_dir = cache.members_dir(entry)
        tables = {m.path: check_table(members_dir / m.path, "csv", m.csv, m.columns) for m in entry.members if m.is_csv}
    bad = {k: t for k, t in tables.items() if not t.ok}
    if bad:
        detail = "; ".join(f"{k}: {'; '.join(t.problems)}" for k, t in bad.items())
        raise SchemaCheckError(
            f"external dataset {entry.name!r}: schema check failed after the sha256 matched ({where}): {detail}. "
            f"The file is the pinned one, so the registry's columns/csv options for this entry are wrong"
        )
    return tables


def _ensure_members(
    entry: Entry, cache: Cache, archive_path: Path, policy: HttpPolicy, quarantined: list[str]
) -> list[archives.MemberReport]:
    """Verified members of a verified archive: re-check, or (re-)extract from the archive."""
    if not entry.is_archive:
        return []
    dest = cache.members_dir(entry)
    if dest.is_dir():
        problem = archives.verify_members(entry.members, dest)
        if problem is None:
            return [archives.MemberReport(m.path, m.sha256 or "", m.size or 0) for m in entry.members]
        quarantined.append(str(cache.quarantine(dest, entry.sha256 or "")))
    return _extract(entry, cache, archive_path, policy)


def _extract(entry: Entry, cache: Cache, archive_path: Path, policy: HttpPolicy) -> list[archives.MemberReport]:
    """Extract and verify an archive's members into the cache (replacing any there); nothing for a CSV."""
    if not entry.is_archive:
        return []
    return archives.extract_members(
        entry.name,
        archive_path,
        entry.format,
        entry.members,
        cache.members_dir(entry),
        max_total_bytes=policy.max_extracted_bytes,
    )


@contextlib.contextmanager
def _new_object(entry: Entry, cache: Cache) -> Iterator[Path]:
    """A temporary file that becomes the entry's cache file (see :func:`macro_data.files.atomic_file`).

    When the block fails, members extracted from it are removed too, unless a verified file holds them.
    """
    final = cache.object_path(entry)
    try:
        with atomic_file(final) as part:
            yield part
    except BaseException:
        if entry.is_archive and not final.exists():
            shutil.rmtree(cache.members_dir(entry), ignore_errors=True)
        raise


def fetch_entry(
    entry: Entry,
    *,
    root: str | os.PathLike | None = None,
    policy: HttpPolicy | None = None,
    offline: bool | None = None,
    run_id: str | None = None,
    lock_timeout: float = locks.DEFAULT_LOCK_TIMEOUT_S,
) -> FetchResult:
    """The verified local copy of ``entry``, downloaded if needed (see the module docstring).

    Parameters
    ----------
    entry
        A pinned registry entry.
    root
        The data root holding ``external/`` (default ``$MACRO_DATA_ROOT``).
    policy
        Timeouts, retries and limits of the download (default :meth:`HttpPolicy.from_env`).
    offline
        Serve verified cache hits only; default ``$MACRO_DATA_OFFLINE``.
    run_id
        Recorded in the provenance line.
    lock_timeout
        Seconds to wait for another process fetching the same file.

    Returns
    -------
    FetchResult
        The file's path, members and tables, and how it was obtained (also appended to provenance).

    Raises
    ------
    ExternalDataError
        :class:`UnpinnedError`, :class:`OfflineError`, :class:`DownloadError`, :class:`ArchiveError`,
        :class:`SchemaCheckError` or :class:`LockTimeoutError`; a provenance line records it.
    """
    cache = Cache(root)
    policy = policy or HttpPolicy.from_env()
    offline = offline_from_env() if offline is None else offline
    t0 = time.monotonic()
    transfer: Transfer | None = None
    try:
        entry.require_pinned()
        assert entry.sha256 is not None and entry.size is not None
        with locks.hold(
            cache.locks_dir, entry.sha256, timeout=lock_timeout, what=f"external dataset {entry.name!r}"
        ) as waited:
            final = cache.object_path(entry)
            quarantined: list[str] = []
            check = cache.check_file(final, entry.sha256, entry.size)
            if check.ok:
                outcome = "waited" if waited else "hit"
                members = _ensure_members(entry, cache, final, policy, quarantined)
                tables = _checked_tables(entry, cache, final, f"cached file {final}")
            else:
                if check.exists:
                    quarantined.append(str(cache.quarantine(final, entry.sha256)))
                if offline:
                    raise offline_error([entry], cache)
                if entry.kind == "manual" or not entry.urls:
                    raise DownloadError(
                        f"external dataset {entry.name!r} is a manual entry (no URLs) and is not in "
                        f"the cache ({check.reason}): {_side_load_hint(entry, cache)}"
                    )
                cache.remove_stale_parts(entry.sha256)
                with _new_object(entry, cache) as part:
                    transfer = download(
                        entry.name, entry.urls, part, sha256=entry.sha256, size=entry.size, policy=policy
                    )
                    members = _extract(entry, cache, part, policy)
                    tables = _checked_tables(entry, cache, part, f"downloaded from {transfer.delivered.final_url}")
                outcome = "downloaded"
        result = FetchResult(
            name=entry.name,
            entry_sha256=entry.entry_sha256,
            cache=outcome,
            path=final,
            sha256=entry.sha256,
            size=entry.size,
            transfer=transfer,
            members=members,
            members_dir=cache.members_dir(entry) if entry.is_archive else None,
            tables=tables,
            quarantined=quarantined,
            seconds=time.monotonic() - t0,
        )
        result.record = provenance.append(cache.provenance_path, _record(entry, result, run_id))
        return result
    except ExternalDataError as exc:
        provenance.append(
            cache.provenance_path,
            {
                "event": "fetch",
                "ok": False,
                "name": entry.name,
                "entry_sha256": entry.entry_sha256,
                "sha256": entry.sha256,
                "size": entry.size,
                "error_type": type(exc).__name__,
                "error": str(exc),
                "attempts": [a.to_dict() for a in getattr(exc, "attempts", transfer.attempts if transfer else [])],
                "run_id": run_id,
                "duration_s": round(time.monotonic() - t0, 6),
            },
        )
        raise


def store_file(
    entry: Entry, src: Path, *, root: str | os.PathLike | None = None, policy: HttpPolicy | None = None
) -> dict[str, TableReport]:
    """Put a local file holding ``entry``'s pinned bytes into the cache, as a download would be.

    Used by ``pin`` (the file downloaded for review) and ``register`` (a file side-loaded by hand).
    Under the object's lock the file is copied into place (unless an intact copy is there already),
    the copy re-hashed, an archive's members extracted and verified and the tables checked; a
    corrupt file in the cache is quarantined first. Provenance is the caller's to record.

    Parameters
    ----------
    entry
        A pinned registry entry.
    src
        The local file.
    root
        The data root holding ``external/`` (default ``$MACRO_DATA_ROOT``).
    policy
        Its ``max_extracted_bytes`` caps an archive's extraction (default :class:`HttpPolicy`).

    Returns
    -------
    dict
        The schema check of each table (the CSV, or an archive's CSV members), by file name.

    Raises
    ------
    VerificationError
        When the copy in the cache does not have the pinned sha256 and size.
    ArchiveError, SchemaCheckError
        When an archive member or a table does not match the registry.
    """
    entry.require_pinned()
    assert entry.sha256 is not None and entry.size is not None
    cache = Cache(root)
    policy = policy or HttpPolicy()
    with locks.hold(cache.locks_dir, entry.sha256, what=f"external dataset {entry.name!r}"):
        final = cache.object_path(entry)
        check = cache.check_file(final, entry.sha256, entry.size)
        if check.ok:
            _ensure_members(entry, cache, final, policy, [])
            return _checked_tables(entry, cache, final, f"cached file {final}")
        if check.exists:
            cache.quarantine(final, entry.sha256)
        with _new_object(entry, cache) as part:
            shutil.copyfile(src, part)
            copied = cache.check_file(part, entry.sha256, entry.size)
            if not copied.ok:
                raise VerificationError(
                    f"external dataset {entry.name!r}: the copy of {src} in the cache does not match the registry "
                    f"({copied.reason}); nothing was stored"
                )
            _extract(entry, cache, part, policy)
            return _checked_tables(entry, cache, part, f"copied from {src}")


def _record(entry: Entry, r: FetchResult, run_id: str | None) -> dict:
    return {
        "event": "fetch",
        "ok": True,
        "name": entry.name,
        "entry_sha256": entry.entry_sha256,
        "kind": entry.kind,
        "format": entry.format,
        "url": r.url,
        "final_url": r.final_url,
        "mirror_index": r.mirror_index,
        "redirects": r.redirects,
        "http_status": r.http_status,
        "etag": r.etag,
        "last_modified": r.last_modified,
        "sha256": r.sha256,
        "size": r.size,
        "cache": r.cache,
        "attempts": [
            {
                "url": a.url,
                "mirror_index": a.mirror_index,
                "attempt": a.attempt,
                "redirects": a.redirects,
                "status": a.status,
                "outcome": a.outcome,
                "ok": a.ok,
                "duration_s": round(a.duration_s, 6),
                "bytes": a.bytes,
                "slept_s": round(a.slept_s, 6),
            }
            for a in r.attempts
        ],
        "members": [m.to_dict() for m in r.members],
        "schema": (r.table.to_dict() if r.table is not None else None),
        "schemas": {k: t.to_dict() for k, t in r.tables.items()},
        "quarantined": r.quarantined,
        "path": str(r.path),
        "run_id": run_id,
        "duration_s": round(r.seconds, 6),
    }


def fetch_many(
    registry: Registry, names: Iterable[str] | None = None, *, skip_unpinned: bool = False, **kwargs
) -> list[tuple[Entry, FetchResult | ExternalDataError]]:
    """Fetch several entries (all by default), each independently; outcomes in registry order.

    In offline mode the per-entry :class:`OfflineError` are kept; :func:`combined_offline_error`
    turns them into one error listing every missing entry.
    """
    out: list[tuple[Entry, FetchResult | ExternalDataError]] = []
    for entry in registry.select(names):
        if skip_unpinned and not entry.pinned:
            continue
        try:
            out.append((entry, fetch_entry(entry, **kwargs)))
        except ExternalDataError as exc:
            out.append((entry, exc))
    return out


def combined_offline_error(
    outcomes: list[tuple[Entry, FetchResult | ExternalDataError]], root: str | os.PathLike | None = None
) -> OfflineError | None:
    missing = [e for e, r in outcomes if isinstance(r, OfflineError)]
    return offline_error(missing, Cache(root)) if missing else None


@dataclass
class CacheStatus:
    """One entry's state in the cache after re-verification."""

    name: str
    status: str  # ok | missing | corrupt | unpinned | member-repaired
    ok: bool
    path: Path | None
    detail: str = ""


def verify_cache(
    registry: Registry,
    *,
    root: str | os.PathLike | None = None,
    names: Iterable[str] | None = None,
    policy: HttpPolicy | None = None,
    run_id: str | None = None,
    lock_timeout: float = locks.DEFAULT_LOCK_TIMEOUT_S,
) -> tuple[list[CacheStatus], list[Path]]:
    """Re-hash every cached entry; quarantine corrupt files. Returns statuses and orphan object folders.

    ``ok`` is False only for corruption (a missing or unpinned entry is reported, not an error).
    """
    cache = Cache(root)
    policy = policy or HttpPolicy.from_env()
    statuses: list[CacheStatus] = []
    for entry in registry.select(names):
        if not entry.pinned:
            statuses.append(CacheStatus(entry.name, "unpinned", True, None, f"run `macro-data pin {entry.name}`"))
            continue
        assert entry.sha256 is not None and entry.size is not None
        with locks.hold(cache.locks_dir, entry.sha256, timeout=lock_timeout, what=f"external dataset {entry.name!r}"):
            path = cache.object_path(entry)
            check = cache.check_file(path, entry.sha256, entry.size)
            if not check.exists:
                st = CacheStatus(entry.name, "missing", True, path, "not fetched yet")
            elif not check.ok:
                q = cache.quarantine(path, entry.sha256)
                st = CacheStatus(entry.name, "corrupt", False, path, f"{check.reason}; quarantined to {q}")
            else:
                st = CacheStatus(entry.name, "ok", True, path, f"sha256 {entry.sha256} and {entry.size} bytes verified")
                if entry.is_archive:
                    problem = archives.verify_members(entry.members, cache.members_dir(entry))
                    if problem is not None:
                        quarantined: list[str] = []
                        try:
                            _ensure_members(entry, cache, path, policy, quarantined)
                            st = CacheStatus(
                                entry.name,
                                "member-repaired",
                                True,
                                path,
                                f"{problem}; re-extracted from the verified archive",
                            )
                        except ExternalDataError as exc:
                            st = CacheStatus(entry.name, "corrupt", False, path, str(exc))
        provenance.append(
            cache.provenance_path,
            {
                "event": "verify",
                "ok": st.ok,
                "name": entry.name,
                "entry_sha256": entry.entry_sha256,
                "sha256": entry.sha256,
                "size": entry.size,
                "status": st.status,
                "detail": st.detail,
                "run_id": run_id,
            },
        )
        statuses.append(st)
    known = {e.sha256 for e in registry.entries.values() if e.sha256}
    orphans = [d for d in cache.object_dirs() if d.name not in known]
    return statuses, orphans


__all__ = [
    "CacheStatus",
    "FetchResult",
    "OFFLINE_ENV",
    "combined_offline_error",
    "fetch_entry",
    "fetch_many",
    "offline_from_env",
    "store_file",
    "verify_cache",
]
