"""`thresholds:` is checked before the run: every bad rule of the scenario and of its
config.yaml in one pass, each at its file:line:col with the value and what was expected; the
three forms are read into the same rules; config.yaml adds to the scenario's."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wbsrun.core import codes
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.dsl.thresholds import (
    BUILTIN_ERROR_CODES,
    LATENCY_STATS,
    OPERATORS,
    STATUS_CLASSES,
    PlanNames,
    RuleError,
    ThresholdRule,
    metric_names,
    parse_metric,
    parse_rule,
    render_value,
)
from wbsrun.errors import Diagnostic, ScenarioError
from wbsrun.protocols.h1 import PROTOCOL_ERROR
from wbsrun.protocols.registry import provides

BASE = """\
version: "1.0"
name: gate
components:
  - name: http
    version: "1.0.0"
    kind: native
    capabilities: [get]
actions:
  probe-get:
    component: http
    call: get
    with:
      url: "http://127.0.0.1:9/asset"
workflows:
  main:
    type: graph
    nodes:
      - id: first
        type: action
        action: probe-get
        controls:
          exec:
            transitions:
              - edge: done
                to: end
                condition: always
      - id: end
        type: terminus
        state: closing.success
load:
  scenarios:
    - name: bulk
      workflow: main
      user-count: 1
      iterations: 1
      milestones:
        - name: fetched
          node: first
          edge: done
          weight: 1
"""
NAMES = PlanNames(
    actions=frozenset({"probe-get"}),
    scenarios=frozenset({"bulk"}),
    milestones=frozenset({"fetched"}),
    checks=frozenset({"status", "token-ok"}),
)


def _bundle(tmp_path: Path, thresholds: str, config: str | None = None) -> Path:
    (tmp_path / "script.yaml").write_text(BASE + thresholds, encoding="utf-8")
    if config is not None:
        (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
    return tmp_path


def _plan(tmp_path: Path, thresholds: str, config: str | None = None) -> Plan:
    return load_plan(_bundle(tmp_path, thresholds, config), provides())


def _errors(tmp_path: Path, thresholds: str, config: str | None = None) -> list[Diagnostic]:
    with pytest.raises(ScenarioError) as info:
        _plan(tmp_path, thresholds, config)
    return [d for d in info.value.diagnostics if d.severity == "error"]


def _line(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, text in enumerate(lines, 1) if needle in text)


def test_the_bundle_validates_and_has_the_milestone_the_tests_name(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "")
    assert plan.thresholds == ()
    assert [m.name for s in plan.scenarios for m in s.milestones] == ["fetched"]


def test_the_three_forms_read_into_the_same_rules(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        """thresholds:
  - http.failed_rate < 0.01
  - rule: "actions.probe-get.latency_ms.p95 < 200ms"
    abort-on-fail: true
    delay-abort-eval: 10s
""",
        config="""thresholds:
  http.latency_ms: ["p99.9 < 1.5s", {threshold: "p50 <= 20", abort-on-fail: true}]
  scenarios.bulk.progress.work: ">= 1"
""",
    )
    got = [(r.text, r.value, r.abort_on_fail, r.delay_abort_eval) for r in plan.thresholds]
    assert got == [
        ("http.failed_rate < 0.01", 0.01, False, 0.0),
        ("actions.probe-get.latency_ms.p95 < 200ms", 200.0, True, 10.0),
        ("http.latency_ms.p99.9 < 1.5s", 1500.0, False, 0.0),
        ("http.latency_ms.p50 <= 20", 20.0, True, 0.0),
        ("scenarios.bulk.progress.work >= 1", 1.0, False, 0.0),
    ]
    at = _line(tmp_path / "script.yaml", "http.failed_rate")
    assert plan.thresholds[0].origin == f"{tmp_path / 'script.yaml'}:{at}:5"
    assert plan.thresholds[2].origin.startswith(str(tmp_path / "config.yaml"))


def test_every_kind_of_bad_rule_is_reported_in_one_pass_where_it_is(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        """thresholds:
  - actions.probe-gte.latency_ms.p95 < 200
  - http.failed_rte < 0.01
  - http.reqs => 5
  - http.reqs > lots
  - progress.work
  - checks.rate > 0.99
  - errors.http-5x == 0
  - scenarios.bluk.failed_rate < 0.1
  - progress.milestones.fetchd >= 1
  - http.latency_ms.p95 < 2x
  - rule: health.score >= 0.8
    abort-on-fail: maybe
    delay-abort-eval: 10x
  - {rule: "http.rps > 1", abortOnFail: true}
  - 42
""",
    )
    script = tmp_path / "script.yaml"
    got = [(d.line, d.column, d.code) for d in errors]
    at = _line(script, "probe-gte")
    assert got == [
        (at, 13, "unknown-action"),
        (at + 1, 5, "unknown-metric"),
        (at + 2, 15, "bad-operator"),
        (at + 3, 17, "bad-value"),
        (at + 4, 18, "malformed-threshold"),
        (at + 5, 5, "unknown-check"),
        (at + 6, 12, "unknown-error-code"),
        (at + 7, 15, "unknown-scenario"),
        (at + 8, 25, "unknown-milestone"),
        (at + 9, 27, "bad-duration"),
        (at + 11, 20, "bad-threshold"),
        (at + 12, 23, "bad-duration"),
        (at + 13, 28, "unknown-key"),
        (at + 14, 5, "bad-threshold"),
    ], [d.format() for d in errors]
    hints = {d.code: d.hint for d in errors}
    assert hints["unknown-action"] == "did you mean 'probe-get'?"
    assert hints["unknown-metric"] == "did you mean 'http.failed_rate'?"
    assert hints["bad-operator"] == "did you mean '>='?"
    assert hints["unknown-error-code"] == "did you mean 'http-5xx'?"
    assert hints["unknown-key"] == "did you mean 'abort-on-fail'?"
    checks = next(d for d in errors if d.code == "unknown-check")
    assert "no action of the plan has checks" in checks.message
    assert all(d.value for d in errors)
    assert all(d.expected for d in errors), [d.format() for d in errors if not d.expected]


def test_bad_rules_in_config_yaml_are_reported_with_the_scenarios_in_one_pass(
    tmp_path: Path,
) -> None:
    errors = _errors(
        tmp_path,
        "thresholds:\n  - http.reqs >> 1\n",
        config="""run:
  users: 2
