"""State-dependent impulse responses: responses from the state a sample's history leads to.

Definition (``docs/worlds.md``, "State-dependent IRFs"): for a date ``t`` in ``[1, T)``, from the state
entering period ``t`` (everything up to ``t - 1``, as the stored history ending at ``t - 1`` shows it;
the stored innovation of period ``t`` is not used), the response to shock ``j`` is the path with a
``+1 sd`` innovation to ``j`` at ``t`` and zero innovations afterwards, minus the path with zero
innovations from ``t`` on, at ``t .. t + H``::

    irfs_state[k, j, h] = y(eps[0..t-1], e_j, 0, ..)[t + h] - y(eps[0..t-1], 0, 0, ..)[t + h]

The state entering ``t`` is a deterministic function of theta and the stored history, so the generic
method (:func:`resimulated`) re-simulates with the world's own ``simulate`` on stacked innovation
sequences, batched over (sample, date, experiment): the stored prefix ``eps[0..t-1]``, then the
impulse (or zeros), then zeros. Sequences are left-padded with zero innovations to a length fixed by
``t`` alone (a multiple of :data:`PAD`): every world starts from its steady state, which zero
innovations leave exactly unchanged, so padding changes no number and a sample's results never depend
on the batch. Linear worlds use the closed form (the steady-state IRFs: a linear model's response does
not depend on the state), switching its exact conditional expectation, zlb the generic method (OccBin
from the reached state).

Dates come from the ``state_dates`` stream of each block (:func:`date_uniforms`), ``K`` uniforms per
sample: ``t = 1 + floor(u (T - 1))``. A world may name dates to oversample (:meth:`World.focus_dates`,
zlb: near the bound): then the first ``K // 2`` dates of a sample that has any such date are drawn
uniformly among them, ``t = focus[floor(u n_focus)]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from macro_data.errors import WorldError
from macro_data.worlds.base import World
from macro_data.worlds.sampling import BLOCK_SIZE, per_block

PAD = 32  # sequence lengths are multiples of this beyond t (speed only: results do not depend on it)
MAX_SEQUENCE_VALUES = 1 << 22  # float64 innovations per re-simulation call (memory bound, speed only)

DEFINITION = (
    "irfs_state[sample, k, j, h] = y_shocked[t + h] - y_baseline[t + h] at t = state_dates[sample, k]: both paths "
    "start from the state entering period t (the stored history eps[0..t-1]; the stored innovation of period t is "
    "not used), y_shocked with a +1 sd innovation j at t and zero innovations afterwards, y_baseline with zero "
    "innovations from t on (zlb: OccBin with the bound from that state; switching: the exact expectation over "
    "future regime paths given the regime in force at t, state_regime); states[sample, k] is the state entering t"
)

DATE_RULE = (
    "K dates per sample from the block's state_dates stream (purpose 6): u = random((256, K)) per block of 256 "
    "samples, t = 1 + floor(u (T - 1)), uniform in [1, T), with replacement, in drawn order; a world that "
    "oversamples (zlb: dates t with shadow-rate level r_ss + shadow_rate[t-1] < 0.5 annualized percent, i.e. the "
    "state at or near the bound) draws its first K // 2 dates uniformly among those dates, "
    "t = focus[floor(u n_focus)], when the sample has any"
)


def method(world: World) -> str:
    """How a world's state IRFs are computed (for the manifest)."""
    if type(world)._state_irfs is not World._state_irfs:
        return "the world's own exact computation (switching: expectation over regime paths given the regime at t)"
    if world.linear:
        return "closed form: the steady-state IRFs (a linear model's response does not depend on the state)"
    return "re-simulation of the stored history with the world's simulate (zlb: OccBin from the reached state)"


def date_uniforms(world: World, seed: int, start: int, stop: int, K: int) -> np.ndarray:
    """``(stop - start, K)`` uniforms on [0, 1) from the blocks' ``state_dates`` streams
    (``random((BLOCK_SIZE, K))`` per block), so dates never depend on batching."""
    return per_block(world, seed, start, stop, "state_dates", lambda rng: rng.random((BLOCK_SIZE, K)))


def dates_from_uniforms(u: np.ndarray, T: int, focus: np.ndarray | None = None) -> np.ndarray:
    """State dates ``(n, K)`` int32 in ``[1, T)`` from uniforms ``u (n, K)``.

    ``focus (n, T)`` bool (optional): dates to oversample; the first ``K // 2`` dates of a sample with
    at least one focus date in ``[1, T)`` are drawn uniformly among its focus dates."""
    if T < 2:
        raise WorldError(f"state IRFs need T >= 2 (dates in [1, T)); got T={T}")
    n, K = u.shape
    dates = 1 + np.minimum(np.floor(u * (T - 1)).astype(np.int64), T - 2)
    if focus is not None and K >= 2:
        f = np.asarray(focus, dtype=bool).copy()
        f[:, 0] = False
        count = f.sum(axis=1)
        half = K // 2
        m = np.minimum(np.floor(u[:, :half] * count[:, None]).astype(np.int64), np.maximum(count - 1, 0)[:, None])
        cs = np.cumsum(f, axis=1)  # (n, T)
        picked = np.argmax(cs[:, None, :] > m[:, :, None], axis=2)  # the m-th focus date (0-based)
        has = count > 0
        dates[has, :half] = picked[has]
    return dates.astype(np.int32)


