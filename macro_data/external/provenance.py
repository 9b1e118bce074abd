"""Provenance: one JSON line per fetch, pin, registration or cache check, appended under a lock.

``<root>/external/provenance.jsonl`` is append-only: each record is written with one ``write`` on a
file opened ``O_APPEND``, fsynced, while holding ``provenance.lock``. Fields of a fetch record:
``event``, ``ok``, ``name``, ``entry_sha256`` (hash of the canonical registry entry), ``url``,
``mirror_index``, ``redirects``, ``http_status``, ``etag``, ``last_modified``, ``sha256``, ``size``,
``cache`` (hit, downloaded, waited), ``attempts`` (URL, outcome, duration each), ``members``,
``schema``, ``path``, ``time_utc``, ``run_id`` and ``environment`` (the fingerprint of
:func:`macro_data.environment.fingerprint`: Python, library versions, BLAS, CPU, OS).
Failures are recorded too (``ok: false`` with the error).

:func:`export` turns the latest successful record of each dataset plus its registry entry into a
Markdown table or JSON for a paper's appendix.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from pathlib import Path

from macro_data import environment
from macro_data.external.registry import Registry
from macro_data.files import file_lock

RECORD_VERSION = 1


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append(path: Path, record: dict, *, lock_timeout: float = 60.0) -> dict:
    """Append one record (``record_version``, ``time_utc``, ``environment`` added when absent)."""
    full = {"record_version": RECORD_VERSION, "time_utc": utc_now(), **record}
    full.setdefault("environment", environment.fingerprint())
    line = json.dumps(full, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_suffix(".lock"), timeout=lock_timeout):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)  # the umask applies
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    return full


def read(path: Path, names: Iterable[str] | None = None) -> list[dict]:
    """All records (optionally of some entries), oldest first; a torn last line is skipped."""
    wanted = set(names or [])
    out = []
    if not path.is_file():
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not wanted or rec.get("name") in wanted:
                out.append(rec)
    return out


def latest_ok(records: list[dict], events: tuple[str, ...] = ("fetch", "pin", "register")) -> dict[str, dict]:
    """Per dataset, the latest successful record that obtained the bytes (a download, pin or registration);
    a cache hit only when nothing else is recorded."""
    latest: dict[str, dict] = {}
    for rec in records:
        if not (rec.get("ok") and rec.get("event") in events and rec.get("name")):
            continue
        obtained = rec.get("event") != "fetch" or rec.get("cache") == "downloaded"
        prev = latest.get(rec["name"])
        prev_obtained = prev is not None and (prev.get("event") != "fetch" or prev.get("cache") == "downloaded")
        if obtained or not prev_obtained:
            latest[rec["name"]] = rec
    return latest


def export(registry: Registry, records: list[dict], names: Iterable[str] | None = None, fmt: str = "markdown") -> str:
    """The provenance of datasets for a paper's appendix: ``markdown``, ``json`` or ``jsonl`` (raw)."""
    entries = registry.select(names)
    wanted = {e.name for e in entries}
    if fmt == "jsonl":
        return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records if r.get("name") in wanted)
    latest = latest_ok(records)
    rows = []
    for e in entries:
        rec = latest.get(e.name) or {}
        schema = rec.get("schema") or {}
        rows.append(
            {
                "name": e.name,
                "description": e.description,
                "source": e.source,
                "license": e.license,
                "citation": e.citation,
                "kind": e.kind,
                "format": e.format,
                "registry_sha256": e.sha256,
                "registry_size": e.size,
                "entry_sha256": e.entry_sha256,
                "pinned": e.pinned,
                "retrieved_utc": rec.get("time_utc"),
                "url": rec.get("url"),
                "mirror_index": rec.get("mirror_index"),
                "http_status": rec.get("http_status"),
                "etag": rec.get("etag"),
                "last_modified": rec.get("last_modified"),
                "sha256": rec.get("sha256"),
                "size": rec.get("size"),
                "rows": schema.get("rows"),
                "columns": schema.get("columns"),
                "members": rec.get("members"),
                "run_id": rec.get("run_id"),
                "environment": rec.get("environment"),
                "event": rec.get("event"),
            }
        )
    if fmt == "json":
        return json.dumps(rows, indent=2, sort_keys=True) + "\n"
    if fmt != "markdown":
        raise ValueError(f"unknown export format {fmt!r} (markdown, json, jsonl)")
    lines = [
        "| dataset | source | license | retrieved (UTC) | URL | sha256 | bytes | rows x cols |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shape = f"{r['rows']} x {len(r['columns'])}" if r["rows"] is not None and r["columns"] else "n/a"
        url = r["url"] or ("local file" if r["kind"] == "manual" else "")
        digest = r["sha256"] or r["registry_sha256"] or "unpinned"
        lines.append(
            f"| {r['name']} | {r['source'] or ''} | {r['license'] or ''} | "
            f"{r['retrieved_utc'] or 'never fetched'} | {url} | `{digest}` | "
            f"{r['size'] or r['registry_size'] or ''} | {shape} |"
        )
    notes = [
        f"- **{r['name']}**: {r['description']}" + (f" Citation: {r['citation']}" if r["citation"] else "")
        for r in rows
    ]
    envs = {json.dumps(r["environment"], sort_keys=True) for r in rows if r["environment"]}
    env_lines = [f"- environment: {e}" for e in sorted(envs)]
    return "\n".join(lines + [""] + notes + ([""] + env_lines if env_lines else [])) + "\n"
