"""Archives: only listed regular members are extracted, verified, and nothing lands outside the destination."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from macro_data.external.archives import extract_members
from macro_data.external.cache import Cache
from macro_data.external.errors import ArchiveError
from macro_data.external.fetch import fetch_entry, verify_cache
from macro_data.external.registry import CsvOptions, Member, load_registry

from .conftest import MACRODATA_COLUMNS, PAYLOAD, all_files, make_tar, part_files, sha256

SMALL = b"a,b\n1,2\n3,4\n"


def _zip(members: list[tuple[str, bytes, int | None]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _archive_entry(name, url, data: bytes, fmt: str, members: dict) -> dict:
    return {
        "name": name,
        "description": "test archive",
        "urls": [url],
        "filename": f"{name}.{fmt}",
        "sha256": sha256(data),
        "size": len(data),
        "format": fmt,
        "members": members,
    }


MACRO_MEMBER = {
    "inner/macrodata.csv": {"sha256": sha256(PAYLOAD), "size": len(PAYLOAD), "columns": MACRODATA_COLUMNS},
    "small.csv": {"sha256": sha256(SMALL), "size": len(SMALL), "columns": ["a", "b"]},
}


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_listed_members_are_extracted_and_verified_unlisted_never(fmt, env, make_registry, server, policy):
    if fmt == "tar.gz":
        data = make_tar(
            [
                ("inner/macrodata.csv", PAYLOAD, {}),
                ("./small.csv", SMALL, {}),
                ("../evil.txt", b"escaped", {}),
                ("/tmp/evil-abs.txt", b"escaped", {}),
                ("link", None, {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
            ]
        )
    else:
        data = _zip(
            [
                ("inner/macrodata.csv", PAYLOAD, None),
                ("small.csv", SMALL, None),
                ("../evil.txt", b"escaped", None),
                ("link", b"/etc/passwd", stat.S_IFLNK | 0o777),
            ]
        )
    make_registry([_archive_entry("arch", server.serve(f"/a.{fmt}", data), data, fmt, MACRO_MEMBER)])
    before = all_files(env["tmp"])
    r = fetch_entry(load_registry().get("arch"), policy=policy)
    assert r.cache == "downloaded" and r.path.read_bytes() == data
    assert (r.members_dir / "inner" / "macrodata.csv").read_bytes() == PAYLOAD
    assert (r.members_dir / "small.csv").read_bytes() == SMALL
    assert sorted(m.path for m in r.members) == ["inner/macrodata.csv", "small.csv"]
    assert r.tables["inner/macrodata.csv"].rows == 203 and r.tables["small.csv"].columns == ["a", "b"]
    new = all_files(env["tmp"]) - before
    ext = env["root"] / "external"
    assert all(p.is_relative_to(ext) for p in new)
    assert not any("evil" in p.name or p.name == "link" for p in all_files(env["tmp"]))
    assert not any("evil" in p.name for p in (env["tmp"].parent).iterdir())
    # cache hit re-verifies members; a damaged member is re-extracted from the verified archive
    (r.members_dir / "small.csv").write_bytes(b"a,b\n9,9\n")
    r2 = fetch_entry(load_registry().get("arch"), policy=policy)
    assert r2.cache == "hit" and (r2.members_dir / "small.csv").read_bytes() == SMALL and len(r2.quarantined) == 1
    (r.members_dir / "small.csv").unlink()
    statuses, _ = verify_cache(load_registry())
    assert statuses[0].status == "member-repaired" and (r.members_dir / "small.csv").read_bytes() == SMALL


def _refused(env, make_registry, server, policy, data: bytes, fmt: str, members: dict) -> str:
    make_registry([_archive_entry("bad", server.serve(f"/bad.{fmt}", data), data, fmt, members)])
    before = all_files(env["tmp"])
    with pytest.raises(ArchiveError) as info:
        fetch_entry(load_registry().get("bad"), policy=policy)
    cache = Cache()
    entry = load_registry().get("bad")
    assert not cache.object_path(entry).exists() and not cache.members_dir(entry).exists()
    assert part_files(env["root"]) == []
    leftovers = [
        p
        for p in all_files(env["tmp"]) - before
        if p.name not in ("provenance.jsonl", "provenance.lock") and p.suffix != ".lock"
    ]
    assert leftovers == []
    return str(info.value)


ONE = {"data.csv": {"sha256": sha256(SMALL), "size": len(SMALL)}}


@pytest.mark.parametrize(
    "fmt, members, message",
    [
        (
            "tar.gz",
            [("data.csv", None, {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"})],
            "listed member 'data.csv' is a symbolic link to '/etc/passwd'; only regular files are extracted",
        ),
        (
            "tar.gz",
            [("other", SMALL, {}), ("data.csv", None, {"type": tarfile.LNKTYPE, "linkname": "other"})],
            "listed member 'data.csv' is a hard link to 'other'",
        ),
        (
            "tar.gz",
            [("data.csv", None, {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3})],
            "listed member 'data.csv' is a device",
        ),
        ("tar.gz", [("data.csv", None, {"type": tarfile.FIFOTYPE})], "listed member 'data.csv' is a FIFO"),
        ("tar.gz", [("data.csv", None, {"type": tarfile.DIRTYPE})], "listed member 'data.csv' is a directory"),
        (
            "tar.gz",
            [("../data.csv", SMALL, {})],
            "listed member 'data.csv' appears as '../data.csv': member path '../data.csv' has an empty, '.' or '..' "
            "component",
        ),
        (
            "tar.gz",
            [("/data.csv", SMALL, {})],
            "listed member 'data.csv' appears as '/data.csv': member path '/data.csv' is absolute",
        ),
        (
            "tar.gz",
            [("data.csv", SMALL, {}), ("./data.csv", SMALL, {})],
            "listed member 'data.csv' appears more than once",
        ),
        ("tar.gz", [("other.csv", SMALL, {})], "listed member(s) 'data.csv' not in the archive"),
        ("tar.gz", [("data.csv", SMALL + b"5,6\n", {})], "member 'data.csv' size 16 differs from the registry size 12"),
        (
            "tar.gz",
            [("data.csv", SMALL.replace(b"4", b"5"), {})],
            f"member 'data.csv' sha256 mismatch: expected {sha256(SMALL)}, actual {sha256(SMALL.replace(b'4', b'5'))}",
        ),
        ("zip", [("data.csv", b"/etc/passwd", stat.S_IFLNK | 0o777)], "listed member 'data.csv' is a symbolic link"),
        ("zip", [("data.csv", b"", stat.S_IFCHR | 0o644)], "listed member 'data.csv' is a device"),
        (
            "zip",
            [("..\\data.csv", SMALL, None)],
            "appears as '..\\\\data.csv': member path '..\\\\data.csv' contains a backslash",
        ),
        ("zip", [("C:/data.csv", SMALL, None)], "member path 'C:/data.csv' starts with a drive letter"),
        ("zip", [("data.csv", SMALL * 2, None)], "member 'data.csv' size 24 differs from the registry size 12"),
    ],
)
def test_malicious_or_wrong_archives_are_refused_whole(fmt, members, message, env, make_registry, server, policy):
    data = make_tar(members) if fmt == "tar.gz" else _zip(members)
    assert message in _refused(env, make_registry, server, policy, data, fmt, ONE)


def test_extraction_cap_and_declared_member_size(tmp_path):
    data = _zip([("big.csv", b"x" * 5000, None)])
    archive = tmp_path / "a.zip"
    archive.write_bytes(data)
    big = Member("big.csv", sha256(b"x" * 5000), 5000, None, CsvOptions())
    with pytest.raises(ArchiveError, match="listed members total 5000 bytes, above the 1000-byte extraction cap"):
        extract_members("cap", archive, "zip", [big], tmp_path / "out", max_total_bytes=1000)
    # the header's size is checked before anything is written
    small = Member("big.csv", None, 4000, None, CsvOptions())
    with pytest.raises(ArchiveError, match="size 5000 differs from the registry size 4000"):
        extract_members("cap", archive, "zip", [small], tmp_path / "out", max_total_bytes=10**6)
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]
