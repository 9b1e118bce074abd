"""The download algorithm against a real loopback HTTP server: exact outcomes and error texts."""

from __future__ import annotations

import time

import pytest
import requests

from macro_data.external.errors import DownloadError
from macro_data.external.fetch import fetch_entry
from macro_data.external.http import HttpPolicy, download, parse_retry_after
from macro_data.external.registry import load_registry

from .conftest import (
    GZ_PAYLOAD,
    HTML,
    MACRODATA_SHA256,
    MACRODATA_SIZE,
    PAYLOAD,
    macro_entry,
    part_files,
    sha256,
)


def _fetch(env, make_registry, urls, policy, **overrides):
    make_registry([macro_entry("m", urls, **overrides)])
    entry = load_registry(allow_http_hosts="127.0.0.1").get("m")
    return fetch_entry(entry, policy=policy)


def _fail(env, make_registry, urls, policy, **overrides) -> str:
    with pytest.raises(DownloadError) as info:
        _fetch(env, make_registry, urls, policy, **overrides)
    assert part_files(env["root"]) == []
    objects = env["root"] / "external" / "objects" / overrides.get("sha256", MACRODATA_SHA256)
    assert not objects.exists() or not any(objects.iterdir()), "nothing published"
    return str(info.value)


def test_ok_download_is_verified_cached_and_sent_identity(env, make_registry, server, policy):
    r = _fetch(env, make_registry, [server.url("/ok/macrodata.csv")], policy)
    assert r.cache == "downloaded" and r.mirror_index == 0 and r.http_status == 200
    assert r.path.read_bytes() == PAYLOAD
    assert r.path == env["root"] / "external" / "objects" / MACRODATA_SHA256 / "macrodata.csv"
    assert (r.sha256, r.size) == (sha256(PAYLOAD), len(PAYLOAD))
    assert r.etag == '"macrodata-v1"' and r.last_modified == "Wed, 21 Oct 2015 07:28:00 GMT"
    sent = server.headers["/ok/macrodata.csv"][0]
    assert sent["Accept-Encoding"] == "identity"
    assert "Authorization" not in sent
    assert r.table is not None and r.table.ok and r.table.rows == 203 and r.table.columns[:2] == ["year", "quarter"]
    # second fetch: a re-verified cache hit, no request
    r2 = _fetch(env, make_registry, [server.url("/ok/macrodata.csv")], policy)
    assert r2.cache == "hit" and server.hits["/ok/macrodata.csv"] == 1
    assert part_files(env["root"]) == []


def test_404_moves_to_the_next_mirror_at_once(env, make_registry, server, policy):
    r = _fetch(env, make_registry, [server.url("/missing/macrodata.csv"), server.url("/ok/macrodata.csv")], policy)
    assert r.mirror_index == 1 and r.url.endswith("/ok/macrodata.csv")
    assert [(a.mirror_index, a.status, a.ok) for a in r.attempts] == [(0, 404, False), (1, 200, True)]
    assert r.attempts[0].outcome == "HTTP 404 Not Found (not retried: next mirror)"
    assert server.hits["/missing/macrodata.csv"] == 1


def test_503_with_retry_after_is_honoured(env, make_registry, server, policy):
    t0 = time.monotonic()
    r = _fetch(env, make_registry, [server.url("/flaky503/macrodata.csv")], policy)
    elapsed = time.monotonic() - t0
    assert r.cache == "downloaded" and server.hits["/flaky503/macrodata.csv"] == 2
    first = r.attempts[0]
    assert first.status == 503 and first.retry_after_s == 1.0 and first.slept_s == 1.0
    assert first.outcome == "HTTP 503 Service Unavailable (retryable, Retry-After 1)"
    assert elapsed >= 1.0


def test_retry_after_is_capped(env, make_registry, server, policy):
    capped = HttpPolicy(**{**policy.__dict__, "retry_after_cap": 0.2})
    t0 = time.monotonic()
    r = _fetch(env, make_registry, [server.url("/busy/macrodata.csv")], capped)
    assert r.attempts[0].retry_after_s == 3600.0 and r.attempts[0].slept_s == 0.2
    assert time.monotonic() - t0 < 10.0


def test_retry_after_parsing():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 100))
    assert 95 <= parse_retry_after(future) <= 101


def test_always_500_fails_listing_every_attempt(env, make_registry, server, policy):
    msg = _fail(
        env, make_registry, [server.url("/always500/macrodata.csv"), server.url("/missing/macrodata.csv")], policy
    )
    assert server.hits["/always500/macrodata.csv"] == policy.attempts_per_url == 2
    assert server.hits["/missing/macrodata.csv"] == 1
    assert msg.startswith(
        "external dataset 'm': download failed, nothing was published (expected sha256 "
        f"{MACRODATA_SHA256}, size {MACRODATA_SIZE} bytes); 3 attempt(s):"
    )
    lines = msg.splitlines()[1:]
    assert lines[0].startswith(
        f"  1. mirror 0 try 1: {server.url('/always500/macrodata.csv')}: HTTP 500 Internal Server Error (retryable)"
    )
    assert lines[1].startswith("  2. mirror 0 try 2: ")
    assert lines[2].startswith(f"  3. mirror 1 try 1: {server.url('/missing/macrodata.csv')}: HTTP 404 Not Found")


