"""Errors of the reading API. Each names the argument, world, array or file that is wrong."""

from __future__ import annotations

from macro_data.errors import MacroDataError


class ReadError(MacroDataError):
    """Base class of the errors raised while opening or reading a dataset."""


class DatasetNotFoundError(ReadError, FileNotFoundError):
    """The path is not a published dataset (no ``manifest.json``)."""


class ReadArgumentError(ReadError, ValueError):
    """A bad argument: unknown world or split, ``seq_len > T``, ``stride <= 0``, ``batch_size <= 0``..."""


class IntegrityError(ReadError):
    """Stored data that is not what the manifest promises: content hash mismatch, a chunk failing
    its crc32c checksum, a missing chunk file, or a store that disagrees with the manifest."""
