"""Safe extraction of registry-listed archive members (``zip``, ``tar.gz``).

Only the members the registry lists are extracted, only as regular files, into a fresh temporary
folder next to the destination that is renamed into place once every member is verified. The
whole archive is refused when a listed member

- appears in the archive under an unsafe name (absolute, ``..`` component, backslash, drive letter),
- appears more than once,
- is not a regular file (symbolic or hard link, device, FIFO, directory), or is encrypted (zip),
- declares or yields a size different from the registry, or hashes differently,

or when the listed members together exceed the extraction cap. Unlisted members are never
written, whatever they are. Member bytes are streamed with a hard cap (a zip entry cannot
decompress to more than its registry size), and each file is created with ``O_EXCL|O_NOFOLLOW``
inside a folder this process just made, so nothing can be written outside the destination.
(Python 3.11's ``tarfile.extractall`` without a filter, as used by pooch, writes ``../`` members
outside the target folder; nothing here calls it.)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from macro_data.external.errors import ArchiveError
from macro_data.external.hashes import file_sha256
from macro_data.external.registry import Member, member_path_problem

MAX_ARCHIVE_ENTRIES = 200_000
_CHUNK = 1 << 20


@dataclass(frozen=True)
class MemberReport:
    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict:
        return asdict(self)


def _loose_name(raw: str) -> str:
    """The name a member would match if its unsafe parts were ignored (to catch unsafe listed members)."""
    name = raw.replace("\\", "/")
    if len(name) >= 2 and name[1] == ":":
        name = name[2:]
    parts = [p for p in name.split("/") if p not in ("", ".", "..")]
    return "/".join(parts)


def _describe_tar(ti: tarfile.TarInfo) -> str | None:
    if ti.isreg():
        return None
    if ti.issym():
        return f"a symbolic link to {ti.linkname!r}"
    if ti.islnk():
        return f"a hard link to {ti.linkname!r}"
    if ti.ischr() or ti.isblk():
        return "a device"
    if ti.isfifo():
        return "a FIFO"
    if ti.isdir():
        return "a directory"
    return f"not a regular file (tar type {ti.type!r})"


def _describe_zip(info: zipfile.ZipInfo) -> str | None:
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.is_dir():
        return "a directory"
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "a symbolic link"
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        return "a device"
    if kind == stat.S_IFIFO:
        return "a FIFO"
    if kind == stat.S_IFSOCK:
        return "a socket"
    if kind not in (0, stat.S_IFREG):
        return f"not a regular file (mode {oct(mode)})"
    return None


def _match(name: str, listed: dict[str, Member], raw_names: Sequence[str]) -> dict[str, str]:
    """Map each listed path to the raw archive name holding it; refuse unsafe or duplicate holders."""
    found: dict[str, str] = {}
    for raw in raw_names:
        loose = _loose_name(raw)
        if loose not in listed:
            continue
        exact = raw[2:] if raw.startswith("./") else raw
        problem = member_path_problem(exact) if exact != loose else None
        if exact != loose and problem is None:
            problem = f"member name {raw!r} is not the registry path {loose!r}"
        if problem:
            raise ArchiveError(
                f"external dataset {name!r}: archive refused: listed member {loose!r} appears as {raw!r}: {problem}"
            )
        if loose in found:
            raise ArchiveError(
                f"external dataset {name!r}: archive refused: listed member {loose!r} appears more than once"
            )
        found[loose] = raw
    missing = [p for p in listed if p not in found]
    if missing:
        raise ArchiveError(
            f"external dataset {name!r}: archive refused: listed member(s) "
            f"{', '.join(map(repr, missing))} not in the archive"
        )
    return found


def _write_member(dest_root: Path, member: Member, src: IO[bytes], name: str) -> MemberReport:
    parts = member.path.split("/")
    d = dest_root
    for p in parts[:-1]:
        d = d / p
        try:
            os.mkdir(d)
        except FileExistsError:
            if d.is_symlink() or not d.is_dir():
                raise ArchiveError(
                    f"external dataset {name!r}: archive refused: {member.path!r} collides with another member"
                ) from None
    target = d / parts[-1]
    if not target.resolve().is_relative_to(dest_root.resolve()):  # belt and braces: paths are validated
        raise ArchiveError(f"external dataset {name!r}: archive refused: {member.path!r} leaves the destination")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    h = hashlib.sha256()
    n = 0
    cap = member.size if member.size is not None else None
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(_CHUNK):
            n += len(chunk)
            if cap is not None and n > cap:
                raise ArchiveError(
                    f"external dataset {name!r}: archive refused: member {member.path!r} "
                    f"yields more than its registry size {cap} bytes"
                )
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    digest = h.hexdigest()
    if member.size is not None and n != member.size:
        raise ArchiveError(
            f"external dataset {name!r}: archive refused: member {member.path!r} size {n} "
            f"differs from the registry size {member.size}"
        )
    if member.sha256 is not None and digest != member.sha256:
        raise ArchiveError(
            f"external dataset {name!r}: archive refused: member {member.path!r} sha256 mismatch: "
            f"expected {member.sha256}, actual {digest}"
        )
    return MemberReport(member.path, digest, n)


def extract_members(
    name: str, archive: Path, fmt: str, members: Sequence[Member], dest: Path, *, max_total_bytes: int
) -> list[MemberReport]:
    """Extract and verify ``members`` of ``archive`` into ``dest`` (replaced atomically).

    Members without sha256/size (pin mode) are extracted and their hash and size reported.
    """
    listed = {m.path: m for m in members}
    for m in members:
        if (problem := member_path_problem(m.path)) is not None:  # registry validation already refuses these
            raise ArchiveError(f"external dataset {name!r}: archive refused: {problem}")
    declared_total = sum(m.size or 0 for m in members)
    if declared_total > max_total_bytes:
        raise ArchiveError(
            f"external dataset {name!r}: archive refused: listed members total {declared_total} "
            f"bytes, above the {max_total_bytes}-byte extraction cap"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp"
    os.mkdir(tmp)
    try:
        if fmt == "tar.gz":
            reports = _extract_tar(name, archive, listed, tmp, max_total_bytes)
        elif fmt == "zip":
            reports = _extract_zip(name, archive, listed, tmp, max_total_bytes)
        else:
            raise ArchiveError(f"external dataset {name!r}: format {fmt!r} is not an archive")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return reports
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _total_guard(name: str, reports: list[MemberReport], cap: int) -> None:
    total = sum(r.size for r in reports)
    if total > cap:
        raise ArchiveError(
            f"external dataset {name!r}: archive refused: extracted {total} bytes, above the {cap}-byte extraction cap"
        )


def _too_many(name: str, n: int) -> None:
    if n > MAX_ARCHIVE_ENTRIES:
        raise ArchiveError(f"external dataset {name!r}: archive refused: more than {MAX_ARCHIVE_ENTRIES} entries")


@dataclass(frozen=True)
class _Stored:
    """One entry of an archive, as the extraction needs it (tar and zip alike)."""

    size: int
    describe: Callable[[], str | None]  # what it is when it is not a regular file
    open: Callable[[], IO[bytes] | None]


def _extract_listed(
    name: str, listed: dict[str, Member], tmp: Path, cap: int, raw_names: list[str], stored: dict[str, _Stored]
) -> list[MemberReport]:
    """Extract the listed members of an archive whose entries are ``raw_names`` (as stored) into ``tmp``."""
    found = _match(name, listed, raw_names)
    reports = []
    for path, raw in found.items():
        entry, m = stored[raw], listed[path]
        if (what := entry.describe()) is not None:
            raise ArchiveError(
                f"external dataset {name!r}: archive refused: listed member {path!r} is "
                f"{what}; only regular files are extracted"
            )
        if m.size is not None and entry.size != m.size:
            raise ArchiveError(
                f"external dataset {name!r}: archive refused: member {path!r} size "
                f"{entry.size} differs from the registry size {m.size}"
            )
        src = entry.open()
        if src is None:  # pragma: no cover - regular files always have data
            raise ArchiveError(f"external dataset {name!r}: archive refused: cannot read {path!r}")
        with src:
            reports.append(_write_member(tmp, m, src, name))
        _total_guard(name, reports, cap)
    return reports


def _extract_tar(name: str, archive: Path, listed: dict[str, Member], tmp: Path, cap: int) -> list[MemberReport]:
    try:
        with tarfile.open(archive, mode="r:gz") as tf:
            infos: list[tarfile.TarInfo] = []
            for ti in tf:  # counted while reading the index, so a huge one is refused early
                infos.append(ti)
                _too_many(name, len(infos))
            stored = {
                ti.name: _Stored(ti.size, lambda ti=ti: _describe_tar(ti), lambda ti=ti: tf.extractfile(ti))
                for ti in infos
            }
            return _extract_listed(name, listed, tmp, cap, [ti.name for ti in infos], stored)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(
            f"external dataset {name!r}: archive refused: cannot read or extract the tar.gz ({exc})"
        ) from None


def _extract_zip(name: str, archive: Path, listed: dict[str, Member], tmp: Path, cap: int) -> list[MemberReport]:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _too_many(name, len(infos))
            # ZipFile normalises names (backslashes, leading '/'); the raw header name is orig_filename.
            stored = {
                i.orig_filename: _Stored(i.file_size, lambda i=i: _describe_zip(i), lambda i=i: zf.open(i))
                for i in infos
            }
            return _extract_listed(name, listed, tmp, cap, [i.orig_filename for i in infos], stored)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        raise ArchiveError(
            f"external dataset {name!r}: archive refused: cannot read or extract the zip ({exc})"
        ) from None


def verify_members(members: Sequence[Member], dest: Path) -> str | None:
    """Re-verify extracted members in ``dest``; the first problem, or None when all are intact."""
    for m in members:
        p = dest / m.path
        if p.is_symlink() or not p.is_file():
            return f"member {m.path!r} missing"
        actual, n = file_sha256(p)
        if n != m.size or actual != m.sha256:
            return f"member {m.path!r}: sha256 {actual}, size {n} (expected {m.sha256}, {m.size})"
    return None
