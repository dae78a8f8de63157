"""Tests of the safe expression evaluator: language, sandbox refusals, names, errors, limits."""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.dsl.bounds import bounded_text
from wbsrun.dsl.expr import (
    FUNCTIONS,
    MAX_LENGTH,
    Expr,
    ExprError,
    ExprEvalError,
    ExprSyntaxError,
    compile_expr,
    to_text,
)
from wbsrun.errors import WbsrunError

SCOPE: dict[str, Any] = {
    "asset": {"status": 200, "body": "ok", "json": {"items": [{"id": 7}, {"id": 9}]}},
    "resource": {"ip": "127.0.0.2", "port": 8080},
    "workbook": {"state": "monitoring.timeout", "user_id": 3, "scope_trace": ["A", "B"]},
    "global": {"name": "demo", "version": "1.0"},
    "error": {"code": "http-5xx", "class": "transient", "message": "boom"},
    "headers": {"content-type": "application/json"},
    "items": [10, 20, 30],
    "pair": (1, 2),
    "word": "Hello",
    "key": "port",
    "idx": 1,
    "nothing": None,
}


def ev(text: str, scope: Mapping[str, Any] = SCOPE) -> Any:
    return compile_expr(text).evaluate(scope)


# --- the language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("'single'", "single"),
        ('"double"', "double"),
        ("true", True),
        ("false", False),
        ("null", None),
        ("True", True),
        ("False", False),
        ("None", None),
        ("[1, 'a', [true, null]]", [1, "a", [True, None]]),
        ("[]", []),
    ],
)
def test_literals_evaluate_to_their_values(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("asset.status", 200),
        ("resource.ip", "127.0.0.2"),
        ("asset.json.items", [{"id": 7}, {"id": 9}]),
        ("headers['content-type']", "application/json"),
        ('headers["content-type"]', "application/json"),
        ("items[0]", 10),
        ("items[-1]", 30),
        ("pair[1]", 2),
        ("word[0]", "H"),
        ("word[-1]", "o"),
        ("asset.json.items[1].id", 9),
        ("asset.json['items'][-2]['id']", 7),
        ("resource[key]", 8080),
        ("items[idx]", 20),
        ("items[idx + 1]", 30),
        ("[5, 6][1]", 6),
        ("workbook.scope_trace[0]", "A"),
    ],
)
def test_names_dotted_access_and_subscripts_read_the_scope(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_global_is_usable_as_a_root_name_despite_being_a_python_keyword() -> None:
    expr = compile_expr("global.name")
    assert expr.evaluate(SCOPE) == "demo"
    assert expr.names == frozenset({("global", "name")})
    assert expr.roots == frozenset({"global"})
    assert ev("global.name + '-' + global['version']") == "demo-1.0"
    assert ev("  global . name  ") == "demo"


def test_python_keywords_after_a_dot_are_field_names() -> None:
    assert ev("error.class") == "transient"
    assert compile_expr("error.class == 'transient'").names == frozenset({("error", "class")})


def test_a_keyword_after_a_dot_keeps_the_underscore_rule_for_other_names() -> None:
    with pytest.raises(ExprSyntaxError) as info:
        compile_expr("error.class.__x")
    assert info.value.column == 12


def test_attribute_access_is_mapping_key_access_only() -> None:
    with pytest.raises(ExprEvalError, match="not a mapping"):
        ev("word.upper")
    with pytest.raises(ExprEvalError, match="not a mapping"):
        ev("items.count")


def test_non_dict_mappings_work_as_scope_and_as_values() -> None:
    scope = MappingProxyType({"m": MappingProxyType({"k": {"deep": 1}})})
    assert ev("m.k.deep", scope) == 1
    assert ev("m['k']['deep']", scope) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("asset.status == 200", True),
        ("asset.status != 200", False),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 4", False),
        ("3 >= 3", True),
        ("1 < 2 <= 2 < 3", True),
        ("1 < 3 < 2", False),
        ("'ell' in word", True),
        ("20 in items", True),
        ("20 not in items", False),
        ("'port' in resource", True),
        ("'nope' not in resource", True),
        ("workbook.state == 'monitoring.timeout'", True),
        ("asset.status == '200'", False),
        ("'200' == 200", False),
    ],
)
def test_comparisons_follow_python_semantics(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_a_chained_comparison_evaluates_each_operand_once() -> None:
    calls: list[str] = []

    class Counting(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            calls.append(key)
            return {"a": 1, "b": 2, "c": 3}[key]

        def __iter__(self) -> Iterator[str]:
            return iter("abc")

        def __len__(self) -> int:
            return 3

    assert ev("a < b < c", Counting()) is True
    assert calls == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("false and undefined_name", False),
        ("true or undefined_name", True),
        ("0 or 'fallback'", "fallback"),
        ("1 and 0", 0),
        ("'a' and 'b' and 'c'", "c"),
        ("null or 0 or []", []),
        ("not 0", True),
        ("not asset.status", False),
        ("1 if true else undefined_name", 1),
        ("undefined_name if false else 2", 2),
        ("'big' if asset.status > 100 else 'small'", "big"),
    ],
)
def test_boolean_operators_and_conditionals_short_circuit(text: str, expected: Any) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 - 10", -3),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("-7 % 3", 2),
        ("-asset.status", -200),
        ("+asset.status", 200),
        ("- -3", 3),
        ("1.5 * 2", 3.0),
        ("'ab' + 'cd'", "abcd"),
        ("'ab' * 3", "ababab"),
        ("2 * [0]", [0, 0]),
        ("items + [40]", [10, 20, 30, 40]),
        ("workbook.user_id + 1", 4),
    ],
)
def test_arithmetic_follows_python_semantics(text: str, expected: Any) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("len(items)", 3),
        ("len(word)", 5),
        ("len(resource)", 2),
        ("int('42')", 42),
        ("int(3.9)", 3),
        ("float('1.5')", 1.5),
        ("float(2)", 2.0),
        ("str(42)", "42"),
        ("str(true)", "true"),
        ("str(null)", "null"),
        ("str([1, 'a'])", '[1,"a"]'),
        ("str(word)", "Hello"),
        ("lower(word)", "hello"),
        ("upper(word)", "HELLO"),
        ("len(str(asset.status)) == 3", True),
    ],
)
def test_whitelisted_functions_work(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_str_uses_the_template_text_conversion() -> None:
    for value in [{"a": [1, None, True]}, (1, "é"), 1.25, None, False]:
        assert ev("str(v)", {"v": value}) == to_text(value)


def test_the_function_whitelist_is_exactly_the_documented_one() -> None:
    assert set(FUNCTIONS) == {"len", "int", "float", "str", "lower", "upper"}
    # str() is to_text with a size bound (tests/dsl/test_expr_limits.py)
    assert FUNCTIONS["str"] is bounded_text


def test_an_expression_may_span_lines() -> None:
    assert ev("asset.status == 200\n  and resource.port\n  == 8080") is True


# --- the sandbox: refusals at compile time ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("__import__('os')", 0),
        ("().__class__", 3),
        ("x.__class__", 2),
        ("asset.body.__class__.__mro__", 11),
        ("x._private", 2),
        ("_private", 0),
        ("x['a']._y", 7),
        ("open('f')", 0),
        ("eval('1')", 0),
        ("getattr(x, 'y')", 0),
        ("lambda: 1", 0),
        ("[i for i in x]", 0),
        ("{i for i in x}", 0),
        ("(i for i in x)", 0),
        ("2**10", 1),
        ("2 ** 10", 2),
        ("a.b()", 2),
        ("x.y.upper()", 4),
        ("word.upper()", 5),
        ("(lambda: 1)()", 1),
        ("f'{x}'", 0),
        ("len(x=1)", 4),
        ("len(word, x=1)", 10),
        ("len(*items)", 4),
        ("len()", 0),
        ("len(1, 2)", 0),
        ("items[1:2]", 6),
        ("items[::2]", 6),
        ("x is None", 2),
        ("x is not None", 2),
        ("a | b", 2),
        ("a & b", 2),
        ("a ^ b", 2),
        ("a << 1", 2),
        ("a >> 1", 2),
        ("a @ b", 2),
        ("~a", 0),
        ("{}", 0),
        ("{'a': 1}", 0),
        ("{1}", 0),
        ("(1, 2)", 0),
        ("1, 2", 0),
        ("(x := 1)", 1),
        ("[*items]", 1),
        ("1j", 0),
        ("b'x'", 0),
        ("...", 0),
        ("(yield)", 1),
        ("await x", 0),
        ("1 + (lambda: 1)", 5),
        ("x # comment", 2),
        ("'\\d'", 0),
        ("   x.__y", 5),
        ("'é' + x.__a", 8),
        ("a b", 2),
        ("1 +", 3),
        ("(1", 0),
        ("'abc", 0),
        ("global.__x", 7),
    ],
)
def test_forbidden_constructs_are_refused_at_compile_time_with_their_column(
    text: str, column: int
) -> None:
    with pytest.raises(ExprSyntaxError) as info:
        compile_expr(text)
    error = info.value
    assert error.column == column, error
    assert error.text == text
    assert error.message
    assert error.message in str(error)


