"""Realism (warning level): where do real US moments fall in each world's distribution?

Real data: the verified US quarterly macro table (registry entry ``us_macro_statsmodels``,
statsmodels ``macrodata.csv``, 1959Q2-2009Q3) turned into the canonical observables by
:mod:`macro_data.external.real_data` (output: percent deviation of real GDP from its HP trend;
inflation: annualized CPI inflation; rate: 3-month T-bill; inflation and rate as deviations from
their sample means). The file is used only if it is in the external-data cache and its size and
sha256 equal the registry's pins; otherwise the check is ``skipped: no verified external data``
(a warning, never an error). Nothing is downloaded here: ``macro-data fetch`` does that.

World side: for each of the first :data:`macro_data.validation.statistics.STAT_SAMPLE` samples
(independent prior draws), the standard deviation (``ddof = 1``) and first-order autocorrelation
of each canonical observable over its path, with the same estimators as the real data.

Reported, per observable and moment: the real value, the world's 1/5/50/95/99 percentiles, and
the real value's percentile rank in the world's distribution (``100 (#{world < real} +
#{world = real} / 2) / n``). The check warns when a rank falls outside :data:`RANK_RANGE`
(1-99): the world's prior then (almost) never produces data like the US's on that moment.

Caveats a reader should know (also in the report): simulated paths start at the steady state and
are ``T`` quarters long while the real sample has 202 quarters, so short paths understate standard
deviations and bias autocorrelations down; the rbc world's "inflation" is consumption growth
and its "rate" a real return, so those rows compare different concepts by design.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from macro_data import paths
from macro_data.validation.results import CheckResult, Problems, result, skipped
from macro_data.validation.spec import WorldSpec
from macro_data.validation.statistics import STAT_SAMPLE, path_moments

SOURCE_ENTRY = "us_macro_statsmodels"
MOMENTS = ("sd", "autocorr1")
RANK_RANGE = (1.0, 99.0)
WORLD_PERCENTILES = (1, 5, 50, 95, 99)


@dataclass
class RealData:
    """Moments of the real data and where they came from."""

    moments: dict  # {observable: {"sd": .., "autocorr1": ..}}
    source: dict  # registry entry, sha256, sample, method
    series: dict = field(default_factory=dict)  # {"dates": [...], observable: [...]}, for plots


def load_real_data(root: str | Path | None = None, registry: str | Path | None = None) -> tuple[RealData | None, str]:
    """The verified real data, or ``(None, why not)``. ``root``: the external-data root (holding
    ``external/objects/``), default ``$MACRO_DATA_ROOT``; ``registry``: default ``$MACRO_DATA_REGISTRY``."""
    try:
        from macro_data.external import real_data
        from macro_data.external.cache import Cache
        from macro_data.external.registry import load_registry
    except ImportError as exc:
        return None, f"no verified external data (the external-data layer is not available: {exc})"
    root = Path(root) if root is not None else paths.data_root()
    try:
        reg = load_registry(registry)
        entry = reg.get(SOURCE_ENTRY)
    except Exception as exc:  # noqa: BLE001 - a broken registry is the external layer's error, not the dataset's
        return None, f"no verified external data (registry: {exc})"
    if not entry.pinned:
        return None, f"no verified external data (registry entry {SOURCE_ENTRY!r} is not pinned)"
    cache = Cache(root)
    path = cache.object_path(entry)
    check = cache.check_file(path, entry.sha256, entry.size)
    if not check.ok:
        return None, (
            f"no verified external data ({SOURCE_ENTRY} is not in the cache under "
            f"{cache.objects_dir}: {check.reason}; run `macro-data fetch {SOURCE_ENTRY}`)"
        )
    try:
        summary = real_data.summarize(path, source_name=SOURCE_ENTRY, source_sha256=entry.sha256, options=entry.csv)
    except Exception as exc:  # noqa: BLE001
        return None, f"no verified external data ({SOURCE_ENTRY} could not be read: {exc})"
    source = {
        "entry": SOURCE_ENTRY,
        "sha256": entry.sha256,
        "size": entry.size,
        "sample": summary["sample"],
        "output_method": summary["output_method"],
        "hp_lambda": summary.get("hp_lambda"),
        "units": summary["units"],
        "citation": entry.citation,
        "license": entry.license,
    }
    return RealData(summary["moments"]["observables"], source, summary.get("series", {})), ""


def percentile_rank(values: np.ndarray, x: float) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(100.0 * ((v < x).sum() + 0.5 * (v == x).sum()) / v.size)


def world_moments(spec: WorldSpec, group=None) -> dict[str, np.ndarray]:
    """``{"sd": (m, 3), "autocorr1": (m, 3)}`` over the first STAT_SAMPLE samples."""
    group = group if group is not None else spec.open()
    traj = np.asarray(group["trajectories"][: min(STAT_SAMPLE, spec.n)], dtype=np.float64)
    sd, ac = path_moments(traj)
    return {"sd": sd, "autocorr1": ac}


def check_realism(spec: WorldSpec, real: RealData | None, reason: str = "no verified external data") -> CheckResult:
    t0 = time.perf_counter()
    if real is None:
        return skipped("realism.us_moments", "realism", spec.world_id, reason, {"source": SOURCE_ENTRY})
    p = Problems()
    try:
        wm = world_moments(spec)
    except Exception as exc:  # noqa: BLE001
        p.add(f"the world's moments could not be computed ({type(exc).__name__}: {exc})")
        return result("realism.us_moments", "realism", spec.world_id, p, "")
    obs = [o.name for o in spec.world.observables]
    table: dict = {}
    outside = []
    for k, o in enumerate(obs):
        table[o] = {}
        for m in MOMENTS:
            real_v = float(real.moments[o][m])
            vals = wm[m][:, k]
            finite = vals[np.isfinite(vals)]
            rank = percentile_rank(vals, real_v)
            table[o][m] = {
                "real": real_v,
                "rank": rank,
                "world_percentiles": dict(
                    zip(
                        (f"p{q}" for q in WORLD_PERCENTILES),
                        np.percentile(finite, WORLD_PERCENTILES).tolist()
                        if finite.size
                        else [None] * len(WORLD_PERCENTILES),
                    )
                ),
            }
            if not (RANK_RANGE[0] <= rank <= RANK_RANGE[1]):
                outside.append(
                    f"{o} {m} {real_v:.3g} (percentile {rank:.1f} of the world's, whose median is "
                    f"{table[o][m]['world_percentiles']['p50']:.3g})"
                )
    if outside:
        p.add("real US moments outside the world's central 98%: " + "; ".join(outside))
    ok = "real US moments inside the world's central 98%: " + ", ".join(
        f"{o} sd at p{table[o]['sd']['rank']:.0f}, ac1 at p{table[o]['autocorr1']['rank']:.0f}" for o in obs
    )
    return result(
        "realism.us_moments",
        "realism",
        spec.world_id,
        p,
        ok,
        {"moments": table, "n_world_samples": int(wm["sd"].shape[0])},
        {
            "real_data": real.source,
            "world_T": spec.T,
            "real_quarters": real.source["sample"].get("quarters"),
            "rank_range": list(RANK_RANGE),
            "estimators": "sd with ddof=1; ACF lag-1 estimator",
        },
        time.perf_counter() - t0,
    )
