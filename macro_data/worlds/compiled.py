"""The one way the worlds compile their per-sample loops (numba).

IEEE semantics (no fast-math: every operation is one double operation in the order written, no
fused multiply-add, no reassociation); ``error_model="numpy"`` (a division by zero gives inf or
NaN, as in numpy, which the callers check); the machine code is cached on disk beside the module,
or in the user's cache directory (``NUMBA_CACHE_DIR``), and compiled per process where neither is
writable. ``NUMBA_DISABLE_JIT=1`` runs the same functions as plain Python.
"""

from __future__ import annotations

from numba import njit


def compiled(fn):
    """``fn`` compiled as described in the module docstring."""
    try:
        return njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:  # numba: "no locator available" (a read-only install and home)
        return njit(nogil=True, error_model="numpy")(fn)