def test_a_bare_global_reads_the_scope_key() -> None:
    assert ev("global", {"global": 1}) == 1


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_an_empty_expression_is_a_syntax_error(text: str) -> None:
    with pytest.raises(ExprSyntaxError, match="empty"):
        compile_expr(text)


def test_syntax_errors_belong_to_the_wbsrun_error_tree() -> None:
    with pytest.raises(ExprError):
        compile_expr("1 +")
    assert issubclass(ExprSyntaxError, WbsrunError)
    assert issubclass(ExprEvalError, WbsrunError)


def test_refusal_messages_name_the_problem() -> None:
    cases = {
        "open('f')": "unknown function 'open'",
        "x.__class__": "'_'",
        "2 ** 3": "'**'",
        "a.b()": "method calls",
        "len(x=1)": "keyword arguments",
        "items[1:2]": "slices",
        "(1, 2)": "use a list",
        "1 +": "unexpected end",
    }
    for text, fragment in cases.items():
        with pytest.raises(ExprSyntaxError) as info:
            compile_expr(text)
        assert fragment in info.value.message, (text, info.value.message)


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("asset.status", {("asset", "status")}),
        ("asset.status == 200", {("asset", "status")}),
        ("a['key-x'].b", {("a", "key-x", "b")}),
        ("a[0].b", {("a",)}),
        ("a[-1].b", {("a",)}),
        ("a[x].b", {("a",), ("x",)}),
        ("len(x.y)", {("x", "y")}),
        ("x", {("x",)}),
        ("a.b == a.b.c", {("a", "b"), ("a", "b", "c")}),
        ("global.name", {("global", "name")}),
        ("[1, 'a', true, null]", set()),
        ("1 + 2", set()),
        ("len('abc')", set()),
        ("p if q else r.s", {("p",), ("q",), ("r", "s")}),
    ],
)
def test_names_are_the_longest_static_paths_read(text: str, names: set[tuple[str, ...]]) -> None:
    expr = compile_expr(text)
    assert expr.names == frozenset(names)
    assert expr.roots == frozenset(path[0] for path in names)
    assert expr.is_constant is (not names)


