"""Declared-world model files: read, validate and turn into a :class:`ModelFile`.

A model file (``datasets/worlds/<world>.yaml``, format in ``docs/declared_worlds.md``, schema
``schemas/world.schema.json``) declares variables, shocks, parameters with bounds, one equation per
variable, the observables and the held-out split regions. Loading it:

1. reads the bytes (size capped) and hashes them (SHA-256 of the file's bytes is the provenance);
2. parses the YAML strictly (:mod:`macro_data.config_yaml`: safe tags, no aliases, no duplicate
   keys) with one change: no YAML 1.1 guessing of booleans, nulls, dates or YAML's own number
   forms. A plain scalar is a number exactly when it matches :data:`NUMBER` (the expression
   grammar's numbers, optionally signed: ``1e-3``, ``2.``, ``.5``, ``-4``), else a string. So
   ``low: 1e-3`` is a number (YAML 1.1 would make it the string ``"1e-3"``), ``on``/``no`` stay
   names, and ``1_000`` or ``0x10`` are refused rather than silently read;
3. validates against the JSON Schema, then the rules a schema cannot express (world id equal to
   the file name and not a built-in world; names disjoint and not function names; finite bounds
   with ``low < high`` and the default inside; as many equations as variables; every variable,
   shock and parameter used; observables ``output``, ``inflation``, ``rate`` first, in this order
   and in the canonical units; split parameters declared and distinct);
4. parses every equation and observable (:mod:`.expressions`): linear in variables and shocks,
   no constant terms (the steady state is zero), leads and lags of one period, observables of
   current and lagged variables only; and checks that the equations can determine every
   variable (:func:`.structure.analyze`: otherwise they are *structurally singular*).

Every problem raises :class:`macro_data.errors.WorldFileError` naming the file, the 1-based line
and column in the file, and the problem. For an expression the column points into the equation
as written in the file (plain, quoted and folded scalars alike).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from macro_data import schemas
from macro_data.config_yaml import StrictSafeLoader
from macro_data.errors import WorldFileError
from macro_data.worlds.base import CANONICAL_OBSERVABLES, Parameter
from macro_data.worlds.declared.expressions import (
    FUNCTIONS,
    NUMBER_PATTERN,
    ExpressionError,
    LinearForm,
    Number,
    Symbols,
    equation_form,
    linearize,
    parameters_in,
    parse_expression,
)
from macro_data.worlds.declared.structure import StructurallySingular, analyze
from macro_data.worlds.ids import WORLD_ID

MAX_FILE_BYTES = 1_000_000
NUMBER = re.compile(r"[-+]?" + NUMBER_PATTERN + r"\Z")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
SCHEMA = "world"
_NUMBER_TAG = "tag:macro-data.invalid,2026:number"


class ModelFileLoader(StrictSafeLoader):
    """:class:`StrictSafeLoader` whose only implicit type is :data:`NUMBER`; everything else is a string."""

    yaml_implicit_resolvers: dict = {}


ModelFileLoader.add_implicit_resolver(_NUMBER_TAG, NUMBER, list("+-.0123456789"))
ModelFileLoader.add_constructor(_NUMBER_TAG, lambda loader, node: float(loader.construct_scalar(node)))


@dataclass(frozen=True)
class ObservableSpec:
    name: str
    unit: str
    expr: str
    description: str
    form: LinearForm


@dataclass(frozen=True)
class SplitSpec:
    """``slice``: one parameter beyond its threshold on ``side``; ``corner``: two parameters jointly."""

    slice_parameter: str
    slice_side: str
    corner_parameters: tuple[str, str]
    corner_sides: tuple[str, str]


@dataclass(frozen=True)
class ModelFile:
    """A validated model file. ``text``/``sha256`` are the file's text and the SHA-256 of its bytes."""

    path: Path
    text: str
    sha256: str
    world: str
    description: str
    variables: tuple[str, ...]
    shocks: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    equations: tuple[str, ...]
    forms: tuple[LinearForm, ...]
    observables: tuple[ObservableSpec, ...]
    splits: SplitSpec
    notes: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Positions in the file
