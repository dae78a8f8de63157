"""Compile-time type checks (dsl/typecheck.py): an expression that fails whenever it runs
is found, with the column of the failing part; nothing that may succeed is refused; `wbsrun
compile` refuses such a bundle with file:line:col, exit 2, and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings

from binary_kit import scenario_bundles, write_generated
from property_kit import examples
from scenario_kit import act, document, edge, end, graph, http, log
from wbsrun.dsl.expr import ExprEvalError, compile_expr
from wbsrun.dsl.source import load_source
from wbsrun.dsl.typecheck import check_expressions, expression_problem

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = [
    *(ROOT.parent / "shared" / "reference").glob("http_scenario.yaml"),
    ROOT / "src" / "wbsrun" / "examples" / "http_tri_phase" / "script.yaml",
    ROOT / "tests" / "dsl" / "data" / "minimal.yaml",
]

FAILING = [
    ("1 / 0", 0, "division by zero"),
    ("len(x) + 'a'", 0, "unsupported operand type(s) for +: 'int' and 'str'"),
    ("(-'x') or x", 1, "bad operand type for unary -"),
    ("'a' < 3", 0, "'<' not supported between instances of 'str' and 'int'"),
    ("len(5)", 0, "has no len()"),
    ("int('abc')", 0, "invalid literal for int()"),
    ("str(x) + 1", 0, "can only concatenate str"),
    ("lower(len(x))", 0, "lower() expects a string"),
    ("len(x).size", 0, "'len(x)' is an integer, not a mapping: cannot read field 'size'"),
    ("[1, 2][5]", 0, "index 5 is out of range"),
    ("x + (2 in 3)", 5, "argument of type 'int' is not iterable"),
]
ACCEPTED = [
    "x + 1",
    "int(x)",
    "'%d items' % x",
    "a.b > 3",
    "not x < 'a'",
    "x.y + 'a'",
    "len(x) * 'ab'",
    "global.name + 1",
    "x if y else 1 / 0",
    "y or int('abc')",
    "float('1.5') * 2",
    "true and null == null",
    "error.class == 'transient'",
]


@pytest.mark.parametrize(("text", "column", "message"), FAILING)
def test_an_expression_that_always_fails_is_found_where_it_fails(
    text: str, column: int, message: str
) -> None:
    problem = expression_problem(text)
    assert problem is not None
    assert message in problem[0]
    assert problem[1] == column


@pytest.mark.parametrize("text", ACCEPTED)
def test_an_expression_that_may_succeed_is_accepted(text: str) -> None:
    compile_expr(text)
    assert expression_problem(text) is None


def test_a_reported_constant_really_fails_at_run_time() -> None:
    for text, _, message in FAILING:
        if "x" not in text:
            with pytest.raises(ExprEvalError, match=message.split(":")[0][:12]):
                compile_expr(text).evaluate({})


@pytest.mark.parametrize("script", BUNDLES, ids=lambda p: p.parent.name + "/" + p.name)
def test_the_shipped_and_reference_bundles_have_no_failing_expression(script: Path) -> None:
    doc = load_source(script)
    assert check_expressions(doc, script.read_text(encoding="utf-8")) == []


@settings(max_examples=examples(20))
@given(doc=scenario_bundles())
def test_generated_valid_bundles_have_no_failing_expression(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, object]
) -> None:
    script = write_generated(tmp_path_factory.mktemp("gen"), doc) / "script.yaml"
    assert check_expressions(load_source(script), script.read_text(encoding="utf-8")) == []


def _bad_bundle(tmp_path: Path) -> Path:
    actions = {"fetch": http("get"), "note": log("info", '{{ "n=" + len(workbook.user_id) }}')}
    wf = graph(
        act("first", "fetch", edge("second", '{{ len(asset) > "x" }}'), edge("done")),
        act("second", "note", edge("done")),
        end(),
    )
    doc = document(actions, wf)
    doc["actions"]["fetch"]["save-as"] = {"var": "asset", "scope": "workbook"}
    (tmp_path / "resource.yaml").write_text("ip,port\n127.0.0.1,9\n", encoding="utf-8")
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return tmp_path


def test_compile_refuses_failing_expressions_with_file_line_column(tmp_path: Path) -> None:
    bundle = _bad_bundle(tmp_path)
    script = bundle / "script.yaml"
    lines = script.read_text(encoding="utf-8").splitlines()
    out = tmp_path / "plan.wbsc"
    done = subprocess.run(
        [sys.executable, "-m", "wbsrun", "compile", str(bundle), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert not out.exists()
    assert "Traceback" not in done.stderr
    found = [line for line in done.stderr.splitlines() if "[expr-type]" in line]
    assert len(found) == 2, done.stderr
    for line, needle in zip(found, ('"n=" + len(', 'len(asset) > "x"'), strict=False):
        where = line.split(": error")[0]
        file, row, col = where.rsplit(":", 2)
        assert file == str(script)
        assert needle in lines[int(row) - 1]
        assert lines[int(row) - 1][int(col) - 1 :].startswith(needle.split(" ")[0])
    assert "2 error(s); the scenario was not run" in done.stderr
