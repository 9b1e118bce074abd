"""The expression language of model files: numbers, precedence, linearity, compilation, errors.

Coefficients are checked by evaluating the compiled closures and comparing them with the same
arithmetic written out by hand in Python (the reference never goes through the parser).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from macro_data.worlds.declared.expressions import (
    ExpressionError,
    Symbols,
    compile_coefficient,
    equation_form,
    linearize,
    parse_expression,
    tokenize,
)

SYMBOLS = Symbols(
    parameters=frozenset({"beta", "h", "sigma", "a", "b"}),
    variables=frozenset({"x", "pi", "i", "r"}),
    shocks=frozenset({"e"}),
)
VALUES = {"beta": 0.99, "h": 0.7, "sigma": 1.5, "a": 2.0, "b": 3.0}


def coefficients(text: str, values=VALUES) -> dict:
    """``{(name, timing): value}`` of ``lhs - rhs`` at scalar parameter values."""
    form = equation_form(text, SYMBOLS)
    return {k: float(compile_coefficient(v)(values)) for k, v in form.terms.items()}


def constant_value(text: str) -> float:
    """The value of a constant expression (via a dummy variable: ``x = text * pi``)."""
    return -coefficients(f"x = ({text})*pi")[("pi", 0)]


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-3", 1e-3),
        ("2.", 2.0),
        (".5", 0.5),
        ("1.5E+2", 150.0),
        ("3e2", 300.0),
        ("0.25e-1", 0.025),
        ("7", 7.0),
    ],
)
def test_numbers(text, value):
    assert constant_value(text) == value


@pytest.mark.parametrize(
    "text, value",
    [
        ("2^3^2", 2.0**9),  # right-associative
        ("2**3**2", 2.0**9),  # ** is the same operator
        ("2^3*2", 16.0),  # power binds tighter than *
        ("-2^2", -4.0),  # unary minus binds looser than power
        ("2^-1", 0.5),  # a signed exponent
        ("(-2)^2", 4.0),
        ("1 - 2 - 3", -4.0),  # left-associative
        ("8/2/2", 2.0),
        ("8/2*2", 8.0),
        ("2 + 3*4", 14.0),
        ("--3", 3.0),
        ("+3", 3.0),
        ("a^b", 8.0),
        ("a**-b", 0.125),
        ("exp(log(a)) + sqrt(b*3)", 5.0),
        ("beta/(1 + beta*h)", 0.99 / (1 + 0.99 * 0.7)),
    ],
)
def test_precedence_and_functions(text, value):
    assert constant_value(text) == pytest.approx(value, rel=1e-15)


def test_equation_coefficients_match_hand_arithmetic():
    text = "x = h/(1+h)*x(-1) + 1/(1+h)*x(+1) - (1-h)/((1+h)*sigma)*(i - pi(+1) - r) + 1e-3*e"
    h, s = VALUES["h"], VALUES["sigma"]
    c = (1 - h) / ((1 + h) * s)
    expected = {
        ("x", 0): 1.0,
        ("x", -1): -h / (1 + h),
        ("x", 1): -1 / (1 + h),
        ("i", 0): c,
        ("pi", 1): -c,
        ("r", 0): -c,
        ("e", 0): -1e-3,
    }
    got = coefficients(text)
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=1e-15), k


def test_terms_combine_and_cancel():
    assert coefficients("x = x - x + 2*pi + 3*pi - pi") == {("x", 0): 1.0, ("pi", 0): -4.0}
    assert coefficients("2*(x - pi) = x") == {("x", 0): 1.0, ("pi", 0): -2.0}
    assert coefficients("x/beta = pi") == {("x", 0): pytest.approx(1 / 0.99), ("pi", 0): -1.0}


def test_compiled_coefficients_are_vectorized():
    form = equation_form("x = beta^2*pi(+1) + exp(-h)*r", SYMBOLS)
    beta = np.array([0.9, 0.95, 0.99])
    h = np.array([0.0, 0.5, 1.0])
    vals = {"beta": beta, "h": h}
    np.testing.assert_array_equal(compile_coefficient(form.terms[("pi", 1)])(vals), -(beta**2))
    np.testing.assert_allclose(compile_coefficient(form.terms[("r", 0)])(vals), -np.exp(-h), rtol=1e-15)


def test_invalid_arithmetic_gives_nan_not_an_exception():
    form = equation_form("x = log(h)*pi + sqrt(h - 1)*r", SYMBOLS)
    with np.errstate(all="ignore"):
        v = compile_coefficient(form.terms[("pi", 0)])({"h": np.array([-1.0, 1.0])})
    assert np.isnan(v[0]) and v[1] == 0.0


def test_tokens_and_double_star():
    kinds = [(t.kind, t.text) for t in tokenize("a**2 ^ x(+1)")]
    assert kinds == [
        ("name", "a"),
        ("op", "^"),
        ("number", "2"),
        ("op", "^"),
        ("name", "x"),
        ("lparen", "("),
        ("op", "+"),
        ("number", "1"),
        ("rparen", ")"),
        ("end", ""),
    ]


def test_no_python_evaluation_of_user_text():
    # Python syntax that eval() would run is simply not part of the grammar.
    for text in ("__import__('os')", "x.real", "[x]", "x if pi else i", "lambda: 1", "x; pi"):
        with pytest.raises(ExpressionError):
            equation_form(f"x = {text}", SYMBOLS)


@pytest.mark.parametrize(
    "text, position, message",
    [
        ("x*pi = r", 1, "nonlinear term: product of x and pi"),
        ("x = pi^2", 6, "nonlinear term: power of pi"),
        ("x = 2^pi", 5, "nonlinear term: pi in an exponent"),
        ("x = 1/pi", 5, "division by an expression containing pi is not linear"),
        ("x = beta/(1 + r)", 8, "division by an expression containing r"),
        ("x = exp(pi)", 4, "exp() of an expression containing pi is not linear"),
        ("x = sqrt(beta*x(-1))", 4, "sqrt() of an expression containing x(-1)"),
        ("x = e(+1)", 4, "lead of shock 'e'"),
        ("x = e(-1)", 4, "lag of shock 'e'"),
        ("x = x(+2)", 4, "lead of 2 periods in x(+2)"),
        ("x = x(-3)", 4, "lag of 3 periods in x(-3)"),
        ("x = foo*pi", 4, "unknown name 'foo'"),
        ("x = beta(-1)*pi", 4, "parameter 'beta' cannot have a timing"),
        ("x = beta(pi)", 8, "'beta' is followed by '(' but what follows is not a timing"),
        ("x = Exp(h)*pi", 7, "functions are lower case"),
        ("x = exp*pi", 4, "function 'exp' must be called with parentheses"),
        ("x = (pi + r", 4, "unclosed '(': missing ')'"),
        ("x = pi + r)", 10, "unmatched ')'"),
        ("x = ()", 5, "expected an expression before ')'"),
        ("x = 2pi", 5, "missing operator between '2' and 'pi'"),
        ("x pi", 2, "missing operator between 'x' and 'pi'"),
        ("x = 1e", 4, "malformed number '1e'"),
        ("x = 1.2.3*pi", 4, "malformed number '1.2.3'"),
        ("x = pi $ r", 7, "unexpected character '$'"),
        ("x + pi", 6, "an equation needs '='"),
        ("x = pi = r", 7, "'=' is only allowed once"),
        ("= pi", 0, "the left-hand side of the equation is empty"),
        ("x =  ", 5, "the right-hand side of the equation is empty"),
        ("x = pi +", 8, "expected a number, a name or '(' but the expression ends here"),
        ("x = *pi", 4, "expected a number, a name or '(' but found '*'"),
    ],
)
def test_errors_name_position_and_problem(text, position, message):
    with pytest.raises(ExpressionError) as info:
        equation_form(text, SYMBOLS)
    assert message in info.value.message
    assert info.value.position == position, info.value.message


def test_observable_rules():
    obs = dict(allow_leads=False, allow_shocks=False, what="observable")
    form = linearize(parse_expression("400*(pi - pi(-1))"), SYMBOLS, **obs)
    assert set(form.terms) == {("pi", 0), ("pi", -1)}
    with pytest.raises(ExpressionError, match=r"lead x\(\+1\) in an observable"):
        linearize(parse_expression("100*x(+1)"), SYMBOLS, **obs)
    with pytest.raises(ExpressionError, match="shock 'e' cannot appear in an observable"):
        linearize(parse_expression("x + e"), SYMBOLS, **obs)


def test_constant_terms_are_reported_where_they_are():
    form = equation_form("x = beta*(1 + pi)", SYMBOLS)
    assert form.positions[None] == 10  # the '1'
    assert float(compile_coefficient(form.constant)(VALUES)) == pytest.approx(-0.99)
    assert equation_form("x = 2*pi", SYMBOLS).constant.value == 0.0


def test_hostile_input_is_bounded():
    with pytest.raises(ExpressionError, match="nested more than"):
        equation_form("x = " + "(" * 100 + "pi" + ")" * 100, SYMBOLS)
    with pytest.raises(ExpressionError, match="more than 600 tokens"):
        equation_form("x = " + " + ".join(["pi"] * 400), SYMBOLS)
    assert math.isfinite(constant_value("+".join(["1"] * 200)))
