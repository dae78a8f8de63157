"""Run a scenario through the library API with the progress bus (and optionally the poller)
wired in as the CLI does, and record what a subscriber received and when."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenario_kit import Doc, write_bundle
from wbsrun.core.bus import EndOfStream, ProgressBus, ProgressEvent, Subscription
from wbsrun.core.ledger import Ledger
from wbsrun.core.log import RunLog
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.poller import Poller, attach_progress_bus
from wbsrun.progress.report import build_result
from wbsrun.protocols.registry import build_components, provides
from wbsrun.resources.pool import PoolManager


@dataclass
class Collector:
    """A subscriber service: every event with the wall time it was received."""

    sub: Subscription
    received: list[tuple[float, ProgressEvent]] = field(default_factory=list)

    async def serve(self) -> None:
        try:
            while True:
                try:
                    events = await self.sub.recv()
                except EndOfStream:
                    return
                now = time.time()
                self.received.extend((now, ev) for ev in events)
        finally:
            now = time.time()
            self.received.extend((now, ev) for ev in self.sub.recv_nowait())

    @property
    def events(self) -> list[ProgressEvent]:
        return [ev for _, ev in self.received]

    def batches(self) -> dict[int, list[ProgressEvent]]:
        out: dict[int, list[ProgressEvent]] = {}
        for ev in self.events:
            out.setdefault(ev.batch, []).append(ev)
        return out


@dataclass
class BusRun:
    runner: Runner
    bus: ProgressBus
    collector: Collector
    poller: Poller | None
    result: Doc
    ended_wall: float

    @property
    def book(self) -> Ledger[Any]:
        return self.runner.ctx.workbook

    @property
    def entries(self) -> Sequence[Any]:
        return self.book.entries


def with_progress(doc: Doc, **batching: Any) -> Doc:
    """`progress.batching` keys given as python names (max_batch_size=5 → max-batch-size)."""
    progress = dict(doc.get("progress") or {})
    progress["batching"] = {k.replace("_", "-"): v for k, v in batching.items()}
    return {**doc, "progress": progress}


def run_with_bus(
    tmp_path: Path,
    doc: Doc,
    items: Sequence[tuple[str, int]],
    *,
    poller: bool = False,
    clock: Callable[[], float] = time.monotonic,
    options: RunOptions | None = None,
) -> BusRun:
    bundle = write_bundle(tmp_path, doc, items)
    plan = load_plan(bundle, provides())
    pools = PoolManager(plan)
    run_log = RunLog()
    bus = ProgressBus(plan.progress, clock=clock)
    collector = Collector(bus.subscribe())
    runner = Runner(
        plan,
        build_components(plan, run_log),
        pools,
        run_log,
        options,
        events=bus,
        services=[collector],
    )
    checker = attach_progress_bus(runner, bus) if poller else None
    if checker is None:
        bus.stop_on(runner.ctx.finished)
        runner.services.append(bus)
    asyncio.run(runner.run())
    ended = time.time()
    stats: dict[str, Any] = {"bus": bus.statistics().as_dict()}
    if checker is not None:
        stats["poller"] = checker.statistics().as_dict()
    result = build_result(runner, pools.statistics(), run_log.counts)
    result["engine"] = stats
    return BusRun(runner, bus, collector, checker, result, ended)
