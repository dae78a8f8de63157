"""A split reproduces the one-process schedule (core/scheduler.py `spawn_plan` with a
segment): over random profiles, loaded from real bundles, and random part counts, the union of
the parts' users (global index, id, start, end) is the one-process plan, the union of their
arrival iterations is its schedule, and their planned figures sum to its."""

from __future__ import annotations

import tempfile
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from scenario_kit import Doc, act, document, edge, end, graph, http, write_bundle
from wbsrun.core.pacing import user_seed
from wbsrun.core.runner import RunOptions
from wbsrun.core.scheduler import SpawnPlan, spawn_plan
from wbsrun.core.segments import Segmentation, SegmentSequence
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan, ScenarioSpec
from wbsrun.progress.aggregate import Aggregator
from wbsrun.progress.baseline import baselines
from wbsrun.protocols.registry import provides

SECONDS = st.integers(1, 40).map(lambda tenths: f"{tenths * 100}ms")


def _steps(target: st.SearchStrategy[int]) -> st.SearchStrategy[list[dict[str, Any]]]:
    step = st.fixed_dictionaries({"duration": SECONDS, "target": target})
    return st.lists(step, min_size=1, max_size=5)


STAGES = st.fixed_dictionaries(
    {
        "type": st.just("stages"),
        "start-users": st.integers(0, 10),
        "stages": _steps(st.integers(0, 40)),
    }
)
CLOSED = st.one_of(
    st.fixed_dictionaries({"type": st.just("constant"), "users": st.integers(1, 60)}).map(
        lambda p: {**p, "duration": "2s"}
    ),
    st.fixed_dictionaries(
        {"type": st.just("ramp"), "start-users": st.integers(0, 10), "duration": SECONDS},
        optional={"end-users": st.integers(11, 60)},
    ).map(lambda p: {"end-users": 30, **p}),
    st.fixed_dictionaries(
        {
            "type": st.just("phases"),
            "phases": st.lists(
                st.fixed_dictionaries({"at": SECONDS, "spawn-users": st.integers(0, 15)}),
                min_size=1,
                max_size=4,
            ),
        }
    ),
    STAGES,
)


def _runnable(profile: dict[str, Any]) -> dict[str, Any]:
    """An arrival profile needs users: max-users when none are pre-allocated."""
    if profile["pre-allocated-users"] or "max-users" in profile:
        return profile
    return {**profile, "max-users": 10}


OPEN = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("constant-arrival-rate"),
            "rate": st.integers(1, 400),
            "duration": SECONDS,
            "pre-allocated-users": st.integers(0, 10),
        },
        optional={"max-users": st.integers(10, 40)},
    ).map(_runnable),
    st.fixed_dictionaries(
        {
            "type": st.just("ramping-arrival-rate"),
            "start-rate": st.integers(0, 100),
            "stages": _steps(st.integers(0, 300)),
            "pre-allocated-users": st.integers(0, 10),
        },
        optional={"max-users": st.integers(10, 40)},
    ).map(_runnable),
)


