"""The two explicit commands that write the registry: ``pin`` and ``register``.

**pin NAME** downloads an entry from *every* URL it lists (same safe algorithm, with a size cap
instead of a hash), refuses to go on when two mirrors serve different bytes, prints sha256, size,
header and member hashes for review, and writes them into the registry (dropping
``pinned: false``). A pinned entry whose mirrors now serve other bytes is refused unless
``force``: an upstream change is reported, never absorbed. ``dry_run`` prints and writes nothing.

**register NAME PATH** copies a local file into the cache. For a new name it appends a
``kind: manual`` entry with the file's sha256, size and header; for an existing pinned entry it
side-loads the file (e.g. offline) after checking it against the pinned hash.

Registry edits keep comments and layout: only the keys of the edited entry are rewritten (or the
new entry appended), the result is re-parsed and compared with the intended document, and written
atomically under a lock. If the text edit does not reproduce the intended document, the whole
registry is re-serialised (comments are then lost; the result says so).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from macro_data import config_yaml, paths
from macro_data.external import archives, locks, provenance
from macro_data.external.cache import Cache
from macro_data.external.errors import (
    DownloadError,
    OfflineError,
    RegistryError,
    SchemaCheckError,
    VerificationError,
)
from macro_data.external.fetch import offline_from_env
from macro_data.external.hashes import file_sha256
from macro_data.external.http import Attempt, HttpPolicy, download, format_failure
from macro_data.external.registry import (
    ARCHIVE_FORMATS,
    CSV_FORMATS,
    NAME_RE,
    CsvOptions,
    Entry,
    filename_problem,
    load_registry,
    parse_registry,
    read_registry_document,
)
from macro_data.external.tabular import TableReport, check_table
from macro_data.files import atomic_file, atomic_write

Printer = Callable[[str], None]


# ---------------------------------------------------------------- registry text editing


def _registry_lock_key(path: Path) -> str:
    return "registry-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def _editable_registry(registry_path: str | os.PathLike | None) -> Path:
    """The registry pin and register may edit: never the read-only copy inside the installed package."""
    path = Path(registry_path) if registry_path is not None else paths.registry_path()
    if paths.is_packaged(path):
        raise RegistryError(
            f"{path} is the registry shipped with the package (read-only); copy it to "
            f"{paths.LOCAL_REGISTRY} in the working directory (or point $MACRO_DATA_REGISTRY "
            f"or --registry at a copy) and edit that"
        )
    return path


def _atomic_write_text(path: Path, text: str) -> None:
    """The registry keeps its mode (a user's choice) when rewritten."""
    atomic_write(path, text.encode("utf-8"), mode=path.stat().st_mode & 0o777 if path.exists() else None)


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)


def _dump_key(key: str, value: Any) -> str:
    """``key: value`` as block YAML (a mapping of scalars alone would come out in flow style)."""
    if isinstance(value, (dict, list)):
        return _dump({key: value})
    scalar = _dump(value)
    scalar = scalar[: -len("...\n")] if scalar.endswith("...\n") else scalar
    return f"{key}: {scalar.strip()}\n"


def _indent(text: str, n: int) -> list[str]:
    return [(" " * n + line) if line.strip() else line for line in text.splitlines()]


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _find_entry(lines: list[str], name: str) -> tuple[int, int, int, int] | None:
    """(start, end, item indent, key indent) of the entry ``name`` in the registry text."""
    pat = re.compile(r"^(\s*)(-\s+)name:\s*(['\"]?)" + re.escape(name) + r"\3\s*(#.*)?$")
    for i, line in enumerate(lines):
        m = pat.match(line)
        if not m:
            continue
        item, key = len(m.group(1)), len(m.group(1)) + len(m.group(2))
        end = i + 1
        while end < len(lines):
            s = lines[end]
            if s.strip() and _indent_of(s) <= item:
                break
            end += 1
        while end > i + 1 and not lines[end - 1].strip():
            end -= 1
        return i, end, item, key
    return None


