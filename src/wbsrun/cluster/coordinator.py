"""The coordinator: a `Runner` whose users run in worker processes.

`ClusterRunner` is the run the CLI wires, watches and reports exactly as a one-process one:
the live line, the time series ticker, the metrics exporter, the thresholds and `build_result`
read its `ctx.stats`, schedulers and aggregator as they read a local run's. Those are not fed
by users here but by the workers' reports: the merged `RunStats` (`ClusterState.stats`) is
`ctx.stats`; the aggregator holds the summed progress sums; each mirror scheduler (built for
the whole plan, never run) has its scenario's active users. So one code path builds the
result; only the per-process sections (resources, ledger, persist, logs, engine) come from the
workers (`complete`). A worker that dies is a failed segment: its users are counted as lost,
the run's status is `failed`; the run never waits on a dead or silent worker.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from wbsrun.cluster.control import ClusterControl
from wbsrun.cluster.engine import (
    PollerFigures,
    PollerGauges,
    bus_figures,
    poller_figures,
)
from wbsrun.cluster.links import Workers
from wbsrun.cluster.merge import ClusterState, merge_json
from wbsrun.cluster.protocol import Abort, Drain, Failed, Go, Ready, Report
from wbsrun.cluster.transport import WorkerProcesses, exit_reason
from wbsrun.core.bus import BusStatistics
from wbsrun.core.log import RunLog
from wbsrun.core.runner import DEFAULT_GRACEFUL_STOP, Runner, RunOptions
from wbsrun.core.scheduler import Scheduler, spawn_plan
from wbsrun.dsl.plan import Plan
from wbsrun.errors import RunError
from wbsrun.progress.aggregate import Aggregator

__all__ = ["READY_TIMEOUT", "SILENCE_TIMEOUT", "BusView", "ClusterRunner", "PollerView"]

# Longest wait for every worker to load the plan and report ready.
READY_TIMEOUT = 120.0
# A worker that sends nothing for this long is hung: it is killed and its segment failed.
SILENCE_TIMEOUT = 15.0
# After the last report (or an abort), how long workers may take to exit before a SIGKILL.
EXIT_WAIT = 5.0
# The per-process sections of the result, taken from the workers' reports.
SECTIONS = ("resources", "ledger", "persist", "engine")


class ClusterRunner(Runner):
    """Runs `plan` in `len(jobs)` worker processes (`target(conn, job)`, see cli/worker.py)
    and mirrors their merged figures."""

    def __init__(
        self,
        plan: Plan,
        log: RunLog,
        options: RunOptions,
        aggregator: Aggregator,
        target: Callable[[Connection, Any], None],
        jobs: Sequence[object],
        *,
        silence: float = SILENCE_TIMEOUT,
        workers: Workers | None = None,
    ) -> None:
        # The mirror keeps no entries and writes no ledger: the workers do.
        mirror = replace(options, sampling="aggregated", out_dir=None)
        self.options_out = options.out_dir
        super().__init__(plan, {}, None, log, mirror)
        self.ctx.leases = None
        self.run_log = log
        self.aggregator = aggregator
        self.state = ClusterState(len(jobs))
        self.ctx.stats = self.state.stats
        # Another transport's workers (Ray actors: raylink.py), else worker processes.
        self.processes: Workers = workers or WorkerProcesses(target, jobs)
        # Live control: the coordinator's state, each call forwarded to the workers.
        self.steering = ClusterControl(self, self.state, self._send_all)
        self.control = self.steering
        self._changed = asyncio.Event()
        self.lost_users = 0
        self.silence = silence

    # -- the run ----------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        links = self.processes.start()
        for i, link in enumerate(links):
            link.listen(
                loop,
                functools.partial(self._on_message, i),
                functools.partial(self._on_closed, i),
                name=f"wbsrun-link-{i}",
            )
        jobs: list[asyncio.Task[None]] = []
        try:
            await self._wait_ready()
            self._start_mirror()
            early = self.steering.before_start()
            for i, link in enumerate(links):
                if not all(link.send(m) for m in (*early, Go())):
                    self._fail(i, "its pipe closed before the start")
            # The services (ticker, bus, poller) run meanwhile, as a local run's do.
            jobs = [asyncio.create_task(svc.serve()) for svc in self.services]
            try:
                await self._until_done()
            except asyncio.CancelledError:
                # A second signal: every worker cancels its passes and sends its final report.
                self.interrupted = True
                self._send_all(Abort())
                await self._until_done(EXIT_WAIT)
                raise
        except BaseException:
            self._send_all(Abort())
            raise
        finally:
            await self._end(jobs)

    def _send_all(self, message: object) -> None:
        for i, link in enumerate(self.processes.links):
            if self.state.workers[i].status in ("starting", "running"):
                link.send(message)

    async def _until_done(self, limit: float | None = None) -> None:
        """Until every worker has sent its final report or failed; with `limit`, those still
        running after it are killed and failed."""
        due = time.monotonic() + limit if limit is not None else None
        while not all(w.status in ("completed", "failed") for w in self.state.workers):
            await self._wait_change(0.5)
            self._check_silence()
            if due is not None and time.monotonic() > due:
                for w in self.state.workers:
                    if w.status == "running":
                        self.processes.kill(w.index)
                        self._fail(w.index, f"did not stop within {limit:g}s (killed)")

    async def _end(self, jobs: list[asyncio.Task[None]]) -> None:
        ctx = self.ctx
        if ctx.t0:
            ends = [ctx.t0 + (w.last.elapsed if w.last else 0.0) for w in self.state.workers]
            self.ended_at = max([*ends, ctx.t0])
        else:
            self.ended_at = ctx.clock()
        ctx.finished.set()
        if jobs:
            _, late = await asyncio.wait(jobs, timeout=self.options.service_grace)
            for job in late:
                job.cancel()
        await asyncio.to_thread(self.processes.close, EXIT_WAIT)
        self._settle_exits()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            failed = [w for w in self.state.workers if w.status == "failed"]
            if failed:
                raise RunError(
                    "; ".join(f"worker {w.index} could not start: {w.reason}" for w in failed)
                )
            if all(w.status == "running" for w in self.state.workers):
                return
            if time.monotonic() > deadline:
                raise RunError(f"workers not ready after {READY_TIMEOUT:g}s")
            await self._wait_change(1.0)

    def _start_mirror(self) -> None:
        """The clock starts, and a scheduler per scenario for the whole plan (never run: the
        planned users, tasks and windows that progress and ETA read)."""
        ctx, options = self.ctx, self.options
        ctx.t0 = ctx.clock()
        self.started_wall = time.time()
        deadline = ctx.t0 + options.duration if options.duration else None
        several = len(self.plan.scenarios) > 1
        grace = options.graceful_stop
        self.schedulers = [
            Scheduler(
                ctx,
                s,
                i,
                spawn_plan(s, options.users),
                deadline,
                prefix=f"s{i + 1}-" if several else "",
                grace=_grace(grace, s.graceful_stop),
            )
            for i, s in enumerate(self.plan.scenarios)
        ]
        for w in self.state.workers:
            w.last_seen = time.monotonic()

    async def _wait_change(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            pass
        self._changed.clear()

    def _check_silence(self) -> None:
        now = time.monotonic()
        for w in self.state.workers:
            if w.status == "running" and now - w.last_seen > self.silence:
                self.processes.kill(w.index)
                self._fail(w.index, f"sent nothing for {self.silence:g}s (killed)")

    def drain(self) -> None:
        """The graceful stop, for every worker."""
        super().drain()
        self._send_all(Drain())

    # -- messages -----------------------------------------------------------------------------
    def _on_message(self, i: int, message: object) -> None:
        w = self.state.workers[i]
        w.last_seen = time.monotonic()
        if isinstance(message, Report):
            if w.status == "failed":
                return  # a late report of a worker already given up: not counted
            self.state.apply(message)
            for why in message.refused:
                self.run_log.log("warn", f"worker {i}: control refused: {why}")
            self._mirror()
        elif isinstance(message, Ready):
            w.pid, w.users, w.status = message.pid, message.users, "running"
        elif isinstance(message, Failed):
            self._fail(i, message.message)
        self._changed.set()

    def _on_closed(self, i: int) -> None:
        w = self.state.workers[i]
        if w.status not in ("completed", "failed"):
            code = self.processes.exit_code(i, 0.5)
            w.exit_code = code
            self._fail(i, f"the worker process {exit_reason(code)}")
        self._changed.set()

    def _fail(self, i: int, reason: str) -> None:
        w = self.state.workers[i]
        if w.status in ("completed", "failed"):
            return
        w.status, w.reason = "failed", reason
        n = len(self.state.workers)
        self.run_log.log("error", f"worker {i} (segment {i + 1}/{n}) failed: {reason}")
        self._mirror()
        self._changed.set()

    def _settle_exits(self) -> None:
        for w in self.state.workers:
            if w.exit_code is None:
                w.exit_code = self.processes.exit_code(w.index)

    def _mirror(self) -> None:
        """The merged figures into what the run's readers read."""
        ctx = self.ctx
        self.aggregator.load(self.state.progress_parts())
        active = self.state.active()
        for s in self.schedulers:
            s.active = active.get(s.scenario.name, 0)
        count, progress = self.state.inflight()
        share = progress / count if count else 0.0
        ctx.inflight = {str(k): share for k in range(count)}
        ctx.progress_done = self.state.progress_done()
        if any(w.last is not None and w.last.interrupted for w in self.state.workers):
            self.interrupted = True

    # -- the result -----------------------------------------------------------------------------
    def leases(self) -> int:
        return self.state.leases()

    def pool_statistics(self) -> Mapping[str, Mapping[str, int]]:
        """The workers' resource pools' counts, added up (each worker has its own pools)."""
        pools: dict[str, dict[str, int]] = self.state.section("pools")
        return pools

    def bus_statistics(self) -> BusStatistics:
        """The workers' progress buses, added up (latencies: the highest worker's)."""
        return bus_figures(self.state.section("engine").get("bus", {}))

    def poller_view(self) -> PollerView:
        return PollerView(self)

    def workbook_figures(self) -> tuple[dict[str, int], dict[str, int]]:
        """The workers' workbooks for the exporter: figures, open entries by phase (sent
        by workers when the run has `--metrics`)."""
        figures = self.state.section("metrics")
        book = dict.fromkeys(("held", "packed_bytes", "closed", "kept", "dropped", "written"), 0)
        book.update(figures.get("workbook", {}))
        return book, dict(figures.get("phases", {}))

    def log_counts(self) -> LogCounts:
        """The run log's lines by level, of the coordinator and every worker, live."""
        return LogCounts(self)

    def complete(self, result: dict[str, Any]) -> dict[str, Any]:
        """`build_result` of this run, with the workers' per-process sections merged in, the
        run log's counts of every process, and the `cluster` section; status `failed` when a
        worker failed (its users lost) or the merged totals are not exact."""
        sections = self.state.sections()
        for key in SECTIONS:
            if key in sections:
                result[key] = sections[key]
        ledger = result["ledger"]
        if ledger.get("path") and self.options_out is not None:
            # Each worker wrote its own (OUT/worker-I/ledger): `wbsrun ledger OUT` reads them all.
            ledger["path"] = str(self.options_out)
        result["logs"] = dict(sorted(merge_json(result["logs"], sections.get("logs", {})).items()))
        mismatches = self.state.check()
        segments = []
        lost = 0
        for w in self.state.workers:
            seg_lost = max(0, w.users - w.users_finished) if w.status == "failed" else 0
            lost += seg_lost
            segments.append(
                {
                    "index": w.index,
                    "pid": w.pid,
                    "status": w.status,
                    "users": w.users,
                    "users_lost": seg_lost,
                    "reports": w.reports,
                    "exit_code": w.exit_code,
                    **({"reason": w.reason} if w.reason else {}),
                }
            )
        self.lost_users = lost
        result["cluster"] = {
            "workers": len(self.state.workers),
            "users_lost": lost,
            "exact": not mismatches,
            "mismatches": mismatches,
            "segments": segments,
        }
        if lost or any(w.status == "failed" for w in self.state.workers) or mismatches:
            result["status"] = "failed"
        return result


