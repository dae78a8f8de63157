"""The aggregator: equal to a direct computation from the same updates, bounded, monotone for
monotone inputs; the ETA estimator; the ProgressSink adapter."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.core.events import ProgressSink
from wbsrun.core.scheduler import SpawnPlan
from wbsrun.dsl.plan import Milestone, ScenarioSpec
from wbsrun.progress.aggregate import AggregatingSink, Aggregator, ProgressUpdate
from wbsrun.progress.baseline import ScenarioBaseline, baseline
from wbsrun.progress.eta import EtaEstimator
from wbsrun.progress.views import ProgramProgress

MILESTONES = (("probe", 0.3), ("push", 0.4), ("purge", 0.3))
NAMES = [name for name, _ in MILESTONES]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def counted(name: str, users: int, passes: int, **kw: Any) -> ScenarioBaseline:
    return ScenarioBaseline(
        name=name,
        users=users,
        planned_tasks=users * passes,
        passes_per_user=passes,
        duration=None,
        last_start=0.0,
        milestones=kw.pop("milestones", MILESTONES),
        **kw,
    )


def boxed(name: str, starts: Sequence[float], ends: Sequence[float]) -> ScenarioBaseline:
    return ScenarioBaseline(
        name=name,
        users=len(starts),
        planned_tasks=None,
        passes_per_user=None,
        duration=max(ends, default=0.0),
        last_start=max(starts, default=0.0),
        milestones=MILESTONES,
        starts=tuple(starts),
        ends=tuple(ends),
    )


# -- generated update streams ------------------------------------------------------------------

SCENARIOS = ("a", "b")
USERS_PER_SCENARIO = 3
PASSES = 2


@dataclass(frozen=True)
class Op:
    task: int  # index into the planned tasks of both scenarios
    progress: float
    milestones: frozenset[str]
    closed: bool


def task_ids(index: int) -> tuple[str, str, str]:
    """(task_id, user_id, scenario) of planned task `index`."""
    per_scenario = USERS_PER_SCENARIO * PASSES
    scenario = SCENARIOS[index // per_scenario]
    k = index % per_scenario
    user = f"{scenario}-u{k // PASSES}"
    return f"{user}-t{k % PASSES}", user, scenario


TASKS = len(SCENARIOS) * USERS_PER_SCENARIO * PASSES
any_progress = st.one_of(
    st.floats(min_value=-1.0, max_value=2.0, allow_nan=False),
    st.sampled_from([0.0, 1.0, math.nan, math.inf, -math.inf]),
)
ops = st.lists(
    st.builds(
        Op,
        task=st.integers(0, TASKS - 1),
        progress=any_progress,
        milestones=st.frozensets(st.sampled_from(NAMES)),
        closed=st.booleans(),
    ),
    max_size=80,
)


def aggregator() -> Aggregator:
    return Aggregator([counted(s, USERS_PER_SCENARIO, PASSES) for s in SCENARIOS], clock=Clock())


def feed(agg: Aggregator, op: Op) -> None:
    task_id, user_id, scenario = task_ids(op.task)
    agg.apply(ProgressUpdate(task_id, user_id, scenario, op.progress, op.milestones, op.closed))


def clamp(p: float) -> float:
    return min(1.0, p) if p >= 0.0 else 0.0


def direct(updates: Sequence[Op]) -> dict[str, tuple[float, frozenset[str]]]:
    """Each task's last values, nothing after its close: the reference the sums must equal."""
    state: dict[str, tuple[float, frozenset[str]]] = {}
    closed: set[str] = set()
    for op in updates:
        task_id = task_ids(op.task)[0]
        if task_id in closed:
            continue
        state[task_id] = (clamp(op.progress), op.milestones)
        if op.closed:
            closed.add(task_id)
    return state


def in_unit(x: float | None) -> bool:
    return x is None or 0.0 <= x <= 1.0


def check_bounds(view: ProgramProgress) -> None:
    for x in (view.work, view.time, view.milestones_weighted):
        assert in_unit(x)
    assert view.eta_s is None or view.eta_s >= 0.0
    for s in view.scenarios:
        for x in (s.work, s.time, s.milestones_weighted):
            assert in_unit(x)
        assert all(0.0 <= m.share <= 1.0 for m in s.milestones)
        assert s.eta_s is None or s.eta_s >= 0.0
    assert all(0.0 <= m.share <= 1.0 for m in view.milestones)


