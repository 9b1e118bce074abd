"""An independent reference solver for the tests: Klein's QZ method, one draw at a time.

It shares nothing with :mod:`macro_data.worlds.declared.solver` (no static elimination, no
reduced pencil, no sign function): the model ``A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0``
is stacked as ``X[t] = [z[t-1]; z[t]]`` (all ``n`` lagged values predetermined, all ``n`` current
values jumps)::

    [[I, 0], [0, A]] E_t X[t+1] = [[0, I], [-C, -B]] X[t]

and solved by scipy's ordered generalized Schur decomposition (stable roots first). The
predetermined block's stable subspace gives ``z[t] = F z[t-1]``; the impact follows from
``(A F + B) Q = -D``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def klein(A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray):
    """``((F, Q) or None, root moduli)`` for one draw; ``None`` unless exactly ``n`` roots are stable."""
    n = B.shape[0]
    I, Z = np.eye(n), np.zeros((n, n))
    a = np.block([[I, Z], [Z, A]])
    b = np.block([[Z, I], [-C, -B]])
    # det(a - lambda b) = 0 has lambda = 1/root: 'ouc' puts the stable roots first.
    s, t, alpha, beta, q, z = scipy.linalg.ordqz(a, b, sort="ouc", output="complex")
    with np.errstate(divide="ignore", invalid="ignore"):
        roots = np.abs(beta) / np.abs(alpha)
    if int(np.sum(np.abs(beta) < np.abs(alpha))) != n:
        return None, roots
    z11, z21 = z[:n, :n], z[n:, :n]
    if np.linalg.cond(z11) > 1e12:
        return None, roots
    F = np.real(z21 @ np.linalg.inv(z11))
    M = A @ F + B
    if np.linalg.cond(M) > 1e12:
        return None, roots
    return (F, -np.linalg.solve(M, D)), roots
