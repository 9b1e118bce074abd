"""The external-data registry: ``datasets/external.yaml``, validated before any network I/O.

The file is checked against ``schemas/external_registry.schema.json`` and then against rules a
schema cannot express. Every problem is reported at once, each naming the entry and the field:

- URLs follow the URL policy of :mod:`.urls`: ``https`` only (plain ``http`` only to loopback
  addresses, for tests), no credentials, no moving targets such as ``current.csv``.
- names unique; sha256 64 lowercase hex digits; size > 0; known format; filename safe (one plain
  path component) and ending with the format's suffix.
- archives list their members as relative POSIX paths without ``..``, backslashes or drive
  letters; a pinned archive gives each member's sha256 and size.
- ``pinned: false`` entries carry no sha256/size; they are refused by :meth:`Entry.require_pinned`
  until ``macro-data pin NAME`` writes them (never trust on first use).

The YAML is read with a safe loader that also refuses aliases and duplicate keys (PyYAML keeps
the last of two ``sha256:`` keys silently; here that is an error). Documents nested deeper than
:data:`MAX_NESTING` levels are refused before the (recursive) schema validation, names, filenames
and hashes must match their patterns in full (a JSON Schema pattern ending in ``$`` also accepts a
trailing newline), and non-string mapping keys and non-finite numbers (in free-form ``x_`` keys)
are refused.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from macro_data import config_yaml, paths, schemas
from macro_data.external.errors import RegistryError, UnpinnedError
from macro_data.external.urls import allowed_http_hosts, url_problem
from macro_data.hashing import canonical_json

FORMATS = ("csv", "csv.gz", "csv.bz2", "zip", "tar.gz")
ARCHIVE_FORMATS = ("zip", "tar.gz")
CSV_FORMATS = ("csv", "csv.gz", "csv.bz2")
FORMAT_SUFFIXES = {
    "csv": (".csv",),
    "csv.gz": (".csv.gz",),
    "csv.bz2": (".csv.bz2",),
    "zip": (".zip",),
    "tar.gz": (".tar.gz", ".tgz"),
}
MAX_REGISTRY_BYTES = 2_000_000
MAX_NESTING = 32  # an entry nests 5 levels (datasets/[i]/members/<path>/csv)
SHA256_RE = re.compile(r"[0-9a-f]{64}")
NAME_RE = re.compile(r"^[a-z0-9_]+$")
FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class CsvOptions:
    """How to read a CSV: ``header_rows`` non-data rows follow the column-name row."""

    header_rows: int = 0
    delimiter: str = ","
    encoding: str = "utf-8"

    @classmethod
    def from_doc(cls, doc: dict | None) -> CsvOptions:
        doc = doc or {}
        return cls(int(doc.get("header_rows", 0)), str(doc.get("delimiter", ",")), str(doc.get("encoding", "utf-8")))


@dataclass(frozen=True)
class Member:
    """One archive member to extract."""

    path: str
    sha256: str | None
    size: int | None
    columns: tuple[str, ...] | None
    csv: CsvOptions

    @property
    def is_csv(self) -> bool:
        return self.path.lower().endswith(".csv")


@dataclass(frozen=True)
class Entry:
    """A validated registry entry. ``entry_sha256`` hashes its canonical JSON (provenance)."""

    name: str
    description: str
    kind: str
    urls: tuple[str, ...]
    filename: str
    sha256: str | None
    size: int | None
    format: str
    csv: CsvOptions
    columns: tuple[str, ...] | None
    members: tuple[Member, ...]
    license: str | None
    source: str | None
    citation: str | None
    document: dict = field(repr=False, compare=False)
    entry_sha256: str = ""

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None and self.size is not None

    @property
    def is_archive(self) -> bool:
        return self.format in ARCHIVE_FORMATS

    @property
    def is_csv(self) -> bool:
        return self.format in CSV_FORMATS

    def require_pinned(self) -> None:
        """Refuse an unpinned entry, saying how to pin it."""
        if not self.pinned:
            raise UnpinnedError(
                f"external dataset {self.name!r} is unpinned (no sha256/size in the registry) and is refused: "
                f"run `macro-data pin {self.name}` to download it, review the printed sha256 and size, and "
                f"have them written into the registry"
            )


@dataclass(frozen=True)
class Registry:
    """The parsed registry: entries in file order."""

    source: str
    version: int
    entries: dict[str, Entry]
    document: dict = field(repr=False)
    path: Path | None = None

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str) -> Entry:
        try:
            return self.entries[name]
        except KeyError:
            raise RegistryError(
                f"registry {self.source}: no entry named {name!r} (entries: {', '.join(self.entries) or 'none'})"
            ) from None

    def select(self, names: Iterable[str] | None) -> list[Entry]:
        names = list(names or [])
        return [self.get(n) for n in names] if names else list(self.entries.values())


def entry_hash(document: dict) -> str:
    return hashlib.sha256(canonical_json(document)).hexdigest()


# ---------------------------------------------------------------- member paths and filenames


def member_path_problem(path: str) -> str | None:
    """Why an archive member path is unsafe, or None."""
    if not path:
        return "empty member path"
    if "\x00" in path or any(ord(c) < 32 for c in path):
        return f"member path {path!r} contains control characters"
    if "\\" in path:
        return f"member path {path!r} contains a backslash"
    if path.startswith("/"):
        return f"member path {path!r} is absolute"
    if _DRIVE_RE.match(path):
        return f"member path {path!r} starts with a drive letter"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return f"member path {path!r} has an empty, '.' or '..' component"
    if len(path) > 1024 or any(len(p) > 255 for p in parts):
        return f"member path {path!r} is too long"
    return None


def filename_problem(filename: str, fmt: str | None) -> str | None:
    if not FILENAME_RE.fullmatch(filename or "") or ".." in filename or len(filename) > 200:
        return (
            f"unsafe filename {filename!r}: use one plain path component of letters, digits, '.', '_', '-' "
            f"(no '/', '..' or leading dot)"
        )
    if filename.endswith(".part"):
        return f"unsafe filename {filename!r}: '.part' is reserved for downloads in progress"
    if fmt in FORMAT_SUFFIXES and not filename.lower().endswith(FORMAT_SUFFIXES[fmt]):
        return f"filename {filename!r} does not end with {' or '.join(FORMAT_SUFFIXES[fmt])} as format {fmt!r} requires"
    return None


# ---------------------------------------------------------------- loading


def read_registry_document(path: Path) -> Any:
    return config_yaml.load_file(
        path, "registry", MAX_REGISTRY_BYTES, RegistryError, "; set MACRO_DATA_REGISTRY to the registry file"
    )


def load_registry(
    path: str | os.PathLike | None = None, allow_http_hosts: Iterable[str] | str | None = None
) -> Registry:
    """Load and validate the registry (default ``$MACRO_DATA_REGISTRY`` or ``datasets/external.yaml``)."""
    p = Path(path) if path is not None else paths.registry_path()
    reg = parse_registry(read_registry_document(p), source=str(p), allow_http_hosts=allow_http_hosts)
    return Registry(reg.source, reg.version, reg.entries, reg.document, p)


def _label(document: Any, path: list) -> tuple[str, str]:
    """('entry NAME (#i)', 'field a/b') for an error at ``path`` of the document."""
    if len(path) >= 2 and path[0] == "datasets" and isinstance(path[1], int):
        i = path[1]
        name = None
        try:
            name = document["datasets"][i].get("name")
        except (AttributeError, IndexError, KeyError, TypeError):
            pass
        who = f"entry {name!r} (#{i + 1})" if isinstance(name, str) else f"entry #{i + 1}"
        rest = path[2:]
    else:
        who, rest = "top level", path
    where = "".join(f"[{p}]" if isinstance(p, int) else (f"/{p}" if k else str(p)) for k, p in enumerate(rest))
    return who, where or "(entry)"


def _schema_message(error: jsonschema.ValidationError) -> str:
    field_name = error.absolute_path[-1] if error.absolute_path else None
    if error.validator == "pattern" and field_name == "sha256":
        return f"malformed sha256 {error.instance!r} (want 64 lowercase hex digits)"
    if error.validator == "pattern" and field_name == "filename":
        return filename_problem(str(error.instance), None) or error.message
    if error.validator == "pattern" and field_name == "name":
        return f"invalid name {error.instance!r} (want [a-z0-9_]+)"
    if error.validator == "enum" and field_name == "format":
        return f"unknown format {error.instance!r} (known: {', '.join(FORMATS)})"
    if error.validator == "minItems" and error.validator_value == 1:  # worded so by jsonschema >= 4.21 only
        return f"{error.instance!r} should be non-empty"
    if error.validator == "minimum" and field_name == "size":
        return f"size {error.instance!r} must be > 0"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
        extra = [k for k in error.instance if k not in known and not any(p.search(str(k)) for p in patterns)]
        hint = "; free-form keys must start with 'x_'" if patterns else ""
        return f"unknown key(s) {', '.join(map(repr, extra))} (known: {', '.join(sorted(known))}{hint})"
    return error.message


def parse_registry(
    document: Any, source: str = "<registry>", allow_http_hosts: Iterable[str] | str | None = None
) -> Registry:
    """Validate a registry document (already parsed) and build a :class:`Registry`."""
    allow_http = allowed_http_hosts(allow_http_hosts)
    if not isinstance(document, dict):
        raise RegistryError(f"registry {source}: the top level must be a mapping; got {type(document).__name__}")
    problem = _structure_problem(document)
    if problem is not None:
        raise RegistryError(f"registry {source}: {problem}")
    errors = schemas.errors("external_registry", document)
    problems: list[str] = []
    for e in errors:
        who, where = _label(document, list(e.absolute_path))
        problems.append(f"{who}, field {where}: {_schema_message(e)}")
    if problems:
        raise RegistryError(
            f"registry {source} is invalid (schemas/external_registry.schema.json):\n  " + "\n  ".join(problems[:30])
        )
    entries: dict[str, Entry] = {}
    for i, doc in enumerate(document["datasets"]):
        who = f"entry {doc['name']!r} (#{i + 1})"
        problems.extend(f"{who}, field {f}: {msg}" for f, msg in _semantic_problems(doc, allow_http))
        if doc["name"] in entries:
            problems.append(f"{who}, field name: duplicate name {doc['name']!r} (names must be unique)")
            continue
        try:
            entries[doc["name"]] = _build_entry(doc)
        except ValueError:  # NaN/inf cannot be hashed canonically; reported by _semantic_problems
            pass
    if problems:
        raise RegistryError(f"registry {source} is invalid:\n  " + "\n  ".join(problems[:30]))
    return Registry(source, int(document["version"]), entries, document)


def _structure_problem(document: Any, limit: int = MAX_NESTING) -> str | None:
    """The first container nested deeper than ``limit``, or mapping key that is not a string (YAML allows
    ``0:``; the schema validator would crash on it), as "field PATH: problem" (iterative: no recursion)."""
    stack = [(document, [], 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, (dict, list)):
            where = "/".join(map(str, path)) or "(top level)"
            if depth >= limit:
                return f"field {where}: nested more than {limit} levels deep"
            if isinstance(node, dict):
                bad = [k for k in node if not isinstance(k, str)]
                if bad:
                    return f"field {where}: mapping key {bad[0]!r} is not a string"
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((v, path + [k], depth + 1) for k, v in items)
    return None


def _semantic_problems(doc: dict, allow_http: frozenset[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:  # NaN/inf (YAML .nan/.inf, e.g. in a free-form x_ key): the entry could not be hashed
        node, where = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            out.append((where, f"non-finite number {node!r} (entries are hashed as JSON, which has no NaN/Infinity)"))
        elif isinstance(node, dict):
            stack.extend((v, f"{where}/{k}" if where else str(k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
    if not NAME_RE.fullmatch(doc["name"]):
        out.append(("name", f"invalid name {doc['name']!r} (want [a-z0-9_]+)"))
    for key, value in [("sha256", doc.get("sha256"))] + [
        (f"members/{k}/sha256", (m or {}).get("sha256")) for k, m in (doc.get("members") or {}).items()
    ]:
        if value is not None and not SHA256_RE.fullmatch(value):
            out.append((key, f"malformed sha256 {value!r} (want 64 lowercase hex digits)"))
    fmt = doc["format"]
    kind = doc.get("kind", "download")
    for j, url in enumerate(doc.get("urls") or []):
        if (msg := url_problem(url, allow_http)) is not None:
            out.append((f"urls[{j}]", msg))
    if (msg := filename_problem(doc["filename"], fmt)) is not None:
        out.append(("filename", msg))
    unpinned = doc.get("pinned") is False
    if unpinned:
        if kind == "manual":
            out.append(("pinned", "a manual entry is always pinned (its hash is taken at registration)"))
        for key in ("sha256", "size"):
            if key in doc:
                out.append(
                    (
                        key,
                        "an unpinned entry (pinned: false) carries no sha256/size; "
                        "`macro-data pin` writes them and removes pinned: false",
                    )
                )
    members = doc.get("members")
    if fmt in ARCHIVE_FORMATS:
        for mpath, mdoc in (members or {}).items():
            if (msg := member_path_problem(mpath)) is not None:
                out.append((f"members/{mpath}", msg))
            if not unpinned:
                for key in ("sha256", "size"):
                    if key not in mdoc:
                        out.append((f"members/{mpath}/{key}", f"'{key}' is required for a member of a pinned archive"))
        for key in ("columns", "csv"):
            if key in doc:
                out.append((key, f"an archive entry gives {key} per member (members/<path>/{key})"))
    elif members is not None:
        out.append(("members", f"members are only for archives (zip, tar.gz), not format {fmt!r}"))
    return out


def _int_or_none(value: Any) -> int | None:
    """JSON Schema's ``integer`` accepts 17829.0; the entry holds the int (sizes are compared and recorded)."""
    return None if value is None else int(value)


def _build_entry(doc: dict) -> Entry:
    members = tuple(
        Member(
            path=p,
            sha256=m.get("sha256"),
            size=_int_or_none(m.get("size")),
            columns=tuple(m["columns"]) if m.get("columns") else None,
            csv=CsvOptions.from_doc(m.get("csv")),
        )
        for p, m in (doc.get("members") or {}).items()
    )
    return Entry(
        name=doc["name"],
        description=doc["description"],
        kind=doc.get("kind", "download"),
        urls=tuple(doc.get("urls") or ()),
        filename=doc["filename"],
        sha256=doc.get("sha256"),
        size=_int_or_none(doc.get("size")),
        format=doc["format"],
        csv=CsvOptions.from_doc(doc.get("csv")),
        columns=tuple(doc["columns"]) if doc.get("columns") else None,
        members=members,
        license=doc.get("license"),
        source=doc.get("source"),
        citation=doc.get("citation"),
        document=doc,
        entry_sha256=entry_hash(doc),
    )
