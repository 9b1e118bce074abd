"""DeclaredWorld: a simulator world whose model is a linear rational-expectations model file.

:func:`load_world_file` reads ``datasets/worlds/<world>.yaml`` (:mod:`.model_file`) and returns a
:class:`DeclaredWorld`, which implements the :class:`~macro_data.worlds.base.World` protocol like
the built-in worlds: independent uniform priors on the declared bounds drawn through
:mod:`macro_data.worlds.sampling` (streams keyed by the world's name), validity = a unique stable
solution, float64 simulation with float32 or float64 outputs, IRFs to ``+1 sd`` innovations, and
the two held-out split regions.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import macro_data.worlds.declared.simulation as simulation
from macro_data.errors import WorldError
from macro_data.worlds.base import CornerRule, LastFew, Observable, Priors, Simulation, SliceRule, World
from macro_data.worlds.declared.model_file import ModelFile, parse_model_file, read_model_file
from macro_data.worlds.declared.solver import NON_FINITE, Policy, solve_lre
from macro_data.worlds.declared.system import CURRENT, LinearSystem
from macro_data.worlds.ids import BUILTIN_IDS

# Split regions (the built-ins' rule): fixed thresholds, each region ~2.5 % of the prior mass.
SLICE_MASS = 0.025
CORNER_MASS = 0.025
SOLVE_CHUNK = 1024  # draws per solver pass (bounds the solver's temporaries; results do not depend on it)
_PACKAGE = Path(__file__).resolve().parent
_WORLDS = _PACKAGE.parent
# Source files whose code produces a declared world's data (besides the model file itself).
CODE_FILES = tuple(sorted(_PACKAGE.glob("*.py"))) + tuple(
    _WORLDS / f for f in ("base.py", "linear_re.py", "sampling.py")
)


def tail_threshold(low: float, high: float, mass: float, side: str) -> float:
    """The threshold beyond which a uniform on ``[low, high]`` has ``mass`` on ``side``."""
    return high - mass * (high - low) if side == "high" else low + mass * (high - low)


def corner_tail_mass(slice_parameter: str, slice_side: str, corner: tuple[str, str], sides: tuple[str, str]) -> float:
    """Tail mass ``q`` of each corner parameter so that corner-minus-slice holds :data:`CORNER_MASS`.

    With independent uniform priors, both corner tails of mass ``q`` and the slice of mass ``s``:

    * slice parameter not in the corner: ``q^2 (1 - s) = c``;
    * slice parameter in the corner on the same side (its slice tail inside its corner tail):
      ``(q - s) q = c``;
    * slice parameter in the corner on the other side (disjoint tails): ``q^2 = c``.
    """
    s, c = SLICE_MASS, CORNER_MASS
    if slice_parameter not in corner:
        return math.sqrt(c / (1.0 - s))
    if sides[corner.index(slice_parameter)] == slice_side:
        return 0.5 * (s + math.sqrt(s * s + 4.0 * c))
    return math.sqrt(c)


def simulation_layout(system: LinearSystem) -> tuple[simulation.Layout, list[tuple[int, int, int]]]:
    """The model's :class:`.simulation.Layout` and, per observable-term coefficient column, its
    ``(observable, matrix, variable)`` in the observation matrices.

    State: the variables the equations or observables lag, core ones first (dense rows), then the
    exogenous ones, each with its structural support (lagged variables and shocks of its own and
    upstream blocks). Extra rows: the other variables the observables read at ``t``.
    """
    st = system.structure
    exogenous = set(st.exogenous)
    lagged = sorted(set(st.lag) | set(system.observed_lags))
    core = [v for v in lagged if v not in exogenous]
    exo = [v for v in lagged if v in exogenous]
    state = tuple(core + exo)
    ns, S = len(state), len(system.shocks)
    support = st.exogenous_support()
    supports = []
    for v in exo:
        variables, shocks = support[v]
        cols = sorted(state.index(u) for u in variables if u in state)
        supports.append(tuple(cols + [ns + j for j in (range(S) if shocks is None else sorted(shocks))]))
    current = {e.col for e in system.observation_entries if e.matrix == CURRENT}
    extra = tuple(sorted(current - set(state)))
    rows = state + extra
    terms: list[list[tuple[int, int, int]]] = [[] for _ in range(system.n_observables)]
    entries = []
    for e in system.observation_entries:  # in the order written: a fixed summation order
        kind, position = (
            (simulation.CURRENT, rows.index(e.col)) if e.matrix == CURRENT else (simulation.LAGGED, state.index(e.col))
        )
        terms[e.row].append((kind, position, len(entries)))
        entries.append((e.row, e.matrix, e.col))
    layout = simulation.Layout(state, extra, len(core), tuple(supports), tuple(tuple(t) for t in terms), S)
    return layout, entries


@dataclass
class Solved:
    """A batch's policy and its state-space form (:func:`.simulation.state_space`)."""

    policy: Policy
    K: np.ndarray  # (k, ns + ne, ns + S); NaN for invalid draws
    coefs: np.ndarray  # (k, n_terms): the observables' coefficients


