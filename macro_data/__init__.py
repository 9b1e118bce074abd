"""macro_data: versioned, verified training datasets for neural emulators of macroeconomic models.

The package is a Dagster code location exposing ``defs`` (assembled in :mod:`macro_data.definitions`),
so ``dagster dev`` and ``dagster asset materialize -m macro_data`` find it. The science and storage
modules below it (``worlds``, ``storage``, ``pipeline``, ``splits``) do not use Dagster themselves.
"""

from macro_data.definitions import defs

__all__ = ["defs"]
