"""Every fault case of the downloads tests, repeated by concurrent fetchers (threads and processes).

For each scenario (a registry entry whose mirrors are routes of the loopback server in
``macro_data_tests/external/conftest.py``: 404/403, 503 with Retry-After, 500s, truncated and
short bodies, a stalled body, redirects (followed, to ``file:``/``ftp:``/plain-http hosts, loops,
too many hops), an HTML sign-in page, gzip transfer coding, a lying or absent Content-Length, wrong
bytes, archives good and malicious, a schema mismatch) the fetch is run

1. once, single-threaded, in a fresh data root: the reference outcome and server hit counts;
2. by :data:`THREADS` threads released together by a barrier, in a second fresh root;
3. by :data:`PROCESSES` worker processes released together by a "go" file, in a third fresh root.

Then, in every concurrent run: each fetcher's outcome equals the reference (same verified bytes,
or the same error type and message up to timings); a success is downloaded exactly once (the
server's hit counts equal the single run's; the others wait on the entry's lock and get a
verified hit), while a failure is retried by each fetcher on its own (hits = fetchers x the
single run's: a failure is never cached); no ``.part`` file is left; every new file lies inside
``<root>/external``; and ``provenance.jsonl`` holds exactly one whole JSON line per fetch.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest

from macro_data.external.errors import ExternalDataError
from macro_data.external.fetch import fetch_entry
from macro_data.external.http import HttpPolicy
from macro_data.external.registry import load_registry
from macro_data_tests.external.conftest import (  # noqa: F401 - fixtures
    GZ_PAYLOAD,
    MACRODATA_COLUMNS,
    PAYLOAD,
    _server_session,
    all_files,
    macro_entry,
    make_tar,
    part_files,
    server,
    sha256,
    write_registry,
)

pytestmark = pytest.mark.slow
THREADS = 4
PROCESSES = 3
POLICY = dict(
    connect_timeout=2.0,
    read_timeout=1.0,
    attempts_per_url=2,
    backoff_base=0.01,
    backoff_cap=0.05,
    retry_after_cap=2.0,
    deadline=30.0,
    jitter_seed=0,
)  # read timeout < the 1.5 s stall of /slow
SMALL = b"a,b\n1,2\n3,4\n"


GOOD_TAR = make_tar([("inner/macrodata.csv", PAYLOAD, {}), ("small.csv", SMALL, {}), ("../evil.txt", b"x", {})])
EVIL_TAR = make_tar([("data.csv", None, {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"})])


def _archive(name: str, path: str, data: bytes, members: dict) -> dict:
    return {
        "name": name,
        "description": "test archive",
        "urls": [path],
        "filename": f"{name}.tar.gz",
        "sha256": sha256(data),
        "size": len(data),
        "format": "tar.gz",
        "members": members,
    }


# name -> (entry document with mirror paths instead of URLs, blobs to serve, expected ok)
SCENARIOS = {
    "ok": (macro_entry("m", ["/ok/macrodata.csv"]), {}, True),
    "404-then-mirror": (macro_entry("m", ["/missing/macrodata.csv", "/ok/macrodata.csv"]), {}, True),
    "403": (macro_entry("m", ["/forbidden/macrodata.csv"]), {}, False),
    "503-retry-after": (macro_entry("m", ["/flaky503/macrodata.csv"]), {}, True),
    "retry-after-capped": (macro_entry("m", ["/busy/macrodata.csv"]), {}, True),
    "always-500": (macro_entry("m", ["/always500/macrodata.csv", "/missing/macrodata.csv"]), {}, False),
    "truncated": (macro_entry("m", ["/truncated/macrodata.csv"]), {}, False),
    "truncated-once": (macro_entry("m", ["/truncated-once/macrodata.csv"]), {}, True),
    "short-no-length": (macro_entry("m", ["/short-nolength/macrodata.csv"]), {}, False),
    "stalled-then-mirror": (macro_entry("m", ["/slow/macrodata.csv", "/ok/macrodata.csv"]), {}, True),
    "redirects": (macro_entry("m", ["/redirect-abs/macrodata.csv"]), {}, True),
    "redirect-to-file": (macro_entry("m", ["/redirect-file/macrodata.csv"]), {}, False),
    "redirect-ftp-or-http": (
        macro_entry("m", ["/redirect-ftp/macrodata.csv", "/redirect-external-http/macrodata.csv"]),
        {},
        False,
    ),
    "redirect-other-loopback": (macro_entry("m", ["/redirect-other-loopback/macrodata.csv"]), {}, False),
    "redirect-loop": (macro_entry("m", ["/loop-a"]), {}, False),
    "five-hops": (macro_entry("m", ["/chain/0/5"]), {}, True),
    "six-hops": (macro_entry("m", ["/chain/0/6"], sha256="0" * 64), {}, False),
    "html-page": (macro_entry("m", ["/html/macrodata.csv"]), {}, False),
    "html-page-with-length": (macro_entry("m", ["/html-cl/macrodata.csv"]), {}, False),
    "wrong-bytes-then-mirror": (macro_entry("m", ["/corrupt/macrodata.csv", "/ok/macrodata.csv"]), {}, True),
    "gzip-coding-pinned-gz": (
        macro_entry(
            "m",
            ["/gz/macrodata.csv.gz"],
            filename="macrodata.csv.gz",
            format="csv.gz",
            sha256=sha256(GZ_PAYLOAD),
            size=len(GZ_PAYLOAD),
        ),
        {},
        True,
    ),
    "gzip-coding-pinned-csv": (macro_entry("m", ["/gz/macrodata.csv.gz"]), {}, False),
    "lying-length": (macro_entry("m", ["/biglen/macrodata.csv"]), {}, False),
    "overlong-body": (macro_entry("m", ["/overlong/macrodata.csv"]), {}, False),
    "schema-mismatch": (macro_entry("m", ["/ok/macrodata.csv"], columns=["year", "wrong"]), {}, False),
    "archive": (
        _archive(
            "arch",
            "/good.tar.gz",
            GOOD_TAR,
            {
                "inner/macrodata.csv": {"sha256": sha256(PAYLOAD), "size": len(PAYLOAD), "columns": MACRODATA_COLUMNS},
                "small.csv": {"sha256": sha256(SMALL), "size": len(SMALL), "columns": ["a", "b"]},
            },
        ),
        {"/good.tar.gz": GOOD_TAR},
        True,
    ),
    "archive-symlink": (
        _archive("arch", "/evil.tar.gz", EVIL_TAR, {"data.csv": {"sha256": sha256(SMALL), "size": len(SMALL)}}),
        {"/evil.tar.gz": EVIL_TAR},
        False,
    ),
}

WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from macro_data.external.errors import ExternalDataError
    from macro_data.external.fetch import fetch_entry
    from macro_data.external.http import HttpPolicy
    from macro_data.external.registry import load_registry
    for line in sys.stdin:
        cmd = json.loads(line)
        entry = load_registry(cmd["registry"], allow_http_hosts="127.0.0.1").get(cmd["name"])
        policy = HttpPolicy(**{**cmd["policy"], "allow_http_hosts": frozenset({"127.0.0.1"})})
        print(json.dumps({"ready": True}), flush=True)
        go = Path(cmd["go"])
        while not go.exists():
            time.sleep(0.001)
        try:
            r = fetch_entry(entry, root=cmd["root"], policy=policy)
            out = {"ok": True, "cache": r.cache, "path": str(r.path), "sha256": r.sha256,
                   "bytes_sha256": __import__("hashlib").sha256(r.path.read_bytes()).hexdigest()}
        except ExternalDataError as exc:
            out = {"ok": False, "type": type(exc).__name__, "error": str(exc)}
        except Exception as exc:  # an unhandled error is a finding: report it, do not hang
            out = {"ok": False, "type": "UNHANDLED " + type(exc).__name__, "error": repr(exc)}
        print(json.dumps(out), flush=True)
""")


