"""Trajectories and impulse responses of a solved declared model, batched over draws.

With the policy ``z[t] = P z_L[t-1] + Q eps[t]`` (:mod:`.solver`) and observables
``y[t] = G0 z[t] + G1 z[t-1]`` (:mod:`.system`), the simulation state ``s[t]`` holds the variables
needed at ``t + 1``: those the equations lag, plus those the observables lag. Then

    s[t] = Ps s[t-1] + Qs eps[t],      y[t] = Hs s[t-1] + Js eps[t],      s[-1] = 0,

with ``Ps``, ``Qs`` the rows of ``P``, ``Q`` for the state variables, ``Hs = G0 P + G1`` and
``Js = G0 Q`` (:func:`state_space`). Both recursions are one matrix ``K = [[Hs, Js], [Ps, Qs]]``
applied to ``[s[t-1]; eps[t]]``. IRFs are the same recursion from ``s[-1] = 0`` with a unit
innovation at ``h = 0``: ``y[0] = Js[:, j]``, ``y[h] = Hs Ps^(h-1) Qs[:, j]``, so the convolution
identity ``traj[t] = sum_h sum_j irfs[j, h] eps[t-h, j]`` holds to rounding.

Layout: the kernels keep the sample axis last and sum matrix products by a fixed halving tree
over columns (:func:`sum_columns`), element-wise numpy only, so every sample's numbers are the
same whatever the batch or chunk it is computed in (the reproducibility contract of the bank).
"""

from __future__ import annotations

import numpy as np

from macro_data.worlds.linear_re import bmatmul

WORKING_SET = 1 << 17  # float64 elements of one step's product array: keeps the step in cache
MIN_CHUNK, MAX_CHUNK = 256, 2048  # samples per kernel pass (speed constants only)
PERIODS = 8  # periods per transposition between sample-first and sample-last layouts


def state_space(P: np.ndarray, Q: np.ndarray, G0: np.ndarray, G1: np.ndarray, lagged: tuple[int, ...],
                state: tuple[int, ...]) -> np.ndarray:
    """``K (k, q + ns, ns + S)`` with ``[y[t]; s[t]] = K [s[t-1]; eps[t]]``.

    Parameters
    ----------
    P, Q : ndarray, shapes (k, n, n_L) and (k, n, S)
        The policy; the columns of ``P`` are the variables ``lagged``.
    G0, G1 : ndarray, shape (k, q, n)
        Observables on current and lagged variables.
    lagged, state : tuple of int
        Variable indices of the columns of ``P`` and of the simulation state (a superset).
    """
    k, n, _ = P.shape
    S, q, ns = Q.shape[2], G0.shape[1], len(state)
    cols = [state.index(v) for v in lagged]
    Pfull = np.zeros((k, n, ns))  # z[t] = Pfull s[t-1] + Q eps[t]
    Pfull[:, :, cols] = P
    K = np.empty((k, q + ns, ns + S))
    K[:, :q, :ns] = bmatmul(G0, Pfull) + G1[:, :, list(state)]
    K[:, :q, ns:] = bmatmul(G0, Q)
    K[:, q:, :ns] = Pfull[:, list(state), :]
    K[:, q:, ns:] = Q[:, list(state), :]
    return K


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
        np.add(prod[..., :h, :], prod[..., h:2 * h, :], out=prod[..., :h, :])
        if w % 2:
            prod[..., 0, :] += prod[..., 2 * h, :]
        w = h


