"""The one way the package compiles its per-sample loops (numba): the worlds' kernels when their
modules are imported, the stages' and checks' reductions on first use (:class:`lazily_compiled`).

IEEE semantics (no fast-math: every operation is one double operation in the order written, no
fused multiply-add, no reassociation); ``error_model="numpy"`` (a division by zero gives inf or
NaN, as in numpy, which the callers check); the machine code is cached on disk beside the module,
or in the user's cache directory (``NUMBA_CACHE_DIR``), and compiled per process where neither is
writable. ``NUMBA_DISABLE_JIT=1`` runs the same functions as plain Python.
"""

from __future__ import annotations

import functools


def compiled(fn):
    """``fn`` compiled as described in the module docstring."""
    from numba import njit  # imported by the modules that compile at import (the worlds), not by this one

    try:
        return njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:  # numba: "no locator available" (a read-only install and home)
        return njit(nogil=True, error_model="numpy")(fn)


class lazily_compiled:
    """``fn`` compiled as :func:`compiled` compiles it, on its first call: a module the code location
    imports (a stage, a check) can hold a kernel without importing numba (about 0.5 s) into every
    Dagster process that only loads the definitions. Callable from Python only (not from other kernels)."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.kernel = None

    def __call__(self, *args):
        if self.kernel is None:  # two threads racing here both compile; either result is the same kernel
            self.kernel = compiled(self.fn)
        return self.kernel(*args)
