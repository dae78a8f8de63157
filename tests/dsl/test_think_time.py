"""`think-time` distributions and `pacing` in the DSL: every form read, every bad value refused
at its file:line:col with the value and what was expected (dsl/think.py, dsl/_build.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from scenario_kit import act, document, edge, end, graph, http, write_bundle
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan, ThinkSpec
from wbsrun.dsl.think import ThinkError, parse_think
from wbsrun.dsl.units import format_duration
from wbsrun.errors import Diagnostic, ScenarioError
from wbsrun.protocols.registry import provides


def _doc(**scenario: Any) -> dict[str, Any]:
    flow = graph(act("probe", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    return document({"fetch": http("get")}, flow, 1, iterations=2, **scenario)


def _load(tmp_path: Path, **scenario: Any) -> Plan:
    return load_plan(write_bundle(tmp_path, _doc(**scenario), [("127.0.0.1", 1)]), provides())


def _refused(tmp_path: Path, **scenario: Any) -> list[Diagnostic]:
    with pytest.raises(ScenarioError) as caught:
        _load(tmp_path, **scenario)
    return [d for d in caught.value.diagnostics if d.severity == "error"]


def _line_of(tmp_path: Path, key: str) -> int:
    text = (tmp_path / "bundle" / "script.yaml").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(text, 1) if line.strip().startswith(f"{key}:"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2s", ThinkSpec("fixed", 2.0, 2.0)),
        (0.5, ThinkSpec("fixed", 0.5, 0.5)),
        ("uniform(1s, 3s)", ThinkSpec("uniform", 1.0, 3.0)),
        ("uniform(500ms,500ms)", ThinkSpec("uniform", 0.5, 0.5)),
        (" exponential( 2s ) ", ThinkSpec("exponential", 2.0, 2.0)),
        ("fixed(250ms)", ThinkSpec("fixed", 0.25, 0.25)),
        ({"distribution": "uniform", "min": "1s", "max": 3}, ThinkSpec("uniform", 1.0, 3.0)),
        ({"distribution": "exponential", "mean": "2s"}, ThinkSpec("exponential", 2.0, 2.0)),
        ({"distribution": "fixed", "value": "1m"}, ThinkSpec("fixed", 60.0, 60.0)),
        ({"value": "1s"}, ThinkSpec("fixed", 1.0, 1.0)),
    ],
)
def test_every_think_time_form_reads_as_its_distribution(
    value: object, expected: ThinkSpec
) -> None:
    assert parse_think(value) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("uniform(3s, 1s)", "min 3s above max 1s"),
        ("normal(1s, 2s)", "unknown think-time distribution 'normal'"),
        ("uniform(1s)", "uniform think-time needs min and max"),
        ("exponential(0s)", "mean above 0"),
        ("exponential(-1s)", "invalid duration"),
        ("uniform(1s, soon)", "invalid duration 'soon'"),
        ({"distribution": "uniform", "min": "1s"}, "needs min and max"),
        ({"distribution": "uniform", "min": "1s", "max": "2s", "mean": "1s"}, "no key 'mean'"),
        ({"distribution": "gauss"}, "unknown think-time distribution 'gauss'"),
        ("soon", "invalid duration 'soon'"),
    ],
)
def test_a_bad_think_time_is_refused_naming_what_is_wrong(value: object, words: str) -> None:
    with pytest.raises(ThinkError) as caught:
        parse_think(value)
    assert words in caught.value.message
    assert caught.value.expected


def test_the_plan_carries_the_distribution_and_its_mean_as_think_time(tmp_path: Path) -> None:
    (scenario,) = _load(tmp_path, think_time="uniform(1s, 3s)").scenarios
    assert (scenario.think, scenario.think_time, scenario.pacing) == (
        ThinkSpec("uniform", 1.0, 3.0),
        2.0,
        None,
    )
    (paced,) = _load(tmp_path, pacing="250ms").scenarios
    assert (paced.think, paced.think_time, paced.pacing) == (None, 0.0, 0.25)


@pytest.mark.parametrize(
    ("value", "code", "expected"),
    [
        ("uniform(3s, 1s)", "bad-think-time", "min <= max"),
        ("poisson(2s)", "bad-think-time", "one of fixed, uniform, exponential"),
        ("exponential(0)", "bad-think-time", "a mean > 0, e.g. 2s"),
    ],
)
def test_a_bad_think_time_in_a_bundle_is_refused_at_its_position(
    tmp_path: Path, value: str, code: str, expected: str
) -> None:
    (found,) = _refused(tmp_path, think_time=value)
    line = _line_of(tmp_path, "think-time")
    assert (found.code, found.path, found.line, found.value, found.expected) == (
        code,
        "load.scenarios[0].think-time",
        line,
        repr(value),
        expected,
    )
    assert found.file.endswith("script.yaml")
    assert found.column > 1


def test_a_negative_think_time_is_refused_with_what_is_expected(tmp_path: Path) -> None:
    (negative,) = _refused(tmp_path, think_time=-1)
    assert (negative.code, negative.line, negative.value, negative.expected) == (
        "bad-think-time",
        _line_of(tmp_path, "think-time"),
        "-1",
        "a duration, e.g. 2s",
    )
    assert "must not be negative" in negative.message


def test_an_unknown_distribution_in_the_mapping_form_fails_the_schema_at_its_position(
    tmp_path: Path,
) -> None:
    (unknown,) = _refused(tmp_path, think_time={"distribution": "normal", "mean": "1s"})
    assert unknown.path == "load.scenarios[0].think-time.distribution"
    assert unknown.line == _line_of(tmp_path, "distribution")
    assert (unknown.value, unknown.expected) == ("normal", "fixed, uniform, exponential")


def test_pacing_must_be_a_duration_above_zero_and_excludes_think_time(tmp_path: Path) -> None:
    (zero,) = _refused(tmp_path, pacing="0s")
    assert (zero.code, zero.path, zero.line, zero.expected) == (
        "bad-pacing",
        "load.scenarios[0].pacing",
        _line_of(tmp_path, "pacing"),
        "a duration > 0, e.g. 5s",
    )
    (bad,) = _refused(tmp_path, pacing="often")
    assert (bad.code, bad.path, bad.value) == ("bad-duration", "load.scenarios[0].pacing", "often")
    (both,) = _refused(tmp_path, pacing="1s", think_time="1s")
    assert (both.code, both.path) == ("pacing-and-think-time", "load.scenarios[0].think-time")


_SECONDS = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(_SECONDS, _SECONDS)
def test_uniform_reads_back_any_written_bounds_or_refuses_them_reversed(a: float, b: float) -> None:
    text = f"uniform({format_duration(a)}, {format_duration(b)})"
    if a <= b:
        assert parse_think(text) == ThinkSpec("uniform", a, b)
    else:
        with pytest.raises(ThinkError, match="above max"):
            parse_think(text)


@given(_SECONDS, st.sampled_from(["fixed", "exponential"]))
def test_the_call_and_mapping_forms_read_alike(seconds: float, kind: str) -> None:
    written = format_duration(seconds)
    key = "value" if kind == "fixed" else "mean"
    assume(kind == "fixed" or seconds > 0)  # a zero mean is refused in both forms (above)
    assert parse_think(f"{kind}({written})") == parse_think({"distribution": kind, key: written})
