"""The canonical form of a declared model, evaluated for a batch of parameter draws.

Equation ``k`` of the model file, ``lhs = rhs``, is read as ``lhs - rhs = 0`` and split into

    A[k] . E_t z[t+1] + B[k] . z[t] + C[k] . z[t-1] + D[k] . eps[t] = 0

(``z`` the variables in declaration order, ``eps`` the shocks in declaration order). Observable
``q`` is ``y_q[t] = G0[q] . z[t] + G1[q] . z[t-1]``. Every coefficient is a compiled expression of
the parameters, evaluated element-wise over the draws; which entries can be non-zero is fixed
per model (the *structure*), which is what the solver's variable classes come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from macro_data.worlds.declared.expressions import Coefficient, LinearForm, compile_coefficient
from macro_data.worlds.declared.structure import Structure, analyze

LEAD, CURRENT, LAG, SHOCK = 0, 1, 2, 3  # which matrix a term goes to: A, B, C, D


@dataclass(frozen=True)
class Entry:
    """One structurally non-zero coefficient: ``matrix[row, col] = coefficient(parameters)``."""

    matrix: int
    row: int
    col: int
    coefficient: Coefficient


class LinearSystem:
    """Compiled coefficient matrices of a declared model.

    Parameters
    ----------
    variables, shocks, parameters : sequence of str
        Names in declaration order (``parameters`` is the theta column order).
    equations : sequence of LinearForm
        ``lhs - rhs`` of each equation (keys ``(name, timing)``; constants already rejected).
    observables : sequence of LinearForm
        Each observable's linear form in current and lagged variables.
    """

    def __init__(
        self,
        variables: Sequence[str],
        shocks: Sequence[str],
        parameters: Sequence[str],
        equations: Sequence[LinearForm],
        observables: Sequence[LinearForm],
    ):
        self.variables = tuple(variables)
        self.shocks = tuple(shocks)
        self.parameters = tuple(parameters)
        var = {v: j for j, v in enumerate(self.variables)}
        shock = {s: j for j, s in enumerate(self.shocks)}
        self.entries: list[Entry] = []
        for row, form in enumerate(equations):
            for (name, timing), coef in form.terms.items():
                if name in shock:
                    self.entries.append(Entry(SHOCK, row, shock[name], compile_coefficient(coef)))
                else:
                    kind = {1: LEAD, 0: CURRENT, -1: LAG}[timing]
                    self.entries.append(Entry(kind, row, var[name], compile_coefficient(coef)))
        self.observation_entries: list[Entry] = []
        for row, form in enumerate(observables):
            for (name, timing), coef in form.terms.items():
                kind = {0: CURRENT, -1: LAG}[timing]
                self.observation_entries.append(Entry(kind, row, var[name], compile_coefficient(coef)))
        n = len(self.variables)
        nonzeros = tuple(frozenset((e.row, e.col) for e in self.entries if e.matrix == m) for m in (LEAD, CURRENT, LAG))
        shocks = frozenset((e.row, e.col) for e in self.entries if e.matrix == SHOCK)
        self.structure: Structure = analyze(n, nonzeros, shocks)  # raises StructurallySingular
        # Variables the observables need at t-1 beyond those the equations lag (e.g. c[t-1] in
        # consumption growth): the simulation state carries them too.
        self.observed_lags = tuple(sorted({e.col for e in self.observation_entries if e.matrix == LAG}))
        self.n_observables = len(observables)

    def _columns(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        th = np.ascontiguousarray(np.asarray(theta, dtype=np.float64).T)  # (P, n): contiguous columns
        return {name: th[j] for j, name in enumerate(self.parameters)}

    @staticmethod
    def _fill(entries: Sequence[Entry], mats: Sequence[np.ndarray], cols: dict[str, np.ndarray]) -> None:
        with np.errstate(all="ignore"):  # invalid arithmetic -> NaN/inf -> the draw is invalid
            for e in entries:
                mats[e.matrix][:, e.row, e.col] = e.coefficient(cols)

    def matrices(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(A, B, C, D)`` for the draws ``theta (k, P)``: ``(k, n, n)`` three times and ``(k, n, S)``."""
        k, n, S = np.asarray(theta).shape[0], len(self.variables), len(self.shocks)
        A, B, C = np.zeros((k, n, n)), np.zeros((k, n, n)), np.zeros((k, n, n))
        D = np.zeros((k, n, S))
        self._fill(self.entries, (A, B, C, D), self._columns(theta))
        return A, B, C, D

    def observation(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(G0, G1)``, each ``(k, q, n)``: ``y[t] = G0 z[t] + G1 z[t-1]``."""
        k, n, q = np.asarray(theta).shape[0], len(self.variables), self.n_observables
        G0, G1 = np.zeros((k, q, n)), np.zeros((k, q, n))
        self._fill(self.observation_entries, (None, G0, G1), self._columns(theta))
        return G0, G1


__all__ = ["LinearSystem", "Entry", "LEAD", "CURRENT", "LAG", "SHOCK"]
