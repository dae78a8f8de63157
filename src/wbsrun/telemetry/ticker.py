"""Driving the time series: a run service that samples the run into a `Series` every second."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from wbsrun.core.runner import Runner
from wbsrun.progress.aggregate import Aggregator
from wbsrun.progress.report import progress_snapshot, snap_health
from wbsrun.progress.series import Series

__all__ = ["SeriesTicker"]


class SeriesTicker:
    """A `Service` of the run (`runner.services`): a `Series` sample every `interval` seconds
    of run time, on a fixed grid (t ≈ 1, 2, 3 … s), until the last user is done; `finish()`
    after the run adds the final point, so the series covers the whole run. It waits on the
    run's `finished` event, so it never holds the run up, and a sample costs one progress
    snapshot and one merge of the action histograms (~tens of µs a second)."""

    def __init__(
        self,
        runner: Runner,
        aggregator: Aggregator | None = None,
        series: Series | None = None,
        *,
        leases: Callable[[], int] | None = None,
        interval: float = 1.0,
    ) -> None:
        self.runner = runner
        self.aggregator = aggregator
        self.series = series if series is not None else Series(interval)
        self.interval = interval
        # Leases held now; by default those the run's lease book binds to passes.
        self._leases = leases if leases is not None else self._book_leases
        # Called after each sample with the series (live thresholds, exporters): cheap, and
        # must not raise (it runs in the run's task group).
        self.listeners: list[Callable[[Series], None]] = []
        self._finished = False

    def _book_leases(self) -> int:
        book = self.runner.ctx.leases
        if book is None:
            return 0
        return sum(s.get("held", 0) for s in book.statistics().values())

    async def serve(self) -> None:
        ctx = self.runner.ctx
        finished = ctx.finished
        tick = 1
        while not finished.is_set():
            delay = ctx.t0 + tick * self.interval - ctx.clock()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await finished.wait()
                    return
                except TimeoutError:
                    pass
            self.sample()
            # A loop stalled past several ticks takes one sample, then the next grid time.
            tick = max(tick + 1, math.floor((ctx.clock() - ctx.t0) / self.interval) + 1)

    def sample(self) -> None:
        """One point: the run's figures now."""
        runner = self.runner
        st = runner.ctx.stats
        snap = progress_snapshot(runner, self.aggregator)
        planned = snap.planned
        detail = snap.detail
        health = snap_health(snap, st)
        fc = detail.forecast if detail is not None else None
        self.series.sample(
            snap.elapsed,
            requests=st.requests_total,
            failed=st.requests_failed,
            errors=st.errors,
            latency=st.all_requests().latency,
            users=snap.active_users,
            work=snap.work,
            time=snap.time,
            planned=planned,
            milestones=detail.milestones_weighted if detail is not None else None,
            eta_s=snap.eta_s,
            health=health.program.score,
            health_trend=health.trend,
            health_scenarios={name: h.score for name, h, _ in health.scenarios},
            leases=self._leases(),
            paused_s=snap.paused_s,
            eta_low_s=fc.eta_low_s if fc is not None else None,
            eta_high_s=fc.eta_high_s if fc is not None else None,
            forecast_progress=fc.final_progress if fc is not None else None,
        )
        for listener in self.listeners:
            listener(self.series)

    def finish(self) -> Series:
        """The final point, once the run has ended (again: a no-op); the series."""
        if not self._finished and self.runner.ended_at is not None:
            self._finished = True
            if self.runner.elapsed > self.series.last_t or not len(self.series):
                self.sample()
        return self.series
