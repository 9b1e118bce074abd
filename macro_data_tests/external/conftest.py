"""Fixtures: a real threading HTTP server on 127.0.0.1 with misbehaving routes, and a temporary data root.

Nothing here touches the internet. The pinned file is the real ``macrodata.csv`` shipped with
statsmodels (a dev dependency); its hash and size are checked against the registry in a test.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import tarfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from macro_data.external.http import HttpPolicy

MACRODATA_SHA256 = "d93c0d3a7a77ef83c3af14e46032bb1d02ae3a512b22ab94159a8ca226fcf708"
MACRODATA_SIZE = 17829
MACRODATA_COLUMNS = [
    "year",
    "quarter",
    "realgdp",
    "realcons",
    "realinv",
    "realgovt",
    "realdpi",
    "cpi",
    "m1",
    "tbilrate",
    "unemp",
    "pop",
    "infl",
    "realint",
]


def macrodata_path() -> Path:
    import statsmodels.datasets.macrodata as m

    return Path(m.__file__).resolve().parent / "macrodata.csv"


PAYLOAD = macrodata_path().read_bytes()
GZ_PAYLOAD = gzip.compress(PAYLOAD, mtime=0)
HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LoopbackServer:
    """Routes by path; counts hits; extra routes can be added per test (``serve``)."""

    def __init__(self):
        self.hits: collections.Counter[str] = collections.Counter()
        self.headers: dict[str, list[dict]] = collections.defaultdict(list)
        self.blobs: dict[str, tuple[bytes, dict]] = {}
        self.lock = threading.Lock()
        self.delay_ok = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # noqa: N802
                path = self.path.split("?", 1)[0]
                with server.lock:
                    server.hits[path] += 1
                    n = server.hits[path]
                    server.headers[path].append(dict(self.headers))
                try:
                    server.route(self, path, n)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, data: bytes, **headers: str) -> str:
        self.blobs[path] = (data, headers)
        return self.url(path)

    def reset(self) -> None:
        with self.lock:
            self.hits.clear()
            self.headers.clear()
            self.blobs.clear()
            self.delay_ok = 0.0

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---------------------------------------------------------------- routes

    @staticmethod
    def _send(h, status: int, body: bytes = b"", length: int | None = -1, **headers: str) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k.replace("_", "-"), v)
        if length == -1:
            length = len(body)
        if length is not None:
            h.send_header("Content-Length", str(length))
        h.end_headers()
        if body:
            h.wfile.write(body)
            h.wfile.flush()

    def route(self, h, path: str, n: int) -> None:
        send = self._send
        if path in self.blobs:
            data, headers = self.blobs[path]
            return send(h, 200, data, **headers)
        if path == "/ok/macrodata.csv":
            if self.delay_ok:
                time.sleep(self.delay_ok)
            return send(
                h,
                200,
                PAYLOAD,
                ETag='"macrodata-v1"',
                Last_Modified="Wed, 21 Oct 2015 07:28:00 GMT",
                Content_Type="text/csv",
            )
        if path == "/missing/macrodata.csv":
            return send(h, 404, b"not found")
        if path == "/forbidden/macrodata.csv":
            return send(h, 403, b"forbidden")
        if path == "/flaky503/macrodata.csv":  # 503 with Retry-After: 1 once, then the file
            if n == 1:
                return send(h, 503, b"busy", Retry_After="1")
            return send(h, 200, PAYLOAD)
        if path == "/busy/macrodata.csv":  # Retry-After far above any cap, once
            if n == 1:
                return send(h, 503, b"busy", Retry_After="3600")
            return send(h, 200, PAYLOAD)
        if path == "/always500/macrodata.csv":
            return send(h, 500, b"oops")
        if path == "/truncated/macrodata.csv":
            return send(h, 200, PAYLOAD[:5000], length=len(PAYLOAD))
        if path == "/truncated-once/macrodata.csv":
            if n == 1:
                return send(h, 200, PAYLOAD[:5000], length=len(PAYLOAD))
            return send(h, 200, PAYLOAD)
        if path == "/slow/macrodata.csv":  # headers, a little data, then silence
            send(h, 200, PAYLOAD[:100], length=len(PAYLOAD))
            time.sleep(1.5)
            h.wfile.write(PAYLOAD[100:])
            return None
        if path == "/redirect/macrodata.csv":
            return send(h, 302, Location="/ok/macrodata.csv")
        if path == "/redirect-abs/macrodata.csv":
            return send(h, 301, Location=self.url("/redirect/macrodata.csv"))
        if path == "/redirect-file/macrodata.csv":
            return send(h, 302, Location="file:///etc/passwd")
        if path == "/redirect-ftp/macrodata.csv":
            return send(h, 302, Location="ftp://127.0.0.1/macrodata.csv")
        if path == "/redirect-external-http/macrodata.csv":
            return send(h, 302, Location="http://example.invalid/macrodata.csv")
        if path == "/redirect-other-loopback/macrodata.csv":  # plain http to a loopback host not allowed
            return send(h, 302, Location=f"http://127.0.0.2:{self.port}/ok/macrodata.csv")
        if path == "/loop-a":
            return send(h, 302, Location="/loop-b")
        if path == "/loop-b":
            return send(h, 302, Location="/loop-a")
        if path.startswith("/chain/"):  # /chain/k -> /chain/k+1 ... -> /chain/N = the file
            k, total = (int(x) for x in path.split("/")[2:4])
            if k < total:
                return send(h, 302, Location=f"/chain/{k + 1}/{total}")
            return send(h, 200, PAYLOAD)
        if path == "/html/macrodata.csv":  # a sign-in page, close-delimited as dynamic pages often are
            return send(h, 200, HTML, length=None, Content_Type="text/html; charset=utf-8")
        if path == "/html-cl/macrodata.csv":
            return send(h, 200, HTML, Content_Type="text/html; charset=utf-8")
        if path == "/gz/macrodata.csv.gz":  # the .gz bytes labelled as gzip transfer coding
            return send(h, 200, GZ_PAYLOAD, Content_Encoding="gzip", Content_Type="text/csv")
        if path == "/biglen/macrodata.csv":
            return send(h, 200, PAYLOAD[:1000], length=10**9)
        if path == "/overlong/macrodata.csv":  # no Content-Length: close-delimited, too long
            return send(h, 200, PAYLOAD + b"9" * 50_000, length=None)
        if path == "/short-nolength/macrodata.csv":
            return send(h, 200, PAYLOAD[:-10], length=None)
        if path == "/corrupt/macrodata.csv":  # right size, wrong bytes
            return send(h, 200, PAYLOAD[:-1] + b"X")
        return send(h, 404, b"no such route")


@pytest.fixture(scope="session")
def _server_session():
    s = LoopbackServer()
    yield s
    s.close()


@pytest.fixture
def server(_server_session) -> LoopbackServer:
    _server_session.reset()
    yield _server_session
    _server_session.reset()


@pytest.fixture
def policy() -> HttpPolicy:
    """Short timeouts and backoff so that the suite stays fast."""
    return HttpPolicy(
        connect_timeout=2.0,
        read_timeout=0.3,
        attempts_per_url=2,
        backoff_base=0.01,
        backoff_cap=0.05,
        retry_after_cap=2.0,
        deadline=20.0,
        allow_http_hosts=frozenset({"127.0.0.1"}),
        jitter_seed=0,
    )


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict:
    """A private data root and registry path; loopback http allowed; online."""
    root = tmp_path / "root"
    reg = tmp_path / "registry" / "external.yaml"
    reg.parent.mkdir()
    monkeypatch.setenv("MACRO_DATA_ROOT", str(root))
    monkeypatch.setenv("MACRO_DATA_REGISTRY", str(reg))
    monkeypatch.setenv("MACRO_DATA_ALLOW_HTTP_HOSTS", "127.0.0.1")
    monkeypatch.delenv("MACRO_DATA_OFFLINE", raising=False)
    return {"root": root, "registry": reg, "tmp": tmp_path}


def macro_entry(name: str, urls: list[str], **overrides) -> dict:
    doc = {
        "name": name,
        "description": "US quarterly macro data 1959Q1-2009Q3",
        "urls": urls,
        "filename": "macrodata.csv",
        "sha256": MACRODATA_SHA256,
        "size": MACRODATA_SIZE,
        "format": "csv",
        "csv": {"header_rows": 0},
        "columns": list(MACRODATA_COLUMNS),
        "license": "public domain",
        "source": "FRED via statsmodels",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def write_registry(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "datasets": entries}, sort_keys=False), encoding="utf-8")
    return path


def make_tar(members: list[tuple[str, bytes | None, dict]]) -> bytes:
    """A .tar.gz in memory; members: (name, data or None, TarInfo attributes such as type, linkname)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data, attrs in members:
            ti = tarfile.TarInfo(name)
            for k, v in attrs.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def part_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.part")) if root.exists() else []


def all_files(base: Path) -> set[Path]:
    return {p for p in base.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture
def make_registry(env) -> Callable[[list[dict]], Path]:
    return lambda entries: write_registry(env["registry"], entries)
