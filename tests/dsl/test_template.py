"""Tests of `{{ }}` templates, text conversion, and compiled nested values."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.dsl.expr import ExprEvalError, compile_expr
from wbsrun.dsl.template import (
    CompiledValue,
    TemplateSyntaxError,
    compile_template,
    compile_value,
    iter_templates,
    to_text,
)

SCOPE: dict[str, Any] = {
    "resource": {"ip": "127.0.0.2", "port": 8080},
    "asset": {"status": 200, "body": '{"id":1}', "json": {"id": 1}},
    "workbook": {"scope_trace": ["ProgramA", "HTTP"], "user_id": 7, "state": "executing"},
    "flag": True,
    "nothing": None,
    "ratio": 0.5,
}


# --- single expression vs interpolation --------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{workbook.scope_trace}}", ["ProgramA", "HTTP"]),
        ("{{ workbook.scope_trace }}", ["ProgramA", "HTTP"]),
        ("{{resource.port}}", 8080),
        ("{{ asset.status == 200 }}", True),
        ("{{ asset.json }}", {"id": 1}),
        ("{{ nothing }}", None),
        ("{{ 1 + 1 }}", 2),
        ("{{ '{{' }}", "{{"),
        ("{{ x['}}'] }}", "closing"),
    ],
)
def test_a_string_that_is_one_expression_keeps_the_value_type(source: str, expected: Any) -> None:
    template = compile_template(source)
    assert template.is_single
    assert not template.is_constant
    assert template.render({**SCOPE, "x": {"}}": "closing"}}) == expected


def test_a_single_expression_returns_the_scope_object_itself() -> None:
    trace = SCOPE["workbook"]["scope_trace"]
    assert compile_template("{{ workbook.scope_trace }}").render(SCOPE) is trace


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("http://{{resource.ip}}:{{resource.port}}/asset", "http://127.0.0.2:8080/asset"),
        ("{{workbook.scope_trace}} audit", '["ProgramA","HTTP"] audit'),
        ("{{workbook.user_id}}-asset.json", "7-asset.json"),
        (" {{ resource.port }}", " 8080"),
        ("{{ resource.port }} ", "8080 "),
        ("{{ flag }}/{{ nothing }}/{{ ratio }}", "true/null/0.5"),
        ("{{ asset.json }}!", '{"id":1}!'),
        ("{{1}}{{2}}", "12"),
        ("a{{ 'b' }}c{{ 'd' }}e", "abcde"),
    ],
)
def test_any_other_string_interpolates_values_as_text(source: str, expected: str) -> None:
    template = compile_template(source)
    assert not template.is_single
    assert template.render(SCOPE) == expected


@pytest.mark.parametrize("source", ["plain text", "", "a }} b", "}}", "{ single }", "{x}}"])
def test_a_string_without_expressions_is_constant_and_renders_as_written(source: str) -> None:
    template = compile_template(source)
    assert template.is_constant
    assert not template.is_single
    assert template.expressions == ()
    assert template.names == frozenset()
    assert template.render({}) is source
    assert template.render_text({}) is source


def test_render_text_always_returns_text() -> None:
    assert (
        compile_template("{{ workbook.scope_trace }}").render_text(SCOPE) == '["ProgramA","HTTP"]'
    )
    assert compile_template("{{ resource.port }}").render_text(SCOPE) == "8080"
    assert compile_template("{{ flag }}").render_text(SCOPE) == "true"
    assert compile_template("port {{ resource.port }}").render_text(SCOPE) == "port 8080"


def test_expressions_and_names_are_collected_from_every_marker() -> None:
    template = compile_template("{{ resource.ip }}:{{ resource.port }} {{ a[0].b }} {{ 3 }}")
    assert [e.text for e in template.expressions] == [
        " resource.ip ",
        " resource.port ",
        " a[0].b ",
        " 3 ",
    ]
    assert template.expressions[0] is compile_expr(" resource.ip ")
    assert template.names == frozenset({("resource", "ip"), ("resource", "port"), ("a",)})


def test_compiling_the_same_text_returns_the_same_template() -> None:
    assert compile_template("x {{ y }}") is compile_template("x {{ y }}")


def test_an_eval_error_inside_a_template_propagates_as_expr_eval_error() -> None:
    with pytest.raises(ExprEvalError, match="'resource' has no field 'host'"):
        compile_template("http://{{ resource.host }}/").render(SCOPE)
    with pytest.raises(ExprEvalError, match="undefined name 'missing'"):
        compile_template("{{ missing }}").render(SCOPE)


# --- syntax errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "column", "fragment"),
    [
        ("{{ x", 0, "unclosed"),
        ("abc {{ x }} def {{ y", 16, "unclosed"),
        ("{{}}", 0, "empty"),
        ("a {{   }} b", 2, "empty"),
        ("ab {{ x.__y }}", 8, "'_'"),
        ("{{ 1 }} and {{ 2 ** 3 }}", 17, "'**'"),
        ("{{ open('f') }}", 3, "unknown function"),
        ("http://{{ resource.ip + }}/", 23, "unexpected end"),
        ("{{ it's }}", 5, "unterminated string"),
        ("é {{ x.__a }}", 7, "'_'"),
    ],
)
def test_syntax_errors_point_into_the_whole_string(source: str, column: int, fragment: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        compile_template(source)
    error = info.value
    assert error.column == column, error
    assert error.text == source
    assert error.path == ()
    assert fragment in error.message


# --- to_text -------------------------------------------------------------------------------------


class _Custom:
    def __str__(self) -> str:
        return "custom!"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (0, "0"),
        (-12, "-12"),
        (1.5, "1.5"),
        (1e16, "1e+16"),
        ([1, "é", None, True], '[1,"é",null,true]'),
        ((1, 2), "[1,2]"),
        ({"a": {"b": [1.5]}}, '{"a":{"b":[1.5]}}'),
        ({"when": datetime.date(2024, 12, 31)}, '{"when":"2024-12-31"}'),
        (datetime.date(2024, 12, 31), "2024-12-31"),
        (_Custom(), "custom!"),
        ([_Custom()], '["custom!"]'),
    ],
)
def test_to_text_converts_values_by_the_documented_rules(value: Any, expected: str) -> None:
    assert to_text(value) == expected


def test_to_text_never_raises_on_structures_json_cannot_encode() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert to_text(loop) == "[[...]]"
    assert to_text({(1, 2): "tuple key"}) == "{(1, 2): 'tuple key'}"


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(_json_values, max_size=4) | st.dictionaries(st.text(), _json_values, max_size=4))
def test_to_text_of_json_data_round_trips_through_json_loads(
    value: list[Any] | dict[str, Any],
) -> None:
    assert json.loads(to_text(value)) == value


@settings(max_examples=examples(200), deadline=None)
@given(st.text().filter(lambda s: "{{" not in s))
def test_text_without_markers_renders_unchanged(text: str) -> None:
    assert compile_template(text).render({}) == text


# --- interpolation of equal values of different types -----------------------------------------

_scalars = (
    st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.floats(min_value=-3, max_value=3, allow_nan=False)
    | st.sampled_from(["1", "1.0", "true", "a", ""])
    | st.none()
)


def _fresh_text(source: str, scope: dict[str, Any]) -> str:
    """What the template renders to, computed expression by expression."""
    out = ""
    rest = source
    while "{{" in rest:
        head, _, tail = rest.partition("{{")
        inner, _, rest = tail.partition("}}")
        out += head + to_text(compile_expr(inner).evaluate(scope))
    return out + rest


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(_scalars, _scalars), min_size=1, max_size=12))
def test_interpolation_renders_equal_values_of_different_types_apart(
    values: list[tuple[Any, Any]],
) -> None:
    # Each value renders as its own type's text, whatever came before: any text kept per value
    # (tried once, docs/benchmarks.md) must key by type, since True == 1 == 1.0 hash alike.
    one = compile_template(f"v-{{{{a}}}}-{len(values)}")
    two = compile_template(f"{{{{a}}}}:{{{{b}}}}/{len(values)}")
    for a, b in values:
        scope = {"a": a, "b": b}
        assert one.render(scope) == _fresh_text(one.source, scope)
        assert two.render(scope) == _fresh_text(two.source, scope)


# --- compiled values -----------------------------------------------------------------------------


def _sample() -> dict[str, Any]:
    return {
        "url": "http://{{resource.ip}}:{{resource.port}}/asset",
        "headers": {"content-type": "application/json", "x-trace": "{{workbook.scope_trace}}"},
        "body": "{{ asset.json }}",
        "retries": 3,
        "fixed": {"a": [1, 2, {"b": "c"}]},
        "items": ["{{ resource.port }}", "static", 5, None],
        "{{ not.a.template }}": "key kept",
    }


def test_compile_value_renders_a_new_structure_with_every_template_applied() -> None:
    compiled = compile_value(_sample())
    assert isinstance(compiled, CompiledValue)
    assert not compiled.is_constant
    assert compiled.render(SCOPE) == {
        "url": "http://127.0.0.2:8080/asset",
        "headers": {"content-type": "application/json", "x-trace": ["ProgramA", "HTTP"]},
        "body": {"id": 1},
        "retries": 3,
        "fixed": {"a": [1, 2, {"b": "c"}]},
        "items": [8080, "static", 5, None],
        "{{ not.a.template }}": "key kept",
    }


def test_compile_value_collects_names_from_every_string() -> None:
    compiled = compile_value(_sample())
    assert compiled.names == frozenset(
        {
            ("resource", "ip"),
            ("resource", "port"),
            ("workbook", "scope_trace"),
            ("asset", "json"),
        }
    )


def test_constant_subtrees_are_shared_and_templated_ones_are_new() -> None:
    value = _sample()
    compiled = compile_value(value)
    first, second = compiled.render(SCOPE), compiled.render(SCOPE)
    assert first is not value
    assert first is not second
    assert first["headers"] is not value["headers"]
    assert first["items"] is not second["items"]
    assert first["fixed"] is value["fixed"]
    assert second["fixed"] is value["fixed"]


def test_a_fully_constant_value_renders_to_itself() -> None:
    value = {"a": [1, "two", {"three": 3.0}], "b": None}
    compiled = compile_value(value)
    assert compiled.is_constant
    assert compiled.names == frozenset()
    assert compiled.render(SCOPE) is value


@pytest.mark.parametrize("value", ["{{ resource.port }}", "plain", 42, None])
def test_compile_value_accepts_a_bare_scalar(value: Any) -> None:
    expected = 8080 if value == "{{ resource.port }}" else value
    assert compile_value(value).render(SCOPE) == expected


def test_a_syntax_error_in_compile_value_carries_the_key_path() -> None:
    value = {"a": [1, {"b": "x {{ 1 + }}"}], "c": "{{ ok }}"}
    with pytest.raises(TemplateSyntaxError) as info:
        compile_value(value)
    error = info.value
    assert error.path == ("a", 1, "b")
    assert error.text == "x {{ 1 + }}"
    assert error.column == 8
    assert "a[1].b" in str(error)


def test_a_syntax_error_at_the_top_of_compile_value_has_an_empty_path() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        compile_value("{{ __import__('os') }}")
    assert info.value.path == ()
    assert info.value.column == 3


def test_iter_templates_yields_every_string_leaf_with_its_path() -> None:
    assert list(iter_templates(_sample())) == [
        (("url",), "http://{{resource.ip}}:{{resource.port}}/asset"),
        (("headers", "content-type"), "application/json"),
        (("headers", "x-trace"), "{{workbook.scope_trace}}"),
        (("body",), "{{ asset.json }}"),
        (("fixed", "a", 2, "b"), "c"),
        (("items", 0), "{{ resource.port }}"),
        (("items", 1), "static"),
        (("{{ not.a.template }}",), "key kept"),
    ]
    assert list(iter_templates("solo")) == [((), "solo")]
    assert list(iter_templates(3)) == []


def test_to_text_renders_frozen_plan_values_as_json() -> None:
    from types import MappingProxyType

    frozen = MappingProxyType({"tags": ("a", "b"), "inner": MappingProxyType({"n": 1})})
    assert to_text(frozen) == '{"tags":["a","b"],"inner":{"n":1}}'
    assert to_text(("x", "y")) == '["x","y"]'
    assert to_text((1, True)) == "[1,true]"
    assert to_text((True,)) == "[true]"  # not the memoised text of the equal tuple (1,)