def test_truncated_body_is_retried_then_reported(env, make_registry, server, policy):
    msg = _fail(env, make_registry, [server.url("/truncated/macrodata.csv")], policy)
    assert server.hits["/truncated/macrodata.csv"] == 2
    assert "truncated body: connection closed after 5000 of 17829 declared bytes" in msg


def test_truncated_once_recovers_on_retry(env, make_registry, server, policy):
    r = _fetch(env, make_registry, [server.url("/truncated-once/macrodata.csv")], policy)
    assert [a.ok for a in r.attempts] == [False, True] and r.path.read_bytes() == PAYLOAD


def test_short_body_without_length_is_truncation(env, make_registry, server, policy):
    msg = _fail(env, make_registry, [server.url("/short-nolength/macrodata.csv")], policy)
    assert f"truncated body: received {MACRODATA_SIZE - 10} of {MACRODATA_SIZE} bytes" in msg


def test_slow_body_times_out_and_the_mirror_is_used(env, make_registry, server, policy):
    t0 = time.monotonic()
    r = _fetch(env, make_registry, [server.url("/slow/macrodata.csv"), server.url("/ok/macrodata.csv")], policy)
    assert r.mirror_index == 1
    assert [a.outcome for a in r.attempts[:2]] == ["read timeout: no data for 0.3 s (after 100 bytes)"] * 2
    assert time.monotonic() - t0 < 6.0


def test_redirects_are_followed_and_recorded(env, make_registry, server, policy):
    r = _fetch(env, make_registry, [server.url("/redirect-abs/macrodata.csv")], policy)
    assert r.redirects == [server.url("/redirect/macrodata.csv"), server.url("/ok/macrodata.csv")]
    assert r.final_url == server.url("/ok/macrodata.csv") and r.path.read_bytes() == PAYLOAD
    assert r.record["redirects"] == r.redirects


def test_redirect_to_file_url_is_refused(env, make_registry, server, policy):
    msg = _fail(env, make_registry, [server.url("/redirect-file/macrodata.csv")], policy)
    assert (
        "-> file:///etc/passwd: redirect refused: URL 'file:///etc/passwd' has scheme 'file'; only https is allowed"
    ) in msg
    assert server.hits["/redirect-file/macrodata.csv"] == 1  # not retried


def test_redirect_to_other_scheme_or_plain_http_host_is_refused(env, make_registry, server, policy):
    msg = _fail(
        env,
        make_registry,
        [server.url("/redirect-ftp/macrodata.csv"), server.url("/redirect-external-http/macrodata.csv")],
        policy,
    )
    assert "has scheme 'ftp'; only https is allowed" in msg
    assert "non-https URL 'http://example.invalid/macrodata.csv'" in msg


def test_redirect_loop_is_detected(env, make_registry, server, policy):
    msg = _fail(env, make_registry, [server.url("/loop-a")], policy)
    assert f"{server.url('/loop-a')} -> {server.url('/loop-b')} -> {server.url('/loop-a')}: redirect loop" in msg
    assert server.hits["/loop-a"] == 1 and server.hits["/loop-b"] == 1


def test_at_most_five_redirect_hops(env, make_registry, server, policy):
    r = _fetch(env, make_registry, [server.url("/chain/0/5")], policy)
    assert len(r.redirects) == 5
    server.reset()
    msg = _fail(env, make_registry, [server.url("/chain/0/6")], policy, sha256="0" * 64)
    assert f"too many redirects (more than 5); next would be {server.url('/chain/6/6')}" in msg
    assert server.hits["/chain/6/6"] == 0


def test_html_page_with_status_200_is_rejected_with_both_hashes(env, make_registry, server, policy):
    msg = _fail(env, make_registry, [server.url("/html/macrodata.csv")], policy)
    assert (
        "an HTML page (Content-Type text/html; charset=utf-8) served with status 200, not the data file: "
        f"sha256 mismatch: expected {MACRODATA_SHA256}, actual {sha256(HTML)} (size {len(HTML)}, "
        f"expected {MACRODATA_SIZE})"
    ) in msg
    assert server.hits["/html/macrodata.csv"] == 1  # deterministic: not retried
    msg = _fail(env, make_registry, [server.url("/html-cl/macrodata.csv")], policy)
    assert (
        f"declared Content-Length {len(HTML)} differs from the registry size {MACRODATA_SIZE} "
        "(Content-Type text/html; charset=utf-8: an HTML page, not the data file); body not read"
    ) in msg


