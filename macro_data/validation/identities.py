"""Model identities: properties the science contract makes exact, checked on the stored numbers.

Convolution identity (linear worlds: ``World.linear``, i.e. lss, var, nk, rbc). From the
steady state a linear world's observables are the innovations filtered by its moving-average
coefficients, and ``irfs[j, h] = MA_h e_j sigma_j``, so for every ``t <= H``::

    traj[t] = sum_{h=0..t} sum_j irfs[j, h] * eps[t - h, j]

It is checked on the re-simulated subset (:func:`macro_data.validation.reproducibility.subset_indices`)
with the stored float32 ``irfs``, ``shocks`` and ``trajectories``, summed in float64. Rounding to
float32 moves each stored number by at most ``2^-24`` relative, so the two sides may differ by
about ``2^-24 (|traj[t]| + sum |irfs * eps|)``; the tolerance is :data:`CONVOLUTION_RTOL` = ``2^-20``
times that scale (16 float32 units of rounding). A wrong timing, sign or scale gives errors of
order one in these units times ``2^24``.

With a burn-in (``burn_in: B > 0``) the stored window starts from ``initial_state`` instead of the
steady state, and the path under zero innovations from that state is added::

    traj[t] = sum_{h=0..t} sum_j irfs[j, h] * eps[t - h, j] + free_path(initial_state)[t]

(:meth:`World.free_path`, computed from the stored float32 ``theta`` and ``initial_state``). The path is
linear in the state, so its term-by-term magnitude ``sum_a |free_path(initial_state[a] e_a)[t]|`` joins
the scale of the tolerance, as ``sum |irfs * eps|`` does for the convolution: rounding the state to
float32 moves each term by at most ``2^-24`` of it.

Zero lower bound (worlds with a ``binding`` flag and an ``r_ss`` parameter: zlb), on every sample:
``rate[t] >= -r_ss`` (the rate level ``r_ss + rate`` is never negative); in binding periods
``rate[t] = -r_ss``; and where the world stores ``shadow_rate``, ``shadow_rate[t] <= -r_ss`` when
binding and ``shadow_rate[t] = rate[t]`` when slack. Tolerances: :data:`BOUND_ATOL_ULPS` float32
units of ``r_ss`` (the bound), and ``2^-20 (1 + |rate|)`` for shadow = rate.

Regimes (worlds with a ``regime`` path: switching), on every sample: ``regime`` is int8 with
values in {0, 1}.

Measurement noise (recipes with ``noise``, any world), on every sample: ``observed - trajectories``
is exactly zero for an observable without noise, and for the others, divided by the recorded
standard deviation, has mean 0, standard deviation 1 and lag-1 autocorrelation 0 within
:data:`NOISE_Z` standard errors (``1/sqrt(N)``, ``1/sqrt(2N)`` and ``1/sqrt(N)`` over the ``N``
values) plus :data:`NOISE_ROUNDING` for the float32 rounding of ``observed``.
"""

from __future__ import annotations

import time

import numpy as np

from macro_data.storage.arrays import iter_rows, read_rows
from macro_data.validation.reproducibility import read_subset, subset_indices
from macro_data.validation.results import CheckResult, Problems, result
from macro_data.validation.spec import WorldSpec

READ_ROWS = 4096
CONVOLUTION_RTOL = 2.0**-20
BOUND_ATOL_ULPS = 4
F32_EPS = 2.0**-24
NOISE_Z = 6.0  # standard errors allowed for the noise statistics
NOISE_ROUNDING = 1e-3  # allowance for float32 rounding of observed, relative to the noise sd


