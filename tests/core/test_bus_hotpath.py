"""The bus's hot path: `publish_task()` (what a forwarding sink calls) is `publish()` with the
task id read by the caller, and a priority flush delivers what a batch flush would have."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from subject_kit import Clock, Subject
from wbsrun.core.bus import ProgressBus, ProgressEvent
from wbsrun.core.events import PRIORITY_HIGH, PRIORITY_NORMAL
from wbsrun.dsl.plan import ProgressSpec

FIELDS = ("timeline.phase", "progress", "milestone", "error", "lease", "closed")
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("publish"),
            st.integers(0, 7),
            st.sampled_from(FIELDS),
            st.sampled_from([0.5, 0.69, 0.7, 1.0]),
            st.floats(0, 1),
            st.booleans(),
        ),
        st.tuples(st.just("flush")),
        st.tuples(st.just("tick"), st.floats(0.0, 0.05)),
    ),
    max_size=80,
)


def _run(ops: list[Any], batch: int, by_task: bool) -> tuple[list[ProgressEvent], Any]:
    clock = Clock(10.0)
    bus = ProgressBus(
        ProgressSpec(max_batch_size=batch, flush_interval=0.1, priority_threshold=0.7),
        clock=clock,
    )
    sub = bus.subscribe(bound=3)
    subjects = [Subject(f"t{i}") for i in range(8)]
    got: list[ProgressEvent] = []
    for op in ops:
        if op[0] == "publish":
            _, i, fld, prio, value, milestone = op
            s = subjects[i]
            s.progress = value
            if milestone:
                s.milestones.add(f"m{len(s.milestones)}")
            if by_task:
                bus.publish_task(s, s.task_id, fld, prio)
            else:
                bus.publish(s, fld, prio)
        elif op[0] == "flush":
            bus.flush()
            got.extend(sub.recv_nowait())
        else:
            clock.now += op[1]
    bus.stop()
    got.extend(sub.recv_nowait())
    return got, bus.statistics()


def _plain(ev: ProgressEvent) -> tuple[Any, ...]:
    return (*ev[:-1], ev.subject.task_id)


@settings(max_examples=150, deadline=None)
@given(ops=_ops, batch=st.integers(1, 6))
def test_publish_task_is_publish_with_the_task_id_given(ops: list[Any], batch: int) -> None:
    direct, direct_stats = _run(ops, batch, by_task=False)
    forwarded, forwarded_stats = _run(ops, batch, by_task=True)
    assert [_plain(ev) for ev in forwarded] == [_plain(ev) for ev in direct]
    assert forwarded_stats == direct_stats


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
