"""The structure of a declared model: variable classes and its exogenous (purely backward) part.

Everything here depends on which coefficients are *structurally* non-zero (a term written in
an equation), never on parameter values, so it is computed once per model.

* ``lead``: variables written with ``(+1)``; ``lag``: written with ``(-1)``; the others are static.
* **Block decomposition.** A perfect matching of equations to variables (augmenting paths) orders
  the model into strongly connected blocks (Tarjan), each a set of variables whose matched
  equations only mention the block's own variables and those of blocks it depends on (the
  Dulmage-Mendelsohn fine decomposition, which does not depend on the matching chosen). No perfect
  matching means the equations cannot determine every variable whatever the parameters
  (*structurally singular*), which the model-file loader reports.
* **Exogenous part.** A block is exogenous when its equations have no leads and every block it
  depends on is exogenous: shock processes such as ``v = rho v(-1) + sigma e``, their auxiliary
  lags and static functions of them. They form a backward-looking system the rest of the model
  (the *core*) takes as given, so the solver handles them without the rational-expectations step
  (:mod:`.solver`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Structure:
    """Variable classes and structural non-zeros of ``A E_t z[t+1] + B z[t] + C z[t-1] + D eps[t] = 0``.

    ``nonzeros``: structurally non-zero entries ``(equation, variable)`` of ``A``, ``B``, ``C``
    (``None``: dense). ``exogenous_blocks``: the exogenous blocks as ``(variables, equations)``,
    upstream first (each block depends only on itself and earlier blocks); empty: no split.
    """

    n: int
    lead: tuple[int, ...]
    lag: tuple[int, ...]
    nonzeros: tuple[frozenset, frozenset, frozenset] | None = None
    exogenous_blocks: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = field(default=())
    exogenous_upstream: tuple[frozenset, ...] = field(default=())  # per block: the blocks it depends on
    shock_nonzeros: frozenset | None = None  # structurally non-zero entries (equation, shock) of D

    @property
    def static(self) -> tuple[int, ...]:
        s = set(self.lead) | set(self.lag)
        return tuple(v for v in range(self.n) if v not in s)

    @property
    def dynamic(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.lead) | set(self.lag)))

    @property
    def exogenous(self) -> tuple[int, ...]:
        return tuple(sorted(v for vs, _ in self.exogenous_blocks for v in vs))

    @property
    def exogenous_equations(self) -> tuple[int, ...]:
        return tuple(sorted(e for _, es in self.exogenous_blocks for e in es))

    def exogenous_support(self) -> dict[int, tuple[frozenset, frozenset]]:
        """For each exogenous variable, ``(lagged variables, shocks)`` its policy row can load on:
        those of its own block and the blocks upstream of it (exact zeros elsewhere)."""
        lag = set(self.lag)
        out = {}
        for b, (variables, _) in enumerate(self.exogenous_blocks):
            blocks = {b} | set(self.exogenous_upstream[b])
            reach = {v for j in blocks for v in self.exogenous_blocks[j][0]}
            equations = {e for j in blocks for e in self.exogenous_blocks[j][1]}
            shocks = (
                None if self.shock_nonzeros is None else frozenset(s for e, s in self.shock_nonzeros if e in equations)
            )
            for v in variables:
                out[v] = (frozenset(reach & lag), shocks)
        return out

    def support(self, matrix: int, columns: Sequence[int], by: str) -> list[list[int]]:
        """Structural support of ``M[:, columns]`` (``M`` = A, B, C for ``matrix`` 0, 1, 2): per column
        its non-zero rows (``by="column"``), or per row the positions of its non-zero columns
        (``by="row"``)."""
        cpos = {v: j for j, v in enumerate(columns)}
        if self.nonzeros is None:
            entries = [(r, j) for r in range(self.n) for j in range(len(cpos))]
        else:
            entries = [(r, cpos[v]) for r, v in self.nonzeros[matrix] if v in cpos]
        if by == "column":
            return [sorted(r for r, j in entries if j == c) for c in range(len(cpos))]
        return [sorted(j for r, j in entries if r == row) for row in range(self.n)]

    def restricted(self, variables: Sequence[int], equations: Sequence[int]) -> Structure:
        """The structure of the subsystem ``equations`` x ``variables`` (renumbered in the given order)."""
        vpos = {v: j for j, v in enumerate(variables)}
        epos = {e: i for i, e in enumerate(equations)}
        nonzeros = None
        if self.nonzeros is not None:
            nonzeros = tuple(
                frozenset((epos[r], vpos[v]) for r, v in nz if r in epos and v in vpos) for nz in self.nonzeros
            )
        lead = tuple(sorted(vpos[v] for v in self.lead if v in vpos))
        lag = tuple(sorted(vpos[v] for v in self.lag if v in vpos))
        return Structure(len(variables), lead, lag, nonzeros)


class StructurallySingular(ValueError):
    """The equations cannot determine every variable for any parameter values: the ``equations``
    (indices) involve only the fewer ``variables``."""

    def __init__(self, equations: list[int], variables: list[int]):
        self.equations, self.variables = equations, variables
        super().__init__(f"structurally singular: equations {equations} involve only the variables {variables}")

    def __reduce__(self):  # picklable despite the custom signature
        return (type(self), (self.equations, self.variables))


def _matching(n: int, incidence: list[set[int]]) -> list[int]:
    """``var_of_eq`` of a perfect matching of equations to variables (Kuhn's augmenting paths).

    Raises :class:`StructurallySingular` with a Hall violator: the equations reached by the failed
    search involve only the variables it visited, one fewer than the equations.
    """
    eq_of_var = [-1] * n

    def augment(eq: int, visited: set[int]) -> bool:
        for v in sorted(incidence[eq]):
            if v not in visited:
                visited.add(v)
                if eq_of_var[v] < 0 or augment(eq_of_var[v], visited):
                    eq_of_var[v] = eq
                    return True
        return False

    for eq in range(n):
        visited: set[int] = set()
        if not augment(eq, visited):
            equations = sorted({eq} | {eq_of_var[v] for v in visited})
            raise StructurallySingular(equations, sorted(visited))
    var_of_eq = [-1] * n
    for v, eq in enumerate(eq_of_var):
        var_of_eq[eq] = v
    return var_of_eq


def _strong_components(n: int, successors: list[set[int]]) -> list[list[int]]:
    """Strongly connected components, each listed after every component it reaches (Tarjan)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if root in index:
            continue
        work = [(root, iter(sorted(successors[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(successors[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out  # Tarjan emits a component only after all components reachable from it


def analyze(n: int, nonzeros: tuple[Iterable, Iterable, Iterable], shock_nonzeros: Iterable | None = None) -> Structure:
    """The :class:`Structure` of a model from its structural non-zeros: ``(A, B, C)`` entries
    ``(equation, variable)`` and, optionally, ``D`` entries ``(equation, shock)``.

    Raises :class:`StructurallySingular` if no perfect matching of equations to variables exists.
    """
    nz = tuple(frozenset(entries) for entries in nonzeros)
    lead = tuple(sorted({v for _, v in nz[0]}))
    lag = tuple(sorted({v for _, v in nz[2]}))
    incidence = [set() for _ in range(n)]
    for entries in nz:
        for r, v in entries:
            incidence[r].add(v)
    var_of_eq = _matching(n, incidence)
    eq_of_var = {v: e for e, v in enumerate(var_of_eq)}
    successors = [incidence[eq_of_var[v]] - {v} for v in range(n)]
    leads_in = {r for r, _ in nz[0]}
    exogenous: set[int] = set()
    blocks, upstream = [], []
    block_of: dict[int, int] = {}
    for comp in _strong_components(n, successors):  # upstream (depended-upon) blocks first
        eqs = [eq_of_var[v] for v in comp]
        reached = set().union(*(successors[v] for v in comp)) - set(comp)
        if not any(e in leads_in for e in eqs) and reached <= exogenous:
            exogenous |= set(comp)
            direct = {block_of[v] for v in reached}
            upstream.append(frozenset(direct.union(*(upstream[j] for j in direct))))
            for v in comp:
                block_of[v] = len(blocks)
            blocks.append((tuple(comp), tuple(sorted(eqs))))
    shocks = None if shock_nonzeros is None else frozenset(shock_nonzeros)
    return Structure(n, lead, lag, nz, tuple(blocks), tuple(upstream), shocks)


__all__ = ["Structure", "StructurallySingular", "analyze"]