# --- evaluation errors ---------------------------------------------------------------------------


def test_an_undefined_name_is_an_eval_error_naming_it() -> None:
    with pytest.raises(ExprEvalError) as info:
        ev("nope + 1")
    assert info.value.message == "undefined name 'nope'"
    assert info.value.text == "nope + 1"
    assert "nope + 1" in str(info.value)


def test_a_missing_field_is_an_eval_error_naming_the_value_and_the_field() -> None:
    with pytest.raises(ExprEvalError) as info:
        ev("asset.statuz == 200")
    assert info.value.message == "'asset' has no field 'statuz'"
    with pytest.raises(ExprEvalError, match=r"'asset\.json' has no field 'nope'"):
        ev("asset.json.nope")
    with pytest.raises(ExprEvalError, match=r"'asset\.json\.items\[0\]' has no field 'name'"):
        ev("asset.json.items[0].name")
    with pytest.raises(ExprEvalError, match="'headers' has no field 'x-missing'"):
        ev("headers['x-missing']")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("items[5]", "out of range"),
        ("items['a']", "not a mapping"),
        ("items[word]", "integer"),
        ("asset.status[0]", "cannot be indexed"),
        ("nothing.x", "null"),
        ("1 + 'a'", "type error"),
        ("'a' < 1", "type error"),
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("int('abc')", "invalid value"),
        ("int(null)", "type error"),
        ("int(float('inf'))", "out of range"),
        ("len(5)", "type error"),
        ("lower(5)", "expects a string"),
        ("upper(null)", "expects a string"),
        ("-word", "type error"),
        ("1 in 5", "type error"),
        ("[1] in resource", "type error"),
        ("'%s' % word", "numbers only"),
    ],
)
def test_runtime_failures_are_wrapped_into_eval_errors(text: str, fragment: str) -> None:
    with pytest.raises(ExprEvalError) as info:
        ev(text)
    assert fragment in info.value.message
    assert text in str(info.value)


