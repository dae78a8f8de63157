"""Thresholds evaluated against the JSON result: at the end for the verdict and the exit code,
and live (every second, on the live result) for alerts and abort-on-fail.

Pure: no I/O, no clock. The metric catalogue and the rule grammar are `wbsrun.dsl.thresholds`
(the loader checks the rules with them before the run); this module reads the values.

A metric with no data (a latency stat of an action that never ran, a rate over nothing) is
reported with ``observed: null`` and fails at the end: a gate that could not be checked does
not pass (k6 passes such thresholds silently, grafana/k6#1346, #4283). Live, no data neither
fires an alert nor aborts: early in a run every metric has none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wbsrun.dsl.thresholds import Metric, ThresholdRule
from wbsrun.progress.health import run_health

__all__ = ["Crossing", "ThresholdEvaluator", "compare", "observe"]

Result = Mapping[str, Any]


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _rate(failed: object, total: object) -> float | None:
    f, t = _num(failed), _num(total)
    return None if f is None or not t else f / t


def _latency(block: Mapping[str, Any], stat: str, count: object) -> float | None:
    """A stat of a `latency_ms` block; None when it recorded nothing (or lacks the stat)."""
    lat = _map(block.get("latency_ms"))
    n = _num(lat.get("count", count))
    if not n:
        return None
    return n if stat == "count" else _num(lat.get(stat))


def _http(m: Metric, r: Result) -> float | None:
    req = _map(r.get("requests"))
    total = req.get("total")
    if m.family == "http.reqs":
        return _num(total)
    if m.family == "http.rps":
        return _num(req.get("per_second"))
    if m.family == "http.failed_rate":
        if not _num(total):
            return None
        return (
            _num(req.get("failed_rate"))
            if "failed_rate" in req
            else _rate(req.get("failed"), total)
        )
    if m.family == "http.latency_ms":
        return _latency(req, m.field, total)
    # http.status: a class or an exact code; one the result does not list counted 0.
    key = "status_codes" if m.name.isdigit() else "status"
    counts = req.get(key)
    return _num(_map(counts).get(m.name, 0)) if isinstance(counts, Mapping) else None


def _action(m: Metric, r: Result) -> float | None:
    a = _map(_map(r.get("actions")).get(m.name))
    count = a.get("count", 0)
    if m.family == "actions.count":
        return _num(count)
    if m.family == "actions.failed_rate":
        return _rate(a.get("failed"), count)
    return _latency(a, m.field, count)


def _scenario(m: Metric, r: Result) -> float | None:
    if m.family == "scenarios.progress":
        p = _map(_map(_map(r.get("progress")).get("scenarios")).get(m.name))
        return _num(p.get("milestones_weighted" if m.field == "milestones" else m.field))
    s = _map(_map(r.get("scenarios")).get(m.name))
    if m.family in ("scenarios.dropped_iterations", "scenarios.pacing_missed"):
        return _num(s.get(m.family.partition(".")[2], 0))
    req = _map(s.get("requests"))
    if m.family == "scenarios.failed_rate":
        if not _num(req.get("total")):
            return None
        if "failed_rate" in req:
            return _num(req.get("failed_rate"))
        return _rate(req.get("failed"), req.get("total"))
    return _latency(s, m.field, req.get("total"))


def _health(r: Result) -> float | None:
    health = r.get("health")
    if isinstance(health, Mapping):
        return _num(health.get("score"))
    # A result without the key (older builds): the same score from its parts.
    progress, req = _map(r.get("progress")), _map(r.get("requests"))
    work = _num(progress.get("work"))
    if work is None:
        return None
    planned = _num(progress.get("time"))
    total, failed = int(req.get("total", 0)), int(req.get("failed", 0))
    return run_health(work, planned, total, failed).score


def _tasks(r: Result) -> float | None:
    t = _map(r.get("tasks"))
    bad = sum(int(t.get(k, 0)) for k in ("failed", "timed_out", "rolled_back"))
    closed = bad + int(t.get("succeeded", 0))
    return bad / closed if closed else None


def _checks(m: Metric, r: Result) -> float | None:
    """`checks.rate`: passes over every check evaluation; `checks.NAME.rate`: that check's.
    None when nothing was evaluated."""
    checks = _map(r.get("checks"))
    picked = [_map(checks.get(m.name))] if m.name else [_map(c) for c in checks.values()]
    passes = sum(_num(c.get("passes")) or 0.0 for c in picked)
    fails = sum(_num(c.get("fails")) or 0.0 for c in picked)
    return passes / (passes + fails) if passes + fails else None


def observe(m: Metric, r: Result) -> float | None:
    """The value of metric ``m`` in result ``r``; None when it has no data."""
    root = m.family.partition(".")[0]
    if root == "http":
        return _http(m, r)
    if root == "actions":
        return _action(m, r)
    if root == "scenarios":
        return _scenario(m, r)
    progress = _map(r.get("progress"))
    if m.family == "progress.milestones.share":
        return _num(_map(_map(progress.get("milestones")).get(m.name)).get("share"))
    if root == "progress":
        key = m.family.partition(".")[2]
        return _num(progress.get("milestones_weighted" if key == "milestones" else key))
    if m.family == "health.score":
        return _health(r)
    if m.family == "tasks.failed_rate":
        return _tasks(r)
    if m.family == "dropped_iterations":
        return _num(r.get("dropped_iterations", 0))
    if m.family == "errors":
        return _num(_map(r.get("errors")).get(m.name, 0))
    if root == "checks":
        return _checks(m, r)
    return None


def compare(observed: float, op: str, value: float) -> bool:
    """Whether ``observed OP value`` holds (the rule passes)."""
    if op == "<":
        return observed < value
    if op == "<=":
        return observed <= value
    if op == ">":
        return observed > value
    if op == ">=":
        return observed >= value
    if op == "==":
        return observed == value
    return observed != value


@dataclass(frozen=True, slots=True)
class Crossing:
    """A rule that started failing (live): the alert the run log and the console show."""

    rule: ThresholdRule
    observed: float
    at_s: float
    # abort-on-fail, past its delay-abort-eval: the run is to stop.
    aborts: bool
    # It started failing now (an alert); False: it was failing already and its delay is over.
    new: bool = True

    @property
    def message(self) -> str:
        seen = f"(observed {_fmt(self.observed)} at {self.at_s:.1f}s)"
        if not self.new:
            return (
                f"threshold still failing after its delay-abort-eval: {self.rule.text} {seen} "
                "(abort-on-fail: stopping the run)"
            )
        then = " (abort-on-fail: stopping the run)" if self.aborts else ""
        return f"threshold crossed: {self.rule.text} {seen}{then}"


def _fmt(value: float | None) -> str:
    return "no data" if value is None else f"{value:.6g}"


class _State:
    __slots__ = ("alerts", "failing", "first_failed_s", "observed")

    def __init__(self) -> None:
        self.failing = False
        self.alerts = 0
        self.first_failed_s: float | None = None
        self.observed: float | None = None


class ThresholdEvaluator:
    """The run's rules and their live state.

    `check(result, elapsed)` (every second, live result): the rules that crossed since the
    last check, each once per crossing; `alerts_total` counts them per rule text (for the
    metrics exporter). `aborted_by`: the abort-on-fail rule that stopped the run, if one did.
    `verdicts(result)`: the result's `thresholds` list (final result)."""

    def __init__(self, rules: Sequence[ThresholdRule]) -> None:
        self.rules = tuple(rules)
        self._state = {rule: _State() for rule in self.rules}
        self.aborted_by: ThresholdRule | None = None

    @property
    def alerts_total(self) -> dict[str, int]:
        """Alerts fired so far, per rule (its text), every rule listed."""
        return {rule.text: self._state[rule].alerts for rule in self.rules}

    @property
    def failing(self) -> dict[str, bool]:
        """Per rule (its text): failing at the last check (no data: not failing)."""
        return {rule.text: self._state[rule].failing for rule in self.rules}

    def check(self, result: Result, elapsed: float) -> list[Crossing]:
        crossings: list[Crossing] = []
        for rule in self.rules:
            state = self._state[rule]
            observed = observe(rule.metric, result)
            state.observed = observed
            failing = observed is not None and not compare(observed, rule.op, rule.value)
            if failing and state.first_failed_s is None:
                state.first_failed_s = round(elapsed, 3)
            due = rule.abort_on_fail and elapsed >= rule.delay_abort_eval
            aborts = failing and due and self.aborted_by is None
            if aborts:
                self.aborted_by = rule
            if failing and (not state.failing or aborts) and observed is not None:
                state.alerts += 0 if state.failing else 1
                crossings.append(Crossing(rule, observed, elapsed, aborts, not state.failing))
            state.failing = failing
        return crossings

    def verdicts(self, result: Result, elapsed: float) -> list[dict[str, Any]]:
        """Every rule on the final result: observed value (None: no data), ok, and when it
        first failed (seconds since the start; live, else the end of the run)."""
        out: list[dict[str, Any]] = []
        for rule in self.rules:
            state = self._state[rule]
            observed = observe(rule.metric, result)
            ok = observed is not None and compare(observed, rule.op, rule.value)
            ok = ok and rule is not self.aborted_by
            first = state.first_failed_s
            if not ok and first is None:
                first = round(elapsed, 3)
            out.append(
                {
                    "rule": rule.text,
                    "metric": rule.metric.text,
                    "op": rule.op,
                    "value": rule.value,
                    "observed": observed,
                    "ok": ok,
                    "abort_on_fail": rule.abort_on_fail,
                    "delay_abort_eval_s": rule.delay_abort_eval,
                    "first_failed_s": first,
                }
            )
        return out