def _grace(run: float | None, scenario: float | None) -> float:
    """As the runner's: the run's setting over the scenario's over the default."""
    if run is not None:
        return run
    return scenario if scenario is not None else DEFAULT_GRACEFUL_STOP


class BusView:
    """`statistics()` as a bus has it, of the workers' buses (the metrics exporter's)."""

    def __init__(self, run: ClusterRunner) -> None:
        self.run = run

    def statistics(self) -> BusStatistics:
        return self.run.bus_statistics()


class PollerView:
    """`statistics()` and `gauges()` as a poller has them, of the workers' pollers."""

    def __init__(self, run: ClusterRunner) -> None:
        self.run = run

    def statistics(self) -> PollerFigures:
        return poller_figures(self.run.state.section("engine").get("poller", {}))

    def gauges(self) -> PollerGauges:
        g = self.run.state.section("metrics").get("poller_gauges", {})
        return PollerGauges(int(g.get("queue", 0)), int(g.get("inbox", 0)))


class LogCounts(Mapping[str, int]):
    """The coordinator's log counts and the workers' (their latest reports), read live."""

    def __init__(self, run: ClusterRunner) -> None:
        self.run = run

    def _now(self) -> dict[str, int]:
        workers = self.run.state.section("logs")
        merged: dict[str, int] = merge_json(dict(self.run.run_log.counts), workers)
        return merged

    def __getitem__(self, key: str) -> int:
        return self._now()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())
