"""`AggregatingSink` notes progress, milestone and rollback events and the aggregator folds
them in before any read: every figure read is the one an aggregator fed each event at once
(`record()`, as the sink used to) gives, and the events all reach the forward sink.

The contract this rests on, which the executor keeps: a task's progress and milestones change
only right before (with no await in between) an event that reports the change — `progress`,
`milestone`, `rollback` or `closed`. A fold reads the live task, so a change made long before
its event would be seen early."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.core.bus import ProgressBus
from wbsrun.core.events import PRIORITY_HIGH, PRIORITY_NORMAL
from wbsrun.dsl.plan import ProgressSpec
from wbsrun.progress.aggregate import AggregatingSink, Aggregator
from wbsrun.progress.baseline import ScenarioBaseline
from wbsrun.progress.views import ProgramProgress

MILESTONES = (("probe", 0.3), ("push", 0.4), ("purge", 0.3))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Subject:
    task_id: str
    user_id: str
    scenario_name: str
    phase: str = "planning.ready"
    progress: float = 0.0
    error_class: str | None = None
    milestones: set[str] = field(default_factory=set)


class Eager:
    """The sink as it was: every event it aggregates goes to `record()` at once."""

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator

    def publish(self, subject: Any, field: str, priority: float) -> None:
        if field in ("timeline.phase", "error", "lease") and subject.phase != "planning.ready":
            return
        self.aggregator.record(
            subject.task_id,
            subject.user_id,
            subject.scenario_name,
            subject.progress,
            subject.milestones,
            field == "closed",
        )


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []

    def publish(self, subject: Any, field: str, priority: float) -> None:
        self.seen.append((subject.task_id, field, priority))


def _aggregator(clock: Clock) -> Aggregator:
    plans = [
        ScenarioBaseline("a", 3, 6, 2, None, 0.0, milestones=MILESTONES),
        ScenarioBaseline("b", 2, 2, 1, None, 0.0, milestones=MILESTONES[:1]),
    ]
    return Aggregator(plans, clock=clock)


def _figures(agg: Aggregator, elapsed: float) -> tuple[Any, ...]:
    snap: ProgramProgress = agg.snapshot(elapsed)
    scenarios = tuple(
        (
            s.name,
            round(s.work, 9),
            s.tasks_started,
            s.tasks_closed,
            s.users_seen,
            s.mean_pass_s,
            tuple((m.name, m.reached) for m in s.milestones),
            None if s.milestones_weighted is None else round(s.milestones_weighted, 9),
        )
        for s in snap.scenarios
    )
    users = tuple(
        None if (u := agg.user(f"{sc}-u{i}")) is None else (round(u.progress, 9), u.tasks_closed)
        for sc in "abc"
        for i in range(3)
    )
    return (round(snap.work, 9), snap.tasks_started, agg.tasks_open, scenarios, users)


FIELDS = ("timeline.phase", "progress", "milestone", "rollback", "error", "lease", "custom")
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("event"),
            st.integers(0, 8),
            st.sampled_from(FIELDS),
            st.floats(-0.2, 1.2, allow_nan=False),
            st.sampled_from(["", "probe", "push", "purge", "-probe", "-push"]),
            st.sampled_from(["planning.ready", "executing.running_action"]),
        ),
        st.tuples(st.just("close"), st.integers(0, 8)),
        st.tuples(st.just("read")),
        st.tuples(st.just("tick"), st.floats(0.0, 2.0)),
    ),
    max_size=120,
)


_OPEN_C0 = ("event", 2, "timeline.phase", 0.0, "", "planning.ready")
_PUSH_C0 = ("event", 2, "progress", 0.0, "push", "planning.ready")
_PROBE_C2 = ("event", 8, "progress", 0.0, "probe", "planning.ready")


@settings(max_examples=examples(200), deadline=None)
@given(ops=_ops)
# Found by hypothesis (the CI profile): a tick of 3.7e-250 s made a pace of ~1e250 passes a
# second; the forecast's trend then overflowed (OverflowError) at the next read.
@example(
    ops=[
        ("event", 0, "timeline.phase", 0.0, "", "planning.ready"),
        ("close", 0),
        ("tick", 3.673806414225495e-251),
        ("event", 0, "timeline.phase", 0.0, "", "planning.ready"),
        ("event", 0, "timeline.phase", 0.0, "", "planning.ready"),
        ("read",),
        ("tick", 1.0),
    ]
)
# Found by hypothesis (shrunk as found; the first 14 events play no part): a noted milestone
# of one task folded in after another task's, observed at once, listed them in another order.
@example(
    ops=[
        *[("event", 0, "timeline.phase", 0.0, "", "planning.ready")] * 14,
        _OPEN_C0,
        _PUSH_C0,
        _PROBE_C2,
        ("read",),
    ]
)
@example(ops=[_OPEN_C0, _PUSH_C0, _PROBE_C2])
# The same through a loss: the eager aggregator drops an unplanned milestone no task holds
# and counts it again last; the lazy one folds the loss and the reach into no change.
@example(
    ops=[
        _OPEN_C0,
        ("event", 5, "timeline.phase", 0.0, "", "planning.ready"),
        ("event", 2, "milestone", 0.0, "probe", "executing.running_action"),
        ("event", 5, "milestone", 0.0, "push", "executing.running_action"),
        ("event", 2, "rollback", 0.0, "-probe", "executing.running_action"),
        ("event", 2, "milestone", 0.0, "probe", "executing.running_action"),
        ("read",),
    ]
)
def test_every_read_sees_what_observing_each_event_at_once_gives(ops: list[Any]) -> None:
    clock = Clock()
    lazy_agg, eager_agg = _aggregator(clock), _aggregator(clock)
    forward = Recorder()
    lazy, eager = AggregatingSink(lazy_agg, forward), Eager(eager_agg)
    subjects: dict[int, Subject] = {}
    passes: dict[int, int] = {}
    published: list[tuple[str, str, float]] = []

    def subject(i: int) -> Subject:
        if i not in subjects:
            passes[i] = passes.get(i, 0) + 1
            scenario = "abc"[i % 3]
            subjects[i] = Subject(
                f"{scenario}-u{i // 3}-t{passes[i]}", f"{scenario}-u{i // 3}", scenario
            )
        return subjects[i]

    for op in ops:
        if op[0] == "event":
            _, i, fld, progress, milestone, phase = op
            s = subject(i)
            s.phase = phase
            if fld in ("progress", "milestone", "rollback"):
                # As the executor does: progress and milestones change only right before an
                # event that says so (`closed` included), never before another kind.
                s.progress = progress
                if milestone.startswith("-"):
                    s.milestones.discard(milestone[1:])
                elif milestone:
                    s.milestones.add(milestone)
            for sink in (lazy, eager):
                sink.publish(s, fld, PRIORITY_NORMAL)
            published.append((s.task_id, fld, PRIORITY_NORMAL))
        elif op[0] == "close" and op[1] in subjects:
            s = subjects.pop(op[1])
            s.phase = "closing.success"
            for sink in (lazy, eager):
                sink.publish(s, "closed", PRIORITY_HIGH)
            published.append((s.task_id, "closed", PRIORITY_HIGH))
        elif op[0] == "read":
            assert _figures(lazy_agg, clock.now) == _figures(eager_agg, clock.now)
        elif op[0] == "tick":
            clock.now += op[1]
    assert _figures(lazy_agg, clock.now + 1) == _figures(eager_agg, clock.now + 1)
    assert forward.seen == published


def test_a_pass_is_timed_from_its_first_event_even_when_that_is_a_progress_event() -> None:
    clock = Clock()
    agg = _aggregator(clock)
    sink = AggregatingSink(agg)
    s = Subject("a-u0-t1", "a-u0", "a", phase="executing.running_action")
    sink.publish(s, "progress", PRIORITY_NORMAL)  # opens the pass: not deferred
    clock.now = 3.0
    s.progress = 1.0
    sink.publish(s, "progress", PRIORITY_NORMAL)
    clock.now = 5.0
    sink.publish(s, "closed", PRIORITY_HIGH)
    (view, _) = agg.snapshot(5.0).scenarios
    assert view.mean_pass_s == pytest.approx(5.0)
    assert view.work == pytest.approx(1.0 / 6)


def test_milestones_outside_the_plan_are_listed_by_name_whenever_they_were_folded_in() -> None:
    clock = Clock()
    lazy_agg, eager_agg = _aggregator(clock), _aggregator(clock)
    sink = AggregatingSink(lazy_agg)
    # Scenario "c" is not in the plan: none of its milestones are planned.
    first, second = Subject("c-u0-t1", "c-u0", "c"), Subject("c-u1-t1", "c-u1", "c")
    sink.publish(first, "timeline.phase", PRIORITY_NORMAL)  # opens it
    first.milestones.add("push")
    sink.publish(first, "milestone", PRIORITY_NORMAL)  # noted: folded in at the next read
    second.milestones.add("probe")
    sink.publish(second, "milestone", PRIORITY_NORMAL)  # opens it: observed at once
    eager_agg.record("c-u0-t1", "c-u0", "c", 0.0, frozenset(), False)
    eager_agg.record("c-u0-t1", "c-u0", "c", 0.0, frozenset({"push"}), False)
    eager_agg.record("c-u1-t1", "c-u1", "c", 0.0, frozenset({"probe"}), False)
    for agg in (lazy_agg, eager_agg):
        (*_, c) = agg.snapshot(0.0).scenarios
        assert [(m.name, m.reached) for m in c.milestones] == [("probe", 1), ("push", 1)]
    # Planned milestones keep the plan's order ahead of any other.
    eager_agg.record("a-u0-t1", "a-u0", "a", 0.0, frozenset({"zz", "aa", "push"}), False)
    (a, *_) = eager_agg.snapshot(0.0).scenarios
    assert [m.name for m in a.milestones] == ["probe", "push", "purge", "aa", "zz"]


def test_the_sink_hands_the_bus_the_task_id_it_read() -> None:
    bus = ProgressBus(ProgressSpec(priority_threshold=0.7))
    sub = bus.subscribe()
    agg = _aggregator(Clock())
    sink = AggregatingSink(agg, forward=bus)
    s = Subject("a-u0-t1", "a-u0", "a")
    for fld in ("timeline.phase", "lease", "progress", "milestone"):
        sink.publish(s, fld, PRIORITY_NORMAL)
    sink.publish(s, "closed", PRIORITY_HIGH)
    (ev,) = sub.recv_nowait()
    assert ev.task_id == "a-u0-t1"
    assert ev.dirty == {"timeline.phase", "lease", "progress", "milestone", "closed"}
    assert bus.statistics().published == 5
    sink.forward = None  # a sink can be rewired: nothing is forwarded any more
    sink.publish(Subject("a-u1-t1", "a-u1", "a"), "timeline.phase", PRIORITY_NORMAL)
    assert bus.statistics().published == 5
    assert agg.tasks_open == 1