def chunk_size(rows: int, cols: int, depth: int = 1) -> int:
    """Samples per pass so one step's product ``(rows, cols, depth, m)`` stays cache-sized."""
    return int(np.clip(WORKING_SET // max(rows * cols * depth, 1), MIN_CHUNK, MAX_CHUNK))


def simulate(K: np.ndarray, eps: np.ndarray, q: int, outputs: list[np.ndarray]) -> None:
    """Observables from the steady state, written into ``outputs``.

    ``K (m, q + ns, ns + S)`` (:func:`state_space`) and ``eps (m, T, S)`` (float32 or float64);
    ``outputs``: arrays ``(m, T, q_i)`` (float64 or float32, rounded once) whose widths add up to
    at most ``q``, filled with consecutive observables (canonical, then extras).

    The state recursion runs period by period on the state rows of ``K`` only; the observables,
    ``y[t] = K_y [s[t-1]; eps[t]]``, are then computed for blocks of periods at once.
    """
    m, T, S = eps.shape
    rows, cols = K.shape[1], K.shape[2]
    ns = cols - S
    Ks = np.ascontiguousarray(np.moveaxis(K, 0, -1))  # (rows, cols, m)
    Kx, Ky = Ks[q:], Ks[:q]
    V = np.empty((T, cols, m))  # V[t] = [s[t-1]; eps[t]]
    V[0, :ns] = 0.0
    for t0 in range(0, T, PERIODS):  # transposed a few periods at a time: cache-friendly
        V[t0:t0 + PERIODS, ns:] = eps[:, t0:t0 + PERIODS].transpose(1, 2, 0)
    if ns:
        prod = np.empty((ns, cols, m))
        for t in range(T - 1):
            np.multiply(Kx, V[t][None], out=prod)
            sum_columns(prod, V[t + 1, :ns])
    width = sum(out.shape[2] for out in outputs)
    block = max(1, 4 * WORKING_SET // max(width * cols * m, 1))  # periods per observation pass
    Y = np.empty((T, width, m))
    prod = np.empty((block, width, cols, m))
    for t0 in range(0, T, block):
        t1 = min(t0 + block, T)
        p = prod[: t1 - t0]
        np.multiply(Ky[None, :width], V[t0:t1, None], out=p)
        sum_columns(p, Y[t0:t1])
    lo = 0
    for out in outputs:
        w = out.shape[2]
        for t0 in range(0, T, PERIODS):
            np.copyto(out[:, t0:t0 + PERIODS], Y[t0:t0 + PERIODS, lo:lo + w].transpose(2, 0, 1), casting="same_kind")
        lo += w


def impulse_responses(K: np.ndarray, S: int, q: int, H: int, outputs: list[np.ndarray]) -> None:
    """IRFs ``(m, S, H + 1, q_i)`` to a unit innovation in each shock at ``h = 0``, into ``outputs``.

    All ``S`` experiments run side by side: state ``(S, ns, m)``, ``s[0] = Qs``,
    ``s[h] = Ps s[h-1]``; then ``y[0] = Js`` and ``y[h] = Hs s[h-1]``.
    """
    m, rows, cols = K.shape
    ns = cols - S
    Ks = np.ascontiguousarray(np.moveaxis(K, 0, -1))  # (rows, cols, m)
    width = sum(out.shape[3] for out in outputs)
    Y = np.empty((H + 1, width, S, m))
    Y[0] = Ks[:width, ns:]  # y[0] = Js
    if ns and H:
        states = np.empty((H, S, ns, m))  # states[h] = s[h] for h = 0 .. H-1
        states[0] = np.moveaxis(Ks[q:, ns:], 1, 0)  # s[0] = Qs
        Ps = np.ascontiguousarray(Ks[q:, :ns])  # (ns, ns, m)
        prod = np.empty((S, ns, ns, m))
        for h in range(1, H):
            np.multiply(Ps[None], states[h - 1][:, None], out=prod)
            sum_columns(prod, states[h])
        Hs = Ks[:width, :ns]  # (width, ns, m)
        block = max(1, 4 * WORKING_SET // max(S * width * ns * m, 1))
        prod = np.empty((block, S, width, ns, m))
        for h0 in range(0, H, block):
            h1 = min(h0 + block, H)
            p = prod[: h1 - h0]
            np.multiply(Hs[None, None], states[h0:h1, :, None], out=p)
            sum_columns(p, Y[h0 + 1:h1 + 1].transpose(0, 2, 1, 3))
    elif H:
        Y[1:] = 0.0
    lo = 0
    for out in outputs:
        w = out.shape[3]
        np.copyto(out, Y[:, lo:lo + w].transpose(3, 2, 0, 1), casting="same_kind")
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


__all__ = ["chunk_size", "impulse_responses", "simulate", "state_space", "sum_columns", "variable_responses"]
