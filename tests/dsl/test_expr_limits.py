"""Every value an expression or a template builds is bounded: past a limit, evaluation fails
fast (< 1 s), having allocated little (a few MB), with `expression-limit`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

import wbsrun
from property_kit import examples
from wbsrun.core.codes import code_for_expression
from wbsrun.dsl.bounds import MAX_INT, MAX_ITEMS, MAX_TEXT, measure
from wbsrun.dsl.expr import ExprEvalError, ExprLimitError, ExprSyntaxError, compile_expr
from wbsrun.dsl.template import compile_template

FREEZE = "len(str([['y']*99999]*99999)) > 0"  # issue 18: passed validation, froze the run
MB = 1024 * 1024

SCOPE: dict[str, Any] = {
    "w": "x" * 600_000,
    "ws": "x" * 400_000,
    "big": "x" * (MAX_TEXT + 1),
    "digits": "7" * 5_000,
    "many": list(range(60_000)),
    "rows": [{"name": "n" * 200, "v": i} for i in range(6_000)],
}


def cost(run: Callable[[], Any]) -> tuple[BaseException | None, float, int]:
    """(what `run` raised, its CPU seconds, the peak of its traced allocations in bytes).

    Timed on a first call, traced on a second: tracing slows allocation several times over.
    CPU time of this thread, so that other processes on a busy machine do not count.
    """
    outcomes: list[BaseException | None] = []
    seconds = 0.0
    for traced in (False, True):
        if traced:
            tracemalloc.start()
        started = time.thread_time()
        try:
            run()
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(exc)
        if not traced:
            seconds = time.thread_time() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert type(outcomes[0]) is type(outcomes[1])
    return outcomes[0], seconds, peak


def assert_refused_fast(run: Callable[[], Any]) -> ExprLimitError:
    raised, seconds, peak = cost(run)
    assert isinstance(raised, ExprLimitError), raised
    assert code_for_expression(raised) == "expression-limit"
    assert seconds < 1.0
    assert peak < 8 * MB
    return raised


@pytest.mark.parametrize(
    "text",
    [
        # nested repetition: the outer list is 1,000 references, unfolded 1,000,000 items
        "[['y'] * 1000] * 1000",
        "[[[0] * 100] * 100] * 100",
        "len(str([['y'] * 1000] * 1000)) > 0",
        # str() of a list within the item limit whose text is over 1 MiB
        "str([['yyyyyyyyyy'] * 300] * 300)",
        # str() of a large value from the scope
        "str(rows)",
        # string repetition and concatenation
        "'x' * 2000000",
        "2000000 * 'x'",
        "w + w",
        "ws + ws + ws",
        # lists: concatenation and literals, counted unfolded
        "many + many",
        "[ws, ws, ws]",
        "[many, many]",
        "[[many]] * 2",
        # functions that build
        "upper(big)",
        "lower(big)",
        "int(digits)",
        # integers from arithmetic
        "1000000000 * 1000000000 * 10",
        "1000000000000000000 + 1",
        "-1000000000000000000 - 1",
    ],
)
def test_each_way_of_building_a_big_value_fails_fast_with_expression_limit(text: str) -> None:
    expr = compile_expr(text)
    refused = assert_refused_fast(lambda: expr.evaluate(SCOPE))
    assert refused.text == text
    assert f"in expression {text!r}" in str(refused)


@pytest.mark.parametrize(
    "source",
    ["{{ ws }}{{ ws }}{{ ws }}", "{{ w }}-{{ w }}", "a{{ big }}b", "{{ w }}{{ w }}", "{{ rows }}!"],
)
def test_template_interpolation_is_bounded_too(source: str) -> None:
    template = compile_template(source)
    refused = assert_refused_fast(lambda: template.render(SCOPE))
    assert refused.text == source
    with pytest.raises(ExprLimitError):
        template.render_text(SCOPE)


def test_values_within_the_limits_are_built() -> None:
    assert len(compile_expr("'x' * 1048576").evaluate({})) == MAX_TEXT
    assert len(compile_expr("[[0] * 999] * 100").evaluate({})) == 100
    assert len(compile_expr("ws + ws").evaluate(SCOPE)) == 800_000
    assert len(compile_expr("str([['y'] * 300] * 300)").evaluate({})) == 2 + 299 + 300 * (
        2 + 299 + 300 * 3
    )
    assert compile_template("{{ ws }}{{ ws }}").render(SCOPE) == "x" * 800_000
    assert compile_expr("upper('ß' * 10)").evaluate({}) == "SS" * 10
    assert compile_expr("int('123')").evaluate({}) == 123
    assert compile_expr("len(many + [1])").evaluate(SCOPE) == 60_001
    assert compile_expr("1000000000 * 1000000000").evaluate({}) == MAX_INT


def test_a_limit_is_its_own_kind_of_eval_error() -> None:
    with pytest.raises(ExprEvalError) as limit:
        compile_expr("'x' * 2000000").evaluate({})
    with pytest.raises(ExprEvalError) as other:
        compile_expr("'x' * 'y'").evaluate({})
    assert code_for_expression(limit.value) == "expression-limit"
    assert code_for_expression(other.value) == "expression-error"
    assert "2,000,000 characters (max 1,048,576)" in limit.value.message


def test_the_reported_expression_fails_fast_in_a_memory_capped_process() -> None:
    """The issue's expression, in a child whose address space is capped at +512 MiB: before
    the fix it was accepted and `str()` ran into the cap (MemoryError, `expression-error`)."""
    child = f"""
