"""The plan as the progress denominator: every field of a baseline, worked out by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, cast

import pytest

from wbsrun.core.arrivals import ArrivalSchedule
from wbsrun.core.scheduler import SpawnPlan
from wbsrun.dsl.plan import Milestone, Plan, ScenarioSpec
from wbsrun.progress.baseline import ScenarioBaseline, baseline, baselines, total_planned


def _spec(**kw: Any) -> ScenarioSpec:
    fields: dict[str, Any] = {
        "name": "s",
        "workflow": "wf",
        "user_count": 3,
        "spawn_rate": None,
        "profile": None,
        "task_duration": None,
        "iterations": None,
        "think_time": 0.0,
        "inherit": (),
        "session_new": False,
        "context": {},
        "exits": {},
        "milestones": (),
        "aggregation": (),
        "health_threshold": None,
        "max_duration": None,
        "wbs_level": "L2",
    }
    fields.update(kw)
    return ScenarioSpec(**fields)


def _boxed(starts: tuple[float, ...], ends: tuple[float, ...]) -> ScenarioBaseline:
    users, last = len(starts), max(starts)
    return ScenarioBaseline("b", users, None, None, None, last, starts=starts, ends=ends)


def test_a_count_bounded_baseline_carries_the_plan_as_given() -> None:
    milestones = (Milestone("login", "n", "e", 1.0), Milestone("pay", "n", "e", 2.5))
    spec = _spec(name="shop", iterations=2, think_time=0.5, milestones=milestones)
    got = baseline(spec, SpawnPlan((2.0, 0.0, 1.0), None))
    assert (got.name, got.users, got.planned_tasks, got.passes_per_user) == ("shop", 3, 6, 2)
    assert (got.duration, got.last_start, got.think_time) == (None, 2.0, 0.5)
    assert got.milestones == (("login", 1.0), ("pay", 2.5))
    assert got.milestone_total == 3.5
    assert got.starts == (0.0, 1.0, 2.0)  # sorted
    assert (got.ends, got.window_end, got.time_boxed) == ((), None, False)


def test_without_iterations_or_a_window_each_user_plans_one_pass() -> None:
    got = baseline(_spec(), SpawnPlan((0.0, 0.5, 1.0, 1.5), None))
    assert (got.planned_tasks, got.passes_per_user) == (4, 1)


@pytest.mark.parametrize(
    ("kw", "stop_after", "duration"),
    [
        ({"max_duration": 30.0}, 20.0, 25.0),
        ({"max_duration": 15.0}, 20.0, 25.0),
        ({}, 20.0, 12.0),
        ({}, None, 40.0),
    ],
)
def test_the_planned_duration_is_the_first_of_the_limits(
    kw: dict[str, Any], stop_after: float | None, duration: float
) -> None:
    # Limits: profile stop, max-duration, --duration, last start + task-duration (4 + 18).
    got = baseline(_spec(task_duration=18.0, **kw), SpawnPlan((0.0, 4.0), stop_after), duration)
    limits = [x for x in (stop_after, kw.get("max_duration"), duration, 22.0) if x is not None]
    assert got.duration == min(limits)


def test_a_window_is_cut_by_the_earliest_stop_and_empty_after_it() -> None:
    # task-duration 10 s, max-duration 7 s: user 0 runs [0, 7], user 1 [5, 7]; user 2 spawns
    # at 9, after the stop, so its window is [9, 9].
    got = baseline(_spec(task_duration=10.0, max_duration=7.0), SpawnPlan((0.0, 5.0, 9.0), None))
    assert got.ends == (7.0, 7.0, 9.0)
    assert got.duration == 7.0
    assert got.user_time(7.0) == 7.0 + 2.0
    assert got.profile_share(6.0) == pytest.approx((6.0 + 1.0) / 9.0)


def test_a_profile_stop_without_task_duration_ends_every_window_there() -> None:
    got = baseline(_spec(), SpawnPlan((0.0, 2.0), 8.0))
    assert (got.planned_tasks, got.passes_per_user) == (None, None)
    assert got.ends == (8.0, 8.0)
    assert got.window_end == 8.0
    assert got.duration == 8.0


def test_user_time_sums_each_users_part_of_its_window_before_t() -> None:
    base = _boxed((0.0, 2.0, 4.0), (6.0, 3.0, 10.0))  # windows [0,6] [2,3] [4,10]
    assert base.user_time(-1.0) == 0.0
    assert base.user_time(2.5) == 2.5 + 0.5
    assert base.user_time(5.0) == 5.0 + 1.0 + 1.0
    assert base.user_time(20.0) == 6.0 + 1.0 + 6.0
    assert base.profile_share(5.0) == pytest.approx(7.0 / 13.0)
    assert (base.profile_share(-5.0), base.profile_share(50.0)) == (0.0, 1.0)


def test_a_profile_without_user_time_is_all_or_nothing_at_its_end() -> None:
    base = _boxed((3.0, 3.0), (3.0, 3.0))
    assert (base.profile_share(2.9), base.profile_share(3.0)) == (0.0, 1.0)
    # No windows (a count-bounded plan), or mismatched ones: the whole share.
    assert _boxed((1.0,), ()).profile_share(0.0) == 1.0
    assert _boxed((1.0, 2.0), (5.0,)).profile_share(0.0) == 1.0


def test_baselines_apply_the_users_override_and_total_planned_sums_the_counts() -> None:
    plan = cast(Plan, SimpleNamespace(scenarios=(_spec(name="a"), _spec(name="b", iterations=2))))
    got = baselines(plan, users=5)
    assert [(b.name, b.users, b.planned_tasks) for b in got] == [("a", 5, 5), ("b", 5, 10)]
    assert total_planned(got) == 15
    assert total_planned([]) == 0
    boxed = baselines(plan, duration=30.0)
    assert [b.planned_tasks for b in boxed] == [None, 6]
    assert total_planned(boxed) is None
    assert boxed[0].ends == (30.0, 30.0, 30.0)
    assert not math.isinf(boxed[0].ends[0])


def test_a_plan_without_users_starts_nothing_and_plans_nothing() -> None:
    got = baseline(_spec(user_count=0), SpawnPlan((), None))
    assert (got.users, got.planned_tasks, got.last_start) == (0, 0, 0.0)


def test_a_profile_under_one_user_second_still_shares_it_out() -> None:
    base = _boxed((0.0,), (0.5,))
    assert base.profile_share(0.25) == 0.5


def test_a_share_pushed_past_one_by_the_sums_rounding_is_one() -> None:
    # Found by search: the prefix sums' rounding makes user_time / total 1.0000000000000002.
    starts = (0.3, 0.1, 0.0, 0.7, 0.0)
    ends = (0.3, 0.10000000000000002, 0.3, 0.7, 0.1)
    base = _boxed(starts, ends)
    total = base._end_sums[-1] - base._start_sums[-1]
    assert base.user_time(0.3) / total > 1.0
    assert base.profile_share(0.3) == 1.0


# -- issue 20: arrival-rate plans, stages, start-after, pacing ----------------------------------


def _arrivals(rate: float, seconds: float, users: int = 5) -> ArrivalSchedule:
    """A constant rate for `seconds`: one flat segment."""
    return ArrivalSchedule(((0.0, seconds, rate, rate),), pre_allocated=2, max_users=users)


def test_an_arrival_rate_baseline_plans_the_scheduled_iterations() -> None:
    milestones = (Milestone("m", "n", "e", 2.0),)
    spawn = SpawnPlan((0.0, 0.0), None, arrivals=_arrivals(4.0, 10.0, users=7))
    got = baseline(_spec(name="open", milestones=milestones), spawn)
    assert (got.name, got.users, got.planned_tasks, got.passes_per_user) == ("open", 7, 40, None)
    assert (got.duration, got.schedule_end, got.last_start) == (10.0, 10.0, 0.0)
    assert got.milestones == (("m", 2.0),)
    assert got.starts == (0.0, 0.0)


def test_an_arrival_rate_baseline_stops_with_the_window_and_counts_from_its_offset() -> None:
    spawn = SpawnPlan((3.0,), None, offset=3.0, arrivals=_arrivals(2.0, 10.0))
    # The run's window ends 6 s in: 3 s of the schedule, 6 iterations.
    got = baseline(_spec(), spawn, duration=6.0)
    assert (got.planned_tasks, got.duration, got.schedule_end) == (6, 6.0, 6.0)
    # Without a window the whole schedule, ending at offset + 10 s.
    whole = baseline(_spec(), spawn)
    assert (whole.planned_tasks, whole.duration, whole.schedule_end) == (20, 13.0, 13.0)
    assert whole.last_start == 3.0


def test_max_duration_counts_from_the_scenarios_start_after() -> None:
    spawn = SpawnPlan((5.0, 5.0), None, offset=5.0)
    got = baseline(_spec(task_duration=100.0, max_duration=4.0), spawn)
    assert got.duration == 9.0  # 5 s start-after + 4 s max-duration, not 4
    assert got.ends == (9.0, 9.0)
    open_ = SpawnPlan((2.0,), None, offset=2.0, arrivals=_arrivals(1.0, 10.0))
    capped = baseline(_spec(max_duration=3.0), open_)
    assert (capped.planned_tasks, capped.schedule_end) == (3, 5.0)


def test_stage_users_leave_the_plan_when_the_target_falls_below_them() -> None:
    spawn = SpawnPlan((0.0, 1.0, 2.0), 10.0, ends=(8.0, 6.0, 20.0))
    got = baseline(_spec(task_duration=100.0), spawn)
    # Each user's window ends at the first of its stage end, the stop and its task span.
    assert got.ends == (6.0, 8.0, 10.0)  # sorted
    short = baseline(_spec(task_duration=3.0), spawn)
    assert short.ends == (3.0, 4.0, 5.0)


def test_pacing_is_carried_into_the_baseline() -> None:
    assert baseline(_spec(pacing=2.5), SpawnPlan((0.0,), None)).pacing == 2.5
    assert baseline(_spec(), SpawnPlan((0.0,), None)).pacing == 0.0


def test_an_arrival_window_closed_before_its_start_plans_nothing() -> None:
    # start-after 5 s, the run's window 3 s: no iteration is ever due.
    spawn = SpawnPlan((), None, offset=5.0, arrivals=_arrivals(4.0, 10.0))
    got = baseline(_spec(), spawn, duration=3.0)
    assert (got.planned_tasks, got.last_start, got.starts) == (0, 0.0, ())
