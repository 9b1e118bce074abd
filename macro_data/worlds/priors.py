"""Prior families of the independently drawn parameters, mapped from uniforms by inverse CDFs.

A recipe gives each drawn parameter (``kind`` ``uniform`` or ``integer``) a family under
``worlds.<w>.priors.<param>.family``; ``low``/``high`` narrow the parameter's bounds as before and
every family lives inside them:

* ``uniform`` (default): ``low + (high - low) * u``, exactly the mapping used before families existed;
* ``loguniform``: ``exp(log low + u * (log high - log low))``, positive bounds only;
* ``normal``: ``N(mean, sd)`` truncated to ``[low, high]``;
* ``beta``: ``low + (high - low) * Beta(a, b)``;
* ``fixed``: always ``value`` (inside the bounds); theta still stores it.

Integer parameters take ``uniform`` or ``fixed`` (an integer value). Derived parameters (functions
of other random numbers) have no family. The sampler draws one uniform per drawn parameter per sample
whatever the family (a ``fixed`` parameter ignores its uniform), so changing one parameter's family
leaves the others' draws unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

FAMILIES = ("uniform", "loguniform", "normal", "beta", "fixed")
# Arguments of each family besides the bounds (all required).
FAMILY_ARGS: dict[str, tuple[str, ...]] = {
    "uniform": (),
    "loguniform": (),
    "normal": ("mean", "sd"),
    "beta": ("a", "b"),
    "fixed": ("value",),
}
# A truncated normal whose bounds hold less mass than this cannot be drawn reliably by its inverse CDF.
MIN_NORMAL_MASS = 1e-9


@functools.cache
def _special():
    """``scipy.special``, imported on first use: loading the code location need not pay its 0.2 s (and
    a cached module, unlike an import statement, costs nothing per call: rejection rounds map
    uniforms some 60,000 times per 100,000 draws)."""
    from scipy import special

    return special


class PriorError(ValueError):
    """A prior specification that cannot be drawn; the message names the argument."""


@dataclass(frozen=True)
class Prior:
    """The prior of one drawn parameter: its bounds ``[low, high]``, family and the family's arguments."""

    low: float
    high: float
    family: str = "uniform"
    args: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise PriorError(f"unknown prior family {self.family!r} (families: {', '.join(FAMILIES)})")
        given = dict(self.args)
        need = FAMILY_ARGS[self.family]
        if sorted(given) != sorted(need):
            raise PriorError(
                f"family {self.family!r} takes the arguments {list(need) or 'none'} besides low/high; "
                f"got {sorted(given)}"
            )
        for k, v in given.items():
            if not np.isfinite(v):
                raise PriorError(f"{k} = {v} is not finite")
        lo, hi = self.low, self.high
        if self.family == "loguniform" and not lo > 0:
            raise PriorError(f"family 'loguniform' needs positive bounds; low = {lo}")
        if self.family == "normal":
            if not given["sd"] > 0:
                raise PriorError(f"sd = {given['sd']} must be positive")
            if self._normal_mass() < MIN_NORMAL_MASS:
                raise PriorError(
                    f"normal(mean={given['mean']}, sd={given['sd']}) puts less than {MIN_NORMAL_MASS} of its mass "
                    f"inside [{lo}, {hi}]"
                )
        if self.family == "beta":
            for k in ("a", "b"):
                if not given[k] > 0:
                    raise PriorError(f"{k} = {given[k]} must be positive")
        if self.family == "fixed" and not lo <= given["value"] <= hi:
            raise PriorError(f"value = {given['value']} is outside the bounds [{lo}, {hi}]")

    # ---- tuple-like bounds --------------------------------------------------------------------
    def __iter__(self) -> Iterator[float]:
        return iter((self.low, self.high))

    def arg(self, name: str) -> float:
        """The family argument ``name`` (e.g. ``"sd"``); :class:`KeyError` if the family has none."""
        return dict(self.args)[name]

    def as_dict(self) -> dict:
        """The manifest's form: ``{"low", "high", "distribution", <arguments>}``.

        Returns
        -------
        dict
            Bounds, the family under ``distribution`` and the family's arguments as floats.
        """
        return {"low": self.low, "high": self.high, "distribution": self.family, **dict(self.args)}

    @classmethod
    def from_dict(cls, d: Mapping) -> Prior:
        """The prior of a manifest entry (the inverse of :meth:`as_dict`).

        Parameters
        ----------
        d : mapping
            ``low``, ``high``, the family under ``distribution`` (or ``family``; default ``uniform``)
            and the family's arguments.

        Returns
        -------
        Prior

        Raises
        ------
        PriorError
            An unknown family, missing arguments or invalid argument values.
        KeyError
            If ``low`` or ``high`` is missing.
        """
        family = d.get("distribution", d.get("family", "uniform"))
        args = tuple((k, float(d[k])) for k in FAMILY_ARGS.get(family, ()) if k in d)
        return cls(float(d["low"]), float(d["high"]), family, args)

    # ---- the distribution on [low, high] --------------------------------------------------------
    def _std_bounds(self) -> tuple[float, float]:
        m, s = self.arg("mean"), self.arg("sd")
        return (self.low - m) / s, (self.high - m) / s

    def _normal_mass(self) -> float:
        special = _special()

        a, b = self._std_bounds()
        if a > 0:  # both bounds in the upper tail: use the mirrored (lower-tail) probabilities
            return float(special.ndtr(-a) - special.ndtr(-b))
        return float(special.ndtr(b) - special.ndtr(a))

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF: values in ``[low, high]`` (float64) from uniforms ``u`` in ``[0, 1)``.

        Parameters
        ----------
        u : array_like
            Uniforms in ``[0, 1)``, any shape.

        Returns
        -------
        ndarray of float64
            Same shape as ``u``, clipped to ``[low, high]``; ``value`` everywhere for ``fixed``.
        """
        u = np.asarray(u, dtype=np.float64)
        lo, hi, f = self.low, self.high, self.family
        if f == "uniform":
            return lo + (hi - lo) * u  # bit-identical to the mapping before families existed
        if f == "fixed":
            return np.full(u.shape, self.arg("value"))
        if f == "loguniform":
            x = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        elif f == "beta":
            x = lo + (hi - lo) * _special().betaincinv(self.arg("a"), self.arg("b"), u)
        else:  # truncated normal, computed in the tail where it is accurate
            special = _special()
            m, s = self.arg("mean"), self.arg("sd")
            a, b = self._std_bounds()
            if a > 0:
                pa, pb = special.ndtr(-a), special.ndtr(-b)
                x = m - s * special.ndtri(pa - u * (pa - pb))
            else:
                pa, pb = special.ndtr(a), special.ndtr(b)
                x = m + s * special.ndtri(pa + u * (pb - pa))
        return np.clip(x, lo, hi)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """CDF on ``[low, high]`` (for validation; ``fixed`` is a step at ``value``).

        Parameters
        ----------
        x : array_like
            Parameter values, any shape (clipped to ``[low, high]``).

        Returns
        -------
        ndarray of float64
            Probabilities in ``[0, 1]``, same shape as ``x``.
        """
        x = np.clip(np.asarray(x, dtype=np.float64), self.low, self.high)
        lo, hi, f = self.low, self.high, self.family
        if f == "uniform":
            return (x - lo) / (hi - lo)
        if f == "fixed":
            return (x >= self.arg("value")).astype(np.float64)
        if f == "loguniform":
            return (np.log(x) - np.log(lo)) / (np.log(hi) - np.log(lo))
        special = _special()  # only the beta and the normal need it (a first import costs 0.5 s)
        if f == "beta":
            return special.betainc(self.arg("a"), self.arg("b"), (x - lo) / (hi - lo))
        m, s = self.arg("mean"), self.arg("sd")
        a, b = self._std_bounds()
        z = (x - m) / s
        if a > 0:
            return (special.ndtr(-a) - special.ndtr(-z)) / (special.ndtr(-a) - special.ndtr(-b))
        return (special.ndtr(z) - special.ndtr(a)) / (special.ndtr(b) - special.ndtr(a))

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """Density on ``[low, high]`` (zero outside; not defined for ``fixed``).

        Parameters
        ----------
        x : array_like
            Parameter values, any shape.

        Returns
        -------
        ndarray of float64
            Density per unit of the parameter, same shape as ``x``; for ``fixed`` the uniform one.
        """
        x = np.asarray(x, dtype=np.float64)
        lo, hi, f = self.low, self.high, self.family
        inside = (x >= lo) & (x <= hi)
        xc = np.clip(x, lo, hi)
        if f in ("uniform", "fixed"):
            d = np.full(x.shape, 1.0 / (hi - lo))
        elif f == "loguniform":
            d = 1.0 / (xc * (np.log(hi) - np.log(lo)))
        elif f == "beta":
            a, b = self.arg("a"), self.arg("b")
            t = (xc - lo) / (hi - lo)
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.exp((a - 1) * np.log(t) + (b - 1) * np.log1p(-t) - _special().betaln(a, b)) / (hi - lo)
        else:
            m, s = self.arg("mean"), self.arg("sd")
            d = np.exp(-0.5 * ((xc - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)) / self._normal_mass()
        return np.where(inside, d, 0.0)


class PriorSet(Mapping):
    """The priors of a world's drawn parameters: a mapping ``name -> (low, high)`` (what code that only
    needs bounds reads) whose :meth:`prior` also gives each parameter's :class:`Prior`."""

    def __init__(self, priors: Mapping[str, Prior], uniforms: np.ndarray | None = None):
        self._priors = dict(priors)
        # A design's uniforms (n, n_drawn) for one proposal round, used instead of the stream's
        # (see World.propose_independent); None: the stream's.
        self.uniforms = uniforms

    def with_uniforms(self, uniforms: np.ndarray) -> PriorSet:
        """The same priors carrying a design's uniforms ``(n, n_drawn)`` for one proposal round."""
        return PriorSet(self._priors, uniforms)

    def __getitem__(self, name: str) -> tuple[float, float]:
        p = self._priors[name]
        return (p.low, p.high)

    def __iter__(self) -> Iterator[str]:
        return iter(self._priors)

    def __len__(self) -> int:
        return len(self._priors)

    def __repr__(self) -> str:
        return f"PriorSet({self._priors!r})"

    def prior(self, name: str) -> Prior:
        """The :class:`Prior` of drawn parameter ``name``; :class:`KeyError` if it has none."""
        return self._priors[name]

    def priors(self) -> dict[str, Prior]:
        """``{name: Prior}``, a copy, in parameter order."""
        return dict(self._priors)

    @property
    def families(self) -> dict[str, str]:
        """``{name: family}``."""
        return {k: p.family for k, p in self._priors.items()}

    def as_manifest(self) -> dict[str, dict]:
        """``{name: Prior.as_dict()}``, the manifest's ``priors`` of a world."""
        return {k: p.as_dict() for k, p in self._priors.items()}

    @classmethod
    def from_manifest(cls, entries: Mapping[str, Mapping]) -> PriorSet:
        """The priors of a manifest's ``{name: entry}`` (:meth:`Prior.from_dict` of each entry).

        Parameters
        ----------
        entries : mapping of str to mapping
            As written by :meth:`as_manifest`.

        Returns
        -------
        PriorSet

        Raises
        ------
        PriorError
            An entry that is not a valid prior.
        """
        return cls({k: Prior.from_dict(v) for k, v in entries.items()})


def prior_of(priors: Mapping[str, tuple[float, float]], name: str) -> Prior:
    """The :class:`Prior` of ``name``: from a :class:`PriorSet`, else uniform on the mapping's bounds.

    Parameters
    ----------
    priors : mapping
        A :class:`PriorSet` or ``{name: (low, high)}``.
    name : str
        A drawn parameter.

    Returns
    -------
    Prior

    Raises
    ------
    KeyError
        If ``priors`` has no entry for ``name``.
    """
    if isinstance(priors, PriorSet):
        return priors.prior(name)
    low, high = priors[name]
    return Prior(float(low), float(high))
