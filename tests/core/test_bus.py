"""The progress bus on its own: coalescing per task, the three flush triggers, subscriptions,
back-pressure, and the properties coalescing must keep (hypothesis)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from subject_kit import Subject
from wbsrun.core.bus import EndOfStream, EventFilter, ProgressBus, ProgressEvent
from wbsrun.core.events import PRIORITY_HIGH, PRIORITY_NORMAL, ProgressSink, Service
from wbsrun.dsl.plan import ProgressSpec


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_bus(
    batch: int = 100, interval: float = 0.1, threshold: float = 0.7, **kw: Any
) -> ProgressBus:
    spec = ProgressSpec(max_batch_size=batch, flush_interval=interval, priority_threshold=threshold)
    return ProgressBus(spec, **kw)


def test_the_bus_is_a_progress_sink_and_a_service() -> None:
    bus = make_bus()
    sink: ProgressSink = bus
    service: Service = bus
    assert sink is bus
    assert service is bus


def test_changes_of_one_task_coalesce_into_one_event_with_the_union_of_dirty_fields() -> None:
    bus = make_bus()
    sub = bus.subscribe()
    a, b = Subject("a"), Subject("b")
    bus.publish(a, "timeline.phase", PRIORITY_NORMAL)
    bus.publish(a, "progress", PRIORITY_NORMAL)
    bus.publish(b, "progress", PRIORITY_NORMAL)
    bus.publish(a, "milestone", PRIORITY_NORMAL)
    assert not sub.ready()
    assert bus.flush() == 2

    events = {ev.task_id: ev for ev in sub.recv_nowait()}
    assert events["a"].dirty == {"timeline.phase", "progress", "milestone"}
    assert events["b"].dirty == {"progress"}
    stats = bus.statistics()
    assert (stats.published, stats.coalesced, stats.events) == (4, 2, 2)


def test_an_event_carries_the_subjects_values_at_flush_not_at_publish() -> None:
    bus = make_bus()
    sub = bus.subscribe()
    a = Subject("a", progress=0.1)
    bus.publish(a, "progress", PRIORITY_NORMAL)
    a.progress, a.phase, a.error_class = 0.7, "monitoring.error_detected", "transient"
    a.milestones.add("probe")
    bus.flush()

    (ev,) = sub.recv_nowait()
    assert (ev.progress, ev.phase, ev.error_class) == (
        0.7,
        "monitoring.error_detected",
        "transient",
    )
    assert ev.milestones == {"probe"}
    assert (ev.task_id, ev.user_id, ev.scenario) == ("a", "u1", "s")
    a.milestones.add("push")
    assert ev.milestones == {"probe"}  # a snapshot, not the live set


def test_reaching_max_batch_size_pending_entries_flushes_them_all() -> None:
    bus = make_bus(batch=3)
    sub = bus.subscribe()
    subjects = [Subject(f"t{i}") for i in range(7)]
    for s in subjects[:2]:
        bus.publish(s, "progress", PRIORITY_NORMAL)
        bus.publish(s, "progress", PRIORITY_NORMAL)  # coalesced: still one pending entry
    assert not sub.ready()
    for s in subjects[2:]:
        bus.publish(s, "progress", PRIORITY_NORMAL)

    events = sub.recv_nowait()
    assert [ev.task_id for ev in events] == ["t0", "t1", "t2", "t3", "t4", "t5"]
    assert {ev.trigger for ev in events} == {"size"}
    assert [len([e for e in events if e.batch == b]) for b in {e.batch for e in events}] == [3, 3]
    assert bus.statistics().pending == 1


@pytest.mark.parametrize("priority", [0.7, 0.9, PRIORITY_HIGH])
def test_an_update_at_or_above_the_threshold_is_flushed_at_once_alone(priority: float) -> None:
    clock = FakeClock()
    bus = make_bus(threshold=0.7, clock=clock)
    sub = bus.subscribe()
    a, b = Subject("a"), Subject("b")
    bus.publish(b, "progress", PRIORITY_NORMAL)
    bus.publish(a, "progress", PRIORITY_NORMAL)
    clock.now += 0.05
    bus.publish(a, "error", priority)

    (ev,) = sub.recv_nowait()
    assert (ev.task_id, ev.trigger, ev.priority) == ("a", "priority", priority)
    assert ev.dirty == {"progress", "error"}
    # The event keeps the first coalesced publish time: latency is never understated.
    assert ev.flushed_at - ev.published_at == pytest.approx(0.05)
    assert bus.statistics().pending == 1  # b waits for its batch


def test_an_update_below_the_threshold_waits_for_a_flush() -> None:
    bus = make_bus(threshold=0.7)
    sub = bus.subscribe()
    bus.publish(Subject("a"), "timeline.phase", 0.69)
    assert not sub.ready()


def test_serve_flushes_every_flush_interval_and_the_rest_when_cancelled() -> None:
    async def main() -> None:
        bus = make_bus(interval=0.02)
        sub = bus.subscribe()
        server = asyncio.create_task(bus.serve())
        bus.publish(Subject("a"), "progress", PRIORITY_NORMAL)
        async with asyncio.timeout(5):
            (first,) = await sub.recv()
        assert first.trigger == "interval"
        bus.publish(Subject("b"), "progress", PRIORITY_NORMAL)
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
        (last,) = sub.recv_nowait()
        assert (last.task_id, last.trigger) == ("b", "final")
        with pytest.raises(EndOfStream):
            await sub.recv()

    asyncio.run(main())


def test_recv_waits_for_the_next_flush_and_ready_reports_without_blocking() -> None:
    async def main() -> None:
        bus = make_bus()
        sub = bus.subscribe()
        waiting = asyncio.create_task(sub.recv())
        await asyncio.sleep(0)
        assert not waiting.done()
        assert not sub.ready()
        bus.publish(Subject("a"), "closed", PRIORITY_HIGH)
        async with asyncio.timeout(5):
            events = await waiting
        assert [ev.closed for ev in events] == [True]
        assert not sub.ready()

    asyncio.run(main())


def test_update_ids_increase_across_flushes_and_ack_records_the_consumers_position() -> None:
    bus = make_bus(batch=2)
    sub = bus.subscribe()
    for i in range(6):
        bus.publish(Subject(f"t{i}"), "progress", PRIORITY_NORMAL)
    ids = [ev.update_id for ev in sub.recv_nowait()]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    sub.ack(ids[3])
    sub.ack(ids[1])  # acks never move backwards
    stats = sub.statistics()
    assert (stats.acked_id, stats.last_delivered_id) == (ids[3], ids[-1])


def test_a_filter_selects_dirty_fields_scenarios_and_priorities() -> None:
    bus = make_bus(threshold=2.0)
    closed = bus.subscribe(EventFilter(fields=frozenset({"closed"})))
    other = bus.subscribe(EventFilter(scenarios=frozenset({"other"})))
    urgent = bus.subscribe(EventFilter(min_priority=0.9))
    everything = bus.subscribe()
    bus.publish(Subject("a"), "progress", PRIORITY_NORMAL)
    bus.publish(Subject("b"), "closed", PRIORITY_HIGH)
    bus.publish(Subject("c", scenario_name="other"), "progress", PRIORITY_NORMAL)
    bus.flush()

    assert [ev.task_id for ev in closed.recv_nowait()] == ["b"]
    assert [ev.task_id for ev in other.recv_nowait()] == ["c"]
    assert [ev.task_id for ev in urgent.recv_nowait()] == ["b"]
    assert [ev.task_id for ev in everything.recv_nowait()] == ["a", "b", "c"]


def test_the_aggregator_hook_fills_each_events_aggregation_at_flush() -> None:
    seen: list[str] = []

    def roll_up(subject: Any) -> Mapping[str, Any]:
        seen.append(subject.task_id)
        return {"user": subject.progress / 2}

    bus = make_bus(aggregator=roll_up)
    sub = bus.subscribe()
    a = Subject("a", progress=0.5)
    bus.publish(a, "progress", PRIORITY_NORMAL)
    bus.publish(a, "milestone", PRIORITY_NORMAL)
    assert seen == []  # never on the publish path
    bus.flush()
    (ev,) = sub.recv_nowait()
    assert ev.aggregation == {"user": 0.25}
    assert seen == ["a"]


def test_without_an_aggregator_the_aggregation_is_empty() -> None:
    bus = make_bus()
    sub = bus.subscribe()
    bus.publish(Subject("a"), "closed", PRIORITY_HIGH)
    assert sub.recv_nowait()[0].aggregation == {}


def test_without_subscribers_publish_only_counts() -> None:
    bus = make_bus()
    bus.publish(Subject("a"), "progress", PRIORITY_NORMAL)
    stats = bus.statistics()
    assert (stats.published, stats.pending, stats.events) == (1, 0, 0)


# -- back-pressure -------------------------------------------------------------------------------


def test_a_slow_subscriber_past_its_bound_gets_the_latest_event_per_task_and_a_drop_count() -> None:
    bus = make_bus(threshold=2.0)
    slow = bus.subscribe(bound=3)
    fast = bus.subscribe()
    subjects = [Subject(f"t{i}") for i in range(5)]
    for rnd in range(4):
        for s in subjects:
            s.progress = rnd / 4
            bus.publish(s, "progress", PRIORITY_NORMAL)
        bus.flush()

    assert len(fast.recv_nowait()) == 20
    events = slow.recv_nowait()
    stats = bus.statistics()
    # 3 in order, then one per task: the 17 others collapse onto 5 tasks.
    assert len(events) == 3 + 5
    assert stats.dropped == slow.dropped == 20 - 8
    latest = {ev.task_id: ev.progress for ev in events}
    assert latest == {f"t{i}": 0.75 for i in range(5)}


def test_a_closed_event_is_never_coalesced_away_under_pressure() -> None:
    bus = make_bus(threshold=2.0)
    slow = bus.subscribe(bound=1)
    a, b = Subject("a"), Subject("b")
    bus.publish(b, "progress", PRIORITY_NORMAL)
    bus.flush()  # fills the bound
    bus.publish(a, "progress", PRIORITY_NORMAL)
    bus.flush()
    bus.publish(a, "closed", PRIORITY_HIGH)
    bus.flush()
    a.phase = "closing.success"
    bus.publish(a, "timeline.phase", PRIORITY_NORMAL)  # a (buggy) late update after close
    bus.flush()

    events = slow.recv_nowait()
    a_events = [ev for ev in events if ev.task_id == "a"]
    assert len(a_events) == 1
    assert a_events[0].closed
    assert a_events[0].dirty == {"progress", "closed", "timeline.phase"}


def test_publish_never_waits_for_a_subscriber_that_never_reads() -> None:
    bus = make_bus(batch=10, threshold=2.0)
    sub = bus.subscribe(bound=50)
    subjects = [Subject(f"t{i}") for i in range(20)]
    for i in range(20_000):
        bus.publish(subjects[i % 20], "progress", PRIORITY_NORMAL)
    stats = sub.statistics()
    assert stats.queued == 50
    assert stats.backlog <= 20
    assert stats.delivered == stats.queued + stats.backlog + stats.dropped


def test_bad_batching_values_are_refused() -> None:
    with pytest.raises(ValueError, match="max-batch-size"):
        make_bus(batch=0)
    with pytest.raises(ValueError, match="flush-interval"):
        make_bus(interval=0)
    with pytest.raises(ValueError, match="bound"):
        make_bus().subscribe(bound=0)


# -- properties ----------------------------------------------------------------------------------

FIELDS = ("timeline.phase", "progress", "milestone", "error")
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("publish"),
            st.integers(0, 5),
            st.sampled_from(FIELDS),
            st.sampled_from([0.5, 1.0]),
            st.floats(0, 1),
        ),
        st.tuples(st.just("close"), st.integers(0, 5)),
        st.tuples(st.just("flush")),
        st.tuples(st.just("read"), st.integers(1, 4)),
    ),
    max_size=120,
)


@settings(max_examples=examples(150), deadline=None)
@given(ops=_ops, batch=st.integers(1, 8), bound=st.integers(1, 6))
def test_coalescing_never_loses_the_latest_state_and_ids_strictly_increase(
    ops: list[Any], batch: int, bound: int
) -> None:
    bus = make_bus(batch=batch, threshold=0.7)
    sub = bus.subscribe(bound=bound)
    subjects = [Subject(f"t{i}") for i in range(6)]
    closed: set[str] = set()
    got: list[ProgressEvent] = []
    for op in ops:
        if op[0] == "publish":
            _, i, fld, prio, value = op
            s = subjects[i]
            if s.task_id in closed:
                continue
            s.progress = value
            bus.publish(s, fld, prio)
        elif op[0] == "close":
            s = subjects[op[1]]
            if s.task_id not in closed:
                closed.add(s.task_id)
                s.phase = "closing.success"
                bus.publish(s, "closed", PRIORITY_HIGH)
        elif op[0] == "flush":
            bus.flush()
        else:
            got.extend(sub.recv_nowait(op[1]))
    bus.stop()
    got.extend(sub.recv_nowait())

    ids = [ev.update_id for ev in got]
    assert all(a < b for a, b in itertools.pairwise(ids))
    last: dict[str, ProgressEvent] = {}
    for ev in got:
        last[ev.task_id] = ev
    published = {op[1] for op in ops if op[0] in ("publish", "close")}
    for i in published:
        s = subjects[i]
        assert last[s.task_id].progress == s.progress
        assert last[s.task_id].phase == s.phase
    assert {ev.task_id for ev in got if ev.closed} == closed
    stats = sub.statistics()
    assert stats.delivered == len(got) + stats.dropped