# --- resource limits -----------------------------------------------------------------------------


def test_an_overlong_expression_is_refused() -> None:
    text = "1 + " * (MAX_LENGTH // 4) + "1"
    with pytest.raises(ExprSyntaxError, match="too complex"):
        compile_expr(text)
    compile_expr("x" * MAX_LENGTH)


@pytest.mark.parametrize(
    "text",
    ["-" * 60 + "1", "[" * 60 + "]" * 60, "not " * 60 + "x", "1" + " + 1" * 60, "a" + ".b" * 60],
)
def test_a_deeply_nested_expression_is_refused_as_too_complex(text: str) -> None:
    with pytest.raises(ExprSyntaxError, match="too complex"):
        compile_expr(text)


def test_moderate_nesting_is_accepted() -> None:
    assert ev("-" * 20 + "1") == 1
    assert ev("1" + " + 1" * 30) == 31


@pytest.mark.parametrize(
    "text",
    ["'a' * 1048577", "1048577 * 'a'", "[0] * 100001", "word * 209716", "'ab' * 524289"],
)
def test_repetition_beyond_the_limit_is_an_eval_error(text: str) -> None:
    with pytest.raises(ExprEvalError):
        ev(text)


def test_repetition_up_to_the_limit_is_allowed() -> None:
    assert len(ev("'a' * 1048576")) == 1_048_576
    assert len(ev("[0] * 100000")) == 100_000


def test_string_formatting_with_percent_cannot_allocate_huge_strings() -> None:
    with pytest.raises(ExprEvalError):
        ev("'%999999999d' % 1")


@pytest.mark.parametrize(
    "text",
    [
        "1000000000 * 1000000000 * 10",
        "1000000000000000000 + 1",
        "-1000000000000000000 - 1",
        "-(-1000000000000000000 - 1)",
        "99999999999999999999 // 1",
    ],
)
def test_integers_beyond_ten_to_the_eighteenth_from_arithmetic_are_eval_errors(text: str) -> None:
    with pytest.raises(ExprEvalError, match="out of range"):
        ev(text)


def test_integers_up_to_ten_to_the_eighteenth_are_fine() -> None:
    assert ev("1000000000 * 1000000000") == 10**18
    assert ev("-1000000000 * 1000000000") == -(10**18)


# --- caching -------------------------------------------------------------------------------------


def test_compiling_the_same_text_returns_the_same_object() -> None:
    assert compile_expr("asset.status == 200") is compile_expr("asset.status == 200")
    assert compile_expr("a") is not compile_expr("b")


def test_a_compiled_expression_is_reusable_across_scopes() -> None:
    expr = compile_expr("x * 2")
    assert [expr.evaluate({"x": n}) for n in range(3)] == [0, 2, 4]


def test_a_list_literal_is_a_fresh_list_on_every_evaluation() -> None:
    expr = compile_expr("[1, 2]")
    first = expr.evaluate({})
    first.append(3)
    assert expr.evaluate({}) == [1, 2]


# --- properties ----------------------------------------------------------------------------------

_TOKENS = [
    "a", "b", "c", "d", "word", "items", "global", "error", "class", "_x", "__class__",
    "0", "1", "-1", "2", "1.5", "10**18", "100000", "'x'", '"y"', "'", '"', "true", "null",
    "+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", ">=", "in", "not", "and", "or",
    "is", "if", "else", "lambda", "for", "(", ")", "[", "]", "{", "}", ".", ",", ":", "#",
    "\\", "f'", "len(", "int(", "str(", "lower(", "float(", "=", ":=", "\n", "é", "\x00",
]  # fmt: skip

_PROPERTY_SCOPE: dict[str, Any] = {
    "a": 1,
    "b": "text",
    "c": [1, 2, 3],
    "d": {"k": "v", "n": None, "class": 2},
    "word": "x" * 50_000,
    "items": [None] * 1000,
    "global": {"name": "g"},
    "error": {"class": "transient"},
}

_ATOMS = [
    "a", "b", "c", "d", "d.k", "d.n", "d['class']", "d.missing", "c[0]", "c[-1]", "c[5]",
    "word", "items", "global.name", "error.class", "nope", "0", "1", "-1", "2.5", "'x'", "''",
    "true", "null", "[]", "[1, 'a']", "100000", "1000000000000000000",
]  # fmt: skip
_OPERATORS = [
    "+", "-", "*", "/", "//", "%", "==", "!=", "<", ">=", "in", "not in", "and", "or", "**", "is",
]  # fmt: skip


def _combine(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(parts, st.sampled_from(_OPERATORS), parts).map(lambda t: f"({' '.join(t)})"),
        st.tuples(st.sampled_from(["not ", "-", "+"]), parts).map("".join),
        st.tuples(st.sampled_from([*FUNCTIONS, "open", ""]), parts).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
        st.tuples(parts, parts).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(parts, st.sampled_from(["k", "class", "_x"])).map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(parts, parts, parts).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.lists(parts, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
    )


# Mostly well-formed expressions (so that evaluation is exercised), plus raw noise.
_expression_text = st.one_of(
    st.recursive(st.sampled_from(_ATOMS), _combine, max_leaves=8),
    st.text(max_size=40),
    st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join),
    st.lists(st.sampled_from(_TOKENS), max_size=14).map(" ".join),
)


@settings(max_examples=examples(400), deadline=None)
@given(_expression_text)
def test_random_text_only_ever_raises_the_sandbox_errors(text: str) -> None:
    expr: Expr | None = None
    column = 0
    try:
        expr = compile_expr(text)
    except ExprSyntaxError as exc:
        column = exc.column
    assert 0 <= column <= len(text)
    if expr is not None:
        with contextlib.suppress(ExprEvalError):
            expr.evaluate(_PROPERTY_SCOPE)


_Value = int | float | None  # None: the expression must fail to evaluate
_BINARY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}