def _edit_entry_text(text: str, name: str, updates: dict[str, Any], remove: set[str]) -> str | None:
    lines = text.splitlines()
    found = _find_entry(lines, name)
    if found is None:
        return None
    start, end, _item, key_indent = found
    out: list[str] = []
    drop = False
    insert_at = None  # new keys go right after the 'filename' key, else at the end of the entry
    after_filename = False
    for j, line in enumerate(lines[start:end]):
        key = None
        if j == 0:
            key = "name"
        elif line.strip() and _indent_of(line) == key_indent and not line.lstrip().startswith("#"):
            m = re.match(r"^\s*([A-Za-z0-9_]+)\s*:", line)
            key = m.group(1) if m else None
        if key is not None:
            if after_filename and insert_at is None:
                insert_at = len(out)
            drop = key in remove or key in updates
            after_filename = after_filename or key == "filename"
        if not drop:
            out.append(line)
    new_lines: list[str] = []
    for key, value in updates.items():
        new_lines += _indent(_dump_key(key, value), key_indent)
    pos = insert_at if insert_at is not None else len(out)
    out[pos:pos] = new_lines
    return "\n".join(lines[:start] + out + lines[end:]) + "\n"


def _append_entry_text(text: str, entry_doc: dict) -> str | None:
    lines = text.splitlines()
    names = [d.get("name") for d in (yaml.safe_load(text) or {}).get("datasets") or [] if isinstance(d, dict)]
    found = _find_entry(lines, names[-1]) if names else None
    if found is None:
        return None
    _start, end, item, _key = found
    block = _indent(_dump([entry_doc]), item)
    return "\n".join(lines[:end] + [""] + block + lines[end:]) + "\n"


def write_registry(path: Path, new_document: dict, text_candidate: str | None, root: Path | None) -> bool:
    """Write ``new_document`` (validated first); True when the text edit (comments kept) was used."""
    parse_registry(new_document, source=str(path))  # never write an invalid registry
    preserved = False
    text = None
    if text_candidate is not None:
        try:
            if config_yaml.loads(text_candidate, "the registry") == new_document:
                text, preserved = text_candidate, True
        except yaml.YAMLError:
            pass
    if text is None:
        text = _dump(new_document)
    with locks.hold(Cache(root).locks_dir, _registry_lock_key(path), timeout=60.0, what=f"registry {path}"):
        _atomic_write_text(path, text)
    return preserved


# ---------------------------------------------------------------- pin


@dataclass
class MirrorResult:
    index: int
    url: str
    ok: bool
    sha256: str | None = None
    size: int | None = None
    final_url: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    error: str | None = None


