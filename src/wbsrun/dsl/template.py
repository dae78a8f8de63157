"""`{{ expr }}` templates in scenario strings, and compiled nested values made of them.

A string that is exactly one `{{ ... }}` renders to the expression's value with its type; any
other string renders to text, each value converted by `to_text`. A lone `}}` is literal text;
to write a literal `{{`, use an expression: `{{ '{{' }}`. Inside the braces, a `}}` within a
quoted string does not close the expression.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any, Final, NoReturn, final

from wbsrun.dsl.bounds import MAX_TEXT, LimitExceeded, bounded_text
from wbsrun.dsl.expr import (
    Expr,
    ExprError,
    ExprLimitError,
    ExprSyntaxError,
    compile_expr,
    to_text,
)

__all__ = [
    "CompiledValue",
    "Template",
    "TemplateSyntaxError",
    "compile_template",
    "compile_value",
    "iter_templates",
    "stored_expr",
    "stored_template",
    "stored_value",
    "to_text",
]

_CACHE_SIZE: Final = 8_192

_Scope = Mapping[str, Any]
_Render = Callable[[_Scope], Any]
Path = tuple[str | int, ...]


def _format_path(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class TemplateSyntaxError(ExprError):
    """A template was refused at compile time.

    `column` is a 0-based offset into the whole string `text`; `path` is the key path of that
    string inside the value given to `compile_value` (empty otherwise).
    """

    def __init__(self, text: str, message: str, column: int, path: Path = ()) -> None:
        super().__init__(text, message, column, path)
        self.text = text
        self.message = message
        self.column = column
        self.path = path

    def __str__(self) -> str:
        where = f" at {_format_path(self.path)}" if self.path else ""
        return f"{self.message} (at offset {self.column} of {self.text!r}{where})"


def _find_close(source: str, start: int) -> int:
    """Index of the `}}` closing an expression that begins at `start`, or -1.

    Quoted strings are skipped so that `{{ x['}}'] }}` works; if a quote never closes, the
    first `}}` wins and the expression compiler reports the unterminated string.
    """
    quote = ""
    i, n = start, len(source)
    while i < n:
        char = source[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "}" and source.startswith("}}", i):
            return i
        i += 1
    return source.find("}}", start)


def _parse(source: str) -> tuple[list[str], list[Expr]]:
    """Split `source` into literal pieces and the expressions between them (len+1 literals)."""
    literals: list[str] = []
    expressions: list[Expr] = []
    position = 0
    while True:
        start = source.find("{{", position)
        if start < 0:
            literals.append(source[position:])
            return literals, expressions
        inner_start = start + 2
        close = _find_close(source, inner_start)
        if close < 0:
            raise TemplateSyntaxError(source, "unclosed '{{' (no matching '}}')", start)
        inner = source[inner_start:close]
        if not inner.strip():
            raise TemplateSyntaxError(source, "empty expression '{{ }}'", start)
        try:
            expression = compile_expr(inner)
        except ExprSyntaxError as exc:
            raise TemplateSyntaxError(source, exc.message, inner_start + exc.column) from exc
        literals.append(source[position:start])
        expressions.append(expression)
        position = close + 2


def _text(value: Any, source: str) -> str:
    """The text interpolated for one value; at most MAX_TEXT characters."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            _too_long(source, len(value))
        return value
    kind = type(value)
    if kind is int or kind is float:
        return str(value)  # an int has at most 4,300 digits: `int()` and JSON refuse more
    try:
        return bounded_text(value)
    except LimitExceeded as limit:
        raise ExprLimitError(source, limit.message) from None


def _too_long(source: str, size: int) -> NoReturn:
    message = f"template would interpolate at least {size:,} characters (max {MAX_TEXT:,})"
    raise ExprLimitError(source, message)


