"""The run: components up, one scheduler per scenario in a TaskGroup, graceful drain, clean down."""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from wbsrun.core.control import RunControl
from wbsrun.core.events import ProgressSink, Service
from wbsrun.core.feeds import open_feeds
from wbsrun.core.leases import LeaseBook
from wbsrun.core.ledger import open_workbook
from wbsrun.core.limits import DEFAULT_MAX_BODY
from wbsrun.core.persist import PersistBuffer
from wbsrun.core.ports import Component, LeaseProvider, LogSink, Runtime
from wbsrun.core.resume import RunResume, ScenarioPosition
from wbsrun.core.scheduler import Scheduler, spawn_plan
from wbsrun.core.segments import Segmentation
from wbsrun.core.sinks import as_sink
from wbsrun.core.stats import RunStats
from wbsrun.core.task import RunContext
from wbsrun.dsl.plan import Plan, SamplingMode, SamplingSpec
from wbsrun.dsl.rows import RowError
from wbsrun.errors import RunError

__all__ = ["DEFAULT_GRACEFUL_STOP", "RunOptions", "Runner"]

# As k6's `gracefulStop`.
DEFAULT_GRACEFUL_STOP = 30.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Resolved once by the CLI; library code never sees CLI objects."""

    users: int | None = None
    duration: float | None = None
    connection_limit: int = 0
    # HTTP transport for every `http` component ("fast" | "aiohttp"); None = the scenario's.
    transport: str | None = None
    # Request timeout (seconds) and response body limit (bytes) of http calls whose action
    # and component set none; None: 60 s and 10 MiB (core/limits.py). `max_body` also bounds
    # every persist file.
    request_timeout: float | None = None
    max_body: int | None = None
    persist_flush_interval: float = 1.0
    # Longest a periodic persist flush may block the loop.
    persist_flush_budget: float = 0.005
    # Move survivors out of the cyclic collector's reach every flush (see _flush_loop), and
    # collect the young generation at `gc_young_threshold` tracked objects instead of 700.
    gc_freeze: bool = True
    gc_young_threshold: int = 250_000
    # Closed workbook entries (sparse model) are packed by the poller after their close check;
    # the rest (no poller, or a check that came late) every `compact_interval`, at most
    # `compact_budget` at a time, once they are `compact_settle` old (not before the poller's
    # close check: it would unpack them). ~8-10 µs an entry at 1,000 users: 5 ms every 50 ms
    # packs ~11,000 passes a second, where the reference scenario closes ~6,500. (Once a second
    # with 20 ms packed ~2,300: two thirds of the passes stayed live, +22 MB a second.)
    compact_interval: float = 0.05
    compact_budget: float = 0.005
    compact_settle: float = 0.5
    # How long background services (health checks, bus) may take to wind down at the end.
    service_grace: float = 2.0
    # After a scenario's window ends (or the first stop signal), passes in flight may finish
    # for this long before they are cancelled and counted as interrupted; None: each
    # scenario's `graceful-stop`, else DEFAULT_GRACEFUL_STOP (k6's gracefulStop).
    graceful_stop: float | None = None
    # `progress.sampling`'s mode, overridden (config.yaml `run: sampling:`, `--sampling`).
    sampling: SamplingMode | None = None
    # The run's output directory (`--out`): the on-disk ledger of a `full` run goes there.
    out_dir: Path | None = None
    # This process's part of a run split across workers (docs/distributed.md "Work split"):
    # it starts only the users and arrival iterations its segment owns, with their global
    # indices and ids; None: the whole run.
    segment: Segmentation | None = None
    # Seed of the `random` and `shuffled` data feeders; the workers of one split run share
    # one, so that they deal from the same shuffles. None: random per run (with a segment:
    # derived from the plan's name, the same every run).
    data_seed: int | None = None
    # A second life (`wbsrun resume`): where the first one stood at its last checkpoint;
    # only the remaining work runs (docs/operations.md "Checkpoint and resume").
    resume: RunResume | None = None

    def sampling_for(self, plan: Plan) -> SamplingSpec:
        """The plan's `progress.sampling`, with this run's mode if one was given."""
        spec = plan.progress.sampling
        return spec if self.sampling is None else replace(spec, mode=self.sampling)


def _position(resume: RunResume | None, scenario: str) -> ScenarioPosition | None:
    if resume is None:
        return None
    return resume.scenarios.get(scenario, ScenarioPosition())


def _grace(run: float | None, scenario: float | None) -> float:
    """The run's setting (config, environment, flag) over the scenario's over the default."""
    if run is not None:
        return run
    return scenario if scenario is not None else DEFAULT_GRACEFUL_STOP


class Runner:
    """Owns one run. `run()` returns when every user is done; `drain()` asks them to stop."""

    def __init__(
        self,
        plan: Plan,
        components: Mapping[str, Component],
        leases: LeaseProvider | None,
        log: LogSink,
        options: RunOptions | None = None,
        *,
        events: ProgressSink | None = None,
        services: Sequence[Service] = (),
    ) -> None:
        self.plan = plan
        self.options = options or RunOptions()
        sink = as_sink(events)
        stats = RunStats()
        self.ctx = RunContext(
            plan=plan,
            workbook=open_workbook(
                plan.workbook,
                plan.progress.model,
                self.options.sampling_for(plan),
                self.options.out_dir,
            ),
            stats=stats,
            components=components,
            leases=None,
            log=log,
            persist=PersistBuffer(self.options.max_body or DEFAULT_MAX_BODY, stats),
            events=sink,
        )
        # The built-in pools reach components through the Runtime; the core itself leases
        # only through the provider calls, bound to tasks by the lease book.
        self.provider = leases
        if plan.resources:
            ctx = self.ctx
            ctx.leases = LeaseBook(plan, components, log, ctx.clock, ctx.wall, sink, ctx.finished)
        # Background jobs bound to the run: started after the components, cancelled (and so
        # given their `finally` to settle) once the last user is done.
        self.services = list(services)
        self.schedulers: list[Scheduler] = []
        self.started_wall = 0.0
        self.ended_at: float | None = None
        self.interrupted = False
        # Pause, resume, scale, stop: what the control endpoint calls (core/control.py).
        self.control = RunControl(self)

    @property
    def elapsed(self) -> float:
        end = self.ended_at if self.ended_at is not None else self.ctx.clock()
        return max(0.0, end - self.ctx.t0) if self.ctx.t0 else 0.0

    @property
    def active_elapsed(self) -> float:
        """`elapsed` less the seconds spent paused: what every rate divides by."""
        return max(0.0, self.elapsed - self.control.paused_seconds)

    def drain(self) -> None:
        """Stop starting passes; passes in flight get their scenario's graceful stop to end,
        then are cancelled (counted as interrupted), and the run returns. A pause ends: the
        passes it held finish within the graceful stop."""
        self.interrupted = True
        self.ctx.draining = True
        for s in self.schedulers:
            s.wake.set()
        self.control.release()

    async def run(self) -> None:
        ctx = self.ctx
        ctx.deadlines.bind(asyncio.get_running_loop())
        ctx.t0 = ctx.clock()
        self.started_wall = time.time()
        resume = self.options.resume
        if resume is not None:
            # The schedule's clock continues from the checkpoint: windows, ramps and arrival
            # offsets keep their places; the crash's downtime is not part of the run.
            ctx.t0 -= resume.elapsed
            self.started_wall = resume.started_wall
            ctx.progress_done = resume.progress_done
            ctx.global_vars.update(resume.global_vars)
        deadline = ctx.t0 + self.options.duration if self.options.duration else None
        try:
            # Before the users: the random-access modes scan their file once (index).
            ctx.feeds = open_feeds(self.plan.data, self._data_seed(), self.options.segment)
            if resume is not None:
                for name, at in resume.feeds.items():
                    if name in ctx.feeds:
                        ctx.feeds[name].restore(at)
        except RowError as exc:
            raise RunError(f"data source cannot be read: {exc}") from None
        several = len(self.plan.scenarios) > 1
        self.schedulers = [
            Scheduler(
                ctx,
                s,
                i,
                spawn_plan(s, self.options.users, self.options.segment),
                deadline,
                prefix=f"s{i + 1}-" if several else "",
                grace=_grace(self.options.graceful_stop, s.graceful_stop),
                resume=_position(resume, s.name),
                elapsed=resume.elapsed if resume is not None else 0.0,
            )
            for i, s in enumerate(self.plan.scenarios)
        ]
        if self.control.paused:  # paused before the start: the users wait from the first
            for sched in self.schedulers:
                sched.hold()
        runtime = Runtime(
            log=ctx.log,
            connection_limit=self.options.connection_limit,
            clock=ctx.clock,
            rate_guard=ctx.rate_guard,
            leases=self.provider,
            extras=self._extras(),
        )
        started: list[Component] = []
        thresholds = gc.get_threshold()
        if self.options.gc_young_threshold:
            # With 1,000 requests in flight, every young collection promotes all of them and
            # the collector took ~23% of the CPU (measured, bench/overhead.py); requests free
            # their objects by reference counting, so collecting rarely loses nothing. The
            # count is of tracked objects alive (allocations less frees), and `gc.freeze()`
            # resets it every second (_flush_loop): the reference scenario at 1,000 users
            # keeps 80-150k a second, so at 250,000 no young collection runs between freezes
            # (at 50,000 one did every second, ~22 ms each, ~3 µs of CPU a request).
            gc.set_threshold(self.options.gc_young_threshold, thresholds[1], thresholds[2])
        try:
            for component in ctx.components.values():
                await component.init(runtime)
                started.append(component)
            if ctx.leases is not None:
                await ctx.leases.start()
                self.services.append(ctx.leases)
            async with asyncio.TaskGroup() as tg:
                flusher = tg.create_task(self._flush_loop())
                packer = tg.create_task(self._compact_loop())
                jobs = [tg.create_task(svc.serve()) for svc in self.services]
                try:
                    async with asyncio.TaskGroup() as users:
                        for sched in self.schedulers:
                            users.create_task(sched.run_users())
                except BaseException:
                    for job in (flusher, packer, *jobs):
                        job.cancel()
                    raise
                flusher.cancel()
                packer.cancel()
                # Services see `finished` and wind down: a health round in flight completes,
                # so every probe the servers saw is counted. Bounded: then they are cancelled.
                ctx.finished.set()
                if jobs:
                    _, late = await asyncio.wait(jobs, timeout=self.options.service_grace)
                    for job in late:
                        job.cancel()
        finally:
            self.ended_at = ctx.clock()
            self.control.release()
            gc.set_threshold(*thresholds)
            if self.options.gc_freeze:
                gc.unfreeze()
            for feed in ctx.feeds.values():
                feed.close()
            for component in reversed(started):
                await component.release()
            ctx.persist.flush()
            # Every closed entry folded into the ledger's totals; the on-disk ledger completed.
            ctx.workbook.finish()

    def _data_seed(self) -> int | None:
        seed = self.options.data_seed
        if seed is None and self.options.segment is not None:
            # Every worker derives the same one: str seeds hash stably across processes.
            seed = random.Random(f"wbsrun-data\x00{self.plan.name}").getrandbits(64)
        return seed

    def _extras(self) -> dict[str, object]:
        """Run options for the components (`http` reads these)."""
        options = self.options
        extras: dict[str, object] = {}
        if options.transport:
            extras["transport"] = options.transport
        if options.request_timeout:
            extras["request-timeout"] = options.request_timeout
        if options.max_body:
            extras["max-body"] = options.max_body
        no_cookies = frozenset(s.name for s in self.plan.scenarios if not s.cookies)
        if no_cookies:
            extras["no-cookies"] = no_cookies  # scenarios with `cookies: false`
        return extras

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.persist_flush_interval)
            self.ctx.persist.flush(self.options.persist_flush_budget)
            if self.options.gc_freeze:
                # Closed workbook entries live until the run ends; without this every full
                # collection walks all of them, and the pauses (measured 27 → 114 ms, growing
                # with the run) push requests past their timeouts. Refcounting still frees
                # frozen objects, but cyclic garbage frozen waits for the end of the run, so a
                # pass must leave none (tests/core/test_pass_memory.py): when one did, RSS grew
                # 2.4 KB a request instead of 1.1 (bench/transport.py child, 32 s).
                gc.freeze()

    async def _compact_loop(self) -> None:
        """Closed entries to packed bytes (sparse model; dense: a no-op), in small budgeted
        steps so that no step stalls the loop long and the packing keeps up with the run."""
        options, book = self.options, self.ctx.workbook
        while True:
            await asyncio.sleep(options.compact_interval)
            book.compact(budget=options.compact_budget, settle=options.compact_settle)

    def stopping(self) -> float | None:
        """Seconds until passes still in flight are cut, once a scenario is past its window
        (or drained) and still has users; None otherwise."""
        now = self.ctx.clock()
        due = [s.cut_due for s in self.schedulers if s.cut_due is not None and s.active]
        return max(0.0, min(due) - now) if due else None

    def position(self) -> dict[str, ScenarioPosition]:
        """Each scenario's schedule position now (a checkpoint)."""
        return {s.scenario.name: s.position() for s in self.schedulers}

    def active_users(self) -> int:
        return sum(s.active for s in self.schedulers)

    def planned_users(self) -> int:
        return sum(s.planned_users for s in self.schedulers)
