"""The poller on a bus fed by hand (fake clocks, no run): priority classes and their order,
no starvation, health scores and the risk ladder, deadlines, latency."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from subject_kit import FakeTask
from wbsrun.core.bus import ProgressBus
from wbsrun.core.events import PRIORITY_HIGH, PRIORITY_NORMAL
from wbsrun.core.ledger.dense import Workbook
from wbsrun.core.ledger.sparse import SparseWorkbook
from wbsrun.dsl.plan import HealthThreshold, ProgressSpec, WorkbookSpec
from wbsrun.poller import MIN_WEIGHT, CheckClass, Poller, Priority, StrideQueue, health_score

DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "telemetry": {"counters": {"success": 0, "failure": 0}, "health": {"score": 1.0}},
        "registers": {"risk": {"flag": "none", "entries": ()}},
        "execution": {"timeout_at": None},
    }
)
REFERENCE_PRIORITIES: tuple[Priority, ...] = (
    ("critical-checks", {"timeline.phase": ("monitoring", "closing")}, 1.0),
    ("routine-checks", {"timeline.phase": ("planning", "executing")}, 0.6),
    ("backlog", {}, 0.2),
)
RULE = HealthThreshold("telemetry.health.score", 0.85, 3)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    bus: ProgressBus
    poller: Poller
    book: Workbook
    clock: Clock
    wall: Clock

    def task(self, task_id: str, **kw: Any) -> FakeTask:
        return FakeTask(task_id, self.book.open("u1", task_id, "s"), **kw)

    def publish(self, task: FakeTask, fld: str, priority: float = PRIORITY_NORMAL) -> None:
        self.bus.publish(task, fld, priority)

    def deliver(self) -> None:
        self.bus.flush()
        self.poller.ingest(self.poller._sub.recv_nowait())


def rig(
    priorities: Any = REFERENCE_PRIORITIES, health: Mapping[str, HealthThreshold] | None = None
) -> Rig:
    clock, wall = Clock(), Clock(50_000.0)
    bus = ProgressBus(ProgressSpec(priority_threshold=0.7), clock=clock)
    book = Workbook(WorkbookSpec(DEFAULTS, {}, {}, {"risk_flag": "registers.risk.flag"}))
    poller = Poller(
        bus,
        priorities=priorities,
        health=health or {},
        workbook=book,
        wall=wall,
        timeout_grace=0.5,
        aliases={"state": "timeline.phase"},
    )
    return Rig(bus, poller, book, clock, wall)


# -- classes and order ---------------------------------------------------------------------------


def test_a_match_value_selects_its_sub_states_but_not_other_words() -> None:
    cls = CheckClass("c", {"timeline.phase": ("monitoring",)}, 1.0)

    def reads(value: str | None) -> Callable[[str], Any]:
        return lambda path: value if path == "timeline.phase" else None

    assert cls.matches(reads("monitoring.timeout"))
    assert cls.matches(reads("monitoring"))
    assert not cls.matches(reads("monitoringx"))
    assert not cls.matches(reads(None))


def test_checks_run_in_the_order_of_their_class_weights() -> None:
    r = rig()
    names = ["idle", "exec", "mon", "close"]
    phases = ["initiating.idle", "executing.running_action", "monitoring.timeout", "closing.error"]
    for name, phase in zip(names, phases, strict=True):
        r.publish(r.task(name, phase=phase), "timeline.phase")
    r.deliver()

    order = []
    for _ in names:
        r.poller.run_checks(1)
        order.append({n: v for n, v in r.poller.statistics().served.items() if v})
    # critical (1.0) twice, then routine (0.6), then backlog (0.2): a stride order.
    assert order[0] == {"critical-checks": 1}
    assert order[-1] == {"critical-checks": 2, "routine-checks": 1, "backlog": 1}
    assert r.poller.statistics().checks["phase"] == 4


def test_a_check_no_class_matches_takes_the_weight_of_the_entry_without_match() -> None:
    r = rig()
    r.publish(r.task("a", phase="initiating.idle"), "timeline.phase")
    r.deliver()
    r.poller.run_checks()
    assert r.poller.statistics().served["backlog"] == 1


def test_without_an_entry_without_match_unmatched_checks_get_the_lowest_weight() -> None:
    r = rig(priorities=(("hot", {"state": ("closing",)}, 0.9), ("warm", {"x.y": ("1",)}, 0.3)))
    r.publish(r.task("a", phase="executing.blocked"), "timeline.phase")
    r.publish(r.task("b", phase="closing.success"), "timeline.phase")
    r.deliver()
    r.poller.run_checks()
    assert r.poller.statistics().served == {"hot": 1, "warm": 0, "unmatched": 1}


def test_several_updates_of_a_queued_task_make_one_check_with_the_latest_state() -> None:
    r = rig()
    t = r.task("a", phase="executing.running_action")
    r.publish(t, "timeline.phase")
    r.deliver()
    t.phase = "monitoring.error_detected"
    r.publish(t, "timeline.phase", PRIORITY_HIGH)
    r.deliver()
    assert r.poller.run_checks() == 1
    assert r.poller.statistics().events == 2


def test_a_queued_check_moves_to_a_more_urgent_class_when_its_task_enters_one() -> None:
    r = rig()
    waiting = [r.task(f"w{i}", phase="executing.running_action") for i in range(3)]
    for t in waiting:
        r.publish(t, "timeline.phase")
    r.deliver()
    t = waiting[2]
    t.phase = "monitoring.error_detected"
    r.publish(t, "timeline.phase", PRIORITY_HIGH)
    r.deliver()

    assert r.poller.run_checks(1) == 1
    assert r.poller.statistics().served["critical-checks"] == 1
    assert r.poller.run_checks() == 2  # the superseded routine check is skipped
    assert r.poller.statistics().served == {
        "critical-checks": 1,
        "routine-checks": 2,
        "backlog": 0,
    }


@settings(max_examples=examples(60), deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 2.0), min_size=2, max_size=5),
    pops=st.integers(50, 400),
)
def test_no_backlogged_class_starves_each_gets_at_least_its_weight_share(
    weights: list[float], pops: int
) -> None:
    q = StrideQueue(weights)
    for i in range(len(weights)):
        for _ in range(pops):
            q.push(i, i)
    for _ in range(pops):
        q.pop()
    eff = [max(w, MIN_WEIGHT) for w in weights]
    for i, w in enumerate(eff):
        # Stride scheduling lags an exact share by less than one pop per competing class.
        assert q.served[i] >= int(pops * w / sum(eff)) - len(weights)


def test_a_flood_of_critical_checks_still_lets_backlog_checks_through() -> None:
    r = rig()
    low = [r.task(f"low{i}", phase="initiating.idle") for i in range(20)]
    for t in low:
        r.publish(t, "timeline.phase")
    r.deliver()
    for i in range(200):
        r.publish(r.task(f"hot{i}", phase="monitoring.timeout"), "timeline.phase")
        r.deliver()
        r.poller.run_checks(1)
    served = r.poller.statistics().served
    # 0.2 / (1.0 + 0.2) of 200 checks ≈ 33: every backlog check ran despite the flood.
    assert served["backlog"] == 20


# -- health and risk -----------------------------------------------------------------------------


@settings(max_examples=examples(200))
@given(p=st.floats(-1, 2), e=st.floats(-1, 2), d=st.floats(-1, 2), more=st.floats(0, 1))
def test_health_is_bounded_and_grows_with_progress(
    p: float, e: float, d: float, more: float
) -> None:
    h = health_score(p, e, d)
    assert 0.0 <= h <= 1.0
    assert health_score(min(1.0, max(p, 0.0) + more), e, d) >= h - 1e-12


def test_health_follows_the_dsl_formula() -> None:
    assert health_score(1.0, 0.0, 0.0) == pytest.approx(1.0)
    assert health_score(0.5, 0.2, 0.3) == pytest.approx(0.5 * 0.6 + 0.8 * 0.3 + 0.7 * 0.1)


def _close(r: Rig, task_id: str, progress: float, failures: int) -> FakeTask:
    t = r.task(task_id, phase="closing.error" if failures else "closing.success")
    t.progress = progress
    r.book.set(t.entry, "telemetry.counters", {"failure": failures, "workload_units": 2})
    r.publish(t, "closed", PRIORITY_HIGH)
    return t


def test_consecutive_breaches_escalate_the_risk_flag_and_append_a_risk_entry() -> None:
    r = rig(health={"s": RULE})
    tasks = [_close(r, f"t{i}", 0.0, 2) for i in range(4)]
    r.deliver()
    r.poller.run_checks()

    flags = [r.book.get(t.entry, "risk_flag") for t in tasks]
    assert flags == ["identified", "identified", "escalated", "escalated"]
    assert [r.book.get(t.entry, "telemetry.health.score") for t in tasks] == [0.0] * 4
    risks = r.book.get(tasks[2].entry, "registers.risk.entries")
    assert len(risks) == 1
    assert risks[0]["severity"] == "high"
    assert risks[0]["streak"] == 3
    assert list(r.book.get(tasks[0].entry, "registers.risk.entries")) == []
    st_ = r.poller.statistics()
    assert (st_.breaches, st_.identified, st_.escalations) == (4, 2, 2)


def test_a_healthy_close_resets_the_breach_streak() -> None:
    r = rig(health={"s": RULE})
    tasks = [_close(r, "a", 0.0, 2), _close(r, "b", 0.0, 2), _close(r, "ok", 1.0, 0)]
    tasks.append(_close(r, "c", 0.0, 2))
    r.deliver()
    r.poller.run_checks()
    flags = [r.book.get(t.entry, "risk_flag") for t in tasks]
    assert flags == ["identified", "identified", "none", "identified"]
    assert r.book.get(tasks[2].entry, "telemetry.health.score") == 1.0


def test_a_running_tasks_score_is_written_live_but_is_not_a_breach() -> None:
    r = rig(health={"s": RULE})
    t = r.task("a", progress=0.3)
    r.book.set(t.entry, "timeline.start_at", r.wall.now - 1.0)
    r.book.set(t.entry, "execution.timeout_at", r.wall.now + 1.0)
    r.publish(t, "progress")
    r.deliver()
    r.poller.run_checks()
    # planned 0.5 at mid-window, actual 0.3: deviation 0.2.
    expected = round(health_score(0.3, 0.0, 0.2), 4)
    assert r.book.get(t.entry, "telemetry.health.score") == expected
    assert r.poller.statistics().breaches == 0


# -- deadlines and latency -----------------------------------------------------------------------


def _running_with_deadline(r: Rig, task_id: str, phase: str) -> FakeTask:
    t = r.task(task_id, phase=phase)
    r.book.set(t.entry, "execution.timeout_at", r.wall.now + 1.0)
    r.publish(t, "timeline.phase")
    return t


def test_a_task_still_running_after_its_timeout_at_is_overdue() -> None:
    r = rig()
    late = _running_with_deadline(r, "late", "executing.running_action")
    handled = _running_with_deadline(r, "handled", "executing.running_action")
    r.deliver()
    r.poller.run_checks()
    handled.phase = "monitoring.timeout"
    r.publish(handled, "timeline.phase", PRIORITY_HIGH)
    r.deliver()
    r.poller.run_checks()
    assert r.poller._next_wake() == pytest.approx(1.5)

    r.wall.now += 1.6
    r.poller._due_deadlines()
    r.poller.run_checks()
    st_ = r.poller.statistics()
    assert (st_.deadlines_passed, st_.overdue) == (2, 1)
    issues = r.book.get(late.entry, "registers.issue.entries")
    assert issues[0]["id"] == "overdue-late"


def test_a_closed_task_has_no_deadline_check() -> None:
    r = rig()
    t = _running_with_deadline(r, "a", "executing.running_action")
    r.deliver()
    r.poller.run_checks()
    t.phase = "closing.success"
    r.publish(t, "closed", PRIORITY_HIGH)
    r.deliver()
    r.poller.run_checks()
    r.wall.now += 5
    r.poller._due_deadlines()
    assert r.poller.run_checks() == 0
    assert r.poller.statistics().live == 0


def test_a_late_update_of_a_closed_task_does_not_reopen_it() -> None:
    r = rig()
    t = r.task("a", phase="closing.success")
    r.publish(t, "closed", PRIORITY_HIGH)
    r.deliver()
    r.poller.run_checks()
    r.publish(t, "lease", PRIORITY_HIGH)
    r.deliver()
    assert r.poller.run_checks() == 0
    assert r.poller.statistics().live == 0


def test_latency_is_measured_from_the_first_publish_to_the_check() -> None:
    r = rig()
    t = r.task("a")
    r.publish(t, "progress")
    r.clock.now += 0.010
    r.publish(t, "milestone")
    r.deliver()
    r.clock.now += 0.020
    r.poller.run_checks()
    latency = r.poller.statistics().latency_ms
    assert latency["count"] == 1
    assert latency["p50"] == pytest.approx(30.0, rel=0.02)


def test_the_sparse_entry_of_a_task_is_packed_once_its_close_check_ran() -> None:
    clock = Clock()
    bus = ProgressBus(ProgressSpec(priority_threshold=0.7), clock=clock)
    book = SparseWorkbook(WorkbookSpec(DEFAULTS, {}, {}, {}))
    poller = Poller(bus, health={"s": RULE}, workbook=book, wall=Clock(50_000.0))
    running = FakeTask("a", book.open("u1", "a", "s"), progress=0.4)
    done = FakeTask("b", book.open("u1", "b", "s"), progress=0.5)
    book.transition(done.entry, "initiating.idle", "closing.success", 1.0, "close")
    bus.publish(running, "progress", PRIORITY_NORMAL)
    bus.publish(done, "closed", PRIORITY_HIGH)
    bus.flush()
    poller.ingest(poller._sub.recv_nowait())
    assert not done.entry.packed  # not before its check
    poller.run_checks()
    assert done.entry.packed
    assert not running.entry.packed
    # The close check's score (below the default 1.0: half done) went in before the packing,
    # and reads back from the packed form.
    assert book.get(done.entry, "telemetry.health.score") < 1.0
    assert book.get(done.entry, "timeline.phase") == "closing.success"