def _interpolate(source: str, literals: tuple[str, ...], expressions: tuple[Expr, ...]) -> _Render:
    """Text with each expression's value interpolated. The values' texts together are at most
    MAX_TEXT characters; the literal text around them is bounded by the scenario file."""
    head = literals[0]
    if len(expressions) == 1:
        evaluate = expressions[0].evaluate
        tail = literals[1]
        return lambda scope: head + _text(evaluate(scope), source) + tail
    if len(expressions) == 2:
        first, second = [e.evaluate for e in expressions]
        middle, tail = literals[1:]

        def render2(scope: _Scope) -> str:
            one = _text(first(scope), source)
            two = _text(second(scope), source)
            if len(one) + len(two) > MAX_TEXT:
                _too_long(source, len(one) + len(two))
            return head + one + middle + two + tail

        return render2
    pairs = tuple((e.evaluate, lit) for e, lit in zip(expressions, literals[1:], strict=True))

    def render(scope: _Scope) -> str:
        parts = [head]
        size = 0
        for evaluate, literal in pairs:
            text = _text(evaluate(scope), source)
            size += len(text)
            if size > MAX_TEXT:
                _too_long(source, size)
            parts.append(text)
            parts.append(literal)
        return "".join(parts)

    return render


@final
class Template:
    """A compiled scenario string. Immutable; share it freely."""

    __slots__ = ("_render", "expressions", "is_constant", "is_single", "names", "source")

    def __init__(self, source: str, stored: frozenset[tuple[str, ...]] | None = None) -> None:
        self.source = source
        self.names: frozenset[tuple[str, ...]]
        self.expressions: tuple[Expr, ...]
        self._render: _Render
        if stored is not None:  # `stored_template`
            self.names = stored
            self.expressions = ()
            self.is_constant, self.is_single = _single_marker(source)
            self._render = (lambda scope: source) if self.is_constant else self._first_render
            return
        literals, expressions = _parse(source)
        self.expressions = tuple(expressions)
        self.is_constant = not expressions
        self.is_single = len(expressions) == 1 and literals == ["", ""]
        self.names = frozenset().union(*[e.names for e in expressions])
        if self.is_constant:
            # No markers: the string renders as written, a lone `}}` included.
            self._render = lambda scope: source
        elif self.is_single:
            self._render = expressions[0].evaluate
        else:
            self._render = _interpolate(source, tuple(literals), self.expressions)

    def render(self, scope: Mapping[str, Any]) -> Any:
        """The value (single expression), the interpolated text, or `source` when constant.

        Raises ExprEvalError when an expression fails.
        """
        return self._render(scope)

    def _first_render(self, scope: Mapping[str, Any]) -> Any:
        """A stored template's first render compiles it (`stored_template`); the later ones
        go straight to the compiled renderer."""
        real = compile_template(self.source)
        self.expressions = real.expressions
        self._render = real._render
        return real._render(scope)

    def render_text(self, scope: Mapping[str, Any]) -> str:
        """Like `render`, always as text (at most MAX_TEXT characters: ExprLimitError)."""
        return _text(self._render(scope), self.source)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


_compile_cached = lru_cache(maxsize=_CACHE_SIZE)(Template)


def _single_marker(source: str) -> tuple[bool, bool]:
    """(no marker at all, exactly one `{{ }}` spanning the whole string) of a valid template,
    found without compiling it."""
    start = source.find("{{")
    if start < 0:
        return True, False
    close = _find_close(source, start + 2)
    return False, start == 0 and close == len(source) - 2


def stored_expr(
    text: str,
    names: frozenset[tuple[str, ...]],
    shape: tuple[tuple[str, ...], str, Any] | None = None,
) -> Expr:
    """An expression read back from a compiled plan (a transition's condition): compiled on
    its first evaluation, as `stored_template`; its `names` and `shape` stored with it."""

    def first(scope: _Scope) -> Any:
        real = compile_expr(text)
        expr._fn = real._fn  # evaluate() wraps it: its failures are reported as before
        return real._fn(scope)

    expr = Expr(text, first, names, shape)
    return expr


def stored_template(source: str, names: frozenset[tuple[str, ...]]) -> Template:
    """A template read back from a compiled plan (dsl/binary): compiled and validated when
    the plan was made, its `names` stored with it. Its expressions are compiled on its first
    render, so loading a plan costs no parsing of templates a run may never reach."""
    return Template(source, names)


