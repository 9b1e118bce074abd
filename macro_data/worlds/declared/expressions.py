"""Expressions of a declared world: tokenizer, recursive-descent parser, linear forms, numpy compiler.

User text is never evaluated by Python: it is tokenized and parsed here into a small syntax tree,
which is then split into a *linear form* (a coefficient per variable/shock term, checked to be
linear) whose coefficients are compiled into closures over numpy arrays of parameter draws.

Grammar (precedence from low to high; ``^`` and ``**`` are the same right-associative power)::

    equation := expr '=' expr
    expr     := term (('+' | '-') term)*
    term     := unary (('*' | '/') unary)*
    unary    := ('-' | '+') unary | power
    power    := atom (('^' | '**') unary)?
    atom     := NUMBER | NAME timing? | FUNCTION '(' expr ')' | '(' expr ')'
    timing   := '(' ('+' | '-')? DIGITS ')'          e.g. x(+1) = E_t x[t+1], x(-1) = x[t-1]
    NUMBER   := DIGITS ('.' DIGITS?)? EXPONENT? | '.' DIGITS EXPONENT?
    EXPONENT := ('e' | 'E') ('+' | '-')? DIGITS
    NAME     := [A-Za-z_][A-Za-z0-9_]*;   FUNCTION := exp | log | sqrt

So ``-x^2`` is ``-(x^2)``, ``2^-1`` is ``2^(-1)``, ``a^b^c`` is ``a^(b^c)`` and ``a/b*c`` is
``(a/b)*c``. Numbers such as ``1e-3``, ``2.`` and ``.5`` are numbers.

Linearity (:func:`linearize`): a product needs one factor free of variables and shocks; a divisor,
both sides of a power and the argument of a function must be free of them. Coefficients are
arbitrary expressions of parameters and numbers. Every error carries the 0-based position in the
expression text of the token at fault; the model-file loader turns it into a line and column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

FUNCTIONS = ("exp", "log", "sqrt")
_NUMPY_FUNCTIONS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt}
_MATH_FUNCTIONS = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt}

NUMBER_PATTERN = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_NUMBER = re.compile(NUMBER_PATTERN)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MALFORMED_EXPONENT = re.compile(r"[eE][-+]?(?![0-9])")
# Limits far above any real equation, so that hostile input stays cheap and the recursive parser,
# linearizer and compiled coefficients stay well inside Python's recursion limit.
MAX_EXPRESSION_CHARS = 10_000
MAX_TOKENS = 600
MAX_DEPTH = 50  # nesting of parentheses, unary operators and powers


class ExpressionError(ValueError):
    """A problem in one expression, at 0-based character ``position`` of its text."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.message = message
        self.position = position

    def __reduce__(self):  # picklable (also as the context of another error) despite the custom signature
        return (type(self), (self.message, self.position))


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # number, name, op, lparen, rparen, equals, end
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text`` followed by an ``end`` token; :class:`ExpressionError` for a bad character."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters", 0)
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < len(text) and text[i + 1].isdigit()):
            end = _NUMBER.match(text, i).end()
            if _MALFORMED_EXPONENT.match(text, end) or (end < len(text) and text[end] == "."):
                stop = end + 1
                while stop < len(text) and (text[stop].isalnum() or text[stop] in "_."):
                    stop += 1
                raise ExpressionError(f"malformed number {text[i:stop]!r}", i)
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                name = _NAME.match(text, end).group()
                raise ExpressionError(
                    f"missing operator between {text[i:end]!r} and {name!r} (write {text[i:end]}*{name} for a product)",
                    end,
                )
            tokens.append(Token("number", text[i:end], i))
            i = end
            continue
        m = _NAME.match(text, i)
        if m:
            tokens.append(Token("name", m.group(), i))
            i = m.end()
            continue
        if text.startswith("**", i):
            tokens.append(Token("op", "^", i))  # ** and ^ are the same operator
            i += 2
            continue
        if ch in "+-*/^":
            tokens.append(Token("op", ch, i))
        elif ch == "(":
            tokens.append(Token("lparen", ch, i))
        elif ch == ")":
            tokens.append(Token("rparen", ch, i))
        elif ch == "=":
            tokens.append(Token("equals", ch, i))
        else:
            raise ExpressionError(f"unexpected character {ch!r}", i)
        i += 1
    tokens.append(Token("end", "", len(text)))
    if len(tokens) > MAX_TOKENS:
        raise ExpressionError(
            f"expression has more than {MAX_TOKENS} tokens; split it with auxiliary variables",
            tokens[MAX_TOKENS].position,
        )
    return tokens