@dataclass
class PinResult:
    name: str
    sha256: str
    size: int
    mirrors: list[MirrorResult]
    table: TableReport | None
    members: list[archives.MemberReport]
    written: bool
    unchanged: bool
    comments_preserved: bool | None
    path: Path | None
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
    """Download ``name`` from all its URLs, print hash/size/header for review and write them (see module doc)."""
    say = out or (lambda _s: None)
    policy = policy or HttpPolicy.from_env()
    reg_path = _editable_registry(registry_path)
    registry = load_registry(reg_path, allow_http_hosts=policy.allow_http_hosts)
    entry = registry.get(name)
    if entry.kind == "manual" or not entry.urls:
        raise RegistryError(
            f"external dataset {name!r} is a manual entry: it was pinned when registered "
            f"(`macro-data register {name} PATH` side-loads it)"
        )
    if offline_from_env() if offline is None else offline:
        raise OfflineError(f"external dataset {name!r}: pin downloads from the network and offline mode is on")
    cache = Cache(root)
    mirrors: list[MirrorResult] = []
    chosen: Path | None = None
    parts: list[Path] = []
    try:
        for i, url in enumerate(entry.urls):
            part = cache.new_work_path(name)
            try:
                t = download(name, [url], part, sha256=None, size=None, policy=policy)
            except DownloadError as exc:
                mirrors.append(MirrorResult(i, url, False, attempts=exc.attempts, error=str(exc)))
                continue
            parts.append(part)
            mirrors.append(MirrorResult(i, url, True, t.sha256, t.size, t.delivered.final_url, t.attempts))
            chosen = chosen or part
        for m in mirrors:
            say(
                f"mirror {m.index} {m.url}: "
                + (
                    f"sha256 {m.sha256}, {m.size} bytes"
                    if m.ok
                    else "failed: " + (m.attempts[-1].outcome if m.attempts else "")
                )
            )
        good = [m for m in mirrors if m.ok]
        if not good:
            all_attempts = [a for m in mirrors for a in m.attempts]
            raise DownloadError(format_failure(name, all_attempts, None, None, "pin: no mirror could be downloaded"))
        digests = {(m.sha256, m.size) for m in good}
        if len(digests) > 1:
            detail = "; ".join(f"mirror {m.index} {m.url}: sha256 {m.sha256}, {m.size} bytes" for m in good)
            raise VerificationError(
                f"external dataset {name!r}: mirrors serve different bytes, nothing was "
                f"written: {detail}. Remove the wrong mirror from the registry and pin again"
            )
        sha, size = good[0].sha256, good[0].size
        assert chosen is not None and sha is not None and size is not None
        if len(good) == 1 and len(entry.urls) > 1:
            say("warning: only one mirror answered; the hash could not be cross-checked")
        unchanged = entry.pinned and (entry.sha256, entry.size) == (sha, size)
        if entry.pinned and not unchanged and not force:
            raise VerificationError(
                f"external dataset {name!r} is pinned to sha256 {entry.sha256}, {entry.size} bytes, but the mirrors "
                f"now serve sha256 {sha}, {size} bytes: upstream changed. Nothing was written; review the new "
                f"file and re-run with --force to re-pin"
            )
        table, member_reports, members_tmp, updates = _inspect(entry, chosen, cache, policy)
        say(f"sha256 {sha}")
        say(f"size   {size}")
        if table is not None:
            say(f"header ({len(table.columns)} columns, {table.rows} rows): {', '.join(table.columns)}")
        for r in member_reports:
            say(f"member {r.path}: sha256 {r.sha256}, {r.size} bytes")
        if dry_run:
            say("dry run: registry not changed")
            return PinResult(name, sha, size, mirrors, table, member_reports, False, unchanged, None, None, reg_path)
        updates = {"sha256": sha, "size": size, **updates}
        document = copy.deepcopy(read_registry_document(reg_path))
        idx = next(i for i, d in enumerate(document["datasets"]) if d.get("name") == name)
        doc = document["datasets"][idx]
        doc.pop("pinned", None)
        new_doc = {}
        for k, v in doc.items():  # keep key order; new keys go after filename
            if k in updates:
                continue
            new_doc[k] = v
            if k == "filename":
                new_doc.update(updates)
        if "sha256" not in new_doc:
            new_doc.update(updates)
        document["datasets"][idx] = new_doc
        candidate = _edit_entry_text(reg_path.read_text(encoding="utf-8"), name, updates, {"pinned"})
        preserved = write_registry(reg_path, document, candidate, Path(root) if root is not None else None)
        say(
            f"wrote sha256/size{' and header' if 'columns' in updates else ''} of {name!r} into {reg_path}"
            + ("" if preserved else " (re-serialised: comments were not preserved)")
        )
        pinned_entry = load_registry(reg_path, allow_http_hosts=policy.allow_http_hosts).get(name)
        path = _publish(pinned_entry, cache, chosen, members_tmp)
        provenance.append(
            cache.provenance_path,
            {
                "event": "pin",
                "ok": True,
                "name": name,
                "entry_sha256": pinned_entry.entry_sha256,
                "sha256": sha,
                "size": size,
                "url": good[0].url,
                "mirror_index": good[0].index,
                "final_url": good[0].final_url,
                "mirrors": [
                    {"index": m.index, "url": m.url, "ok": m.ok, "sha256": m.sha256, "size": m.size, "error": m.error}
                    for m in mirrors
                ],
                "members": [r.to_dict() for r in member_reports],
                "schema": table.to_dict() if table else None,
                "forced": bool(force and entry.pinned and not unchanged),
                "path": str(path),
                "run_id": run_id,
            },
        )
        return PinResult(name, sha, size, mirrors, table, member_reports, True, unchanged, preserved, path, reg_path)
    finally:
        for p in parts:
            p.unlink(missing_ok=True)
        shutil.rmtree(cache.work_dir / f".{name}.members", ignore_errors=True)


