"""The parts of captures and checks that need no server: the JSON path subset against a
direct walk of the document (hypothesis), the regex safety rule, Set-Cookie reading and the
threshold names of checks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wbsrun.dsl.checks import (
    WILDCARD,
    JsonPathError,
    cookie_value,
    json_at,
    parse_json_path,
    regex_problem,
)
from wbsrun.dsl.thresholds import PlanNames, RuleError, parse_metric

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "c-d", "_e"]), inner, max_size=4)
    ),
    max_leaves=20,
)


def _walk(doc: Any, steps: list[str | int]) -> tuple[bool, Any]:
    for step in steps:
        if isinstance(step, str):
            if not isinstance(doc, dict) or step not in doc:
                return False, None
            doc = doc[step]
        else:
            if not isinstance(doc, list) or not -len(doc) <= step < len(doc):
                return False, None
            doc = doc[step]
    return True, doc


def _text(steps: list[str | int]) -> str:
    return "$" + "".join(f".{s}" if isinstance(s, str) else f"[{s}]" for s in steps)


@given(json_values, st.lists(st.sampled_from(["a", "b", "c-d", "_e", 0, 1, -1, 3]), max_size=4))
def test_a_json_path_of_keys_and_indexes_finds_what_a_direct_walk_finds(
    doc: Any, steps: list[str | int]
) -> None:
    assert json_at(doc, parse_json_path(_text(steps))) == _walk(doc, steps)


def test_a_wildcard_takes_the_first_element_the_rest_of_the_path_finds_a_value_in() -> None:
    doc = {"items": [{"id": 1}, {"id": 2, "tag": None}, {"tag": "x"}]}
    assert parse_json_path("$.items[*].tag") == ("items", WILDCARD, "tag")
    assert json_at(doc, parse_json_path("$.items[*].tag")) == (True, None)
    assert json_at(doc, parse_json_path("$['items'][*][\"id\"]")) == (True, 1)
    assert json_at(doc, parse_json_path("$.items[*].nope")) == (False, None)
    assert json_at({"m": {"x": {"k": 5}}}, parse_json_path("$.m[*].k")) == (True, 5)


@pytest.mark.parametrize("text", ["token", "$..x", "$.a[", "$.a[x]", "$.", "$[1:2]", "$.a b"])
def test_paths_outside_the_subset_are_refused_with_where(text: str) -> None:
    with pytest.raises(JsonPathError):
        parse_json_path(text)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(a+)+$", "nested"),
        ("(a*)*", "nested"),
        ("(?:x|y+){2,}", "nested"),
        ("(a|b+)*c", "nested"),
        ("(?=(a+))+", "nested"),
        ("(a)\\1", "backreference"),
        ("(?P<q>a)(?P=q)", "backreference"),
        (".*x.*y", "2 unbounded"),
        ("\\d+-\\d+", "2 unbounded"),
        ("(", "not a regular expression"),
    ],
)
def test_patterns_that_can_backtrack_catastrophically_are_refused(
    pattern: str, problem: str
) -> None:
    found = regex_problem(pattern)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    "pattern",
    ['name="csrf" value="([^"]+)"', "tok-[0-9]", "(\\d{1,20})-(\\d+)", "^a?b{2,5}(c|d)$", "x"],
)
def test_patterns_with_at_most_one_unbounded_quantifier_and_no_nesting_pass(pattern: str) -> None:
    assert regex_problem(pattern) is None


def test_a_cookie_is_read_from_its_own_set_cookie_line_the_last_one_winning() -> None:
    lines = ["theme=dark; Path=/", 'sid="abc"; HttpOnly', "sid=new; Secure", "x"]
    assert cookie_value(lines, "sid") == "new"
    assert cookie_value(lines[:2], "sid") == "abc"
    assert cookie_value(lines, "theme") == "dark"
    assert cookie_value(lines, "none") is None


def test_check_metrics_name_the_plans_checks_and_refuse_others() -> None:
    names = PlanNames(checks=frozenset({"status", "has-token"}))
    assert parse_metric("checks.rate", names).text == "checks.rate"
    assert parse_metric("checks.has-token.rate", names).text == "checks.has-token.rate"
    with pytest.raises(RuleError) as unknown:
        parse_metric("checks.has-tokn.rate", names)
    assert unknown.value.code == "unknown-check"
    assert unknown.value.hint == "did you mean 'has-token'?"
    with pytest.raises(RuleError) as none:
        parse_metric("checks.rate", PlanNames())
    assert none.value.code == "unknown-check"
    with pytest.raises(RuleError):
        parse_metric("checks.status.passes", names)