# ---------------------------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Number:
    value: float
    position: int = -1


@dataclass(frozen=True)
class Symbol:
    """A name as written: a parameter, variable or shock, with its timing (0, +1, -1, ...)."""

    name: str
    timing: int = 0
    position: int = -1
    dated: bool = False  # written with an explicit timing, e.g. x(+1) or beta(0)


@dataclass(frozen=True)
class Unary:
    op: str  # '-'
    operand: Node
    position: int = -1


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / ^
    left: Node
    right: Node
    position: int = -1


@dataclass(frozen=True)
class Call:
    function: str
    argument: Node
    position: int = -1


Node = Number | Symbol | Unary | Binary | Call


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def describe(self, t: Token) -> str:
        return "the end of the expression" if t.kind == "end" else repr(t.text)

    def expect_end(self) -> None:
        t = self.tok
        if t.kind == "end":
            return
        if t.kind == "rparen":
            raise ExpressionError("unmatched ')'", t.position)
        if t.kind == "equals":
            raise ExpressionError("'=' is only allowed once, between the two sides of an equation", t.position)
        prev = self.tokens[self.i - 1]
        raise ExpressionError(f"missing operator between {prev.text!r} and {t.text!r}", t.position)

    def enter(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested more than {MAX_DEPTH} levels deep", position)

    def expr(self) -> Node:
        node = self.term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.advance()
            node = Binary(op.text, node, self.term(), op.position)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in "*/":
            op = self.advance()
            node = Binary(op.text, node, self.unary(), op.position)
        return node

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text in "+-":
            op = self.advance()
            self.enter(op.position)
            operand = self.unary()
            self.depth -= 1
            return Unary("-", operand, op.position) if op.text == "-" else operand
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        if self.tok.kind == "op" and self.tok.text == "^":
            op = self.advance()
            self.enter(op.position)
            exponent = self.unary()  # right-associative; allows 2^-1
            self.depth -= 1
            return Binary("^", base, exponent, op.position)
        return base

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "number":
            self.advance()
            return Number(float(t.text), t.position)
        if t.kind == "name":
            self.advance()
            if self.tok.kind != "lparen":
                return Symbol(t.text, 0, t.position)
            if t.text in FUNCTIONS:
                open_ = self.advance()
                self.enter(open_.position)
                arg = self.expr()
                self.depth -= 1
                self.close(open_)
                return Call(t.text, arg, t.position)
            return self.timing(t)
        if t.kind == "lparen":
            self.advance()
            self.enter(t.position)
            node = self.expr()
            self.depth -= 1
            self.close(t)
            return node
        if t.kind == "end":
            raise ExpressionError("expected a number, a name or '(' but the expression ends here", t.position)
        if t.kind == "rparen":
            raise ExpressionError(
                "unmatched ')'" if self.open_count() <= 0 else "expected an expression before ')'", t.position
            )
        if t.kind == "equals":
            raise ExpressionError("expected an expression before '='", t.position)
        raise ExpressionError(f"expected a number, a name or '(' but found {t.text!r}", t.position)

    def open_count(self) -> int:
        depth = 0
        for tok in self.tokens[: self.i]:
            depth += tok.kind == "lparen"
            depth -= tok.kind == "rparen"
        return depth

    def close(self, open_: Token) -> None:
        if self.tok.kind == "rparen":
            self.advance()
            return
        if self.tok.kind == "end":
            raise ExpressionError("unclosed '(': missing ')'", open_.position)
        raise ExpressionError(
            f"expected ')' to close the '(' at column {open_.position + 1} but found {self.describe(self.tok)}",
            self.tok.position,
        )

    def timing(self, name: Token) -> Symbol:
        """``name(+1)``, ``name(-1)``, ``name(0)``: a timing (range checked by :func:`linearize`)."""
        open_ = self.advance()
        sign = 1
        if self.tok.kind == "op" and self.tok.text in "+-":
            sign = -1 if self.advance().text == "-" else 1
        digits = self.tok
        if digits.kind == "number" and digits.text.isdigit() and self.tokens[self.i + 1].kind == "rparen":
            self.advance()
            self.advance()
            return Symbol(name.text, sign * int(digits.text), name.position, dated=True)
        if name.text.lower() in FUNCTIONS:
            hint = f"; functions are lower case: {name.text.lower()}(...)"
        else:
            hint = f"; write {name.text}*(...) for a product"
        raise ExpressionError(
            f"{name.text!r} is followed by '(' but what follows is not a timing such as (+1) or (-1){hint}",
            open_.position,
        )


def parse_expression(text: str) -> Node:
    """The syntax tree of one expression (no ``=``)."""
    p = _Parser(text)
    node = p.expr()
    p.expect_end()
    return node


def parse_equation(text: str) -> tuple[Node, Node]:
    """``(lhs, rhs)`` of ``lhs = rhs``."""
    p = _Parser(text)
    if p.tok.kind == "equals":
        raise ExpressionError("the left-hand side of the equation is empty", p.tok.position)
    lhs = p.expr()
    if p.tok.kind != "equals":
        if p.tok.kind == "end":
            raise ExpressionError("an equation needs '=' between its two sides (lhs = rhs)", p.tok.position)
        p.expect_end()
    p.advance()
    if p.tok.kind == "end":
        raise ExpressionError("the right-hand side of the equation is empty", p.tok.position)
    rhs = p.expr()
    p.expect_end()
    return lhs, rhs


# ---------------------------------------------------------------------------------------------
# Coefficient arithmetic with constant folding (numbers combine at parse time)
# ---------------------------------------------------------------------------------------------
def _num(v: float) -> Number:
    return Number(float(v))


def _is_num(node: Node, value: float | None = None) -> bool:
    return isinstance(node, Number) and (value is None or node.value == value)


def c_add(a: Node, b: Node) -> Node:
    if _is_num(a) and _is_num(b):
        return _num(a.value + b.value)
    if _is_num(a, 0.0):
        return b
    if _is_num(b, 0.0):
        return a
    return Binary("+", a, b)


def c_neg(a: Node) -> Node:
    if _is_num(a):
        return _num(-a.value)
    if isinstance(a, Unary):
        return a.operand
    return Unary("-", a)


def c_mul(a: Node, b: Node) -> Node:
    if _is_num(a) and _is_num(b):
        return _num(a.value * b.value)
    if _is_num(a, 0.0) or _is_num(b, 0.0):  # symbolically zero, e.g. the constant of 2*x
        return _num(0.0)
    if _is_num(a, 1.0):
        return b
    if _is_num(b, 1.0):
        return a
    if _is_num(a, -1.0):
        return c_neg(b)
    if _is_num(b, -1.0):
        return c_neg(a)
    return Binary("*", a, b)


def c_div(a: Node, b: Node) -> Node:
    if _is_num(b, 1.0) or _is_num(a, 0.0):
        return a
    if _is_num(a) and _is_num(b) and b.value != 0.0:
        return _num(a.value / b.value)
    return Binary("/", a, b)


def c_pow(a: Node, b: Node) -> Node:
    if _is_num(a) and _is_num(b):
        try:
            v = float(a.value) ** float(b.value)
        except (OverflowError, ZeroDivisionError):
            return Binary("^", a, b)
        if isinstance(v, float) and math.isfinite(v):
            return _num(v)
    return Binary("^", a, b)


def c_call(f: str, a: Node) -> Node:
    if _is_num(a):
        try:
            v = _MATH_FUNCTIONS[f](a.value)
        except (ValueError, OverflowError):
            return Call(f, a)
        if math.isfinite(v):
            return _num(v)
    return Call(f, a)


# ---------------------------------------------------------------------------------------------
# Linear forms
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Symbols:
    """What names mean in a model: parameters, variables and shocks (disjoint)."""

    parameters: frozenset[str]
    variables: frozenset[str]
    shocks: frozenset[str]


@dataclass
class LinearForm:
    """``sum_k coefficient_k * symbol_k + constant``; keys ``(name, timing)`` of variables and shocks.

    Coefficients and the constant are trees over numbers and parameters only. ``positions`` holds
    where each term (and, under ``None``, the constant) first appears in the text.
    """

    terms: dict[tuple[str, int], Node] = field(default_factory=dict)
    constant: Node = field(default_factory=lambda: Number(0.0))
    positions: dict[tuple[str, int] | None, int] = field(default_factory=dict)

    @property
    def is_constant(self) -> bool:
        return not self.terms

    def first_symbol(self) -> tuple[str, int]:
        return next(iter(self.terms))

    def scaled(self, c: Node) -> LinearForm:
        return LinearForm(
            {k: c_mul(v, c) for k, v in self.terms.items()}, c_mul(self.constant, c), dict(self.positions)
        )

    def divided(self, c: Node) -> LinearForm:
        return LinearForm(
            {k: c_div(v, c) for k, v in self.terms.items()}, c_div(self.constant, c), dict(self.positions)
        )

    def negated(self) -> LinearForm:
        return LinearForm({k: c_neg(v) for k, v in self.terms.items()}, c_neg(self.constant), dict(self.positions))

    def plus(self, other: LinearForm) -> LinearForm:
        terms = dict(self.terms)
        for k, v in other.terms.items():
            terms[k] = c_add(terms[k], v) if k in terms else v
        positions = dict(other.positions)
        positions.update(self.positions)  # the earlier occurrence wins
        return LinearForm(terms, c_add(self.constant, other.constant), positions)

    def pruned(self) -> LinearForm:
        """Without terms whose coefficient folded to the number 0 (e.g. ``x - x``)."""
        terms = {k: v for k, v in self.terms.items() if not _is_num(v, 0.0)}
        return LinearForm(terms, self.constant, {k: p for k, p in self.positions.items() if k is None or k in terms})


def _label(key: tuple[str, int]) -> str:
    name, timing = key
    return name if timing == 0 else f"{name}({timing:+d})"


def _some_symbol(form: LinearForm) -> str:
    return _label(form.first_symbol())


def linearize(
    node: Node, symbols: Symbols, *, allow_leads: bool = True, allow_shocks: bool = True, what: str = "equation"
) -> LinearForm:
    """The linear form of ``node``; :class:`ExpressionError` for anything not linear in variables and shocks.

    ``allow_leads``: whether ``x(+1)`` may appear (equations yes, observables no);
    ``allow_shocks``: whether shocks may appear (equations yes, observables no).
    """

    def walk(n: Node) -> LinearForm:
        if isinstance(n, Number):
            return LinearForm(constant=n, positions={None: n.position})
        if isinstance(n, Symbol):
            return symbol(n)
        if isinstance(n, Unary):
            return walk(n.operand).negated()
        if isinstance(n, Call):
            arg = walk(n.argument)
            if not arg.is_constant:
                raise ExpressionError(
                    f"{n.function}() of an expression containing {_some_symbol(arg)} is not "
                    f"linear: functions may only take parameters and numbers",
                    n.position,
                )
            return LinearForm(constant=c_call(n.function, arg.constant), positions={None: n.position})
        if isinstance(n, Binary):
            a, b = walk(n.left), walk(n.right)
            if n.op == "+":
                return a.plus(b)
            if n.op == "-":
                return a.plus(b.negated())
            if n.op == "*":
                if not a.is_constant and not b.is_constant:
                    raise ExpressionError(
                        f"nonlinear term: product of {_some_symbol(a)} and {_some_symbol(b)} "
                        "(the model must be linear in variables and shocks)",
                        n.position,
                    )
                if a.is_constant:
                    out = b.scaled(a.constant)
                    if None in a.positions and b.is_constant:
                        out.positions[None] = min(a.positions[None], b.positions.get(None, a.positions[None]))
                    return out
                return a.scaled(b.constant)
            if n.op == "/":
                if not b.is_constant:
                    raise ExpressionError(
                        f"division by an expression containing {_some_symbol(b)} is not linear", n.position
                    )
                return a.divided(b.constant)
            if n.op == "^":
                if not a.is_constant:
                    raise ExpressionError(
                        f"nonlinear term: power of {_some_symbol(a)} (the model must be linear "
                        "in variables and shocks)",
                        n.position,
                    )
                if not b.is_constant:
                    raise ExpressionError(f"nonlinear term: {_some_symbol(b)} in an exponent", n.position)
                return LinearForm(
                    constant=c_pow(a.constant, b.constant), positions={None: a.positions.get(None, n.position)}
                )
        raise AssertionError(f"unknown node {n!r}")  # pragma: no cover

    def symbol(s: Symbol) -> LinearForm:
        name, timing = s.name, s.timing
        if name in symbols.parameters:
            if s.dated:
                raise ExpressionError(f"parameter {name!r} cannot have a timing: parameters are constants", s.position)
            return LinearForm(constant=Symbol(name, 0, s.position), positions={None: s.position})
        if name in symbols.shocks:
            if not allow_shocks:
                raise ExpressionError(
                    f"shock {name!r} cannot appear in an {what}: {what}s are functions of variables only", s.position
                )
            if timing != 0:
                kind = "lead" if timing > 0 else "lag"
                raise ExpressionError(
                    f"{kind} of shock {name!r}: shocks are i.i.d. innovations and only appear in "
                    f"the current period (write {name}, not {name}({timing:+d}))",
                    s.position,
                )
            return LinearForm({(name, 0): Number(1.0)}, positions={(name, 0): s.position})
        if name in symbols.variables:
            if abs(timing) > 1:
                kind = "lead" if timing > 0 else "lag"
                aux = f"{name}_lead = {name}(+1)" if timing > 0 else f"{name}_lag = {name}(-1)"
                raise ExpressionError(
                    f"{kind} of {abs(timing)} periods in {name}({timing:+d}): only one-period leads "
                    f"and lags are supported; add an auxiliary variable (e.g. {aux}) and use its "
                    "one-period lead or lag",
                    s.position,
                )
            if timing > 0 and not allow_leads:
                raise ExpressionError(
                    f"lead {name}({timing:+d}) in an {what}: {what}s may use current and lagged variables only",
                    s.position,
                )
            return LinearForm({(name, timing): Number(1.0)}, positions={(name, timing): s.position})
        if name in FUNCTIONS:
            raise ExpressionError(f"function {name!r} must be called with parentheses: {name}(...)", s.position)
        raise ExpressionError(f"unknown name {name!r}: not a declared variable, parameter or shock", s.position)

    return walk(node).pruned()


def equation_form(text: str, symbols: Symbols) -> LinearForm:
    """``lhs - rhs`` of the equation ``text`` as a linear form (its constant must be checked by the caller)."""
    lhs, rhs = parse_equation(text)
    return linearize(lhs, symbols).plus(linearize(rhs, symbols).negated()).pruned()


def parameters_in(node: Node) -> set[str]:
    """Parameter names a coefficient tree reads."""
    if isinstance(node, Symbol):
        return {node.name}
    if isinstance(node, Unary):
        return parameters_in(node.operand)
    if isinstance(node, Call):
        return parameters_in(node.argument)
    if isinstance(node, Binary):
        return parameters_in(node.left) | parameters_in(node.right)
    return set()


# ---------------------------------------------------------------------------------------------
# Compilation to numpy
# ---------------------------------------------------------------------------------------------
Coefficient = Callable[[Mapping[str, np.ndarray]], "np.ndarray | float"]

_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}


