"""The URL policy: which URLs an external dataset may be fetched from, in which order, through which proxy.

A registry URL (checked when the registry is loaded, before any network I/O) and every redirect
hop (checked before it is followed) are refused unless all of these hold:

- the scheme is ``https``; or it is ``http`` and the host is a loopback IP address listed in
  ``$MACRO_DATA_ALLOW_HTTP_HOSTS`` (or passed as ``allow_http_hosts``), which exists for tests
  against a local server. That list itself accepts loopback IP literals only (127.0.0.0/8,
  ``::1``, bracketed or not); a host name or another address is an error, never ignored.
  ``file://``, ``ftp://`` and every other scheme are refused;
- the URL names a host, carries no user name or password (they would end up in logs and
  provenance), has a valid port, and contains no white space or control characters.

A registry URL must moreover not be a moving target, whose bytes change under a fixed URL and so
can never match a pinned hash: a path ending in ``current.csv`` (FRED-MD's latest vintage), the
``api.stlouisfed.org`` host or a path containing ``fredgraph`` (FRED's live series endpoints).
Redirect hops are exempt from this rule: a dated URL may legitimately redirect anywhere allowed.

Order: an entry's URLs are tried in the order the registry lists them (the first is the primary,
the others mirrors). A fetch stops at the first URL that delivers the pinned bytes; ``macro-data
pin`` downloads from every URL and refuses to write a hash unless all that answered agree.

Proxies: a request to a loopback address never goes through a proxy; any other request uses the
proxies of the usual environment variables (``https_proxy``, ``no_proxy``, ...). Credentials from
``~/.netrc`` are never sent (see :func:`macro_data.external.http.new_session`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

import requests

from macro_data.external.errors import RegistryError

ALLOW_HTTP_ENV = "MACRO_DATA_ALLOW_HTTP_HOSTS"
# Files that change under a fixed URL: a pinned hash would break on the next release.
_MOVING_TARGET_FILES = {"current.csv"}
_LIVE_HOSTS = {"api.stlouisfed.org"}
_LIVE_PATH_PARTS = ("fredgraph",)


def allowed_http_hosts(value: str | Iterable[str] | None = None) -> frozenset[str]:
    """The hosts where plain http is allowed: loopback IP literals only.

    Parameters
    ----------
    value
        Comma-separated addresses or an iterable of them; None reads ``$MACRO_DATA_ALLOW_HTTP_HOSTS``.

    Returns
    -------
    frozenset of str
        The addresses in canonical form (``[::1]`` becomes ``::1``).

    Raises
    ------
    RegistryError
        For an entry that is not a loopback IP address (127.0.0.0/8, ::1), or a value of another type.
    """
    if value is None:
        value = os.environ.get(ALLOW_HTTP_ENV, "")
    if not isinstance(value, str) and not (isinstance(value, Iterable) and not isinstance(value, (bytes, dict))):
        raise RegistryError(
            f"{ALLOW_HTTP_ENV}: expected a comma-separated string or a list of loopback IP addresses; got {value!r}"
        )
    items = value.split(",") if isinstance(value, str) else list(value)
    hosts = set()
    for raw in items:
        raw = str(raw)
        host = raw.strip().lower()
        if not host:
            continue
        literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ok = ipaddress.ip_address(literal).is_loopback
        except ValueError:
            ok = False
        if not ok:
            raise RegistryError(
                f"{ALLOW_HTTP_ENV}: {raw.strip()!r} is not a loopback IP address; plain http is "
                f"allowed only to loopback addresses (127.0.0.0/8, ::1), for tests"
            )
        hosts.add(str(ipaddress.ip_address(literal)))
    return frozenset(hosts)


def _host_of(parts: SplitResult) -> str | None:
    try:
        host = parts.hostname
    except ValueError:
        return None
    if host is None:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def url_problem(url: str, allow_http: frozenset[str], *, hop: bool = False) -> str | None:
    """Why ``url`` may not be requested (see the module docstring), or None.

    Parameters
    ----------
    url
        A registry URL, or a redirect target already resolved against the URL that redirected.
    allow_http
        Loopback addresses where plain http is allowed (from :func:`allowed_http_hosts`).
    hop
        True for a redirect hop: the moving-target rule does not apply.

    Returns
    -------
    str or None
        A sentence naming the URL and the rule it breaks; None when it may be requested.
    """
    if not isinstance(url, str) or not url:
        return "empty URL"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return f"URL {url!r} contains white space or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        return f"malformed URL {url!r} ({exc})"
    scheme = parts.scheme.lower()
    host = _host_of(parts)
    if scheme == "https":
        pass
    elif scheme == "http":
        if host not in allow_http:
            return f"non-https URL {url!r}: plain http is allowed only to loopback addresses named in {ALLOW_HTTP_ENV}"
    else:
        return f"URL {url!r} has scheme {scheme or '(none)'!r}; only https is allowed"
    if not host:
        return f"URL {url!r} has no host"
    if parts.username is not None or parts.password is not None:
        return f"URL {url!r} carries credentials; they would end up in logs and provenance"
    if not hop:
        last = parts.path.rsplit("/", 1)[-1].lower()
        if last in _MOVING_TARGET_FILES:
            return f"URL {url!r} is a moving target ({last}); use a dated vintage file"
        if host in _LIVE_HOSTS or any(p in parts.path.lower() for p in _LIVE_PATH_PARTS):
            return f"URL {url!r} is a live series endpoint whose content changes; use a dated vintage file"
    return None


def proxies(url: str) -> dict[str, str]:
    """The proxies for a request to ``url``: none for a loopback address, else those of the environment.

    Parameters
    ----------
    url
        The URL about to be requested (an allowed one).

    Returns
    -------
    dict
        ``requests``' ``proxies`` argument.
    """
    try:
        if ipaddress.ip_address(urlsplit(url).hostname or "").is_loopback:
            return {}
    except ValueError:
        pass
    return requests.utils.get_environ_proxies(url)
