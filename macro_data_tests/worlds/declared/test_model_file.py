"""Loading model files: numbers, names, schema and semantic rules, and errors at exact line/column.

Expected positions are found in the test's own text with ``str.index`` (1-based line and column
of the offending token), never taken from the loader's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from macro_data.errors import WorldError, WorldFileError
from macro_data.worlds.declared import load_world_file
from macro_data.worlds.declared.model_file import read_model_file

TOY = """\
world: toy
description: A small forward-looking test model
variables: [x, pi, v]
shocks: [e]
parameters:
  beta:  {low: 0.9, high: 0.99, default: 0.95, unit: "1", description: discount factor}
  kappa: {low: 0.01, high: 0.5}
  phi:   {low: 1.5, high: 2.5}
  rho:   {low: 0.0, high: 0.9}
  sd:    {low: 1e-3, high: 2e-3}
equations:
  - x = x(+1) - (phi*pi - pi(+1)) + v
  - pi = beta*pi(+1) + kappa*x
  - v = rho*v(-1) + sd*e
observables:
  output:    {expr: 100*x, unit: percent}
  inflation: {expr: 400*pi, unit: annualized percentage points}
  rate:      {expr: 400*phi*pi, unit: annualized percentage points}
splits:
  slice:  {parameter: phi, side: high}
  corner: {parameters: [rho, sd], sides: [high, low]}
