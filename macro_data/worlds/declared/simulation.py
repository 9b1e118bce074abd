"""Trajectories and impulse responses of a solved declared model, batched over draws.

With the policy ``z[t] = P z_L[t-1] + Q eps[t]`` (:mod:`.solver`) and the observables
``y[t] = G0 z[t] + G1 z[t-1]`` (:mod:`.system`), the simulation state ``s[t]`` holds the variables
needed at ``t + 1`` (those the equations lag, and those the observables lag)::

    s[t] = Ks [s[t-1]; eps[t]],     e[t] = Ke [s[t-1]; eps[t]],     s[-1] = 0,

``Ks`` the policy rows of the state variables and ``Ke`` those of the other variables the
observables read at ``t`` (the *extra* rows). Each observable is then the short sum of its own
terms, ``coefficient x (s[t] or e[t] or s[t-1])``, in the order of :attr:`Layout.terms`.
IRFs are the same recursion from ``s[-1] = 0`` with a unit innovation at ``h = 0``, so the
convolution identity ``traj[t] = sum_h sum_j irfs[j, h] eps[t-h, j]`` holds to rounding.

The work follows the model's structure (:class:`Layout`): the state rows of the core (the
forward-looking part) use every column; the rows of exogenous variables (shock processes) only
their structural support, a few columns; observables only their own terms; and an IRF experiment
skips the exogenous states its shock cannot move (:func:`experiment_groups`). Layout: sample axis
last, matrix products summed by a fixed halving tree (:func:`sum_columns`) or term by term in a
fixed order, element-wise numpy only, so every sample's numbers are the same whatever the batch
or chunk it is computed in (the reproducibility contract of the bank).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from macro_data.worlds.linear_re import bmatmul

WORKING_SET = 1 << 17  # float64 elements of one step's product array: keeps the step in cache
MIN_CHUNK, MAX_CHUNK = 256, 2048  # samples per kernel pass (speed constants only)
PERIODS = 8  # periods per transposition between sample-first and sample-last layouts
CURRENT, LAGGED = 0, 1  # an observable term reads row ``position`` at t, or state ``position`` at t-1


@dataclass(frozen=True)
class Layout:
    """How one model's simulation is organised (fixed per model).

    ``state``: variables of ``s`` (the ``dense`` core rows first, then exogenous rows);
    ``extra``: other variables the observables read at ``t``; ``supports``: for each exogenous
    state row, the columns of ``[s[t-1]; eps[t]]`` it uses; ``terms``: for each observable, its
    terms ``(kind, position, coefficient column)`` (kind :data:`CURRENT`: row ``position`` of
    ``[s[t]; e[t]]``; :data:`LAGGED`: ``s[t-1][position]``).
    """

    state: tuple[int, ...]
    extra: tuple[int, ...]
    dense: int
    supports: tuple[tuple[int, ...], ...]
    terms: tuple[tuple[tuple[int, int, int], ...], ...]
    n_shocks: int

    @property
    def rows(self) -> tuple[int, ...]:
        return self.state + self.extra


def state_space(
    layout: Layout, P: np.ndarray, Q: np.ndarray, lagged: tuple[int, ...], coefficients: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(K, coefficients)`` of a batch: ``K (k, ns + ne, ns + S)`` with ``[s[t]; e[t]] = K [s[t-1]; eps[t]]``.

    Parameters
    ----------
    layout : Layout
        The model's layout.
    P, Q : ndarray, shapes (k, n, n_L) and (k, n, S)
        The policy; the columns of ``P`` are the variables ``lagged`` (a subset of ``layout.state``).
    coefficients : ndarray, shape (k, n_terms)
        The observables' term coefficients, in the order of ``layout.terms``' coefficient columns.
    """
    k, n, _ = P.shape
    ns = len(layout.state)
    Pfull = np.zeros((k, n, ns))  # z[t] = Pfull s[t-1] + Q eps[t]
    Pfull[:, :, [layout.state.index(v) for v in lagged]] = P
    rows = list(layout.rows)
    K = np.empty((k, len(rows), ns + Q.shape[2]))
    K[:, :, :ns] = Pfull[:, rows, :]
    K[:, :, ns:] = Q[:, rows, :]
    return K, np.asarray(coefficients, dtype=np.float64)


