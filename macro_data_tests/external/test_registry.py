"""Registry validation: every rule names the entry and the field, before any network I/O."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from macro_data import paths
from macro_data.cli import main
from macro_data.external.errors import RegistryError, UnpinnedError
from macro_data.external.hashes import file_sha256
from macro_data.external.registry import allowed_http_hosts, load_registry, parse_registry

from .conftest import MACRODATA_SHA256, MACRODATA_SIZE, macro_entry, macrodata_path

SHIPPED_REGISTRY = Path(str(paths.packaged("external.yaml")))  # the registry the package ships

GOOD_URL = "https://example.org/macrodata.csv"


def _doc(*entries: dict) -> dict:
    return {"version": 1, "datasets": list(entries)}


def _problems(*entries: dict, allow: str = "") -> str:
    with pytest.raises(RegistryError) as info:
        parse_registry(_doc(*entries), source="reg.yaml", allow_http_hosts=allow)
    return str(info.value)


def test_shipped_registry_is_valid_and_pins_the_real_statsmodels_file():
    reg = load_registry(SHIPPED_REGISTRY, allow_http_hosts="")
    e = reg.get("us_macro_statsmodels")
    assert (e.sha256, e.size) == (MACRODATA_SHA256, MACRODATA_SIZE)
    # the file shipped with statsmodels is byte-identical to what the registry pins
    assert file_sha256(macrodata_path()) == (e.sha256, e.size)
    with open(macrodata_path(), newline="") as f:
        header = f.readline().strip().replace('"', "").split(",")
    assert list(e.columns) == header
    assert len(e.urls) >= 3 and all(u.startswith("https://") for u in e.urls)
    assert any("raw.githubusercontent.com/statsmodels/statsmodels/v" in u for u in e.urls)
    assert any("cdn.jsdelivr.net/gh/statsmodels/statsmodels@v" in u for u in e.urls)
    assert e.license == "public domain"


def test_shipped_fred_vintages_are_dated_unpinned_and_refused():
    reg = load_registry(SHIPPED_REGISTRY, allow_http_hosts="")
    fred = [e for e in reg.entries.values() if e.name.startswith("fred_")]
    assert {e.name for e in fred} >= {"fred_md_2024_01", "fred_qd_2024_01"}
    for e in fred:
        assert not e.pinned and len(e.urls) >= 2
        assert all("current.csv" not in u for u in e.urls)
        assert e.csv.header_rows == (1 if "_md_" in e.name else 2)
        with pytest.raises(UnpinnedError, match=f"run `macro-data pin {e.name}`"):
            e.require_pinned()


def test_entry_hash_is_the_sha256_of_the_canonical_entry_json():
    doc = macro_entry("a", [GOOD_URL])
    e = parse_registry(_doc(doc)).get("a")
    expected = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert e.entry_sha256 == expected
    changed = parse_registry(_doc({**doc, "description": "other"})).get("a")
    assert changed.entry_sha256 != expected


@pytest.mark.parametrize(
    "url, message",
    [
        (
            "http://example.org/m.csv",
            "entry 'a' (#1), field urls[0]: non-https URL 'http://example.org/m.csv': plain "
            "http is allowed only to loopback addresses named in MACRO_DATA_ALLOW_HTTP_HOSTS",
        ),
        (
            "ftp://example.org/m.csv",
            "entry 'a' (#1), field urls[0]: URL 'ftp://example.org/m.csv' has scheme 'ftp'; only https is allowed",
        ),
        ("file:///etc/passwd", "has scheme 'file'; only https is allowed"),
        ("https://user:pw@example.org/m.csv", "carries credentials"),
        (
            "https://example.org/fred-md/monthly/current.csv",
            "is a moving target (current.csv); use a dated vintage file",
        ),
        ("https://fred.stlouisfed.org/graph/fredgraph.csv?id=GDP", "is a live series endpoint"),
        ("https:///m.csv", "has no host"),
    ],
)
def test_bad_urls_are_refused(url, message):
    assert message in _problems(macro_entry("a", [url]))


def test_plain_http_allowed_only_for_named_loopback_hosts():
    doc = macro_entry("a", ["http://127.0.0.1:8080/m.csv"])
    assert "non-https URL" in _problems(doc)
    assert parse_registry(_doc(doc), allow_http_hosts="127.0.0.1").get("a").urls == ("http://127.0.0.1:8080/m.csv",)
    assert "non-https URL" in _problems(macro_entry("a", ["http://localhost:8080/m.csv"]), allow="127.0.0.1")


@pytest.mark.parametrize("value", ["example.com", "10.0.0.1", "192.168.1.1", "localhost", "0.0.0.0"])
def test_allow_http_hosts_accepts_loopback_addresses_only(value, monkeypatch):
    with pytest.raises(RegistryError, match=f"MACRO_DATA_ALLOW_HTTP_HOSTS: '{value}' is not a loopback IP address"):
        allowed_http_hosts(f"127.0.0.1,{value}")
    monkeypatch.setenv("MACRO_DATA_ALLOW_HTTP_HOSTS", value)
    with pytest.raises(RegistryError, match="not a loopback IP address"):
        load_registry(SHIPPED_REGISTRY)
    assert allowed_http_hosts(" 127.0.0.1 , 127.0.0.5,[::1]") == frozenset({"127.0.0.1", "127.0.0.5", "::1"})


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("sha256", "abc", "entry 'a' (#1), field sha256: malformed sha256 'abc' (want 64 lowercase hex digits)"),
        ("sha256", MACRODATA_SHA256.upper(), "malformed sha256"),
        ("size", 0, "entry 'a' (#1), field size: size 0 must be > 0"),
        ("size", -5, "field size: size -5 must be > 0"),
        (
            "format",
            "xlsx",
            "entry 'a' (#1), field format: unknown format 'xlsx' (known: csv, csv.gz, csv.bz2, zip, tar.gz)",
        ),
        ("filename", "../macrodata.csv", "entry 'a' (#1), field filename: unsafe filename '../macrodata.csv'"),
        ("filename", "sub/macrodata.csv", "field filename: unsafe filename 'sub/macrodata.csv'"),
        ("filename", ".macrodata.csv", "field filename: unsafe filename '.macrodata.csv'"),
        ("filename", "macrodata.csv.part", "'.part' is reserved"),
        (
            "filename",
            "macrodata.txt",
            "field filename: filename 'macrodata.txt' does not end with .csv as format 'csv'",
        ),
        ("name", "Bad-Name", "field name: invalid name 'Bad-Name' (want [a-z0-9_]+)"),
    ],
)
def test_field_rules_name_the_entry_and_field(field, value, message):
    doc = macro_entry("a", [GOOD_URL])
    doc[field] = value
    assert message in _problems(doc)


def test_duplicate_names_are_refused():
    msg = _problems(macro_entry("a", [GOOD_URL]), macro_entry("a", [GOOD_URL]))
    assert "entry 'a' (#2), field name: duplicate name 'a' (names must be unique)" in msg


def test_every_problem_is_reported_at_once():
    msg = _problems(
        macro_entry("a", ["http://x.org/a.csv"], filename="../a.csv"), macro_entry("b", [GOOD_URL], sha256="nothex")
    )
    assert "entry 'b' (#2), field sha256: malformed sha256" in msg
    # schema errors stop before semantic checks; fix the schema error and the others all show
    msg = _problems(macro_entry("a", ["http://x.org/a.csv"], filename="a.txt"), macro_entry("a", [GOOD_URL]))
    assert "field urls[0]: non-https URL" in msg and "field filename: filename 'a.txt'" in msg
    assert "field name: duplicate name 'a'" in msg


def test_unknown_keys_are_refused_but_x_keys_are_allowed():
    msg = _problems(macro_entry("a", [GOOD_URL], sha265="x"))
    assert "entry 'a' (#1), field (entry): unknown key(s) 'sha265' (known: citation, columns, csv," in msg
    assert "free-form keys must start with 'x_')" in msg
    assert parse_registry(_doc(macro_entry("a", [GOOD_URL], x_note="anything"))).get("a")


def test_pinned_unpinned_and_manual_rules():
    assert "field (entry): 'sha256' is a required property" in _problems(macro_entry("a", [GOOD_URL], sha256=None))
    unpinned = macro_entry("a", [GOOD_URL], sha256=None, size=None, pinned=False)
    assert not parse_registry(_doc(unpinned)).get("a").pinned
    msg = _problems({**unpinned, "sha256": MACRODATA_SHA256})
    assert "entry 'a' (#1), field sha256: an unpinned entry (pinned: false) carries no sha256/size" in msg
    manual = macro_entry("m", [], kind="manual")
    del manual["urls"]
    assert parse_registry(_doc(manual)).get("m").kind == "manual"
    no_urls = macro_entry("a", [GOOD_URL])
    del no_urls["urls"]
    assert "entry 'a' (#1), field (entry): 'urls' is a required property" in _problems(no_urls)
    assert "field urls: [] should be non-empty" in _problems(macro_entry("a", []))


ARCHIVE = {
    "name": "arch",
    "description": "d",
    "urls": ["https://example.org/a.tar.gz"],
    "filename": "a.tar.gz",
    "sha256": "1" * 64,
    "size": 10,
    "format": "tar.gz",
}


@pytest.mark.parametrize(
    "member, message",
    [
        ("../evil.csv", "field members/../evil.csv: member path '../evil.csv' has an empty, '.' or '..' component"),
        ("/abs.csv", "member path '/abs.csv' is absolute"),
        ("a\\b.csv", "contains a backslash"),
        ("C:/x.csv", "starts with a drive letter"),
        ("a//b.csv", "has an empty, '.' or '..' component"),
        ("a/./b.csv", "has an empty, '.' or '..' component"),
    ],
)
def test_unsafe_member_paths_are_refused(member, message):
    assert message in _problems({**ARCHIVE, "members": {member: {"sha256": "2" * 64, "size": 3}}})


def test_archive_member_rules():
    assert "'members' is a required property" in _problems(ARCHIVE)
    assert "field members/a.csv/sha256: 'sha256' is required for a member of a pinned archive" in _problems(
        {**ARCHIVE, "members": {"a.csv": {"size": 3}}}
    )
    assert "members are only for archives" in _problems(
        macro_entry("a", [GOOD_URL], members={"a.csv": {"sha256": "2" * 64, "size": 3}})
    )
    assert "an archive entry gives columns per member" in _problems(
        {**ARCHIVE, "members": {"a.csv": {"sha256": "2" * 64, "size": 3}}, "columns": ["x"]}
    )
    ok = parse_registry(
        _doc({**ARCHIVE, "members": {"inner/a.csv": {"sha256": "2" * 64, "size": 3, "columns": ["x"]}}})
    ).get("arch")
    assert ok.is_archive and ok.members[0].path == "inner/a.csv" and ok.members[0].columns == ("x",)


def test_yaml_duplicate_keys_and_aliases_are_refused(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("version: 1\ndatasets:\n  - name: a\n    sha256: " + "a" * 64 + "\n    sha256: " + "b" * 64 + "\n")
    with pytest.raises(RegistryError, match="duplicate key 'sha256'"):
        load_registry(p)
    p.write_text("version: 1\nx: &a [1]\ndatasets: *a\n")
    with pytest.raises(RegistryError, match="aliases are not allowed"):
        load_registry(p)
    p.write_text("version: 2\ndatasets: []\n")
    with pytest.raises(RegistryError, match="top level, field version: 1 was expected"):
        load_registry(p)
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")


def test_validation_happens_before_any_network_io(env, server, make_registry, capsys):
    make_registry(
        [
            macro_entry("good", [server.url("/ok/macrodata.csv")]),
            macro_entry("bad", [server.url("/ok/macrodata.csv")], sha256="0" * 63),
        ]
    )
    assert main(["fetch"]) == 1
    assert "entry 'bad' (#2), field sha256: malformed sha256" in capsys.readouterr().err
    assert sum(server.hits.values()) == 0
    assert not (env["root"] / "external" / "objects").exists()


def test_registry_path_comes_from_the_environment(env, make_registry):
    make_registry([macro_entry("only_here", [GOOD_URL])])
    assert load_registry().names == ["only_here"]
    assert Path(env["registry"]) == paths.registry_path()
    yaml.safe_load(Path(env["registry"]).read_text())
