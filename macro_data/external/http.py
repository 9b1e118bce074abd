"""The download algorithm: mirrors in order, bounded retries, manual redirects, raw bytes, size caps.

For one entry, :func:`download` tries each URL (primary, then mirrors) in order:

- Each request is ``GET`` with ``Accept-Encoding: identity``, ``stream=True`` and
  ``allow_redirects=False``. The body is read from the raw socket stream with
  ``decode_content=False``: the bytes hashed are the bytes the server sent, so a server that labels
  a ``.gz`` file ``Content-Encoding: gzip`` cannot turn it into different (decoded) bytes.
- Redirects (301/302/303/307/308) are followed by hand, at most ``max_redirects`` hops; each hop is
  checked against the URL policy of :mod:`.urls` before it is followed (https only, loopback http
  only when allowed, never ``file://`` or another scheme, no credentials) and a hop back to an URL
  already visited is a loop.
- A declared ``Content-Length`` different from the registry size is refused before the body is
  read; the read aborts as soon as more than ``size`` bytes arrive; the body goes into the caller's
  ``.part`` file while being hashed (the caller publishes it with
  :func:`macro_data.files.atomic_file`, which fsyncs it). Any failure deletes it.
- Connection errors, timeouts, truncated bodies and HTTP 408/425/429/5xx are retried on the same
  URL up to ``attempts_per_url`` times with exponential backoff and jitter
  (``d = min(cap, base * 2**(k-1))``, sleep ``d/2 + U(0, d/2)``), or the server's ``Retry-After``
  (seconds or HTTP date) capped at ``retry_after_cap``. Other 4xx, a wrong length, a bad redirect
  and a hash mismatch move to the next URL at once. A total ``deadline`` bounds the whole entry.
- If no URL delivers the pinned bytes, one :class:`DownloadError` names the entry and lists every
  attempt (URL, redirect chain, outcome, duration), with expected and actual sha256 and size.

``requests`` runs with ``trust_env=False`` (no ``~/.netrc`` credentials are ever sent to a
mirror); proxies (:func:`.urls.proxies`) and the CA bundle are still taken from the usual
environment variables.

A successful download is a :class:`Transfer`: the list of its attempts, the last of which delivered
the bytes; what was fetched from where (URL, redirects, status, headers, hash) is read from that
attempt, not copied.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from urllib.parse import urljoin

import requests
import urllib3

from macro_data.external.errors import DownloadError
from macro_data.external.urls import allowed_http_hosts, proxies, url_problem

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({408, 425, 429})


def _user_agent() -> str:
    try:
        version = metadata.version("macro_data")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    return f"macro-data/{version} (verified reference-data download; python-requests/{requests.__version__})"


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts, retry and size limits of a download (seconds and bytes)."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    attempts_per_url: int = 4
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    retry_after_cap: float = 120.0
    deadline: float = 900.0
    max_redirects: int = 5
    max_pin_bytes: int = 1 << 30  # pin only: no registry size yet
    max_extracted_bytes: int = 4 << 30  # archives: cap on the listed members' total
    chunk_size: int = 1 << 16
    allow_http_hosts: frozenset[str] = frozenset()
    user_agent: str = field(default_factory=_user_agent)
    jitter_seed: int | None = None

    @classmethod
    def from_env(cls, **overrides) -> HttpPolicy:
        """Defaults, with plain-http hosts from ``$MACRO_DATA_ALLOW_HTTP_HOSTS`` unless given."""
        if "allow_http_hosts" not in overrides:
            overrides["allow_http_hosts"] = allowed_http_hosts()
        else:
            overrides["allow_http_hosts"] = allowed_http_hosts(overrides["allow_http_hosts"])
        return cls(**overrides)


@dataclass
class Attempt:
    """One request (with its redirect hops) against one URL."""

    mirror_index: int
    attempt: int
    url: str
    redirects: list[str] = field(default_factory=list)
    status: int | None = None
    outcome: str = ""
    ok: bool = False
    retryable: bool = False
    duration_s: float = 0.0
    bytes: int = 0
    sha256: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    content_length: int | None = None
    retry_after_s: float | None = None
    slept_s: float = 0.0

    @property
    def final_url(self) -> str:
        """The URL that answered: the last redirect hop, or the URL itself."""
        return self.redirects[-1] if self.redirects else self.url

    def line(self) -> str:
        chain = "".join(f" -> {u}" for u in self.redirects)
        return (
            f"mirror {self.mirror_index} try {self.attempt}: {self.url}{chain}: {self.outcome} "
            f"({self.duration_s:.2f} s)"
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Transfer:
    """A successful download: every attempt in order, the last of which delivered the bytes."""

    attempts: list[Attempt]

    @property
    def delivered(self) -> Attempt:
        """The attempt that delivered the bytes: its URL, redirects, status, headers and hash."""
        return self.attempts[-1]

    @property
    def sha256(self) -> str:
        return self.delivered.sha256 or ""

    @property
    def size(self) -> int:
        return self.delivered.bytes


class _Abort(Exception):
    def __init__(self, outcome: str, retryable: bool):
        super().__init__(outcome)
        self.outcome, self.retryable = outcome, retryable


def format_failure(
    name: str, attempts: Sequence[Attempt], sha256: str | None, size: int | None, note: str | None = None
) -> str:
    expected = f"expected sha256 {sha256}, size {size} bytes" if sha256 else "no pinned hash yet"
    lines = [
        f"external dataset {name!r}: download failed, nothing was published ({expected}); {len(attempts)} attempt(s):"
    ]
    lines += [f"  {n}. {a.line()}" for n, a in enumerate(attempts, 1)]
    if not attempts:
        lines.append("  (no attempt was made)")
    if note:
        lines.append(f"  {note}")
    return "\n".join(lines)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _verify_setting() -> str | bool:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def new_session() -> requests.Session:
    """A ``requests`` session that never reads ``~/.netrc`` (its credentials would go to every mirror)."""
    session = requests.Session()
    session.trust_env = False  # no ~/.netrc credentials for mirrors; proxies/CA handled explicitly
    return session


def _looks_like_html(part: Path, content_type: str | None) -> bool:
    if content_type and "html" in content_type.lower():
        return True
    try:
        head = part.read_bytes()[:512].lstrip().lower()
    except OSError:
        return False
    return head.startswith(b"<!doctype html") or head.startswith(b"<html")


def _coding_hint(a: Attempt) -> str:
    if a.content_encoding and a.content_encoding.strip().lower() != "identity":
        return (
            f"; the server applied Content-Encoding {a.content_encoding} despite Accept-Encoding: identity "
            f"(if the registry pins the unencoded file, this mirror cannot serve it)"
        )
    return ""


def _delay(a: Attempt, k: int, policy: HttpPolicy, rng: random.Random) -> float:
    if a.retry_after_s is not None:
        return min(a.retry_after_s, policy.retry_after_cap)
    d = min(policy.backoff_cap, policy.backoff_base * 2 ** (k - 1))
    return d / 2 + rng.uniform(0, d / 2)


def download(
    name: str,
    urls: Sequence[str],
    part: Path,
    *,
    sha256: str | None,
    size: int | None,
    policy: HttpPolicy,
    session: requests.Session | None = None,
) -> Transfer:
    """Download the first of ``urls`` that delivers the expected bytes into ``part`` (see the module docstring).

    Parameters
    ----------
    name
        The registry entry, for messages.
    urls
        The URLs to try, in order (primary, then mirrors).
    part
        The file to write (created or replaced); left in place on success, deleted on failure.
    sha256, size
        The pinned hash and size. Both None is the pin mode: any body up to ``policy.max_pin_bytes``
        is accepted and its hash reported.
    policy
        Timeouts, retries, size limits and the hosts where plain http is allowed.
    session
        A session to reuse; default: a new one from :func:`new_session`, closed at the end.

    Returns
    -------
    Transfer
        Every attempt; the last one delivered the bytes now in ``part``.

    Raises
    ------
    DownloadError
        When no URL delivered them; its message and ``attempts`` list every attempt.
    """
    start = time.monotonic()
    deadline = start + policy.deadline
    rng = random.Random(policy.jitter_seed)
    attempts: list[Attempt] = []
    own = session is None
    session = session or new_session()
    note = None
    skipped_wait = False
    try:
        for mi, url in enumerate(urls):
            for k in range(1, policy.attempts_per_url + 1):
                if time.monotonic() >= deadline:
                    note = f"total deadline of {policy.deadline:g} s reached; remaining mirrors not tried"
                    break
                a = _attempt(session, url, mi, k, part, sha256, size, policy, deadline)
                attempts.append(a)
                if a.ok:
                    return Transfer(attempts)
                if not a.retryable or k == policy.attempts_per_url:
                    break
                delay = _delay(a, k, policy, rng)
                if time.monotonic() + delay >= deadline:
                    skipped_wait = True
                    break  # waiting would pass the deadline: try the next mirror now
                a.slept_s = delay
                time.sleep(delay)
            if note:
                break
    finally:
        if own:
            session.close()
    part.unlink(missing_ok=True)
    if note is None and skipped_wait:
        note = f"retries were cut short by the total deadline of {policy.deadline:g} s"
    raise DownloadError(format_failure(name, attempts, sha256, size, note), attempts)


def _attempt(
    session: requests.Session,
    url: str,
    mi: int,
    k: int,
    part: Path,
    sha256: str | None,
    size: int | None,
    policy: HttpPolicy,
    deadline: float,
) -> Attempt:
    t0 = time.monotonic()
    a = Attempt(mirror_index=mi, attempt=k, url=url)
    try:
        _run(session, a, part, sha256, size, policy, deadline)
    except _Abort as exc:
        a.outcome, a.retryable = exc.outcome, exc.retryable
    except requests.exceptions.ConnectTimeout:
        a.outcome, a.retryable = f"connect timeout after {policy.connect_timeout:g} s", True
    except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
        a.outcome, a.retryable = (f"read timeout: no data for {policy.read_timeout:g} s (after {a.bytes} bytes)"), True
    except requests.exceptions.SSLError as exc:
        a.outcome, a.retryable = f"TLS error: {exc}", False
    except (
        urllib3.exceptions.ProtocolError,
        requests.exceptions.ChunkedEncodingError,
        http.client.IncompleteRead,
    ) as exc:
        declared = f" of {a.content_length} declared" if a.content_length is not None else ""
        a.outcome, a.retryable = (
            (f"truncated body: connection closed after {a.bytes}{declared} bytes ({type(exc).__name__})"),
            True,
        )
    except requests.exceptions.ConnectionError as exc:
        a.outcome, a.retryable = f"connection error: {exc}", True
    except requests.exceptions.RequestException as exc:
        a.outcome, a.retryable = f"request error: {exc}", False
    except OSError as exc:  # writing the .part file
        a.outcome, a.retryable = f"local write error: {exc}", False
    finally:
        a.duration_s = time.monotonic() - t0
        if not a.ok:
            part.unlink(missing_ok=True)
    return a


def _run(
    session: requests.Session,
    a: Attempt,
    part: Path,
    sha256: str | None,
    size: int | None,
    policy: HttpPolicy,
    deadline: float,
) -> None:
    current = a.url
    visited = {a.url}
    headers = {"Accept-Encoding": "identity", "User-Agent": policy.user_agent}
    if (problem := url_problem(current, policy.allow_http_hosts, hop=True)) is not None:
        raise _Abort(f"URL refused: {problem}", False)  # registry validation checks it too; defence in depth
    while True:
        remaining = max(0.001, deadline - time.monotonic())
        resp = session.get(
            current,
            stream=True,
            allow_redirects=False,
            headers=headers,
            timeout=(min(policy.connect_timeout, remaining), min(policy.read_timeout, remaining)),
            proxies=proxies(current),
            verify=_verify_setting(),
        )
        try:
            a.status = resp.status_code
            if resp.status_code in REDIRECT_STATUSES:
                current = _next_hop(a, current, resp, visited, policy)
                continue
            _take_headers(a, resp)
            if resp.status_code != 200:
                retry = resp.status_code in RETRY_STATUSES or 500 <= resp.status_code <= 599
                if retry:
                    a.retry_after_s = parse_retry_after(resp.headers.get("Retry-After"))
                ra = f", Retry-After {resp.headers.get('Retry-After')}" if a.retry_after_s is not None else ""
                kind = "retryable" if retry else "not retried: next mirror"
                raise _Abort(f"HTTP {resp.status_code} {resp.reason or ''}".rstrip() + f" ({kind}{ra})", retry)
            limit = size if size is not None else policy.max_pin_bytes
            if a.content_length is not None:
                if size is not None and a.content_length != size:
                    html = (
                        f" (Content-Type {a.content_type}: an HTML page, not the data file)"
                        if a.content_type and "html" in a.content_type.lower()
                        else ""
                    )
                    html += _coding_hint(a)
                    raise _Abort(
                        f"declared Content-Length {a.content_length} differs from the registry size "
                        f"{size}{html}; body not read",
                        False,
                    )
                if a.content_length > limit:
                    raise _Abort(
                        f"declared Content-Length {a.content_length} exceeds the {limit}-byte limit; body not read",
                        False,
                    )
            digest = _stream(a, resp, part, limit, size, policy, deadline)
            a.sha256 = digest
            html = _looks_like_html(part, a.content_type)
            if size is not None and a.bytes < size and not html:
                raise _Abort(f"truncated body: received {a.bytes} of {size} bytes", True)
            if sha256 is not None and digest != sha256:
                what = (
                    f"an HTML page (Content-Type {a.content_type}) served with status 200, not the data file: "
                    if html
                    else ""
                )
                raise _Abort(
                    f"{what}sha256 mismatch: expected {sha256}, actual {digest} (size {a.bytes}, "
                    f"expected {size}){_coding_hint(a)}",
                    False,
                )
            a.ok = True
            a.outcome = "ok: sha256 and size verified" if sha256 else f"ok: {a.bytes} bytes, sha256 {digest}"
            return
        finally:
            resp.close()


def _next_hop(a: Attempt, current: str, resp: requests.Response, visited: set[str], policy: HttpPolicy) -> str:
    location = resp.headers.get("Location")
    if not location:
        raise _Abort(f"HTTP {resp.status_code} redirect without a Location header", False)
    nxt = urljoin(current, location)
    problem = url_problem(nxt, policy.allow_http_hosts, hop=True)
    if problem is not None:
        a.redirects.append(nxt)
        raise _Abort(f"redirect refused: {problem}", False)
    if nxt in visited:
        a.redirects.append(nxt)
        raise _Abort(f"redirect loop ({len(a.redirects)} hops)", False)
    if len(a.redirects) >= policy.max_redirects:
        raise _Abort(f"too many redirects (more than {policy.max_redirects}); next would be {nxt}", False)
    a.redirects.append(nxt)
    visited.add(nxt)
    return nxt


def _take_headers(a: Attempt, resp: requests.Response) -> None:
    h = resp.headers
    a.etag, a.last_modified = h.get("ETag"), h.get("Last-Modified")
    a.content_type, a.content_encoding = h.get("Content-Type"), h.get("Content-Encoding")
    cl = h.get("Content-Length")
    if cl is not None:
        try:
            a.content_length = int(cl.strip())
        except ValueError:
            raise _Abort(f"malformed Content-Length {cl!r}", False) from None
        if a.content_length < 0:
            raise _Abort(f"malformed Content-Length {cl!r}", False)


def _stream(
    a: Attempt, resp: requests.Response, part: Path, limit: int, size: int | None, policy: HttpPolicy, deadline: float
) -> str:
    h = hashlib.sha256()
    raw = resp.raw
    raw.decode_content = False
    with open(part, "wb") as f:
        # read1: whatever arrived (up to chunk_size) per socket read, so progress and the deadline stay current
        while chunk := raw.read1(policy.chunk_size, decode_content=False):
            a.bytes += len(chunk)
            if a.bytes > limit:
                what = f"the registry size {size}" if size is not None else f"the {limit}-byte pin limit"
                raise _Abort(f"body longer than {what} bytes: aborted after {a.bytes} bytes", False)
            h.update(chunk)
            f.write(chunk)
            if time.monotonic() > deadline:
                raise _Abort(
                    f"total deadline of {policy.deadline:g} s reached while reading ({a.bytes} bytes so far)", False
                )
    return h.hexdigest()
