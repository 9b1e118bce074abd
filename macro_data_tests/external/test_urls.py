"""The URL policy's proxy rule (the URL rules are checked through the registry in test_registry.py)."""

from __future__ import annotations

from macro_data.external.urls import proxies


def test_loopback_requests_never_go_through_a_proxy(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert proxies("http://127.0.0.1:8000/data.csv") == {}
    assert proxies("http://[::1]:8000/data.csv") == {}
    assert proxies("https://example.org/data.csv")["https"] == "http://proxy.invalid:3128"
