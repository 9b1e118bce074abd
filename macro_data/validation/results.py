"""Check results: what every validation check returns, and how results roll up.

A check reads part of a dataset and returns one :class:`CheckResult` with a status:

* ``pass``    the property holds;
* ``fail``    an error-level property does not hold (integrity, consistency, reproducibility,
  model identities): the data must not be used;
* ``warn``    a warning-level property does not hold (statistical sanity, realism): the data
  is intact but something looks economically odd and deserves a look;
* ``skipped`` the check could not run for a reason that is not a defect of the data (e.g. no
  verified external data for the realism comparison); reported at warning level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Severity = Literal["error", "warn"]
Status = Literal["pass", "warn", "fail", "skipped"]

# Check groups and their severity (the blocking/non-blocking split).
GROUPS: dict[str, Severity] = {
    "integrity": "error",
    "consistency": "error",
    "reproducibility": "error",
    "identities": "error",
    "statistics": "warn",
    "realism": "warn",
}
STATUS_ORDER = {"pass": 0, "skipped": 1, "warn": 2, "fail": 3}
MAX_LISTED_PROBLEMS = 8  # problems spelled out in a message; the count says how many there were


@dataclass
class CheckResult:
    """One check on one world (``world=None``: a dataset-level check)."""

    name: str  # e.g. "integrity.draws"
    group: str  # a key of GROUPS
    world: str | None
    passed: bool
    message: str
    figures: dict = field(default_factory=dict)  # numbers a reader needs to judge the result
    inputs: dict = field(default_factory=dict)  # what the check read (arrays, sample counts, constants)
    skipped: bool = False
    seconds: float = 0.0
    # computed now or taken from a persisted earlier computation (see :mod:`.reuse`):
    # {"computed": "now" | "reused", "run_id", "computed_at", "by"}; None: not recorded
    origin: dict | None = None

    @property
    def severity(self) -> Severity:
        return GROUPS[self.group]

    @property
    def status(self) -> Status:
        if self.skipped:
            return "skipped"
        if self.passed:
            return "pass"
        return "fail" if self.severity == "error" else "warn"

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "group": self.group,
            "world": self.world,
            "severity": self.severity,
            "status": self.status,
            "passed": self.passed,
            "message": self.message,
            "figures": jsonable(self.figures),
            "inputs": jsonable(self.inputs),
            "seconds": round(float(self.seconds), 4),
            **({"origin": jsonable(self.origin)} if self.origin is not None else {}),
        }


class Problems:
    """Collects problems found by a check and turns them into a result message."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def message(self, ok: str) -> str:
        if not self.items:
            return ok
        shown = self.items[:MAX_LISTED_PROBLEMS]
        more = len(self.items) - len(shown)
        head = f"{len(self.items)} problem{'s' if len(self.items) != 1 else ''}: "
        return head + "; ".join(shown) + (f"; ... and {more} more" if more else "")


def result(
    name: str,
    group: str,
    world: str | None,
    problems: Problems,
    ok: str,
    figures: dict | None = None,
    inputs: dict | None = None,
    seconds: float = 0.0,
) -> CheckResult:
    """A result that passes iff ``problems`` is empty."""
    return CheckResult(
        name, group, world, not problems, problems.message(ok), figures or {}, inputs or {}, seconds=seconds
    )


def failed(name: str, group: str, world: str | None, message: str) -> CheckResult:
    """A failed result with one problem."""
    p = Problems()
    p.add(message)
    return result(name, group, world, p, "")


def skipped(name: str, group: str, world: str | None, reason: str, inputs: dict | None = None) -> CheckResult:
    return CheckResult(name, group, world, False, f"skipped: {reason}", {}, inputs or {}, skipped=True)


def guarded(name: str, group: str, world: str | None, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or a failed result naming the exception if it raised: damaged data
    (e.g. NaN where a model expects numbers) must fail its check, never stop the validation."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return failed(
            name,
            group,
            world,
            f"the check could not be evaluated ({type(exc).__name__}: {exc}); the "
            f"data may be damaged (see the integrity checks)",
        )


def worst(statuses: Iterable[str]) -> Status:
    """The worst status of several (``pass`` when there are none)."""
    out: Status = "pass"
    for s in statuses:
        if STATUS_ORDER[s] > STATUS_ORDER[out]:
            out = s  # type: ignore[assignment]
    return out


def jsonable(value):
    """Plain JSON types: numpy scalars and arrays to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)