class DeclaredWorld(World):
    """A world declared by a linear rational-expectations model file.

    For every parameter draw it solves the model as written (``lhs - rhs = 0``, one equation per
    variable, steady state zero)::

        A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0
        y[t] = G0 z[t] + G1 z[t-1]                  (observables: output, inflation, rate, extras)

    for the unique stable policy ``z[t] = P z_L[t-1] + Q eps[t]`` (:mod:`.solver`: static
    elimination, a first-order pencil, the matrix sign function, Blanchard-Kahn). The equations
    receive the unit innovations ``eps[t]`` and carry their scale themselves (``sigma_j * eps_j``).
    Trajectories start from the steady state (``z[-1] = 0``; ``y[0..T-1]`` driven by
    ``eps[0..T-1]``); IRFs are the responses to ``eps_j = +1`` at ``h = 0`` from the steady state.
    A draw is valid iff it is inside the bounds and the model has a unique stable solution.
    The model's own equations are in :attr:`equations` and in the design notes.

    Provenance attributes: :attr:`model_text` (the file's text), :attr:`model_sha256` (SHA-256 of
    its bytes), :attr:`model_file` (its name), :attr:`code_digest` (SHA-256 over the model file and
    the source that turns it into data) and :attr:`code_version` (``<world>-<12 hex>``).
    """

    linear = True

    def __init__(self, model: ModelFile):
        self.model = model
        self.name = model.world
        self.description = model.description
        self.parameters = model.parameters
        self.shocks = model.shocks
        obs = [
            Observable(o.name, o.unit, o.expr + (f": {o.description}" if o.description else ""))
            for o in model.observables
        ]
        self.observables, self.extras = tuple(obs[:3]), tuple(obs[3:])
        self.equations = model.equations
        self.system = LinearSystem(
            model.variables, model.shocks, self.parameter_names, model.forms, [o.form for o in model.observables]
        )
        self.layout, self._term_entries = simulation_layout(self.system)
        self.state = self.layout.state
        # the state entering t: the lagged variables z_L[t-1] of the policy z[t] = P z_L[t-1] + Q eps[t],
        # then the other variables an observable reads at t-1 (e.g. c[t-1] in consumption growth)
        lag = self.system.structure.lag
        self._observed_only = tuple(v for v in self.system.observed_lags if v not in lag)
        self.state_variables = tuple(
            Observable(f"{model.variables[v]}_lag", "model units", f"{model.variables[v]}[t-1] (a lagged variable)")
            for v in lag
        ) + tuple(
            Observable(
                f"{model.variables[v]}_lag",
                "model units",
                f"{model.variables[v]}[t-1] (read by an observable at t; the equations do not lag it)",
            )
            for v in self._observed_only
        )
        # column of the state variables for each entry of the simulation state (layout.state)
        self._state_columns = [(*lag, *self._observed_only).index(v) for v in self.layout.state]
        self.model_text = model.text
        self.model_sha256 = model.sha256
        self.model_file = model.path.name
        digest = hashlib.sha256(b"model\0" + model.text.encode() + b"\0")
        for f in CODE_FILES:
            digest.update(f"{f.parent.name}/{f.name}".encode() + b"\0" + f.read_bytes() + b"\0")
        self.code_digest = digest.hexdigest()
        self.slice_rule, self.corner_rule, self._corner_signs = self._split_rules(model)
        self.design_notes = self._notes(model)
        # validation of a batch's candidates, then simulate and irfs of the accepted draws: two entries
        self._solutions = LastFew(size=2)

    def __reduce__(self):
        """Pickled as its file name and text (rebuilt by parsing them again): the compiled
        coefficients and the cache's lock are not picklable themselves."""
        return (_rebuild, (str(self.model.path), self.model_text.encode("utf-8")))

    # ---- identity and description ---------------------------------------------------------
    @property
    def code_version(self) -> str:
        return f"{self.name}-{self.code_digest[:12]}"

    def _split_rules(self, model: ModelFile) -> tuple[SliceRule, CornerRule, tuple[float, float]]:
        sp = model.splits
        bounds = {p.name: (p.low, p.high) for p in self.parameters}
        lo, hi = bounds[sp.slice_parameter]
        t = tail_threshold(lo, hi, SLICE_MASS, sp.slice_side)
        direction = "above" if sp.slice_side == "high" else "below"
        slice_rule = SliceRule(
            sp.slice_parameter,
            t,
            direction,
            f"{sp.slice_parameter} {'>' if direction == 'above' else '<'} {t:.6g}: the {SLICE_MASS:.1%} of its uniform "
            f"prior on [{lo:g}, {hi:g}] on the {sp.slice_side} side (fixed from the bounds; the realized fraction "
            "is lower by the share of rejected draws inside the region)",
        )
        q = corner_tail_mass(sp.slice_parameter, sp.slice_side, sp.corner_parameters, sp.corner_sides)
        stats, thresholds, signs, parts = [], [], [], []
        for name, side in zip(sp.corner_parameters, sp.corner_sides):
            lo, hi = bounds[name]
            t = tail_threshold(lo, hi, q, side)
            sign = 1.0 if side == "high" else -1.0  # the split code compares 'above': negate a low side
            stats.append(name if side == "high" else f"-{name}")
            thresholds.append(sign * t)
            signs.append(sign)
            parts.append(f"{name} {'>' if side == 'high' else '<'} {t:.6g}")
        corner_rule = CornerRule(
            stats[0],
            thresholds[0],
            stats[1],
            thresholds[1],
            f"outside the slice, {' and '.join(parts)}: each the {q:.4%} tail of its uniform prior on its side, so "
            f"that the corner outside the slice holds {CORNER_MASS:.1%} of the prior mass (independent uniforms; "
            "a low side is compared as the negated parameter above the negated threshold)",
        )
        return slice_rule, corner_rule, (signs[0], signs[1])

    def _notes(self, model: ModelFile) -> tuple[str, ...]:
        structure = self.system.structure
        v = model.variables
        names = lambda idx: ", ".join(v[i] for i in idx) or "none"  # noqa: E731
        return (
            f"declared world from model file {model.path.name} (sha256 {model.sha256}); equations as written, "
            "read as lhs - rhs = 0 with x(+1) = E_t x[t+1] and x(-1) = x[t-1]: " + "; ".join(model.equations),
            "canonical form A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0, steady state zero; policy "
            "z[t] = P z_L[t-1] + Q eps[t] with z_L the lagged variables "
            f"({names(structure.lag)}); forward-looking: {names(structure.lead)}; static: {names(structure.static)}",
            "solution: static variables eliminated by QR, the first-order pencil in [z_L[t-1]; z_F[t]] split into "
            "stable and unstable parts by the matrix sign function of its Cayley transform (batched, no QZ); "
            "Blanchard-Kahn: valid iff the number of unstable roots (infinite ones included) equals the number of "
            "forward-looking variables, the rank condition holds and the solution satisfies the equations to "
            "rounding; other draws are rejected and redrawn",
            "the equations receive unit-variance innovations eps and carry their scale; trajectories start from the "
            "steady state (z[-1] = 0) with y[0..T-1] driven by eps[0..T-1]; IRFs are the responses to eps_j = +1 at "
            "h = 0, so traj[t] = sum_h sum_j irfs[j, h] eps[t-h, j]",
            "observables: " + "; ".join(f"{o.name} = {o.expr} [{o.unit}]" for o in model.observables),
            f"splits: slice {self.slice_rule.description}; corner {self.corner_rule.description}",
            *model.notes,
        )

    def describe(self) -> dict:
        out = super().describe()
        out["model"] = {
            "kind": "declared linear rational-expectations model",
            "file": self.model_file,
            "sha256": self.model_sha256,
            "text": self.model_text,
            "code_digest": self.code_digest,
            "variables": list(self.model.variables),
            "equations": list(self.model.equations),
            "canonical_form": "A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0",
        }
        return out

    # ---- drawing and validity -----------------------------------------------------------------
    def propose(self, rng: np.random.Generator, n: int, priors: Priors) -> np.ndarray:
        return self.propose_independent(rng, n, priors)

    def _build(self, theta: np.ndarray) -> Solved:
        parts = []
        for lo in range(0, max(theta.shape[0], 1), SOLVE_CHUNK):
            th = theta[lo : lo + SOLVE_CHUNK]
            A, B, C, D = self.system.matrices(th)
            policy = solve_lre(A, B, C, D, self.system.structure)
            G0, G1 = self.system.observation(th)
            G = (None, G0, G1)
            coefs = np.stack([G[matrix][:, r, v] for r, matrix, v in self._term_entries], axis=1)
            bad = policy.valid & ~np.isfinite(coefs).all(axis=1)  # e.g. an observable's log of a negative
            policy.valid[bad], policy.problem[bad] = False, NON_FINITE
            with np.errstate(all="ignore"):
                K, coefs = simulation.state_space(self.layout, policy.P, policy.Q, policy.lagged, coefs)
            K[~policy.valid] = np.nan
            parts.append(Solved(policy, K, coefs))
        if len(parts) == 1:
            return parts[0]
        cat = lambda name: np.concatenate([getattr(p.policy, name) for p in parts])  # noqa: E731
        policy = Policy(cat("P"), cat("Q"), cat("valid"), cat("problem"), cat("n_unstable"), parts[0].policy.lagged)
        return Solved(policy, np.concatenate([p.K for p in parts]), np.concatenate([p.coefs for p in parts]))

    def solution(self, theta: np.ndarray) -> Solved:
        """The solution of every draw of ``theta`` (cached for the last few batches)."""
        return self._solutions.get(theta, self._build)

    def is_valid(self, theta: np.ndarray) -> np.ndarray:
        return self.solution(np.asarray(theta, dtype=np.float64)).policy.valid.copy()

    def _solved_or_raise(self, theta: np.ndarray) -> Solved:
        sol = self.solution(theta)
        valid = sol.policy.valid
        if not valid.all():
            i = int(np.flatnonzero(~valid)[0])
            values = ", ".join(f"{p.name}={theta[i, j]:.6g}" for j, p in enumerate(self.parameters))
            raise WorldError(
                f"world {self.name!r}: draw {i} has no valid solution ({sol.policy.describe_problem(i)}): {values}"
            )
        return sol

    def policy(self, theta: np.ndarray) -> Policy:
        """The policy ``z[t] = P z_L[t-1] + Q eps[t]`` of checked draws (``policy.lagged`` names ``z_L``)."""
        return self._solved_or_raise(self.check_theta(theta)).policy

    # ---- simulation ---------------------------------------------------------------------------
    def _simulate(self, theta: np.ndarray, eps: np.ndarray, metadata: Mapping[str, np.ndarray]) -> Simulation:
        return self._simulate_as(theta, eps, metadata, np.dtype(np.float64))

    def _simulate_as(self, theta, eps, metadata, dtype) -> Simulation:
        sol = self._solved_or_raise(theta)
        n, T, S = eps.shape
        traj = np.empty((n, T, 3), dtype=dtype)
        extras = np.empty((n, T, len(self.extras)), dtype=dtype) if self.extras else None
        m = simulation.chunk_size(self.layout.dense, sol.K.shape[2])
        for lo in range(0, n, m):
            hi = min(lo + m, n)
            outs = [traj[lo:hi]] + ([extras[lo:hi]] if extras is not None else [])
            simulation.simulate(self.layout, sol.K[lo:hi], sol.coefs[lo:hi], eps[lo:hi], outs)
        return Simulation(trajectories=traj, extras=extras)

    def _irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        return self._irfs_as(theta, H, np.dtype(np.float64))

    def _irfs_as(self, theta, H, dtype) -> np.ndarray:
        return self._responses(theta, H, dtype, extras=False)

    def irfs_all(self, theta: np.ndarray, H: int, dtype=np.float64) -> np.ndarray:
        """IRFs of the canonical observables and the extras, ``(n, S, H + 1, 3 + n_extras)``."""
        return self._responses(
            self.check_theta(theta), self.check_horizon(H, self.name), self.check_dtype(dtype), extras=True
        )

    def _responses(self, theta: np.ndarray, H: int, dtype, extras: bool) -> np.ndarray:
        sol = self._solved_or_raise(theta)
        n, S = theta.shape[0], len(self.shocks)
        q = 3 + (len(self.extras) if extras else 0)
        out = np.empty((n, S, H + 1, q), dtype=dtype)
        m = simulation.chunk_size(self.layout.dense, len(self.state))
        for lo in range(0, n, m):
            hi = min(lo + m, n)
            simulation.impulse_responses(self.layout, sol.K[lo:hi], sol.coefs[lo:hi], H, [out[lo:hi]])
        return out

    def _state_path(self, theta, eps, metadata, sim) -> np.ndarray:
        """``z_L[t-1]``, then ``z[t-1]`` of the variables only the observables lag, by the policy recursion,
        summed term by term in a fixed order (batch-independent)."""
        pol = self._solved_or_raise(theta).policy
        lag = list(pol.lagged)
        rows = lag + list(self._observed_only)
        n, T, S = eps.shape
        out = np.zeros((n, T, len(rows)))
        zl = np.zeros((n, len(lag)))
        for t in range(T - 1):
            new = np.zeros((n, len(rows)))
            for a, v in enumerate(rows):
                acc = np.zeros(n)
                for b in range(len(lag)):
                    acc = acc + pol.P[:, v, b] * zl[:, b]
                for j in range(S):
                    acc = acc + pol.Q[:, v, j] * eps[:, t, j]
                new[:, a] = acc
            zl = new[:, : len(lag)]
            out[:, t + 1] = new
        return out

    def _free_path(self, theta: np.ndarray, state: np.ndarray, T: int) -> np.ndarray:
        """The path with zero innovations from the state entering period 0.

        With ``z[-1]`` given on the state variables (the lagged variables ``z_L`` and those only the
        observables lag), the policy and the observation equation with ``eps = 0`` give::

            z[t] = P z_L[t-1],    y[t] = G0 z[t] + G1 z[t-1],    t = 0 .. T-1

        so ``z[t] = P_L^(t+1) z_L[-1]`` on the lagged rows. Computed by the recursion of
        :meth:`_simulate` started from that state (:func:`.simulation.simulate`).

        Parameters
        ----------
        theta : ndarray of float64, shape (n, P)
            Checked parameter vectors.
        state : ndarray of float64, shape (n, len(state_variables))
            ``z[-1]`` of the variables of :attr:`state_variables`, model units.
        T : int
            Number of periods, ``>= 1``.

        Returns
        -------
        ndarray of float64, shape (n, T, 3)
            The canonical observables, in the units the model file declares.

        Raises
        ------
        WorldError
            If a draw has no valid solution.
        """
        sol = self._solved_or_raise(theta)
        n, S = theta.shape[0], len(self.shocks)
        traj = np.empty((n, T, 3))
        initial = state[:, self._state_columns]
        m = simulation.chunk_size(self.layout.dense, sol.K.shape[2])
        zeros = np.zeros((min(n, m), T, S))
        for lo in range(0, n, m):
            hi = min(lo + m, n)
            simulation.simulate(
                self.layout, sol.K[lo:hi], sol.coefs[lo:hi], zeros[: hi - lo], [traj[lo:hi]], initial[lo:hi]
            )
        return traj

    def variable_irfs(self, theta: np.ndarray, H: int) -> np.ndarray:
        """Responses of every endogenous variable (model units), ``(n, S, H + 1, n_variables)``."""
        pol = self.policy(theta)
        return simulation.variable_responses(pol.P, pol.Q, pol.lagged, self.check_horizon(H, self.name))

    # ---- splits -------------------------------------------------------------------------------
    def slice_statistic(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(theta, dtype=np.float64)[:, self.index(self.model.splits.slice_parameter)].copy()

    def corner_statistics(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        th = np.asarray(theta, dtype=np.float64)
        a, b = self.model.splits.corner_parameters
        return self._corner_signs[0] * th[:, self.index(a)], self._corner_signs[1] * th[:, self.index(b)]


def _rebuild(path: str, data: bytes) -> DeclaredWorld:
    return DeclaredWorld(parse_model_file(path, data, builtin_ids=BUILTIN_IDS))


def load_world_file(path: str | Path) -> DeclaredWorld:
    """The world declared by the model file ``path`` (``<world>.yaml``).

    Parameters
    ----------
    path : str or Path
        A model file in the format of ``docs/declared_worlds.md``.

    Returns
    -------
    DeclaredWorld
        The world, ready for :mod:`macro_data.worlds.sampling` and the pipeline.

    Raises
    ------
    WorldFileError
        Naming the file, the line and column, and the problem.
    """
    return DeclaredWorld(read_model_file(path, builtin_ids=BUILTIN_IDS))


__all__ = [
    "CORNER_MASS",
    "DeclaredWorld",
    "SLICE_MASS",
    "Solved",
    "corner_tail_mass",
    "load_world_file",
    "simulation_layout",
    "tail_threshold",
]
