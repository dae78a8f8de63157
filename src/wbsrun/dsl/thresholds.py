"""Threshold rules (`thresholds:`): their grammar and the catalogue of metric names.

A rule is ``METRIC OP VALUE`` (``http.failed_rate < 0.01``). The metric names are checked
against the plan here, before the run; `wbsrun.progress.thresholds` reads their values from
the JSON result (final, or live every second). docs/dsl.md "Thresholds" is the reference."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from wbsrun.dsl.source import did_you_mean
from wbsrun.dsl.units import UnitError, parse_duration

__all__ = [
    "BUILTIN_ERROR_CODES",
    "LATENCY_STATS",
    "OPERATORS",
    "SCENARIO_COUNTS",
    "STATUS_CLASSES",
    "Metric",
    "PlanNames",
    "RuleError",
    "ThresholdRule",
    "metric_names",
    "parse_metric",
    "parse_rule",
    "parse_value",
    "render_value",
]

OPERATORS: Final = ("<", "<=", ">", ">=", "==", "!=")
LATENCY_STATS: Final = ("count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")
STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx", "none")
PROGRESS_FIELDS: Final = ("work", "time", "milestones")
# The codes wbsrun itself gives (wbsrun.core.codes and the HTTP transports' protocol-error;
# a test keeps the two lists equal). A scenario declares more in progress.errors.
BUILTIN_ERROR_CODES: Final = frozenset(
    {
        "network-timeout",
        "resource-unavailable",
        "lease-expired",
        "unauthorized",
        "invalid-configuration",
        "schema-violation",
        "http-4xx",
        "http-5xx",
        "no-transition",
        "expression-error",
        "expression-limit",
        "step-limit",
        "body-too-large",
        "persist-error",
        "protocol-error",
        "capture-failed",
        "check-failed",
        "data-exhausted",
        "data-error",
        "plugin-trap",
        "plugin-out-of-fuel",
        "plugin-out-of-memory",
        "plugin-wrong-type",
    }
)
# Families of metric name: (root, what follows). Used for did-you-mean and the docs.
_PLAIN: Final = (
    "http.failed_rate",
    "http.reqs",
    "http.rps",
    "progress.work",
    "progress.time",
    "progress.milestones",
    "health.score",
    "tasks.failed_rate",
    "dropped_iterations",
)
# Counts of a scenario's own (`scenarios.NAME.FIELD`).
SCENARIO_COUNTS: Final = ("dropped_iterations", "pacing_missed")
_OP_CHARS: Final = "<>=!≤≥≠"
_METRIC_RE: Final = re.compile(r"[A-Za-z0-9_.\-]+")
_NUMBER_RE: Final = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_RULE_EXAMPLE: Final = "METRIC OP VALUE, such as 'http.failed_rate < 0.01'"


class RuleError(ValueError):
    """A rule that cannot be read. ``offset``: where in the rule text; ``code``: the
    diagnostic's code; ``hint``: a did-you-mean."""

    def __init__(
        self, code: str, message: str, offset: int, expected: str, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.offset = offset
        self.expected = expected
        self.hint = hint
        # The mistake is in the metric given as the mapping key (offset: within the key).
        self.in_prefix = False


@dataclass(frozen=True, slots=True)
class PlanNames:
    """The names a metric may refer to: the plan's actions, scenarios, milestones, error codes."""

    actions: frozenset[str] = frozenset()
    scenarios: frozenset[str] = frozenset()
    milestones: frozenset[str] = frozenset()
    error_codes: frozenset[str] = BUILTIN_ERROR_CODES
    # The names of the actions' checks (`checks.NAME.rate`).
    checks: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric of the catalogue: ``family`` (``actions.latency_ms``), the ``name`` of the
    action / scenario / milestone / status / error code it is about ("" for none) and the
    ``field`` (a latency stat, a progress dimension; "" for none)."""

    family: str
    name: str = ""
    field: str = ""

    @property
    def text(self) -> str:
        root, _, rest = self.family.partition(".")
        if self.family in _PLAIN:
            return self.family
        if root in ("actions", "scenarios"):
            tail = f".{self.field}" if self.field else ""
            return f"{root}.{self.name}.{rest}{tail}"
        if self.family == "progress.milestones.share":
            return f"progress.milestones.{self.name}"
        if self.family == "http.latency_ms":
            return f"http.latency_ms.{self.field}"
        if self.family == "checks.rate":
            return "checks.rate"
        if self.family == "checks.check_rate":
            return f"checks.{self.name}.rate"
        return f"{self.family}.{self.name}"  # http.status, errors

    @property
    def is_latency(self) -> bool:
        """Values of latency stats (but count) may be written as durations: `200ms`, `1s`."""
        return self.family.endswith("latency_ms") and self.field != "count"


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """One rule as the run evaluates it. ``text``: the rule normalised (``render``)."""

    metric: Metric
    op: str
    value: float
    value_text: str
    abort_on_fail: bool = False
    delay_abort_eval: float = 0.0
    # Where it was written (file:line:col), for messages.
    origin: str = ""

    @property
    def text(self) -> str:
        return f"{self.metric.text} {self.op} {self.value_text}"

    @property
    def key(self) -> tuple[Metric, str, float]:
        """What makes two rules the same rule (``< 200ms`` is ``< 200``)."""
        return (self.metric, self.op, self.value)


def metric_names(names: PlanNames) -> Iterator[str]:
    """Every metric name the plan offers (for did-you-mean hints and the docs' list)."""
    yield from _PLAIN
    yield from (f"http.latency_ms.{s}" for s in LATENCY_STATS)
    yield from (f"http.status.{c}" for c in STATUS_CLASSES)
    for a in sorted(names.actions):
        yield from (f"actions.{a}.latency_ms.{s}" for s in LATENCY_STATS)
        yield from (f"actions.{a}.failed_rate", f"actions.{a}.count")
    for sc in sorted(names.scenarios):
        yield from (f"scenarios.{sc}.progress.{f}" for f in PROGRESS_FIELDS)
        yield from (f"scenarios.{sc}.latency_ms.{s}" for s in LATENCY_STATS)
        yield f"scenarios.{sc}.failed_rate"
        yield from (f"scenarios.{sc}.{c}" for c in SCENARIO_COUNTS)
    yield from (f"progress.milestones.{m}" for m in sorted(names.milestones))
    yield from (f"errors.{c}" for c in sorted(names.error_codes))
    if names.checks:
        yield "checks.rate"
        yield from (f"checks.{c}.rate" for c in sorted(names.checks))


def _unknown(text: str, names: PlanNames, offset: int = 0) -> RuleError:
    hint = did_you_mean(text, metric_names(names))
    return RuleError(
        "unknown-metric",
        f"unknown metric '{text}'",
        offset,
        'a metric of the catalogue (docs/dsl.md "Thresholds"), such as http.failed_rate, '
        "http.latency_ms.p95, actions.NAME.latency_ms.p95, progress.work, health.score",
        hint,
    )


def _named(text: str, kind: str, name: str, known: Iterable[str], offset: int) -> RuleError:
    listed = sorted(known)
    return RuleError(
        f"unknown-{kind.replace(' ', '-')}",
        f"unknown {kind} '{name}' in metric '{text}'",
        offset,
        f"one of the plan's {kind}s: {', '.join(listed)}" if listed else f"no {kind} in the plan",
        did_you_mean(name, listed),
    )


def _stat(text: str, family: str, name: str, stat: str, names: PlanNames) -> Metric:
    if stat not in LATENCY_STATS:
        raise _unknown(text, names)
    return Metric(family, name, stat)


def parse_metric(text: str, names: PlanNames) -> Metric:
    """The metric ``text`` names, checked against the plan; raises RuleError (offsets are
    within ``text``)."""
    if text in _PLAIN:
        return Metric(text)
    root, _, rest = text.partition(".")
    if root == "checks":
        if not names.checks:
            raise RuleError(
                "unknown-check",
                f"'{text}': no action of the plan has checks",
                0,
                'an action with a `checks:` list (docs/dsl.md "Captures and checks")',
            )
        if rest == "rate":
            return Metric("checks.rate")
        name, dot, field = rest.rpartition(".")
        if not dot or field != "rate" or not name:
            raise _unknown(text, names)
        if name not in names.checks:
            raise _named(text, "check", name, names.checks, len("checks."))
        return Metric("checks.check_rate", name)
    if root == "http" and rest.startswith("latency_ms."):
        return _stat(text, "http.latency_ms", "", rest[len("latency_ms.") :], names)
    if root == "http" and rest.startswith("status."):
        return _status(text, rest[len("status.") :], names)
    if root == "errors" and rest:
        if rest not in names.error_codes:
            raise _error_code(text, rest, names)
        return Metric("errors", rest)
    if root == "progress" and rest.startswith("milestones."):
        name = rest[len("milestones.") :]
        if name not in names.milestones:
            raise _named(text, "milestone", name, names.milestones, len("progress.milestones."))
        return Metric("progress.milestones.share", name)
    if root in ("actions", "scenarios"):
        return _of_element(text, root, rest, names)
    raise _unknown(text, names)


def _status(text: str, what: str, names: PlanNames) -> Metric:
    if what in STATUS_CLASSES:
        return Metric("http.status", what)
    if what.isdigit() and 100 <= int(what) <= 599 and len(what) == 3:
        return Metric("http.status", what)
    raise RuleError(
        "unknown-metric",
        f"unknown HTTP status '{what}' in metric '{text}'",
        len("http.status."),
        "a status class (1xx … 5xx, none: no HTTP status) or a code 100-599",
        did_you_mean(text, metric_names(names)),
    )


def _error_code(text: str, code: str, names: PlanNames) -> RuleError:
    err = _named(text, "error code", code, names.error_codes, len("errors."))
    err.expected = (
        "an error code wbsrun gives (network-timeout, http-5xx, …: docs/result.md errors.CODE) "
        "or one declared in progress.errors.transient / permanent"
    )
    return err


def _of_element(text: str, root: str, rest: str, names: PlanNames) -> Metric:
    name, dot, field = rest.partition(".")
    known = names.actions if root == "actions" else names.scenarios
    kind = "action" if root == "actions" else "scenario"
    if not dot or not name:
        raise _unknown(text, names)
    if name not in known:
        raise _named(text, kind, name, known, len(root) + 1)
    if field.startswith("latency_ms."):
        return _stat(text, f"{root}.latency_ms", name, field[len("latency_ms.") :], names)
    if field == "failed_rate":
        return Metric(f"{root}.failed_rate", name)
    if root == "actions" and field == "count":
        return Metric("actions.count", name)
    if root == "scenarios" and field in SCENARIO_COUNTS:
        return Metric(f"scenarios.{field}", name)
    if root == "scenarios" and field.startswith("progress."):
        dimension = field[len("progress.") :]
        if dimension in PROGRESS_FIELDS:
            return Metric("scenarios.progress", name, dimension)
    raise _unknown(text, names)


def render_value(value: float) -> str:
    """A number as a rule writes it: whole numbers without a fraction, others exactly."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def parse_value(text: str, metric: Metric | None) -> float:
    """The number a rule compares with: a number, or for a latency stat a duration (in ms)."""
    if _NUMBER_RE.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
    latency = metric is not None and metric.is_latency
    if latency and text[-1:].isalpha():
        try:
            return parse_duration(text) * 1000.0
        except UnitError:
            raise RuleError(
                "bad-duration",
                f"'{text}' is not a duration",
                0,
                "milliseconds as a number (200), or a duration (200ms, 1.5s)",
            ) from None
    expected = "a number"
    if text.endswith("%"):
        expected = "a number; rates and shares are fractions: 0.01, not 1%"
    elif metric is not None and metric.is_latency:
        expected = "milliseconds as a number (200), or a duration (200ms, 1.5s)"
    elif text[-1:].isalpha():
        expected = "a number (durations such as 200ms are for latency stats only)"
    raise RuleError("bad-value", f"'{text}' is not a number", 0, expected)


def parse_rule(text: str, names: PlanNames, prefix: str = "") -> tuple[Metric, str, float, str]:
    """(metric, operator, value, value as written) of ``METRIC OP VALUE``; with ``prefix``
    (k6's mapping form: the metric is the key) the rule is ``[SUFFIX] OP VALUE`` and the metric
    is ``prefix`` or ``prefix.SUFFIX``. Raises RuleError, offsets within ``text``."""
    head = len(text) - len(text.lstrip())
    match = _METRIC_RE.match(text, head)
    metric_text = match.group() if match else ""
    at = match.end() if match else head
    if not metric_text and not prefix:
        raise RuleError("malformed-threshold", f"'{text}' is not a rule", head, _RULE_EXAMPLE)
    op_start = len(text) - len(text[at:].lstrip())
    op_end = op_start
    while op_end < len(text) and text[op_end] in _OP_CHARS:
        op_end += 1
    op = text[op_start:op_end]
    if not op:
        what = "no comparison operator" if op_start >= len(text.rstrip()) else "unexpected text"
        raise RuleError(
            "malformed-threshold", f"'{text}' is not a rule: {what}", op_start, _RULE_EXAMPLE
        )
    if op not in OPERATORS:
        raise RuleError(
            "bad-operator",
            f"unknown operator '{op}' in '{text}'",
            op_start,
            " ".join(OPERATORS),
            _operator_hint(op),
        )
    value_text = text[op_end:].strip()
    value_at = len(text) - len(text[op_end:].lstrip())
    if not value_text or " " in value_text:
        raise RuleError(
            "malformed-threshold",
            f"'{text}' is not a rule: {'no value' if not value_text else 'one value expected'}",
            value_at,
            _RULE_EXAMPLE,
        )
    full = f"{prefix}.{metric_text}" if prefix and metric_text else prefix or metric_text
    try:
        metric = parse_metric(full, names)
    except RuleError as exc:
        # With a prefix, a mistake within it is the mapping key's (`in_prefix`).
        exc.in_prefix = bool(prefix) and exc.offset < len(prefix)
        if not prefix:
            exc.offset += head
        elif not exc.in_prefix:
            exc.offset = head + max(0, exc.offset - len(prefix) - 1)
        raise
    try:
        value = parse_value(value_text, metric)
    except RuleError as exc:
        exc.offset = value_at
        raise
    return metric, op, value, value_text


def _operator_hint(op: str) -> str | None:
    fixes = {"=": "==", "=<": "<=", "=>": ">=", "<>": "!=", "≤": "<=", "≥": ">=", "≠": "!="}
    fix = fixes.get(op)
    return f"did you mean '{fix}'?" if fix else None
