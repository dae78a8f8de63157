"""Wiring the progress bus and the poller into a run (what the CLI does)."""

from __future__ import annotations

from wbsrun.core.bus import ProgressBus
from wbsrun.core.runner import Runner
from wbsrun.poller._poller import Poller

__all__ = ["attach_progress_bus"]


def attach_progress_bus(runner: Runner, bus: ProgressBus) -> Poller:
    """Run `bus` (already the runner's progress sink, or forwarded to by it) and a poller for
    the plan as services of `runner`; both wind down when the last user is done."""
    poller = Poller.for_plan(bus, runner.plan, runner.ctx.workbook)
    bus.stop_on(runner.ctx.finished)
    runner.services.extend((bus, poller))
    return poller
