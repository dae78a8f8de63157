"""A worker's side: run its segment, report every `REPORT_INTERVAL`, obey the coordinator.

`serve_worker` is what a worker process runs once its plan is wired (cli/worker.py builds the
run exactly as `wbsrun run` does, on its segment): say `Ready`, wait for `Go`, run while a
`Reporter` sends a delta every interval, and send the final report (with the worker's own
totals) when the run ends. A `Drain` is the graceful stop, an `Abort` cancels the run (its
passes counted as interrupted), and a coordinator that disappears stops the worker too: a
worker never runs on orphaned. `Pause`, `Resume` and `Scale` go to the worker's own
`RunControl` (a scale with its segment's share); the next report acknowledges them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from wbsrun.cluster.delta import DeltaTaker, totals
from wbsrun.cluster.links import Link
from wbsrun.cluster.protocol import (
    REPORT_INTERVAL,
    Abort,
    Drain,
    Go,
    Pause,
    Ready,
    Report,
    Resume,
    Scale,
)
from wbsrun.core.control import ControlError
from wbsrun.core.runner import Runner
from wbsrun.progress.aggregate import Aggregator

__all__ = ["Reporter", "serve_worker"]


class Reporter:
    """Builds this worker's reports: the delta since the last one and the gauges now."""

    def __init__(
        self,
        index: int,
        runner: Runner,
        aggregator: Aggregator,
        sections: Callable[[], dict[str, Any]],
        leases: Callable[[], int],
        users: int,
    ) -> None:
        self.index = index
        self.users = users  # planned, before the run's schedulers say it
        self.runner = runner
        self.aggregator = aggregator
        self.sections = sections
        self.leases = leases
        self.taker = DeltaTaker()
        self.seq = 0
        self.control = 0  # the last control message applied (acknowledged in the next report)
        self.refused: list[str] = []

    def report(self, *, final: bool = False) -> Report:
        runner = self.runner
        ctx = runner.ctx
        st = ctx.stats
        self.seq += 1
        return Report(
            worker=self.index,
            seq=self.seq,
            stats=self.taker.take(st),
            progress=self.aggregator.sums(),
            active={s.scenario.name: s.active for s in runner.schedulers},
            inflight=len(ctx.inflight),
            inflight_progress=sum(ctx.inflight.values()),
            progress_done=ctx.progress_done,
            elapsed=runner.elapsed,
            users=runner.planned_users(),
            leases=self.leases(),
            interrupted=runner.interrupted,
            sections=self.sections(),
            final=final,
            totals=totals(st) if final else None,
            control=self.control,
            paused=runner.control.paused,
            refused=self._take_refused(),
        )

    def _take_refused(self) -> tuple[str, ...]:
        refused, self.refused = tuple(self.refused), []
        return refused

    def steer(self, message: Pause | Resume | Scale) -> None:
        """A control message the coordinator forwarded, applied by this worker's own
        `RunControl`; a refusal (this worker's part is over, say) is reported, not raised."""
        control = self.runner.control
        try:
            if isinstance(message, Pause):
                control.pause()
            elif isinstance(message, Resume):
                control.resume()
            else:
                control.scale(message.scenario, self._share(message.scenario, message.users))
        except ControlError as exc:
            self.refused.append(exc.message)
        self.control = max(self.control, message.seq)

    def _share(self, scenario: str, users: int) -> int:
        for s in self.runner.schedulers:
            if s.scenario.name == scenario:
                return s.plan.share(users)
        return users  # not this run's: RunControl says so

    async def stream(self, link: Link, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if not link.send(self.report()):
                return


async def serve_worker(
    link: Link, reporter: Reporter, *, interval: float = REPORT_INTERVAL
) -> None:
    """Ready, wait for Go, run and report; the final report is sent whatever ended the run."""
    loop = asyncio.get_running_loop()
    runner = reporter.runner
    main = asyncio.current_task()
    go = asyncio.Event()
    gone = False

    def on_message(message: object) -> None:
        if isinstance(message, Go):
            go.set()
        elif isinstance(message, Drain):
            runner.drain()
        elif isinstance(message, Pause | Resume | Scale):
            reporter.steer(message)
        elif isinstance(message, Abort) and main is not None:
            runner.interrupted = True
            main.cancel()

    def on_closed() -> None:
        nonlocal gone
        gone = True  # the coordinator is gone: nobody reads the results
        if main is not None:
            main.cancel()

    link.listen(loop, on_message, on_closed, name="wbsrun-coordinator")
    link.send(Ready(reporter.index, os.getpid(), reporter.users))
    try:
        await go.wait()
        stream = asyncio.create_task(reporter.stream(link, interval))
        try:
            await runner.run()
        finally:
            stream.cancel()
    except asyncio.CancelledError:
        runner.interrupted = True
    if not gone:
        link.send(reporter.report(final=True))
