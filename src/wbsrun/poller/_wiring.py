"""Wiring the progress bus, the poller and the progress pollable's feed into a run (what the
CLI does)."""

from __future__ import annotations

from wbsrun.core.bus import ProgressBus
from wbsrun.core.runner import Runner
from wbsrun.dsl.plan import ProgressSpec
from wbsrun.poller._feed import ProgressFeed
from wbsrun.poller._poller import Poller

__all__ = ["attach_progress_bus", "progress_feed"]


def progress_feed(bus: ProgressBus, spec: ProgressSpec) -> ProgressFeed | None:
    """The change feed of the progress pollable when `progress.poller.progress_pollable` is
    true (None otherwise: nothing is paid for it). Made before the components, whose plugins
    may subscribe as they load; `attach_progress_bus` binds it to the poller."""
    if not spec.progress_pollable:
        return None
    return ProgressFeed(bus, rebuild=spec.rebuild_future)


def attach_progress_bus(
    runner: Runner, bus: ProgressBus, feed: ProgressFeed | None = None
) -> Poller:
    """Run `bus` (already the runner's progress sink, or forwarded to by it) and a poller for
    the plan as services of `runner`, and `feed` (ranked by the poller's classes); all wind
    down when the last user is done."""
    poller = Poller.for_plan(bus, runner.plan, runner.ctx.workbook)
    bus.stop_on(runner.ctx.finished)
    runner.services.extend((bus, poller))
    if feed is not None:
        feed.bind(poller, runner.ctx.finished)
        runner.services.append(feed)
    return poller
