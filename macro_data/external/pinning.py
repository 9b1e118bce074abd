"""``macro-data pin NAME``: fill in (or refresh) the sha256 and size of a registry entry.

:func:`pin` downloads the entry from *every* URL it lists (the safe algorithm of :mod:`.http`, with
a size cap instead of a hash), refuses to go on when two mirrors serve different bytes, prints
sha256, size, header and member hashes for review, and writes them into the registry (removing
``pinned: false``; a CSV without ``columns`` gets its header, an archive's members their hashes).
A pinned entry whose mirrors now serve other bytes is refused unless ``force``: an upstream change
is reported, never absorbed. ``dry_run`` prints and writes nothing. The registry is edited through
:mod:`.registry_edit` (only the entry's lines change), then the file goes into the cache.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from macro_data.external import archives, provenance
from macro_data.external.cache import Cache
from macro_data.external.errors import (
    DownloadError,
    OfflineError,
    RegistryError,
    SchemaCheckError,
    VerificationError,
)
from macro_data.external.fetch import offline_from_env, store_file
from macro_data.external.http import Attempt, HttpPolicy, Transfer, download, format_failure
from macro_data.external.registry import Entry, load_registry
from macro_data.external.registry_edit import editable_path, set_keys, update_entry
from macro_data.external.tabular import TableReport, check_table

Printer = Callable[[str], None]


@dataclass
class MirrorResult:
    """One URL of a pin: its download, or the error that ended it."""

    index: int
    url: str
    transfer: Transfer | None = None
    error: DownloadError | None = None

    @property
    def ok(self) -> bool:
        return self.transfer is not None

    @property
    def sha256(self) -> str | None:
        return self.transfer.sha256 if self.transfer else None

    @property
    def size(self) -> int | None:
        return self.transfer.size if self.transfer else None

    @property
    def attempts(self) -> list[Attempt]:
        if self.transfer is not None:
            return self.transfer.attempts
        return self.error.attempts if self.error is not None else []


@dataclass
class PinResult:
    """What a pin found (and wrote, unless a dry run)."""

    name: str
    sha256: str
    size: int
    mirrors: list[MirrorResult]
    table: TableReport | None
    members: list[archives.MemberReport]
    written: bool
    unchanged: bool  # the entry was pinned to these bytes already
    path: Path | None  # the file in the cache (None for a dry run)
    registry_path: Path


def pin(
    name: str,
    *,
    registry_path: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    policy: HttpPolicy | None = None,
    dry_run: bool = False,
    force: bool = False,
    offline: bool | None = None,
    run_id: str | None = None,
    out: Printer | None = None,
) -> PinResult:
    """Download ``name`` from all its URLs, print its hash, size and header, and write them (see the module docstring).

    Parameters
    ----------
    name
        The registry entry, a download entry (not ``kind: manual``).
    registry_path
        The registry file to edit (default ``$MACRO_DATA_REGISTRY``, else ``datasets/external.yaml``);
        never the copy shipped inside the package.
    root
        The data root holding ``external/`` (default ``$MACRO_DATA_ROOT``).
    policy
        Timeouts, retries and limits (default :meth:`HttpPolicy.from_env`).
    dry_run
        Print what would be written, write nothing.
    force
        Re-pin an entry whose mirrors now serve other bytes than the pinned ones.
    offline
        Refuse at once (a pin needs the network); default ``$MACRO_DATA_OFFLINE``.
    run_id
        Recorded in the provenance line.
    out
        Receives the lines for review (e.g. ``print``); default: nothing is printed.

    Returns
    -------
    PinResult
        The hash, size, mirrors, table and members found, and where the file was cached.

    Raises
    ------
    ExternalDataError
        :class:`RegistryError` (manual entry, shipped registry), :class:`OfflineError`,
        :class:`DownloadError` (no mirror answered), :class:`VerificationError` (mirrors disagree,
        upstream changed), :class:`SchemaCheckError` or :class:`ArchiveError`; nothing is written then.
    """
    say = out or (lambda _s: None)
    policy = policy or HttpPolicy.from_env()
    reg_path = editable_path(registry_path)
    entry = load_registry(reg_path, allow_http_hosts=policy.allow_http_hosts).get(name)
    if entry.kind == "manual" or not entry.urls:
        raise RegistryError(
            f"external dataset {name!r} is a manual entry: it was pinned when registered "
            f"(`macro-data register {name} PATH` side-loads it)"
        )
    if offline_from_env() if offline is None else offline:
        raise OfflineError(f"external dataset {name!r}: pin downloads from the network and offline mode is on")
    cache = Cache(root)
    mirrors: list[MirrorResult] = []
    parts: list[Path] = []
    try:
        for i, url in enumerate(entry.urls):
            part = cache.new_work_path(name)
            try:
                mirrors.append(MirrorResult(i, url, download(name, [url], part, sha256=None, size=None, policy=policy)))
                parts.append(part)
            except DownloadError as exc:
                mirrors.append(MirrorResult(i, url, error=exc))
        for m in mirrors:
            outcome = (
                f"sha256 {m.sha256}, {m.size} bytes"
                if m.ok
                else "failed: " + (m.attempts[-1].outcome if m.attempts else "")
            )
            say(f"mirror {m.index} {m.url}: {outcome}")
        good = [m for m in mirrors if m.ok]
        if not good:
            all_attempts = [a for m in mirrors for a in m.attempts]
            raise DownloadError(format_failure(name, all_attempts, None, None, "pin: no mirror could be downloaded"))
        if len({(m.sha256, m.size) for m in good}) > 1:
            detail = "; ".join(f"mirror {m.index} {m.url}: sha256 {m.sha256}, {m.size} bytes" for m in good)
            raise VerificationError(
                f"external dataset {name!r}: mirrors serve different bytes, nothing was "
                f"written: {detail}. Remove the wrong mirror from the registry and pin again"
            )
        chosen, transfer = parts[0], good[0].transfer
        assert transfer is not None
        sha, size = transfer.sha256, transfer.size
        if len(good) == 1 and len(entry.urls) > 1:
            say("warning: only one mirror answered; the hash could not be cross-checked")
        unchanged = entry.pinned and (entry.sha256, entry.size) == (sha, size)
        if entry.pinned and not unchanged and not force:
            raise VerificationError(
                f"external dataset {name!r} is pinned to sha256 {entry.sha256}, {entry.size} bytes, but the mirrors "
                f"now serve sha256 {sha}, {size} bytes: upstream changed. Nothing was written; review the new "
                f"file and re-run with --force to re-pin"
            )
        table, member_reports, fields, member_fields = _inspect(entry, chosen, cache, policy)
        say(f"sha256 {sha}")
        say(f"size   {size}")
        if table is not None:
            say(f"header ({len(table.columns)} columns, {table.rows} rows): {', '.join(table.columns)}")
        for r in member_reports:
            say(f"member {r.path}: sha256 {r.sha256}, {r.size} bytes")
        if dry_run:
            say("dry run: registry not changed")
            return PinResult(name, sha, size, mirrors, table, member_reports, False, unchanged, None, reg_path)

        def write_pin(doc: CommentedMap) -> None:
            doc.pop("pinned", None)
            set_keys(doc, {"sha256": sha, "size": size, **fields}, list(doc).index("filename") + 1)
            for path, values in member_fields.items():
                set_keys(doc["members"][path], values, 0)

        update_entry(reg_path, name, write_pin, root=root)
        say(f"wrote sha256/size{' and header' if 'columns' in fields else ''} of {name!r} into {reg_path}")
        pinned = load_registry(reg_path, allow_http_hosts=policy.allow_http_hosts).get(name)
        store_file(pinned, chosen, root=root, policy=policy)
        path = cache.object_path(pinned)
        provenance.append(
            cache.provenance_path,
            {
                "event": "pin",
                "ok": True,
                "name": name,
                "entry_sha256": pinned.entry_sha256,
                "sha256": sha,
                "size": size,
                "url": good[0].url,
                "mirror_index": good[0].index,
                "final_url": transfer.delivered.final_url,
                "mirrors": [
                    {
                        "index": m.index,
                        "url": m.url,
                        "ok": m.ok,
                        "sha256": m.sha256,
                        "size": m.size,
                        "error": str(m.error) if m.error else None,
                    }
                    for m in mirrors
                ],
                "members": [r.to_dict() for r in member_reports],
                "schema": table.to_dict() if table else None,
                "forced": bool(force and entry.pinned and not unchanged),
                "path": str(path),
                "run_id": run_id,
            },
        )
        return PinResult(name, sha, size, mirrors, table, member_reports, True, unchanged, path, reg_path)
    finally:
        for p in parts:
            p.unlink(missing_ok=True)
        shutil.rmtree(_members_work_dir(cache, name), ignore_errors=True)


def _members_work_dir(cache: Cache, name: str) -> Path:
    return cache.work_dir / f".{name}.members"


def _inspect(
    entry: Entry, file: Path, cache: Cache, policy: HttpPolicy
) -> tuple[TableReport | None, list[archives.MemberReport], dict[str, Any], dict[str, dict[str, Any]]]:
    """The header or member hashes of a fresh download (not pinned yet), and what to write for them.

    Returns the main table, the member reports, the entry's new keys besides sha256 and size
    (``columns`` of a CSV that has none) and each member's new keys (sha256, size, ``columns``).
    """
    if entry.is_csv:
        table = check_table(file, entry.format, entry.csv, entry.columns)
        if not table.ok and (entry.columns is not None or not table.columns):
            raise SchemaCheckError(
                f"external dataset {entry.name!r}: the downloaded file does not match the "
                f"registry: {'; '.join(table.problems)}; nothing was written"
            )
        return table, [], ({"columns": table.columns} if entry.columns is None else {}), {}
    tmp = _members_work_dir(cache, entry.name)
    shutil.rmtree(tmp, ignore_errors=True)
    reports = archives.extract_members(
        entry.name, file, entry.format, entry.members, tmp, max_total_bytes=policy.max_extracted_bytes
    )
    table = None
    member_fields: dict[str, dict[str, Any]] = {}
    for r in reports:
        m = next(x for x in entry.members if x.path == r.path)
        if m.sha256 is not None and (m.sha256, m.size) != (r.sha256, r.size):
            raise VerificationError(
                f"external dataset {entry.name!r}: member {r.path!r} is sha256 {r.sha256}, "
                f"{r.size} bytes; the registry says {m.sha256}, {m.size}"
            )
        member_fields[r.path] = {"sha256": r.sha256, "size": r.size}
        if m.is_csv:
            t = check_table(tmp / r.path, "csv", m.csv, m.columns)
            if not t.ok and m.columns is not None:
                raise SchemaCheckError(
                    f"external dataset {entry.name!r}: member {r.path!r}: {'; '.join(t.problems)}; nothing was written"
                )
            if m.columns is None and t.columns:
                member_fields[r.path]["columns"] = t.columns
            table = table or t
    return table, reports, {}, member_fields


__all__ = ["MirrorResult", "PinResult", "pin"]
