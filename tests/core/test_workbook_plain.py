"""The plain workbook: copy-on-write over shared defaults, nested lists, milestone bookkeeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from wbsrun.core.ledger.dense import Workbook
from wbsrun.core.log import RunLog
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.dsl._build import freeze
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import WorkbookSpec
from wbsrun.protocols.registry import build_components, provides
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetProcess

DEFAULTS = freeze(
    {
        "telemetry": {
            "counters": {"success": 0},
            "milestones": {"achieved": [], "pending": ["probe", "push"]},
        },
        "execution": {"action_log": []},
    }
)


def book() -> Workbook:
    spec = WorkbookSpec(
        defaults=DEFAULTS,
        process_groups=MappingProxyType({}),
        descriptions=MappingProxyType({}),
        expose=MappingProxyType({"log": "execution.action_log"}),
    )
    return Workbook(spec)


def test_nested_append_keeps_the_mapping_around_the_list() -> None:
    wb = book()
    entry = wb.open("u1", "u1-t0", "s")
    wb.append(entry, "telemetry.milestones.achieved", "probe")
    assert wb.get(entry, "telemetry.milestones") == {
        "achieved": ["probe"],
        "pending": ["probe", "push"],
    }


def test_writes_never_touch_the_shared_defaults() -> None:
    wb = book()
    first, second = wb.open("u1", "u1-t0", "s"), wb.open("u2", "u2-t0", "s")
    wb.append(first, "log", {"action": "a"})
    wb.mutable(first, "telemetry.counters")["success"] = 5
    assert wb.get(first, "execution.action_log") == [{"action": "a"}]
    assert wb.get(second, "execution.action_log") == ()
    assert wb.get(second, "telemetry.counters.success") == 0
    assert DEFAULTS["telemetry"]["counters"]["success"] == 0


def test_a_reference_pass_moves_every_milestone_from_pending_to_achieved(
    live_reference: Callable[[int], tuple[Path, TargetProcess]],
) -> None:
    bundle, _ = live_reference(2)
    plan = load_plan(bundle, provides())
    pools, log = PoolManager(plan), RunLog()
    runner = Runner(
        plan, build_components(plan, log), pools, log, RunOptions(users=2, duration=0.3)
    )
    asyncio.run(runner.run())
    wb = runner.ctx.workbook
    done = [e for e in wb.entries if wb.get(e, "timeline.phase") == "closing.success"]
    assert done
    for entry in done:
        milestones = wb.section(entry, "telemetry")["milestones"]
        assert milestones == {"achieved": ["probe", "push", "purge"], "pending": []}
        groups = wb.get(entry, "timeline.process_groups")
        assert groups["initiating"] == groups["planning"] == groups["executing"] == 1.0
