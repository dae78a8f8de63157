"""The safe expression language of `{{ }}`: parsed once into closures, evaluated many times.

Expressions are untrusted text. `compile_expr` parses one with Python's `ast`, rejects every node
outside a small whitelist (with the 0-based column of the offending node), and turns the tree
into nested closures (made by `dsl/_closures.py`, the run-time half), so that evaluating it on
the hot path never walks the AST again.

The language: literals (numbers, strings, `true`/`false`/`null`, lists), names and dotted access
(`a.b` and `a['key-x']` read mapping keys only, never Python attributes), subscripts on
mappings, lists, tuples and strings, comparisons (chained too), `in`/`not in`, `and`/`or`/`not`,
`+ - * / // %`, unary `-`/`+`, `x if c else y`, and calls to the functions in `FUNCTIONS`.
The Python keyword `global` works as a root name (`global.name`), and any keyword works as a
field name after a dot (`error.class`). Names starting with `_` are refused everywhere.

Evaluation is bounded: there are no loops, comprehensions or `**`, integers from arithmetic stay
within MAX_INT, and every string or list an operator or a function builds is checked against
`bounds.MAX_TEXT` / `bounds.MAX_ITEMS` where it is built (ExprLimitError, `expression-limit`).
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
import warnings
from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final, NoReturn, final

from wbsrun.dsl._closures import (
    _BINARY,
    _COMPARE,
    _COMPARE_CONSTANT,
    _COMPARE_PAIR,
    _CONSTANT_NAMES,
    _FUNCTION_LIST,
    _OPERATOR_TEXT,
    FUNCTIONS,
    _and,
    _call,
    _chain,
    _compare_chain,
    _constant,
    _describe,
    _dynamic_step,
    _Failure,
    _field_step,
    _fields,
    _if,
    _index_step,
    _list,
    _negate,
    _or,
    _root,
    _Step,
)
from wbsrun.dsl.bounds import (
    MAX_INT,
    MAX_ITEMS,
    MAX_TEXT,
    LimitExceeded,
    is_mapping,
    to_text,
)
from wbsrun.errors import WbsrunError

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_ITEMS",
    "MAX_LENGTH",
    "MAX_TEXT",
    "Expr",
    "ExprError",
    "ExprEvalError",
    "ExprLimitError",
    "ExprSyntaxError",
    "compile_expr",
    "is_mapping",
    "to_text",
]

MAX_LENGTH: Final = 2_000
"""Longest accepted expression text, in characters."""
MAX_DEPTH: Final = 50
"""Deepest accepted nesting of the expression tree."""

_CACHE_SIZE: Final = 8_192

_Scope = Mapping[str, Any]
_Fn = Callable[[_Scope], Any]


class ExprError(WbsrunError):
    """Base of every error about a DSL expression or template."""


class ExprSyntaxError(ExprError):
    """An expression was refused at compile time; `column` is a 0-based offset into `text`."""

    def __init__(self, text: str, message: str, column: int) -> None:
        super().__init__(text, message, column)
        self.text = text
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return f"{self.message} (at offset {self.column} of expression {self.text!r})"


class ExprEvalError(ExprError):
    """An expression failed while being evaluated (undefined name, missing field, bad type...)."""

    def __init__(self, text: str, message: str) -> None:
        super().__init__(text, message)
        self.text = text
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} in expression {self.text!r}"


class ExprLimitError(ExprEvalError):
    """An expression or a template would build a value past a limit (MAX_TEXT, MAX_ITEMS,
    MAX_INT): refused before it is allocated where its size is known beforehand. A run
    reports it as `expression-limit` (no per-class `code` attribute: compiled classes do not
    keep one, see setup.py)."""


# --- the compiler ---

_FORBIDDEN: Final[Mapping[type[ast.AST], str]] = {
    ast.Lambda: "lambda expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Starred: "starred expressions are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: "set literals are not allowed",
    ast.Tuple: "tuples are not allowed; use a list [a, b]",
    ast.Slice: "slices are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


class _Compiler:
    """Turns one parsed expression into closures, checking every node against the whitelist."""

    def __init__(self, text: str, source: str, lead: int, renamed: Mapping[int, str]) -> None:
        self.text = text
        self.lead = lead
        self.renamed = renamed
        self.encoded = source.encode()
        self.ascii = source.isascii()
        # Same offsets as `text`; used for labels in runtime error messages.
        self.display = text.replace("\r", " ").replace("\n", " ")
        self.names: set[tuple[str, ...]] = set()

    # positions: ast offsets are UTF-8 byte offsets into `source`; columns are characters in `text`
    def column(self, byte_offset: int | None) -> int:
        offset = byte_offset or 0
        if not self.ascii:
            offset = len(self.encoded[:offset].decode("utf-8", "replace"))
        return self.lead + offset

    def start(self, node: ast.AST) -> int:
        return self.column(getattr(node, "col_offset", 0))

    def end(self, node: ast.AST) -> int:
        return self.column(getattr(node, "end_col_offset", 0))

    def fail(self, message: str, column: int) -> NoReturn:
        raise ExprSyntaxError(self.text, message, column)

    def operator_column(self, left: ast.AST, right: ast.AST, symbol: str) -> int:
        """Where `symbol` sits between two operands (the AST does not place operators)."""
        begin, finish = self.end(left), self.start(right)
        found = self.text.find(symbol, begin, finish)
        return found if found >= 0 else begin

    def identifier(self, name: str, column: int) -> str:
        original = self.renamed.get(column)
        if original is not None:
            return original
        if name.startswith("_"):
            self.fail(f"names starting with '_' are not allowed: {name!r}", column)
        return name

    def check_private_names(self, tree: ast.expr) -> None:
        """Refuse `_` names first, wherever they are: the leftmost one is the reported one."""
        private: list[tuple[int, str]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                column, name = self.start(node), node.id
            elif isinstance(node, ast.Attribute):
                column, name = self.end(node) - len(node.attr), node.attr
            else:
                continue
            if name.startswith("_") and column not in self.renamed:
                private.append((column, name))
        if private:
            column, name = min(private)
            self.fail(f"names starting with '_' are not allowed: {name!r}", column)

    def build(self, node: ast.expr, depth: int) -> _Fn:
        if depth > MAX_DEPTH:
            self.fail(
                f"expression too complex: nested deeper than {MAX_DEPTH} levels", self.start(node)
            )
        match node:
            case ast.Constant(value=value):
                return self.build_constant(node, value)
            case ast.Name(id=name):
                if name in _CONSTANT_NAMES:
                    return _constant(_CONSTANT_NAMES[name])
                return self.build_chain(node, depth)
            case ast.Attribute() | ast.Subscript():
                return self.build_chain(node, depth)
            case ast.BinOp(left=left, op=op, right=right):
                factory = _BINARY.get(type(op))
                if factory is None:
                    symbol = _OPERATOR_TEXT.get(type(op), "")
                    self.fail(
                        f"operator {symbol!r} is not allowed",
                        self.operator_column(left, right, symbol) if symbol else self.start(node),
                    )
                return factory(self.build(left, depth + 1), self.build(right, depth + 1))
            case ast.UnaryOp(op=op, operand=operand):
                if isinstance(op, ast.Invert):
                    self.fail("operator '~' is not allowed", self.start(node))
                inner = self.build(operand, depth + 1)
                if isinstance(op, ast.Not):
                    return lambda s: not inner(s)
                if isinstance(op, ast.USub):
                    return _negate(inner)
                return lambda s: +inner(s)
            case ast.BoolOp(op=op, values=values):
                fns = tuple(self.build(v, depth + 1) for v in values)
                return _and(fns) if isinstance(op, ast.And) else _or(fns)
            case ast.Compare():
                return self.build_compare(node, depth)
            case ast.IfExp(test=test, body=body, orelse=orelse):
                return _if(
                    self.build(test, depth + 1),
                    self.build(body, depth + 1),
                    self.build(orelse, depth + 1),
                )
            case ast.List(elts=elts):
                return _list(tuple(self.build(e, depth + 1) for e in elts))
            case ast.Call():
                return self.build_call(node, depth)
        message = _FORBIDDEN.get(type(node), f"{type(node).__name__} is not allowed")
        self.fail(message, self.start(node))

    def build_constant(self, node: ast.AST, value: Any) -> _Fn:
        if value is None or isinstance(value, (bool, int, float, str)):
            return _constant(value)
        if isinstance(value, complex):
            message = "complex numbers are not allowed"
        elif isinstance(value, bytes):
            message = "bytes literals are not allowed"
        else:
            message = "'...' is not allowed"
        self.fail(message, self.start(node))

    def build_compare(self, node: ast.Compare, depth: int) -> _Fn:
        operands = [node.left, *node.comparators]
        ops: list[type[ast.cmpop]] = []
        for i, op in enumerate(node.ops):
            if type(op) not in _COMPARE:
                # Only `is` / `is not` are left outside the whitelist.
                self.fail(
                    "operator 'is' is not allowed; use == or !=",
                    self.operator_column(operands[i], operands[i + 1], "is"),
                )
            ops.append(type(op))
        fns = [self.build(n, depth + 1) for n in operands]
        if len(ops) == 1:
            right = node.comparators[0]
            if isinstance(right, ast.Constant):
                return _COMPARE_CONSTANT[ops[0]](fns[0], right.value)
            return _COMPARE_PAIR[ops[0]](fns[0], fns[1])
        return _compare_chain(
            fns[0], tuple((_COMPARE[op], fn) for op, fn in zip(ops, fns[1:], strict=True))
        )

    def build_call(self, node: ast.Call, depth: int) -> _Fn:
        func = node.func
        if isinstance(func, ast.Attribute):
            self.fail("method calls are not allowed", self.end(func) - len(func.attr))
        if not isinstance(func, ast.Name):
            self.fail(f"only these functions can be called: {_FUNCTION_LIST}", self.start(func))
        name = self.renamed.get(self.start(func), func.id)
        if name not in FUNCTIONS:
            self.fail(f"unknown function {name!r} (allowed: {_FUNCTION_LIST})", self.start(func))
        if node.keywords:
            self.fail("keyword arguments are not allowed", self.start(node.keywords[0]))
        args = [self.build(a, depth + 1) for a in node.args]
        if len(args) != 1:
            self.fail(f"{name}() takes exactly 1 argument ({len(args)} given)", self.start(node))
        return _call(FUNCTIONS[name], args[0])

    def build_chain(self, node: ast.expr, depth: int) -> _Fn:
        """`base.a['b'][0][x]`: one closure for the whole access path, names recorded."""
        links: list[ast.Attribute | ast.Subscript] = []
        current = node
        while isinstance(current, (ast.Attribute, ast.Subscript)):
            links.append(current)
            current = current.value
        if depth + len(links) > MAX_DEPTH:
            self.fail(
                f"expression too complex: nested deeper than {MAX_DEPTH} levels", self.start(node)
            )
        base_node = current
        root = ""
        base: _Fn | None = None
        if isinstance(base_node, ast.Name) and base_node.id not in _CONSTANT_NAMES:
            root = self.identifier(base_node.id, self.start(base_node))
        else:
            base = self.build(base_node, depth + len(links))

        # (kind, payload, node accessed): kinds are "key" (static str), "index", "dynamic".
        # Built left to right, so that the leftmost problem is the one reported.
        accessors: list[tuple[str, Any, ast.expr]] = []
        for level in range(len(links) - 1, -1, -1):
            link = links[level]
            if isinstance(link, ast.Attribute):
                column = self.end(link) - len(link.attr)
                accessors.append(("key", self.identifier(link.attr, column), link.value))
            else:
                accessors.append(self.subscript(link, depth + level + 1))

        if base is None:
            path = [root]
            for kind, payload, _ in accessors:
                if kind != "key":
                    break
                path.append(payload)
            self.names.add(tuple(path))
            if accessors and len(path) == len(accessors) + 1:
                labels = tuple(self.label(base_node, accessed) for *_, accessed in accessors)
                return _fields(root, tuple(path[1:]), labels)
            base = _root(root)
        if not accessors:
            return base

        steps: list[_Step] = []
        for kind, payload, accessed in accessors:
            label = self.label(base_node, accessed)
            if kind == "key":
                steps.append(_field_step(payload, label))
            elif kind == "index":
                steps.append(_index_step(payload, label))
            else:
                steps.append(_dynamic_step(payload, label))
        return _chain(base, tuple(steps))

    def subscript(self, node: ast.Subscript, depth: int) -> tuple[str, Any, ast.expr]:
        index = node.slice
        if isinstance(index, ast.Constant):
            if isinstance(index.value, str):
                return ("key", index.value, node.value)
            if isinstance(index.value, int) and not isinstance(index.value, bool):
                return ("index", index.value, node.value)
        if (
            isinstance(index, ast.UnaryOp)
            and isinstance(index.op, ast.USub)
            and isinstance(index.operand, ast.Constant)
            and type(index.operand.value) is int
        ):
            return ("index", -index.operand.value, node.value)
        return ("dynamic", self.build(index, depth + 1), node.value)

    def label(self, base: ast.AST, accessed: ast.AST) -> str:
        """The source text of the value being accessed, e.g. `asset.body` for `asset.body.x`."""
        return self.display[self.start(base) : self.end(accessed)]


def _prepare(text: str) -> tuple[str, int, dict[int, str]]:
    """Text to parse, its offset in `text`, and the keywords renamed (by column) to parse it.

    Newlines become spaces (same offsets, so a YAML block scalar may span lines). Python keywords
    that the DSL uses as names (`global.name`, `error.class`) are replaced by same-length
    underscore runs, which user text can never produce since `_` names are refused.
    """
    flat = text.replace("\r", " ").replace("\n", " ")
    source = flat.strip()
    lead = len(flat) - len(flat.lstrip())
    if not source:
        raise ExprSyntaxError(text, "empty expression", 0)
    chars = list(source)
    renamed: dict[int, str] = {}
    previous: tokenize.TokenInfo | None = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                raise ExprSyntaxError(text, "comments are not allowed", lead + token.start[1])
            if token.type == tokenize.NAME and keyword.iskeyword(token.string):
                after_dot = (
                    previous is not None and previous.type == tokenize.OP and previous.string == "."
                )
                if token.string == "global" or after_dot:
                    column = token.start[1]
                    chars[column : column + len(token.string)] = "_" * len(token.string)
                    renamed[lead + column] = token.string
            previous = token
    except (tokenize.TokenError, SyntaxError):
        pass  # ast.parse reports the problem with a better message and position
    return "".join(chars), lead, renamed


def _compile(text: str) -> Expr:
    if len(text) > MAX_LENGTH:
        raise ExprSyntaxError(
            text, f"expression too complex: {len(text)} characters (max {MAX_LENGTH})", MAX_LENGTH
        )
    source, lead, renamed = _prepare(text)
    try:
        with warnings.catch_warnings():
            # Invalid escapes like '\d' only warn in Python; here they are errors.
            warnings.simplefilter("error")
            # The trailing newline makes the parser place "incomplete input" errors at the end.
            tree = ast.parse(source + "\n", mode="eval")
    except SyntaxError as exc:
        if exc.lineno is not None and exc.lineno > 1:
            column = len(text)
        else:
            column = lead + max((exc.offset or 1) - 1, 0)
        message = exc.msg or "invalid syntax"
        if message == "invalid syntax" and column >= lead + len(source):
            message = "unexpected end of expression"
        raise ExprSyntaxError(text, message, min(column, len(text))) from None
    except UnicodeEncodeError as bad:  # one name per handler (see `Expr.evaluate`)
        message = f"invalid character {bad.object[bad.start]!r}"
        raise ExprSyntaxError(text, message, lead + bad.start) from None
    except (RecursionError, MemoryError):
        raise ExprSyntaxError(text, "expression too complex", lead) from None
    except ValueError as invalid:
        raise ExprSyntaxError(text, f"invalid expression: {invalid}", lead) from None
    compiler = _Compiler(text, source, lead, renamed)
    compiler.check_private_names(tree.body)
    fn = compiler.build(tree.body, 1)
    return Expr(text, fn, frozenset(compiler.names), _shape(tree.body))


# The comparisons a guard (core/guards.py) reads directly; `in` stays with the closures.
_SHAPE_OPS: Final[Mapping[type[ast.cmpop], str]] = MappingProxyType(
    {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
)
_SHAPE_LITERALS: Final = frozenset({str, int, float, bool, type(None)})


def _shape_path(node: ast.expr) -> tuple[str, ...] | None:
    """`a.b['c']` as ('a', 'b', 'c'): names and string keys only."""
    keys: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            keys.append(node.attr)
            node = node.value
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and type(node.slice.value) is str
        ):
            keys.append(node.slice.value)
            node = node.value
        elif isinstance(node, ast.Name) and node.id not in _CONSTANT_NAMES:
            keys.append(node.id)
            break
        else:
            return None
    keys.reverse()
    # A renamed keyword (`global`, `.class`) is an underscore run: leave those to the closures.
    return None if any(k.startswith("_") for k in keys) else tuple(keys)


def _shape_literal(node: ast.expr) -> tuple[bool, Any]:
    if isinstance(node, ast.Constant) and type(node.value) in _SHAPE_LITERALS:
        return True, node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANT_NAMES:
        return True, _CONSTANT_NAMES[node.id]
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        number = node.operand.value
        if type(number) is int or type(number) is float:
            return True, -number
    return False, None


def _shape(node: ast.expr) -> tuple[tuple[str, ...], str, Any] | None:
    """`path OP literal` (one comparison of a name path with a literal), or None: what a guard
    can test by reading the path directly instead of running the closures over a scope."""
    if not isinstance(node, ast.Compare) or len(node.ops) != 1:
        return None
    op = _SHAPE_OPS.get(type(node.ops[0]))
    path = _shape_path(node.left)
    found, literal = _shape_literal(node.comparators[0])
    if op is None or path is None or not found:
        return None
    return path, op, literal


_compile_cached = lru_cache(maxsize=_CACHE_SIZE)(_compile)


def compile_expr(text: str) -> Expr:
    """Compile an expression (cached by text); raises ExprSyntaxError."""
    return _compile_cached(text)


@final
class Expr:
    """A compiled expression. Immutable; share it freely across tasks and threads.

    `names` holds every name path read, cut at the first non-static step (`a['k'].b` ->
    `('a', 'k', 'b')`, `a[0].b` -> `('a',)`); `roots` their first elements. `shape` is
    `(path, op, literal)` when the whole expression is one comparison of a name path with a
    literal (`workbook.state == 'monitoring.timeout'`): core/guards.py tests those directly.
    """

    __slots__ = ("_fn", "is_constant", "names", "roots", "shape", "text")

    def __init__(
        self,
        text: str,
        fn: _Fn,
        names: frozenset[tuple[str, ...]],
        shape: tuple[tuple[str, ...], str, Any] | None = None,
    ) -> None:
        self.text = text
        self._fn = fn
        self.shape = shape
        self.names = names
        self.roots = frozenset(path[0] for path in names)
        self.is_constant = not names

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """The expression's value in `scope`; raises ExprEvalError and nothing else."""
        try:
            return self._fn(scope)
        except _Failure as failure:
            raise ExprEvalError(self.text, failure.message) from None
        except LimitExceeded as limit:
            raise ExprLimitError(self.text, limit.message) from None
        # A name of its own: compiled (mypyc), a name bound by two handlers keeps the first
        # one's type, and an exception of the second kind fails that type check.
        except Exception as exc:
            raise ExprEvalError(self.text, _describe(exc)) from exc

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"
