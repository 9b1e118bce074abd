"""Statistical sanity (warning level): is the data on the intended scale and economically tame?

These checks never block a build: they flag data that is intact and reproducible but looks odd.
Streaming counts run over every sample; distribution summaries (percentiles) use the first
:data:`STAT_SAMPLE` samples, which are a random sample of the world's prior because samples are
drawn independently (so memory does not grow with the dataset). Every threshold is a constant
below, chosen on clean builds of all six worlds (2,048 samples, T = 200, H = 40, and 300 samples,
T = 24, H = 8) to leave a wide margin over what a correct world produces.

``statistics.stationarity`` (no explosive paths). A sample is explosive when any canonical
observable exceeds :data:`ABS_CAP` in absolute value (1,000 percent / annualized percentage
points: no stable world comes near it), or when the largest absolute value over the last quarter
of the path exceeds :data:`GROWTH_FACTOR` times the largest over its first half (a stationary
path started at the steady state builds up its variance early and then stays put). Warn if any
sample exceeds the cap or more than :data:`GROWTH_SHARE_MAX` of samples grow.

``statistics.scale``. Per sample and observable, the standard deviation over time (``ddof = 1``).
Warn if the median (over samples) of any observable lies outside :data:`SCALE_RANGE` (0.1-20,
the spec's "order 1-10" with room), or more than :data:`OFF_SCALE_SHARE_MAX` of samples lie an
order of magnitude beyond it (outside 0.01-200).

``statistics.irf_decay``. A draw's persistence ``p`` is its largest persistence parameter
(:data:`PERSISTENCE_PARAMETERS`: the spectral radius ``rho_max`` for lss and var, the AR and
smoothing coefficients otherwise). Draws with ``p^H <= DECAY_ELIGIBLE`` must have decayed by the
last horizon: for every shock, the largest ``|irfs[j, H, :]|`` at most :data:`DECAY_RATIO_MAX`
times the largest ``|irfs[j, :, :]|``. Warn if more than :data:`DECAY_SHARE_MAX` of the eligible
draws have not. (Clean builds: the largest ratio seen was 0.15.)

``statistics.rejections``. The rejection rate (invalid proposals / all proposals) recorded with
the draws lies within :data:`EXPECTED_REJECTION` for the world: next to nothing for lss and var
(stable by construction), nk and rbc (determinate on their bounds) and switching (mean-square
stable on its bounds), 0 rejections in clean builds; 50-65 % for zlb, which redraws the draws
without a bounded solution at the lower bound (about 57 % of the uniform box, per its module).
A rate outside the range means the validity rule or the solver changed behaviour.

``statistics.splits``. Each split's fraction is within ``max(0.01, 4 sqrt(f (1 - f) / n))`` of
its target fraction ``f`` (80/10/5/2.5/2.5 %): the held-out regions are calibrated to hold about
2.5 % of the prior mass each.

``statistics.zlb_binding`` (worlds with a ``binding`` flag). Reports the fraction of binding
periods and the share of samples that ever bind; warns if the bound never binds at all (a model
that can never reach its bound is probably not applying it).

``statistics.regimes`` (worlds with a ``regime`` path). Regime durations consistent with the
transition probabilities: with ``N_ii`` the number of transitions out of regime ``i`` that stay,
out of ``M_i`` periods in ``i`` (``t = 1..T-1``), ``N_ii`` has mean ``sum p_ii`` and variance
``sum p_ii (1 - p_ii)`` over those periods; likewise the number of samples starting in regime 1
against the stationary probabilities ``(1 - p00) / (2 - p00 - p11)``. Warn if any of the three
z-scores exceeds :data:`Z_MAX` in absolute value. The mean spell durations implied by the
observed stay frequencies, ``1 / (1 - N_ii / M_i)``, are reported next to the mean of
``1 / (1 - p_ii)``.
"""

from __future__ import annotations

import time

import numpy as np

