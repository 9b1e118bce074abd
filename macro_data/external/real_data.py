"""The US quarterly macro table (statsmodels ``macrodata.csv``) as the canonical observables.

The worlds' contract (``output``, ``inflation``, ``rate``; see the worlds spec) maps to the data as:

- ``output``: percent deviation of real GDP from trend, ``100 * (log realgdp[t] - trend[t])``.
  Default trend: Hodrick-Prescott with ``lambda = 1600`` (quarterly convention), i.e. the trend
  ``tau`` minimises ``sum (y - tau)^2 + lambda * sum (tau[t+1] - 2 tau[t] + tau[t-1])^2`` and solves
  ``(I + lambda D'D) tau = y`` with ``D`` the (T-2) x T second-difference matrix (sparse solve).
  Alternatives: ``"linear"`` (least-squares linear trend in ``100 log realgdp``) and ``"growth"``
  (``100 * (log realgdp[t] - log realgdp[t-1])``, quarter-on-quarter percent, demeaned).
- ``inflation``: annualized CPI inflation ``400 * (log cpi[t] - log cpi[t-1])``, in percentage points,
  as a deviation from its sample mean (the sample's steady state). This equals the table's own
  ``infl`` column up to its two-decimal rounding.
- ``rate``: the 3-month Treasury bill rate ``tbilrate`` (already annualized percent), as a deviation
  from its sample mean.

The first quarter (1959Q1) has no inflation, so all three series run 1959Q2-2009Q3 (202 quarters).
Moments per observable: ``sd`` (sample standard deviation, ``ddof = 1``) and ``autocorr1``, the
first-order autocorrelation ``sum_t (x_t - m)(x_{t-1} - m) / sum_t (x_t - m)^2`` (the usual ACF
estimator, as in ``statsmodels.tsa.stattools.acf``); plus the 3 x 3 correlation matrix and the
sample means of inflation and the rate in levels (the steady state the deviations are taken from).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from macro_data.external.errors import SchemaCheckError
from macro_data.external.registry import CsvOptions
from macro_data.external.tabular import open_text

SOURCE_ENTRY = "us_macro_statsmodels"
OBSERVABLES = ("output", "inflation", "rate")
UNITS = {
    "output": "percent deviation from trend (100 x log)",
    "inflation": "annualized percentage points, deviation from sample mean",
    "rate": "annualized percentage points, deviation from sample mean",
}
HP_LAMBDA = 1600.0
OUTPUT_METHODS = ("hp", "linear", "growth")
REQUIRED_COLUMNS = ("year", "quarter", "realgdp", "cpi", "tbilrate")


@dataclass(frozen=True)
class Observables:
    """Canonical observables of the real data: ``values[t, k]`` for quarter ``dates[t]``."""

    dates: tuple[str, ...]
    values: np.ndarray  # (T, 3) float64, columns in OBSERVABLES order
    levels_mean: dict[str, float]
    output_method: str


def read_columns(path: Path, fmt: str = "csv", options: CsvOptions | None = None) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV as float64 arrays (header names as keys)."""
    options = options or CsvOptions()
    with open_text(path, fmt, options) as f:
        reader = csv.reader(f, delimiter=options.delimiter, skipinitialspace=True)
        header = [c.strip() for c in next(reader)]
        for _ in range(options.header_rows):
            next(reader, None)
        rows = [r for r in reader if r and any(c.strip() for c in r)]
    try:
        data = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise SchemaCheckError(f"{path.name}: non-numeric cell ({exc})") from None
    if data.ndim != 2 or data.shape[1] != len(header):
        raise SchemaCheckError(f"{path.name}: rows do not have {len(header)} fields")
    return {name: data[:, j].copy() for j, name in enumerate(header)}