def compile_template(text: str) -> Template:
    """Compile a scenario string (cached by text); raises TemplateSyntaxError."""
    return _compile_cached(text)


@final
class CompiledValue:
    """A compiled nested structure of dicts, lists and scalars, with templates in its strings.

    `render` builds new dicts and lists wherever something below is templated, but fully
    constant subtrees (and non-string scalars) are returned as the very objects that were
    compiled, shared by every render: callers must not mutate what `render` returns in place.
    """

    __slots__ = ("_render", "is_constant", "names", "value")

    def __init__(
        self,
        render: _Render,
        names: frozenset[tuple[str, ...]],
        is_constant: bool,
        value: Any = None,
    ) -> None:
        self._render = render
        self.names = names
        self.is_constant = is_constant
        # The structure as written, before compiling: what a compiled plan file stores
        # (dsl/binary), since the renderer's closures cannot be stored.
        self.value = value

    def render(self, scope: Mapping[str, Any]) -> Any:
        """A new structure with every template rendered; raises ExprEvalError."""
        return self._render(scope)

    def _first_render(self, scope: Mapping[str, Any]) -> Any:
        """A stored value's first render compiles it (`stored_value`)."""
        self._render = compile_value(self.value)._render
        return self._render(scope)


def stored_value(value: Any, names: frozenset[tuple[str, ...]], is_constant: bool) -> CompiledValue:
    """A compiled value read back from a compiled plan (dsl/binary): its strings compiled on
    its first render (as `stored_template`); a constant one renders `value` as it is."""
    if is_constant:
        return CompiledValue(lambda scope: value, names, True, value)
    lazy = CompiledValue(lambda scope: None, names, False, value)
    lazy._render = lazy._first_render
    return lazy


class _Builder:
    """Compiles a value tree; a subtree that needs no rendering compiles to None."""

    def __init__(self) -> None:
        self.names: set[tuple[str, ...]] = set()

    def build(self, value: Any, path: Path) -> _Render | None:
        if isinstance(value, str):
            return self.build_string(value, path)
        if isinstance(value, dict):
            return self.build_dict(value, path)
        if isinstance(value, (list, tuple)):
            return self.build_list(value, path)
        return None

    def build_string(self, value: str, path: Path) -> _Render | None:
        try:
            template = compile_template(value)
        except TemplateSyntaxError as exc:
            raise TemplateSyntaxError(exc.text, exc.message, exc.column, path) from exc
        if template.is_constant:
            return None
        self.names.update(template.names)
        # The template's own renderer, not the bound method: one call level less a string.
        return template._render

    def build_dict(self, value: dict[Any, Any], path: Path) -> _Render | None:
        items = tuple(
            (key, child, self.build(child, (*path, _path_key(key)))) for key, child in value.items()
        )
        if all(render is None for *_, render in items):
            return None
        return lambda scope: {
            key: child if render is None else render(scope) for key, child, render in items
        }

    def build_list(self, value: list[Any] | tuple[Any, ...], path: Path) -> _Render | None:
        items = tuple(
            (child, self.build(child, (*path, index))) for index, child in enumerate(value)
        )
        if all(render is None for _, render in items):
            return None
        if isinstance(value, tuple):
            return lambda scope: tuple(
                child if render is None else render(scope) for child, render in items
            )
        return lambda scope: [child if render is None else render(scope) for child, render in items]


def _path_key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def compile_value(value: Any) -> CompiledValue:
    """Compile every string inside `value` (dict values and list items; keys stay as written).

    Raises TemplateSyntaxError whose `path` is the key path of the bad string inside `value`.
    """
    builder = _Builder()
    render = builder.build(value, ())
    if render is None:
        return CompiledValue(lambda scope: value, frozenset(), True, value)
    return CompiledValue(render, frozenset(builder.names), False, value)


def iter_templates(value: Any) -> Iterator[tuple[Path, str]]:
    """Every string leaf of `value` (dict values, list items) with its key path."""
    return _walk(value, ())


def _walk(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _walk(child, (*path, _path_key(key)))
    elif isinstance(value, (list, tuple)):
        for index, child in enumerate(value):
            yield from _walk(child, (*path, index))
