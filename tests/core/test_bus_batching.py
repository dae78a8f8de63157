"""`progress.batching` through real runs against the embedded target: flush by size, by time,
and at once for high-priority updates (batch sizes and publish → delivery delays observed by
a subscriber). Bounds carry wide margins: the CI machine has 2 shared cores."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from bus_kit import run_with_bus, with_progress
from scenario_kit import Doc, act, document, edge, end, graph, http, on
from wbsrun.target import TargetProcess

ACTIONS = {"fetch": http("get"), "push": http("post"), "purge": http("delete")}


def three_steps(users: int, **scenario: object) -> Doc:
    flow = graph(
        act("fetch", "fetch", edge("push")),
        act("push", "push", edge("purge")),
        act("purge", "purge", edge("done")),
        end(),
        on_error=[{"goto": "error_out"}],
    )
    return document(ACTIONS, flow, users=users, **scenario)


def test_pending_entries_are_flushed_in_batches_of_max_batch_size(
    tmp_path: Path, target: TargetProcess
) -> None:
    # Only closes (priority 1.0) reach the threshold and the interval never fires: everything
    # else leaves in size flushes.
    doc = with_progress(
        three_steps(users=23), max_batch_size=5, flush_interval="60s", priority_threshold=1.0
    )
    ran = run_with_bus(tmp_path, doc, on(target))

    batches = ran.collector.batches()
    by_size = [b for b in batches.values() if b[0].trigger == "size"]
    assert {b[0].trigger for b in batches.values()} <= {"size", "priority", "final"}
    assert len(by_size) >= 4
    assert all(len(b) == 5 for b in by_size)
    assert all(len({ev.task_id for ev in b}) == 5 for b in by_size)  # one event per entry
    assert all(ev.priority < 1.0 for b in by_size for ev in b)
    finals = [b for b in batches.values() if b[0].trigger == "final"]
    assert all(len(b) < 5 for b in finals)
    # Every task's close is delivered, and coalescing kept events below publishes.
    assert sum(ev.closed for ev in ran.collector.events) == 23
    stats = ran.bus.statistics()
    assert stats.events < stats.published
    assert stats.max_batch == 5


def test_without_size_or_priority_triggers_events_are_flushed_every_flush_interval(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=40)
    interval = 0.1
    doc = with_progress(
        three_steps(users=6, iterations=4),
        max_batch_size=100_000,
        flush_interval="100ms",
        priority_threshold=1.0,
    )
    ran = run_with_bus(tmp_path, doc, on(target))

    batches = sorted(ran.collector.batches().values(), key=lambda b: b[0].batch)
    timed = [b for b in batches if b[0].trigger == "interval"]
    assert {b[0].trigger for b in batches} <= {"interval", "priority", "final"}
    assert all(ev.priority < 1.0 for b in timed for ev in b)
    assert len(timed) >= 3  # ≥ 4 passes × 3 × 40 ms of work
    flushed = [b[0].flushed_at for b in timed]
    # Never more often than the interval (asyncio.sleep may wake ~1 ms early)...
    assert all(b - a >= interval - 0.01 for a, b in itertools.pairwise(flushed))
    delays = [ev.flushed_at - ev.published_at for b in timed for ev in b]
    # ...and an update waits at most about one interval (loop lag on a loaded box: +1 s).
    assert max(delays) <= interval + 1.0
    assert max(delays) >= interval / 3  # updates really did wait for the tick
    assert any(len(b) > 1 for b in timed)
    assert sum(ev.closed for ev in ran.collector.events) == 24


def test_an_update_at_or_above_priority_threshold_is_delivered_at_once(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=30)
    # Size and time triggers are out of reach: only priority flushes happen during the run.
    doc = with_progress(
        three_steps(users=4, iterations=3),
        max_batch_size=100_000,
        flush_interval="60s",
        priority_threshold=0.7,
    )
    ran = run_with_bus(tmp_path, doc, on(target), clock=time.time)

    received = ran.collector.received
    closed = [(at, ev) for at, ev in received if ev.closed]
    assert len(closed) == 12
    assert all(ev.trigger == "priority" for _, ev in closed)
    during = [ev for _, ev in received if ev.trigger != "final"]
    assert {ev.trigger for ev in during} == {"priority"}
    assert all(len(b) == 1 for b in ran.collector.batches().values() if b[0].trigger != "final")
    # Each close reached the subscriber right after the task closed (trace times are wall
    # clock, like this bus's clock), long before the 60 s interval could have fired.
    closed_at = {e.task_id: e.trace[-1][2] for e in ran.entries}
    for at, ev in closed:
        # (the close releases the lease first, an await: a loaded loop may take a while)
        assert 0.0 <= ev.flushed_at - closed_at[ev.task_id] < 0.5
        assert at - ev.flushed_at < 1.0
    first_delivery = min(at for at, _ in closed)
    assert first_delivery < max(closed_at.values())  # delivered while the run went on
    assert ran.bus.statistics().latency_high_ms["count"] >= 12