# ---------------------------------------------------------------------------------------------
def _same_key(source: str, key: Any) -> bool:
    """Whether a mapping key's source text is ``key`` (a name, or a number as the loader read it)."""
    if isinstance(key, str):
        return source == key
    return bool(NUMBER.match(source)) and float(source) == key


class Source:
    """The file's text, its parsed node tree, and (line, column) lookups (1-based)."""

    def __init__(self, path: Path, text: str, root: yaml.Node | None):
        self.path = path
        self.text = text
        self.root = root
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_col(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, index) - 1
        return line + 1, index - self.line_starts[line] + 1

    def node(self, path: tuple) -> tuple[yaml.Node | None, yaml.Node | None]:
        """``(key node, value node)`` at ``path`` (keys and list indices); the deepest found if missing."""
        key, node = None, self.root
        for step in path:
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and _same_key(k.value, step):
                        key, node = k, v
                        break
                else:
                    return key, node
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
                key, node = None, node.value[step]
            else:
                return key, node
        return key, node

    def error(self, problem: str, path: tuple = (), *, at_key: bool = False) -> WorldFileError:
        """The error for ``problem`` at the value (or key) at ``path``."""
        key, node = self.node(path)
        target = key if (at_key and key is not None) else node
        if target is None:
            return WorldFileError(self.path, problem)
        line, col = target.start_mark.line + 1, target.start_mark.column + 1
        return WorldFileError(self.path, problem, line, col)

    def expression_error(self, exc: ExpressionError, path: tuple, text: str) -> WorldFileError:
        """The error for ``exc`` (a position in ``text``) at its line and column in the file."""
        _, node = self.node(path)
        index = self.expression_index(node, text, exc.position)
        if index is None:
            return self.error(f"{exc.message} (at character {exc.position + 1} of {text!r})", path)
        line, col = self.line_col(index)
        return WorldFileError(self.path, f"{exc.message} in {text.strip()!r}", line, col)

    def expression_index(self, node: yaml.Node | None, text: str, position: int) -> int | None:
        """File index of character ``position`` of the scalar ``text`` held by ``node``.

        The scalar's characters are matched, in order, to the node's source (quotes, escapes,
        line folding and indentation are skipped over), so the result is exact for plain, quoted
        and block scalars; ``position == len(text)`` maps just after the last character.
        """
        if node is None or node.start_mark is None or node.end_mark is None:
            return None
        start, end = node.start_mark.index, node.end_mark.index
        region = self.text[start:end]
        j = 0
        if getattr(node, "style", None) in ("'", '"'):
            j = 1  # skip the opening quote
        index = None
        for ch in text[: position + 1]:
            if ch.isspace():
                continue
            k = region.find(ch, j)
            if k < 0:
                return None
            j = k + 1
            index = start + k
        if position >= len(text.rstrip()):  # the end of the expression: just after its last character
            return None if index is None else index + 1
        return index


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WorldFileError(path, f"cannot read ({exc.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise WorldFileError(path, f"{size} bytes is larger than the {MAX_FILE_BYTES}-byte limit")
    return path.read_bytes()


def _decode(path: Path, data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise WorldFileError(path, f"{len(data)} bytes is larger than the {MAX_FILE_BYTES}-byte limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorldFileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _parse_yaml(path: Path, text: str) -> tuple[Any, yaml.Node | None]:
    loader = ModelFileLoader(text)
    loader.what = "a world file"
    try:
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        if mark is None:
            raise WorldFileError(path, f"invalid YAML: {problem}") from None
        raise WorldFileError(path, f"invalid YAML: {problem}", mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as exc:
        raise WorldFileError(path, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise WorldFileError(path, "nesting too deep") from None
    finally:
        loader.dispose()
    return document, root


def _non_string_keys(document: Any, path: tuple = ()) -> tuple | None:
    """Path of the first mapping key that is not a string (e.g. a number used as a name)."""
    if isinstance(document, dict):
        for k, v in document.items():
            if not isinstance(k, str):
                return path + (k,)
            found = _non_string_keys(v, path + (k,))
            if found is not None:
                return found
    elif isinstance(document, list):
        for i, v in enumerate(document):
            found = _non_string_keys(v, path + (i,))
            if found is not None:
                return found
    return None


def _number_source(src: Source, path: tuple, value: Any) -> Any:
    """An expression field that YAML read as a number, as its source text (numbers are expressions too)."""
    if isinstance(value, float):
        _, node = src.node(path)
        if isinstance(node, yaml.ScalarNode):
            return node.value
    return value


def _schema_errors(src: Source, document: Any) -> None:
    errors = schemas.errors(SCHEMA, document)
    if not errors:
        return
    lines, first = [], None
    for e in errors[:10]:
        path = tuple(e.absolute_path)
        at_key = False
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            allowed = set(e.schema.get("properties", {}))
            extra = [k for k in e.instance if k not in allowed]
            if extra:
                path, at_key = path + (extra[0],), True
        err = src.error(f"field {schemas.location(e)}: {e.message} (rule: {e.validator})", path, at_key=at_key)
        first = first or err
        where = f"line {err.line}, column {err.column}: " if err.line else ""
        lines.append(where + err.problem)
    raise WorldFileError(
        src.path, f"does not match schemas/{SCHEMA}.schema.json:\n  " + "\n  ".join(lines), first.line, first.column
    )


def _check_names(src: Source, doc: dict) -> None:
    seen: dict[str, tuple] = {}
    groups = [
        ("variables", [(v, ("variables", i)) for i, v in enumerate(doc["variables"])]),
        ("shocks", [(s, ("shocks", i)) for i, s in enumerate(doc["shocks"])]),
        ("parameters", [(p, ("parameters", p)) for p in doc["parameters"]]),
    ]
    for group, items in groups:
        for name, path in items:
            at_key = group == "parameters"
            if not NAME.fullmatch(name):
                raise src.error(f"{group[:-1]} name {name!r} must match [A-Za-z][A-Za-z0-9_]*", path, at_key=at_key)
            if name in FUNCTIONS:
                raise src.error(
                    f"{group[:-1]} name {name!r} is reserved for the function {name}()", path, at_key=at_key
                )
            if name in seen:
                other = seen[name][0]
                what = "twice" if other == group else f"both as a {other[:-1]} and as a {group[:-1]}"
                raise src.error(f"name {name!r} is declared {what}; names must be unique", path, at_key=at_key)
            seen[name] = (group, path)


def _parameters(src: Source, doc: dict) -> tuple[Parameter, ...]:
    out = []
    for name, spec in doc["parameters"].items():
        low, high = spec["low"], spec["high"]
        for key in ("low", "high", "default"):
            if key in spec and not math.isfinite(spec[key]):
                raise src.error(
                    f"parameter {name!r}: {key} must be a finite number; got {spec[key]}", ("parameters", name, key)
                )
        if not low < high:
            raise src.error(
                f"parameter {name!r}: bounds must satisfy low < high; got low={low}, high={high}",
                ("parameters", name, "low"),
            )
        default = spec.get("default")
        if default is not None and not low <= default <= high:
            raise src.error(
                f"parameter {name!r}: default {default} is outside its bounds [{low}, {high}]",
                ("parameters", name, "default"),
            )
        out.append(
            Parameter(
                name,
                spec.get("unit", ""),
                spec.get("description", ""),
                float(low),
                float(high),
                None if default is None else float(default),
            )
        )
    return tuple(out)


def _forms(src: Source, doc: dict, symbols: Symbols) -> tuple[LinearForm, ...]:
    forms = []
    for i, text in enumerate(doc["equations"]):
        path = ("equations", i)
        try:
            form = equation_form(text, symbols)
        except ExpressionError as exc:
            raise src.expression_error(exc, path, text) from None
        except RecursionError:
            raise src.error("equation nested too deeply", path) from None
        _no_constant(src, form, path, text, "equation")
        if not form.terms or all(name in symbols.shocks for name, _ in form.terms):
            raise src.error("equation contains no variable", path)
        forms.append(form)
    return tuple(forms)


def _no_constant(src: Source, form: LinearForm, path: tuple, text: str, what: str) -> None:
    if not (isinstance(form.constant, Number) and form.constant.value == 0.0):
        position = form.positions.get(None, 0)
        raise src.expression_error(
            ExpressionError(
                f"constant term in an {what}: the model is in deviations from its steady state (zero), so every term "
                "must multiply a variable" + (" or a shock" if what == "equation" else ""),
                position,
            ),
            path,
            text,
        )


def _observables(src: Source, doc: dict, symbols: Symbols) -> tuple[ObservableSpec, ...]:
    names = list(doc["observables"])
    canonical = [o.name for o in CANONICAL_OBSERVABLES]
    if names[:3] != canonical:
        raise src.error(
            f"observables must start with {', '.join(canonical)} in this order (extras may follow); "
            f"got {', '.join(names[:3])}",
            ("observables",),
            at_key=True,
        )
    out = []
    for k, name in enumerate(names):
        spec = doc["observables"][name]
        if k < 3 and spec["unit"] != CANONICAL_OBSERVABLES[k].unit:
            raise src.error(
                f"observable {name!r} must be in {CANONICAL_OBSERVABLES[k].unit!r}; got {spec['unit']!r}",
                ("observables", name, "unit"),
            )
        path = ("observables", name, "expr")
        text = spec["expr"]
        try:
            form = linearize(parse_expression(text), symbols, allow_leads=False, allow_shocks=False, what="observable")
        except ExpressionError as exc:
            raise src.expression_error(exc, path, text) from None
        except RecursionError:
            raise src.error("expression nested too deeply", path) from None
        _no_constant(src, form, path, text, "observable")
        if not form.terms:
            raise src.error(f"observable {name!r} does not depend on any variable", path)
        out.append(ObservableSpec(name, spec["unit"], text, spec.get("description", ""), form))
    return tuple(out)


def _check_determinable(src: Source, doc: dict, forms) -> None:
    """Every variable can be determined: a perfect matching of equations to variables exists."""
    index = {v: j for j, v in enumerate(doc["variables"])}
    nonzeros = tuple(
        frozenset(
            (i, index[name]) for i, f in enumerate(forms) for name, timing in f.terms if name in index and timing == t
        )
        for t in (1, 0, -1)
    )
    try:
        analyze(len(index), nonzeros)
    except StructurallySingular as exc:
        names = ", ".join(doc["variables"][v] for v in exc.variables) or "none"
        lines = ", ".join(str(src.node(("equations", e))[1].start_mark.line + 1) for e in exc.equations)
        raise src.error(
            f"the equations are structurally singular: the {len(exc.equations)} equations on lines "
            f"{lines} involve only the {len(exc.variables)} variable(s) {names}, so some variable is "
            "determined by no equation whatever the parameters",
            ("equations", exc.equations[0]),
        ) from None


def _check_usage(src: Source, doc: dict, forms, observables) -> None:
    used_vars = {name for f in forms for name, _ in f.terms}
    for i, v in enumerate(doc["variables"]):
        if v not in used_vars:
            raise src.error(f"variable {v!r} does not appear in any equation", ("variables", i))
    for i, s in enumerate(doc["shocks"]):
        if s not in used_vars:
            raise src.error(f"shock {s!r} does not appear in any equation", ("shocks", i))
    used_params = set()
    for f in list(forms) + [o.form for o in observables]:
        for coef in f.terms.values():
            used_params |= parameters_in(coef)
    for p in doc["parameters"]:
        if p not in used_params:
            raise src.error(
                f"parameter {p!r} is not used by any equation or observable (a drawn parameter must "
                "matter; remove it or use it)",
                ("parameters", p),
                at_key=True,
            )


def _splits(src: Source, doc: dict) -> SplitSpec:
    sl, co = doc["splits"]["slice"], doc["splits"]["corner"]
    params = doc["parameters"]
    if sl["parameter"] not in params:
        raise src.error(f"split slice: unknown parameter {sl['parameter']!r}", ("splits", "slice", "parameter"))
    for i, p in enumerate(co["parameters"]):
        if p not in params:
            raise src.error(f"split corner: unknown parameter {p!r}", ("splits", "corner", "parameters", i))
    if co["parameters"][0] == co["parameters"][1]:
        raise src.error("split corner: the two parameters must differ", ("splits", "corner", "parameters", 1))
    return SplitSpec(sl["parameter"], sl["side"], tuple(co["parameters"]), tuple(co["sides"]))


def read_model_file(path: str | Path, builtin_ids: tuple[str, ...] = ()) -> ModelFile:
    """Load and validate the model file at ``path``.

    Parameters
    ----------
    path : str or Path
        The model file, ``<world>.yaml``.
    builtin_ids : tuple of str
        World ids a declared world may not take (the built-in worlds).

    Returns
    -------
    ModelFile
        The validated model with parsed linear forms.

    Raises
    ------
    WorldFileError
        Naming the file, the line and column, and the problem.
    """
    path = Path(path)
    return parse_model_file(path, _read(path), builtin_ids)


def parse_model_file(path: str | Path, data: bytes, builtin_ids: tuple[str, ...] = ()) -> ModelFile:
    """:func:`read_model_file` of the given bytes (``path`` names the file in messages and must
    still end in ``<world>.yaml``)."""
    path = Path(path)
    text = _decode(path, data)
    document, root = _parse_yaml(path, text)
    src = Source(path, text, root)
    if not isinstance(document, dict):
        kind = "empty" if document is None else f"a {type(document).__name__}"
        raise src.error(f"the top level must be a mapping of fields (world, variables, ...); the file is {kind}")
    bad_key = _non_string_keys(document)
    if bad_key is not None:
        raise src.error(f"mapping key {bad_key[-1]!r} must be a name, not a number", bad_key, at_key=True)
    if isinstance(document.get("equations"), list):
        for i, eq in enumerate(document["equations"]):
            document["equations"][i] = _number_source(src, ("equations", i), eq)
    if isinstance(document.get("observables"), dict):
        for name, spec in document["observables"].items():
            if isinstance(spec, dict) and "expr" in spec:
                spec["expr"] = _number_source(src, ("observables", name, "expr"), spec["expr"])
    _schema_errors(src, document)

    world = document["world"]
    if not WORLD_ID.fullmatch(world):
        raise src.error(f"world id {world!r} must match [a-z][a-z0-9_]* (at most 64 characters)", ("world",))
    if world != path.stem or path.suffix != ".yaml":
        raise src.error(
            f"world {world!r} must equal the file name without .yaml; the file is {path.name!r} "
            f"(rename the file to {world}.yaml or change world)",
            ("world",),
        )
    if world in builtin_ids:
        raise src.error(
            f"world {world!r} clashes with a built-in world ({', '.join(builtin_ids)}); choose another id", ("world",)
        )
    _check_names(src, document)
    parameters = _parameters(src, document)
    n_eq, n_var = len(document["equations"]), len(document["variables"])
    if n_eq != n_var:
        raise src.error(
            f"{n_eq} equations for {n_var} variables: a model needs exactly one equation per variable",
            ("equations",),
            at_key=True,
        )
    symbols = Symbols(
        frozenset(document["parameters"]), frozenset(document["variables"]), frozenset(document["shocks"])
    )
    forms = _forms(src, document, symbols)
    observables = _observables(src, document, symbols)
    _check_usage(src, document, forms, observables)
    _check_determinable(src, document, forms)
    splits = _splits(src, document)
    return ModelFile(
        path=path,
        text=text,
        sha256=hashlib.sha256(data).hexdigest(),
        world=world,
        description=document["description"],
        variables=tuple(document["variables"]),
        shocks=tuple(document["shocks"]),
        parameters=parameters,
        equations=tuple(document["equations"]),
        forms=forms,
        observables=observables,
        splits=splits,
        notes=tuple(document.get("notes", ())),
    )


__all__ = ["ModelFile", "ModelFileLoader", "ObservableSpec", "SplitSpec", "parse_model_file", "read_model_file"]