"""


def write(tmp_path: Path, text: str, name: str = "toy") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def position(text: str, needle: str, line_contains: str | None = None, last: bool = False) -> tuple[int, int]:
    """1-based (line, column) of ``needle`` (its ``last`` occurrence if asked) in the first line
    containing ``line_contains`` (or ``needle``)."""
    for i, line in enumerate(text.splitlines()):
        if (line_contains or needle) in line:
            return i + 1, (line.rindex(needle) if last else line.index(needle)) + 1
    raise AssertionError(f"{needle!r} not in text")


def load_error(tmp_path, text, name="toy") -> WorldFileError:
    with pytest.raises(WorldFileError) as info:
        load_world_file(write(tmp_path, text, name))
    err = info.value
    assert isinstance(err, WorldError)
    assert str(tmp_path / f"{name}.yaml") in str(err)
    return err


def test_valid_file_loads(tmp_path):
    path = write(tmp_path, TOY)
    w = load_world_file(path)
    assert w.name == "toy" and w.shocks == ("e",)
    assert w.parameter_names == ("beta", "kappa", "phi", "rho", "sd")
    beta = w.parameters[0]
    assert (beta.low, beta.high, beta.default, beta.unit, beta.description) == (0.9, 0.99, 0.95, "1", "discount factor")
    assert w.parameters[1].default is None and w.parameters[1].kind == "uniform"
    assert [o.name for o in w.observables] == ["output", "inflation", "rate"] and w.extras == ()
    import hashlib

    assert w.model_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert w.model_text == TOY and w.model_file == "toy.yaml"
    assert len(w.code_digest) == 64 and w.code_version == f"toy-{w.code_digest[:12]}"


def test_numbers_are_numbers_whatever_yaml_1_1_says(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-3 as the string '1e-3'; the model file reads it as a number.
    assert yaml.safe_load("low: 1e-3")["low"] == "1e-3"
    text = TOY.replace("sd*e", "1e-3*sd*e").replace("high: 0.99,", "high: .99,").replace("low: 1.5", "low: 1.5E+0")
    w = load_world_file(write(tmp_path, text))
    sd = w.parameters[4]
    assert (sd.low, sd.high) == (0.001, 0.002)
    assert w.parameters[0].high == 0.99 and w.parameters[2].low == 1.5
    theta = np.array([[0.95, 0.1, 2.0, 0.5, 0.0015]])
    _, _, _, D = w.system.matrices(theta)
    assert D[0, 2, 0] == pytest.approx(-1e-3 * 0.0015, rel=1e-15)


def test_yaml_1_1_guessing_is_off(tmp_path):
    # 'no' and 'on' stay names (YAML 1.1 would make them booleans); 0x10 and 1_000 are not numbers.
    text = (
        TOY.replace("[x, pi, v]", "[x, pi, no]").replace("v = rho*v(-1)", "no = rho*no(-1)").replace("+ v\n", "+ no\n")
    )
    w = load_world_file(write(tmp_path, text))
    assert w.system.variables == ("x", "pi", "no")
    err = load_error(tmp_path, TOY.replace("low: 0.01,", "low: 0x10,"))
    assert "field parameters/kappa/low: '0x10' is not of type 'number'" in str(err)
    assert (err.line, err.column) == position(TOY, "0.01", "kappa")


@pytest.mark.parametrize(
    "change, needle, line_of, message",
    [  # needle "!x": the last x in the line
        (
            ("- pi = beta*pi(+1) + kappa*x", "- pi = beta*pi(+1) + kapa*x"),
            "kapa",
            "kapa",
            "unknown name 'kapa': not a declared variable, parameter or shock",
        ),
        (("x(+1) - (phi", "x(+2) - (phi"), "x(+2)", "x(+2)", "lead of 2 periods in x(+2)"),
        (("kappa*x\n", "kappa*x*pi\n"), "!*pi", "kappa*x*pi", "nonlinear term: product of x and pi"),
        (("kappa*x\n", "kappa*x^2\n"), "^", "kappa*x^2", "nonlinear term: power of x"),
        (("kappa*x\n", "kappa/x\n"), "/", "kappa/x", "division by an expression containing x"),
        (("kappa*x\n", "kappa*exp(x)\n"), "exp", "exp(x)", "exp() of an expression containing x"),
        (("sd*e", "sd*e(+1)"), "e(+1)", "e(+1)", "lead of shock 'e'"),
        (("(phi*pi - pi(+1))", "(phi*pi - pi(+1)"), "(phi", "(phi", "unclosed '(': missing ')'"),
        (("+ kappa*x\n", "+ kappa*x)\n"), "!)", "kappa*x)", "unmatched ')'"),
        (("+ kappa*x\n", "+ kappa*x + 0.5\n"), "0.5", "kappa*x + 0.5", "constant term in an equation"),
        (("{expr: 100*x,", "{expr: 100*x(+1),"), "x(+1)", "100*x(+1)", "lead x(+1) in an observable"),
        (("{expr: 400*pi,", "{expr: 400*pi + e,"), "e,", "400*pi + e", "shock 'e' cannot appear in an observable"),
        (("{expr: 100*x,", "{expr: 100*x + 1,"), "1,", "100*x + 1", "constant term in an observable"),
    ],
)
def test_expression_errors_at_file_line_and_column(tmp_path, change, needle, line_of, message):
    text = TOY.replace(*change)
    assert text != TOY
    err = load_error(tmp_path, text)
    assert message in err.problem
    last = needle.startswith("!")
    assert (err.line, err.column) == position(text, needle.lstrip("!"), line_of, last=last), str(err)
    assert f"line {err.line}, column {err.column}" in str(err)


def test_columns_inside_quoted_and_folded_scalars(tmp_path):
    quoted = TOY.replace("- pi = beta*pi(+1) + kappa*x", '- "pi = beta*pi(+1) + kapa*x"')
    err = load_error(tmp_path, quoted)
    assert (err.line, err.column) == position(quoted, "kapa")
    folded = TOY.replace("  - pi = beta*pi(+1) + kappa*x\n", "  - >-\n    pi = beta*pi(+1)\n      + kapa*x\n")
    err = load_error(tmp_path, folded)
    assert (err.line, err.column) == position(folded, "kapa")
    assert "unknown name 'kapa'" in err.problem


def test_an_equation_that_yaml_reads_as_a_number_is_parsed_as_written(tmp_path):
    text = TOY.replace("  - v = rho*v(-1) + sd*e\n", "  - 1e-3\n")
    err = load_error(tmp_path, text)
    # the number is put back as its source text, which is then parsed (and lacks an '=')
    assert "an equation needs '='" in err.problem and "'1e-3'" in err.problem
    line, col = position(text, "1e-3", "  - 1e-3")
    assert (err.line, err.column) == (line, col + len("1e-3"))  # where the '=' is missing


@pytest.mark.parametrize(
    "change, where, message",
    [
        (
            ("  - v = rho*v(-1) + sd*e\n", ""),
            ("equations", "equations:"),
            "2 equations for 3 variables: a model needs exactly one equation per variable",
        ),
        (("world: toy", "world: toys"), ("toys", "world:"), "world 'toys' must equal the file name without .yaml"),
        (
            ("kappa: {low: 0.01, high: 0.5}", "kappa: {low: 0.5, high: 0.01}"),
            ("0.5", "kappa:"),
            "parameter 'kappa': bounds must satisfy low < high; got low=0.5, high=0.01",
        ),
        (
            ("kappa: {low: 0.01, high: 0.5}", "kappa: {low: 0.01, high: 0.01}"),
            ("0.01", "kappa:"),
            "parameter 'kappa': bounds must satisfy low < high",
        ),
        (("default: 0.95", "default: 1.5"), ("1.5", "default:"), "parameter 'beta': default 1.5 is outside its bounds"),
        (
            ("  rho:   {low: 0.0, high: 0.9}\n", "  rho:   {low: 0.0, high: 0.9}\n  zeta:  {low: 0, high: 1}\n"),
            ("zeta", "zeta"),
            "parameter 'zeta' is not used by any equation or observable",
        ),
        (
            (
                "[x, pi, v]",
                "[x, pi, v, w]",
            ),
            ("w", "variables:"),
            "variable 'w' does not appear in any equation",
        ),
        (("shocks: [e]", "shocks: [e, f]"), ("f", "shocks:"), "shock 'f' does not appear in any equation"),
        (("[x, pi, v]", "[x, pi, beta]"), ("beta", "beta:"), "name 'beta' is declared both as a variable"),
        (
            ("[x, pi, v]", "[x, pi, log]"),
            ("log", "variables:"),
            "variable name 'log' is reserved for the function log()",
        ),
        (
            (
                "  output:    {expr: 100*x, unit: percent}\n"
                "  inflation: {expr: 400*pi, unit: annualized percentage points}\n",
                "  inflation: {expr: 400*pi, unit: annualized percentage points}\n"
                "  output:    {expr: 100*x, unit: percent}\n",
            ),
            ("observables", "observables:"),
            "observables must start with output, inflation, rate in this order",
        ),
        (
            ("{expr: 100*x, unit: percent}", "{expr: 100*x, unit: percentage points}"),
            ("percentage points", "output:"),
            "observable 'output' must be in 'percent'",
        ),
        (
            ("slice:  {parameter: phi,", "slice:  {parameter: psi,"),
            ("psi", "slice:"),
            "split slice: unknown parameter 'psi'",
        ),
        (("[rho, sd]", "[rho, rho]"), ("rho]", "corner:"), "split corner: the two parameters must differ"),
    ],
)
def test_semantic_errors_name_line_and_column(tmp_path, change, where, message):
    text = TOY.replace(*change)
    if "'w'" in message:  # a fourth variable needs a fourth equation to get past the count
        text = text.replace("  - v = rho", "  - pi(+1) = pi\n  - v = rho")
    assert text != TOY
    err = load_error(tmp_path, text)
    assert message in err.problem, str(err)
    assert (err.line, err.column) == position(text, *where), str(err)


def test_structurally_singular_equations(tmp_path):
    # two equations only involve v: nothing is left to determine both x and pi
    text = TOY.replace(
        "  - x = x(+1) - (phi*pi - pi(+1)) + v\n  - pi = beta*pi(+1) + kappa*x\n",
        "  - x = x(+1) - phi*pi\n  - v = beta*v(-1) + kappa*sd*e\n",
    )
    assert text != TOY
    err = load_error(tmp_path, text)
    assert "structurally singular" in err.problem and "involve only the 1 variable(s) v" in err.problem
    assert (err.line, err.column) == position(text, "v = beta", "v = beta")


def test_world_id_clashing_with_a_built_in(tmp_path):
    text = TOY.replace("world: toy", "world: nk")
    err = load_error(tmp_path, text, "nk")
    assert "world 'nk' clashes with a built-in world" in err.problem
    assert (err.line, err.column) == (1, 8)


@pytest.mark.parametrize(
    "change, where, message",
    [
        (
            ("description: A small forward-looking test model\n", ""),
            None,
            "field (top level): 'description' is a required property (rule: required)",
        ),
        (
            ("splits:", "colour: blue\nsplits:"),
            ("colour", None),
            "field (top level): Additional properties are not allowed ('colour' was unexpected)",
        ),
        (
            ("kappa: {low: 0.01, high: 0.5}", "kappa: {low: 0.01, high: 0.5, prior: beta}"),
            ("prior", None),
            "field parameters/kappa: Additional properties are not allowed ('prior' was unexpected)",
        ),
        (
            ("low: 0.01, high: 0.5}", "low: small, high: 0.5}"),
            ("small, high", None),
            "field parameters/kappa/low: 'small' is not of type 'number' (rule: type)",
        ),
        (("side: high}", "side: up}"), ("up", None), "field splits/slice/side: 'up' is not one of ['high', 'low']"),
        (
            ("- pi = beta*pi(+1) + kappa*x", "- [pi, beta]"),
            ("[pi", None),
            "field equations/1: ['pi', 'beta'] is not of type 'string'",
        ),
        (("world: toy", "world: Toy"), ("Toy", None), "field world: 'Toy' does not match"),
    ],
)
def test_schema_errors_name_file_field_and_line(tmp_path, change, where, message):
    text = TOY.replace(*change)
    err = load_error(tmp_path, text, "Toy" if "Toy" in text else "toy")
    assert "does not match schemas/world.schema.json" in str(err)
    assert message in str(err), str(err)
    if where:
        assert (err.line, err.column) == position(text, where[0]), str(err)


def test_yaml_level_errors(tmp_path):
    dup = TOY.replace(
        "  rho:   {low: 0.0, high: 0.9}\n", "  rho:   {low: 0.0, high: 0.9}\n  rho:   {low: 0.1, high: 0.9}\n"
    )
    err = load_error(tmp_path, dup)
    assert "duplicate key 'rho'" in err.problem and err.line == 10
    err = load_error(tmp_path, TOY.replace("variables: [x, pi, v]", "variables: [x, pi, v"))
    assert "invalid YAML" in err.problem and err.line is not None
    err = load_error(tmp_path, "base: &a [1]\nother: *a\n")
    assert "aliases are not allowed" in err.problem
    err = load_error(tmp_path, "")
    assert "the top level must be a mapping" in err.problem
    err = load_error(tmp_path, TOY.replace("  sd:    {low: 1e-3, high: 2e-3}\n", "  1e3:   {low: 1e-3, high: 2e-3}\n"))
    assert "mapping key 1000.0 must be a name, not a number" in err.problem and err.line == 10
    with pytest.raises(WorldFileError, match="cannot read"):
        load_world_file(tmp_path / "missing.yaml")


def test_file_name_must_end_in_yaml(tmp_path):
    path = tmp_path / "toy.yml"
    path.write_text(TOY)
    with pytest.raises(WorldFileError, match="must equal the file name without .yaml"):
        read_model_file(path)


def test_errors_are_picklable(tmp_path):
    import pickle

    from macro_data.worlds.declared.expressions import ExpressionError
    from macro_data.worlds.declared.structure import StructurallySingular

    err = load_error(tmp_path, TOY.replace("kappa*x\n", "kappa*x*pi\n"))
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.line == err.line
    # also the errors that can travel as its context (some libraries pickle the whole chain)
    assert isinstance(err.__context__, ExpressionError)
    for e in (err.__context__, StructurallySingular([0, 1], [2])):
        copy = pickle.loads(pickle.dumps(e))
        assert type(copy) is type(e) and str(copy) == str(e)
    assert pickle.loads(pickle.dumps(err.__context__)).position == err.__context__.position