import json, resource, sys, time, tracemalloc
vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:"))
cap = vm * 1024 + 512 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from wbsrun.core.codes import EXPRESSION_ERROR
from wbsrun.dsl.expr import ExprEvalError, compile_expr
expr = compile_expr({FREEZE!r})
tracemalloc.start()
started = time.process_time()
try:
    expr.evaluate({{}})
    code = None
except ExprEvalError as exc:
    code = "expression-limit" if type(exc).__name__ == "ExprLimitError" else EXPRESSION_ERROR
seconds = time.process_time() - started
print(json.dumps({{"code": code, "seconds": seconds, "peak": tracemalloc.get_traced_memory()[1]}}))
"""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to size the address-space cap")
    path = str(Path(wbsrun.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", child], capture_output=True, text=True, timeout=30, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the expression ran for 30 s")
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["code"] == "expression-limit"
    assert found["seconds"] < 1.0
    assert found["peak"] < 8 * MB


@pytest.mark.parametrize("text", ["9**9**9", "9 ** 999999999", "pow(9, 999999999)"])
def test_huge_powers_are_refused_when_compiled(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ExprSyntaxError):
        compile_expr(text)
    assert time.perf_counter() - started < 1.0


# --- property: generated expressions never pass their limits ------------------------------------

_FUZZ_SCOPE: dict[str, Any] = {
    "s": "abc",
    "w": "w" * 1000,
    "long": "l" * 300_000,
    "nums": list(range(100)),
    "rows": [{"k": "v" * 10, "n": i} for i in range(1000)],
    "n": 99_999,
}
_ATOMS = [
    "'y'", "''", "'ab'", "0", "1", "2", "3", "10", "100", "1000", "99999", "100000", "100001",
    "1048577", "1000000000", "true", "null", "[]", "[1]", "['y']", "s", "w", "long", "nums",
    "rows", "n", "rows[0]",
]  # fmt: skip
_FUNCTIONS = ["str", "len", "upper", "lower", "int"]


def _compose(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(parts, st.sampled_from(["*", "*", "+", "+", "-", "//", "%"]), parts).map(
            lambda t: f"({' '.join(t)})"
        ),
        st.tuples(st.sampled_from(_FUNCTIONS), parts).map(lambda t: f"{t[0]}({t[1]})"),
        st.lists(parts, min_size=1, max_size=4).map(lambda items: f"[{', '.join(items)}]"),
        st.tuples(parts, st.sampled_from(["==", "in", "<"]), parts).map(
            lambda t: f"({' '.join(t)})"
        ),
    )


_untyped = st.recursive(st.sampled_from(_ATOMS), _compose, max_leaves=12)


# Well-typed expressions, so that most evaluations build something rather than fail early:
# (kind, text) pairs, kind "s" string, "l" list, "i" integer.
_Typed = tuple[str, str]
_COUNTS = ["2", "3", "1000", "99999", "100001", "n", "len(w)", "10", "1", "0"]
_TYPED_ATOMS: list[_Typed] = [
    *[("l", t) for t in ["[(['y'] * 99999)]", "[long, long]", "(['y'] * 99999)", "([nums] * 900)"]],
    *[("s", t) for t in ["long", "('y' * 600000)", "w", "s", "'y'", "''", "rows[0].k"]],
    *[("l", t) for t in ["rows", "nums", "[[long]]", "['y']", "[]"]],
    *[("i", t) for t in ["n", "7", "1", "0"]],
]


def _plus(pair: tuple[_Typed, _Typed]) -> _Typed:
    (kind, left), (other, right) = pair
    if kind != other:  # make the right operand the left one's kind
        right = {"s": f"str({right})", "l": f"[{right}]", "i": f"len(str({right}))"}[kind]
    return kind, f"({left} + {right})"


def _times(case: tuple[_Typed, str, bool]) -> _Typed:
    (kind, text), count, count_first = case
    return kind, f"({count} * {text})" if count_first else f"({text} * {count})"


def _apply(kid: _Typed) -> _Typed:
    kind, text = kid
    if kind == "s":
        return "s", f"upper({text})"
    return ("i", f"len({text})") if kind == "l" else ("i", f"({text} + 1)")


def _extend(kids: st.SearchStrategy[_Typed]) -> st.SearchStrategy[_Typed]:
    times = st.tuples(kids, st.sampled_from(_COUNTS), st.booleans()).map(_times)
    plus = st.tuples(kids, kids).map(_plus)
    literal = st.lists(kids, min_size=1, max_size=3).map(
        lambda items: ("l", f"[{', '.join(text for _, text in items)}]")
    )
    return st.one_of(
        times,
        literal,
        plus,
        times,
        literal,
        kids.map(lambda k: ("s", f"str({k[1]})")),
        kids.map(_apply),
    )


_typed = st.recursive(st.sampled_from(_TYPED_ATOMS), _extend, max_leaves=10).map(lambda k: k[1])
_built = st.one_of(_typed, _typed, _untyped)


def _within_limits(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    if type(value) is int:
        return value.bit_length() <= 14_300  # int() of up to 4,300 digits; arithmetic 10**18
    items, chars = measure(value, MAX_ITEMS, MAX_TEXT)
    return items <= MAX_ITEMS and chars <= MAX_TEXT


def _evaluate_bounded(text: str, scope: Mapping[str, Any]) -> None:
    expr = compile_expr(text)
    result: list[Any] = []
    raised, seconds, peak = cost(lambda: result.append(expr.evaluate(scope)))
    del result[1:]
    assert raised is None or isinstance(raised, ExprEvalError), raised
    event("ok" if raised is None else type(raised).__name__)
    event(f"peak {'<1' if peak < MB else '1-4' if peak < 4 * MB else '>4'} MB")
    event(f"{'<10' if seconds < 0.01 else '10-100' if seconds < 0.1 else '>100'} ms")
    assert seconds < 0.5, f"{seconds:.2f} s"
    assert peak < 16 * MB, f"{peak / MB:.1f} MB"
    if raised is None:
        assert _within_limits(result[0])


@settings(max_examples=examples(150), deadline=None)
@given(_built)
@example("[[long] * 3] * 2")
@example("str([rows] * 99) + str(rows)")
@example("[[['y'] * 99999] * 99999]")
@example("upper(str([long, long, long]))")
def test_generated_expressions_stay_within_their_limits(text: str) -> None:
    _evaluate_bounded(text, _FUZZ_SCOPE)
