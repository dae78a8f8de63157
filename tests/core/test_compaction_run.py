"""Closed workbook entries are packed while the run goes, not left live: the runner packs in
small budgeted steps once an entry has settled (`RunOptions.compact_*`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wbsrun.cli.session import wire
from wbsrun.core.ledger.sparse import SparseWorkbook
from wbsrun.core.log import RunLog
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import build_components, provides
from wbsrun.resources import PoolManager, attach_health_checks
from wbsrun.target import TargetProcess


@pytest.mark.parametrize("poller", [True, False], ids=["poller", "runner-only"])
def test_entries_closed_before_the_settle_time_are_packed_during_the_run(
    live_reference: Callable[[int], tuple[Path, TargetProcess]], poller: bool
) -> None:
    """With the CLI's wiring the poller packs entries after their close check; without a
    poller (a bare Runner) the runner's own settled compaction must do it alone."""
    bundle, _target = live_reference(50)
    plan = load_plan(bundle, provides())
    options = RunOptions(users=50, duration=3.0)
    pools, log = PoolManager(plan), RunLog()
    if poller:
        runner = wire(plan, options, pools, log).runner
    else:
        runner = Runner(plan, build_components(plan, log), pools, log, options)
        attach_health_checks(runner, pools)
    asyncio.run(runner.run())
    ended = time.time()

    book = runner.ctx.workbook
    assert isinstance(book, SparseWorkbook)
    closed = [e for e in book.entries if str(book.get(e, "timeline.phase")).startswith("closing")]
    # Settled with a margin: closed earlier than settle + two steps before the end.
    margin = options.compact_settle + 2 * options.compact_interval + 0.2
    settled = [e for e in closed if book.get(e, "timeline.last_transition_at") < ended - margin]
    assert len(settled) > 200, "the run closed passes well before its end"
    live = [e.task_id for e in settled if not e.packed]
    assert live == []
    assert book.backlog < len(closed) - len(settled) + 64
