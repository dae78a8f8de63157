"""Health (DSL §9) rolled up per user, scenario and program, with its trend.

`score = progress × 0.6 + (1 − error_rate) × 0.3 + (1 − deviation) × 0.1`, each input clamped
to [0, 1], at every level; the inputs of each level are defined in docs/progress-model.md
("Health"). The per-task score is the poller's (`wbsrun.poller._health`); the per-user one is
summed up by the aggregator (`Aggregator.user_health`, bounded: a summary and the worst few);
the scenario and program ones are built here from a progress snapshot and the run's request
counts (`progress.report.progress_snapshot`), and `HealthBook` keeps their recent history
for the trend: the least-squares slope of the score over the last `TREND_WINDOW_S` seconds,
per minute.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "TREND_MIN_SPAN_S",
    "TREND_SPACING_S",
    "TREND_WINDOW_S",
    "WEIGHTS",
    "WORST_USERS",
    "HealthBook",
    "HealthFigures",
    "HealthTrend",
    "RunHealth",
    "UserHealth",
    "health_score",
    "run_health",
]

# progress, (1 − error rate), (1 − deviation)
WEIGHTS: Final = (0.6, 0.3, 0.1)
# The trend: the slope over the samples of the last 30 s, once they span 3 s (None before);
# a sample is kept at most once a second, so a series holds at most ~31 of them.
TREND_WINDOW_S: Final = 30.0
TREND_MIN_SPAN_S: Final = 3.0
TREND_SPACING_S: Final = 1.0
# Users listed by name in the result: the lowest scores.
WORST_USERS: Final = 10


def _clamp(x: float) -> float:
    # NaN fails both comparisons: counted as 0, as the aggregator counts a NaN progress.
    return x if 0.0 <= x <= 1.0 else 1.0 if x > 1.0 else 0.0


def health_score(progress: float, error_rate: float, deviation: float) -> float:
    """The formula, each input clamped to [0, 1]: the score is in [0, 1]."""
    p, e, d = _clamp(progress), _clamp(error_rate), _clamp(deviation)
    return p * WEIGHTS[0] + (1.0 - e) * WEIGHTS[1] + (1.0 - d) * WEIGHTS[2]


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
    """Health of the program, or of one scenario, at one moment. `work`: the work progress;
    `planned`: the share of the plan due by now (None for a plan without a time line: no
    deviation); the error rate is failed requests over all requests (0 before the first)."""
    progress = _clamp(work)
    rate = _clamp(requests_failed / requests_total) if requests_total > 0 else 0.0
    dev = _clamp(planned - progress) if planned is not None else 0.0
    return RunHealth(health_score(progress, rate, dev), progress, rate, dev)


class HealthTrend:
    """Recent (t, score) samples of one series and their slope, per minute."""

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, t: float, score: float) -> None:
        """A sample at `t` seconds; one less than `TREND_SPACING_S` after the last is dropped
        (readers sample at their own pace), one earlier than the last starts afresh."""
        samples = self._samples
        if samples:
            last = samples[-1][0]
            if t < last:
                samples.clear()
            elif t - last < TREND_SPACING_S:
                return
        samples.append((t, score))
        while t - samples[0][0] > TREND_WINDOW_S:
            samples.popleft()

    def per_minute(self) -> float | None:
        """The least-squares slope of the window's samples × 60; None until they span
        `TREND_MIN_SPAN_S`."""
        samples = self._samples
        if len(samples) < 2 or samples[-1][0] - samples[0][0] < TREND_MIN_SPAN_S:
            return None
        n = float(len(samples))
        mean_t = sum(t for t, _ in samples) / n
        mean_s = sum(s for _, s in samples) / n
        var = sum((t - mean_t) ** 2 for t, _ in samples)
        cov = sum((t - mean_t) * (s - mean_s) for t, s in samples)
        return cov / var * 60.0 if var > 0.0 else None


@dataclass(frozen=True, slots=True)
class UserHealth:
    """The per-user scores, bounded: how many, their minimum, 10th and 50th percentiles
    (nearest rank) and mean, and the `WORST_USERS` lowest as (user id, scenario, score),
    lowest first (ties by user id)."""

    count: int
    min: float
    p10: float
    p50: float
    mean: float
    worst: tuple[tuple[str, str, float], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "min": round(self.min, 4),
            "p10": round(self.p10, 4),
            "p50": round(self.p50, 4),
            "mean": round(self.mean, 4),
            "worst": [
                {"user_id": uid, "scenario": sc, "score": round(score, 4)}
                for uid, sc, score in self.worst
            ],
        }


def _trend_json(trend: float | None) -> float | None:
    return None if trend is None else round(trend, 4)


@dataclass(frozen=True, slots=True)
class HealthFigures:
    """The program's health and trend, and each scenario's (in plan order)."""

    program: RunHealth
    trend: float | None
    scenarios: tuple[tuple[str, RunHealth, float | None], ...] = ()

    def scenario(self, name: str) -> RunHealth | None:
        for sc, health, _ in self.scenarios:
            if sc == name:
                return health
        return None

    def to_json(self, users: UserHealth | None = None) -> dict[str, Any]:
        """The result's `health` object; `users` null when the per-user figures are not
        here (a `--workers` run keeps them in the workers)."""
        return {
            **self.program.to_json(),
            "trend": _trend_json(self.trend),
            "scenarios": {
                name: {**health.to_json(), "trend": _trend_json(trend)}
                for name, health, trend in self.scenarios
            },
            "users": users.to_json() if users is not None else None,
        }


class HealthBook:
    """The trends of the program and of each scenario: fed by every progress snapshot (the
    live line, the time series, a metrics scrape, the result), whose samples it thins to one
    a second."""

    __slots__ = ("_program", "_scenarios")

    def __init__(self) -> None:
        self._program = HealthTrend()
        self._scenarios: dict[str, HealthTrend] = {}

    def figures(
        self, elapsed: float, program: RunHealth, scenarios: Mapping[str, RunHealth]
    ) -> HealthFigures:
        self._program.add(elapsed, program.score)
        rows = []
        for name, health in scenarios.items():
            trend = self._scenarios.get(name)
            if trend is None:
                trend = self._scenarios[name] = HealthTrend()
            trend.add(elapsed, health.score)
            rows.append((name, health, trend.per_minute()))
        return HealthFigures(program, self._program.per_minute(), tuple(rows))
