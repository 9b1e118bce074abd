"""The environment fingerprint: what software and hardware produced (or validated) a dataset.

Recorded with every stage's provenance and in the manifest, so a reader can tell which Python,
which numerical libraries and which BLAS computed the numbers. Versions are read from the
installed distributions' metadata, so fingerprinting imports nothing heavy (not Dagster).
"""

from __future__ import annotations

import platform
import sys
from functools import lru_cache
from importlib import metadata

DISTRIBUTIONS = (
    "macro_data",
    "numpy",
    "scipy",
    "numba",
    "llvmlite",
    "zarr",
    "numcodecs",
    "dagster",
    "requests",
    "urllib3",
    "filelock",
    "jsonschema",
)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# What decides the floating-point results of a computation: the numerical libraries, the BLAS and
# LAPACK builds they call (whose kernels are picked per CPU at run time), the compiler of the
# worlds' compiled kernels (numba and its LLVM, llvmlite), and the CPU itself.
NUMERIC_KEYS = (
    "packages.numpy",
    "packages.scipy",
    "packages.numba",
    "packages.llvmlite",
    "numpy_blas",
    "scipy_blas",
    "machine",
    "cpu",
)


def _cpu_model() -> str:
    """The CPU model (Linux ``/proc/cpuinfo``), else what :func:`platform.processor` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "cpu model", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _blas(config: dict) -> dict:
    """``{"name", "version"}`` of the BLAS and LAPACK a library was built against (its show_config)."""
    deps = config.get("Build Dependencies") or {}
    return {lib: {k: (deps.get(lib) or {}).get(k) for k in ("name", "version")} for lib in ("blas", "lapack")}


@lru_cache(maxsize=1)
def fingerprint() -> dict:
    """Python, library versions, BLAS/LAPACK builds, CPU architecture and OS of this process."""
    import numpy as np
    import scipy

    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "packages": {d: _version(d) for d in DISTRIBUTIONS},
        "numpy_blas": _blas(np.show_config(mode="dicts")),
        "scipy_blas": _blas(scipy.show_config(mode="dicts")),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "system": platform.system(),
        "byteorder": sys.byteorder,
    }


def numerically_equal(a: dict | None, b: dict | None) -> bool:
    """Whether two fingerprints agree on everything that decides floating-point results
    (:data:`NUMERIC_KEYS`); an unknown fingerprint (``None``, e.g. older data) never agrees."""
    if not a or not b:
        return False
    return not [d for d in differences(a, b) if d.split(":", 1)[0].startswith(NUMERIC_KEYS)]


def differences(a: dict, b: dict) -> list[str]:
    """What differs between two fingerprints, as ``key: a -> b`` lines (nested keys joined by dots)."""
    out: list[str] = []

    def walk(x, y, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{prefix}.{k}" if prefix else k)
        elif x != y:
            out.append(f"{prefix}: {x} -> {y}")

    walk(a or {}, b or {}, "")
    return out