@settings(max_examples=examples(300), deadline=None)
@given(ops)
def test_aggregation_equals_a_direct_computation_from_the_same_updates(
    updates: list[Op],
) -> None:
    agg = aggregator()
    for op in updates:
        feed(agg, op)
    state = direct(updates)
    view = agg.snapshot(1.0)
    planned = USERS_PER_SCENARIO * PASSES
    works = []
    for name in SCENARIOS:
        mine = {t: v for t, v in state.items() if t.startswith(f"{name}-")}
        total = sum(p for p, _ in mine.values())
        s = view.scenario(name)
        assert s.work == pytest.approx(min(1.0, total / planned), abs=1e-9)
        assert s.tasks_started == len(mine)
        reached = {m: sum(m in ms for _, ms in mine.values()) for m in NAMES}
        assert {m.name: m.reached for m in s.milestones} == reached
        weighted = sum(w * min(1.0, reached[m] / planned) for m, w in MILESTONES)
        assert s.milestones_weighted == pytest.approx(weighted / 1.0, abs=1e-9)
        works.append(s.work)
        # task → user → scenario: the users' mean progress, weighted by their planned passes.
        users = [agg.user(f"{name}-u{k}") for k in range(USERS_PER_SCENARIO)]
        user_mean = sum(u.progress * PASSES for u in users if u) / planned
        assert user_mean == pytest.approx(s.work, abs=1e-9)
    # scenario → program: weighted by planned passes (equal here).
    assert view.work == pytest.approx(sum(works) / len(works), abs=1e-9)
    assert view.tasks_started == len(state)
    assert agg.tasks_open == view.tasks_open
    check_bounds(view)


@settings(max_examples=examples(200), deadline=None)
@given(ops, st.floats(min_value=0.0, max_value=50.0), st.booleans())
def test_every_dimension_stays_in_the_unit_interval(
    updates: list[Op], elapsed: float, finished: bool
) -> None:
    clock = Clock()
    agg = Aggregator(
        [counted("a", 3, 2), boxed("b", [0.0, 1.0, 2.0], [10.0, 11.0, 12.0])], clock=clock
    )
    for i, op in enumerate(updates):
        clock.now = i * 0.1
        feed(agg, op)
        check_bounds(agg.snapshot(clock.now))
    check_bounds(agg.snapshot(elapsed, finished=finished))


monotone_steps = st.lists(
    st.tuples(
        st.integers(0, TASKS - 1),
        st.floats(min_value=0.0, max_value=0.5),
        st.frozensets(st.sampled_from(NAMES)),
    ),
    max_size=60,
)


@settings(max_examples=examples(200), deadline=None)
@given(monotone_steps)
def test_progress_is_monotone_for_monotone_inputs(
    steps: list[tuple[int, float, frozenset[str]]],
) -> None:
    agg = aggregator()
    progress = [0.0] * TASKS
    reached: list[frozenset[str]] = [frozenset()] * TASKS
    before = agg.snapshot(0.0)
    for i, (task, more, names) in enumerate(steps):
        progress[task] = min(1.0, progress[task] + more)
        reached[task] = reached[task] | names
        task_id, user_id, scenario = task_ids(task)
        agg.apply(ProgressUpdate(task_id, user_id, scenario, progress[task], reached[task]))
        after = agg.snapshot(float(i))
        assert after.work >= before.work
        assert (after.milestones_weighted or 0.0) >= (before.milestones_weighted or 0.0)
        for a, b in zip(after.scenarios, before.scenarios, strict=True):
            assert a.work >= b.work
            assert all(x.share >= y.share for x, y in zip(a.milestones, b.milestones, strict=True))
        before = after


# -- the baseline ----------------------------------------------------------------------------


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 100.0), st.floats(0.0, 100.0)), min_size=1, max_size=30),
    st.floats(-10.0, 250.0),
)
def test_profile_user_time_equals_the_sum_over_user_windows(
    windows: list[tuple[float, float]], t: float
) -> None:
    starts = [s for s, _ in windows]
    ends = [s + d for s, d in windows]
    base = boxed("b", starts, ends)
    brute = sum(min(max(t - s, 0.0), e - s) for s, e in zip(starts, ends, strict=True))
    assert base.user_time(t) == pytest.approx(brute, abs=1e-6)
    share = base.profile_share(t)
    assert 0.0 <= share <= 1.0
    # Monotone up to the prefix sums' rounding: a window of 1e-38 s vanishes next to 1.0 s
    # (found by hypothesis); shares are reported to 4 digits.
    assert base.profile_share(t + 1.0) >= share - 1e-12


def spec(**kw: Any) -> ScenarioSpec:
    fields: dict[str, Any] = {
        "name": "s",
        "workflow": "wf",
        "user_count": 4,
        "spawn_rate": None,
        "profile": None,
        "task_duration": None,
        "iterations": None,
        "think_time": 0.0,
        "inherit": (),
        "session_new": False,
        "context": {},
        "exits": {},
        "milestones": (Milestone("m", "n", "e", 1.0),),
        "aggregation": (),
        "health_threshold": None,
        "max_duration": None,
        "wbs_level": "L2",
    }
    fields.update(kw)
    return ScenarioSpec(**fields)


