"""Argument checks shared by the reading API: every error names the argument and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from macro_data.read.errors import ReadArgumentError


def known(names: Iterable[str]) -> str:
    """``"a, b, c"`` or ``"(none)"``, for error messages."""
    return ", ".join(names) or "(none)"


def names_arg(what: str, value) -> list[str]:
    """A name or a list of names; anything else is a :class:`ReadArgumentError` naming the argument."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise ReadArgumentError(f"{what} must be a name or a list of names; got {value!r}")
    names = list(value)
    bad = [v for v in names if not isinstance(v, str)]
    if bad:
        raise ReadArgumentError(f"{what} must be a name or a list of names; got {bad[0]!r} in {names!r}")
    return names


def int_arg(name: str, value, minimum: int) -> int:
    """An integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ReadArgumentError(f"{name} must be {what}; got {value!r}")
    return int(value)


def choice_arg(name: str, value, allowed: Sequence):
    """One of ``allowed`` (compared by equality, strings only where the allowed values are strings)."""
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise ReadArgumentError(f"{name} must be one of {known(repr(a) for a in allowed)}; got {value!r}")
    return value
