"""Output statistics stored with the data: train-split moments, and the normalizers built from them.

The ``world_stats`` stage of the build writes, per world, the mean and standard deviation over the
**train split** of every float array (manifest ``worlds.<w>.train_stats``; stored as
``moments_<array> (moment, ...)`` with ``moment = (mean, sd)``, float32):

* ``theta``: per parameter, derived columns included (pooled over samples);
* ``trajectories`` (and ``extras``): per observable, pooled over samples and periods;
* ``shocks``: per shock, pooled over samples and periods;
* ``irfs``: per (shock, horizon, observable), pooled over samples.

Means and standard deviations (``ddof = 1``) are accumulated in float64 and stored as float32.

Standardization rule: ``z = (x - mean) / scale`` with ``scale = sd`` where ``sd > 0``, and ``scale = 1``
where ``sd == 0`` (a constant column, e.g. zero padding of a parameter matrix or an impulse
response that is zero by construction): the map then only shifts. The inverse is
``x = z * scale + mean``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from macro_data.read._args import known
from macro_data.read.errors import ReadArgumentError

STATS_KEY = "train_stats"  # the manifest's field, per world


def scale_of(sd: np.ndarray) -> np.ndarray:
    """The divisor of the standardization: ``sd`` where positive, else 1 (a constant column only shifts).

    Parameters
    ----------
    sd : numpy.ndarray
        Standard deviations.

    Returns
    -------
    numpy.ndarray
        The scale, float64, same shape.
    """
    sd = np.asarray(sd, dtype=np.float64)
    return np.where(sd > 0, sd, 1.0)


@dataclass(frozen=True)
class Moments:
    """Mean and standard deviation of one array over the train split (float64, the stored float32 values)."""

    array: str
    dims: tuple[str, ...]  # the dimensions kept (the stored array's dimensions after ``moment``)
    pooled_over: tuple[str, ...]
    count: int  # values pooled per entry
    mean: np.ndarray
    sd: np.ndarray

    @property
    def scale(self) -> np.ndarray:
        return scale_of(self.sd)


class WorldStats:
    """The train-split moments of one world, as stored (see the module docstring).

    ``stats["irfs"].mean`` has shape ``(S, H + 1, 3)``, ``stats["trajectories"].sd`` shape ``(3,)``,
    ``stats["theta"].mean`` shape ``(P,)``; :meth:`as_dict` gives them as JSON.

    Parameters
    ----------
    world : str
        The world's id.
    entry : Mapping
        The world's ``train_stats`` entry of the manifest.
    stored : Mapping[str, numpy.ndarray]
        Per array, the stored statistics (mean and sd stacked on the first axis).
    """

    def __init__(self, world: str, entry: Mapping, stored: Mapping[str, np.ndarray]):
        self.world = world
        self.split = str(entry["split"])
        self.n_samples = int(entry["n_samples"])
        self.sha256 = str(entry["sha256"])
        self.moments: dict[str, Moments] = {}
        for name, spec in entry["arrays"].items():
            values = np.asarray(stored[name], dtype=np.float64)
            self.moments[name] = Moments(
                name,
                tuple(spec["dimension_names"][1:]),
                tuple(spec["pooled_over"]),
                int(spec["count"]),
                values[0],
                values[1],
            )

    def __getitem__(self, array: str) -> Moments:
        if not isinstance(array, str) or array not in self.moments:
            raise ReadArgumentError(
                f"world {self.world!r}: no statistics for array {array!r}; stored: {known(self.moments)}"
            )
        return self.moments[array]

    def __contains__(self, array: object) -> bool:
        return array in self.moments

    def __repr__(self) -> str:
        return f"<WorldStats {self.world}: {self.split} split, {self.n_samples} samples, {list(self.moments)}>"

    def as_dict(self) -> dict:
        """JSON-ready: per array its dimensions, pooling, count, mean and sd (nested lists).

        Returns
        -------
        dict
        """
        return {
            "world": self.world,
            "split": self.split,
            "n_samples": self.n_samples,
            "sha256": self.sha256,
            "arrays": {
                k: {
                    "dims": list(m.dims),
                    "pooled_over": list(m.pooled_over),
                    "count": m.count,
                    "mean": m.mean.tolist(),
                    "sd": m.sd.tolist(),
                }
                for k, m in self.moments.items()
            },
        }


class OutputNormalizer:
    """Standardizes one world's outputs with its train-split statistics (float32 in, float32 out).

    * IRFs per (shock, horizon, observable): ``(irf - mean[s, h, o]) / scale[s, h, o]``;
    * history (trajectories) per observable, pooled over periods;
    * innovations (``eps_sequence``, the ``shocks`` array) per shock, pooled over periods.

    :meth:`denormalize_irf` is the inverse for IRFs (natural units: those of ``irfs``, see the
    manifest's observables).

    Parameters
    ----------
    stats : WorldStats
        The world's stored train-split statistics.
    """

    def __init__(self, stats: WorldStats):
        self.world = stats.world
        self.stats = stats
        irf, traj, eps = stats["irfs"], stats["trajectories"], stats["shocks"]
        self.irf_mean = irf.mean.astype(np.float32)
        self.irf_scale = irf.scale.astype(np.float32)
        self.history_mean = traj.mean.astype(np.float32)
        self.history_scale = traj.scale.astype(np.float32)
        self.eps_mean = eps.mean.astype(np.float32)
        self.eps_scale = eps.scale.astype(np.float32)

    @staticmethod
    def _check(x: np.ndarray, tail: tuple[int, ...], what: str, world: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < len(tail) or x.shape[x.ndim - len(tail) :] != tail:
            raise ReadArgumentError(f"world {world!r}: {what} must end with shape {tail}; got {x.shape}")
        return x

    def normalize_irf(self, irf: np.ndarray) -> np.ndarray:
        """``(irf - mean) / scale`` over the trailing ``(S, H + 1, 3)`` axes.

        Parameters
        ----------
        irf : numpy.ndarray
            IRFs, ``(..., S, H + 1, 3)``.

        Returns
        -------
        numpy.ndarray
            Normalized, float32, same shape.
        """
        x = self._check(irf, self.irf_mean.shape, "irf", self.world)
        return ((x - self.irf_mean) / self.irf_scale).astype(np.float32, copy=False)

    def denormalize_irf(self, z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize_irf`: ``z * scale + mean`` (natural units).

        Parameters
        ----------
        z : numpy.ndarray
            Normalized IRFs, ``(..., S, H + 1, 3)``.

        Returns
        -------
        numpy.ndarray
            IRFs in natural units, float32, same shape.
        """
        x = self._check(z, self.irf_mean.shape, "irf", self.world)
        return (x * self.irf_scale + self.irf_mean).astype(np.float32, copy=False)

    def normalize_history(self, y: np.ndarray) -> np.ndarray:
        """``(y - mean) / scale`` per observable.

        Parameters
        ----------
        y : numpy.ndarray
            A history (trajectories), ``(..., 3)``.

        Returns
        -------
        numpy.ndarray
            Normalized, float32, same shape.
        """
        x = self._check(y, self.history_mean.shape, "history", self.world)
        return ((x - self.history_mean) / self.history_scale).astype(np.float32, copy=False)

    def denormalize_history(self, z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize_history`.

        Parameters
        ----------
        z : numpy.ndarray
            A normalized history, ``(..., 3)``.

        Returns
        -------
        numpy.ndarray
            The history in natural units, float32, same shape.
        """
        x = self._check(z, self.history_mean.shape, "history", self.world)
        return (x * self.history_scale + self.history_mean).astype(np.float32, copy=False)

    def normalize_eps(self, eps: np.ndarray) -> np.ndarray:
        """``(eps - mean) / scale`` per shock.

        Parameters
        ----------
        eps : numpy.ndarray
            Innovations (``eps_sequence``), ``(..., S)``.

        Returns
        -------
        numpy.ndarray
            Normalized, float32, same shape.
        """
        x = self._check(eps, self.eps_mean.shape, "eps_sequence", self.world)
        return ((x - self.eps_mean) / self.eps_scale).astype(np.float32, copy=False)

    def as_dict(self) -> dict:
        """JSON-ready description of the map, to store next to a trained model.

        Returns
        -------
        dict
        """
        return {
            "world": self.world,
            "rule": "z = (x - mean) / scale, scale = sd where sd > 0 else 1; inverse x = z * scale + mean",
            "split": self.stats.split,
            "irf": {"mean": self.irf_mean.tolist(), "scale": self.irf_scale.tolist()},
            "history": {"mean": self.history_mean.tolist(), "scale": self.history_scale.tolist()},
            "eps_sequence": {"mean": self.eps_mean.tolist(), "scale": self.eps_scale.tolist()},
        }
