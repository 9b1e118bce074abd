"""Cache re-verification, quarantine, per-object locks (threads and processes), offline mode, provenance."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import requests

from macro_data.external import locks, provenance
from macro_data.external.cache import Cache
from macro_data.external.errors import DownloadError, LockTimeoutError, OfflineError, UnpinnedError
from macro_data.external.fetch import combined_offline_error, fetch_entry, fetch_many, verify_cache
from macro_data.external.http import HttpPolicy
from macro_data.external.registry import load_registry
from macro_data.files import temp_path

from .conftest import MACRODATA_SHA256, MACRODATA_SIZE, PAYLOAD, macro_entry, part_files


def _entry(make_registry, urls, name="m", **kw):
    make_registry([macro_entry(name, urls, **kw)])
    return load_registry().get(name)


def test_corrupted_cache_file_is_quarantined_and_fetched_again(env, make_registry, server, policy):
    e = _entry(make_registry, [server.url("/ok/macrodata.csv")])
    r = fetch_entry(e, policy=policy)
    garbage = bytes(reversed(PAYLOAD))  # same size, other bytes
    r.path.write_bytes(garbage)
    r2 = fetch_entry(e, policy=policy)
    assert r2.cache == "downloaded" and r2.path.read_bytes() == PAYLOAD
    assert len(r2.quarantined) == 1
    q = r2.quarantined[0]
    assert os.path.dirname(q) == str(env["root"] / "external" / "quarantine")
    assert open(q, "rb").read() == garbage and q.endswith(f"-{MACRODATA_SHA256[:12]}-macrodata.csv")
    assert server.hits["/ok/macrodata.csv"] == 2
    r.path.write_bytes(PAYLOAD[:100])  # truncated cache file: size check
    assert fetch_entry(e, policy=policy).cache == "downloaded"


def test_stale_part_files_are_removed_under_the_lock(env, make_registry, server, policy):
    e = _entry(make_registry, [server.url("/ok/macrodata.csv")])
    stale = temp_path(Cache().object_path(e))  # the name a crashed download leaves behind
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a download")
    fetch_entry(e, policy=policy)
    assert part_files(env["root"]) == []


def test_six_concurrent_threads_download_once(env, make_registry, server, policy):
    e = _entry(make_registry, [server.url("/ok/macrodata.csv")])
    server.delay_ok = 0.4
    patient = HttpPolicy(**{**policy.__dict__, "read_timeout": 5.0})
    barrier = threading.Barrier(6)
    outcomes, errors = [], []

    def run():
        barrier.wait()
        try:
            outcomes.append(fetch_entry(e, policy=patient).cache)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    assert server.hits["/ok/macrodata.csv"] == 1
    assert sorted(outcomes) == ["downloaded"] + ["waited"] * 5
    assert part_files(env["root"]) == []


def test_six_concurrent_processes_download_once(env, make_registry, server):
    _entry(make_registry, [server.url("/ok/macrodata.csv")])
    server.delay_ok = 0.5
    sync = env["tmp"] / "sync"
    sync.mkdir()
    code = textwrap.dedent(f"""
        import os, pathlib, time
        from macro_data.external.fetch import fetch_entry
        from macro_data.external.http import HttpPolicy
        from macro_data.external.registry import load_registry
        entry = load_registry().get("m")
        sync = pathlib.Path({str(sync)!r})
        (sync / f"ready-{{os.getpid()}}").touch()
        t0 = time.monotonic()
        while not (sync / "go").exists() and time.monotonic() - t0 < 30:
            time.sleep(0.01)
        r = fetch_entry(entry, policy=HttpPolicy.from_env(read_timeout=10, attempts_per_url=1))
        print(r.cache)
    """)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(6)
    ]
    t0 = time.monotonic()
    while len(list(sync.glob("ready-*"))) < 6 and time.monotonic() - t0 < 30:
        time.sleep(0.01)
    (sync / "go").touch()  # all six start fetching together
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    caches = sorted(o[0].strip() for o in outs)
    assert server.hits["/ok/macrodata.csv"] == 1
    assert caches.count("downloaded") == 1 and set(caches) <= {"downloaded", "waited", "hit"}
    assert caches.count("waited") >= 3  # the download takes 0.5 s after a common start


def test_lock_wait_is_bounded(env, make_registry, server, policy):
    e = _entry(make_registry, [server.url("/ok/macrodata.csv")])
    cache = Cache()
    with locks.hold(cache.locks_dir, MACRODATA_SHA256):
        with pytest.raises(LockTimeoutError) as info:
            fetch_entry(e, policy=policy, lock_timeout=0.2)
    assert f"another process held {cache.locks_dir / (MACRODATA_SHA256 + '.lock')} for more than 0.2 s" in str(
        info.value
    )
    assert server.hits["/ok/macrodata.csv"] == 0


def test_offline_mode_serves_verified_hits_only(env, make_registry, server, policy, monkeypatch):
    make_registry(
        [
            macro_entry("a", [server.url("/ok/macrodata.csv")]),
            macro_entry(
                "b",
                [server.url("/gz/macrodata.csv.gz")],
                filename="macrodata.csv.gz",
                format="csv.gz",
                sha256="e" * 64,
                size=123,
            ),
        ]
    )
    reg = load_registry()
    with pytest.raises(OfflineError) as info:
        fetch_entry(reg.get("a"), policy=policy, offline=True)
    objects = env["root"] / "external" / "objects"
    assert str(info.value) == (
        "offline mode (MACRO_DATA_OFFLINE=1 or offline=True): 1 entry is not in the verified cache:\n"
        f"  a: sha256 {MACRODATA_SHA256}, {MACRODATA_SIZE} bytes -> copy the file to "
        f"{objects / MACRODATA_SHA256 / 'macrodata.csv'} or run `macro-data register a PATH`"
    )
    assert sum(server.hits.values()) == 0
    fetch_entry(reg.get("a"), policy=policy)  # online
    monkeypatch.setenv("MACRO_DATA_OFFLINE", "1")
    assert fetch_entry(reg.get("a"), policy=policy).cache == "hit"
    (objects / MACRODATA_SHA256 / "macrodata.csv").write_bytes(b"x" * MACRODATA_SIZE)  # corrupt: not served
    outcomes = fetch_many(reg, policy=policy)
    err = combined_offline_error(outcomes)
    assert isinstance(err, OfflineError)
    assert "2 entries are not in the verified cache" in str(err)
    assert f"a: sha256 {MACRODATA_SHA256}" in str(err) and f"b: sha256 {'e' * 64}, 123 bytes" in str(err)
    assert server.hits["/ok/macrodata.csv"] == 1


def test_unpinned_and_manual_entries(env, make_registry, server, policy):
    e = _entry(make_registry, [server.url("/ok/macrodata.csv")], sha256=None, size=None, pinned=False)
    with pytest.raises(UnpinnedError, match="run `macro-data pin m` to download it, review the printed sha256"):
        fetch_entry(e, policy=policy)
    manual = macro_entry("man", [], kind="manual")
    del manual["urls"]
    make_registry([manual])
    with pytest.raises(DownloadError, match="is a manual entry .* run `macro-data register man PATH`"):
        fetch_entry(load_registry().get("man"), policy=policy)
    assert sum(server.hits.values()) == 0


def test_provenance_records_every_field(env, make_registry, server, policy):
    e = _entry(make_registry, [server.url("/missing/macrodata.csv"), server.url("/redirect/macrodata.csv")])
    r = fetch_entry(e, policy=policy, run_id="run-123")
    path = env["root"] / "external" / "provenance.jsonl"
    rec = json.loads(path.read_text().splitlines()[-1])
    assert rec == r.record
    canonical = json.dumps(e.document, sort_keys=True, separators=(",", ":")).encode()
    assert rec["entry_sha256"] == hashlib.sha256(canonical).hexdigest()
    assert rec["event"] == "fetch" and rec["ok"] is True and rec["name"] == "m" and rec["run_id"] == "run-123"
    assert rec["url"] == server.url("/redirect/macrodata.csv") and rec["mirror_index"] == 1
    assert rec["redirects"] == [server.url("/ok/macrodata.csv")] and rec["http_status"] == 200
    assert rec["etag"] == '"macrodata-v1"' and rec["last_modified"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert (rec["sha256"], rec["size"], rec["cache"]) == (MACRODATA_SHA256, MACRODATA_SIZE, "downloaded")
    assert [(a["url"], a["status"], a["ok"]) for a in rec["attempts"]] == [
        (server.url("/missing/macrodata.csv"), 404, False),
        (server.url("/redirect/macrodata.csv"), 200, True),
    ]
    assert all(a["duration_s"] >= 0 and a["outcome"] for a in rec["attempts"])
    assert rec["schema"]["ok"] and rec["schema"]["rows"] == 203 and len(rec["schema"]["columns"]) == 14
    assert rec["members"] == []
    when = dt.datetime.fromisoformat(rec["time_utc"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 60
    envr = rec["environment"]
    assert envr["python"] == platform.python_version() and envr["packages"]["requests"] == requests.__version__
    assert envr["packages"]["macro_data"] and "urllib3" in envr["packages"] and "dagster" in envr["packages"]
    # a failure is recorded too, append-only
    before = path.read_bytes()
    bad = _entry(make_registry, [server.url("/always500/macrodata.csv")], name="bad", sha256="f" * 64)
    with pytest.raises(DownloadError):
        fetch_entry(bad, policy=policy, run_id="run-124")
    after = path.read_bytes()
    assert after.startswith(before)
    fail = json.loads(after[len(before) :])
    assert fail["ok"] is False and fail["error_type"] == "DownloadError" and "HTTP 500" in fail["error"]
    assert len(fail["attempts"]) == 2 and fail["run_id"] == "run-124"


def test_concurrent_provenance_appends_stay_whole_lines(tmp_path):
    path = tmp_path / "p.jsonl"

    def work(i):
        for j in range(10):
            provenance.append(path, {"event": "test", "name": f"t{i}", "j": j, "pad": "x" * 5000})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = provenance.read(path)
    assert len(records) == 80 and len(path.read_text().splitlines()) == 80
    assert sorted((r["name"], r["j"]) for r in records) == sorted((f"t{i}", j) for i in range(8) for j in range(10))


def test_verify_cache_reports_and_quarantines(env, make_registry, server, policy):
    make_registry(
        [
            macro_entry("a", [server.url("/ok/macrodata.csv")]),
            macro_entry("missing", [server.url("/ok/x.csv")], sha256="c" * 64, size=5, filename="x.csv"),
            macro_entry("later", [server.url("/ok/y.csv")], sha256=None, size=None, pinned=False, filename="y.csv"),
        ]
    )
    reg = load_registry()
    r = fetch_entry(reg.get("a"), policy=policy)
    orphan = Cache().object_dir("d" * 64)
    orphan.mkdir(parents=True)
    statuses, orphans = verify_cache(reg)
    assert [(s.name, s.status, s.ok) for s in statuses] == [
        ("a", "ok", True),
        ("missing", "missing", True),
        ("later", "unpinned", True),
    ]
    assert orphans == [orphan]
    r.path.write_bytes(b"y" * MACRODATA_SIZE)
    statuses, _ = verify_cache(reg, names=["a"])
    assert statuses[0].status == "corrupt" and not statuses[0].ok
    assert "sha256 mismatch: expected " + MACRODATA_SHA256 in statuses[0].detail
    assert "quarantined to" in statuses[0].detail
    assert not r.path.exists()


def test_remote_data_root_is_refused_clearly(monkeypatch):
    from macro_data.external.errors import ExternalDataError

    monkeypatch.setenv("MACRO_DATA_ROOT", "s3://bucket/datasets")
    with pytest.raises(
        ExternalDataError,
        match="the external-data cache needs a local directory, but the data root "
        "is 's3://bucket/datasets': pass --root DIR",
    ):
        Cache()