thresholds:
  http.latency_ms: ["p95 < 300", {threshold: "p99 < 1x", abort-on-fail: true}]
  http.reqs: ["> 1", "<< 3"]
  actions.nope.count: ">= 1"
""",
    )
    where = [(Path(d.file).name, d.line, d.column, d.code) for d in errors]
    assert where == [
        ("script.yaml", _line(tmp_path / "script.yaml", "http.reqs >>"), 15, "bad-operator"),
        ("config.yaml", 4, 53, "bad-duration"),
        ("config.yaml", 5, 23, "bad-operator"),
        ("config.yaml", 6, 11, "unknown-action"),
    ], [d.format() for d in errors]


def test_the_wrong_shape_is_refused_in_the_scenario_and_in_config_yaml(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "thresholds: http.failed_rate < 0.01\n", "thresholds: 3\n")
    assert [(Path(d.file).name, d.code) for d in errors] == [
        ("script.yaml", "wrong-type"),
        ("config.yaml", "bad-threshold"),
    ], [d.format() for d in errors]


def test_an_empty_thresholds_section_means_none(tmp_path: Path) -> None:
    assert _plan(tmp_path, "thresholds:\n", config="thresholds:\n").thresholds == ()


def test_error_codes_the_scenario_declares_may_be_named(tmp_path: Path) -> None:
    text = BASE.replace("load:\n", "progress:\n  errors:\n    transient: [quota-hit]\nload:\n")
    (tmp_path / "script.yaml").write_text(text + "thresholds: ['errors.quota-hit < 5']\n")
    plan = load_plan(tmp_path, provides())
    assert [r.text for r in plan.thresholds] == ["errors.quota-hit < 5"]


def test_config_yaml_adds_its_rules_and_replaces_an_equal_one(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        "thresholds:\n  - http.reqs > 1\n  - http.failed_rate < 0.05\n",
        config="thresholds:\n  - rule: http.failed_rate < 0.050\n    abort-on-fail: true\n"
        "  - health.score >= 0.8\n",
    )
    got = [
        (r.text, r.abort_on_fail, Path(r.origin.rsplit(":", 2)[0]).name) for r in plan.thresholds
    ]
    assert got == [
        ("http.reqs > 1", False, "script.yaml"),
        ("http.failed_rate < 0.050", True, "config.yaml"),
        ("health.score >= 0.8", False, "config.yaml"),
    ]


def test_a_rule_written_twice_in_one_file_is_kept_once_with_a_warning(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "thresholds:\n  - http.reqs > 1\n  - http.reqs >  1.0\n")
    assert [r.text for r in plan.thresholds] == ["http.reqs > 1"]
    assert [w.code for w in plan.warnings] == ["duplicate-threshold"]


def test_the_builtin_error_codes_are_the_ones_the_engine_gives() -> None:
    engine = {v for k, v in vars(codes).items() if k.isupper() and isinstance(v, str)}
    assert engine | {PROTOCOL_ERROR} == BUILTIN_ERROR_CODES


def test_every_name_of_the_catalogue_parses_to_itself() -> None:
    names = list(metric_names(NAMES))
    assert len(names) == len(set(names)) > 60
    for name in names:
        assert parse_metric(name, NAMES).text == name
    assert parse_metric("http.status.503", NAMES).text == "http.status.503"


@pytest.mark.parametrize(
    "metric",
    [
        "http.status.600",
        "http.status.6xx",
        "http.latency_ms.p42",
        "actions.probe-get",
        "dropped_iteration",
        "actions.probe-get.dropped_iterations",  # a scenario's count, not an action's
    ],
)
def test_names_outside_the_catalogue_are_refused(metric: str) -> None:
    with pytest.raises(RuleError):
        parse_metric(metric, NAMES)


_METRICS = st.sampled_from(sorted(metric_names(NAMES)))
_NUMBERS = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@given(_METRICS, st.sampled_from(OPERATORS), _NUMBERS)
def test_a_rendered_rule_parses_back_to_the_same_rule(metric: str, op: str, value: float) -> None:
    m = parse_metric(metric, NAMES)
    rule = ThresholdRule(m, op, value, render_value(value))
    parsed = parse_rule(rule.text, NAMES)
    assert parsed == (m, op, value, render_value(value))
    again = ThresholdRule(*parsed)
    assert again.text == rule.text
    assert again.key == rule.key


@given(
    st.sampled_from([f"http.latency_ms.{s}" for s in LATENCY_STATS if s != "count"]),
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["ms", "s"]),
)
def test_latency_durations_read_as_milliseconds(metric: str, n: int, unit: str) -> None:
    _, _, value, text = parse_rule(f"{metric} < {n}{unit}", NAMES)
    assert value == pytest.approx(n * (1000 if unit == "s" else 1))
    assert text == f"{n}{unit}"


def test_status_classes_cover_every_class_the_result_lists() -> None:
    assert set(STATUS_CLASSES) >= {"2xx", "3xx", "4xx", "5xx", "none"}
