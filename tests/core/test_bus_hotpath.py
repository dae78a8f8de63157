"""The bus's hot path: `publish_task()` (what a forwarding sink calls) is `publish()` with the
task id read by the caller, and a priority flush delivers what a batch flush would have."""

from __future__ import annotations

from subject_kit import Clock, Subject
from wbsrun.core.bus import ProgressBus
from wbsrun.core.events import PRIORITY_HIGH, PRIORITY_NORMAL
from wbsrun.dsl.plan import ProgressSpec


def test_published_counts_every_call_once_whatever_became_of_it() -> None:
    bus = ProgressBus(ProgressSpec(max_batch_size=2, priority_threshold=0.7))
    a, b, c = Subject("a"), Subject("b"), Subject("c")
    bus.publish(a, "progress", PRIORITY_NORMAL)  # no subscriber yet: only counted
    sub = bus.subscribe()
    bus.publish(a, "progress", PRIORITY_NORMAL)  # new entry
    bus.publish(a, "milestone", PRIORITY_NORMAL)  # coalesced
    bus.publish(b, "closed", PRIORITY_HIGH)  # straight out
    bus.publish(a, "error", PRIORITY_HIGH)  # coalesced, then flushed at once
    bus.publish(c, "progress", PRIORITY_NORMAL)  # new entry
    stats = bus.statistics()
    assert (stats.published, stats.coalesced, stats.events, stats.pending) == (6, 2, 2, 1)
    assert [ev.task_id for ev in sub.recv_nowait()] == ["b", "a"]
    assert dict(stats.flushes) == {"priority": 2}


def test_a_priority_flush_records_the_wait_of_what_was_coalesced_and_its_own_delivery() -> None:
    clock = Clock(10.0)
    bus = ProgressBus(ProgressSpec(priority_threshold=0.7), clock=clock)
    sub = bus.subscribe()
    a, b = Subject("a"), Subject("b")
    bus.publish(a, "progress", PRIORITY_NORMAL)
    clock.now += 0.02
    bus.publish(a, "closed", PRIORITY_HIGH)  # waited 20 ms: one batched latency
    bus.publish(b, "closed", PRIORITY_HIGH)  # nothing waited: no batched latency
    stats = bus.statistics()
    assert stats.latency_ms["count"] == 1
    assert stats.latency_ms["max"] == 20.0
    assert stats.latency_high_ms["count"] == 2
    first, second = sub.recv_nowait()
    assert (first.published_at, first.flushed_at) == (10.0, 10.02)
    assert second.published_at == second.flushed_at == 10.02
    assert first.dirty == {"progress", "closed"}
    assert first.update_id < second.update_id
    assert first.batch < second.batch