def test_baseline_follows_the_schedulers_rules_for_passes() -> None:
    spawn = SpawnPlan((0.0, 1.0, 2.0, 3.0), None)
    assert baseline(spec(), spawn).planned_tasks == 4
    assert baseline(spec(iterations=3), spawn).planned_tasks == 12
    assert baseline(spec(iterations=3), spawn, duration=5.0).planned_tasks == 12
    boxed_ = baseline(spec(task_duration=10.0), spawn)
    assert boxed_.planned_tasks is None
    assert boxed_.window_end == 13.0
    assert boxed_.duration == 13.0
    # --duration cuts every window; a user spawned after it never runs.
    cut = baseline(spec(task_duration=10.0), spawn, duration=2.5)
    assert cut.ends == (0.0 + 2.5, 2.5, 2.5, 3.0)
    assert cut.profile_share(2.5) == 1.0


# -- the time-boxed denominator ----------------------------------------------------------------


def test_time_boxed_work_projects_the_planned_passes_from_the_profile_share() -> None:
    clock = Clock()
    agg = Aggregator([boxed("b", [0.0, 0.0], [10.0, 10.0])], clock=clock)
    for i in range(4):  # two users, two closed passes each in the first 2 s
        agg.apply(ProgressUpdate(f"t{i}", f"u{i % 2}", "b", 1.0, frozenset(NAMES), True))
    view = agg.snapshot(2.0)
    s = view.scenario("b")
    assert s.expected_tasks == pytest.approx(4 / 0.2)
    assert s.work == pytest.approx(0.2)
    assert s.milestones_weighted == pytest.approx(0.2)
    assert s.time == pytest.approx(0.2)
    done = agg.snapshot(10.5, finished=True).scenario("b")
    assert done.expected_tasks == 4
    assert done.work == 1.0
    assert done.eta_s == 0.0


def test_an_interrupted_time_boxed_run_keeps_the_projection() -> None:
    agg = Aggregator([boxed("b", [0.0], [10.0])], clock=Clock())
    agg.apply(ProgressUpdate("t0", "u0", "b", 1.0, frozenset(), True))
    s = agg.snapshot(5.0, finished=True).scenario("b")
    assert s.expected_tasks == pytest.approx(2.0)
    assert s.work == pytest.approx(0.5)


def test_a_scenario_outside_the_plan_counts_against_the_passes_seen() -> None:
    agg = Aggregator(clock=Clock())
    agg.apply(ProgressUpdate("t0", "u0", "x", 0.5, frozenset()))
    agg.apply(ProgressUpdate("t1", "u0", "x", 1.0, frozenset(), True))
    s = agg.snapshot(1.0).scenario("x")
    assert s.work == pytest.approx(0.75)
    assert s.expected_tasks == 2


def test_a_repeated_close_is_counted_once() -> None:
    agg = aggregator()
    update = ProgressUpdate("a-u0-t0", "a-u0", "a", 1.0, frozenset({"probe"}), True)
    agg.apply(update)
    agg.apply(update)
    s = agg.snapshot(1.0).scenario("a")
    assert s.tasks_closed == s.tasks_started == 1
    assert s.milestones[0].reached == 1


def test_a_rollback_that_loses_a_milestone_gives_its_count_back() -> None:
    agg = aggregator()
    agg.apply(ProgressUpdate("a-u0-t0", "a-u0", "a", 0.7, frozenset({"probe", "push"})))
    agg.apply(ProgressUpdate("a-u0-t0", "a-u0", "a", 0.3, frozenset({"probe"})))
    s = agg.snapshot(1.0).scenario("a")
    assert {m.name: m.reached for m in s.milestones} == {"probe": 1, "push": 0, "purge": 0}
    assert s.work == pytest.approx(0.3 / 6)


# -- the ETA -----------------------------------------------------------------------------------