def _normalize(message: str, server_port: int) -> str:
    """An error message without what legitimately varies between runs: timings, root folders."""
    message = re.sub(r"\(\d+\.\d+ s\)", "(T s)", message)
    message = re.sub(r"aborted after \d+ bytes", "aborted after N bytes", message)
    return message


def _outcome(result_or_error) -> dict:
    if isinstance(result_or_error, ExternalDataError):
        return {"ok": False, "type": type(result_or_error).__name__, "error": str(result_or_error)}
    if isinstance(result_or_error, BaseException):
        return {"ok": False, "type": "UNHANDLED " + type(result_or_error).__name__, "error": repr(result_or_error)}
    r = result_or_error
    import hashlib

    return {
        "ok": True,
        "cache": r.cache,
        "path": str(r.path),
        "sha256": r.sha256,
        "bytes_sha256": hashlib.sha256(r.path.read_bytes()).hexdigest(),
    }


def _comparable(out: dict, root: Path, port: int) -> tuple:
    if out["ok"]:
        return True, out["sha256"], out["bytes_sha256"], os.path.relpath(out["path"], root)
    return False, out["type"], _normalize(out["error"].replace(str(root), "<root>"), port)


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    script = tmp_path_factory.mktemp("workers") / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        for _ in range(PROCESSES)
    ]
    yield procs
    for p in procs:
        p.stdin.close()
    for p in procs:
        p.wait(timeout=30)


