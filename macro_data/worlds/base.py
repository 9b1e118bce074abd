"""The protocol every simulator world follows, and the descriptions that travel with its data.

A world turns a batch of parameter vectors ``theta (n, P)`` and standard-normal innovations
``eps (n, T, S)`` into the three canonical observables (``output``, ``inflation``, ``rate``),
optional extra observables, per-period metadata, and impulse responses ``(n, S, H + 1, 3)``.
Everything is batched over draws; there is no Python loop over samples.

Precision contract: simulation runs in float64 on inputs that are already rounded to float32
(the storage precision), so the stored arrays are exactly the inputs the stored outputs were
computed from. Bounds are therefore enforced on the float32 values.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from macro_data.errors import WorldError
from macro_data.recent import Recent
from macro_data.worlds.priors import FAMILY_ARGS, Prior, PriorError, PriorSet, prior_of


@dataclass(frozen=True)
class Parameter:
    """One entry of theta.

    ``kind``: ``uniform`` (drawn independently, uniform on ``[low, high]`` unless a recipe
    narrows it or gives it another prior family, :mod:`macro_data.worlds.priors`), ``integer``
    (drawn uniformly from the integers in ``[low, high]``), or
    ``derived`` (a function of other random numbers, e.g. a scaled coefficient; ``low``/``high``
    are then ``None`` and validity is the world's stability rule).
    """

    name: str
    unit: str
    description: str
    low: float | None = None
    high: float | None = None
    default: float | None = None
    kind: Literal["uniform", "integer", "derived"] = "uniform"
    prior: str = "independent uniform on the bounds"

    def as_dict(self) -> dict:
        """The manifest's form: every field by name."""
        return {
            "name": self.name,
            "unit": self.unit,
            "description": self.description,
            "low": self.low,
            "high": self.high,
            "default": self.default,
            "kind": self.kind,
            "prior": self.prior,
        }


@dataclass(frozen=True)
class Observable:
    """A simulated series: name, unit and a definition a reader needs no code to understand."""

    name: str
    unit: str
    definition: str

    def as_dict(self) -> dict:
        """The manifest's form: every field by name."""
        return {"name": self.name, "unit": self.unit, "definition": self.definition}


@dataclass(frozen=True)
class MetadataField:
    """A per-period metadata array ``(sample, time)``, e.g. ``regime`` or ``binding``.

    ``stage`` says who produces it: ``draws`` (a random input, drawn with the parameters) or
    ``simulation`` (an output of simulating the draws).
    """

    name: str
    dtype: str
    description: str
    stage: Literal["draws", "simulation"]

    def as_dict(self) -> dict:
        """The manifest's form: every field by name."""
        return {"name": self.name, "dtype": self.dtype, "description": self.description, "stage": self.stage}


@dataclass(frozen=True)
class SliceRule:
    """Extrapolation slice: every draw whose ``statistic`` is beyond ``threshold`` is held out."""

    statistic: str
    threshold: float
    direction: Literal["above", "below"]
    description: str

    def as_dict(self) -> dict:
        """The manifest's form: every field by name."""
        return {
            "statistic": self.statistic,
            "threshold": self.threshold,
            "direction": self.direction,
            "description": self.description,
        }


@dataclass(frozen=True)
class CornerRule:
    """Extrapolation corner: draws jointly above both thresholds (persistence and volatility)."""

    persistence: str
    persistence_threshold: float
    volatility: str
    volatility_threshold: float
    description: str

    def as_dict(self) -> dict:
        """The manifest's form: every field by name."""
        return {
            "persistence": self.persistence,
            "persistence_threshold": self.persistence_threshold,
            "volatility": self.volatility,
            "volatility_threshold": self.volatility_threshold,
            "description": self.description,
        }


CANONICAL_OBSERVABLES: tuple[Observable, ...] = (
    Observable("output", "percent", "100 x log deviation of output from its steady state"),
    Observable("inflation", "annualized percentage points", "400 x quarterly inflation, deviation from steady state"),
    Observable(
        "rate",
        "annualized percentage points",
        "400 x quarterly nominal (or model-specific) interest rate, deviation from steady state",
    ),
)


@dataclass
class Simulation:
    """Outputs of :meth:`World.simulate` for ``n`` draws (float64 unless asked for float32)."""

    trajectories: np.ndarray  # (n, T, 3) canonical observables
    extras: np.ndarray | None = None  # (n, T, n_extra)
    metadata: dict[str, np.ndarray] = field(default_factory=dict)  # stage="simulation" fields, (n, T)

    def as_dtype(self, dtype) -> Simulation:
        """Trajectories and extras in ``dtype`` (rounded once from float64); metadata as it is.

        Parameters
        ----------
        dtype : numpy dtype or type
            The float dtype of the copy, e.g. ``np.float32``.

        Returns
        -------
        Simulation
            A new simulation; arrays already of ``dtype`` are shared, not copied.
        """
        return Simulation(
            self.trajectories.astype(dtype, copy=False),
            None if self.extras is None else self.extras.astype(dtype, copy=False),
            self.metadata,
        )

    def periods(self, lo: int, hi: int) -> Simulation:
        """Periods ``lo .. hi - 1`` of every array (views).

        Parameters
        ----------
        lo, hi : int
            Period range along the time axis.

        Returns
        -------
        Simulation
            Views of the periods; trajectories, extras and metadata cut alike.
        """
        return Simulation(
            self.trajectories[:, lo:hi],
            None if self.extras is None else self.extras[:, lo:hi],
            {k: v[:, lo:hi] for k, v in self.metadata.items()},
        )


OUTPUT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


Priors = Mapping[str, tuple[float, float]]


def stable_key(name: str) -> int:
    """A stable 32-bit number derived from a name (never from a position in a list).

    Parameters
    ----------
    name : str
        A world id.

    Returns
    -------
    int
        The first 4 bytes (big-endian) of ``sha256("macro_data/world/" + name)``, in ``[0, 2**32)``.
    """
    return int.from_bytes(hashlib.sha256(f"macro_data/world/{name}".encode()).digest()[:4], "big")


def checked_int(value, minimum: int, what: str) -> int:
    """``value`` as an ``int`` if it is a Python or numpy integer (not a bool) ``>= minimum`` (0 or 1), else
    :class:`WorldError` saying ``what`` must be a non-negative (0) or positive (1) integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise WorldError(f"{what} must be a {kind} integer; got {value!r}")
    return int(value)


def to_float32_precision(x: np.ndarray) -> np.ndarray:
    """Round to float32 and return float64, so stored values equal the values simulated from.

    Parameters
    ----------
    x : array_like
        Values of any shape.

    Returns
    -------
    ndarray of float64
        ``x`` rounded to the nearest float32, same shape.
    """
    return np.asarray(x, dtype=np.float32).astype(np.float64)


class LastFew:
    """The last few values built from a batch of parameters, keyed by the bytes of ``theta``: e.g.
    draw validation, simulate and irfs of the same batch then solve once. Thread-safe; results are
    identical with or without it."""

    def __init__(self, size: int):
        self._values: Recent[Any] = Recent(size)

    def get(self, theta: np.ndarray, build: Callable[[np.ndarray], Any]) -> Any:
        """The value for ``theta``, built by ``build(theta as float64)`` unless one of the last few.

        Parameters
        ----------
        theta : ndarray, shape (n, P)
            Parameter vectors; the key is their float64 bytes and shape.
        build : callable
            ``build(theta)`` with ``theta`` float64 and C-contiguous, returning the value to keep
            (not None).

        Returns
        -------
        object
            The kept value for an identical ``theta``, else the newly built one.
        """
        th = np.ascontiguousarray(theta, dtype=np.float64)
        key = th.tobytes() + str(th.shape).encode()
        value = self._values.get(key)
        if value is None:
            value = build(th)
            self._values.put(key, value)
        return value


class World(ABC):
    """A simulator world. Subclasses set the class attributes and implement the abstract methods.

    Conventions (see ``docs/worlds.md``): the state before ``t = 0`` is the steady state;
    ``y[0..T-1]`` is driven by ``eps[0..T-1]``; the model receives ``sigma_j * eps[t, j]``.
    IRFs: ``irfs[j, h] = y_shocked[h] - y_baseline[h]`` for a ``+1 sd`` innovation ``j`` at ``h = 0``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]]
    shocks: ClassVar[tuple[str, ...]]
    observables: ClassVar[tuple[Observable, ...]] = CANONICAL_OBSERVABLES
    extras: ClassVar[tuple[Observable, ...]] = ()
    metadata_fields: ClassVar[tuple[MetadataField, ...]] = ()
    linear: ClassVar[bool] = True
    # The state entering period t (everything up to t-1): names, units, definitions; see :meth:`_state_path`.
    state_variables: ClassVar[tuple[Observable, ...]] = ()
    # Per-date labels stored with state IRFs, ``(sample, state)`` (switching: state_regime; zlb: at_bound).
    state_labels: ClassVar[tuple[MetadataField, ...]] = ()
    slice_rule: ClassVar[SliceRule]
    corner_rule: ClassVar[CornerRule]
    # Free-text record of choices the spec leaves open; goes into the manifest.
    design_notes: ClassVar[tuple[str, ...]] = ()

    # ---- identity -------------------------------------------------------------------------
    @property
    def key(self) -> int:
        """The world's stream key, :func:`stable_key` of its name (a 32-bit integer)."""
        return stable_key(self.name)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The names of theta's columns, in order."""
        return tuple(p.name for p in self.parameters)

    def index(self, name: str) -> int:
        """The column of parameter ``name`` in theta.

        Parameters
        ----------
        name : str
            A parameter name of :attr:`parameters`.

        Returns
        -------
        int
            Its position in theta's last axis, ``0 .. P - 1``.

        Raises
        ------
        WorldError
            If the world has no parameter ``name``.
        """
        try:
            return self.parameter_names.index(name)
        except ValueError:
            raise WorldError(f"world {self.name!r}: unknown parameter {name!r}") from None

    def describe(self) -> dict:
        """Everything a reader needs to interpret this world's arrays (goes into the manifest).

        Returns
        -------
        dict
            JSON-ready: ``name``, ``description``, ``linear``, ``parameters``, ``shocks``,
            ``observables``, ``extras``, ``metadata``, ``slice_rule``, ``corner_rule`` and
            ``design_notes``; the entries of the lists are the ``as_dict`` forms.
        """
        return {
            "name": self.name,
            "description": self.description,
            "linear": self.linear,
            "parameters": [p.as_dict() for p in self.parameters],
            "shocks": list(self.shocks),
            "observables": [o.as_dict() for o in self.observables],
            "extras": [o.as_dict() for o in self.extras],
            "metadata": [m.as_dict() for m in self.metadata_fields],
            "slice_rule": self.slice_rule.as_dict(),
            "corner_rule": self.corner_rule.as_dict(),
            "design_notes": list(self.design_notes),
        }

    # ---- priors -----------------------------------------------------------------------------
    def resolve_priors(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> PriorSet:
        """The priors to draw from: the spec's bounds, narrowed by recipe overrides (which must lie inside),
        and each drawn parameter's family (:mod:`macro_data.worlds.priors`; ``uniform`` unless overridden).

        An override is ``{low?, high?, family?, <family arguments>}``; errors name the parameter and the
        argument. Families apply to independently drawn parameters only; ``integer`` ones take ``uniform``
        or ``fixed`` (an integer value).

        Parameters
        ----------
        overrides : mapping of str to mapping, optional
            ``{parameter: {low?, high?, family?, <family arguments>}}`` as in a recipe's
            ``worlds.<w>.priors``; ``None`` or empty: every drawn parameter uniform on its bounds.

        Returns
        -------
        PriorSet
            One :class:`~macro_data.worlds.priors.Prior` per drawn (``uniform`` or ``integer``)
            parameter, in parameter order.

        Raises
        ------
        WorldError
            An override of a parameter that is not drawn (derived or unknown), non-finite bounds,
            bounds not within ``low <= low' < high' <= high``, a family an integer parameter cannot
            take, an argument the family does not have, an invalid family argument (e.g. a
            non-positive ``sd``), or a non-integer ``fixed`` value of an integer parameter.
        """
        drawn = {p.name: p for p in self.parameters if p.kind in ("uniform", "integer")}
        priors = {name: Prior(float(p.low), float(p.high)) for name, p in drawn.items()}
        for name, spec in (overrides or {}).items():
            if name not in priors:
                derived = [p.name for p in self.parameters if p.kind == "derived"]
                why = (
                    " (it is derived, a function of other random numbers: bounds and prior families apply only "
                    "to independently drawn parameters)"
                    if name in derived
                    else ""
                )
                raise WorldError(
                    f"world {self.name!r}: prior override for {name!r}, which is not a drawn parameter{why} "
                    f"(drawn parameters: {', '.join(sorted(priors))})"
                )
            blow, bhigh = priors[name]
            low, high = float(spec.get("low", blow)), float(spec.get("high", bhigh))
            if not (np.isfinite(low) and np.isfinite(high)):
                raise WorldError(
                    f"world {self.name!r}: prior override for {name!r} is not finite: low={low}, high={high}"
                )
            if not (blow <= low < high <= bhigh):
                raise WorldError(
                    f"world {self.name!r}: prior override for {name!r} must satisfy "
                    f"{blow} <= low < high <= {bhigh}; got low={low}, high={high}"
                )
            family = spec.get("family", "uniform")
            if drawn[name].kind == "integer" and family not in ("uniform", "fixed"):
                raise WorldError(
                    f"world {self.name!r}: prior family of {name!r} is {family!r}, but {name!r} is an integer "
                    f"parameter: it takes 'uniform' or 'fixed'"
                )
            allowed = {"low", "high", "family", *FAMILY_ARGS.get(family, ())}
            extra = sorted(set(spec) - allowed)
            if extra:
                raise WorldError(
                    f"world {self.name!r}: prior of {name!r}: {', '.join(extra)} is not an argument of family "
                    f"{family!r} (its arguments: {', '.join(FAMILY_ARGS.get(family, ())) or 'none'} besides low/high)"
                )
            args = tuple((k, float(spec[k])) for k in FAMILY_ARGS.get(family, ()) if k in spec)
            try:
                priors[name] = Prior(low, high, family, args)
            except PriorError as exc:
                raise WorldError(f"world {self.name!r}: prior of {name!r}: {exc}") from None
            value = dict(args).get("value")
            if drawn[name].kind == "integer" and family == "fixed" and value != round(value):
                raise WorldError(f"world {self.name!r}: prior of {name!r}: value = {value} must be an integer")
        return PriorSet(priors)

    def propose_independent(self, rng: np.random.Generator, n: int, priors: Priors) -> np.ndarray:
        """Draw the ``uniform``/``integer`` parameters, in parameter order, one (n,) vector each.

        Derived entries are left NaN for the world to fill. The draw order is fixed: one uniform
        per sample per drawn parameter, ``rng.random((n, n_drawn))``, mapped through each parameter's
        prior (:meth:`Prior.ppf <macro_data.worlds.priors.Prior.ppf>`; the uniform family is the linear
        map). A design (:attr:`PriorSet.uniforms`, e.g. Sobol points) replaces these uniforms; they are
        drawn all the same, so the stream continues as without a design.

        Parameters
        ----------
        rng : numpy.random.Generator
            The stream to draw from; exactly ``n * n_drawn`` uniforms are consumed.
        n : int
            Number of parameter vectors.
        priors : mapping
            A :class:`PriorSet` or ``{name: (low, high)}`` (uniform) over the drawn parameters.

        Returns
        -------
        ndarray of float64, shape (n, P)
            Drawn columns filled, derived columns NaN; integer parameters hold integral values.
        """
        drawn = [(col, p) for col, p in enumerate(self.parameters) if p.kind in ("uniform", "integer")]
        u = rng.random((n, len(drawn)))
        design = getattr(priors, "uniforms", None)
        if design is not None:
            u = design
        theta = np.full((n, len(self.parameters)), np.nan)
        for k, (col, p) in enumerate(drawn):
            prior = prior_of(priors, p.name)
            if prior.family == "fixed":
                theta[:, col] = prior.arg("value")
            elif p.kind == "integer":
                lo, hi = int(np.ceil(prior.low)), int(np.floor(prior.high))
                theta[:, col] = lo + np.minimum(np.floor(u[:, k] * (hi - lo + 1)), hi - lo)
            else:
                theta[:, col] = prior.ppf(u[:, k])
        return theta

    # ---- the world's science (implemented per world) --------------------------------------
    @abstractmethod
    def propose(self, rng: np.random.Generator, n: int, priors: Priors) -> np.ndarray:
        """Propose ``n`` raw parameter vectors ``(n, P)`` from ``rng``, in a fixed draw order.

        The number and order of random numbers consumed must depend on ``n`` only.

        Parameters
        ----------
        rng : numpy.random.Generator
            The ``theta`` stream of one block.
        n : int
            Number of proposals.
        priors : mapping
            A :class:`PriorSet` (from :meth:`resolve_priors`) or ``{name: (low, high)}``.

        Returns
        -------
        ndarray of float64, shape (n, P)
            Candidates, not yet rounded to float32 nor checked (:meth:`valid` does that).
        """

    @abstractmethod
    def is_valid(self, theta: np.ndarray) -> np.ndarray:
        """World-specific validity ``(n,) bool``: stable and, for RE models, determinate.

        Bounds are checked by :meth:`within_bounds`; this adds the model's own rules.

        Parameters
        ----------
        theta : ndarray of float64, shape (n, P)
            Parameter vectors within bounds (:meth:`valid` passes only the rows :meth:`within_bounds` accepts).

        Returns
        -------
        ndarray of bool, shape (n,)
            True where the draw satisfies the world's own rules.
        """

    @abstractmethod
    def _simulate(self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray]) -> Simulation:
        """Trajectories from the steady state: ``theta (n, P)``, ``eps (n, T, S)`` -> :class:`Simulation`.

        Inputs are already checked (float64, right shapes, finite, in bounds). ``metadata`` holds
        the ``stage="draws"`` fields (e.g. ``regime``).
        """

    @abstractmethod
    def _irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        """Impulse responses ``(n, S, H + 1, 3)`` to ``+1 sd`` innovations from the steady state."""

    def _simulate_as(
        self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray], dtype: np.dtype
    ) -> Simulation:
        """:meth:`_simulate` with float outputs of ``dtype``; ``eps`` is float32 or float64.

        The default computes from float64 innovations and rounds the results once. A world whose
        kernels are element-wise overrides this to read float32 innovations and write ``dtype``
        directly: the same numbers without the float64 copies of a whole batch.
        """
        return self._simulate(theta, np.asarray(eps, dtype=np.float64), metadata).as_dtype(dtype)

    def _irfs_as(self, theta: np.ndarray, H: int, dtype: np.dtype) -> np.ndarray:
        """:meth:`_irfs` in ``dtype`` (see :meth:`_simulate_as`)."""
        return self._irfs(theta, H).astype(dtype, copy=False)

    # ---- public, checked entry points ----------------------------------------------------
    def simulate(
        self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray] | None = None, dtype=np.float64
    ) -> Simulation:
        """Checked wrapper of :meth:`_simulate`; bad input raises :class:`WorldError`.

        ``dtype`` (float64 or float32): of the returned trajectories and extras. Simulation is in
        float64 either way; float32 results are the float64 ones rounded once.

        Parameters
        ----------
        theta : ndarray, shape (n, P)
            Parameter vectors, real, finite and within the parameters' bounds (:meth:`check_theta`).
        eps : ndarray, shape (n, T, S)
            Standard-normal innovations, one column per shock of :attr:`shocks`, ``T >= 1``;
            float32 (as stored) or anything convertible to float64; finite.
        metadata : mapping of str to ndarray, optional
            The ``stage="draws"`` fields of :attr:`metadata_fields` (e.g. ``regime``), each
            ``(n, T)``; required when the world declares any.
        dtype : {numpy.float64, numpy.float32}, optional
            Dtype of the returned trajectories and extras.

        Returns
        -------
        Simulation
            ``trajectories (n, T, 3)`` (output in percent, inflation and rate in annualized
            percentage points, deviations from the steady state), ``extras (n, T, n_extra)`` or
            ``None``, and the ``stage="simulation"`` metadata fields, each ``(n, T)``.

        Raises
        ------
        WorldError
            A bad ``dtype``, ``theta`` (shape, dtype, non-finite, out of bounds, non-integer where
            an integer is required), ``eps`` (shape, ``T < 1``, non-finite) or missing or misshapen
            metadata; the message names the world and the offending entry.
        """
        dtype = self.check_dtype(dtype)
        theta = self.check_theta(theta)
        eps = self.check_eps(eps, theta.shape[0])
        metadata = dict(metadata or {})
        for f in self.metadata_fields:
            if f.stage == "draws":
                if f.name not in metadata:
                    raise WorldError(f"world {self.name!r}: simulate needs the drawn metadata {f.name!r}")
                m = np.asarray(metadata[f.name])
                if m.shape != eps.shape[:2]:
                    raise WorldError(
                        f"world {self.name!r}: metadata {f.name!r} must have shape {eps.shape[:2]}; got {m.shape}"
                    )
        return self._simulate_as(theta, eps, metadata, dtype)

    def irfs(self, theta: np.ndarray, H: int, dtype=np.float64) -> np.ndarray:
        """Checked wrapper of :meth:`_irfs`, returning ``dtype`` (as in :meth:`simulate`).

        Parameters
        ----------
        theta : ndarray, shape (n, P)
            Parameter vectors, checked as in :meth:`simulate`.
        H : int
            Last horizon, ``H >= 0`` (responses at ``h = 0 .. H``).
        dtype : {numpy.float64, numpy.float32}, optional
            Dtype of the result.

        Returns
        -------
        ndarray, shape (n, S, H + 1, 3)
            ``irfs[i, j, h, k]``: response of canonical observable ``k`` (units as the trajectories)
            at horizon ``h`` to a ``+1 sd`` innovation of shock ``j`` at ``h = 0``, from the steady state.

        Raises
        ------
        WorldError
            A bad ``dtype``, ``theta`` (see :meth:`check_theta`) or ``H`` (not a non-negative integer).
        """
        dtype = self.check_dtype(dtype)
        return self._irfs_as(self.check_theta(theta), self.check_horizon(H, self.name), dtype)

    def free_path(self, theta: np.ndarray, state: np.ndarray, T: int, dtype=np.float64) -> np.ndarray:
        """Checked wrapper of :meth:`_free_path`: the path with zero innovations from a given state.

        The canonical trajectories of periods ``0 .. T-1`` when the state entering period 0 is
        ``state`` and every innovation of periods ``0 .. T-1`` is zero. ``state`` is in the units and
        definitions of :attr:`state_variables`, exactly a row of :meth:`_state_path`; the zero state
        (the steady state) gives zeros. For a linear world the trajectories of any innovations
        ``eps (n, T, S)`` from that state are then, to rounding, the convolution of the IRFs with
        ``eps`` plus the free path::

            y[t] = sum_{h <= t} sum_j irfs[j, h] eps[t - h, j] + free_path(theta, state, T)[t]

        Computed in float64, each sample on its own (its result does not depend on the batch);
        ``dtype`` float32 rounds the float64 result once.

        Parameters
        ----------
        theta : ndarray, shape (n, P)
            Parameter vectors, checked as in :meth:`simulate`.
        state : array_like, shape (n, len(state_variables))
            The state entering period 0 of each draw, real and finite (any real dtype; used as float64).
        T : int
            Number of periods, ``T >= 1``.
        dtype : {numpy.float64, numpy.float32}, optional
            Dtype of the result.

        Returns
        -------
        ndarray, shape (n, T, 3)
            Output (percent), inflation and rate (annualized percentage points), deviations from the
            steady state, as the trajectories of :meth:`simulate`.

        Raises
        ------
        WorldError
            If the world does not implement free paths (:attr:`has_free_path`; e.g. the nonlinear
            worlds switching and zlb), or for a bad ``dtype``, ``theta`` (see :meth:`check_theta`),
            ``state`` (shape, non-real dtype, a non-finite entry) or ``T`` (not a positive integer);
            the message names the world and the offending entry.
        """
        if not self.has_free_path:
            raise self._no_free_path()
        dtype = self.check_dtype(dtype)
        theta = self.check_theta(theta)
        state = self.check_state(state, theta.shape[0])
        T = self.check_periods(T, self.name)
        return np.asarray(self._free_path(theta, state, T), dtype=np.float64).astype(dtype, copy=False)

    @property
    def has_free_path(self) -> bool:
        """Whether the world implements :meth:`free_path` (it overrides :meth:`_free_path`): the linear
        worlds lss, var, nk, rbc and the declared worlds do; switching and zlb do not."""
        return type(self)._free_path is not World._free_path

    def _free_path(self, theta: np.ndarray, state: np.ndarray, T: int) -> np.ndarray:
        """Canonical trajectories ``(n, T, 3)`` float64 with zero innovations in periods ``0 .. T-1`` from
        the state entering period 0, ``state (n, len(state_variables))`` float64 (as :meth:`_state_path`
        defines it). Inputs are already checked. The default raises: a world implements it if the path
        is a function of that state alone (the linear worlds)."""
        raise self._no_free_path()

    def _no_free_path(self) -> WorldError:
        why = " (it is nonlinear)" if not self.linear else ""
        return WorldError(
            f"world {self.name!r} does not implement free_path{why}: its path with zero innovations from a "
            "given state is not available"
        )

    def valid(self, theta: np.ndarray) -> np.ndarray:
        """``(n,) bool``: in bounds (float32) and valid by the world's own rules.

        Parameters
        ----------
        theta : ndarray, shape (n, P)
            Parameter vectors (any real values; nothing is raised for invalid ones).

        Returns
        -------
        ndarray of bool, shape (n,)
            :meth:`within_bounds` and, for those rows, :meth:`is_valid`.
        """
        theta = np.asarray(theta, dtype=np.float64)
        ok = self.within_bounds(theta)
        if ok.any():
            ok[ok] = self.is_valid(theta[ok])
        return ok

    def _state_path(
        self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray], sim: Simulation
    ) -> np.ndarray:
        """The state entering each period, ``(n, T, len(state_variables))`` float64: row ``t`` holds the
        values of :attr:`state_variables` after periods ``0 .. t-1`` (row 0: the steady state, zeros).

        ``eps`` are the innovations, ``metadata`` the drawn metadata and ``sim`` the float64 simulation
        of the same draws. Every world declares its state (see ``docs/worlds.md``, state IRFs)."""
        raise WorldError(f"world {self.name!r} does not declare its state variables")

    def _state_irfs(
        self,
        theta: np.ndarray,
        eps: np.ndarray,
        metadata: Mapping[str, np.ndarray],
        sim: Simulation,
        dates: np.ndarray,
        H: int,
    ) -> np.ndarray | None:
        """The world's own state-dependent IRFs ``(n, K, S, H + 1, 3)`` float64 at ``dates (n, K)``, or
        ``None`` (the default) for the shared methods of :mod:`macro_data.worlds.state_irfs`: the
        steady-state IRFs for linear worlds (a linear model's response does not depend on the state),
        the re-simulation of the stored history otherwise."""
        return None

    def focus_dates(self, theta: np.ndarray, sim: Simulation) -> np.ndarray | None:
        """``(n, T)`` bool: dates whose states the state IRFs oversample (zlb: near the bound), or ``None``."""
        return None

    def label_states(
        self, theta: np.ndarray, metadata: Mapping[str, np.ndarray], sim: Simulation, dates: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The :attr:`state_labels` at ``dates (n, K)``, each ``(n, K)``."""
        return {}

    def draw_metadata(self, rng: np.random.Generator, theta: np.ndarray, T: int) -> dict[str, np.ndarray]:
        """Random per-period inputs drawn after the parameters (``stage="draws"`` fields).

        Must be row-wise: the stream's draws have shapes fixed by ``(n, T)`` alone and row ``i`` depends
        only on ``theta[i]`` and its own draws. With ``burn_in`` the chain of a block is drawn for
        ``B + T`` periods and re-drawn from the stored theta when simulating (a block whose last rows lie
        beyond the dataset repeats a stored row there).

        Parameters
        ----------
        rng : numpy.random.Generator
            The ``metadata`` stream of one block.
        theta : ndarray of float64, shape (n, P)
            The block's valid parameter vectors.
        T : int
            Number of periods.

        Returns
        -------
        dict of str to ndarray
            One ``(n, T)`` array per ``stage="draws"`` field; empty (the default) for worlds without any.
        """
        return {}

    @abstractmethod
    def slice_statistic(self, theta: np.ndarray) -> np.ndarray:
        """The statistic of :attr:`slice_rule`, ``(n,)``.

        Parameters
        ----------
        theta : ndarray of float64, shape (n, P)
            Valid parameter vectors.

        Returns
        -------
        ndarray of float64, shape (n,)
            The statistic :attr:`slice_rule` compares with its threshold.
        """

    @abstractmethod
    def corner_statistics(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(persistence, volatility)`` of :attr:`corner_rule`, each ``(n,)``.

        Parameters
        ----------
        theta : ndarray of float64, shape (n, P)
            Valid parameter vectors.

        Returns
        -------
        persistence : ndarray of float64, shape (n,)
        volatility : ndarray of float64, shape (n,)
            The statistics :attr:`corner_rule` compares with its two thresholds.
        """

    # ---- shared checks ----------------------------------------------------------------------
    def within_bounds(self, theta: np.ndarray) -> np.ndarray:
        """``(n,) bool``: every bounded entry inside its bounds, compared at float32 precision.

        Parameters
        ----------
        theta : ndarray, shape (n, P)
            Parameter vectors.

        Returns
        -------
        ndarray of bool, shape (n,)
            True where every entry is finite, inside ``[low, high]`` (bounds as float32; derived
            entries have none) and integral for ``integer`` parameters.
        """
        theta32 = np.asarray(theta, dtype=np.float32)
        ok = np.all(np.isfinite(theta32), axis=1)
        for j, p in enumerate(self.parameters):
            if p.low is not None:
                ok &= theta32[:, j] >= np.float32(p.low)
            if p.high is not None:
                ok &= theta32[:, j] <= np.float32(p.high)
            if p.kind == "integer":
                ok &= theta32[:, j] == np.round(theta32[:, j])
        return ok

    def check_theta(self, theta: np.ndarray) -> np.ndarray:
        """Validate a user-supplied theta array; return it as float64 ``(n, P)``.

        Raises :class:`WorldError` naming the world, the parameter and the offending value.

        Parameters
        ----------
        theta : array_like, shape (n, P)
            Parameter vectors, columns in the order of :attr:`parameters`.

        Returns
        -------
        ndarray of float64, shape (n, P)

        Raises
        ------
        WorldError
            Wrong shape, a non-real dtype, or (first offending draw) a non-finite value, a value
            outside its bounds at float32 precision, or a non-integer value of an ``integer`` parameter.
        """
        theta = np.asarray(theta)
        P = len(self.parameters)
        if theta.ndim != 2 or theta.shape[1] != P:
            raise WorldError(
                f"world {self.name!r}: theta must have shape (n, {P}) "
                f"[{', '.join(self.parameter_names)}]; got shape {theta.shape}"
            )
        if not np.issubdtype(theta.dtype, np.number) or np.iscomplexobj(theta):
            raise WorldError(f"world {self.name!r}: theta must be a real numeric array; got dtype {theta.dtype}")
        theta = theta.astype(np.float64)
        bad = ~self.within_bounds(theta)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            for j, p in enumerate(self.parameters):
                v = theta[i, j]
                v32 = np.float32(v)
                if not np.isfinite(v):
                    raise WorldError(f"world {self.name!r}: parameter {p.name!r} of draw {i} is not finite ({v})")
                if (p.low is not None and v32 < np.float32(p.low)) or (p.high is not None and v32 > np.float32(p.high)):
                    raise WorldError(
                        f"world {self.name!r}: parameter {p.name!r} of draw {i} is {v}, "
                        f"outside its bounds [{p.low}, {p.high}]"
                    )
                if p.kind == "integer" and v != round(v):
                    raise WorldError(
                        f"world {self.name!r}: parameter {p.name!r} of draw {i} must be an integer; got {v}"
                    )
        return theta

    def check_dtype(self, dtype) -> np.dtype:
        """The output dtype ``dtype`` as a :class:`numpy.dtype`.

        Parameters
        ----------
        dtype : numpy dtype, type or str
            float64 or float32.

        Returns
        -------
        numpy.dtype

        Raises
        ------
        WorldError
            For ``None`` or any other dtype.
        """
        try:
            dt = np.dtype(dtype) if dtype is not None else None
        except TypeError:
            dt = None
        if dt is None or dt not in OUTPUT_DTYPES:
            raise WorldError(f"world {self.name!r}: output dtype must be float64 or float32; got {dtype!r}")
        return dt

    def check_eps(self, eps: np.ndarray, n: int) -> np.ndarray:
        """Validate innovations for ``n`` draws.

        Parameters
        ----------
        eps : array_like, shape (n, T, S)
            Innovations, one column per shock of :attr:`shocks`.
        n : int
            Number of draws (rows of theta).

        Returns
        -------
        ndarray, shape (n, T, S)
            float32 input as it is (converting it is exact), anything else as float64 (no copy if it
            already is); never written to.

        Raises
        ------
        WorldError
            Wrong shape, ``T < 1``, or a non-finite innovation (the first one is named).
        """
        eps = np.asarray(eps)
        S = len(self.shocks)
        if eps.ndim != 3 or eps.shape[0] != n or eps.shape[2] != S:
            raise WorldError(
                f"world {self.name!r}: eps must have shape ({n}, T, {S}) "
                f"[shocks: {', '.join(self.shocks)}]; got shape {eps.shape}"
            )
        if eps.shape[1] < 1:
            raise WorldError(f"world {self.name!r}: eps must have at least one period; got T={eps.shape[1]}")
        if eps.dtype != np.float32:  # float32 (as stored) is kept: converting it to float64 is exact
            eps = np.asarray(eps, dtype=np.float64)  # no copy if already float64: worlds never write to eps
        if not np.all(np.isfinite(eps)):
            i, t, j = np.argwhere(~np.isfinite(eps))[0]
            raise WorldError(
                f"world {self.name!r}: innovation {self.shocks[j]!r} of draw {i} at t={t} "
                f"is not finite ({eps[i, t, j]})"
            )
        return eps

    def check_state(self, state: np.ndarray, n: int) -> np.ndarray:
        """Validate states entering a period for ``n`` draws (see :meth:`free_path`).

        Parameters
        ----------
        state : array_like, shape (n, len(state_variables))
            One row per draw, columns in the order of :attr:`state_variables`.
        n : int
            Number of draws (rows of theta).

        Returns
        -------
        ndarray of float64, shape (n, len(state_variables))
            A float64 copy (worlds may keep it).

        Raises
        ------
        WorldError
            Wrong shape, a non-real dtype, or a non-finite entry (the first one is named).
        """
        state = np.asarray(state)
        V = len(self.state_variables)
        if state.ndim != 2 or state.shape != (n, V):
            raise WorldError(
                f"world {self.name!r}: state must have shape ({n}, {V}) "
                f"[{', '.join(v.name for v in self.state_variables)}]; got shape {state.shape}"
            )
        if not np.issubdtype(state.dtype, np.number) or np.iscomplexobj(state):
            raise WorldError(f"world {self.name!r}: state must be a real numeric array; got dtype {state.dtype}")
        state = state.astype(np.float64)
        if not np.all(np.isfinite(state)):
            i, j = np.argwhere(~np.isfinite(state))[0]
            raise WorldError(
                f"world {self.name!r}: state variable {self.state_variables[j].name!r} of draw {i} "
                f"is not finite ({state[i, j]})"
            )
        return state

    @staticmethod
    def check_periods(T: int, name: str) -> int:
        """The number of periods ``T`` as an ``int``.

        Parameters
        ----------
        T : int
            Number of periods (a Python or numpy integer, not a bool).
        name : str
            World name, for the message.

        Returns
        -------
        int

        Raises
        ------
        WorldError
            If ``T`` is not a positive integer.
        """
        return checked_int(T, 1, f"world {name!r}: the number of periods T")

    @staticmethod
    def check_horizon(H: int, name: str) -> int:
        """The IRF horizon ``H`` as an ``int``.

        Parameters
        ----------
        H : int
            Last horizon (a Python or numpy integer, not a bool).
        name : str
            World name, for the message.

        Returns
        -------
        int

        Raises
        ------
        WorldError
            If ``H`` is not a non-negative integer.
        """
        return checked_int(H, 0, f"world {name!r}: IRF horizon H")