def test_wrong_bytes_of_the_right_size_then_good_mirror(env, make_registry, server, policy):
    bad = PAYLOAD[:-1] + b"X"
    r = _fetch(env, make_registry, [server.url("/corrupt/macrodata.csv"), server.url("/ok/macrodata.csv")], policy)
    assert r.mirror_index == 1
    assert r.attempts[0].outcome == (
        f"sha256 mismatch: expected {MACRODATA_SHA256}, actual {sha256(bad)} "
        f"(size {MACRODATA_SIZE}, expected {MACRODATA_SIZE})"
    )


def test_gzip_transfer_encoding_keeps_the_raw_gz_bytes(env, make_registry, server, policy):
    url = server.url("/gz/macrodata.csv.gz")
    # what a tool that decodes Content-Encoding would hash: the decompressed CSV, not the pinned .gz
    assert requests.get(url, timeout=5).content == PAYLOAD
    r = _fetch(
        env,
        make_registry,
        [url],
        policy,
        filename="macrodata.csv.gz",
        format="csv.gz",
        sha256=sha256(GZ_PAYLOAD),
        size=len(GZ_PAYLOAD),
    )
    assert r.path.read_bytes() == GZ_PAYLOAD
    assert r.attempts[-1].content_encoding == "gzip"
    assert r.table.ok and r.table.rows == 203
    # a server that gzips a plain CSV despite 'identity': the raw bytes are not the pinned file, and we say why
    msg = _fail(env, make_registry, [url], policy, filename="macrodata.csv")
    assert (
        f"declared Content-Length {len(GZ_PAYLOAD)} differs from the registry size {MACRODATA_SIZE}; the "
        "server applied Content-Encoding gzip despite Accept-Encoding: identity (if the registry pins the "
        "unencoded file, this mirror cannot serve it); body not read"
    ) in msg


def test_declared_content_length_above_size_is_refused_before_reading(env, make_registry, server, policy):
    msg = _fail(env, make_registry, [server.url("/biglen/macrodata.csv")], policy)
    assert ("declared Content-Length 1000000000 differs from the registry size 17829; body not read") in msg


def test_overlong_body_is_aborted_at_the_size_cap(env, make_registry, server, policy):
    msg = _fail(env, make_registry, [server.url("/overlong/macrodata.csv")], policy)
    assert "body longer than the registry size 17829 bytes: aborted after" in msg
    aborted_at = int(msg.split("aborted after ")[1].split(" bytes")[0])
    assert MACRODATA_SIZE < aborted_at <= MACRODATA_SIZE + policy.chunk_size


def test_total_deadline_bounds_an_entry(env, make_registry, server, policy):
    slow_retry = HttpPolicy(
        **{**policy.__dict__, "attempts_per_url": 100, "backoff_base": 0.2, "backoff_cap": 0.2, "deadline": 0.6}
    )
    t0 = time.monotonic()
    msg = _fail(env, make_registry, [server.url("/always500/macrodata.csv")], slow_retry)
    assert time.monotonic() - t0 < 5.0  # without the deadline: 100 tries x 0.2 s
    assert "total deadline of 0.6 s" in msg
    assert 2 <= server.hits["/always500/macrodata.csv"] < 10


def test_plain_http_needs_an_explicitly_allowed_loopback_host(env, make_registry, server, policy, tmp_path):
    no_http = HttpPolicy(**{**policy.__dict__, "allow_http_hosts": frozenset()})
    part = tmp_path / "x.part"
    with pytest.raises(DownloadError) as info:
        download(
            "m", [server.url("/ok/macrodata.csv")], part, sha256=MACRODATA_SHA256, size=MACRODATA_SIZE, policy=no_http
        )
    assert "URL refused: non-https URL" in str(info.value)
    assert server.hits["/ok/macrodata.csv"] == 0 and not part.exists()
    # every redirect hop is re-validated: an allowed first host cannot lead to a host that is not allowed
    with pytest.raises(DownloadError) as info:
        download(
            "m",
            [server.url("/redirect-other-loopback/macrodata.csv")],
            part,
            sha256=MACRODATA_SHA256,
            size=MACRODATA_SIZE,
            policy=policy,
        )
    assert (
        f"redirect refused: non-https URL 'http://127.0.0.2:{server.port}/ok/macrodata.csv': plain http is "
        "allowed only to loopback addresses named in MACRO_DATA_ALLOW_HTTP_HOSTS"
    ) in str(info.value)


def test_pin_mode_caps_unknown_sizes(tmp_path, server, policy):
    small = HttpPolicy(**{**policy.__dict__, "max_pin_bytes": 1000})
    part = tmp_path / "p.part"
    with pytest.raises(DownloadError) as info:
        download("m", [server.url("/ok/macrodata.csv")], part, sha256=None, size=None, policy=small)
    assert "declared Content-Length 17829 exceeds the 1000-byte limit; body not read" in str(info.value)
    t = download("m", [server.url("/ok/macrodata.csv")], part, sha256=None, size=None, policy=policy)
    assert (t.sha256, t.size) == (MACRODATA_SHA256, MACRODATA_SIZE) and part.read_bytes() == PAYLOAD