def hp_filter(y: np.ndarray, lamb: float = HP_LAMBDA) -> tuple[np.ndarray, np.ndarray]:
    """Hodrick-Prescott ``(trend, cycle)`` of a 1-d series: solves ``(I + lamb D'D) trend = y``."""
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0]
    if n < 3:
        raise ValueError("hp_filter needs at least 3 observations")
    import scipy.sparse as sp  # imported on first use, not by every process loading the code location
    import scipy.sparse.linalg as spla

    d = sp.diags([np.ones(n - 2), -2 * np.ones(n - 2), np.ones(n - 2)], [0, 1, 2], shape=(n - 2, n), format="csc")
    a = (sp.identity(n, format="csc") + lamb * (d.T @ d)).tocsc()
    trend = spla.spsolve(a, y)
    return trend, y - trend


def linear_detrend(y: np.ndarray) -> np.ndarray:
    """Residual of the least-squares fit ``y ~ a + b t``."""
    y = np.asarray(y, dtype=np.float64)
    t = np.arange(y.shape[0], dtype=np.float64)
    x = np.column_stack([np.ones_like(t), t])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return y - x @ coef


def canonical_observables(
    columns: dict[str, np.ndarray], output_method: str = "hp", lamb: float = HP_LAMBDA
) -> Observables:
    """``output``, ``inflation``, ``rate`` (see the module doc), 1959Q2 onwards for the statsmodels table."""
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise SchemaCheckError(f"US macro table: missing columns {missing}")
    if output_method not in OUTPUT_METHODS:
        raise ValueError(f"output_method {output_method!r}: choose one of {', '.join(OUTPUT_METHODS)}")
    gdp, cpi, tbill = columns["realgdp"], columns["cpi"], columns["tbilrate"]
    if np.any(gdp <= 0) or np.any(cpi <= 0):
        raise SchemaCheckError("US macro table: realgdp and cpi must be positive to take logs")
    log_y = 100.0 * np.log(gdp)
    if output_method == "hp":
        output = hp_filter(log_y, lamb)[1][1:]
    elif output_method == "linear":
        output = linear_detrend(log_y)[1:]
    else:
        growth = np.diff(log_y)
        output = growth - growth.mean()
    infl_level = 400.0 * np.diff(np.log(cpi))
    rate_level = tbill[1:]
    values = np.column_stack([output, infl_level - infl_level.mean(), rate_level - rate_level.mean()])
    dates = tuple(f"{int(y)}Q{int(q)}" for y, q in zip(columns["year"][1:], columns["quarter"][1:]))
    return Observables(
        dates, values, {"inflation": float(infl_level.mean()), "rate": float(rate_level.mean())}, output_method
    )


def autocorr1(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    d = x - x.mean()
    return float(np.sum(d[1:] * d[:-1]) / np.sum(d * d))


def moments(obs: Observables) -> dict:
    """``{name: {sd, autocorr1}}`` per observable and the correlation matrix (rows/cols in OBSERVABLES order)."""
    v = obs.values
    per = {
        name: {"sd": float(np.std(v[:, k], ddof=1)), "autocorr1": autocorr1(v[:, k])}
        for k, name in enumerate(OBSERVABLES)
    }
    return {"observables": per, "correlation": np.corrcoef(v, rowvar=False).tolist()}


def summarize(
    path: Path,
    *,
    source_name: str = SOURCE_ENTRY,
    source_sha256: str | None = None,
    output_method: str = "hp",
    lamb: float = HP_LAMBDA,
    options: CsvOptions | None = None,
) -> dict:
    """JSON-ready summary: sample, units, method, moments and the series themselves."""
    obs = canonical_observables(read_columns(path, "csv", options), output_method, lamb)
    summary = {
        "source": {"name": source_name, "sha256": source_sha256},
        "observables": list(OBSERVABLES),
        "units": UNITS,
        "output_method": output_method,
        "hp_lambda": lamb if output_method == "hp" else None,
        "sample": {"start": obs.dates[0], "end": obs.dates[-1], "quarters": len(obs.dates)},
        "levels_mean": obs.levels_mean,
        "moments": moments(obs),
        "series": {"dates": list(obs.dates), **{n: obs.values[:, k].tolist() for k, n in enumerate(OBSERVABLES)}},
    }
    summary["summary_sha256"] = hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()
    return summary
