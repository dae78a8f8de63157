"""The poller's cheaper paths give what the plain ones gave: `pop_many()` is successive
`pop()`s, `task_health()` is the three health functions composed, deadlines come due in
deadline order whatever bucket they sit in, and closed tasks are remembered as many as before."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from subject_kit import Clock, FakeTask
from wbsrun.core.bus import ProgressBus
from wbsrun.core.events import PRIORITY_HIGH, PRIORITY_NORMAL
from wbsrun.core.ledger.dense import Workbook
from wbsrun.dsl.plan import ProgressSpec, WorkbookSpec
from wbsrun.poller import Poller, StrideQueue
from wbsrun.poller._health import deviation, error_rate, health_score, task_health
from wbsrun.poller._poller import REMEMBER_CLOSED

# -- the queue -----------------------------------------------------------------------------------

_queue_ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 3), st.integers(1, 5)),
        st.tuples(st.just("pop"), st.integers(0, 12)),
        st.tuples(st.just("many"), st.one_of(st.none(), st.integers(0, 12))),
    ),
    max_size=60,
)


@settings(max_examples=examples(200), deadline=None)
@given(weights=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=4), ops=_queue_ops)
def test_pop_many_gives_what_successive_pops_give(weights: list[float], ops: list[Any]) -> None:
    ref, fast = StrideQueue(weights), StrideQueue(weights)
    seq = 0
    for op in ops:
        if op[0] == "push":
            cls = op[1] % len(weights)
            for _ in range(op[2]):
                seq += 1
                ref.push(cls, seq)
                fast.push(cls, seq)
        else:
            want = len(ref) if op[1] is None else min(op[1], len(ref))
            expected = [ref.pop()[1] for _ in range(want)]
            got = fast.pop_many(op[1]) if op[0] == "many" else [fast.pop()[1] for _ in expected]
            assert got == expected
        assert len(fast) == len(ref)
        assert fast.served == ref.served
        assert fast.depths() == ref.depths()
        assert (fast._pass, fast._vtime) == (ref._pass, ref._vtime)


# -- health --------------------------------------------------------------------------------------

_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 10), st.none(), st.just("x")
)
_counters = st.one_of(
    st.none(),
    st.just("not a mapping"),
    st.dictionaries(st.sampled_from(["workload_units", "failure", "timeout", "success"]), _number),
    st.dictionaries(
        st.sampled_from(["workload_units", "failure", "timeout"]), st.integers(0, 20)
    ).map(MappingProxyType),
)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (
        a == b and math.copysign(1, a) == math.copysign(1, b)
    )


@settings(max_examples=examples(400), deadline=None)
@given(
    progress=st.floats(allow_nan=True, allow_infinity=True),
    counters=_counters,
    has_error=st.booleans(),
    closed=st.booleans(),
    now=st.floats(-10, 10),
    start=_number,
    deadline=_number,
)
def test_task_health_is_the_health_functions_composed_to_the_bit(
    progress: float,
    counters: Mapping[str, Any] | None,
    has_error: bool,
    closed: bool,
    now: float,
    start: Any,
    deadline: Any,
) -> None:
    try:
        rate = error_rate(counters, has_error)
        dev = deviation(progress, closed, now, start, deadline)
        expected: float | type[Exception] = health_score(progress, rate, dev)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        expected = type(exc)
    if isinstance(expected, float):
        got = task_health(progress, counters, has_error, closed, now, start, deadline)
        assert _same(got, expected)
    else:
        with pytest.raises(expected):
            task_health(progress, counters, has_error, closed, now, start, deadline)


# -- deadlines and closed tasks ------------------------------------------------------------------

DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"execution": {"timeout_at": None}, "registers": {"issue": {"entries": ()}}}
)


def _rig(grace: float = 0.5) -> tuple[ProgressBus, Poller, Workbook, Clock]:
    wall = Clock(1_000.0)
    bus = ProgressBus(ProgressSpec(priority_threshold=0.7), clock=Clock(10.0))
    book = Workbook(WorkbookSpec(DEFAULTS, {}, {}, {}))
    poller = Poller(bus, workbook=book, wall=wall, timeout_grace=grace)
    return bus, poller, book, wall


def _deliver(bus: ProgressBus, poller: Poller) -> None:
    bus.flush()
    poller.ingest(poller._sub.recv_nowait())
    poller.run_checks()


@settings(max_examples=examples(80), deadline=None)
@given(
    offsets=st.lists(
        st.one_of(st.floats(0.0, 3.0), st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.2499999])),
        min_size=1,
        max_size=25,
    ),
    closed=st.sets(st.integers(0, 24)),
    steps=st.lists(st.floats(0.0, 1.5), min_size=1, max_size=6),
)
def test_due_deadlines_come_in_deadline_order_and_only_for_open_tasks(
    offsets: list[float], closed: set[int], steps: list[float]
) -> None:
    grace = 0.5
    bus, poller, book, wall = _rig(grace)
    tasks = []
    for i, off in enumerate(offsets):
        t = FakeTask(f"t{i:02d}", book.open("u1", f"t{i:02d}", "s"))
        book.set(t.entry, "execution.timeout_at", wall.now + off)
        bus.publish(t, "timeline.phase", PRIORITY_NORMAL)
        tasks.append(t)
    _deliver(bus, poller)
    for i in closed & set(range(len(tasks))):
        tasks[i].phase = "closing.success"
        bus.publish(tasks[i], "closed", PRIORITY_HIGH)
    _deliver(bus, poller)
    open_ = {t.task_id: t for i, t in enumerate(tasks) if i not in closed}
    deadline = {t.task_id: book.get(t.entry, "execution.timeout_at") for t in tasks}
    fired: list[str] = []
    for step in steps:
        wall.now += step
        live = [tid for tid in open_ if tid not in fired]
        if live:
            first = min(deadline[tid] for tid in live)
            assert poller._next_wake() == max(0.0, first + grace - wall.now)
        else:
            assert poller._next_wake() is None
        before = poller.statistics().deadlines_passed
        poller._due_deadlines()
        queued = [check[0].task_id for check in poller._queue.pop_many()]
        due = sorted((deadline[tid], tid) for tid in live if deadline[tid] <= wall.now - grace)
        assert queued == [tid for _, tid in due]
        # Put them back as they were and run them: each is judged once.
        for tid in queued:
            poller._live[tid].check = None
            poller._enqueue(poller._live[tid], 4, None)
        poller.run_checks()
        fired.extend(queued)
        assert poller.statistics().deadlines_passed == before + len(queued)


def test_the_last_remember_closed_task_ids_are_remembered_and_no_more() -> None:
    bus, poller, book, _ = _rig()
    first = FakeTask("first", book.open("u1", "first", "s"), phase="closing.success")
    bus.publish(first, "closed", PRIORITY_HIGH)
    second = FakeTask("second", book.open("u1", "second", "s"), phase="closing.success")
    bus.publish(second, "closed", PRIORITY_HIGH)
    _deliver(bus, poller)
    for i in range(REMEMBER_CLOSED - 1):
        t = FakeTask(f"t{i}", book.open("u1", f"t{i}", "s"), phase="closing.success")
        bus.publish(t, "closed", PRIORITY_HIGH)
    _deliver(bus, poller)
    # `first` fell out of the memory: a late update opens a record; `second` did not.
    bus.publish(second, "lease", PRIORITY_HIGH)
    bus.publish(first, "lease", PRIORITY_HIGH)
    bus.flush()
    poller.ingest(poller._sub.recv_nowait())
    assert set(poller._live) == {"first"}
    assert poller.statistics().checks["close"] == REMEMBER_CLOSED + 1
