"""Task health (DSL §9) and the breach → risk escalation ladder, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "RISK_LADDER",
    "counts_rate",
    "deviation",
    "error_rate",
    "health_score",
    "next_flag",
    "rated_health",
    "task_health",
]

# registers.risk.flag: none → identified (a breach) → escalated (`consecutive_breach` in a row).
RISK_LADDER: Final = ("none", "identified", "escalated")
# A tuple, not `int | float`: the union is built anew at every evaluation.
_NUMBER: Final = (int, float)


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def health_score(progress: float, error_rate: float, deviation: float) -> float:
    """health = progress × 0.6 + (1 − error_rate) × 0.3 + (1 − deviation) × 0.1, each input
    clamped to [0, 1], so the score is in [0, 1]."""
    # `_clamp` written out: this runs on every health check, and a call costs more than it.
    p = 0.0 if progress < 0.0 else 1.0 if progress > 1.0 else progress
    e = 0.0 if error_rate < 0.0 else 1.0 if error_rate > 1.0 else error_rate
    d = 0.0 if deviation < 0.0 else 1.0 if deviation > 1.0 else deviation
    return p * 0.6 + (1.0 - e) * 0.3 + (1.0 - d) * 0.1


def error_rate(counters: Any, has_error: bool) -> float:
    """Failed share of the task's calls from `telemetry.counters` (failure + timeout over
    workload_units); without counters, 1 when the task carries an error, else 0."""
    if type(counters) is dict or isinstance(counters, Mapping):  # dict: skip the ABC check
        total = counters.get("workload_units") or 0
        if isinstance(total, _NUMBER) and total > 0:
            bad = (counters.get("failure") or 0) + (counters.get("timeout") or 0)
            return _clamp(float(bad) / float(total))
    return 1.0 if has_error else 0.0


def deviation(progress: float, closed: bool, now: float, start: Any, deadline: Any) -> float:
    """How far the task is behind its plan, in [0, 1]. The plan: done when closed; while it
    runs, a straight line from `start_at` (0) to `timeout_at` (1). Ahead of plan is 0; without
    both times there is no plan to be behind."""
    if closed:
        planned = 1.0
    elif isinstance(start, _NUMBER) and isinstance(deadline, _NUMBER) and deadline > start:
        planned = _clamp((now - start) / (deadline - start))
    else:
        return 0.0
    done = 0.0 if progress < 0.0 else 1.0 if progress > 1.0 else progress
    behind = planned - done
    return 0.0 if behind < 0.0 else 1.0 if behind > 1.0 else behind


def task_health(
    progress: float,
    counters: Any,
    has_error: bool,
    closed: bool,
    now: float,
    start: Any,
    deadline: Any,
) -> float:
    """`health_score(progress, error_rate(counters, has_error), deviation(progress, closed,
    now, start, deadline))` in one call, with the same arithmetic in the same order (so the
    same float): the poller computes it on every health check."""
    if type(counters) is dict or isinstance(counters, Mapping):
        rate = counts_rate(
            counters.get("workload_units"),
            counters.get("failure"),
            counters.get("timeout"),
            has_error,
        )
    else:
        rate = 1.0 if has_error else 0.0
    return rated_health(progress, rate, closed, now, start, deadline)


def counts_rate(units: Any, failure: Any, timeout: Any, has_error: bool) -> float:
    """`error_rate` from the three counters it reads (None where one is absent)."""
    total = units or 0
    if isinstance(total, _NUMBER) and total > 0:
        bad = (failure or 0) + (timeout or 0)
        rate = float(bad) / float(total)
        return 0.0 if rate < 0.0 else 1.0 if rate > 1.0 else rate
    return 1.0 if has_error else 0.0


def rated_health(
    progress: float, rate: float, closed: bool, now: float, start: Any, deadline: Any
) -> float:
    """`task_health` once the error rate (in [0, 1]) is known."""
    p = 0.0 if progress < 0.0 else 1.0 if progress > 1.0 else progress
    if closed:
        behind = 1.0 - p
        dev = 0.0 if behind < 0.0 else 1.0 if behind > 1.0 else behind
    elif isinstance(start, _NUMBER) and isinstance(deadline, _NUMBER) and deadline > start:
        planned = (now - start) / (deadline - start)
        planned = 0.0 if planned < 0.0 else 1.0 if planned > 1.0 else planned
        behind = planned - p
        dev = 0.0 if behind < 0.0 else 1.0 if behind > 1.0 else behind
    else:
        dev = 0.0
    # Both already in [0, 1]: health_score's clamps would return them unchanged.
    return p * 0.6 + (1.0 - rate) * 0.3 + (1.0 - dev) * 0.1


def next_flag(current: Any, streak: int, consecutive: int) -> str:
    """The risk flag after a breach that makes the streak `streak` long."""
    if streak >= max(1, consecutive):
        return "escalated"
    return current if current in ("identified", "mitigating", "escalated") else "identified"
