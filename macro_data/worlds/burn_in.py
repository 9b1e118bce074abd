"""Burn-in: trajectories that start from the stationary distribution instead of the steady state.

With ``burn_in: B`` (a recipe setting; 0 by default) every sample is simulated for ``B + T`` periods
from the steady state and only the last ``T`` are stored::

    eps_full = [eps_burn[0..B-1], eps[0..T-1]]      eps_burn: the block's burn_in stream (5), not stored
    y[t] = y_full[B + t],  t = 0..T-1                 (trajectories, extras, simulated metadata alike)
    initial_state = state entering period B of the full path (the world's state variables)

Drawn metadata (switching's regime) runs through the burn-in as one chain of ``B + T`` periods from the
``metadata`` stream (:func:`macro_data.worlds.sampling.metadata_chains`); its last ``T`` periods are
stored. The world's own ``simulate`` computes the whole path, so every world (the nonlinear ones too)
burns in with its own dynamics and no new code per world. ``initial_state`` lets a reader check the
convolution identity of a linear world without the burn-in innovations::

    y[t] = sum_{h<=t} sum_j irfs[j, h] eps[t-h, j] + free_path(initial_state)[t]

with ``free_path`` the world's path under zero innovations from that state
(:meth:`macro_data.worlds.base.World.free_path`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from macro_data.worlds.base import Simulation, World

DEFINITION = (
    "burn_in B > 0: each sample is simulated for B + T periods from the steady state, the first B driven by "
    "innovations from the block's burn_in stream (purpose 5, standard normal, rounded to float32, not stored) and "
    "the last T by the stored shocks; only the last T periods are stored (t = 0 is period B of the full path). "
    "Drawn metadata (regimes) run through the burn-in as one chain of B + T periods from the metadata stream, the "
    "last T stored. initial_state[sample] is the state entering t = 0 (after the B burn-in periods), in the "
    "world's state variables (state_var)"
)


@dataclass
class BurnedIn:
    """A batch simulated through its burn-in, in float64.

    ``eps``, ``metadata`` and ``sim`` cover all ``B + T`` periods; :attr:`window` is the stored part and
    :attr:`initial_state` the state entering it."""

    B: int
    eps: np.ndarray  # (n, B + T, S) float64
    metadata: dict[str, np.ndarray]  # drawn metadata, (n, B + T)
    sim: Simulation  # float64, B + T periods
    initial_state: np.ndarray  # (n, len(state_variables)) float64

    @property
    def window(self) -> Simulation:
        """The stored periods ``B .. B + T - 1`` (float64 views)."""
        return self.sim.periods(self.B, self.sim.trajectories.shape[1])


def simulate(
    world: World,
    theta: np.ndarray,
    eps: np.ndarray,
    metadata: Mapping[str, np.ndarray],
    burn_eps: np.ndarray,
    burn_metadata: Mapping[str, np.ndarray],
) -> BurnedIn:
    """Simulate ``B`` burn-in periods and the stored ``T`` as one path (see the module).

    Parameters
    ----------
    world : World
        The world.
    theta : ndarray, shape (n, P)
        Parameter vectors.
    eps : ndarray, shape (n, T, S)
        The stored innovations.
    metadata : mapping of str to ndarray
        The stored drawn metadata, each ``(n, T)``.
    burn_eps : ndarray, shape (n, B, S)
        The burn-in innovations (:func:`macro_data.worlds.sampling.burn_in_shocks`), ``B >= 1``.
    burn_metadata : mapping of str to ndarray
        The drawn metadata's burn-in periods, each ``(n, B)``.

    Returns
    -------
    BurnedIn

    Raises
    ------
    WorldError
        Bad inputs, as :meth:`World.simulate` raises them.
    """
    B = burn_eps.shape[1]
    full_eps = np.concatenate([np.asarray(burn_eps, dtype=np.float64), np.asarray(eps, dtype=np.float64)], axis=1)
    full_meta = {k: np.concatenate([np.asarray(burn_metadata[k]), np.asarray(v)], axis=1) for k, v in metadata.items()}
    sim = world.simulate(theta, full_eps, full_meta, dtype=np.float64)
    # the state entering period B depends on periods 0..B-1 only: compute the path that far
    head = {k: v[:, : B + 1] for k, v in full_meta.items()}
    path = world._state_path(np.asarray(theta, dtype=np.float64), full_eps[:, : B + 1], head, sim.periods(0, B + 1))
    return BurnedIn(B, full_eps, full_meta, sim, path[:, B])
