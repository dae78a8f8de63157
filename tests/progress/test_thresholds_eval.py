"""Thresholds evaluated on result dicts of the shape SPEC-19 / result-schema.json gives: every
metric family reads the value it names; no data is reported as such and fails at the end;
live, a crossing alerts once per crossing and abort-on-fail waits for its delay."""

from __future__ import annotations

from typing import Any

import pytest

from wbsrun.dsl.thresholds import PlanNames, ThresholdRule, parse_rule
from wbsrun.progress.health import run_health
from wbsrun.progress.thresholds import ThresholdEvaluator, compare, observe

NAMES = PlanNames(
    actions=frozenset({"probe-get", "never"}),
    scenarios=frozenset({"bulk", "idle"}),
    milestones=frozenset({"probe", "push"}),
)


def _lat(count: int, base: float) -> dict[str, Any]:
    keys = ("min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")
    return {"count": count, **{k: base + i for i, k in enumerate(keys)}}


def result(**over: Any) -> dict[str, Any]:
    """A final result as SPEC-19 "JSON result" shapes it."""
    out: dict[str, Any] = {
        "status": "completed",
        "requests": {
            "total": 200,
            "ok": 190,
            "failed": 10,
            "interrupted": 0,
            "per_second": 40.0,
            "failed_rate": 0.05,
            "latency_ms": _lat(200, 10.0),
            "status": {"2xx": 190, "5xx": 10},
            "status_codes": {"200": 190, "503": 10},
        },
        "tasks": {"succeeded": 6, "failed": 1, "timed_out": 1, "rolled_back": 0, "interrupted": 3},
        "actions": {
            "probe-get": {"count": 100, "ok": 95, "failed": 5, "latency_ms": _lat(100, 20.0)},
            "never": {"count": 0, "ok": 0, "failed": 0, "latency_ms": _lat(0, 0.0)},
        },
        "scenarios": {
            "bulk": {
                "requests": {"total": 200, "ok": 190, "failed": 10, "failed_rate": 0.05},
                "latency_ms": _lat(200, 30.0),
                "dropped_iterations": 7,
                "pacing_missed": 3,
            },
            "idle": {
                "requests": {"total": 0, "failed": 0, "failed_rate": 0},
                "latency_ms": _lat(0, 0),
            },
        },
        "errors": {"http-5xx": 10},
        "dropped_iterations": 7,
        "progress": {
            "work": 0.75,
            "time": 0.5,
            "milestones_weighted": 0.6,
            "milestones": {"probe": {"reached": 8, "weight": 0.3, "share": 0.8}},
            "scenarios": {"bulk": {"work": 0.7, "time": None, "milestones_weighted": 0.4}},
        },
        "health": {"score": 0.82, "progress": 0.75, "error_rate": 0.05, "deviation": 0.0},
    }
    out.update(over)
    return out


def rule(text: str, abort: bool = False, delay: float = 0.0) -> ThresholdRule:
    metric, op, value, value_text = parse_rule(text, NAMES)
    return ThresholdRule(metric, op, value, value_text, abort, delay)


def value(metric: str, r: dict[str, Any] | None = None) -> float | None:
    return observe(rule(f"{metric} < 0").metric, result() if r is None else r)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("http.failed_rate", 0.05),
        ("http.reqs", 200),
        ("http.rps", 40.0),
        ("http.latency_ms.count", 200),
        ("http.latency_ms.min", 10.0),
        ("http.latency_ms.p95", 14.0),
        ("http.latency_ms.p99.9", 16.0),
        ("http.status.5xx", 10),
        ("http.status.4xx", 0),  # a class the result does not list: none seen
        ("http.status.503", 10),
        ("http.status.404", 0),
        ("actions.probe-get.latency_ms.p95", 24.0),
        ("actions.probe-get.failed_rate", 0.05),
        ("actions.probe-get.count", 100),
        ("actions.never.count", 0),
        ("scenarios.bulk.progress.work", 0.7),
        ("scenarios.bulk.progress.milestones", 0.4),
        ("scenarios.bulk.latency_ms.max", 37.0),
        ("scenarios.bulk.failed_rate", 0.05),
        ("progress.work", 0.75),
        ("progress.time", 0.5),
        ("progress.milestones", 0.6),
        ("progress.milestones.probe", 0.8),
        ("health.score", 0.82),
        ("tasks.failed_rate", 2 / 8),
        ("errors.http-5xx", 10),
        ("errors.network-timeout", 0),
        ("dropped_iterations", 7),
        ("scenarios.bulk.dropped_iterations", 7),
        ("scenarios.bulk.pacing_missed", 3),
        ("scenarios.idle.dropped_iterations", 0),  # a closed-model scenario drops none
    ],
)
def test_each_metric_reads_the_value_it_names(metric: str, expected: float) -> None:
    assert value(metric) == pytest.approx(expected)


@pytest.mark.parametrize(
    "metric",
    [
        "actions.never.latency_ms.p95",  # the action never ran
        "actions.never.failed_rate",
        "scenarios.idle.latency_ms.p50",
        "scenarios.idle.failed_rate",
        "scenarios.idle.progress.work",  # not in the result's progress
        "scenarios.bulk.progress.time",  # null: no time line
        "progress.milestones.push",  # no passes planned to it
    ],
)
def test_a_metric_without_data_is_none(metric: str) -> None:
    assert value(metric) is None