from macro_data import splits
from macro_data.pipeline.common import read_provenance
from macro_data.storage.arrays import iter_rows, read_rows
from macro_data.validation.results import CheckResult, Problems, result
from macro_data.validation.spec import WorldSpec
from macro_data.worlds.compiled import lazily_compiled

READ_ROWS = 4096
STAT_SAMPLE = 4096
ABS_CAP = 1e3
GROWTH_FACTOR = 10.0
GROWTH_SHARE_MAX = 0.01
SCALE_RANGE = (0.1, 20.0)
OFF_SCALE_RANGE = (0.01, 200.0)
OFF_SCALE_SHARE_MAX = 0.05
DECAY_ELIGIBLE = 0.05
DECAY_RATIO_MAX = 0.5
DECAY_SHARE_MAX = 0.01
Z_MAX = 4.0
PERSISTENCE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "lss": ("rho_max",),
    "var": ("rho_max",),
    "nk": ("rho_i", "rho_m", "rho_r", "rho_u"),
    "zlb": ("rho_i", "rho_m", "rho_r", "rho_u"),
    "rbc": ("rho_a", "rho_b"),
    "switching": ("rho_0", "rho_1"),
}
EXPECTED_REJECTION: dict[str, tuple[float, float]] = {
    **{w: (0.0, 0.01) for w in PERSISTENCE_PARAMETERS},
    # zlb rejects draws without a bounded solution at the bound (Eggertsson-Woodford condition, see
    # macro_data/worlds/zlb.py): about 57 % of uniform raw draws; 0.592 measured on 300 draws
    "zlb": (0.50, 0.65),
}
PERCENTILES = (5, 50, 95)


