"""Verified external downloads: a registry of reference datasets, fetched safely, with provenance.

Plain Python (no Dagster). One module per concern:

- :mod:`.registry`        load ``datasets/external.yaml``, JSON-Schema and semantic validation (before any I/O)
- :mod:`.urls`            the URL policy: allowed schemes and hosts, moving targets, mirror order, proxies
- :mod:`.http`            the download algorithm: mirrors, retries, manual redirects, raw bytes, size caps
- :mod:`.cache`           content-addressed objects under ``<root>/external/objects/<sha256>/``, quarantine
- :mod:`.locks`           per-object file locks keyed by sha256
- :mod:`.archives`        safe extraction of registry-listed members only
- :mod:`.tabular`         CSV header / schema check after the hash check
- :mod:`.provenance`      append-only JSON lines, environment fingerprint, export
- :mod:`.fetch`           orchestration: one entry, all entries, cache re-verification
- :mod:`.pinning`         ``pin``: write an entry's sha256 and size after review
- :mod:`.registering`     ``register``: add a local file as a ``kind: manual`` entry, or side-load one
- :mod:`.registry_edit`   round-trip edits of the registry file (comments and other entries kept)
- :mod:`.real_data`       the US macro table as canonical observables and their moments
"""

from macro_data.external.errors import (
    ArchiveError,
    DownloadError,
    ExternalDataError,
    LockTimeoutError,
    OfflineError,
    RegistryError,
    SchemaCheckError,
    UnpinnedError,
    VerificationError,
)
from macro_data.external.fetch import FetchResult, fetch_entry, fetch_many, verify_cache
from macro_data.external.registry import Entry, Registry, load_registry

__all__ = [
    "ArchiveError",
    "DownloadError",
    "Entry",
    "ExternalDataError",
    "FetchResult",
    "LockTimeoutError",
    "OfflineError",
    "Registry",
    "RegistryError",
    "SchemaCheckError",
    "UnpinnedError",
    "VerificationError",
    "fetch_entry",
    "fetch_many",
    "load_registry",
    "verify_cache",
]
