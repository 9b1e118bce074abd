"""The commands, through ``macro_data.cli.main`` and one real ``macro-data`` subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from macro_data.cli import main
from macro_data.external.cache import Cache
from macro_data.external.registry import load_registry

from .conftest import MACRODATA_COLUMNS, MACRODATA_SHA256, MACRODATA_SIZE, PAYLOAD, macro_entry, macrodata_path

FAST = ["--read-timeout", "1", "--attempts", "2", "--deadline", "20"]


def _unpinned_text(server) -> str:
    return f"""# my registry: comments must survive a pin
version: 1
datasets:
  # the entry under review
  - name: later
    description: to be pinned
    urls:
      - {server.url("/ok/macrodata.csv")}   # primary
      - {server.url("/redirect/macrodata.csv")}
    filename: macrodata.csv
    pinned: false   # until reviewed
    format: csv
    csv: {{header_rows: 0}}
    license: public domain

  - name: other
    description: stays as it is
    urls: [{server.url("/ok/other.csv")}]
    filename: other.csv
    sha256: {"a" * 64}
    size: 10
    format: csv
"""


@pytest.mark.parametrize("command", ["fetch", "pin", "register", "provenance", "verify"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: macro-data {command}") and "--registry" in out


def test_fetch_all_then_verify_then_export(env, make_registry, server, capsys):
    make_registry([macro_entry("m", [server.url("/missing/macrodata.csv"), server.url("/ok/macrodata.csv")])])
    assert main(["fetch", *FAST]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(
        f"ok      m: downloaded from mirror 1 {server.url('/ok/macrodata.csv')}; sha256 "
        f"{MACRODATA_SHA256}, {MACRODATA_SIZE} bytes, 203 rows x 14 cols;"
    )
    assert err.strip().endswith("1 ok, 0 failed")
    assert main(["fetch", "m", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["cache"] == "hit" and line["rows"] == 203 and line["columns"] == MACRODATA_COLUMNS
    assert main(["verify"]) == 0
    assert "ok      m" in capsys.readouterr().out
    assert main(["provenance", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["sha256"] == MACRODATA_SHA256 and rows[0]["url"] == server.url("/ok/macrodata.csv")
    assert rows[0]["mirror_index"] == 1 and rows[0]["rows"] == 203
    assert main(["provenance", "m"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| dataset | source | license | retrieved (UTC) | URL | sha256 | bytes | rows x cols |")
    assert "| m | FRED via statsmodels | public domain |" in md and f"`{MACRODATA_SHA256}` | 17829 | 203 x 14 |" in md
    out_file = env["tmp"] / "prov.jsonl"
    assert main(["provenance", "--format", "jsonl", "-o", str(out_file)]) == 0
    assert [json.loads(x)["event"] for x in out_file.read_text().splitlines()] == ["fetch", "fetch", "verify"]


def test_fetch_failures_exit_non_zero(env, make_registry, server, capsys):
    make_registry(
        [
            macro_entry("ok", [server.url("/ok/macrodata.csv")]),
            macro_entry("broken", [server.url("/always500/macrodata.csv")], sha256="b" * 64),
            macro_entry("later", [server.url("/ok/x.csv")], sha256=None, size=None, pinned=False, filename="x.csv"),
        ]
    )
    assert main(["fetch", *FAST, "--attempts", "1"]) == 1
    out, err = capsys.readouterr()
    assert "ok      ok:" in out and "FAILED  broken: DownloadError" in out and "FAILED  later: UnpinnedError" in out
    assert "mirror 0 try 1: " + server.url("/always500/macrodata.csv") + ": HTTP 500" in err
    assert err.strip().endswith("1 ok, 2 failed")
    assert main(["fetch", "ok", "later", "--skip-unpinned"]) == 0
    capsys.readouterr()
    assert main(["fetch", "nope"]) == 1
    assert "no entry named 'nope'" in capsys.readouterr().err


def test_offline_fetch_lists_missing_entries(env, make_registry, server, capsys, monkeypatch):
    make_registry([macro_entry("m", [server.url("/ok/macrodata.csv")])])
    monkeypatch.setenv("MACRO_DATA_OFFLINE", "1")
    assert main(["fetch"]) == 1
    err = capsys.readouterr().err
    assert f"m: sha256 {MACRODATA_SHA256}, {MACRODATA_SIZE} bytes -> copy the file to" in err
    assert sum(server.hits.values()) == 0
    # side-load the real file, then offline fetch works
    assert main(["register", "m", str(macrodata_path())]) == 0
    assert "side-loaded 'm'" in capsys.readouterr().out
    assert main(["fetch"]) == 0 and sum(server.hits.values()) == 0
    wrong = env["tmp"] / "wrong.csv"
    wrong.write_bytes(PAYLOAD.replace(b"1959", b"1958"))
    assert main(["register", "m", str(wrong)]) == 1
    assert (
        f"but the registry pins sha256 {MACRODATA_SHA256}, {MACRODATA_SIZE} bytes; not side-loaded"
        in capsys.readouterr().err
    )


def test_pin_dry_run_then_pin_keeps_comments(env, server, capsys):
    reg = env["registry"]
    reg.write_text(_unpinned_text(server))
    assert main(["fetch", "later"]) == 1
    assert "run `macro-data pin later`" in capsys.readouterr().err
    original = reg.read_text()
    assert main(["pin", "later", "--dry-run", *FAST]) == 0
    out = capsys.readouterr().out
    assert f"mirror 0 {server.url('/ok/macrodata.csv')}: sha256 {MACRODATA_SHA256}, {MACRODATA_SIZE} bytes" in out
    assert f"mirror 1 {server.url('/redirect/macrodata.csv')}: sha256 {MACRODATA_SHA256}" in out
    assert f"sha256 {MACRODATA_SHA256}\nsize   {MACRODATA_SIZE}\nheader (14 columns, 203 rows): year, quarter" in out
    assert reg.read_text() == original and not Cache().object_dir(MACRODATA_SHA256).exists()
    assert main(["pin", "later", *FAST]) == 0
    out = capsys.readouterr().out
    assert f"wrote sha256/size and header of 'later' into {reg}" in out and "comments were not" not in out
    text = reg.read_text()
    assert "# my registry: comments must survive a pin" in text and "# primary" in text
    assert "# the entry under review" in text and "pinned:" not in text
    e = load_registry().get("later")
    assert e.pinned and (e.sha256, e.size) == (MACRODATA_SHA256, MACRODATA_SIZE)
    assert list(e.columns) == MACRODATA_COLUMNS
    assert load_registry().get("other").document == yaml.safe_load(_unpinned_text(server))["datasets"][1]
    assert Cache().object_path(e).read_bytes() == PAYLOAD
    hits = sum(server.hits.values())
    assert main(["fetch", "later"]) == 0 and sum(server.hits.values()) == hits  # a cache hit
    capsys.readouterr()
    assert main(["pin", "later", *FAST]) == 0  # unchanged upstream: fine
    assert "wrote sha256/size of 'later'" in capsys.readouterr().out


def test_pin_refuses_disagreeing_mirrors_and_changed_upstream(env, server, capsys):
    reg = env["registry"]
    reg.write_text(_unpinned_text(server).replace("/redirect/macrodata.csv", "/corrupt/macrodata.csv"))
    original = reg.read_text()
    assert main(["pin", "later", *FAST]) == 1
    err = capsys.readouterr().err
    assert "mirrors serve different bytes, nothing was written" in err
    assert reg.read_text() == original
    # pinned, but the mirror now serves other bytes: refused unless --force
    reg.write_text(
        _unpinned_text(server).replace(
            "    pinned: false   # until reviewed\n", f"    sha256: {'c' * 64}\n    size: {MACRODATA_SIZE}\n"
        )
    )
    assert main(["pin", "later", *FAST]) == 1
    assert (
        f"is pinned to sha256 {'c' * 64}, {MACRODATA_SIZE} bytes, but the mirrors now serve sha256 "
        f"{MACRODATA_SHA256}, {MACRODATA_SIZE} bytes: upstream changed"
    ) in capsys.readouterr().err
    assert main(["pin", "later", "--force", *FAST]) == 0
    assert load_registry().get("later").sha256 == MACRODATA_SHA256


def test_register_a_local_file_as_a_manual_entry(env, server, capsys):
    reg = env["registry"]
    reg.write_text(_unpinned_text(server))
    local = env["tmp"] / "my_series.csv"
    local.write_bytes(b"date,x\n2000-01-01,1.5\n2000-04-01,2.5\n")
    assert main(["register", "my_series", str(local), "--license", "proprietary", "--source", "in-house"]) == 0
    out = capsys.readouterr().out
    assert "registered 'my_series' (kind: manual, 2 rows x 2 columns)" in out
    text = reg.read_text()
    assert text.startswith("# my registry: comments must survive a pin") and "# primary" in text
    e = load_registry().get("my_series")
    assert e.kind == "manual" and e.urls == () and e.columns == ("date", "x") and e.license == "proprietary"
    assert Cache().object_path(e).read_bytes() == local.read_bytes()
    assert str(env["tmp"]) not in text  # no local paths in the (committed) registry
    local.write_bytes(b"changed")  # the cache keeps the registered bytes
    assert main(["fetch", "my_series", "--offline"]) == 0
    capsys.readouterr()
    assert main(["register", "Bad Name", str(local)]) == 1
    assert main(["register", "arch", str(env["tmp"] / "nope.zip")]) == 1
    capsys.readouterr()


def test_verify_quarantines_and_strict(env, make_registry, server, capsys):
    make_registry(
        [
            macro_entry("m", [server.url("/ok/macrodata.csv")]),
            macro_entry("n", [server.url("/ok/n.csv")], sha256="d" * 64, size=3, filename="n.csv"),
        ]
    )
    assert main(["fetch", "m"]) == 0
    assert main(["verify"]) == 0
    assert main(["verify", "--strict"]) == 1
    capsys.readouterr()
    path = Cache().object_path(load_registry().get("m"))
    path.write_bytes(b"z" * MACRODATA_SIZE)
    assert main(["verify", "m"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED  m") and "corrupt" in out and "quarantined to" in out
    assert not path.exists()


def test_real_console_script(env, make_registry, server):
    make_registry([macro_entry("m", [server.url("/ok/macrodata.csv")])])
    # installed beside the interpreter (the venv is not necessarily on PATH, as in CI)
    exe = shutil.which("macro-data", path=os.path.dirname(sys.executable)) or shutil.which("macro-data")
    assert exe, "the macro-data console script is installed with the package"
    proc = subprocess.run(
        [exe, "fetch", "--json", *FAST], capture_output=True, text=True, timeout=60, env=os.environ.copy()
    )
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["ok"] and rec["cache"] == "downloaded" and rec["sha256"] == MACRODATA_SHA256
    bad = subprocess.run(
        [exe, "pin", "m", "--offline"], capture_output=True, text=True, timeout=60, env=os.environ.copy()
    )
    assert bad.returncode == 1 and "macro-data pin: error: " in bad.stderr and "offline mode is on" in bad.stderr
