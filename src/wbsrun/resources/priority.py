"""Priorities recomputed from each scenario's health while the run goes (a Service).

Every `TICK_S` the service reads each scenario's running sums (no side effect on the ETA's
pace sampling) and its request errors, forms the health score of progress-model §9
(`progress × 0.6 + (1 − error_rate) × 0.3 + (1 − deviation) × 0.1`) and gives the scheduler
`business-value × (2 − health)` (resources/sched.py)."""

from __future__ import annotations

import asyncio
from typing import Final

from wbsrun.core.runner import Runner
from wbsrun.progress.aggregate import Aggregator, ScenarioSums
from wbsrun.progress.baseline import ScenarioBaseline
from wbsrun.progress.health import run_health
from wbsrun.resources.sched import Scheduling

__all__ = ["TICK_S", "PriorityService", "scenario_health"]

TICK_S: Final = 0.5


def scenario_health(
    base: ScenarioBaseline, sums: ScenarioSums | None, elapsed: float, requests: int, failed: int
) -> float:
    """One scenario's health score now: its work over the passes planned (or, time-boxed,
    projected from the share of its profile elapsed), its deviation from its time line and
    its request error rate."""
    total = sums.total if sums is not None else 0.0
    started = sums.started if sums is not None else 0
    expected: float | None
    if base.planned_tasks is not None:
        expected = float(base.planned_tasks)
    else:
        share = base.profile_share(elapsed)
        expected = started / share if share > 0.0 and started else None
    work = min(1.0, total / expected) if expected else 0.0
    planned = min(1.0, elapsed / base.duration) if base.duration else None
    return run_health(work, planned, requests, failed).score


class PriorityService:
    """A Service: the scheduler's priorities follow the scenarios' health."""

    def __init__(self, runner: Runner, aggregator: Aggregator, scheduling: Scheduling) -> None:
        self.runner = runner
        self.aggregator = aggregator
        self.scheduling = scheduling

    def update(self) -> None:
        sums = self.aggregator.sums()
        elapsed = self.runner.elapsed
        stats = self.runner.ctx.stats
        for base in self.aggregator.baselines:
            actions = stats.scenarios.get(base.name, {})
            requests = sum(a.requests for a in actions.values())
            failed = sum(a.requests_failed for a in actions.values())
            health = scenario_health(base, sums.get(base.name), elapsed, requests, failed)
            self.scheduling.set_health(base.name, health)

    async def serve(self) -> None:
        finished = self.runner.ctx.finished
        while not finished.is_set():
            self.update()
            try:
                async with asyncio.timeout(TICK_S):
                    await finished.wait()
            except TimeoutError:
                pass
        self.update()