def _reference(op: str, left: _Value, right: _Value) -> _Value:
    if left is None or right is None:
        return None
    try:
        result: int | float = _BINARY_OPS[op](left, right)
    except ZeroDivisionError:
        return None
    if type(result) is int and abs(result) > 10**18:
        return None
    return result


_leaf = st.integers(min_value=-60, max_value=60).map(lambda n: (str(n) if n >= 0 else f"({n})", n))


def _extend(children: st.SearchStrategy[tuple[str, _Value]]) -> st.SearchStrategy[Any]:
    binary = st.tuples(children, st.sampled_from(sorted(_BINARY_OPS)), children).map(
        lambda t: (f"({t[0][0]} {t[1]} {t[2][0]})", _reference(t[1], t[0][1], t[2][1]))
    )
    negated = children.map(lambda c: (f"-({c[0]})", None if c[1] is None else -c[1]))
    return binary | negated


_arithmetic = st.recursive(_leaf, _extend, max_leaves=10)


@settings(max_examples=examples(300), deadline=None)
@given(_arithmetic)
def test_integer_arithmetic_agrees_with_python(case: tuple[str, _Value]) -> None:
    text, expected = case
    expr = compile_expr(text)
    assert expr.is_constant
    if expected is None:
        with pytest.raises(ExprEvalError):
            expr.evaluate({})
    else:
        result = expr.evaluate({})
        assert result == expected
        assert type(result) is type(expected)
