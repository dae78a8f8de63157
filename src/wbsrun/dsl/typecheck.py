"""Compile-time type checks of the scenario's expressions (`wbsrun compile`).

Validation already refuses what cannot be compiled (syntax, names outside the language,
private names, depth, length) and names no one provides. What it lets through are
expressions that compile but fail whenever they run: `{{ 1 / 0 }}`, `{{ len(x) + 'a' }}`,
`{{ -'x' }}`, `{{ 'a' < 3 }}`. Those are found here, where they are certain:
a subtree without names is evaluated as it stands, and an operator, comparison, call or
field access whose operands' types are known (literals, and what `len`, `int`, `float`,
`str`, `lower`, `upper`, comparisons and `not` return) is tried on values of those types
with the expression engine itself, so nothing is refused that the engine would accept.
A `%` with a string on its left (formatting) is not judged: it depends on the text."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any, Final

from wbsrun.dsl.expr import ExprError, ExprEvalError, _prepare, compile_expr
from wbsrun.dsl.source import SourceDoc
from wbsrun.dsl.template import _find_close
from wbsrun.errors import Diagnostic

__all__ = ["check_expressions"]

# A value of each type the checker tracks: what an operation is tried on.
_SAMPLES: Final[dict[str, Any]] = {
    "int": 3,
    "float": 2.5,
    "bool": True,
    "str": "1",
    "none": None,
    "list": [1],
}
_BINOPS: Final = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
}
_COMPARE: Final = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in"}
_COMPARE[ast.NotIn] = "not in"
_RETURNS: Final = {
    "len": "int",
    "int": "int",
    "float": "float",
    "str": "str",
    "lower": "str",
    "upper": "str",
}
_CONSTANTS: Final = frozenset({"true", "false", "null", "True", "False", "None"})
_EXPECTED: Final = "an expression whose operands have types its operators accept"


class _Wrong(Exception):
    def __init__(self, message: str, node: ast.AST) -> None:
        super().__init__(message)
        self.message = message
        self.node = node


def _type_of(value: Any) -> str | None:
    for name, sample in _SAMPLES.items():
        if type(value) is type(sample):
            return name
    return None


def _try(text: str, scope: dict[str, Any], node: ast.AST) -> Any:
    try:
        return compile_expr(text).evaluate(scope)
    except ExprEvalError as exc:
        raise _Wrong(exc.message, node) from None


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def has_names(self, node: ast.AST) -> bool:
        """Whether `node` reads a variable (functions and true/false/null are not)."""
        called = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
        return any(
            isinstance(n, ast.Name) and id(n) not in called and n.id not in _CONSTANTS
            for n in ast.walk(node)
        )

    def infer(self, node: ast.expr) -> str | None:
        """The type `node` evaluates to when certain (None: unknown); raises _Wrong."""
        if not self.has_names(node):
            text = ast.get_source_segment(self.source, node) or ""
            return _type_of(_try(text, {}, node))
        match node:
            case ast.BinOp(left=left, op=op, right=right):
                a, b = self.infer(left), self.infer(right)
                return self.probe_binop(node, a, _BINOPS[type(op)], b)
            case ast.UnaryOp(op=op, operand=operand):
                kind = self.infer(operand)
                if isinstance(op, ast.Not):
                    return "bool"
                if kind is None:
                    return None
                symbol = "-" if isinstance(op, ast.USub) else "+"
                return _type_of(_try(f"{symbol}a", {"a": _SAMPLES[kind]}, node))
            case ast.Compare(left=left, ops=ops, comparators=rest):
                kinds = [self.infer(left), *(self.infer(c) for c in rest)]
                for i, cmp in enumerate(ops):
                    found = _COMPARE.get(type(cmp))
                    a, b = kinds[i], kinds[i + 1]
                    if found is not None and a is not None and b is not None:
                        scope = {"a": _SAMPLES[a], "b": _SAMPLES[b]}
                        _try(f"a {found} b", scope, node)
                return "bool"
            case ast.Call(func=ast.Name(id=name), args=[arg]):
                kind = self.infer(arg)
                if kind is not None:
                    _try(f"{name}(a)", {"a": _SAMPLES[kind]}, node)
                return _RETURNS.get(name)
            case ast.Attribute(value=value, attr=attr):
                kind = self.infer(value) if not isinstance(value, ast.Name) else None
                if kind is not None and not attr.startswith("_"):
                    label = ast.get_source_segment(self.source, value) or "a"
                    try:
                        _try(f"a.{attr}", {"a": _SAMPLES[kind]}, node)
                    except _Wrong as wrong:
                        raise _Wrong(wrong.message.replace("'a'", f"'{label}'"), node) from None
                return None
            case ast.IfExp(test=test, body=body, orelse=orelse):
                self.infer(test)
                return self.maybe(body) if self.maybe(body) == self.maybe(orelse) else None
            case ast.BoolOp(values=[first, *later]):
                self.infer(first)
                for value in later:
                    self.maybe(value)
                return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.infer(child)
        return None

    def maybe(self, node: ast.expr) -> str | None:
        """A part that may not run (a branch, the right of and/or): not judged."""
        try:
            return self.infer(node)
        except _Wrong:
            return None

    def probe_binop(self, node: ast.AST, a: str | None, op: str, b: str | None) -> str | None:
        if a is None or b is None or (op == "%" and a == "str"):
            return None
        return _type_of(_try(f"a {op} b", {"a": _SAMPLES[a], "b": _SAMPLES[b]}, node))


def expression_problem(text: str) -> tuple[str, int] | None:
    """What in an expression (text between `{{ }}`, or a bare condition) would fail every
    time it runs, and its 0-based column in `text`; None when nothing is certain."""
    try:
        compile_expr(text)  # validation reported what does not compile
        source, lead, _ = _prepare(text)
        tree = ast.parse(source, mode="eval")
    except (ExprError, SyntaxError, ValueError, RecursionError):
        return None
    try:
        _Checker(source).infer(tree.body)
    except _Wrong as wrong:
        offset = getattr(wrong.node, "col_offset", 0)
        column = lead + len(source.encode()[:offset].decode("utf-8", "replace"))
        return wrong.message, column
    return None


def _expressions(text: str) -> Iterator[tuple[str, int]]:
    """The expressions of a template, each with the column where it starts."""
    position = 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            return
        close = _find_close(text, start + 2)
        if close < 0:
            return
        yield text[start + 2 : close], start + 2
        position = close + 2


def _leaves(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))


def _is_condition(path: tuple[str | int, ...]) -> bool:
    return len(path) >= 3 and path[-1] == "condition" and path[-3] == "transitions"


def check_expressions(doc: SourceDoc, text: str) -> list[Diagnostic]:
    """Every expression of the scenario (`doc`, read from `text`) that would fail whenever
    it runs, where it is."""
    lines = text.splitlines()
    found: list[Diagnostic] = []
    for path, leaf in _leaves(doc.data, ()):
        if _is_condition(path) and leaf.strip() not in ("always", "otherwise"):
            inner = leaf.strip()
            bare = inner[2:-2] if inner.startswith("{{") and inner.endswith("}}") else inner
            items = [(bare, leaf.find(bare))]
        elif "{{" in leaf:
            items = list(_expressions(leaf))
        else:
            continue
        for expression, offset in items:
            problem = expression_problem(expression)
            if problem is not None:
                column = offset + problem[1]
                found.append(_diagnostic(doc, lines, path, expression, column, problem[0]))
    return found


def _diagnostic(
    doc: SourceDoc,
    lines: list[str],
    path: tuple[str | int, ...],
    expression: str,
    column: int,
    message: str,
) -> Diagnostic:
    base = doc.diag(path, "expr-type", f"expression fails whenever it runs: {message}")
    line, col = base.line, base.column
    quoted = 0 < line <= len(lines) and 0 < col <= len(lines[line - 1])
    if quoted and lines[line - 1][col - 1] in "\"'":
        col += 1  # the value starts after its quote
    return Diagnostic(
        code=base.code,
        message=base.message,
        file=base.file,
        line=line,
        column=col + column,
        path=base.path,
        value=expression.strip(),
        expected=_EXPECTED,
    )