def _inspect(entry: Entry, file: Path, cache: Cache, policy: HttpPolicy):
    """Header or member hashes of a freshly downloaded (not yet pinned) file, and the registry updates."""
    updates: dict[str, Any] = {}
    if entry.is_csv:
        table = check_table(file, entry.format, entry.csv, entry.columns)
        if not table.ok and (entry.columns is not None or not table.columns):
            raise SchemaCheckError(
                f"external dataset {entry.name!r}: the downloaded file does not match the "
                f"registry: {'; '.join(table.problems)}; nothing was written"
            )
        if entry.columns is None:
            updates["columns"] = table.columns
        return table, [], None, updates
    tmp = cache.work_dir / f".{entry.name}.members"
    shutil.rmtree(tmp, ignore_errors=True)
    reports = archives.extract_members(
        entry.name, file, entry.format, entry.members, tmp, max_total_bytes=policy.max_extracted_bytes
    )
    members_doc = copy.deepcopy(entry.document["members"])
    table = None
    for r in reports:
        m = next(x for x in entry.members if x.path == r.path)
        if m.sha256 is not None and (m.sha256, m.size) != (r.sha256, r.size):
            raise VerificationError(
                f"external dataset {entry.name!r}: member {r.path!r} is sha256 {r.sha256}, "
                f"{r.size} bytes; the registry says {m.sha256}, {m.size}"
            )
        members_doc[r.path] = {
            "sha256": r.sha256,
            "size": r.size,
            **{k: v for k, v in members_doc[r.path].items() if k not in ("sha256", "size")},
        }
        if m.is_csv:
            t = check_table(tmp / r.path, "csv", m.csv, m.columns)
            if not t.ok and m.columns is not None:
                raise SchemaCheckError(
                    f"external dataset {entry.name!r}: member {r.path!r}: {'; '.join(t.problems)}; nothing was written"
                )
            if m.columns is None and t.columns:
                members_doc[r.path]["columns"] = t.columns
            table = table or t
    updates["members"] = members_doc
    return table, reports, tmp, updates


def _publish(entry: Entry, cache: Cache, file: Path, members_tmp: Path | None) -> Path:
    """Move a verified download into the cache (skipped if an intact copy is already there)."""
    assert entry.sha256 is not None and entry.size is not None
    final = cache.object_path(entry)
    with locks.hold(cache.locks_dir, entry.sha256, what=f"external dataset {entry.name!r}"):
        if not cache.check_file(final, entry.sha256, entry.size).ok:
            if final.exists():
                cache.quarantine(final, entry.sha256)
            with atomic_file(final) as part:
                shutil.copyfile(file, part)
                check = cache.check_file(part, entry.sha256, entry.size)
                if not check.ok:
                    raise VerificationError(
                        f"external dataset {entry.name!r}: copy into the cache failed: {check.reason}"
                    )
        if members_tmp is not None and entry.is_archive:
            dest = cache.members_dir(entry)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(members_tmp, dest)
    return final


# ---------------------------------------------------------------- register


@dataclass
class RegisterResult:
    name: str
    sha256: str
    size: int
    path: Path
    side_loaded: bool  # True: existing pinned entry filled from a local file; False: new manual entry
    table: TableReport | None
    comments_preserved: bool | None


def _infer_format(filename: str) -> str | None:
    low = filename.lower()
    for fmt, suffixes in (
        ("csv.gz", (".csv.gz",)),
        ("csv.bz2", (".csv.bz2",)),
        ("csv", (".csv",)),
        ("tar.gz", (".tar.gz", ".tgz")),
        ("zip", (".zip",)),
    ):
        if low.endswith(suffixes):
            return fmt
    return None


