"""The run's health score (DSL §9) from its progress, request errors and deviation from plan."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunHealth", "run_health"]


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


@dataclass(frozen=True, slots=True)
class RunHealth:
    """`score = progress × 0.6 + (1 − error_rate) × 0.3 + (1 − deviation) × 0.1` and its inputs,
    each in [0, 1]."""

    score: float
    progress: float
    error_rate: float
    deviation: float

    def to_json(self) -> dict[str, float]:
        return {
            "score": round(self.score, 4),
            "progress": round(self.progress, 4),
            "error_rate": round(self.error_rate, 4),
            "deviation": round(self.deviation, 4),
        }


def run_health(
    work: float, planned: float | None, requests_total: int, requests_failed: int
) -> RunHealth:
    """The program's health at one moment. `work`: the work progress; `planned`: the share of
    the plan due by now (the time progress; None for a plan without a time line: no deviation);
    the error rate is failed requests over all requests (0 before the first)."""
    progress = _clamp(work)
    rate = _clamp(requests_failed / requests_total) if requests_total > 0 else 0.0
    dev = _clamp(planned - progress) if planned is not None else 0.0
    score = progress * 0.6 + (1.0 - rate) * 0.3 + (1.0 - dev) * 0.1
    return RunHealth(score, progress, rate, dev)
