"""Think-time distributions and pacing between a user's passes (core/pacing.py): the draws'
statistics, reproducible per-user sequences, and real runs against the embedded target."""

from __future__ import annotations

import asyncio
import io
import itertools
import random
import statistics
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from rich.console import Console

from scenario_kit import Doc, Ran, act, document, edge, end, graph, http, on, run
from wbsrun.core.pacing import Pacer, draw, user_seed
from wbsrun.core.runner import Runner
from wbsrun.dsl.plan import ScenarioSpec, ThinkSpec
from wbsrun.progress.aggregate import Aggregator, ProgressUpdate
from wbsrun.progress.baseline import ScenarioBaseline
from wbsrun.progress.report import progress_snapshot
from wbsrun.target import TargetKnobs, TargetProcess
from wbsrun.telemetry.console import live_fields
from wbsrun.telemetry.metrics._families import families
from wbsrun.telemetry.metrics._sample import RunSources, take_sample
from wbsrun.telemetry.summary import print_summary


def fetch_doc(users: int = 1, **scenario: Any) -> Doc:
    flow = graph(act("probe", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    return document({"fetch": http("get")}, flow, users, **scenario)


def pass_starts(ran: Ran) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for entry in ran.entries:
        out.setdefault(entry.user_id, []).append(entry.trace[0][2] - ran.runner.started_wall)
    return out


# -- draws -----------------------------------------------------------------------------------


def test_uniform_draws_stay_in_bounds_with_the_midpoint_as_mean() -> None:
    rng = random.Random(7)
    spec = ThinkSpec("uniform", 1.0, 3.0)
    draws = [draw(spec, rng) for _ in range(20_000)]
    assert 1.0 <= min(draws) < 1.01
    assert 2.99 < max(draws) <= 3.0
    assert abs(statistics.fmean(draws) - 2.0) < 0.02
    # Uniform on [1, 3]: variance (3 - 1)^2 / 12.
    assert abs(statistics.pvariance(draws) - 4 / 12) < 0.01


def test_exponential_draws_have_the_mean_and_spread_of_poisson_arrivals() -> None:
    rng = random.Random(7)
    draws = [draw(ThinkSpec("exponential", 2.0, 2.0), rng) for _ in range(40_000)]
    assert min(draws) >= 0.0
    assert abs(statistics.fmean(draws) - 2.0) < 0.05
    # An exponential's standard deviation equals its mean; its median is mean * ln 2.
    assert abs(statistics.pstdev(draws) - 2.0) < 0.08
    assert abs(statistics.median(draws) - 2.0 * 0.6931) < 0.05


def test_fixed_think_time_is_the_value_every_time() -> None:
    pacer = Pacer(_scenario(think=ThinkSpec("fixed", 0.3, 0.3)), "s")
    assert {pacer.wait(0.0, 1.0) for _ in range(5)} == {0.3}
    # A plan built without the distribution (think_time only) still waits it.
    assert Pacer(_scenario(think_time=0.4), "s").wait(0.0, 1.0) == 0.4
    assert Pacer(_scenario(), "s").wait(0.0, 1.0) == 0.0


def test_each_user_draws_its_own_sequence_the_same_on_every_run() -> None:
    scenario = _scenario(think=ThinkSpec("exponential", 1.0, 1.0))

    def sequence(index: int) -> list[float]:
        pacer = Pacer(scenario, user_seed("plan", "s", index))
        return [pacer.wait(0.0, 0.0) for _ in range(5)]

    assert sequence(0) == sequence(0)
    assert sequence(0) != sequence(1)
    assert user_seed("plan", "s", 1) != user_seed("plan", "t", 1)


def test_pacing_waits_what_the_pass_left_and_counts_a_late_pass() -> None:
    pacer = Pacer(_scenario(pacing=1.0), "s")
    assert pacer.wait(10.0, 10.25) == 0.75  # due at 11
    assert pacer.wait(11.001, 11.5) == 0.5  # due at 12: from the planned start, not 11.001
    assert (pacer.wait(12.0, 13.5), pacer.missed) == (0.0, 1)  # due at 13: late, go at once
    assert (pacer.wait(13.5, 13.75), pacer.missed) == (0.75, 1)  # due times count on from 13.5


def _scenario(**kw: Any) -> ScenarioSpec:
    fields: dict[str, Any] = {
        "name": "s",
        "workflow": "wf",
        "user_count": 1,
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


# -- runs ------------------------------------------------------------------------------------


def test_pacing_holds_a_constant_pass_rate_per_user(tmp_path: Path, target: TargetProcess) -> None:
    ran = run(tmp_path, fetch_doc(users=2, task_duration="2s", pacing="100ms"), on(target))

    starts = pass_starts(ran)
    assert len(starts) == 2
    for user, times in starts.items():
        rate = (len(times) - 1) / (times[-1] - times[0])
        assert abs(rate - 10.0) / 10.0 < 0.03, (user, rate, times)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.09 <= gap < 0.13 for gap in gaps), gaps
    assert ran.result["scenarios"]["s"]["pacing_missed"] == 0


def test_a_pass_longer_than_the_pacing_interval_starts_the_next_at_once_and_counts(
    tmp_path: Path, target_factory: Any
) -> None:
    slow = target_factory(knobs=TargetKnobs(latency_ms=150))
    seen: dict[str, Any] = {}

    async def midway(runner: Runner) -> None:
        # While the user still runs (after its second or third pass), the count is live.
        await asyncio.sleep(0.4)
        seen["active"] = runner.active_users()
        seen["fields"] = live_fields(runner, progress_snapshot(runner), 0.0)
        sample = take_sample(RunSources(runner))
        (family,) = (f for f in families(sample) if f.name == "wbsrun_pacing_missed")
        seen["metric"] = [(x.labels, x.value) for x in family.samples]

    ran = run(tmp_path, fetch_doc(iterations=4, pacing="50ms"), on(slow), during=midway)
    assert seen["active"] == 1
    (late,) = [f for f in seen["fields"] if f.startswith("pacing missed ")]
    assert late in ("pacing missed 1", "pacing missed 2", "pacing missed 3")
    assert seen["metric"] == [({"scenario": "s"}, int(late.rsplit(" ", 1)[1]))]

    (times,) = pass_starts(ran).values()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.15 <= gap < 0.25 for gap in gaps), gaps  # no wait beyond the pass itself
    # Three passes were followed by another (the last by none): each ran past its 50 ms.
    assert ran.result["scenarios"]["s"]["pacing_missed"] == 3
    out = io.StringIO()
    print_summary(Console(file=out, width=120, force_terminal=False), ran.result)
    (tasks,) = [line for line in out.getvalue().splitlines() if line.startswith("  tasks ")]
    assert tasks.endswith(" · 3 past their pacing"), tasks


def test_uniform_think_time_takes_the_wall_time_of_its_draws(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = fetch_doc(iterations=6, think_time="uniform(100ms, 300ms)")
    ran = run(tmp_path, doc, on(target))

    # The user's draws are reproducible: the same seed gives the waits it slept.
    pacer = Pacer(ran.runner.plan.scenarios[0], user_seed("t", "s", 0))
    waits = [pacer.wait(0.0, 0.0) for _ in range(5)]  # no think after the last pass
    assert all(0.1 <= w <= 0.3 for w in waits)
    assert len(set(waits)) == 5
    (times,) = pass_starts(ran).values()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, wait in zip(gaps, waits, strict=True):
        assert wait <= gap < wait + 0.06, (gaps, waits)
    assert sum(waits) <= ran.runner.elapsed < sum(waits) + 0.5


def test_the_eta_of_a_paced_plan_counts_the_rest_of_each_interval() -> None:
    # Ten users, three 0.5 s passes each, paced 5 s apart: the last ends at 10.5 s.
    now = [0.0]
    base = ScenarioBaseline(
        name="s",
        users=10,
        planned_tasks=30,
        passes_per_user=3,
        duration=None,
        last_start=0.0,
        pacing=5.0,
    )
    agg = Aggregator([base], clock=lambda: now[0])
    for u in range(10):
        agg.apply(ProgressUpdate(f"u{u}-t0", f"u{u}", "s", 0.0, frozenset()))
    agg.snapshot(0.0)
    now[0] = 0.5
    for u in range(10):
        agg.apply(ProgressUpdate(f"u{u}-t0", f"u{u}", "s", 1.0, frozenset(), True))
    for t in (0.5, 1.0, 1.5):
        agg.snapshot(t)
    # At 2 s a third of the passes is done: their rate alone says 4 s; the plan says 8.5 s.
    eta = agg.snapshot(2.0).eta_s
    assert eta == pytest.approx(8.5)
