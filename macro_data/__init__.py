"""macro_data: versioned, verified training datasets for neural emulators of macroeconomic models.

The package is a Dagster code location exposing ``defs`` (assembled in :mod:`macro_data.orchestration.definitions`),
so ``dagster dev`` and ``dagster asset materialize -m macro_data`` find it. ``defs`` is loaded on first
access (PEP 562 ``__getattr__``/``__dir__``, which Dagster's module loader goes through), so the
plain-Python modules below it (``worlds``, ``storage``, ``pipeline``, ``splits``, reading) import without
loading Dagster.
"""

from __future__ import annotations

__all__ = ["defs"]


def __getattr__(name: str):
    if name == "defs":
        from macro_data.orchestration.definitions import defs

        return defs
    raise AttributeError(f"module 'macro_data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