def path_moments(traj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample and observable: standard deviation over time (``ddof = 1``) and the first-order
    autocorrelation ``sum (x_t - m)(x_{t-1} - m) / sum (x_t - m)^2`` (the ACF estimator), ``(n, k)`` each."""
    # time last and contiguous: reductions over a short inner axis (the 3 observables) are ~10x slower
    x = np.ascontiguousarray(np.asarray(traj).transpose(0, 2, 1), dtype=np.float64)
    d = x - x.mean(axis=2, keepdims=True)
    ss = np.einsum("nkt,nkt->nk", d, d)
    sd = np.sqrt(ss / max(x.shape[2] - 1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        lag = np.einsum("nkt,nkt->nk", d[:, :, 1:], d[:, :, :-1])
        ac = np.where(ss > 0, lag / np.where(ss > 0, ss, 1.0), np.nan)
    return sd, ac


@lazily_compiled
def path_scan(y, late_from, early_to, peak, late, early, sd):  # pragma: no cover - compiled
    """One pass over paths ``y (n, T, k)``, per sample ``i``: the largest ``|y|`` over the whole path
    (``peak[i]``), over periods ``t >= late_from`` (``late[i]``) and ``t < early_to`` (``early[i]``),
    NaN if any value in the range is NaN (as numpy's maxima); per observable the standard deviation
    over time, ``ddof = 1`` (``sd[i, j]``: the mean, then the sum of squared deviations, in float64)."""
    n, T, k = y.shape
    for i in range(n):
        top = 0.0
        top_late = 0.0
        top_early = 0.0
        for t in range(T):
            for j in range(k):
                a = abs(np.float64(y[i, t, j]))
                nan = a != a  # a NaN is taken and then kept: no value compares above it
                if a > top or nan:
                    top = a
                if t >= late_from and (a > top_late or nan):
                    top_late = a
                if t < early_to and (a > top_early or nan):
                    top_early = a
        peak[i] = top
        late[i] = top_late
        early[i] = top_early
        for j in range(k):
            total = 0.0
            for t in range(T):
                total += y[i, t, j]
            mean = total / T
            ss = 0.0
            for t in range(T):
                d = y[i, t, j] - mean
                ss += d * d
            sd[i, j] = np.sqrt(ss / max(T - 1, 1))


def persistence(spec: WorldSpec, theta: np.ndarray) -> np.ndarray | None:
    names = PERSISTENCE_PARAMETERS.get(spec.world_id)
    if not names:
        return None
    return np.max(np.stack([theta[:, spec.world.index(k)] for k in names]), axis=0)


def _stationarity_and_scale(spec: WorldSpec, group, rows: int) -> tuple[CheckResult, CheckResult]:
    t0 = time.perf_counter()
    arr = group["trajectories"]
    n, T, k_obs = arr.shape
    obs = [o.name for o in spec.world.observables]
    over_cap = grown = 0
    max_abs = 0.0
    first_cap = first_grow = None
    in_range = np.zeros(3, dtype=np.int64)
    off_scale = np.zeros(3, dtype=np.int64)
    sample_sd: list[np.ndarray] = []
    seen = 0
    for lo, y in iter_rows(arr, rows, zarr_on_error=True):
        m = y.shape[0]
        peak, late, early, sd = np.empty(m), np.empty(m), np.empty(m), np.empty((m, k_obs))
        path_scan(np.ascontiguousarray(y), T - T // 4, T // 2, peak, late, early, sd)
        max_abs = max(max_abs, float(np.nanmax(peak)))
        cap = peak > ABS_CAP
        over_cap += int(cap.sum())
        if cap.any() and first_cap is None:
            i = int(np.flatnonzero(cap)[0])
            first_cap = f"sample {lo + i} reaches |y| = {peak[i]:.4g}"
        if T >= 8:  # the last quarter against the first half
            grow = late > GROWTH_FACTOR * early
            grown += int(grow.sum())
            if grow.any() and first_grow is None:
                i = int(np.flatnonzero(grow)[0])
                first_grow = (
                    f"sample {lo + i}: max |y| {late[i]:.4g} in the last quarter vs {early[i]:.4g} in the first half"
                )
        in_range += ((sd >= SCALE_RANGE[0]) & (sd <= SCALE_RANGE[1])).sum(axis=0)
        off_scale += ((sd < OFF_SCALE_RANGE[0]) | (sd > OFF_SCALE_RANGE[1])).sum(axis=0)
        if seen < STAT_SAMPLE:
            sample_sd.append(sd[: STAT_SAMPLE - seen])
            seen += min(sd.shape[0], STAT_SAMPLE - seen)
    p = Problems()
    if over_cap:
        p.add(f"{over_cap} of {n} samples exceed |y| = {ABS_CAP:g} (explosive); first: {first_cap}")
    if grown > GROWTH_SHARE_MAX * n:
        p.add(
            f"{grown} of {n} samples ({grown / n:.1%}) grow over the path (last-quarter max > {GROWTH_FACTOR:g} x "
            f"first-half max; at most {GROWTH_SHARE_MAX:.0%} expected); first: {first_grow}"
        )
    stat = result(
        "statistics.stationarity",
        "statistics",
        spec.world_id,
        p,
        f"no explosive paths: max |y| = {max_abs:.3g}, {grown} of {n} samples grow",
        {
            "n_samples": n,
            "max_abs": max_abs,
            "over_cap": over_cap,
            "growing": grown,
            "growing_share": grown / n if n else 0.0,
        },
        {
            "array": "trajectories",
            "abs_cap": ABS_CAP,
            "growth_factor": GROWTH_FACTOR,
            "growth_share_max": GROWTH_SHARE_MAX,
        },
        time.perf_counter() - t0,
    )
    sds = np.concatenate(sample_sd) if sample_sd else np.zeros((0, 3))
    pct = (
        {
            o: dict(zip((f"p{q}" for q in PERCENTILES), np.percentile(sds[:, k], PERCENTILES).tolist()))
            for k, o in enumerate(obs)
        }
        if len(sds)
        else {}
    )
    p = Problems()
    for k, o in enumerate(obs):
        if pct and not (SCALE_RANGE[0] <= pct[o]["p50"] <= SCALE_RANGE[1]):
            p.add(f"{o}: median standard deviation {pct[o]['p50']:.3g} is outside {SCALE_RANGE[0]}-{SCALE_RANGE[1]}")
        if off_scale[k] > OFF_SCALE_SHARE_MAX * n:
            p.add(
                f"{o}: {off_scale[k]} of {n} samples ({off_scale[k] / n:.1%}) have a standard deviation outside "
                f"{OFF_SCALE_RANGE[0]}-{OFF_SCALE_RANGE[1]:g}"
            )
    scale = result(
        "statistics.scale",
        "statistics",
        spec.world_id,
        p,
        "observables on the intended scale: median sd " + ", ".join(f"{o} {pct[o]['p50']:.3g}" for o in obs if pct),
        {
            "sd_percentiles": pct,
            "share_in_range": {o: in_range[k] / n for k, o in enumerate(obs)},
            "share_off_scale": {o: off_scale[k] / n for k, o in enumerate(obs)},
        },
        {
            "array": "trajectories",
            "range": list(SCALE_RANGE),
            "off_scale_range": list(OFF_SCALE_RANGE),
            "percentiles_from_first_samples": int(len(sds)),
        },
        time.perf_counter() - t0,
    )
    return stat, scale


def _irf_decay(spec: WorldSpec, group, rows: int) -> CheckResult:
    t0 = time.perf_counter()
    irfs, theta_arr = group["irfs"], group["theta"]
    n, S, H1, _ = irfs.shape
    H = H1 - 1
    eligible = flagged = 0
    worst = 0.0
    first = None
    read_theta, read_irfs = read_rows(theta_arr, zarr_on_error=True), read_rows(irfs, zarr_on_error=True)
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        theta = np.asarray(read_theta(lo, hi), dtype=np.float64)
        p = persistence(spec, theta)
        if p is None:
            break
        el = p**H <= DECAY_ELIGIBLE
        if not el.any():
            continue
        r = np.abs(np.asarray(read_irfs(lo, hi)))  # in the stored precision: |x| and maxima are exact
        peak = r.max(axis=(2, 3)).astype(np.float64)
        end = r[:, :, H, :].max(axis=2).astype(np.float64)
        ratio = np.where(peak > 0, end / np.where(peak > 0, peak, 1.0), 0.0).max(axis=1)
        bad = el & (ratio > DECAY_RATIO_MAX)
        eligible += int(el.sum())
        flagged += int(bad.sum())
        worst = max(worst, float(ratio[el].max()))
        if bad.any() and first is None:
            i = int(np.flatnonzero(bad)[0])
            first = f"sample {lo + i} (persistence {p[i]:.3g}): |irf[H]| / peak = {ratio[i]:.3g}"
    pr = Problems()
    if PERSISTENCE_PARAMETERS.get(spec.world_id) is None:
        return result(
            "statistics.irf_decay",
            "statistics",
            spec.world_id,
            pr,
            "no persistence parameters known for this world: not applicable",
        )
    if eligible and flagged > DECAY_SHARE_MAX * eligible:
        pr.add(
            f"{flagged} of {eligible} draws whose persistence implies decay by H={H} have not decayed "
            f"(|irf[H]| > {DECAY_RATIO_MAX} x peak); first: {first}"
        )
    return result(
        "statistics.irf_decay",
        "statistics",
        spec.world_id,
        pr,
        f"{eligible} draws with persistence^H <= {DECAY_ELIGIBLE} all decayed by H={H} "
        f"(largest |irf[H]| / peak {worst:.3g})"
        if eligible
        else f"no draw has persistence^H <= {DECAY_ELIGIBLE} at H={H}: nothing to check",
        {"eligible": eligible, "not_decayed": flagged, "max_ratio": worst, "H": H},
        {
            "arrays": ["irfs", "theta"],
            "persistence": list(PERSISTENCE_PARAMETERS[spec.world_id]),
            "eligible_if_p_pow_H_at_most": DECAY_ELIGIBLE,
            "ratio_max": DECAY_RATIO_MAX,
            "share_max": DECAY_SHARE_MAX,
        },
        time.perf_counter() - t0,
    )


def _rejections(spec: WorldSpec, group) -> CheckResult:
    stats = read_provenance(group["theta"]).get("stats") or {}
    rate = stats.get("rejection_rate")
    if spec.manifest is not None and spec.manifest.get("rejection_rate") is not None:
        rate = spec.manifest["rejection_rate"]
    lo, hi = EXPECTED_REJECTION.get(spec.world_id, (0.0, 0.5))
    p = Problems()
    if rate is None:
        p.add("no rejection rate recorded with the draws")
    elif not lo <= rate <= hi:
        p.add(f"rejection rate {rate:.4f} is outside the expected range {lo}-{hi}")
    return result(
        "statistics.rejections",
        "statistics",
        spec.world_id,
        p,
        f"rejection rate {rate:.4f} within the expected {lo}-{hi}" if rate is not None else "",
        {"rejection_rate": rate, "n_rejected": stats.get("n_rejected")},
        {"source": "manifest" if spec.manifest is not None else "theta provenance", "expected_range": [lo, hi]},
    )


def _split_fractions(spec: WorldSpec, group, rows: int) -> CheckResult:
    arr = group["split"]
    n = arr.shape[0]
    counts = {k: 0 for k in splits.LABELS}
    for _, labels in iter_rows(arr, rows, zarr_on_error=True):
        for k, v in splits.LABELS.items():
            counts[k] += int((labels == v).sum())
    p = Problems()
    fig = {}
    for k, target in splits.TARGET_FRACTIONS.items():
        frac = counts[k] / n if n else 0.0
        tol = max(0.01, 4 * np.sqrt(target * (1 - target) / max(n, 1)))
        fig[k] = {"count": counts[k], "fraction": frac, "target": target, "tolerance": float(tol)}
        if abs(frac - target) > tol:
            p.add(f"split {k}: fraction {frac:.3f} is far from its target {target} (tolerance {tol:.3f})")
    return result(
        "statistics.splits",
        "statistics",
        spec.world_id,
        p,
        "split fractions near their targets: " + ", ".join(f"{k} {v['fraction']:.3f}" for k, v in fig.items()),
        {"splits": fig},
        {"array": "split", "targets": splits.TARGET_FRACTIONS},
    )


def _zlb_binding(spec: WorldSpec, group, rows: int) -> CheckResult:
    arr = group["binding"]
    n, T = arr.shape
    periods = ever = 0
    for _, block in iter_rows(arr, rows, zarr_on_error=True):
        b = np.asarray(block, dtype=bool)
        periods += int(b.sum())
        ever += int(b.any(axis=1).sum())
    p = Problems()
    if periods == 0:
        p.add(f"the lower bound never binds in {n} samples of {T} periods")
    frac = periods / (n * T) if n * T else 0.0
    return result(
        "statistics.zlb_binding",
        "statistics",
        spec.world_id,
        p,
        f"the bound binds in {frac:.1%} of periods; {ever / n:.1%} of samples bind at least once",
        {"binding_fraction": frac, "samples_ever_binding": ever / n if n else 0.0, "binding_periods": periods},
        {"array": "binding"},
    )


def _regimes(spec: WorldSpec, group, rows: int) -> CheckResult:
    t0 = time.perf_counter()
    arr, theta_arr = group["regime"], group["theta"]
    j00, j11 = spec.world.index("p00"), spec.world.index("p11")
    n = arr.shape[0]
    acc = {k: 0.0 for k in ("M0", "N00", "E00", "V00", "M1", "N11", "E11", "V11", "R0", "ER0", "VR0", "D0", "D1")}
    read_theta = read_rows(theta_arr, zarr_on_error=True)
    for lo, block in iter_rows(arr, rows, zarr_on_error=True):
        r = np.asarray(block, dtype=np.int64)
        th = np.asarray(read_theta(lo, lo + r.shape[0]), dtype=np.float64)
        p00, p11 = th[:, j00][:, None], th[:, j11][:, None]
        prev, nxt = r[:, :-1], r[:, 1:]
        for i, pii, key in ((0, p00, "0"), (1, p11, "1")):
            at = prev == i
            stay = at & (nxt == i)
            pw = np.broadcast_to(pii, at.shape)
            acc["M" + key] += int(at.sum())
            acc[f"N{key}{key}"] += int(stay.sum())
            acc[f"E{key}{key}"] += float(pw[at].sum())
            acc[f"V{key}{key}"] += float((pw * (1 - pw))[at].sum())
            acc["D" + key] += float((1.0 / (1.0 - pii)).sum())
        pi1 = ((1 - p00) / (2 - p00 - p11))[:, 0]
        acc["R0"] += int((r[:, 0] == 1).sum())
        acc["ER0"] += float(pi1.sum())
        acc["VR0"] += float((pi1 * (1 - pi1)).sum())

    def z(obs, exp, var):
        return (obs - exp) / np.sqrt(var) if var > 0 else 0.0

    zs = {
        "stay_calm": z(acc["N00"], acc["E00"], acc["V00"]),
        "stay_turbulent": z(acc["N11"], acc["E11"], acc["V11"]),
        "start_turbulent": z(acc["R0"], acc["ER0"], acc["VR0"]),
    }
    p = Problems()
    for k, v in zs.items():
        if abs(v) > Z_MAX:
            p.add(
                f"regime paths inconsistent with the transition probabilities: z-score {v:.2f} for {k} "
                f"(|z| <= {Z_MAX} expected)"
            )
    dur = {
        "calm": {
            "observed": 1 / (1 - acc["N00"] / acc["M0"]) if acc["M0"] and acc["N00"] < acc["M0"] else None,
            "expected_mean": acc["D0"] / n if n else None,
        },
        "turbulent": {
            "observed": 1 / (1 - acc["N11"] / acc["M1"]) if acc["M1"] and acc["N11"] < acc["M1"] else None,
            "expected_mean": acc["D1"] / n if n else None,
        },
    }
    return result(
        "statistics.regimes",
        "statistics",
        spec.world_id,
        p,
        "regime stays and starts consistent with p00, p11 and the stationary distribution (z-scores "
        + ", ".join(f"{k} {v:.2f}" for k, v in zs.items())
        + ")",
        {
            "z_scores": zs,
            "mean_durations": dur,
            "transitions": {k: acc[k] for k in ("M0", "N00", "M1", "N11")},
            "start_turbulent": {"observed": acc["R0"], "expected": acc["ER0"]},
        },
        {"arrays": ["regime", "theta"], "z_max": Z_MAX},
        time.perf_counter() - t0,
    )


PARTS = ("stationarity", "scale", "irf_decay", "rejections", "splits", "zlb_binding", "regimes")
SANITY_PARTS = tuple(p for p in PARTS if p != "splits")  # the statistical_sanity asset check's parts


def check_statistics(spec: WorldSpec, include: tuple[str, ...] = PARTS, rows: int = READ_ROWS) -> list[CheckResult]:
    """The statistical sanity checks in ``include`` that apply to the world."""
    try:
        group = spec.open()
        out: list[CheckResult] = []
        if "stationarity" in include or "scale" in include:
            out += [r for r in _stationarity_and_scale(spec, group, rows) if r.name.split(".")[1] in include]
        if "irf_decay" in include:
            out.append(_irf_decay(spec, group, rows))
        if "rejections" in include:
            out.append(_rejections(spec, group))
        if "splits" in include:
            out.append(_split_fractions(spec, group, rows))
        meta = {m.name for m in spec.world.metadata_fields}
        if "zlb_binding" in include and "binding" in meta:
            out.append(_zlb_binding(spec, group, rows))
        if "regimes" in include and "regime" in meta and {"p00", "p11"} <= set(spec.world.parameter_names):
            out.append(_regimes(spec, group, rows))
        return out
    except Exception as exc:  # noqa: BLE001 - unreadable data is integrity's finding
        p = Problems()
        p.add(f"statistics could not be computed ({type(exc).__name__}: {exc})")
        return [result("statistics.all", "statistics", spec.world_id, p, "")]
