"""``macro-data register NAME PATH``: put a local file into the cache, adding a registry entry if needed.

For a new name, :func:`register` appends a ``kind: manual`` entry with the file's sha256, size and
header to the registry (through :mod:`.registry_edit`: no other line changes) and caches the file.
For an existing pinned entry it side-loads the file (e.g. on an offline machine) after checking it
against the pinned hash; the registry is not changed then.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macro_data.external import provenance
from macro_data.external.cache import Cache
from macro_data.external.errors import RegistryError, SchemaCheckError, VerificationError
from macro_data.external.fetch import store_file
from macro_data.external.hashes import file_sha256
from macro_data.external.registry import (
    ARCHIVE_FORMATS,
    CSV_FORMATS,
    FORMAT_SUFFIXES,
    NAME_RE,
    CsvOptions,
    filename_problem,
    load_registry,
)
from macro_data.external.registry_edit import append_entry, editable_path
from macro_data.external.tabular import TableReport, check_table

Printer = Callable[[str], None]


@dataclass
class RegisterResult:
    """What a registration did."""

    name: str
    sha256: str
    size: int
    path: Path  # the file in the cache
    side_loaded: bool  # True: existing pinned entry filled from a local file; False: new manual entry
    table: TableReport | None


def _infer_format(filename: str) -> str | None:
    low = filename.lower()
    return next((fmt for fmt, suffixes in FORMAT_SUFFIXES.items() if low.endswith(suffixes)), None)


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
    """Copy a local file into the cache: side-load a pinned entry, or append a new ``kind: manual`` entry.

    Parameters
    ----------
    name
        An existing pinned entry, or a new name (``[a-z0-9_]+``, at most 64 characters).
    source_path
        The local file.
    registry_path
        The registry file (default ``$MACRO_DATA_REGISTRY``, else ``datasets/external.yaml``); never
        the copy shipped inside the package.
    root
        The data root holding ``external/`` (default ``$MACRO_DATA_ROOT``).
    description, license, source, citation
        Fields of a new entry (a description is made up when None).
    fmt
        Format of a new entry: ``csv``, ``csv.gz`` or ``csv.bz2``; default from the file name.
    header_rows
        Non-data rows after the column names, for a new entry (default 0).
    filename
        The name in the cache, for a new entry (default: the file's name).
    run_id
        Recorded in the provenance line.
    out
        Receives progress lines (e.g. ``print``); default: nothing is printed.

    Returns
    -------
    RegisterResult
        The file's hash, size, place in the cache and table.

    Raises
    ------
    ExternalDataError
        :class:`RegistryError` (bad name or file, archive as a new entry, shipped registry),
        :class:`VerificationError` (not the pinned bytes) or :class:`SchemaCheckError`.
    """
    say = out or (lambda _s: None)
    if not NAME_RE.fullmatch(name or "") or len(name) > 64:
        raise RegistryError(f"register: invalid name {name!r} (want [a-z0-9_]+, at most 64 characters)")
    src = Path(source_path)
    if not src.is_file():
        raise RegistryError(f"register {name}: {src} is not a regular file")
    reg_path = editable_path(registry_path)
    registry = load_registry(reg_path)
    cache = Cache(root)
    sha, size = file_sha256(src)
    say(f"{src.name}: sha256 {sha}, {size} bytes")
    side_loaded = name in registry.entries
    if side_loaded:
        entry = registry.get(name)
        entry.require_pinned()
        if (sha, size) != (entry.sha256, entry.size):
            raise VerificationError(
                f"register {name}: {src} is sha256 {sha}, {size} bytes, but the registry pins "
                f"sha256 {entry.sha256}, {entry.size} bytes; not side-loaded"
            )
        table = next(iter(store_file(entry, src, root=root).values()), None)
        path = cache.object_path(entry)
        say(f"side-loaded {name!r} into {path}")
    else:
        fname = filename or src.name
        fmt = fmt or _infer_format(fname)
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
        if (problem := filename_problem(fname, fmt)) is not None:
            raise RegistryError(f"register {name}: {problem}; pass --filename")
        options = CsvOptions(header_rows=header_rows or 0)
        table = check_table(src, fmt, options, None)
        if not table.ok:
            raise SchemaCheckError(f"register {name}: {src} does not parse as {fmt}: {'; '.join(table.problems)}")
        new_entry: dict[str, Any] = {
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
                new_entry[key] = value
        new_entry["registered_at"] = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        append_entry(reg_path, new_entry, root=root)
        entry = load_registry(reg_path).get(name)
        store_file(entry, src, root=root)
        path = cache.object_path(entry)
        say(f"registered {name!r} (kind: manual, {table.rows} rows x {len(table.columns)} columns) in {reg_path}")
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
            "side_loaded": side_loaded,
            "source_file": str(src.resolve()),
            "path": str(path),
            "schema": table.to_dict() if table else None,
            "run_id": run_id,
        },
    )
    return RegisterResult(name, sha, size, path, side_loaded, table)


__all__ = ["RegisterResult", "register"]