def resimulated(
    world: World, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray], dates: np.ndarray, H: int
) -> np.ndarray:
    """State IRFs ``(n, K, S, H + 1, 3)`` float64 by re-simulating with ``world.simulate`` (see the module).

    Each (sample, date) runs ``S + 1`` experiments (baseline and one impulse per shock) on sequences
    ``[zeros(b - t), eps[0..t-1], impulse or 0, zeros(H)]`` with ``b = PAD ceil(t / PAD)``, grouped by
    ``b`` and cut into calls of at most :data:`MAX_SEQUENCE_VALUES` innovations."""
    if any(f.stage == "draws" for f in world.metadata_fields):
        raise WorldError(
            f"world {world.name!r} has drawn metadata; the generic state-IRF method cannot pad it "
            "(the world must implement its own _state_irfs)"
        )
    theta = np.asarray(theta, dtype=np.float64)
    n, T, S = eps.shape
    K = dates.shape[1]
    out = np.empty((n, K, S, H + 1, 3))
    rows, cols = np.divmod(np.arange(n * K), K)
    t_all = dates.reshape(-1).astype(np.int64)
    b_all = -(-t_all // PAD) * PAD
    impulses = np.zeros((S + 1, S))
    impulses[1:] = np.eye(S)
    for b in np.unique(b_all):
        pairs = np.flatnonzero(b_all == b)
        L = int(b) + H + 1
        per_call = max(1, MAX_SEQUENCE_VALUES // (L * S * (S + 1)))
        for lo in range(0, pairs.size, per_call):
            sel = pairs[lo : lo + per_call]
            m = sel.size
            i, t = rows[sel], t_all[sel]
            seq = np.zeros((m, S + 1, L, S))
            # stored prefix eps[i, 0..t-1] placed at b - t .. b - 1 (left padding: zeros)
            lag = np.arange(int(b))[None, :] - (int(b) - t)[:, None]  # source period of each slot, < 0: padding
            valid = lag >= 0
            src = eps[i[:, None], np.where(valid, lag, 0)]  # (m, b, S)
            seq[:, :, : int(b)] = np.where(valid[:, :, None], src, 0.0)[:, None]
            seq[:, :, int(b)] = impulses[None]
            th = np.repeat(theta[i], S + 1, axis=0)
            sim = world.simulate(th, seq.reshape(m * (S + 1), L, S), dtype=np.float64)
            y = sim.trajectories.reshape(m, S + 1, L, 3)[:, :, int(b) :]
            out[i, cols[sel]] = y[:, 1:] - y[:, :1]
    return out


def compute(world: World, theta, eps, metadata, sim, dates: np.ndarray, H: int) -> np.ndarray:
    """State IRFs ``(n, K, S, H + 1, 3)`` float64: the world's own method, else the closed form of a linear
    world (its steady-state IRFs), else :func:`resimulated`."""
    own = world._state_irfs(theta, eps, metadata, sim, dates, H)
    if own is not None:
        return np.asarray(own)
    if world.linear:
        irfs = world._irfs(theta, H)
        return np.broadcast_to(irfs[:, None], (irfs.shape[0], dates.shape[1], *irfs.shape[1:]))
    return resimulated(world, theta, eps, metadata, dates, H)


def gather(path: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """``path (n, T, ...)`` at ``dates (n, K)`` -> ``(n, K, ...)``."""
    return path[np.arange(path.shape[0])[:, None], dates]


def lagged(x: np.ndarray) -> np.ndarray:
    """``x (n, T, ...)`` shifted one period later along time, zeros first: row ``t`` holds ``x[t - 1]``."""
    out = np.zeros_like(x)
    out[:, 1:] = x[:, :-1]
    return out


def state_arrays(
    world: World,
    theta: np.ndarray,
    eps: np.ndarray,
    metadata: Mapping[str, np.ndarray],
    sim,
    uniforms: np.ndarray,
    H: int,
    burn_in: int = 0,
) -> dict[str, np.ndarray]:
    """Everything stored for the state IRFs of a batch, from its draws, its float64 simulation ``sim``
    and its date uniforms ``(n, K)``: ``state_dates`` int32, ``irfs_state`` and ``states`` float64,
    and the world's :attr:`World.state_labels`.

    ``burn_in`` ``B > 0``: ``eps``, ``metadata`` and ``sim`` cover the ``B`` burn-in periods and the stored
    ``T`` (:mod:`macro_data.worlds.burn_in`); dates are drawn in ``[1, T)`` of the stored axis as without
    burn-in and every state is the full path's at ``B + t``, history through the burn-in included."""
    theta = np.asarray(theta, dtype=np.float64)
    eps = np.asarray(eps, dtype=np.float64)
    T = eps.shape[1] - burn_in
    focus = world.focus_dates(theta, sim)
    dates = dates_from_uniforms(uniforms, T, None if focus is None else focus[:, burn_in:])
    full = dates + np.int32(burn_in)
    out = {
        "state_dates": dates,
        "irfs_state": compute(world, theta, eps, metadata, sim, full, H),
        "states": gather(world._state_path(theta, eps, metadata, sim), full),
    }
    labels = world.label_states(theta, metadata, sim, full)
    for f in world.state_labels:
        out[f.name] = np.asarray(labels[f.name]).astype(f.dtype)
    return out