def register(
    name: str,
    source_path: str | os.PathLike,
    *,
    registry_path: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    description: str | None = None,
    license: str | None = None,
    source: str | None = None,
    citation: str | None = None,
    fmt: str | None = None,
    header_rows: int | None = None,
    filename: str | None = None,
    run_id: str | None = None,
    out: Printer | None = None,
) -> RegisterResult:
    """Copy a local file into the cache: side-load a pinned entry, or append a new ``kind: manual`` entry."""
    say = out or (lambda _s: None)
    if not NAME_RE.fullmatch(name or "") or len(name) > 64:
        raise RegistryError(f"register: invalid name {name!r} (want [a-z0-9_]+, at most 64 characters)")
    src = Path(source_path)
    if not src.is_file():
        raise RegistryError(f"register {name}: {src} is not a regular file")
    reg_path = _editable_registry(registry_path)
    registry = load_registry(reg_path)
    cache = Cache(root)
    sha, size = file_sha256(src)
    say(f"{src.name}: sha256 {sha}, {size} bytes")
    if name in registry.entries:
        entry = registry.get(name)
        entry.require_pinned()
        if (sha, size) != (entry.sha256, entry.size):
            raise VerificationError(
                f"register {name}: {src} is sha256 {sha}, {size} bytes, but the registry pins "
                f"sha256 {entry.sha256}, {entry.size} bytes; not side-loaded"
            )
        table = _side_load(entry, cache, src)
        path = cache.object_path(entry)
        say(f"side-loaded {name!r} into {path}")
        provenance.append(
            cache.provenance_path,
            {
                "event": "register",
                "ok": True,
                "name": name,
                "entry_sha256": entry.entry_sha256,
                "sha256": sha,
                "size": size,
                "side_loaded": True,
                "source_file": str(src.resolve()),
                "path": str(path),
                "schema": table.to_dict() if table else None,
                "run_id": run_id,
            },
        )
        return RegisterResult(name, sha, size, path, True, table, None)
    fmt = fmt or _infer_format(filename or src.name)
    if fmt not in CSV_FORMATS:
        hint = (
            (
                "archives need their members listed: add the entry by hand (with members and hashes), then run "
                "`macro-data register NAME PATH` to side-load it"
            )
            if fmt in ARCHIVE_FORMATS
            else "pass --format csv, csv.gz or csv.bz2"
        )
        raise RegistryError(f"register {name}: cannot register {src.name} as a new manual entry ({hint})")
    fname = filename or src.name
    if (problem := filename_problem(fname, fmt)) is not None:
        raise RegistryError(f"register {name}: {problem}; pass --filename")
    options = CsvOptions(header_rows=header_rows or 0)
    table = check_table(src, fmt, options, None)
    if not table.ok:
        raise SchemaCheckError(f"register {name}: {src} does not parse as {fmt}: {'; '.join(table.problems)}")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    entry_doc: dict[str, Any] = {
        "name": name,
        "kind": "manual",
        "description": description or f"Local file {fname} registered with `macro-data register`",
        "filename": fname,
        "sha256": sha,
        "size": size,
        "format": fmt,
        "csv": {"header_rows": options.header_rows},
        "columns": table.columns,
    }
    for key, value in (("license", license), ("source", source), ("citation", citation)):
        if value:
            entry_doc[key] = value
    entry_doc["registered_at"] = now
    document = copy.deepcopy(read_registry_document(reg_path))
    document["datasets"].append(entry_doc)
    candidate = _append_entry_text(reg_path.read_text(encoding="utf-8"), entry_doc)
    preserved = write_registry(reg_path, document, candidate, Path(root) if root is not None else None)
    entry = load_registry(reg_path).get(name)
    _side_load(entry, cache, src)
    path = cache.object_path(entry)
    say(
        f"registered {name!r} (kind: manual, {table.rows} rows x {len(table.columns)} columns) in {reg_path}"
        + ("" if preserved else " (re-serialised: comments were not preserved)")
    )
    say(f"cached at {path}")
    provenance.append(
        cache.provenance_path,
        {
            "event": "register",
            "ok": True,
            "name": name,
            "entry_sha256": entry.entry_sha256,
            "sha256": sha,
            "size": size,
            "side_loaded": False,
            "source_file": str(src.resolve()),
            "path": str(path),
            "schema": table.to_dict(),
            "run_id": run_id,
        },
    )
    return RegisterResult(name, sha, size, path, False, table, preserved)


def _side_load(entry: Entry, cache: Cache, src: Path) -> TableReport | None:
    """Copy a local file that matches the pinned hash into the cache (verify the copy, extract members)."""
    assert entry.sha256 is not None and entry.size is not None
    final = cache.object_path(entry)
    with locks.hold(cache.locks_dir, entry.sha256, what=f"external dataset {entry.name!r}"):
        with atomic_file(final) as part:
            shutil.copyfile(src, part)
            check = cache.check_file(part, entry.sha256, entry.size)
            if not check.ok:
                raise VerificationError(
                    f"register {entry.name}: the copy of {src} changed while copying ({check.reason})"
                )
            members_dir = None
            if entry.is_archive:
                archives.extract_members(
                    entry.name,
                    part,
                    entry.format,
                    entry.members,
                    cache.members_dir(entry),
                    max_total_bytes=HttpPolicy().max_extracted_bytes,
                )
                members_dir = cache.members_dir(entry)
            tables = {}
            if entry.is_csv:
                tables[entry.filename] = check_table(part, entry.format, entry.csv, entry.columns)
            elif members_dir is not None:
                tables = {
                    m.path: check_table(members_dir / m.path, "csv", m.csv, m.columns)
                    for m in entry.members
                    if m.is_csv
                }
            bad = [f"{k}: {'; '.join(t.problems)}" for k, t in tables.items() if not t.ok]
            if bad:
                raise SchemaCheckError(f"register {entry.name}: schema check failed: {'; '.join(bad)}")
            if final.exists() and not cache.check_file(final, entry.sha256, entry.size).ok:
                cache.quarantine(final, entry.sha256)
    return next(iter(tables.values()), None)


__all__ = ["MirrorResult", "PinResult", "RegisterResult", "pin", "register", "write_registry"]
