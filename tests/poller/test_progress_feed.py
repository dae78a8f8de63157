"""The progress pollable's change feed on its own (a real bus and a real poller's classes):
priority order, ack of what was handed out, the aging rule that keeps a low-priority change
from starving under a flood, the backlog cap, ready() recomputed or cached, filters, done()
and the nothing-paid default."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from scenario_kit import document, http, write_bundle
from subject_kit import Clock, Subject
from wbsrun.core.bus import ProgressBus
from wbsrun.core.events import PRIORITY_HIGH, PRIORITY_NORMAL
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import ProgressSpec
from wbsrun.poller import AGING_S, ChangeFilter, Poller, Priority, ProgressFeed, progress_feed
from wbsrun.protocols.registry import provides

PRIORITIES: tuple[Priority, ...] = (
    ("critical", {"timeline.phase": ("monitoring", "closing")}, 1.0),
    ("routine", {}, 0.2),
)
RUNNING = "executing.running_action"
CLOSING = "closing.success"


def _feed(
    rebuild: bool = True, cap: int = 4096, clock: Clock | None = None
) -> tuple[ProgressBus, ProgressFeed, Clock]:
    bus = ProgressBus(ProgressSpec(max_batch_size=10_000, flush_interval=0.1))
    clock = clock or Clock(10.0)
    feed = ProgressFeed(bus, rebuild=rebuild, cap=cap, clock=clock)
    feed.bind(Poller(bus, priorities=PRIORITIES), asyncio.Event())
    return bus, feed, clock


def _change(bus: ProgressBus, task: str, phase: str, field: str = "progress") -> None:
    bus.publish(Subject(task, phase=phase), field, PRIORITY_NORMAL)
    bus.flush()


def test_block_serves_the_highest_class_first_by_sequence_and_keeps_until_acked() -> None:
    bus, feed, _ = _feed()
    sub = feed.subscribe(ChangeFilter())
    _change(bus, "a", RUNNING)
    _change(bus, "b", CLOSING, "closed")
    _change(bus, "c", RUNNING)
    _change(bus, "d", "monitoring.error_detected", "error")

    first = sub.block(10)
    assert [(c.task, c.priority) for c in first] == [
        ("b", 1.0), ("d", 1.0), ("a", 0.2), ("c", 0.2)
    ]  # fmt: skip
    assert [c.sequence for c in first] == [2, 4, 1, 3]
    assert sub.block(10) == first  # not removed by block
    assert sub.ack(max(c.sequence for c in first)) == 4
    assert sub.block(10) == []
    assert not sub.ready()


def test_ack_drops_only_the_changes_block_handed_out() -> None:
    bus, feed, _ = _feed()
    sub = feed.subscribe(ChangeFilter())
    _change(bus, "a", RUNNING)
    _change(bus, "b", RUNNING)
    _change(bus, "c", CLOSING, "closed")
    (top,) = sub.block(1)
    assert (top.task, top.sequence) == ("c", 3)
    sub.ack(3)  # a and b (sequences 1, 2) were never handed out: they stay
    assert [c.task for c in sub.block(10)] == ["a", "b"]
    assert sub.size == 2


def test_a_low_priority_change_is_served_within_the_aging_bound_under_a_flood() -> None:
    bus, feed, clock = _feed()
    sub = feed.subscribe(ChangeFilter())
    _change(bus, "low", RUNNING)
    born = clock.now
    served_at = None
    for i in range(400):  # 20 s of polls, 50 ms apart, 5 new critical changes each
        clock.now += 0.05
        for j in range(5):
            _change(bus, f"hi{i}-{j}", CLOSING, "closed")
        batch = sub.block(1)
        if batch[0].task == "low":
            served_at = clock.now
            break
        sub.ack(batch[0].sequence)
    assert served_at is not None, "the low-priority change starved"
    # Not before its bound (priority order holds until then), and within it plus one poll.
    assert AGING_S <= served_at - born <= AGING_S + 0.05 + 1e-9


@given(
    flood=st.integers(0, 12),
    lows=st.integers(0, 3),
    poll_every=st.sampled_from([0.01, 0.05, 0.2, 0.5]),
    take=st.integers(1, 8),
)
@settings(max_examples=examples(60), deadline=None)
def test_an_aged_change_is_never_overtaken_by_a_newer_one(
    flood: int, lows: int, poll_every: float, take: int
) -> None:
    """Property (the minimum service rate): whatever arrives, once a change has waited
    AGING_S no newer change is handed out before it; before that, a higher class goes first.
    So a change waits at most AGING_S plus the time to serve the changes older than it."""
    bus, feed, clock = _feed()
    sub = feed.subscribe(ChangeFilter())
    for i in range(int(3 * AGING_S / poll_every) + 2):
        for j in range(lows):
            _change(bus, f"low{i}-{j}", RUNNING)
        for j in range(flood):
            _change(bus, f"hi{i}-{j}", CLOSING, "closed")
        clock.now += poll_every
        feed.refresh()
        before = sub.waiting()
        batch = sub.block(take)
        assert len(batch) == min(take, len(before))
        handed = {c.sequence for c in batch}
        aged_left = [w for w in before if w.sequence not in handed and clock.now - w.at >= AGING_S]
        for h in batch:
            assert all(w.sequence > h.sequence for w in aged_left), (h, aged_left[:1])
            if clock.now - h.at < AGING_S:  # a fresh one: nothing aged waits, none above it
                assert not aged_left
                assert all(w.priority <= h.priority for w in before if w.sequence not in handed)
        if batch:
            sub.ack(max(c.sequence for c in batch))


def test_the_backlog_is_capped_dropping_the_oldest_lowest_priority_first() -> None:
    bus, feed, _ = _feed(cap=4)
    sub = feed.subscribe(ChangeFilter())
    for task in ("r1", "r2", "r3"):
        _change(bus, task, RUNNING)
    for task in ("c1", "c2", "c3"):
        _change(bus, task, CLOSING, "closed")
    feed.refresh()
    assert sub.size == 4
    assert sub.dropped == 2
    assert [c.task for c in sub.block(10)] == ["c1", "c2", "c3", "r3"]
    for i in range(1000):  # a plugin that never acks: memory stays at the cap
        _change(bus, f"x{i}", CLOSING, "closed")
    feed.refresh()
    assert sub.size == 4
    assert feed.statistics().dropped == 1002


def test_ready_recomputes_from_the_bus_on_every_call() -> None:
    bus, feed, _ = _feed(rebuild=True)
    sub = feed.subscribe(ChangeFilter())
    assert not sub.ready()
    bus.publish(Subject("a"), "progress", PRIORITY_HIGH)  # delivered at once (high priority)
    assert sub.ready()  # seen without the feed's service having run
    assert feed.statistics().polls == {"ready": 2, "block": 0}


def test_without_rebuild_ready_reuses_its_answer_until_the_next_change() -> None:
    bus, feed, _ = _feed(rebuild=False)
    sub = feed.subscribe(ChangeFilter())
    assert not sub.ready()
    bus.publish(Subject("a"), "progress", PRIORITY_HIGH)
    assert not sub.ready()  # the cached answer: the feed has not taken the change in yet
    feed.refresh()  # what the feed's service does when the bus delivers
    assert sub.ready()
    sub.ack(max(c.sequence for c in sub.block(5)))
    assert not sub.ready()


def test_a_filter_selects_tasks_fields_and_least_priority() -> None:
    bus, feed, _ = _feed()
    only_closed = feed.subscribe(ChangeFilter(fields=frozenset({"closed"})))
    only_b = feed.subscribe(ChangeFilter(tasks=frozenset({"b"})))
    critical = feed.subscribe(ChangeFilter(min_priority=0.5))
    _change(bus, "a", RUNNING)
    _change(bus, "b", CLOSING, "closed")
    bus.publish(Subject("c", phase=CLOSING), "timeline.phase", PRIORITY_NORMAL)
    bus.publish(Subject("c", phase=CLOSING), "closed", PRIORITY_NORMAL)
    bus.flush()
    assert [(c.task, c.field) for c in only_closed.block(9)] == [("b", "closed"), ("c", "closed")]
    assert [c.task for c in only_b.block(9)] == ["b"]
    # One event of c, two dirty fields: two changes, in field order.
    assert [(c.task, c.field) for c in critical.block(9)] == [
        ("b", "closed"), ("c", "closed"), ("c", "timeline.phase")
    ]  # fmt: skip


def test_done_once_the_run_is_over() -> None:
    bus = ProgressBus(ProgressSpec())
    feed = ProgressFeed(bus)
    finished = asyncio.Event()
    feed.bind(Poller(bus), finished)
    sub = feed.subscribe(ChangeFilter())
    bus.publish(Subject("a"), "progress", PRIORITY_NORMAL)  # pending in the bus
    assert not sub.done()
    finished.set()
    assert sub.done()
    assert sub.ready()  # done() took in what the bus still held


def test_a_feed_nobody_subscribes_to_costs_the_bus_nothing() -> None:
    bus = ProgressBus(ProgressSpec())
    ProgressFeed(bus).bind(Poller(bus), asyncio.Event())
    subscribers = bus.statistics().subscribers  # the poller's own
    feed = ProgressFeed(bus)
    feed.bind(Poller(bus), asyncio.Event())
    assert bus.statistics().subscribers == subscribers + 1  # the second poller, not the feeds
    feed.subscribe(ChangeFilter())
    assert bus.statistics().subscribers == subscribers + 2


def test_a_subscription_made_before_the_poller_is_bound_gets_its_classes() -> None:
    bus = ProgressBus(ProgressSpec())
    feed = ProgressFeed(bus)
    sub = feed.subscribe(ChangeFilter())  # a plugin's init, at load: no poller yet
    feed.bind(Poller(bus, priorities=PRIORITIES), asyncio.Event())
    _change(bus, "a", RUNNING)
    _change(bus, "b", CLOSING, "closed")
    assert [c.task for c in sub.block(9)] == ["b", "a"]


@pytest.mark.parametrize(
    ("poller", "expected"),
    [
        ({}, None),
        ({"progress_pollable": False, "rebuild-future-each-iteration": False}, None),
        ({"progress_pollable": True}, True),
        ({"progress_pollable": True, "rebuild-future-each-iteration": False}, False),
    ],
)
def test_the_dsl_switches_the_feed_and_its_rebuild(
    tmp_path: Path, poller: dict[str, Any], expected: bool | None
) -> None:
    doc = document({"get": http("get")}, {"steps": [{"ref": "get"}]})
    doc["progress"] = {"poller": poller}
    plan = load_plan(write_bundle(tmp_path, doc, [("127.0.0.1", 9)]), provides())
    feed = progress_feed(ProgressBus(plan.progress), plan.progress)
    assert (None if feed is None else feed.rebuild) is expected
