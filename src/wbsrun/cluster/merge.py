"""The coordinator's merged view: the workers' deltas added up, their latest gauges summed.

`ClusterState` is transport-free (Ray reuses it): `apply(report)` for every report received,
then the merged `RunStats`, progress sums and per-process sections are what the coordinator's
run exposes. At the end `check()` compares the figures merged from deltas with the totals each
worker counted itself: equal, or the run says what differs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wbsrun.cluster.delta import merge_delta, totals
from wbsrun.cluster.protocol import Report
from wbsrun.core.stats import RunStats
from wbsrun.progress.aggregate import ScenarioSums

__all__ = ["ClusterState", "WorkerView", "merge_json"]


@dataclass(slots=True)
class WorkerView:
    """One worker as the coordinator knows it: its last report's gauges and its fate."""

    index: int
    pid: int = 0
    # Users of its segment (planned), and those that finished, as of its last report.
    users: int = 0
    users_finished: int = 0
    reports: int = 0
    last: Report | None = None
    # "starting" | "running" | "completed" | "failed"
    status: str = "starting"
    reason: str | None = None
    exit_code: int | None = None
    totals: dict[str, object] | None = None
    last_seen: float = 0.0


@dataclass(slots=True)
class ClusterState:
    count: int
    stats: RunStats = field(default_factory=RunStats)
    workers: list[WorkerView] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workers = [WorkerView(i) for i in range(self.count)]

    def apply(self, report: Report) -> None:
        """One report: its delta added (exactly once: reports are in order on one channel),
        its gauges kept as the worker's latest."""
        w = self.workers[report.worker]
        merge_delta(self.stats, report.stats)
        w.reports += 1
        w.last = report
        w.users = report.users
        w.users_finished += report.stats.counters.get("users_finished", 0)
        for name in report.stats.arrivals:
            # Per-worker gauges of an arrival scenario: its share of the rate and the plan.
            parts = [
                x.last.stats.arrivals[name]
                for x in self.workers
                if x.last is not None and name in x.last.stats.arrivals
            ]
            a = self.stats.arrivals[name]
            a.asked_per_second = sum(p.asked_per_second for p in parts)
            a.planned = sum(p.planned for p in parts)
        if report.final:
            w.totals = report.totals
            if w.status != "failed":
                w.status = "completed"

    def _latest(self) -> list[Report]:
        return [w.last for w in self.workers if w.last is not None]

    def progress_parts(self) -> list[Mapping[str, ScenarioSums]]:
        return [r.progress for r in self._latest()]

    def _running(self) -> list[Report]:
        """The latest reports of the workers still running: a finished worker has no user
        left, a failed one's are lost (its last gauges are no longer true)."""
        return [
            w.last
            for w in self.workers
            if w.last is not None and not w.last.final and w.status != "failed"
        ]

    def active(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self._running():
            for name, n in r.active.items():
                out[name] = out.get(name, 0) + n
        return out

    def inflight(self) -> tuple[int, float]:
        live = self._running()
        return sum(r.inflight for r in live), sum(r.inflight_progress for r in live)

    def progress_done(self) -> float:
        return sum(r.progress_done for r in self._latest())

    def leases(self) -> int:
        return sum(r.leases for r in self._running())

    def sections(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for r in self._latest():
            out = merge_json(out, r.sections)
        return out

    def section(self, name: str) -> Any:
        """One of `sections()` (cheaper: the others are not merged)."""
        out: Any = {}
        for r in self._latest():
            out = merge_json(out, r.sections.get(name, {}))
        return out

    def check(self) -> list[str]:
        """Where the merged figures differ from the sum of the workers' own totals (empty:
        exact). Only workers that completed have totals; a failed one's deltas are counted as
        received, and the run is failed anyway."""
        own = [w.totals for w in self.workers if w.totals is not None]
        if len(own) != len(self.workers):
            return []
        summed: dict[str, Any] = {}
        for t in own:
            summed = merge_json(summed, t, peaks=False)
        merged = totals(self.stats)
        return [
            f"{key}: merged {merged.get(key)!r}, workers counted {summed.get(key)!r}"
            for key in sorted(set(summed) | set(merged))
            if merged.get(key, 0) != summed.get(key, 0)
        ]


def _highest(key: object) -> bool:
    """Figures that are a peak, not a count: latency percentiles, batch and queue maxima."""
    if not isinstance(key, str):
        return False  # e.g. an HTTP status: a count
    return "latency" in key or key.startswith("max") or key.endswith("_max")


def merge_json(a: Any, b: Any, key: object = None, *, peaks: bool = True) -> Any:
    """Two workers' per-process figures as one: numbers added (counts, seconds, bytes), but
    the highest kept under a peak's key (`latency…`, `max…`, `…_max`); lists joined; mappings
    merged key by key; a text (or any other value) that differs keeps the first. `peaks`
    False: every number added (totals)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            # A copy: the merged document may be changed; the reports it came from may not.
            peak = k if peaks and _highest(k) else key
            out[k] = merge_json(a[k], v, peak, peaks=peaks) if k in a else copy.deepcopy(v)
        return out
    if isinstance(a, bool) or isinstance(b, bool):
        return a or b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return max(a, b) if peaks and _highest(key) else a + b
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    return a if a is not None else b
