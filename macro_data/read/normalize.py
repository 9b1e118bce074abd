"""Normalized parameters: theta as z-scores with respect to its prior.

Rule (per parameter ``j``, ``z_j = (theta_j - mean_j) / sd_j``, computed in float64):

* ``uniform`` parameters: the z-score with respect to the uniform prior on ``[low, high]``:
  ``mean = (low + high) / 2``, ``sd = (high - low) / sqrt(12)``. A parameter drawn from its full
  prior then has mean 0 and standard deviation 1 and lies in ``[-sqrt(3), sqrt(3)]``.
* ``integer`` parameters (e.g. ``var.p``, ``lss.n_state``): drawn uniformly from the integers
  ``a = ceil(low) .. b = floor(high)``, so the moments of that discrete uniform are used:
  ``mean = (a + b) / 2``, ``sd = sqrt(((b - a + 1)^2 - 1) / 12)``.
* ``derived`` parameters (functions of other random numbers, e.g. scaled VAR coefficients, the
  entries of ``A``, ``B``, ``C``; no bounds): left unnormalized by default (``mean = 0``,
  ``sd = 1``; :attr:`ParameterNormalizer.normalized` is ``False`` there), since the manifest
  stores no statistics for them and none are invented. To standardize them, pass statistics
  computed from the data, e.g. ``derived=world.theta_moments("train")``.

``bounds`` chooses which ``[low, high]``: ``"prior"`` (default) uses the manifest's ``priors``,
i.e. the bounds the recipe actually drew from (the world's bounds, possibly narrowed by a recipe
override), so the z-scores are standardized for this dataset; ``"parameters"`` uses the world's
full bounds from the spec, a map that is the same for every dataset of the world (use it when one
emulator must accept parameters from datasets with different recipes). Without overrides, as in
the shipped recipes, both are identical.

Validity rejections make the drawn distribution differ slightly from the prior where a world
rejects draws (e.g. indeterminate ``nk`` draws); the map is still the closed form above.

``normalize="stats"`` (:meth:`ParameterNormalizer.from_stats`) instead standardizes every column,
derived ones included, with the train-split mean and sd stored with the data
(:mod:`macro_data.read.stats`; a constant column only shifts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from macro_data.read.errors import ReadArgumentError
from macro_data.read.stats import WorldStats

BOUNDS = ("prior", "parameters")


def uniform_moments(low: float, high: float) -> tuple[float, float]:
    """Mean and sd of the continuous uniform distribution on ``[low, high]``.

    Parameters
    ----------
    low, high : float
        The bounds.

    Returns
    -------
    tuple of float
        ``(mean, sd)``.
    """
    return (low + high) / 2.0, (high - low) / math.sqrt(12.0)


def discrete_uniform_moments(low: float, high: float) -> tuple[float, float]:
    """Mean and sd of the uniform distribution on the integers ``ceil(low) .. floor(high)``.

    Parameters
    ----------
    low, high : float
        The bounds (rounded inwards to integers).

    Returns
    -------
    tuple of float
        ``(mean, sd)``.
    """
    a, b = math.ceil(low), math.floor(high)
    return (a + b) / 2.0, math.sqrt(((b - a + 1) ** 2 - 1) / 12.0)


@dataclass(frozen=True)
class ParameterNormalizer:
    """Affine map ``z = (theta - mean) / sd`` over the last axis of theta, one entry per parameter."""

    world: str
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    mean: np.ndarray  # (P,) float64
    sd: np.ndarray  # (P,) float64
    normalized: np.ndarray  # (P,) bool: False where the map is the identity (derived, no statistics)
    rules: tuple[str, ...]  # per parameter, how mean/sd were obtained

    @classmethod
    def from_manifest(
        cls, entry: Mapping, bounds: str = "prior", derived: str | Mapping[str, tuple[float, float]] = "identity"
    ) -> ParameterNormalizer:
        """Build from a manifest world entry (``manifest["worlds"][world]``).

        Parameters
        ----------
        entry : Mapping
            The world's entry of the manifest.
        bounds : {"prior", "parameters"}, default "prior"
            Where the bounds of drawn parameters come from: the recipe's priors, or the world's
            parameter bounds.
        derived : "identity" or Mapping[str, tuple of float], default "identity"
            Derived parameters (no bounds) are left as they are, or standardized with the given
            ``{name: (mean, sd)}`` (e.g. ``world.theta_moments("train")``).

        Returns
        -------
        ParameterNormalizer
        """
        world = str(entry["name"])
        if bounds not in BOUNDS:
            raise ReadArgumentError(f"bounds: {bounds!r} is not one of {', '.join(BOUNDS)}")
        if isinstance(derived, str):
            if derived != "identity":
                raise ReadArgumentError(
                    f"derived: {derived!r} must be 'identity' or a mapping "
                    f"{{name: (mean, sd)}} (e.g. world.theta_moments('train'))"
                )
            derived_stats: Mapping[str, tuple[float, float]] = {}
        elif isinstance(derived, Mapping):
            derived_stats = derived
        else:
            raise ReadArgumentError(f"derived must be 'identity' or a mapping {{name: (mean, sd)}}; got {derived!r}")
        params = entry["parameters"]
        names = tuple(p["name"] for p in params)
        unknown = [k for k in derived_stats if k not in names]
        if unknown:
            raise ReadArgumentError(f"derived: world {world!r} has no parameter {unknown[0]!r}")
        priors = entry.get("priors") or {}
        mean, sd, norm, rules = [], [], [], []

        def add(m: float, s: float, is_normalized: bool, rule: str) -> None:
            mean.append(m)
            sd.append(s)
            norm.append(is_normalized)
            rules.append(rule)

        for p in params:
            name, kind = p["name"], p["kind"]
            if kind in ("uniform", "integer"):
                src = priors.get(name) if bounds == "prior" else None
                low, high = (src["low"], src["high"]) if src else (p["low"], p["high"])
                where = "prior" if src else "parameter bounds"
                if low is None or high is None:
                    raise ReadArgumentError(
                        f"world {world!r}: parameter {name!r} of kind {kind!r} has no bounds in the manifest"
                    )
                if kind == "integer":
                    m, s = discrete_uniform_moments(float(low), float(high))
                    rule = f"discrete uniform on integers in [{low}, {high}] ({where})"
                else:
                    m, s = uniform_moments(float(low), float(high))
                    rule = f"uniform on [{low}, {high}] ({where})"
                if not s > 0:
                    raise ReadArgumentError(
                        f"world {world!r}: parameter {name!r} has a degenerate prior [{low}, {high}]; cannot normalize"
                    )
                add(m, s, True, rule)
            elif name in derived_stats:
                try:
                    m, s = (float(v) for v in derived_stats[name])
                except (TypeError, ValueError):
                    raise ReadArgumentError(
                        f"derived: statistics of {world!r} parameter {name!r} must be a pair "
                        f"(mean, sd) of numbers; got {derived_stats[name]!r}"
                    ) from None
                if not (math.isfinite(m) and math.isfinite(s)) or s < 0:
                    raise ReadArgumentError(
                        f"derived: statistics of {world!r} parameter {name!r} must be finite "
                        f"with sd >= 0: mean={m}, sd={s}"
                    )
                # A constant column (e.g. padding that is always 0) keeps sd 1: shift only.
                s = s if s > 0 else 1.0
                add(m, s, True, "supplied statistics (derived)")
            else:
                add(0.0, 1.0, False, "identity (derived, no bounds)")
        return cls(
            world, names, tuple(p["kind"] for p in params), np.array(mean), np.array(sd), np.array(norm), tuple(rules)
        )

    @classmethod
    def from_stats(cls, entry: Mapping, stats: WorldStats) -> ParameterNormalizer:
        """Standardize every column (derived ones included) with the train-split moments stored with the
        data (:mod:`macro_data.read.stats`): ``z = (theta - mean) / scale``, ``scale = sd`` (1 where
        ``sd == 0``).

        Parameters
        ----------
        entry : Mapping
            The world's entry of the manifest.
        stats : WorldStats
            The world's stored statistics.

        Returns
        -------
        ParameterNormalizer
        """
        params = entry["parameters"]
        names = tuple(p["name"] for p in params)
        moments = stats["theta"]
        if moments.mean.shape != (len(names),):
            raise ReadArgumentError(
                f"world {stats.world!r}: stored theta statistics have shape {moments.mean.shape}, "
                f"the world has {len(names)} parameters"
            )
        rule = f"{stats.split}-split statistics ({stats.n_samples} samples)"
        return cls(
            str(entry["name"]),
            names,
            tuple(p["kind"] for p in params),
            moments.mean.copy(),
            moments.scale,
            np.ones(len(names), dtype=bool),
            tuple(rule if s > 0 else f"{rule}; constant column: shift only" for s in moments.sd),
        )

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 1 or x.shape[-1] != len(self.names):
            raise ReadArgumentError(
                f"world {self.world!r}: {what} must have {len(self.names)} parameters on its "
                f"last axis; got shape {x.shape}"
            )
        return x

    def normalize(self, theta: np.ndarray) -> np.ndarray:
        """``(theta - mean) / sd`` (float64), over the last axis.

        Parameters
        ----------
        theta : numpy.ndarray
            Parameters, ``(..., P)``.

        Returns
        -------
        numpy.ndarray
            The normalized parameters, same shape, float64.
        """
        return (self._check(theta, "theta") - self.mean) / self.sd

    def denormalize(self, z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize`: ``z * sd + mean`` (float64).

        Parameters
        ----------
        z : numpy.ndarray
            Normalized parameters, ``(..., P)``.

        Returns
        -------
        numpy.ndarray
            The parameters, same shape, float64.
        """
        return self._check(z, "z") * self.sd + self.mean

    def as_dict(self) -> dict:
        """JSON-ready description, to store next to a trained model.

        Returns
        -------
        dict
            World, rule and, per parameter, name, kind, mean, sd, whether normalized and the source.
        """
        return {
            "world": self.world,
            "rule": "z = (theta - mean) / sd",
            "parameters": [
                {"name": n, "kind": k, "mean": float(m), "sd": float(s), "normalized": bool(b), "source": r}
                for n, k, m, s, b, r in zip(self.names, self.kinds, self.mean, self.sd, self.normalized, self.rules)
            ],
        }
