"""Task health (DSL §9) and the breach → risk escalation ladder, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["RISK_LADDER", "deviation", "error_rate", "health_score", "next_flag"]

# registers.risk.flag: none → identified (a breach) → escalated (`consecutive_breach` in a row).
RISK_LADDER: Final = ("none", "identified", "escalated")


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def health_score(progress: float, error_rate: float, deviation: float) -> float:
    """health = progress × 0.6 + (1 − error_rate) × 0.3 + (1 − deviation) × 0.1, each input
    clamped to [0, 1], so the score is in [0, 1]."""
    return (
        _clamp(progress) * 0.6 + (1.0 - _clamp(error_rate)) * 0.3 + (1.0 - _clamp(deviation)) * 0.1
    )


def error_rate(counters: Any, has_error: bool) -> float:
    """Failed share of the task's calls from `telemetry.counters` (failure + timeout over
    workload_units); without counters, 1 when the task carries an error, else 0."""
    if type(counters) is dict or isinstance(counters, Mapping):  # dict: skip the ABC check
        total = counters.get("workload_units") or 0
        if isinstance(total, int | float) and total > 0:
            bad = (counters.get("failure") or 0) + (counters.get("timeout") or 0)
            return _clamp(float(bad) / float(total))
    return 1.0 if has_error else 0.0


def deviation(progress: float, closed: bool, now: float, start: Any, deadline: Any) -> float:
    """How far the task is behind its plan, in [0, 1]. The plan: done when closed; while it
    runs, a straight line from `start_at` (0) to `timeout_at` (1). Ahead of plan is 0; without
    both times there is no plan to be behind."""
    if closed:
        planned = 1.0
    elif isinstance(start, int | float) and isinstance(deadline, int | float) and deadline > start:
        planned = _clamp((now - start) / (deadline - start))
    else:
        return 0.0
    return _clamp(planned - _clamp(progress))


def next_flag(current: Any, streak: int, consecutive: int) -> str:
    """The risk flag after a breach that makes the streak `streak` long."""
    if streak >= max(1, consecutive):
        return "escalated"
    return current if current in ("identified", "mitigating", "escalated") else "identified"