def simulate(
    starts: Sequence[float], passes: int, pass_s: float, until: float, items: int = 0
) -> list[tuple[float, float | None, float]]:
    """Users looping over passes of `pass_s` seconds from their start; with `items`, users take
    turns on that many exclusive items (one pass each). (elapsed, ETA, true time left) every
    0.5 s, snapshots fed as the live line would."""
    users = len(starts)
    base = ScenarioBaseline(
        "a", users, users * passes, passes, None, max(starts), starts=tuple(starts)
    )
    clock = Clock()
    agg = Aggregator([base], clock=clock)

    def slot(u: int, k: int) -> float:
        return (u // items) * pass_s if items else starts[u] + k * pass_s

    end = max(slot(u, passes - 1) for u in range(users)) + pass_s
    out: list[tuple[float, float | None, float]] = []
    closed = [0] * users
    for step in range(int(until * 2) + 1):
        t = clock.now = step * 0.5
        for u in range(users):
            if t < starts[u]:
                continue
            while closed[u] < passes and t >= slot(u, closed[u]) + pass_s:
                tid = f"u{u}-t{closed[u]}"
                agg.apply(ProgressUpdate(tid, f"u{u}", "a", 1.0, frozenset(), True))
                closed[u] += 1
            if closed[u] < passes:
                done = max(0.0, t - slot(u, closed[u])) / pass_s
                tid = f"u{u}-t{closed[u]}"
                agg.apply(ProgressUpdate(tid, f"u{u}", "a", round(done, 1), frozenset()))
        out.append((t, agg.snapshot(t).eta_s, end - t))
    return out


def assert_tracks(etas: list[tuple[float, float | None, float]], tolerance: float) -> None:
    assert etas[0][1] is None  # no guess at the start
    known = [(t, eta, truth) for t, eta, truth in etas if eta is not None]
    assert known[0][0] <= 2.0
    for t, eta, truth in known:
        assert eta == pytest.approx(max(truth, 0.0), rel=tolerance, abs=1.0), t
    for (_, a, _), (_, b, _) in itertools.pairwise(known):
        assert b <= a + 0.5  # no jumps up
        assert a - b <= 2.0  # nor down (0.5 s per step plus the filter's correction)


def test_eta_counts_down_steadily_at_a_constant_pace() -> None:
    assert_tracks(simulate([0.0] * 10, passes=100, pass_s=1.0, until=102), 0.05)


def test_eta_of_a_ramp_sees_the_users_still_to_spawn() -> None:
    starts = [20.0 * i / 100 for i in range(100)]
    assert_tracks(simulate(starts, passes=100, pass_s=0.1, until=32), 0.15)


def test_eta_of_users_taking_turns_on_few_items_follows_the_throughput() -> None:
    assert_tracks(simulate([0.0] * 100, passes=1, pass_s=1.0, until=27, items=4), 0.15)


def test_eta_of_a_stalled_scenario_is_unknown_not_huge() -> None:
    est = EtaEstimator()
    for i in range(21):
        est.estimate(i * 0.5, min(i, 10) * 1.0, 100.0, active=10)
    # No progress for the last 5 s of a 10 s run: the windowed rate is zero.
    assert est.estimate(10.5, 10.0, 100.0, active=10) is None


def test_eta_never_goes_below_what_the_plan_still_needs() -> None:
    est = EtaEstimator()
    est.estimate(0.0, 0.0, 100.0, active=10)
    assert est.estimate(2.0, 50.0, 100.0, active=10, floor=30.0) == pytest.approx(30.0)
    assert est.estimate(2.5, 100.0, 100.0, active=10, floor=30.0) == 0.0


def test_time_boxed_eta_is_the_window_end_plus_one_pass() -> None:
    clock = Clock()
    agg = Aggregator([boxed("b", [0.0], [10.0])], clock=clock)
    assert agg.snapshot(0.0).eta_s == pytest.approx(10.0)
    agg.apply(ProgressUpdate("t0", "u0", "b", 0.0, frozenset()))
    clock.now = 0.5
    agg.apply(ProgressUpdate("t0", "u0", "b", 1.0, frozenset(), True))
    assert agg.snapshot(4.0).eta_s == pytest.approx(6.5)
    assert agg.snapshot(20.0).eta_s == 0.0


# -- the ProgressSink adapter ------------------------------------------------------------------


@dataclass
class Subject:
    task_id: str
    user_id: str
    scenario_name: str
    phase: str
    progress: float
    error_class: str | None
    milestones: set[str]


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def publish(self, subject: Any, field: str, priority: float) -> None:
        self.seen.append(field)


def test_the_sink_feeds_the_aggregator_and_forwards_every_event() -> None:
    forward = Recorder()
    agg = aggregator()
    sink: ProgressSink = AggregatingSink(agg, forward)
    live = Subject("a-u0-t0", "a-u0", "a", "planning.ready", 0.0, None, set())
    sink.publish(live, "timeline.phase", 0.5)
    live.milestones.add("probe")  # the live set grows in place, as Task.milestones does
    sink.publish(live, "milestone", 0.5)
    live.progress = 0.3
    sink.publish(live, "progress", 0.5)
    live.progress = 1.0
    sink.publish(live, "closed", 1.0)
    s = agg.snapshot(1.0).scenario("a")
    assert (s.tasks_started, s.tasks_closed) == (1, 1)
    assert s.work == pytest.approx(1.0 / 6)
    assert {m.name: m.reached for m in s.milestones}["probe"] == 1
    assert forward.seen == ["timeline.phase", "milestone", "progress", "closed"]