def compile_coefficient(node: Node) -> Coefficient:
    """A function of ``{parameter name: (n,) array}`` returning the coefficient, ``(n,)`` or a float.

    Element-wise numpy only, so each draw's value does not depend on the batch. Invalid
    arithmetic (log of a negative, division by zero) gives NaN/inf, which marks the draw invalid.
    """
    if isinstance(node, Number):
        value = float(node.value)
        return lambda p: value
    if isinstance(node, Symbol):
        name = node.name
        return lambda p: p[name]
    if isinstance(node, Unary):
        f = compile_coefficient(node.operand)
        return lambda p: np.negative(f(p))
    if isinstance(node, Call):
        g = _NUMPY_FUNCTIONS[node.function]
        f = compile_coefficient(node.argument)
        return lambda p: g(f(p))
    if isinstance(node, Binary):
        op = _BINARY[node.op]
        left, right = compile_coefficient(node.left), compile_coefficient(node.right)
        return lambda p: op(left(p), right(p))
    raise AssertionError(f"unknown node {node!r}")  # pragma: no cover


def render(node: Node) -> str:
    """A readable, fully parenthesised text of a coefficient tree (for messages and notes)."""
    if isinstance(node, Number):
        return repr(node.value) if node.value != int(node.value) or abs(node.value) >= 1e15 else str(int(node.value))
    if isinstance(node, Symbol):
        return node.name if node.timing == 0 else f"{node.name}({node.timing:+d})"
    if isinstance(node, Unary):
        return f"-({render(node.operand)})"
    if isinstance(node, Call):
        return f"{node.function}({render(node.argument)})"
    return f"({render(node.left)} {node.op} {render(node.right)})"


__all__ = [
    "ExpressionError",
    "FUNCTIONS",
    "LinearForm",
    "NUMBER_PATTERN",
    "Symbols",
    "Token",
    "compile_coefficient",
    "equation_form",
    "linearize",
    "parameters_in",
    "parse_equation",
    "parse_expression",
    "render",
    "tokenize",
]