def sum_columns(prod: np.ndarray, out: np.ndarray) -> None:
    """``out = sum_c prod[..., c, :]`` (the second-to-last axis) by a halving tree fixed by the width
    alone, overwriting ``prod``: columns ``c`` and ``c + h`` are added, an odd last column is folded
    into column 0, and the last addition writes ``out``. The same tree is used wherever a product is
    summed, so a value does not depend on how many periods or samples were computed together."""
    w = prod.shape[-2]
    if w == 1:
        out[...] = prod[..., 0, :]
        return
    while w > 1:
        h = w // 2
        if h == 1:
            np.add(prod[..., 0, :], prod[..., 1, :], out=out)
            if w == 3:
                out += prod[..., 2, :]
            return
        np.add(prod[..., :h, :], prod[..., h : 2 * h, :], out=prod[..., :h, :])
        if w % 2:
            prod[..., 0, :] += prod[..., 2 * h, :]
        w = h


def chunk_size(rows: int, cols: int, depth: int = 1) -> int:
    """Samples per pass so one step's product ``(rows, cols, depth, m)`` stays cache-sized."""
    return int(np.clip(WORKING_SET // max(rows * cols * depth, 1), MIN_CHUNK, MAX_CHUNK))


def _sparse_row(out: np.ndarray, K_row: np.ndarray, support: tuple[int, ...], v: np.ndarray, tmp: np.ndarray) -> None:
    """``out = sum_{c in support} K_row[c] * v[c]``, term by term in the order of ``support``."""
    if not support:
        out[...] = 0.0
        return
    np.multiply(K_row[support[0]], v[support[0]], out=out)
    for c in support[1:]:
        np.multiply(K_row[c], v[c], out=tmp)
        out += tmp


def _extra_rows(Ke: np.ndarray, V: np.ndarray, out: np.ndarray) -> None:
    """``out[t] = Ke V[t]`` for all ``t`` (blocks of periods; the tree of :func:`sum_columns`)."""
    ne, cols, m = Ke.shape
    if ne == 0:
        return
    T = V.shape[0]
    block = max(1, 4 * WORKING_SET // max(ne * cols * m, 1))
    prod = np.empty((min(block, T), ne, cols, m))
    for t0 in range(0, T, block):
        t1 = min(t0 + block, T)
        p = prod[: t1 - t0]
        np.multiply(Ke[None], V[t0:t1, None], out=p)
        sum_columns(p, out[t0:t1])


def _observables(layout: Layout, coefs: np.ndarray, width: int, current, lagged, out: np.ndarray) -> None:
    """``out[:, r] = sum_terms coefficient * value`` for the first ``width`` observables; ``current(p)``
    and ``lagged(p)`` give the series (periods first, samples last) of row / state ``p``."""
    tmp = np.empty(out[:, 0].shape)
    for r in range(width):
        terms = layout.terms[r]
        if not terms:
            out[:, r] = 0.0
            continue
        for i, (kind, p, c) in enumerate(terms):
            value = current(p) if kind == CURRENT else lagged(p)
            np.multiply(coefs[c], value, out=out[:, r] if i == 0 else tmp)
            if i:
                out[:, r] += tmp


def simulate(
    layout: Layout,
    K: np.ndarray,
    coefs: np.ndarray,
    eps: np.ndarray,
    outputs: list[np.ndarray],
    initial: np.ndarray | None = None,
) -> None:
    """Observables from the steady state (or from ``initial``), written into ``outputs``.

    ``K (m, ns + ne, ns + S)`` and ``coefs (m, n_terms)`` (:func:`state_space`), ``eps (m, T, S)``
    (float32 or float64); ``outputs``: arrays ``(m, T, q_i)`` (float64, or float32: rounded once)
    filled with consecutive observables (canonical, then extras); ``initial (m, ns)``: the state
    ``s[-1]`` in the order of ``layout.state`` (``None``: zeros, the steady state).
    """
    m, T, S = eps.shape
    ns, dense = len(layout.state), layout.dense
    cols = ns + S
    Ks = np.ascontiguousarray(np.moveaxis(K, 0, -1))  # (rows, cols, m)
    c = np.ascontiguousarray(coefs.T)  # (n_terms, m)
    V = np.empty((T + 1, cols, m))  # V[t] = [s[t-1]; eps[t]]; V[T, :ns] = s[T-1]
    V[0, :ns] = 0.0 if initial is None else initial.T
    for t0 in range(0, T, PERIODS):  # transposed a few periods at a time: cache-friendly
        t1 = min(t0 + PERIODS, T)
        V[t0:t1, ns:] = eps[:, t0:t1].transpose(1, 2, 0)
    sparse = [(dense + i, np.ascontiguousarray(Ks[dense + i]), sup) for i, sup in enumerate(layout.supports)]
    Kd = Ks[:dense]
    prod = np.empty((dense, cols, m))
    tmp = np.empty(m)
    for t in range(T):
        v, s_next = V[t], V[t + 1]
        if dense:
            np.multiply(Kd, v[None], out=prod)
            sum_columns(prod, s_next[:dense])
        for row, K_row, sup in sparse:
            _sparse_row(s_next[row], K_row, sup, v, tmp)
    extra = np.empty((T, len(layout.extra), m))
    _extra_rows(Ks[ns:], V[:T], extra)
    width = sum(out.shape[2] for out in outputs)
    Y = np.empty((T, width, m))
    _observables(layout, c, width, lambda p: V[1:, p] if p < ns else extra[:, p - ns], lambda p: V[:T, p], Y)
    lo = 0
    for out in outputs:
        w = out.shape[2]
        for t0 in range(0, T, PERIODS):
            np.copyto(
                out[:, t0 : t0 + PERIODS], Y[t0 : t0 + PERIODS, lo : lo + w].transpose(2, 0, 1), casting="same_kind"
            )
        lo += w


GROUPING_GAIN = 0.6  # group IRF experiments only if that leaves at most this share of the products


def experiment_groups(layout: Layout) -> list[tuple[list[int], list[int]]]:
    """``(shocks, state columns)``: experiments grouped by the state entries they can move.

    An innovation in shock ``j`` moves the core states and only the exogenous states whose
    structural support contains ``j``; the others stay exactly zero, so their columns can be
    skipped. Separate groups cost more numpy calls, so they are used only when they save enough
    products (:data:`GROUPING_GAIN`); otherwise one group runs every experiment on every column.
    """
    ns, S = len(layout.state), layout.n_shocks
    groups: dict[tuple[int, ...], list[int]] = {}
    for j in range(S):
        active = tuple(range(layout.dense)) + tuple(
            layout.dense + i for i, sup in enumerate(layout.supports) if ns + j in sup
        )
        groups.setdefault(active, []).append(j)
    if sum(len(shocks) * len(active) for active, shocks in groups.items()) > GROUPING_GAIN * S * ns:
        return [(list(range(S)), list(range(ns)))]
    return [(shocks, list(active)) for active, shocks in groups.items()]


def impulse_responses(layout: Layout, K: np.ndarray, coefs: np.ndarray, H: int, outputs: list[np.ndarray]) -> None:
    """IRFs ``(m, S, H + 1, q_i)`` to a unit innovation in each shock at ``h = 0``, into ``outputs``.

    Experiments run side by side, grouped by the state entries they move (:func:`experiment_groups`):
    ``s[0] = Qs``, ``s[h] = Ps s[h-1]``; the extra rows are ``Ke[:, eps]`` at ``h = 0`` and
    ``Ke[:, s] s[h-1]`` after; then each observable's terms.
    """
    m = K.shape[0]
    S = layout.n_shocks
    ns, dense = len(layout.state), layout.dense
    ne = len(layout.extra)
    Ks = np.ascontiguousarray(np.moveaxis(K, 0, -1))  # (rows, cols, m)
    c = np.ascontiguousarray(coefs.T)
    buffer = np.zeros((H + 2, S, ns, m))  # buffer[h + 1] = s[h] for each experiment; buffer[0] = s[-1] = 0
    states, lagged_states = buffer[1:], buffer[:-1]  # s[h] and s[h-1], without a copy
    states[0] = np.moveaxis(Ks[:ns, ns:], 1, 0)  # s[0] = Qs
    extra = np.empty((H + 1, S, ne, m))  # the extra rows at h, per experiment
    if ne:
        extra[0] = np.moveaxis(Ks[ns:, ns:], 1, 0)  # Ke[:, eps]
    for shocks, active in experiment_groups(layout):
        J = len(shocks)
        block = np.empty((H + 1, J, len(active), m))  # the group's moving states, contiguous
        block[0] = states[0][shocks][:, active]
        position = {col: i for i, col in enumerate(active)}
        if active and H:
            Pd = np.ascontiguousarray(Ks[:dense][:, active])  # (dense, a, m)
            prod = np.empty((J, dense, len(active), m))
            sparse = []
            for i, sup in enumerate(layout.supports):
                if dense + i in position:
                    cols = tuple(position[x] for x in sup if x < ns and x in position)
                    sparse.append((position[dense + i], np.ascontiguousarray(Ks[dense + i][[a for a in active]]), cols))
            tmp = np.empty((J, m))
            for h in range(1, H + 1):
                prev, cur = block[h - 1], block[h]
                if dense:
                    np.multiply(Pd[None], prev[:, None], out=prod)
                    sum_columns(prod, cur[:, :dense])
                for row, K_row, sup in sparse:
                    if sup:
                        np.multiply(K_row[sup[0]], prev[:, sup[0]], out=cur[:, row])
                        for x in sup[1:]:
                            np.multiply(K_row[x], prev[:, x], out=tmp)
                            cur[:, row] += tmp
                    else:
                        cur[:, row] = 0.0
        elif H:
            block[1:] = 0.0
        for g, j in enumerate(shocks):
            states[:, j][:, active] = block[:, g]
        if ne and H:
            if active:
                part = np.empty((H, J, ne, m))
                _extra_rows(
                    np.ascontiguousarray(Ks[ns:][:, active]),
                    block[:H].reshape(H * J, len(active), m),
                    part.reshape(H * J, ne, m),
                )
                extra[1:, shocks] = part
            else:
                extra[1:, shocks] = 0.0
    width = sum(out.shape[3] for out in outputs)
    Y = np.empty((H + 1, S, width, m))
    flat = Y.reshape((H + 1) * S, width, m)
    _observables(
        layout,
        c,
        width,
        lambda p: (states[:, :, p] if p < ns else extra[:, :, p - ns]).reshape((H + 1) * S, m),
        lambda p: lagged_states[:, :, p].reshape((H + 1) * S, m),
        flat,
    )
    lo = 0
    for out in outputs:
        w = out.shape[3]
        np.copyto(out, Y[:, :, lo : lo + w].transpose(3, 1, 0, 2), casting="same_kind")
        lo += w


def variable_responses(P: np.ndarray, Q: np.ndarray, lagged: tuple[int, ...], H: int) -> np.ndarray:
    """Responses of every variable, ``(k, S, H + 1, n)``: ``z[0] = Q[:, j]``, ``z[h] = P z_L[h-1]``."""
    k, n, S = Q.shape
    out = np.empty((k, S, H + 1, n))
    z = Q  # (k, n, S): column j is experiment j
    for h in range(H + 1):
        out[:, :, h, :] = np.swapaxes(z, 1, 2)
        if h < H:
            z = bmatmul(P, z[:, list(lagged), :]) if lagged else np.zeros_like(Q)
    return out


__all__ = [
    "CURRENT",
    "LAGGED",
    "Layout",
    "chunk_size",
    "experiment_groups",
    "impulse_responses",
    "simulate",
    "state_space",
    "sum_columns",
    "variable_responses",
]
