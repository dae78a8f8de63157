"""A pass must be freed by reference counting: the runner freezes survivors every second
(core/runner.py), so cyclic garbage a pass leaves is only collected when the run ends — RSS
grew by ~1.3 KB a request more when a lease holding and a compiled checkpoint closure each
made one cycle a pass."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from wbsrun.cli.session import wire
from wbsrun.core.log import RunLog
from wbsrun.core.runner import RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.resources import PoolManager
from wbsrun.target import TargetProcess

# Objects of one pass: none of them may need the cyclic collector.
PASS_OBJECTS = frozenset(
    {"Task", "Holding", "Checkpoint", "Snapshot", "HttpResult", "WorkbookView", "TaskScope"}
)


def cyclic_garbage(run: Callable[[], object]) -> Counter[str]:
    """The objects `run` left that only the cyclic collector frees, by type name."""
    gc.collect()
    gc.disable()  # nothing is collected behind our back during the run
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        return Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_pass_of_the_reference_scenario_leaves_no_cycle_behind(
    live_reference: Callable[[int], tuple[Path, TargetProcess]],
) -> None:
    bundle, _target = live_reference(4)
    plan = load_plan(bundle, provides())
    # gc_freeze off: frozen garbage would be invisible to the check.
    options = RunOptions(users=4, duration=1.5, gc_freeze=False, gc_young_threshold=0)
    wired = wire(plan, options, PoolManager(plan), RunLog())
    garbage = cyclic_garbage(lambda: asyncio.run(wired.runner.run()))

    result = wired.result()
    assert result["tasks"]["succeeded"] >= 8  # passes ran, through checkpoints and leases
    assert result["requests"]["failed"] == 0
    assert {k: v for k, v in garbage.items() if k in PASS_OBJECTS} == {}


def test_the_check_sees_a_cycle_a_pass_object_would_make() -> None:
    class Task:
        def __init__(self) -> None:
            self.me = self

    def make() -> None:
        Task()

    assert cyclic_garbage(make)["Task"] == 1
