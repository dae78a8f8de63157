"""Stages (k6's ramping-vus), start-after, ramping arrival schedules and the WBS's planned
passes: the plan's arithmetic, and runs against a real server."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from scenario_kit import Doc, act, document, edge, end, graph, http, on, run, write_bundle
from wbsrun.cli.session import execute
from wbsrun.core.arrivals import arrival_schedule
from wbsrun.core.runner import RunOptions
from wbsrun.core.scheduler import spawn_plan
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import ProfileSpec, ScenarioSpec
from wbsrun.dsl.wbs import render_wbs
from wbsrun.errors import ScenarioError
from wbsrun.progress.baseline import baselines
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetKnobs, TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"


def fetch_doc(users: int = 1, **scenario: Any) -> Doc:
    flow = graph(act("probe", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    return document({"fetch": http("get")}, flow, users, **scenario)


def profiled(doc: Doc, **profile: Any) -> Doc:
    doc["load"]["profiles"] = {"p": {k.replace("_", "-"): v for k, v in profile.items()}}
    doc["load"]["scenarios"][0]["profile"] = "p"
    return doc


def spec(profile: ProfileSpec, start_after: float = 0.0) -> ScenarioSpec:
    return ScenarioSpec(
        name="s",
        workflow="wf",
        user_count=1,
        spawn_rate=None,
        profile=profile,
        task_duration=None,
        iterations=None,
        think_time=0.0,
        inherit=(),
        session_new=False,
        context={},
        exits={},
        milestones=(),
        aggregation=(),
        health_threshold=None,
        max_duration=None,
        wbs_level="L2",
        start_after=start_after,
    )


def stages(*steps: tuple[str, int | float]) -> list[dict[str, Any]]:
    return [{"duration": d, "target": t} for d, t in steps]


# -- the plan ----------------------------------------------------------------------------------


def ramping(start: float, steps: tuple[tuple[float, float], ...]) -> ProfileSpec:
    return ProfileSpec(
        "p", "ramping-arrival-rate", stages=steps, rate=start, pre_allocated=1, max_users=1
    )


def test_a_ramping_rate_starts_iterations_where_its_integral_reaches_each_count() -> None:
    # 0 → 10/s over 2 s: N(t) = 2.5 t², so iteration k starts at sqrt(k / 2.5); then 10/s.
    sched = arrival_schedule(ramping(0.0, ((2.0, 10.0), (1.0, 10.0))))
    assert sched is not None
    offsets = list(sched.offsets())
    assert len(offsets) == sched.planned() == 20
    for k in range(10):
        assert offsets[k] == pytest.approx(math.sqrt(k / 2.5))
    assert offsets[10:] == pytest.approx([2.0 + i / 10 for i in range(10)])


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    start=st.floats(0, 50),
    steps=st.lists(st.tuples(st.floats(0.1, 5), st.floats(0, 50)), min_size=1, max_size=4).map(
        tuple
    ),
)
def test_a_ramping_schedule_starts_as_many_iterations_as_it_plans_in_order(
    start: float, steps: tuple[tuple[float, float], ...]
) -> None:
    profile = ramping(start, steps)
    sched = arrival_schedule(profile)
    assert sched is not None
    offsets = list(sched.offsets())
    assert len(offsets) == sched.planned() == profile.planned_iterations()
    assert offsets == sorted(offsets)
    assert all(0 <= t < sched.duration + 1e-9 for t in offsets)
    # Before any time t, the schedule has started ⌈N(t)⌉ of them.
    for t in (sched.duration / 3, sched.duration / 2):
        assert sum(1 for x in offsets if x < t) == pytest.approx(sched.planned(t), abs=1)


def test_a_stages_plan_starts_users_up_the_ramp_and_retires_them_down_it() -> None:
    profile = ProfileSpec("p", "stages", stages=((2.0, 4.0), (1.0, 4.0), (2.0, 0.0)))
    plan = spawn_plan(spec(profile=profile, start_after=0.5))
    # Four users at 0, 0.5, 1 and 1.5 s of the ramp, shifted by start-after.
    assert plan.starts == pytest.approx((0.5, 1.0, 1.5, 2.0))
    # The last started leaves first, one every 0.5 s of the ramp down (3.5 … 5 s).
    assert plan.ends == pytest.approx((5.5, 5.0, 4.5, 4.0))
    assert plan.stop_after == pytest.approx(5.5)
    assert plan.curve is not None
    # A zero-length step jumps (a time a hair before the start included).
    jump = spawn_plan(spec(ProfileSpec("p", "stages", stages=((0.0, 3.0), (1.0, 3.0)))))
    assert jump.curve is not None
    assert [jump.curve.target(t) for t in (-0.001, 0.0, 0.5, 1.0)] == [3, 3, 3, 3]
    assert jump.starts == (0.0, 0.0, 0.0)
    # Due users: those the plan has started and not yet retired.
    due = [plan.curve.target(t) for t in (0.0, 0.25, 1.0, 2.5, 3.6, 4.9, 5.0)]
    assert due == [1, 1, 3, 4, 3, 1, 0]


def test_an_arrival_plan_counts_its_iterations_within_the_window(tmp_path: Path) -> None:
    doc = profiled(
        fetch_doc(),
        type="constant-arrival-rate",
        rate=30,
        time_unit="1m",
        duration="10s",
        pre_allocated_users=2,
        max_users=4,
    )
    plan = load_plan(write_bundle(tmp_path, doc, [("127.0.0.1", 1)]), provides())
    (base,) = baselines(plan)
    # 30 a minute for 10 s: 5, at 0, 2, 4, 6 and 8 s; --duration 5s keeps those before 5 s.
    assert (base.planned_tasks, base.users, base.schedule_end) == (5, 4, 10.0)
    (capped,) = baselines(plan, duration=5.0)
    assert capped.planned_tasks == 3
    (more,) = baselines(plan, users=8)
    assert more.users == 8


def test_max_users_below_pre_allocated_is_refused_where_it_is_written(tmp_path: Path) -> None:
    doc = profiled(
        fetch_doc(),
        type="constant-arrival-rate",
        rate=5,
        duration="1s",
        pre_allocated_users=4,
        max_users=2,
    )
    with pytest.raises(ScenarioError) as info:
        load_plan(write_bundle(tmp_path, doc, [("127.0.0.1", 1)]), provides())
    (diag,) = (d for d in info.value.diagnostics if d.severity == "error")
    assert diag.code == "bad-max-users"
    assert diag.line > 0
    assert diag.value == "2"
    assert diag.expected == "at least 4"


# -- the WBS ---------------------------------------------------------------------------------


def wbs_of(tmp_path: Path, doc: Doc) -> str:
    bundle = write_bundle(tmp_path, doc, [("127.0.0.1", 1)])
    return render_wbs(load_plan(bundle, provides()).wbs)


def test_wbs_reports_the_planned_passes_of_arrival_rate_and_time_boxed_scenarios(
    tmp_path: Path,
) -> None:
    doc = profiled(
        fetch_doc(),
        type="ramping-arrival-rate",
        start_rate=0,
        time_unit="1m",
        stages=stages(("1m", 600), ("2m", 600)),
        pre_allocated_users=5,
        max_users=50,
    )
    # 0 → 600/min over a minute (300), then 600/min for two (1,200).
    assert "up to 50 user(s), 1500 planned pass(es) in all" in wbs_of(tmp_path, doc)
    doc = profiled(fetch_doc(), type="stages", stages=stages(("5s", 50), ("15s", 50)))
    text = wbs_of(tmp_path, doc)
    assert "50 user(s), repeated passes for the profile's 20s (time-boxed)" in text
    assert "1 pass each" not in text.replace("1 pass each (repeated", "")


# -- runs ------------------------------------------------------------------------------------


def run_cli(tmp_path: Path, target: TargetProcess, doc: Doc, options: RunOptions) -> Doc:
    bundle = write_bundle(tmp_path, doc, on(target))
    out = tmp_path / "result.json"
    execute(
        load_plan(bundle, provides()),
        options,
        json_out=out,
        log_file=None,
        console=Console(file=io.StringIO()),
        live=False,
        summary=False,
    )
    result: Doc = json.loads(out.read_text("utf-8"))
    jsonschema.validate(result, json.loads(SCHEMA.read_text("utf-8")))
    return result


def test_a_stages_run_ramps_up_holds_and_ramps_down_in_its_active_users(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=100))
    doc = profiled(fetch_doc(), type="stages", stages=stages(("2s", 6), ("2s", 6), ("2s", 0)))
    result = run_cli(tmp_path, target, doc, RunOptions())
    series = result["timeseries"]

    # The ticker samples about once a second, never exactly on the second: compare each
    # sample with the profile's target at the sample's own time. Up 3 users/s to 6 at 2 s,
    # hold to 4 s, down 3 users/s; a ramp-down is graceful (a user finishes its 100 ms pass)
    # and a ramp-up starts the next user within a tick, so one user either way.
    def planned(t: float) -> float:
        if t < 2.0:
            return 3.0 * t
        if t < 4.0:
            return 6.0
        return max(0.0, 6.0 - 3.0 * (t - 4.0))

    samples = list(zip(series["t"], series["users"], strict=True))
    assert len(samples) >= 5
    for t, n in samples:
        assert math.floor(planned(t)) - 1 <= n <= math.ceil(planned(t)) + 1, (t, n, planned(t))
    assert any(2.2 <= t <= 3.8 and n == 6 for t, n in samples)
    assert result["users"]["started"] == 6
    assert result["tasks"]["interrupted"] == 0
    assert 5.9 <= result["duration_s"] < 7.0


def test_duration_caps_a_stages_profile_and_the_profile_sets_its_own_window(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory()
    doc = profiled(fetch_doc(), type="stages", stages=stages(("1s", 2), ("2s", 2)))
    result = run_cli(tmp_path, target, doc, RunOptions(duration=1.5))
    assert result["duration_s"] < 2.0
    (tmp_path / "again").mkdir()
    result = run_cli(tmp_path / "again", target, doc, RunOptions(duration=10.0))
    assert 2.9 <= result["duration_s"] < 4.0


def test_start_after_delays_its_scenario_only(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory()
    doc = fetch_doc(2, iterations=1)
    late = {**doc["load"]["scenarios"][0], "name": "late", "start-after": "1s"}
    doc["load"]["scenarios"].append(late)
    ran = run(tmp_path, doc, on(target))
    starts: dict[str, list[float]] = {}
    for entry in ran.entries:
        at = entry.trace[0][2] - ran.runner.started_wall
        starts.setdefault(entry.scenario, []).append(at)
    assert len(starts["s"]) == len(starts["late"]) == 2
    assert max(starts["s"]) < 0.5
    assert 1.0 <= min(starts["late"]) < 1.5
    # The progress plan knows when it starts.
    plan = load_plan(ran.bundle, provides())
    late_base = baselines(plan)[1]
    assert late_base.starts == (1.0, 1.0)
