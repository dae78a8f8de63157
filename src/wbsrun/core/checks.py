"""Captures and checks of one action call, run after its result is saved (executor
`_end_call`), only for actions that have them (`ActionSpec.response`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wbsrun.core import codes
from wbsrun.core.outcome import ActionOutcome
from wbsrun.core.stats import ActionStats
from wbsrun.core.task import Task
from wbsrun.dsl.checks import CaptureSpec, ResponseRules, capture, check

__all__ = ["respond"]


def _keep(task: Task, spec: CaptureSpec, value: Any) -> None:
    scope = spec.scope
    if scope == "workbook":
        task.entry.vars[spec.name] = value
    elif scope == "task-local":
        task.vars[spec.name] = value
    elif scope == "user-local":
        task.user.vars[spec.name] = value
    else:
        task.run.global_vars[spec.name] = value


def _captures(
    task: Task, action: str, rules: ResponseRules, result: Mapping[str, Any]
) -> str | None:
    """Keep every capture's value; the message of the first one that found nothing and
    may not (no default, not optional), None when all went well."""
    problem = None
    for spec in rules.captures:
        found, value = capture(spec, result)
        if not found:
            if spec.has_default:
                value = spec.default
            elif spec.optional:
                continue
            else:
                found_by = f"{spec.kind} '{spec.source}'"
                problem = problem or f"{action}: capture '{spec.name}': nothing found by {found_by}"
                continue
        _keep(task, spec, value)
    return problem


def _failed(outcome: ActionOutcome, code: str, message: str) -> ActionOutcome:
    return ActionOutcome(
        outcome.value,
        code,
        message,
        outcome.latency_ms,
        outcome.requests,
        outcome.status,
        outcome.bytes_sent,
        outcome.bytes_received,
    )


def respond(
    task: Task,
    action_name: str,
    rules: ResponseRules,
    outcome: ActionOutcome,
    ms: float,
    stats: ActionStats,
) -> ActionOutcome:
    """Run the action's captures (on a successful call) and count its checks (on every
    call: no answer fails each one but latency-below); the outcome, failed with
    `capture-failed` or `check-failed` (on-fail: error) when the call had not failed."""
    result = outcome.value
    problem: str | None = None
    if result is not None and outcome.error is None and rules.captures:
        message = _captures(task, action_name, rules, result)
        if message is not None:
            problem = codes.CAPTURE_FAILED + "\0" + message
    counts = stats.checks
    for spec in rules.checks:
        seen = check(spec, result, ms)
        pair = counts.get(spec.name)
        if pair is None:
            pair = counts[spec.name] = [0, 0]
        if seen is None:
            pair[0] += 1
            continue
        pair[1] += 1
        if spec.on_fail_error and problem is None:
            problem = f"{codes.CHECK_FAILED}\0{action_name}: check '{spec.name}' failed: {seen}"
    if problem is None or outcome.error is not None:
        return outcome
    code, _, message = problem.partition("\0")
    return _failed(outcome, code, message)
