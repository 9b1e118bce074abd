"""Dagster resource for verified external downloads (a thin wrapper over :mod:`macro_data.external`)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from macro_data import paths
from macro_data.external.cache import Cache
from macro_data.external.fetch import CacheStatus, FetchResult, fetch_entry, offline_from_env, verify_cache
from macro_data.external.http import HttpPolicy
from macro_data.external.registry import Registry, allowed_http_hosts, load_registry


class ExternalDataResource(dg.ConfigurableResource):
    """Where the registry and cache are, whether the network may be used, and download limits.

    Fields left unset are read from the environment at run time: ``registry_path`` from
    ``MACRO_DATA_REGISTRY`` (default ``datasets/external.yaml``), ``data_root`` from
    ``MACRO_DATA_ROOT`` (default ``datasets/build``), ``offline`` from ``MACRO_DATA_OFFLINE``,
    ``allow_http_hosts`` from ``MACRO_DATA_ALLOW_HTTP_HOSTS`` (loopback IP addresses only, for tests).
    """

    registry_path: str | None = None
    data_root: str | None = None
    offline: bool | None = None
    allow_http_hosts: list[str] | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    attempts_per_url: int = 4
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 120.0
    deadline_s: float = 900.0
    lock_timeout_s: float = 1800.0

    def resolved_registry_path(self) -> Path:
        return Path(self.registry_path) if self.registry_path else paths.registry_path()

    def root(self) -> Path:
        return Cache(self.data_root or None).root

    def is_offline(self) -> bool:
        return offline_from_env() if self.offline is None else bool(self.offline)

    def http_hosts(self) -> frozenset[str]:
        return allowed_http_hosts(self.allow_http_hosts if self.allow_http_hosts is not None else None)

    def policy(self) -> HttpPolicy:
        return HttpPolicy(
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            attempts_per_url=self.attempts_per_url,
            backoff_base=self.backoff_base_s,
            backoff_cap=self.backoff_cap_s,
            retry_after_cap=self.retry_after_cap_s,
            deadline=self.deadline_s,
            allow_http_hosts=self.http_hosts(),
        )

    def registry(self) -> Registry:
        return load_registry(self.resolved_registry_path(), allow_http_hosts=self.http_hosts())

    def fetch(self, name: str, run_id: str | None = None) -> FetchResult:
        return fetch_entry(
            self.registry().get(name),
            root=self.root(),
            policy=self.policy(),
            offline=self.is_offline(),
            run_id=run_id,
            lock_timeout=self.lock_timeout_s,
        )

    def verify_all(self, run_id: str | None = None) -> list[CacheStatus]:
        statuses, _ = verify_cache(
            self.registry(), root=self.root(), policy=self.policy(), run_id=run_id, lock_timeout=self.lock_timeout_s
        )
        return statuses

    def verify(self, name: str, run_id: str | None = None) -> CacheStatus:
        statuses, _ = verify_cache(
            self.registry(),
            root=self.root(),
            names=[name],
            policy=self.policy(),
            run_id=run_id,
            lock_timeout=self.lock_timeout_s,
        )
        return statuses[0]


__all__ = ["ExternalDataResource"]
