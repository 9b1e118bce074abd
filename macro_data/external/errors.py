"""Errors of the external-data layer. Each names the entry and says what to do next."""

from __future__ import annotations

from macro_data.errors import MacroDataError


class ExternalDataError(MacroDataError):
    """Base class of the external-data errors."""


class RegistryError(ExternalDataError, ValueError):
    """The registry file (or an environment setting it depends on) is invalid."""


class UnpinnedError(RegistryError):
    """An entry without a pinned sha256/size was asked for: run ``macro-data pin NAME`` first."""


class DownloadError(ExternalDataError):
    """No mirror delivered the pinned bytes. The message lists every attempt; ``attempts`` holds them."""

    def __init__(self, message: str, attempts: list | None = None):
        super().__init__(message)
        self.attempts = attempts or []  # the http.Attempt records, for provenance


class ArchiveError(ExternalDataError):
    """An archive was refused: unsafe or missing member, wrong member size or hash."""


class SchemaCheckError(ExternalDataError):
    """A verified file whose header does not match the registry's columns."""


class VerificationError(ExternalDataError):
    """A local file (cache object, side-loaded file) whose sha256 or size differs from the registry."""


class OfflineError(ExternalDataError):
    """Offline mode and entries missing from the verified cache."""


class LockTimeoutError(ExternalDataError):
    """Another process held an entry's lock for longer than the bounded wait."""