def _setup(server, tmp: Path, label: str, doc: dict, blobs: dict) -> tuple[Path, Path, str]:
    """A fresh root (under ``tmp/data``) and registry (under ``tmp/ctl``) for one run."""
    for path, data in blobs.items():
        server.serve(path, data)
    doc = {**doc, "urls": [server.url(u) for u in doc["urls"]]}
    (tmp / "ctl").mkdir(exist_ok=True)
    reg = tmp / "ctl" / f"{label}-registry.yaml"
    write_registry(reg, [doc])
    return tmp / "data" / f"{label}-root", reg, doc["name"]


def _check_root(root: Path, before: set, tmp: Path, n_fetches: int, expect_ok: bool) -> None:
    assert part_files(root) == []
    new = all_files(tmp / "data") - before
    outside = [p for p in new if not p.is_relative_to(root / "external")]
    assert outside == [], outside
    escaped = [p for p in all_files(tmp) | set(tmp.parent.iterdir()) if "evil" in p.name or p.name == "link"]
    assert escaped == [], escaped  # the archive's '../evil.txt' and symlink members were never written
    lines = (root / "external" / "provenance.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]  # every line whole, valid JSON
    assert len(records) == n_fetches
    assert all(r["event"] == "fetch" and r["ok"] is expect_ok for r in records), [r.get("ok") for r in records]


def _run_threads(entry, root: Path, policy: HttpPolicy) -> list[dict]:
    barrier = threading.Barrier(THREADS)
    outs: list = [None] * THREADS

    def run(i: int) -> None:
        barrier.wait()
        try:
            outs[i] = _outcome(fetch_entry(entry, root=root, policy=policy))
        except BaseException as exc:  # noqa: BLE001 - compared with the reference below
            outs[i] = _outcome(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outs


def _run_processes(workers, reg: Path, name: str, root: Path, go: Path) -> list[dict]:
    cmd = json.dumps({"registry": str(reg), "name": name, "root": str(root), "go": str(go), "policy": POLICY})
    for p in workers:
        p.stdin.write(cmd + "\n")
        p.stdin.flush()
    assert all(json.loads(p.stdout.readline()) == {"ready": True} for p in workers)
    go.touch()  # all fetchers start together
    return [json.loads(p.stdout.readline()) for p in workers]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fault_under_concurrency_matches_single_fetch(scenario, server, workers, tmp_path):
    doc, blobs, expect_ok = SCENARIOS[scenario]
    policy = HttpPolicy(**POLICY, allow_http_hosts=frozenset({"127.0.0.1"}))
    port = server.port
    (tmp_path / "data").mkdir()
    before = all_files(tmp_path / "data")

    # 1. the reference: one fetcher
    root, reg, name = _setup(server, tmp_path, "single", doc, blobs)
    entry = load_registry(reg, allow_http_hosts="127.0.0.1").get(name)
    try:
        ref = _outcome(fetch_entry(entry, root=root, policy=policy))
    except BaseException as exc:  # noqa: BLE001
        ref = _outcome(exc)
    assert not ref.get("type", "").startswith("UNHANDLED"), ref
    assert ref["ok"] is expect_ok, ref
    if expect_ok:
        assert ref["cache"] == "downloaded"
    single_hits = Counter(server.hits)
    _check_root(root, before, tmp_path, 1, expect_ok)
    expected = _comparable(ref, root, port)

    runs = {}
    for mode, count in (("threads", THREADS), ("processes", PROCESSES)):
        server.reset()
        before = all_files(tmp_path / "data")
        root, reg, name = _setup(server, tmp_path, mode, doc, blobs)
        if mode == "threads":
            outs = _run_threads(load_registry(reg, allow_http_hosts="127.0.0.1").get(name), root, policy)
        else:
            outs = _run_processes(workers, reg, name, root, tmp_path / "ctl" / f"go-{mode}")
        got = [_comparable(o, root, port) for o in outs]
        assert got == [expected] * count, (mode, outs)
        hits = Counter(server.hits)
        if expect_ok:  # one download; the other fetchers waited on the lock and re-verified the cached file
            caches = sorted(o["cache"] for o in outs)
            assert caches.count("downloaded") == 1 and set(caches) <= {"downloaded", "waited", "hit"}, caches
            assert hits == single_hits, (mode, hits, single_hits)
        else:  # a failure is not cached: each fetcher tried on its own, exactly as a single fetcher does
            assert hits == Counter({k: v * count for k, v in single_hits.items()}), (mode, hits, single_hits)
        _check_root(root, before, tmp_path, count, expect_ok)
        runs[mode] = dict(sorted(Counter(o.get("cache", o.get("type")) for o in outs).items()))
    print(
        f"\n{scenario}: single {ref.get('cache', ref.get('type'))}, hits {dict(single_hits)}; "
        f"threads {runs['threads']}; processes {runs['processes']}"
    )
