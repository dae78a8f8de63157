"""`--fail-on` tolerances of `wbsrun compare`: `METRIC OP VALUE[x]`, checked against run B.

`p95 > 1.1x` trips when B's p95 is above 1.1 × A's (relative: a trailing `x`);
`failed_rate > 0.01` when B's failed rate is above 0.01 (absolute). OP is one of
`<`, `<=`, `>`, `>=`. METRIC is a name of `wbsrun.progress.compare` or a threshold-style alias
(`http.latency_ms.p95`, `http.rps`, `actions.NAME.latency_ms.p99`, …). A malformed rule, an
unknown metric, or a figure a file lacks is a `ToleranceError`: never a silent pass.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wbsrun.progress.compare import LATENCY_STATS, RUN_METRICS, Comparison, split_action

__all__ = [
    "OPS",
    "Tolerance",
    "ToleranceError",
    "Verdict",
    "canonical",
    "check",
    "number",
    "parse_tolerance",
]

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_RULE = re.compile(
    rf"^\s*(?P<metric>[^\s<>=]+)\s*(?P<op><=|>=|<|>)\s*(?P<value>{_NUMBER})\s*(?P<x>[x×])?\s*$"
)
EXPECTED = "METRIC OP VALUE[x], e.g. 'p95 > 1.1x' or 'failed_rate > 0.01' (OP: <, <=, >, >=)"

# Threshold-style names (docs/observability.md) → the names of wbsrun.progress.compare.
ALIASES: dict[str, str] = {
    "http.reqs": "requests",
    "requests.total": "requests",
    "http.rps": "rps",
    "requests.per_second": "rps",
    "requests.failed": "failed",
    "http.failed_rate": "failed_rate",
    "requests.failed_rate": "failed_rate",
    "progress.work": "work",
    "progress.time": "time",
    "progress.milestones": "milestones",
    "health.score": "health",
    "duration_s": "duration",
    **{f"http.latency_ms.{s}": s for s in LATENCY_STATS},
    **{f"requests.latency_ms.{s}": s for s in LATENCY_STATS},
}
PATTERNS = ("actions.NAME.STAT", "errors.CODE", "status.CODE")


class ToleranceError(ValueError):
    """A tolerance that is malformed or cannot be evaluated; the message says which and why."""


def canonical(metric: str) -> str | None:
    """The comparison's name of `metric`, or None when it names nothing."""
    metric = ALIASES.get(metric, metric)
    if metric in RUN_METRICS:
        return metric
    if metric.startswith("actions."):
        metric = metric.replace(".latency_ms.", ".").replace(".per_second", ".rps")
        return metric if split_action(metric) is not None else None
    if metric.startswith("http.status."):
        metric = metric[len("http.") :]
    if metric.startswith(("errors.", "status.")) and len(metric.split(".", 1)[1]) > 0:
        return metric
    return None


@dataclass(frozen=True, slots=True)
class Tolerance:
    metric: str
    op: str
    value: float
    relative: bool

    def __str__(self) -> str:
        """The rule as parse_tolerance reads it back (the value exactly)."""
        return f"{self.metric} {self.op} {number(self.value)}{'x' if self.relative else ''}"


def number(value: float) -> str:
    """`100`, not `100.0`; otherwise the shortest text that reads back as the same float."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def parse_tolerance(text: str) -> Tolerance:
    match = _RULE.match(text)
    if match is None:
        raise ToleranceError(f"--fail-on {text!r}: expected {EXPECTED}")
    name = match["metric"]
    metric = canonical(name)
    if metric is None:
        known = [*RUN_METRICS, *ALIASES]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ToleranceError(
            f"--fail-on {text!r}: unknown metric '{name}'{hint}; expected one of "
            f"{', '.join(RUN_METRICS)} or {', '.join(PATTERNS)}"
        )
    return Tolerance(metric, match["op"], float(match["value"]), match["x"] is not None)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A tolerance against both runs: `limit` is VALUE (absolute) or VALUE × A."""

    tolerance: Tolerance
    a: float | None
    b: float
    limit: float
    tripped: bool

    def to_json(self) -> dict[str, Any]:
        t = self.tolerance
        return {
            "rule": str(t),
            "metric": t.metric,
            "op": t.op,
            "value": t.value,
            "relative": t.relative,
            "a": self.a,
            "b": self.b,
            "limit": self.limit,
            "tripped": self.tripped,
        }


def check(tolerance: Tolerance, comparison: Comparison) -> Verdict:
    """Evaluate against B (and A for a relative one); a figure missing from a file raises."""
    metric = tolerance.metric
    a = comparison.value(metric, "a")
    b = comparison.value(metric, "b")
    missing = []
    if tolerance.relative and a is None:
        missing.append(comparison.a_name)
    if b is None:
        missing.append(comparison.b_name)
    if missing or b is None:
        raise ToleranceError(
            f"--fail-on '{tolerance}': {metric} is not in {' nor '.join(missing)}"
            + _why_missing(metric, comparison)
        )
    limit = tolerance.value * a if tolerance.relative and a is not None else tolerance.value
    return Verdict(tolerance, a, b, limit, OPS[tolerance.op](b, limit))


def _why_missing(metric: str, comparison: Comparison) -> str:
    action = split_action(metric)
    if action is not None:
        names = sorted({*comparison.actions("both"), *comparison.actions("only_a")})
        names += [n for n in comparison.actions("only_b") if n not in names]
        return f" (actions: {', '.join(names) or 'none'})"
    if metric == "eta_error_s":
        return " (it needs the result's timeseries.eta_s)"
    if metric in LATENCY_STATS or metric in ("health", "failed_rate"):
        return " (a result written before these figures existed, or a run without requests)"
    return ""
