"""The 0-100 quality score of a validation run (overall and per world).

With ``E`` the fraction of error-level checks that passed (integrity, consistency,
reproducibility, model identities) and ``W`` the fraction of warning-level checks that passed
among those that ran (statistics, realism; skipped checks are left out, and ``W = 1`` when none
ran)::

    score = round(100 * (0.7 * E + 0.3 * W)),   capped at 49 if any error-level check failed

So 100 means every check passed; 50 or more means the data is intact, consistent and
reproducible (only warnings); 49 or less means at least one error-level check failed and the
data should not be used. Each warning costs ``30 / (number of warning checks)`` points.
"""

from __future__ import annotations

from collections.abc import Iterable

from macro_data.validation.results import CheckResult

ERROR_WEIGHT = 0.7
WARN_WEIGHT = 0.3
FAIL_CAP = 49
FORMULA = (
    "score = round(100 * (0.7 * E + 0.3 * W)), capped at 49 if any error-level check failed; E = share of "
    "error-level checks passed, W = share of warning-level checks passed among those that ran (skipped "
    "checks left out; W = 1 when none ran)"
)


def score(results: Iterable[CheckResult]) -> dict:
    results = list(results)
    errors = [r for r in results if r.severity == "error"]
    warns = [r for r in results if r.severity == "warn" and not r.skipped]
    e = sum(r.passed for r in errors) / len(errors) if errors else 1.0
    w = sum(r.passed for r in warns) / len(warns) if warns else 1.0
    value = round(100 * (ERROR_WEIGHT * e + WARN_WEIGHT * w))
    capped = any(not r.passed for r in errors)
    if capped:
        value = min(value, FAIL_CAP)
    return {
        "value": int(value),
        "error_pass_fraction": e,
        "warn_pass_fraction": w,
        "error_checks": len(errors),
        "warn_checks_run": len(warns),
        "capped": capped,
        "formula": FORMULA,
    }
