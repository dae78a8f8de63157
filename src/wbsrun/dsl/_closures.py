"""The run-time half of the expression language: the closures `dsl.expr` compiles to.

`dsl/expr.py` parses an expression and checks it; what it builds is a tree of the closures made
by the factories here (`_constant`, `_fields`, `_add`, `_compare_chain`, …), which read the
scope, apply the language's rules (mapping keys only, bounded integers, strings and lists) and
raise `_Failure` with a message `Expr.evaluate` turns into an `ExprEvalError`. The function
whitelist (`FUNCTIONS`) lives here too. Compiled with mypyc: evaluation is on the hot path.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, NoReturn

from wbsrun.dsl.bounds import (
    MAX_INT,
    MAX_INT_DIGITS,
    MAX_TEXT,
    LimitExceeded,
    bounded_text,
    check_concat,
    check_items,
    check_repeat,
    is_mapping,
)

__all__ = [
    "FUNCTIONS",
    "_BINARY",
    "_COMPARE",
    "_COMPARE_CONSTANT",
    "_COMPARE_PAIR",
    "_CONSTANT_NAMES",
    "_FUNCTION_LIST",
    "_OPERATOR_TEXT",
    "_Failure",
    "_Step",
    "_and",
    "_call",
    "_chain",
    "_compare_chain",
    "_constant",
    "_describe",
    "_dynamic_step",
    "_field_step",
    "_fields",
    "_if",
    "_index_step",
    "_list",
    "_negate",
    "_or",
    "_root",
]

_Scope = Mapping[str, Any]
_Fn = Callable[[_Scope], Any]


class _Failure(Exception):
    """Raised inside compiled closures; `Expr.evaluate` turns it into an ExprEvalError."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _kind(value: Any) -> str:
    """The DSL's name for a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


# --- the function whitelist ---


def _len(value: Any) -> int:
    return len(value)


def _int(value: Any) -> int:
    if isinstance(value, (str, bytes, bytearray)) and len(value) > MAX_INT_DIGITS:
        raise LimitExceeded(
            f"int() of a string of {len(value):,} characters (max {MAX_INT_DIGITS:,})"
        )
    return int(value)


def _float(value: Any) -> float:
    return float(value)


def _case_checked(name: str, result: str) -> str:
    # Case mapping can lengthen a string (`'ß'.upper()` is 'SS'), at most threefold.
    if len(result) > MAX_TEXT:
        raise LimitExceeded(f"{name}() would build {len(result):,} characters (max {MAX_TEXT:,})")
    return result


def _lower(value: Any) -> str:
    if not isinstance(value, str):
        raise _Failure(f"lower() expects a string, got {_kind(value)}")
    if len(value) > MAX_TEXT:
        raise LimitExceeded(f"lower() of {len(value):,} characters (max {MAX_TEXT:,})")
    return _case_checked("lower", value.lower())


def _upper(value: Any) -> str:
    if not isinstance(value, str):
        raise _Failure(f"upper() expects a string, got {_kind(value)}")
    if len(value) > MAX_TEXT:
        raise LimitExceeded(f"upper() of {len(value):,} characters (max {MAX_TEXT:,})")
    return _case_checked("upper", value.upper())


FUNCTIONS: Final[Mapping[str, Callable[..., Any]]] = MappingProxyType(
    {
        "len": _len,
        "int": _int,
        "float": _float,
        "str": bounded_text,
        "lower": _lower,
        "upper": _upper,
    }
)
"""The only functions an expression may call; each takes exactly one positional argument."""

_FUNCTION_LIST: Final = ", ".join(sorted(FUNCTIONS))

_CONSTANT_NAMES: Final[Mapping[str, Any]] = MappingProxyType(
    {"true": True, "false": False, "null": None}
)


# --- runtime helpers used by the closures ---


def _field(value: Any, key: str, label: str) -> Any:
    """`value.key` (or `value['key']`): a mapping key, never a Python attribute."""
    if is_mapping(value):
        try:
            return value[key]
        except KeyError:
            raise _Failure(f"{label!r} has no field {key!r}") from None
    raise _Failure(f"{label!r} is {_kind(value)}, not a mapping: cannot read field {key!r}")


def _item(value: Any, key: Any, label: str) -> Any:
    """`value[key]` with a computed key or an integer index."""
    if is_mapping(value):
        try:
            return value[key]
        except KeyError:
            raise _Failure(f"{label!r} has no field {key!r}") from None
    if isinstance(value, Sequence):
        if not isinstance(key, int) or isinstance(key, bool):
            raise _Failure(f"index into {label!r} must be an integer, got {_kind(key)}")
        try:
            return value[key]
        except IndexError:
            raise _Failure(
                f"index {key} is out of range for {label!r} (length {len(value)})"
            ) from None
    raise _Failure(f"{label!r} is {_kind(value)} and cannot be indexed")


def _too_big(value: int) -> NoReturn:
    raise LimitExceeded("integer result out of range (magnitude above 10**18)")


def _describe(exc: BaseException) -> str:
    """A short message for a Python exception raised while evaluating."""
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    labels = {
        TypeError: "type error",
        ValueError: "invalid value",
        IndexError: "index out of range",
        KeyError: "missing key",
        OverflowError: "number out of range",
        RecursionError: "value nested too deeply",
    }
    label = next((v for k, v in labels.items() if isinstance(exc, k)), type(exc).__name__)
    detail = str(exc)
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return f"{label}: {detail}" if detail else label


# --- closure factories ---


def _constant(value: Any) -> _Fn:
    return lambda scope: value


def _root(name: str) -> _Fn:
    def get(scope: _Scope) -> Any:
        try:
            return scope[name]
        except KeyError:
            raise _Failure(f"undefined name {name!r}") from None

    return get


def _fields(name: str, keys: tuple[str, ...], labels: tuple[str, ...]) -> _Fn:
    """`name.k1.k2...`: the common case, specialised so that dicts take a fast path."""
    if len(keys) == 1:
        (key,) = keys
        (label,) = labels

        def get1(scope: _Scope) -> Any:
            try:
                value = scope[name]
            except KeyError:
                raise _Failure(f"undefined name {name!r}") from None
            if type(value) is dict:
                try:
                    return value[key]
                except KeyError:
                    pass
            return _field(value, key, label)

        return get1

    steps = tuple(zip(keys, labels, strict=True))

    def get(scope: _Scope) -> Any:
        try:
            value = scope[name]
        except KeyError:
            raise _Failure(f"undefined name {name!r}") from None
        for key, label in steps:
            if type(value) is dict and key in value:
                value = value[key]
            else:
                value = _field(value, key, label)
        return value

    return get


_Step = Callable[[Any, _Scope], Any]


def _field_step(key: str, label: str) -> _Step:
    def step(value: Any, scope: _Scope) -> Any:
        if type(value) is dict and key in value:
            return value[key]
        return _field(value, key, label)

    return step


def _index_step(index: int, label: str) -> _Step:
    def step(value: Any, scope: _Scope) -> Any:
        if type(value) is list and -len(value) <= index < len(value):
            return value[index]
        return _item(value, index, label)

    return step


def _dynamic_step(index: _Fn, label: str) -> _Step:
    def step(value: Any, scope: _Scope) -> Any:
        return _item(value, index(scope), label)

    return step


def _chain(base: _Fn, steps: tuple[_Step, ...]) -> _Fn:
    def get(scope: _Scope) -> Any:
        value = base(scope)
        for step in steps:
            value = step(value, scope)
        return value

    return get


def _checked_int(op: Callable[[Any, Any], Any]) -> Callable[[_Fn, _Fn], _Fn]:
    def factory(left: _Fn, right: _Fn) -> _Fn:
        def run(scope: _Scope) -> Any:
            result = op(left(scope), right(scope))
            if type(result) is int and not -MAX_INT <= result <= MAX_INT:
                _too_big(result)
            return result

        return run

    return factory


def _add(left: _Fn, right: _Fn) -> _Fn:
    def run(scope: _Scope) -> Any:
        a = left(scope)
        b = right(scope)
        kind = type(a)
        # Numbers and strings first, checked inline: they are what templates add.
        if kind is str and type(b) is str:
            if len(a) + len(b) > MAX_TEXT:
                check_concat(a, b)
            return a + b
        if kind is not int or type(b) is not int:
            check_concat(a, b)
        result = a + b
        if type(result) is int and not -MAX_INT <= result <= MAX_INT:
            _too_big(result)
        return result

    return run


def _multiply(left: _Fn, right: _Fn) -> _Fn:
    def run(scope: _Scope) -> Any:
        a = left(scope)
        b = right(scope)
        kind = type(a)
        if kind is str and type(b) is int:
            if len(a) * b > MAX_TEXT:
                check_repeat(a, b)
            return a * b
        if kind is not int or type(b) is not int:
            check_repeat(a, b)
        result = a * b
        if type(result) is int and not -MAX_INT <= result <= MAX_INT:
            _too_big(result)
        return result

    return run


def _modulo(left: _Fn, right: _Fn) -> _Fn:
    def run(scope: _Scope) -> Any:
        a = left(scope)
        # On strings `%` is printf formatting (`'%999999999d' % 1` allocates a gigabyte).
        if isinstance(a, (str, bytes, bytearray)):
            raise _Failure("'%' works on numbers only (string formatting is not supported)")
        result = a % right(scope)
        if type(result) is int and not -MAX_INT <= result <= MAX_INT:
            _too_big(result)
        return result

    return run


_BINARY: Final[Mapping[type[ast.operator], Callable[[_Fn, _Fn], _Fn]]] = {
    ast.Add: _add,
    ast.Sub: _checked_int(operator.sub),
    ast.Mult: _multiply,
    ast.Div: _checked_int(operator.truediv),
    ast.FloorDiv: _checked_int(operator.floordiv),
    ast.Mod: _modulo,
}

_OPERATOR_TEXT: Final[Mapping[type[ast.AST], str]] = {
    ast.Pow: "**",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Is: "is",
    ast.IsNot: "is",
}


def _contains(a: Any, b: Any) -> bool:
    return a in b


def _not_contains(a: Any, b: Any) -> bool:
    return a not in b


_COMPARE: Final[Mapping[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: _contains,
    ast.NotIn: _not_contains,
}


def _compare_tables() -> tuple[
    dict[type[ast.cmpop], Callable[[_Fn, Any], _Fn]],
    dict[type[ast.cmpop], Callable[[_Fn, _Fn], _Fn]],
]:
    """One comparison against a literal (`asset.status == 200`) is the most frequent
    condition, so it gets closures with the operator inlined rather than an `operator.*` call;
    so does one between two sub-expressions. Built in a function: mypyc cannot compile lambdas
    that return lambdas at module level."""
    constant: dict[type[ast.cmpop], Callable[[_Fn, Any], _Fn]] = {
        ast.Eq: lambda f, c: lambda s: f(s) == c,
        ast.NotEq: lambda f, c: lambda s: f(s) != c,
        ast.Lt: lambda f, c: lambda s: f(s) < c,
        ast.LtE: lambda f, c: lambda s: f(s) <= c,
        ast.Gt: lambda f, c: lambda s: f(s) > c,
        ast.GtE: lambda f, c: lambda s: f(s) >= c,
        ast.In: lambda f, c: lambda s: f(s) in c,
        ast.NotIn: lambda f, c: lambda s: f(s) not in c,
    }
    pair: dict[type[ast.cmpop], Callable[[_Fn, _Fn], _Fn]] = {
        ast.Eq: lambda f, g: lambda s: f(s) == g(s),
        ast.NotEq: lambda f, g: lambda s: f(s) != g(s),
        ast.Lt: lambda f, g: lambda s: f(s) < g(s),
        ast.LtE: lambda f, g: lambda s: f(s) <= g(s),
        ast.Gt: lambda f, g: lambda s: f(s) > g(s),
        ast.GtE: lambda f, g: lambda s: f(s) >= g(s),
        ast.In: lambda f, g: lambda s: f(s) in g(s),
        ast.NotIn: lambda f, g: lambda s: f(s) not in g(s),
    }
    return constant, pair


_COMPARE_CONSTANT, _COMPARE_PAIR = _compare_tables()


def _compare_chain(first: _Fn, rest: tuple[tuple[Callable[[Any, Any], Any], _Fn], ...]) -> _Fn:
    def run(scope: _Scope) -> Any:
        a = first(scope)
        for op, fn in rest:
            b = fn(scope)
            if not op(a, b):
                return False
            a = b
        return True

    return run


def _and(fns: tuple[_Fn, ...]) -> _Fn:
    if len(fns) == 2:
        f, g = fns
        return lambda s: f(s) and g(s)

    def run(scope: _Scope) -> Any:
        value: Any = True
        for fn in fns:
            value = fn(scope)
            if not value:
                return value
        return value

    return run


def _or(fns: tuple[_Fn, ...]) -> _Fn:
    if len(fns) == 2:
        f, g = fns
        return lambda s: f(s) or g(s)

    def run(scope: _Scope) -> Any:
        value: Any = False
        for fn in fns:
            value = fn(scope)
            if value:
                return value
        return value

    return run


def _negate(fn: _Fn) -> _Fn:
    def run(scope: _Scope) -> Any:
        result = -fn(scope)
        if type(result) is int and not -MAX_INT <= result <= MAX_INT:
            _too_big(result)
        return result

    return run


def _call(fn: Callable[[Any], Any], arg: _Fn) -> _Fn:
    return lambda s: fn(arg(s))


def _list(fns: tuple[_Fn, ...]) -> _Fn:
    def run(scope: _Scope) -> list[Any]:
        values = [f(scope) for f in fns]
        # A literal has fewer items than characters: only strings and nested values can
        # take it past the limits. Scalars are checked inline, the rest measured.
        chars = 0
        for value in values:
            kind = type(value)
            if kind is str:
                chars += len(value)
            elif not (kind is int or kind is float or kind is bool or value is None):
                check_items(values)
                return values
        if chars > MAX_TEXT:
            check_items(values)
        return values

    return run


def _if(test: _Fn, body: _Fn, orelse: _Fn) -> _Fn:
    return lambda s: body(s) if test(s) else orelse(s)