@st.composite
def plans(draw: st.DrawFn, profiles: st.SearchStrategy[dict[str, Any]], bare: bool = True) -> Plan:
    """A real bundle's plan: one scenario, a random profile (or none), spawn rate, start-after."""
    flow = graph(act("probe", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    settings_: dict[str, Any] = {}
    if draw(st.booleans()):
        settings_["spawn_rate"] = draw(st.integers(1, 50))
    if draw(st.booleans()):
        settings_["start_after"] = draw(SECONDS)
    doc: Doc = document({"fetch": http("get")}, flow, draw(st.integers(0, 50)), **settings_)
    profile = draw(st.none() | profiles if bare else profiles)
    if profile is not None:
        doc["load"]["profiles"] = {"p": profile}
        doc["load"]["scenarios"][0]["profile"] = "p"
    with tempfile.TemporaryDirectory() as where:
        return load_plan(write_bundle(Path(where), doc, [("127.0.0.1", 1)]), provides())


PARTS = st.one_of(
    st.integers(1, 16).map(SegmentSequence.even),
    st.lists(st.integers(1, 6), min_size=1, max_size=6).map(
        lambda w: SegmentSequence.from_points(
            [Fraction(sum(w[:i]), sum(w)) for i in range(len(w) + 1)]
        )
    ),
)
USERS = st.none() | st.integers(1, 80)


def _split(s: ScenarioSpec, seq: SegmentSequence, users: int | None) -> list[SpawnPlan]:
    return [spawn_plan(s, users, seq.part(i)) for i in range(len(seq))]


def _users(plan: SpawnPlan) -> Counter[tuple[int, str, float, float | None]]:
    """(global index, user id, start, end) of every planned user."""
    ends = plan.ends or (None,) * len(plan.starts)
    rows = zip(plan.user_indices(), plan.starts, ends, strict=True)
    return Counter((i, f"u{i + 1:04d}", start, stop) for i, start, stop in rows)


@settings(max_examples=examples(150))
@given(plans(CLOSED), PARTS, USERS)
def test_the_parts_start_exactly_the_one_process_users(
    plan: Plan, seq: SegmentSequence, users: int | None
) -> None:
    (s,) = plan.scenarios
    whole = spawn_plan(s, users)
    parts = _split(s, seq, users)
    union: Counter[tuple[int, str, float, float | None]] = Counter()
    for part in parts:
        mine = _users(part)
        assert not union & mine  # no user twice
        union += mine
        assert (part.stop_after, part.offset, part.curve) == (
            whole.stop_after,
            whole.offset,
            whole.curve,
        )
        assert list(part.starts) == sorted(part.starts)  # in start order, as one process
    assert union == _users(whole)
    assert sum(p.users for p in parts) == whole.users
    # Think-time draws are seeded by the global index: the same per user in any split.
    indexed = sorted(i for p in parts for i in p.user_indices())
    assert [user_seed("t", s.name, i) for i in indexed] == [
        user_seed("t", s.name, i) for i in whole.user_indices()
    ]


@settings(max_examples=examples(150))
@given(plans(STAGES, bare=False), PARTS, st.lists(st.floats(-1, 30), min_size=1, max_size=20))
def test_a_stages_part_runs_its_share_of_the_target_at_every_moment(
    plan: Plan, seq: SegmentSequence, moments: list[float]
) -> None:
    (s,) = plan.scenarios
    whole = spawn_plan(s)
    parts = _split(s, seq, None)
    for t in moments:
        assert sum(p.target(t) for p in parts) == whole.target(t)
        alive = sum(1 for a, b in zip(whole.starts, whole.ends, strict=True) if a <= t < b)
        for p, part in zip(parts, (seq.part(i) for i in range(len(seq))), strict=True):
            # The planned windows agree with the share: the users alive hold the lowest levels.
            mine = sum(1 for a, b in zip(p.starts, p.ends, strict=True) if a <= t < b)
            assert mine == part.scale(alive)


@settings(max_examples=examples(150))
@given(plans(OPEN, bare=False), PARTS, USERS, st.floats(0, 30))
def test_the_parts_dispatch_exactly_the_one_process_iterations(
    plan: Plan, seq: SegmentSequence, users: int | None, until: float
) -> None:
    (s,) = plan.scenarios
    whole = spawn_plan(s, users)
    assert whole.arrivals is not None
    parts = _split(s, seq, users)
    union: Counter[float] = Counter()
    for part in parts:
        assert part.arrivals is not None
        mine = list(part.iteration_offsets())
        assert mine == sorted(mine)
        union.update(mine)
        assert len(mine) == part.planned_iterations()
    assert union == Counter(whole.iteration_offsets())
    planned = [p.planned_iterations(until) for p in parts]
    assert sum(n or 0 for n in planned) == whole.planned_iterations(until)
    # Pre-allocated and max users are the parts' scales of the whole; a part with iterations
    # gets at least one user to run them.
    assert (
        sum(p.arrivals.pre_allocated for p in parts if p.arrivals) == whole.arrivals.pre_allocated
    )
    for i, part in enumerate(parts):
        assert part.arrivals is not None
        share = seq.part(i).scale(whole.arrivals.max_users)
        busy = bool(part.planned_iterations()) and whole.arrivals.max_users > 0
        assert part.arrivals.max_users == (max(share, 1) if busy else share)
        assert len(part.starts) == part.arrivals.pre_allocated
        ids = [part.slot_index(j) for j in range(part.arrivals.max_users)]
        assert all(seq.part(i).owns(k) for k in ids)  # no id is another part's


@settings(max_examples=examples(60))
@given(plans(CLOSED | OPEN), PARTS)
def test_the_parts_baselines_sum_to_the_one_process_plan(plan: Plan, seq: SegmentSequence) -> None:
    """The progress model's denominators: each part plans its share."""
    (s,) = plan.scenarios
    (whole,) = baselines(plan)
    # As the run's aggregator builds them (Aggregator.for_run, from RunOptions.segment).
    mine = [
        Aggregator.for_run(plan, RunOptions(segment=seq.part(i))).baselines[0]
        for i in range(len(seq))
    ]
    if whole.planned_tasks is None:
        assert all(b.planned_tasks is None for b in mine)
    else:
        assert sum(b.planned_tasks or 0 for b in mine) == whole.planned_tasks
    if s.profile is None or not s.profile.arrival:
        assert sum(b.users for b in mine) == whole.users
        assert sorted(t for b in mine for t in b.starts) == sorted(whole.starts)
        # Time-boxed: the planned user-time elapsed, the time line of planned_share, adds up.
        for t in (0.0, 0.5, 1.3, 2.0, 4.1, 10.0):
            assert sum(b.user_time(t) for b in mine) == pytest.approx(whole.user_time(t))


def test_a_whole_segment_is_the_unsplit_plan() -> None:
    flow = graph(act("probe", "fetch", edge("done")), end())
    doc = document({"fetch": http("get")}, flow, 5, spawn_rate=10)
    with tempfile.TemporaryDirectory() as where:
        plan = load_plan(write_bundle(Path(where), doc, [("127.0.0.1", 1)]), provides())
    (s,) = plan.scenarios
    whole = spawn_plan(s, None, Segmentation.whole())
    assert whole.starts == spawn_plan(s).starts
    assert list(whole.user_indices()) == [0, 1, 2, 3, 4]


@settings(max_examples=examples(100))
@given(plans(CLOSED | STAGES), PARTS, st.integers(0, 200), st.integers(0, 60))
def test_the_users_a_split_scale_adds_have_the_one_process_ids(
    plan: Plan, seq: SegmentSequence, target: int, added: int
) -> None:
    """A live scale under a split (`Scheduler.scale`, core/control.py): each part runs its
    share of the new population, and the users the parts add take the global indices after
    the whole plan's, striped: never one another's or a planned user's, and together the very
    indices one process would give its added users."""
    (s,) = plan.scenarios
    whole = spawn_plan(s)
    parts = _split(s, seq, None)
    assert sum(p.share(target) for p in parts) == target
    assert whole.share(target) == target
    one = [whole.added_index(j) for j in range(added)]
    assert one == list(range(len(whole.starts), len(whole.starts) + added))
    mine = [p.added_index(j) for i, p in enumerate(parts) for j in range(seq.part(i).scale(added))]
    assert sorted(mine) == one  # each part adding its share: one process's ids, each once
    # Any number added per part: no clash across the parts, none with the planned users.
    some = [p.added_index(j) for p in parts for j in range(added)]
    assert len(set(some)) == len(some)
    assert not set(some) & set(whole.user_indices())


def test_the_users_a_scale_adds_continue_after_the_planned_ones() -> None:
    flow = graph(act("probe", "fetch", edge("done")), end())
    doc = document({"fetch": http("get")}, flow, 5)
    with tempfile.TemporaryDirectory() as where:
        plan = load_plan(write_bundle(Path(where), doc, [("127.0.0.1", 1)]), provides())
    (s,) = plan.scenarios
    first, second = (spawn_plan(s, None, SegmentSequence.even(2).part(i)) for i in range(2))
    assert (list(first.user_indices()), list(second.user_indices())) == ([0, 2, 4], [1, 3])
    # 5 planned users (u0001…u0005): the added ones are u0006, u0008, … and u0007, u0009, …
    assert [first.added_index(j) for j in range(3)] == [5, 7, 9]
    assert [second.added_index(j) for j in range(3)] == [6, 8, 10]
    assert (first.share(7), second.share(7)) == (4, 3)


@settings(max_examples=examples(60))
@given(plans(OPEN, bare=False), PARTS, USERS, st.integers(0, 200))
def test_a_split_scale_of_max_users_splits_as_the_plan_does(
    plan: Plan, seq: SegmentSequence, users: int | None, target: int
) -> None:
    """Arrival-rate: each part's share of a new max-users is its scale of it (at least one
    user when it owns iterations, as the plan's split), so scaling to the plan's own max-users
    gives every part the cap it started with."""
    (s,) = plan.scenarios
    whole = spawn_plan(s, users)
    assert whole.arrivals is not None
    parts = _split(s, seq, users)
    for i, part in enumerate(parts):
        assert part.arrivals is not None
        assert part.share(whole.arrivals.max_users) == part.arrivals.max_users
        share = seq.part(i).scale(target)
        busy = bool(part.planned_iterations()) and target > 0
        assert part.share(target) == (max(share, 1) if busy else share)
