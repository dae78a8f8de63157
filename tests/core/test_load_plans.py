"""Load plans: spawn plans per profile, iterations, think-time, task-duration, several
scenarios, run options, drain, and users contending for pooled items."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from types import MappingProxyType
from typing import Any

from scenario_kit import (
    Doc,
    Ran,
    act,
    document,
    edge,
    end,
    graph,
    http,
    on,
    phases,
    routes,
    run,
)
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.core.scheduler import spawn_plan
from wbsrun.dsl.plan import ProfileSpec, ScenarioSpec
from wbsrun.target import TargetProcess


def fetch_doc(users: int = 1, **scenario: Any) -> Doc:
    """One GET per pass."""
    flow = graph(act("probe", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    return document({"fetch": http("get")}, flow, users, **scenario)


def with_profile(doc: Doc, **profile: Any) -> Doc:
    doc["load"]["profiles"] = {"p": {k.replace("_", "-"): v for k, v in profile.items()}}
    doc["load"]["scenarios"][0]["profile"] = "p"
    return doc


def pass_starts(ran: Ran) -> dict[str, list[float]]:
    """Per user, when each of its passes started, in seconds after the run started."""
    out: dict[str, list[float]] = {}
    for entry in ran.entries:
        out.setdefault(entry.user_id, []).append(entry.trace[0][2] - ran.runner.started_wall)
    return out


# -- spawn plans -----------------------------------------------------------------------------------


def spec(user_count: int = 3, **kw: Any) -> ScenarioSpec:
    fields: dict[str, Any] = {
        "name": "s",
        "workflow": "wf",
        "user_count": user_count,
        "spawn_rate": None,
        "profile": None,
        "task_duration": None,
        "iterations": None,
        "think_time": 0.0,
        "inherit": (),
        "session_new": False,
        "context": MappingProxyType({}),
        "exits": MappingProxyType({}),
        "milestones": (),
        "aggregation": (),
        "health_threshold": None,
        "max_duration": None,
        "wbs_level": "L2",
    }
    return ScenarioSpec(**{**fields, **kw})


def starts_of(s: ScenarioSpec, users: int | None = None) -> tuple[list[float], float | None]:
    plan = spawn_plan(s, users)
    return [round(t, 6) for t in plan.starts], plan.stop_after


def test_spawn_rate_spaces_user_starts_evenly() -> None:
    assert starts_of(spec(4, spawn_rate=10.0)) == ([0.0, 0.1, 0.2, 0.3], None)
    assert starts_of(spec(3)) == ([0.0, 0.0, 0.0], None)  # without a rate: all at once


def test_constant_profile_spawns_its_users_and_closes_at_its_duration() -> None:
    constant = ProfileSpec("c", "constant", users=3, duration=2.0)
    assert starts_of(spec(profile=constant, spawn_rate=10.0)) == ([0.0, 0.1, 0.2], 2.0)


def test_ramp_profile_adds_users_linearly_all_before_its_end() -> None:
    ramp = ProfileSpec("r", "ramp", start_users=0, end_users=4, duration=1.0)
    assert starts_of(spec(profile=ramp)) == ([0.0, 0.25, 0.5, 0.75], 1.0)
    from_two = ProfileSpec("r", "ramp", start_users=2, end_users=4, duration=1.0)
    assert starts_of(spec(profile=from_two, spawn_rate=10.0)) == ([0.0, 0.0, 0.1, 0.5], 1.0)


def test_phases_profile_spawns_at_each_offset_at_the_spawn_rate() -> None:
    phased = ProfileSpec("p", "phases", phases=((0.0, 2), (0.5, 1), (1.0, 0)))
    assert starts_of(spec(profile=phased, spawn_rate=10.0)) == ([0.0, 0.1, 0.5], None)


def test_users_override_replaces_user_count_and_rescales_a_profile() -> None:
    assert starts_of(spec(5, spawn_rate=10.0), users=2) == ([0.0, 0.1], None)
    ramp = ProfileSpec("r", "ramp", start_users=0, end_users=4, duration=1.0)
    assert starts_of(spec(profile=ramp), users=2) == ([0.0, 0.5], 1.0)


# -- passes per user -------------------------------------------------------------------------------


def test_iterations_give_exactly_users_times_n_passes(
    tmp_path: Path, target: TargetProcess
) -> None:
    ran = run(tmp_path, fetch_doc(users=3, iterations=4), on(target))

    assert routes(target) == {"GET /asset": 12}
    assert ran.result["tasks"]["started"] == ran.result["tasks"]["succeeded"] == 12
    assert ran.result["progress"]["planned_tasks"] == 12
    assert sorted(e.task_id for e in ran.entries if e.user_id == "u0002") == [
        f"u0002-t{i}" for i in range(4)
    ]


def test_think_time_pauses_between_a_users_passes(tmp_path: Path, target: TargetProcess) -> None:
    ran = run(tmp_path, fetch_doc(iterations=3, think_time="200ms"), on(target))

    (starts,) = pass_starts(ran).values()
    assert len(starts) == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0.2 <= gap < 0.4 for gap in gaps), gaps
    assert 0.4 <= ran.runner.elapsed < 1.0  # no think-time after the last pass


def test_task_duration_repeats_passes_until_it_has_passed(
    tmp_path: Path, target: TargetProcess
) -> None:
    ran = run(tmp_path, fetch_doc(users=2, task_duration="500ms", think_time="100ms"), on(target))

    for starts in pass_starts(ran).values():
        assert 3 <= len(starts) <= 6, starts
        assert starts[-1] - starts[0] < 0.5
    assert routes(target) == {"GET /asset": len(ran.entries)}
    assert ran.runner.elapsed < 1.0


def test_passes_that_fail_before_any_io_do_not_starve_the_loop_or_overrun_the_window(
    tmp_path: Path, target: TargetProcess
) -> None:
    # The URL's expression fails at render time: the pass ends without ever suspending.
    failing = {
        "component": "http",
        "call": "get",
        "with": {"url": "http://127.0.0.1:9/{{ 1 // 0 }}"},
    }
    flow = graph(act("probe", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    doc = document({"fetch": failing}, flow, 2, task_duration="1s")
    ticks: list[float] = []

    async def watch(runner: Runner) -> None:
        # Another coroutine on the loop: it must keep getting turns while the users spin.
        while runner.active_users() or not ticks:
            ticks.append(runner.elapsed)
            await asyncio.sleep(0.01)

    ran = run(tmp_path, doc, on(target), during=watch)
    assert ran.result["tasks"]["failed"] > 100
    assert ran.runner.elapsed < 1.5
    busy = [t for t in ticks if t < 1.0]
    assert len(busy) >= 20, ticks[:10]


def test_spawn_rate_starts_users_at_its_pace(tmp_path: Path, target: TargetProcess) -> None:
    ran = run(tmp_path, fetch_doc(users=3, spawn_rate="5/s"), on(target))

    firsts = [starts[0] for _, starts in sorted(pass_starts(ran).items())]
    assert [round(t, 1) for t in firsts] == [0.0, 0.2, 0.4]
    assert ran.result["users"] == {"planned": 3, "started": 3, "finished": 3}


# -- profiles, short runs --------------------------------------------------------------------------


def test_constant_profile_fills_its_window_with_passes(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = with_profile(
        fetch_doc(spawn_rate="10/s", think_time="100ms"), type="constant", users=2, duration="600ms"
    )
    ran = run(tmp_path, doc, on(target))

    starts = pass_starts(ran)
    assert sorted(starts) == ["u0001", "u0002"]
    assert all(len(s) >= 3 and s[-1] < 0.6 for s in starts.values()), starts
    assert ran.result["progress"]["time"] == 1.0
    assert ran.runner.elapsed < 1.0


def test_ramp_profile_run_starts_every_planned_user(tmp_path: Path, target: TargetProcess) -> None:
    doc = with_profile(
        fetch_doc(think_time="50ms"), type="ramp", start_users=0, end_users=3, duration="600ms"
    )
    ran = run(tmp_path, doc, on(target))

    assert ran.result["users"] == {"planned": 3, "started": 3, "finished": 3}
    firsts = [starts[0] for _, starts in sorted(pass_starts(ran).items())]
    assert [round(t, 1) for t in firsts] == [0.0, 0.2, 0.4]
    assert all(s < 0.6 for starts in pass_starts(ran).values() for s in starts)


def test_phases_profile_run_spawns_each_phase_at_its_offset(
    tmp_path: Path, target: TargetProcess
) -> None:
    phases_ = [{"at": "0s", "spawn-users": 2}, {"at": "400ms", "spawn-users": 1}]
    ran = run(tmp_path, with_profile(fetch_doc(), type="phases", phases=phases_), on(target))

    starts = pass_starts(ran)
    assert [len(s) for s in starts.values()] == [1, 1, 1]  # no window: one pass each
    assert max(starts["u0001"][0], starts["u0002"][0]) < 0.1
    assert 0.4 <= starts["u0003"][0] < 0.5
    assert routes(target) == {"GET /asset": 3}


def test_several_scenarios_run_at_once_with_prefixed_user_ids(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = fetch_doc(users=2, iterations=2)
    second = {**doc["load"]["scenarios"][0], "name": "other", "user-count": 1, "iterations": 3}
    doc["load"]["scenarios"].append(second)
    ran = run(tmp_path, doc, on(target))

    by_user = {u: len(s) for u, s in pass_starts(ran).items()}
    assert by_user == {"s1-u0001": 2, "s1-u0002": 2, "s2-u0001": 3}
    assert {e.scenario for e in ran.entries if e.user_id.startswith("s2-")} == {"other"}
    assert routes(target) == {"GET /asset": 7}


def test_run_options_override_user_count_and_bound_the_run(
    tmp_path: Path, target: TargetProcess
) -> None:
    options = RunOptions(users=2, duration=0.5)
    doc = fetch_doc(users=5, task_duration="30s", think_time="50ms")
    ran = run(tmp_path, doc, on(target), options)

    starts = pass_starts(ran)
    assert sorted(starts) == ["u0001", "u0002"]
    assert all(s < 0.5 for user in starts.values() for s in user)
    assert ran.result["users"]["planned"] == 2
    assert ran.result["status"] == "completed"
    assert ran.runner.elapsed < 1.0


def test_drain_stops_new_passes_and_closes_every_started_task(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=150)

    async def drain_soon(runner: Runner) -> None:
        await asyncio.sleep(0.5)
        runner.drain()

    doc = fetch_doc(users=3, task_duration="30s", think_time="20ms")
    ran = run(tmp_path, doc, on(target), during=drain_soon)

    tasks = ran.result["tasks"]
    assert ran.result["status"] == "interrupted"
    assert ran.runner.elapsed < 1.0
    assert tasks["started"] == len(ran.entries) >= 6
    assert tasks["started"] == tasks["succeeded"]  # in-flight passes finished, none cut off
    assert all(phases(e)[-1] == "closing.success" for e in ran.entries)
    assert ran.runner.ctx.inflight == {}
    assert ran.result["users"]["finished"] == ran.result["users"]["started"] == 3
    assert all(s < 0.55 for user in pass_starts(ran).values() for s in user)
    assert routes(target) == {"GET /asset": tasks["started"]}


def test_a_long_think_time_never_carries_a_user_past_the_run_window(
    tmp_path: Path, target: TargetProcess
) -> None:
    options = RunOptions(duration=0.6)
    doc = fetch_doc(users=2, task_duration="30s", think_time="30s")
    ran = run(tmp_path, doc, on(target), options)

    assert ran.runner.elapsed < 0.6 + 0.5
    assert ran.result["tasks"]["started"] == ran.result["tasks"]["succeeded"] == 2


def test_users_planned_to_start_after_the_window_are_never_waited_for(
    tmp_path: Path, target: TargetProcess
) -> None:
    # A ramp over 20 s cut by a 0.5 s window: the spawn loop does not sleep to the next start.
    doc = with_profile(fetch_doc(), type="ramp", start_users=1, end_users=4, duration="20s")
    ran = run(tmp_path, doc, on(target), RunOptions(duration=0.5))

    assert ran.runner.elapsed < 0.5 + 0.5
    assert ran.result["users"]["started"] == 2  # the first start user and the first extra one


def test_the_graceful_stop_cuts_passes_still_in_flight_and_counts_them_interrupted(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=3000)
    options = RunOptions(duration=0.3, graceful_stop=0.4)
    ran = run(tmp_path, fetch_doc(users=3, task_duration="30s"), on(target), options)

    assert 0.7 <= ran.runner.elapsed < 0.7 + 0.5
    tasks, requests = ran.result["tasks"], ran.result["requests"]
    assert tasks["started"] == tasks["interrupted"] == 3
    assert requests["total"] == requests["interrupted"] == routes(target)["GET /asset"] == 3
    # Its scenario counts them too; unanswered, they have no status, bytes or latency.
    s = ran.result["scenarios"]["s"]
    assert s["requests"] | {"per_second": 0} == {
        "total": 3,
        "ok": 0,
        "failed": 0,
        "interrupted": 3,
        "failed_rate": 0.0,
        "per_second": 0,
    }
    assert (s["status"], s["status_codes"], s["latency_ms"]["count"]) == ({}, {}, 0)
    assert (requests["status"], requests["bytes"]) == ({}, {"sent": 0, "received": 0})
    assert all(phases(e)[-1] == "closing.interrupted" for e in ran.entries)
    # Their leases came back: nothing is held once the run is over.
    assert ran.result["resources"]["pool"]["active"] == 0
    assert ran.runner.ctx.inflight == {}


def test_a_run_after_one_whose_passes_were_cut_runs_clean_in_the_same_process(
    tmp_path: Path, target: TargetProcess
) -> None:
    # Compiled, a pass cut while its close awaited inside a `finally` left its CancelledError
    # as the thread's handled exception: the next run's passes failed with it.
    target.control(latency_ms=3000)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cut = run(
        tmp_path / "a",
        fetch_doc(users=3, task_duration="30s"),
        on(target),
        RunOptions(duration=0.2, graceful_stop=0.2),
    )
    assert cut.result["tasks"]["interrupted"] == 3
    target.control(latency_ms=0)
    ran = run(tmp_path / "b", fetch_doc(users=4, iterations=3), on(target))
    tasks = ran.result["tasks"]
    assert tasks["started"] == tasks["succeeded"] == 12
    assert ran.result["errors"] == {}


# -- pooled items ----------------------------------------------------------------------------------


def guarded(doc: Doc, guard: str | None) -> Doc:
    pool = doc["resources"]["pool"]
    pool["capacity"] = {"guard": guard} if guard else {}
    if not pool["capacity"]:
        del pool["capacity"]
    return doc


def test_shared_pool_without_a_size_does_not_cap_concurrency(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=300)
    ran = run(tmp_path, guarded(fetch_doc(users=3), None), on(target))

    assert ran.result["tasks"]["succeeded"] == 3
    assert ran.runner.elapsed < 0.6  # three users on one item at once, not one after another
    assert ran.pools.statistics()["pool"]["leases"] == 3


def test_exclusive_pool_with_fewer_items_than_users_makes_users_wait(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=150)
    ran = run(tmp_path, guarded(fetch_doc(users=3), "exclusive"), on(target))

    assert ran.result["tasks"]["succeeded"] == 3
    assert ran.runner.elapsed >= 0.45  # one item: the three passes ran one after another
    waits = []
    for entry in ran.entries:
        at = {to: when for _, to, when, _ in entry.trace}
        waits.append(at["executing.running_action"] - at["executing.waiting_resource"])
    first, second, third = sorted(waits)
    assert first < 0.05
    assert 0.14 <= second < 0.3
    assert 0.29 <= third < 0.45
    stats = ran.pools.statistics()["pool"]
    assert (stats["active"], stats["leases"], stats["released"]) == (0, 3, 3)


def test_waiting_past_the_pass_timeout_is_resource_unavailable(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=700)
    doc = guarded(fetch_doc(users=1), "exclusive")
    flow = doc["workflows"]["wf"]
    doc["workflows"]["short"] = {**flow, "controls": {**flow["controls"], "timeout": "300ms"}}
    waiter = {**doc["load"]["scenarios"][0], "name": "waiters", "workflow": "short"}
    doc["load"]["scenarios"].append({**waiter, "user-count": 2, "profile": "late"})
    doc["load"]["profiles"] = {
        "late": {"type": "phases", "phases": [{"at": "100ms", "spawn-users": 2}]}
    }
    ran = run(tmp_path, doc, on(target))

    assert ran.result["tasks"] == {
        "started": 3,
        "succeeded": 1,
        "failed": 2,
        "timed_out": 0,
        "rolled_back": 0,
        "rollbacks": 0,
        "interrupted": 0,
    }
    assert ran.result["errors"] == {"resource-unavailable": 2}
    assert ran.result["exits"] == {"error_out": 2}
    for entry in ran.entries:
        if entry.user_id.startswith("s2-"):
            assert phases(entry)[-3:] == [
                "executing.waiting_resource",
                "monitoring.error_detected",
                "closing.error",
            ]
            assert ran.book.get(entry, "execution.evidence.last_event") == "resource-unavailable"
    assert routes(target) == {"GET /asset": 1}
    stats = ran.pools.statistics()["pool"]
    assert (stats["active"], stats["leases"], stats["released"]) == (0, 1, 1)