def test_rates_over_nothing_are_no_data_even_where_the_result_says_zero() -> None:
    empty = result(requests={"total": 0, "failed": 0, "failed_rate": 0, "per_second": 0.0})
    assert value("http.failed_rate", empty) is None
    assert value("http.reqs", empty) == 0
    assert value("tasks.failed_rate", result(tasks={"succeeded": 0, "interrupted": 4})) is None


def test_results_without_the_newer_keys_are_computed_from_their_parts() -> None:
    """Results of builds before SPEC-19 (no failed_rate, health, status): re-check after merge."""
    old = result(requests={"total": 50, "failed": 5, "per_second": 5.0}, health=None)
    del old["health"]
    assert value("http.failed_rate", old) == pytest.approx(0.1)
    assert value("health.score", old) == pytest.approx(run_health(0.75, 0.5, 50, 5).score)
    assert value("http.status.2xx", old) is None
    assert value("http.latency_ms.p95", old) is None


@pytest.mark.parametrize(
    ("op", "results"),
    [
        ("<", (True, False, False)),
        ("<=", (True, True, False)),
        (">", (False, False, True)),
        (">=", (False, True, True)),
        ("==", (False, True, False)),
        ("!=", (True, False, True)),
    ],
)
def test_every_operator_compares_as_written(op: str, results: tuple[bool, bool, bool]) -> None:
    assert tuple(compare(x, op, 1.0) for x in (0.5, 1.0, 1.5)) == results


def test_verdicts_list_every_rule_with_its_value_and_no_data_fails() -> None:
    rules = [
        rule("http.failed_rate < 0.1"),
        rule("http.latency_ms.p95 < 10ms"),
        rule("actions.never.latency_ms.p95 < 200", abort=True, delay=5),
    ]
    verdicts = ThresholdEvaluator(rules).verdicts(result(), 12.5)
    assert verdicts == [
        {
            "rule": "http.failed_rate < 0.1",
            "metric": "http.failed_rate",
            "op": "<",
            "value": 0.1,
            "observed": 0.05,
            "ok": True,
            "abort_on_fail": False,
            "delay_abort_eval_s": 0.0,
            "first_failed_s": None,
        },
        {
            "rule": "http.latency_ms.p95 < 10ms",
            "metric": "http.latency_ms.p95",
            "op": "<",
            "value": 10.0,
            "observed": 14.0,
            "ok": False,
            "abort_on_fail": False,
            "delay_abort_eval_s": 0.0,
            "first_failed_s": 12.5,
        },
        {
            "rule": "actions.never.latency_ms.p95 < 200",
            "metric": "actions.never.latency_ms.p95",
            "op": "<",
            "value": 200.0,
            "observed": None,
            "ok": False,
            "abort_on_fail": True,
            "delay_abort_eval_s": 5.0,
            "first_failed_s": 12.5,
        },
    ]


def _rate(failed: int) -> dict[str, Any]:
    return result(requests={"total": 100, "failed": failed, "failed_rate": failed / 100})


def test_live_a_crossing_alerts_once_and_again_only_after_recovering() -> None:
    evaluator = ThresholdEvaluator([rule("http.failed_rate < 0.1"), rule("http.reqs > 0")])
    seen = []
    for t, failed in enumerate([0, 20, 30, 40, 5, 50, 60]):
        seen.append([c.observed for c in evaluator.check(_rate(failed), float(t))])
    assert seen == [[], [0.2], [], [], [], [0.5], []]
    assert evaluator.alerts_total == {"http.failed_rate < 0.1": 2, "http.reqs > 0": 0}
    assert evaluator.failing == {"http.failed_rate < 0.1": True, "http.reqs > 0": False}
    assert evaluator.aborted_by is None
    final = evaluator.verdicts(_rate(60), 7.0)
    assert [v["first_failed_s"] for v in final] == [1.0, None]


def test_a_rule_without_delay_that_crosses_aborts_in_the_same_alert() -> None:
    evaluator = ThresholdEvaluator([rule("errors.http-5xx < 1", abort=True)])
    (crossing,) = evaluator.check(result(), 1.0)
    assert (crossing.new, crossing.aborts) == (True, True)
    assert crossing.message == (
        "threshold crossed: errors.http-5xx < 1 (observed 10 at 1.0s) "
        "(abort-on-fail: stopping the run)"
    )


def test_live_no_data_neither_alerts_nor_aborts() -> None:
    evaluator = ThresholdEvaluator([rule("actions.never.latency_ms.p99 < 1", abort=True)])
    assert evaluator.check(result(), 3.0) == []
    assert evaluator.aborted_by is None


def test_abort_on_fail_waits_for_its_delay_then_aborts_once() -> None:
    r = rule("http.failed_rate < 0.1", abort=True, delay=3.0)
    evaluator = ThresholdEvaluator([r])
    first = evaluator.check(_rate(50), 1.0)
    assert [(c.aborts, "stopping" in c.message) for c in first] == [(False, False)]
    assert evaluator.check(_rate(50), 2.0) == []
    third = evaluator.check(_rate(50), 3.0)
    assert [(c.aborts, c.new) for c in third] == [(True, False)]
    assert evaluator.aborted_by is r
    assert third[0].message.startswith("threshold still failing after its delay-abort-eval")
    assert "stopping the run" in third[0].message
    assert evaluator.check(_rate(50), 4.0) == []
    assert evaluator.alerts_total == {r.text: 1}
    # The rule that aborted the run fails, even if its value recovered by the end.
    assert evaluator.verdicts(_rate(0), 4.5)[0]["ok"] is False