def convolution(irfs: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(conv, scale)`` for ``t = 0..min(T-1, H)``, each ``(n, t, 3)``, in float64.

    ``conv[t] = sum_{h<=t} sum_j irfs[j, h] eps[t-h, j]``, ``scale[t] = sum |irfs[j, h] eps[t-h, j]|``.

    ``irfs (n, S, H+1, 3)``, ``eps (n, T, S)``, ``traj (n, T, 3)``. Explicit broadcasting and sums
    (no einsum), one pass per ``t``.
    """
    irfs, eps = (np.asarray(a, dtype=np.float64) for a in (irfs, eps))
    n, S, H1, _ = irfs.shape
    tmax = min(eps.shape[1], H1)
    conv = np.empty((n, tmax, 3))
    scale = np.empty((n, tmax, 3))
    for t in range(tmax):
        # terms[i, j, h, k] = irfs[i, j, h, k] * eps[i, t - h, j]
        past = eps[:, t::-1, :]  # (n, t+1, S): eps[t - h] for h = 0..t
        terms = irfs[:, :, : t + 1, :] * np.transpose(past, (0, 2, 1))[:, :, :, None]
        conv[:, t] = terms.sum(axis=(1, 2))
        scale[:, t] = np.abs(terms).sum(axis=(1, 2))
    return conv, scale


def _convolution(spec: WorldSpec, group, indices: np.ndarray, problems: Problems, figures: dict) -> None:
    irfs = read_subset(group, "irfs", indices)
    eps = read_subset(group, "shocks", indices)
    traj = read_subset(group, "trajectories", indices)
    conv, scale = convolution(irfs, eps)
    if spec.burn_in:  # the window starts from initial_state: add the path of zero innovations from it
        theta = read_subset(group, "theta", indices).astype(np.float64)
        x0 = read_subset(group, "initial_state", indices).astype(np.float64)
        free = spec.world.free_path(theta, x0, conv.shape[1])
        # the path is linear in the state: its term-by-term scale, sum_a |free_path(x0[a] e_a)|, bounds what
        # the float32 rounding of initial_state moves (as sum |irfs * eps| does for the convolution)
        terms = np.zeros_like(free)
        for a in range(x0.shape[1]):
            unit = np.zeros_like(x0)
            unit[:, a] = x0[:, a]
            terms += np.abs(spec.world.free_path(theta, unit, conv.shape[1]))
        conv, scale = conv + free, scale + terms
        figures["burn_in"] = {"periods": spec.burn_in, "max_abs_free_path": float(np.abs(free).max(initial=0.0))}
    traj = np.asarray(traj, dtype=np.float64)[:, : conv.shape[1]]
    err = np.abs(traj - conv)
    scale = scale + np.abs(traj)
    tol = CONVOLUTION_RTOL * scale + 1e-300
    ratio = err / np.maximum(scale * F32_EPS, 1e-300)
    bad = err > tol
    figures["convolution"] = {
        "samples": int(len(indices)),
        "periods": int(err.shape[1]),
        "max_error_float32_units": float(ratio.max()) if ratio.size else 0.0,
        "tolerance_float32_units": CONVOLUTION_RTOL / F32_EPS,
        "max_abs_error": float(err.max()) if err.size else 0.0,
        "violations": int(bad.any(axis=(1, 2)).sum()),
    }
    if bad.any():
        i, t, k = np.argwhere(bad)[0]
        problems.add(
            f"convolution identity: {int(bad.any(axis=(1, 2)).sum())} of {len(indices)} samples violate "
            f"traj[t] = sum_h sum_j irfs[j,h] eps[t-h,j]{' + free_path(initial_state)[t]' if spec.burn_in else ''}; "
            f"first: sample {int(indices[i])}, t={int(t)}, "
            f"{spec.world.observables[k].name}: stored {traj[i, t, k]:.6g}, convolution "
            f"{conv[i, t, k]:.6g}, difference {err[i, t, k]:.3g} "
            f"({ratio[i, t, k]:.3g} float32 units, tolerance {CONVOLUTION_RTOL / F32_EPS:.0f})"
        )


def _zero_lower_bound(spec: WorldSpec, group, problems: Problems, figures: dict, rows: int) -> None:
    world = spec.world
    j = world.index("r_ss")
    extras = [o.name for o in world.extras]
    k_shadow = extras.index("shadow_rate") if "shadow_rate" in extras else None
    n = group["trajectories"].shape[0]
    stats = {
        "below_bound": 0,
        "binding_not_at_bound": 0,
        "shadow_above_bound_when_binding": 0,
        "shadow_differs_when_slack": 0,
        "min_distance_to_bound": np.inf,
        "binding_periods": 0,
    }
    firsts: dict[str, str] = {}
    read = {
        a: read_rows(group[a], zarr_on_error=True)
        for a in ("theta", "trajectories", "binding", *(("extras",) if k_shadow is not None else ()))
    }
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        r_ss = np.asarray(read["theta"](lo, hi)[:, j], dtype=np.float64)[:, None]
        rate = np.asarray(read["trajectories"](lo, hi)[:, :, 2], dtype=np.float64)
        binding = np.asarray(read["binding"](lo, hi), dtype=bool)
        atol = BOUND_ATOL_ULPS * F32_EPS * r_ss
        dist = rate + r_ss
        stats["min_distance_to_bound"] = min(stats["min_distance_to_bound"], float(dist.min()))
        stats["binding_periods"] += int(binding.sum())
        checks = {"below_bound": dist < -atol, "binding_not_at_bound": binding & (np.abs(dist) > atol)}
        if k_shadow is not None:
            shadow = np.asarray(read["extras"](lo, hi)[:, :, k_shadow], dtype=np.float64)
            checks["shadow_above_bound_when_binding"] = binding & (shadow + r_ss > atol)
            checks["shadow_differs_when_slack"] = ~binding & (np.abs(shadow - rate) > 2.0**-20 * (1 + np.abs(rate)))
        for key, bad in checks.items():
            stats[key] += int(bad.sum())
            if bad.any() and key not in firsts:
                i, t = np.argwhere(bad)[0]
                firsts[key] = (
                    f"sample {lo + int(i)}, t={int(t)}: rate {rate[i, t]:.6g}, r_ss {r_ss[i, 0]:.6g}, "
                    f"binding {bool(binding[i, t])}"
                    + (f", shadow_rate {shadow[i, t]:.6g}" if k_shadow is not None else "")
                )
    figures["zero_lower_bound"] = stats
    text = {
        "below_bound": "periods with the rate below its bound -r_ss",
        "binding_not_at_bound": "binding periods whose rate is not at the bound",
        "shadow_above_bound_when_binding": "binding periods whose shadow rate is above the bound",
        "shadow_differs_when_slack": "slack periods whose shadow rate differs from the rate",
    }
    for key, what in text.items():
        if stats[key]:
            problems.add(f"zero lower bound: {stats[key]} {what}; first: {firsts[key]}")


def _regimes(spec: WorldSpec, group, problems: Problems, figures: dict, rows: int) -> None:
    arr = group["regime"]
    stats = {"invalid_values": 0, "dtype": str(arr.dtype), "turbulent_share": 0.0}
    if str(arr.dtype) != "int8":
        problems.add(f"regime labels have dtype {arr.dtype}, expected int8")
    total, ones, first = 0, 0, None
    for lo, r in iter_rows(arr, rows, zarr_on_error=True):
        bad = (r != 0) & (r != 1)
        stats["invalid_values"] += int(bad.sum())
        if bad.any() and first is None:
            i, t = np.argwhere(bad)[0]
            first = f"sample {lo + int(i)}, t={int(t)}: {int(r[i, t])}"
        total += r.size
        ones += int((r == 1).sum())
    stats["turbulent_share"] = ones / total if total else 0.0
    figures["regimes"] = stats
    if stats["invalid_values"]:
        problems.add(f"regime labels: {stats['invalid_values']} values outside {{0, 1}}; first: {first}")


def _noise(spec: WorldSpec, group, problems: Problems, figures: dict, rows: int) -> None:
    obs, traj = group["observed"], group["trajectories"]
    names = [o.name for o in spec.world.observables]
    sd = np.array([float(spec.noise.get(k, 0.0)) for k in names])
    s1, s2, lag, count, lag_count = (np.zeros(3) for _ in range(5))
    exact_bad = np.zeros(3, dtype=np.int64)
    read_traj = read_rows(traj, zarr_on_error=True)
    for lo, block in iter_rows(obs, rows, zarr_on_error=True):
        r = np.asarray(block, dtype=np.float64) - np.asarray(read_traj(lo, lo + block.shape[0]), dtype=np.float64)
        for j in range(3):
            if sd[j] == 0:
                exact_bad[j] += int((r[..., j] != 0).sum())
                continue
            z = r[..., j] / sd[j]
            s1[j] += z.sum()
            s2[j] += (z * z).sum()
            lag[j] += (z[:, 1:] * z[:, :-1]).sum()
            count[j] += z.size
            lag_count[j] += z[:, 1:].size
    stats = {"sd": dict(zip(names, sd.tolist()))}
    for j, k in enumerate(names):
        if sd[j] == 0:
            stats[k] = {"nonzero_differences": int(exact_bad[j])}
            if exact_bad[j]:
                problems.add(f"noise: observable {k!r} has no noise, yet {exact_bad[j]} observed values differ")
            continue
        n = max(count[j], 1.0)
        mean, std = s1[j] / n, float(np.sqrt(max(s2[j] / n - (s1[j] / n) ** 2, 0.0)))
        rho = lag[j] / max(lag_count[j], 1.0)
        stats[k] = {"mean_z": float(mean), "sd_z": std, "lag1_autocorrelation": float(rho), "n_values": int(count[j])}
        limits = {
            "mean": (abs(mean), NOISE_Z / np.sqrt(n) + NOISE_ROUNDING),
            "standard deviation - 1": (abs(std - 1), NOISE_Z / np.sqrt(2 * n) + NOISE_ROUNDING),
            "lag-1 autocorrelation": (abs(rho), NOISE_Z / np.sqrt(max(lag_count[j], 1.0)) + NOISE_ROUNDING),
        }
        for what, (value, limit) in limits.items():
            if value > limit:
                problems.add(
                    f"noise: observable {k!r}: (observed - trajectories) / sd has {what} {value:.4g}, above {limit:.4g}"
                )
    figures["noise"] = stats


def _state_irfs(spec: WorldSpec, group, indices: np.ndarray, problems: Problems, figures: dict) -> None:
    """State IRFs on the subset: dates in [1, T); linear worlds: irfs_state equals the steady-state irfs
    bit for bit; labels agree with the per-period arrays (zlb at_bound = binding[t-1], switching
    state_regime = regime[t])."""
    world = spec.world
    dates = read_subset(group, "state_dates", indices).astype(np.int64)
    rows = np.arange(len(indices))[:, None]
    stats = {"samples": int(len(indices)), "dates_outside": int(((dates < 1) | (dates >= spec.T)).sum())}
    if stats["dates_outside"]:
        problems.add(f"state IRFs: {stats['dates_outside']} state dates outside [1, T = {spec.T})")
        figures["state_irfs"] = stats
        return
    if world.linear:
        irfs = read_subset(group, "irfs", indices)
        state = read_subset(group, "irfs_state", indices)
        bad = (state != irfs[:, None]).reshape(len(indices), -1).any(axis=1)
        stats["linear_mismatches"] = int(bad.sum())
        if bad.any():
            problems.add(
                f"state IRFs: {int(bad.sum())} samples of a linear world whose irfs_state differs from irfs "
                f"(first: sample {int(indices[np.flatnonzero(bad)[0]])})"
            )
    for label, source, shift in (("at_bound", "binding", 1), ("state_regime", "regime", 0)):
        if label in group and source in group:
            expected = read_subset(group, source, indices)[rows, dates - shift]
            bad = read_subset(group, label, indices) != expected
            stats[f"{label}_mismatches"] = int(bad.sum())
            if bad.any():
                problems.add(f"state IRFs: {int(bad.sum())} {label} labels differ from {source} at the state dates")
    figures["state_irfs"] = stats


def check_identities(spec: WorldSpec, indices: np.ndarray | None = None, rows: int = READ_ROWS) -> CheckResult:
    """The world's exact identities (see the module docstring for which apply to which world)."""
    t0 = time.perf_counter()
    world, problems, figures = spec.world, Problems(), {}
    indices = subset_indices(spec) if indices is None else indices
    applied: list[str] = []
    try:
        group = spec.open()
        if world.linear and (not spec.burn_in or world.has_free_path):
            applied.append(
                "convolution identity on the re-simulated subset"
                + (" (from initial_state, after the burn-in)" if spec.burn_in else "")
            )
            _convolution(spec, group, indices, problems, figures)
        meta = {m.name for m in world.metadata_fields}
        if "binding" in meta and "r_ss" in world.parameter_names:
            applied.append("zero lower bound on every sample")
            _zero_lower_bound(spec, group, problems, figures, rows)
        if "regime" in meta:
            applied.append("regime labels in {0, 1} on every sample")
            _regimes(spec, group, problems, figures, rows)
        if spec.noise:
            applied.append("measurement noise of observed (zero, or mean 0, sd as recorded, uncorrelated in time)")
            _noise(spec, group, problems, figures, rows)
        if spec.irf_states:
            applied.append("state IRFs on the subset (dates, linear worlds' irfs_state = irfs, per-date labels)")
            _state_irfs(spec, group, indices, problems, figures)
    except Exception as exc:  # noqa: BLE001 - unreadable data is integrity's finding; here: cannot verify
        problems.add(f"identities could not be evaluated ({type(exc).__name__}: {exc})")
    if not applied and not problems:
        applied.append("none apply to this world")
    inputs = {
        "identities": applied,
        "subset_size": int(len(indices)) if world.linear else 0,
        "convolution_rtol": CONVOLUTION_RTOL,
        "bound_atol_float32_units": BOUND_ATOL_ULPS,
    }
    ok = "; ".join(applied) + ": all hold"
    return result(
        "identities.model", "identities", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0
    )
