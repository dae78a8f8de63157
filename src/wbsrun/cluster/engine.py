"""The workers' engine figures (progress bus, poller) rebuilt from their merged JSON, in the
shapes the metrics exporter reads (`statistics()`, `gauges()`): so a `--workers` run's
`wbsrun_bus_*` and `wbsrun_poller_*` series are the workers', added up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wbsrun.core.bus import BusStatistics

__all__ = ["PollerFigures", "PollerGauges", "bus_figures", "poller_figures"]


def _counts(d: Mapping[str, Any], key: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in (d.get(key) or {}).items()}


def _floats(d: Mapping[str, Any], key: str) -> dict[str, float]:
    return {str(k): float(v) for k, v in (d.get(key) or {}).items()}


def bus_figures(d: Mapping[str, Any]) -> BusStatistics:
    """`BusStatistics.as_dict()`, merged over the workers, back as statistics."""
    return BusStatistics(
        published=int(d.get("published", 0)),
        coalesced=int(d.get("coalesced", 0)),
        events=int(d.get("events", 0)),
        delivered=int(d.get("delivered", 0)),
        dropped=int(d.get("dropped", 0)),
        pending=int(d.get("pending", 0)),
        subscribers=int(d.get("subscribers", 0)),
        flushes=_counts(d, "flushes"),
        max_batch=int(d.get("max_batch", 0)),
        latency_ms=_floats(d, "latency_ms"),
        latency_high_ms=_floats(d, "latency_high_ms"),
    )


@dataclass(frozen=True, slots=True)
class PollerFigures:
    """The poller's statistics (the fields of `wbsrun.poller.PollerStatistics`, which this
    sibling adapter may not import)."""

    events: int
    checks: Mapping[str, int]
    served: Mapping[str, int]
    latency_ms: Mapping[str, float]
    queue_max: int
    live: int
    breaches: int
    identified: int
    escalations: int
    deadlines_passed: int
    overdue: int


@dataclass(frozen=True, slots=True)
class PollerGauges:
    queue: int
    inbox: int


def poller_figures(d: Mapping[str, Any]) -> PollerFigures:
    return PollerFigures(
        events=int(d.get("events", 0)),
        checks=_counts(d, "checks"),
        served=_counts(d, "served"),
        latency_ms=_floats(d, "latency_ms"),
        queue_max=int(d.get("queue_max", 0)),
        live=int(d.get("live", 0)),
        breaches=int(d.get("breaches", 0)),
        identified=int(d.get("identified", 0)),
        escalations=int(d.get("escalations", 0)),
        deadlines_passed=int(d.get("deadlines_passed", 0)),
        overdue=int(d.get("overdue", 0)),
    )
