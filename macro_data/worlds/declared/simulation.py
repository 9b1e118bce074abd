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
    """``out = sum_c prod[:, c]`` by a halving tree fixed by the width alone, overwriting ``prod``."""
    w = prod.shape[1]
    while w > 1:
        h = w // 2
        np.add(prod[:, :h], prod[:, h:2 * h], out=prod[:, :h])
        if w % 2:
            prod[:, 0] += prod[:, 2 * h]
        w = h
    out[...] = prod[:, 0]


def chunk_size(rows: int, cols: int, depth: int = 1) -> int:
    """Samples per pass so one step's product ``(rows, cols, depth, m)`` stays cache-sized."""
    return int(np.clip(WORKING_SET // max(rows * cols * depth, 1), MIN_CHUNK, MAX_CHUNK))


def simulate(K: np.ndarray, eps: np.ndarray, q: int, outputs: list[np.ndarray]) -> None:
    """Observables from the steady state, written into ``outputs``.

    ``K (m, q + ns, ns + S)`` (:func:`state_space`) and ``eps (m, T, S)`` (float32 or float64);
    ``outputs``: arrays ``(m, T, q_i)`` (float64 or float32, rounded once) whose widths add up to
    ``q``, filled with consecutive observables (canonical, then extras).
    """
    m, T, S = eps.shape
    rows, cols = K.shape[1], K.shape[2]
    ns = cols - S
    Ks = np.ascontiguousarray(np.moveaxis(K, 0, -1))  # (rows, cols, m)
    V = np.empty((T, cols, m))  # V[t] = [s[t-1]; eps[t]]
    V[0, :ns] = 0.0
    V[:, ns:] = np.moveaxis(eps, 0, -1)  # (T, S, m), float64
    Y = np.empty((T, q, m))
    prod = np.empty((rows, cols, m))
    acc = np.empty((rows, m))
    for t in range(T):
        np.multiply(Ks, V[t][None], out=prod)
        sum_columns(prod, acc)
        Y[t] = acc[:q]
        if t + 1 < T:
            V[t + 1, :ns] = acc[q:]
    lo = 0
    for out in outputs:
        width = out.shape[2]
        np.copyto(out, Y[:, lo:lo + width].transpose(2, 0, 1), casting="same_kind")
        lo += width


def impulse_responses(K: np.ndarray, S: int, q: int, H: int, outputs: list[np.ndarray]) -> None:
    """IRFs ``(m, S, H + 1, q_i)`` to a unit innovation in each shock at ``h = 0``, into ``outputs``.

    All ``S`` experiments run side by side: state ``(ns, S, m)``.
    """
    m, rows, cols = K.shape
    ns = cols - S
    Ks = np.ascontiguousarray(np.moveaxis(K, 0, -1))  # (rows, cols, m)
    Y = np.empty((H + 1, q, S, m))
    Y[0] = Ks[:q, ns:]  # y[0] = Js
    s = np.ascontiguousarray(Ks[q:, ns:])  # s[0] = Qs, (ns, S, m)
    M = np.ascontiguousarray(Ks[:, :ns, None, :])  # (rows, ns, 1, m)
    prod = np.empty((rows, ns, S, m))
    acc = np.empty((rows, S, m))
    for h in range(1, H + 1):
        if ns:
            np.multiply(M, s[None], out=prod)
            sum_columns(prod, acc)
        else:
            acc[...] = 0.0
        Y[h] = acc[:q]
        s = acc[q:].copy()
    lo = 0
    for out in outputs:
        width = out.shape[3]
        np.copyto(out, Y[:, lo:lo + width].transpose(3, 2, 0, 1), casting="same_kind")
        lo += width


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
